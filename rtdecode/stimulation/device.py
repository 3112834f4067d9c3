"""The serial trigger device: commands out, acknowledgements in, on threads of their own.

:class:`TriggerDevice` owns the port. The decode thread only puts a trigger on a queue
(:meth:`TriggerDevice.send` never blocks); an I/O thread writes each command, keeps the device's
watchdog fed with heartbeats and reopens an unplugged port; a reader thread matches each
acknowledgement (carrying the device's own clock) to its command. Every command's outcome, or
its failure, is handed to ``on_result`` exactly once.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pylsl

from rtdecode.stimulation.engine import Trigger
from rtdecode.stimulation.protocol import (
    ACK_SIZE,
    Ack,
    AckParser,
    Command,
    encode_command,
    with_seq,
)
from rtdecode.stimulation.rules import OutputConfig

__all__ = ["CommandResult", "TriggerDevice"]

logger = logging.getLogger("rtdecode")

_REOPEN_S = 0.5  # between attempts to reopen a port that went away
_WARN_EVERY_S = 10.0
_HANDSHAKE_S = 3.0
_CLOSE = object()


@dataclass(frozen=True)
class _Rest:
    """The part of a command the driver did not take in a non-blocking write."""

    data: bytes  # queued by close(): the I/O thread ends when it reaches it  # how long to wait for a device that resets when its port opens  # a port that stays away is reported this often, not at every attempt


@dataclass(frozen=True)
class CommandResult:
    """What became of one trigger's command.

    Attributes
    ----------
    trigger : Trigger
    written_t : float or None
        LSL clock when the command's bytes were handed to the port (None: never written).
    ack : Ack or None
        The device's acknowledgement (None: none within the timeout).
    ack_t : float or None
        LSL clock when the acknowledgement was read.
    error : str or None
        Why the command was not written or not acknowledged.
    """

    trigger: Trigger
    written_t: float | None
    ack: Ack | None
    ack_t: float | None
    error: str | None

    def record(self) -> dict:
        """The log fields this adds to the trigger's line."""
        rec = {"written_t": self.written_t, "ack_t": self.ack_t, "error": self.error}
        if self.ack is not None:
            rec["ack"] = {"status": self.ack.text, "device_us": self.ack.device_us}
        if self.written_t is not None:
            # decision timestamp -> command on the wire; write -> acknowledgement read
            rec["decision_to_write_ms"] = round((self.written_t - self.trigger.t) * 1e3, 3)
            if self.ack_t is not None:
                rec["round_trip_ms"] = round((self.ack_t - self.written_t) * 1e3, 3)
        return rec


_KINDS = {"pulse": b"P", "on": b"H", "off": b"L"}


def _fields(trig: Trigger) -> tuple[bytes, int, int, int, int, int]:
    """A trigger's command fields (kind, channel, delay, duration, period, pulses), clipped
    to what the protocol carries."""
    return (
        _KINDS[trig.action],
        trig.channel,
        min(65535, trig.delay_ms),
        min(65535, trig.pulse_ms),
        min(65535, trig.period_ms),
        min(255, trig.pulses),
    )


@functools.lru_cache(maxsize=512)
def _frame(
    kind: bytes, channel: int, delay_ms: int, duration_ms: int, period_ms: int, pulses: int
) -> bytes:
    """A trigger's frame with sequence number 0, checked and encoded once: building and
    checking the command on every send cost ~0.1 ms of the decision's path to the port live
    (cold caches; 18 us alone)."""
    return encode_command(Command(kind, 0, channel, delay_ms, duration_ms, period_ms, pulses))


def _trigger_frame(trig: Trigger, seq: int) -> bytes:
    """The frame of a trigger's command with sequence number ``seq``."""
    return with_seq(_frame(*_fields(trig)), seq)


class TriggerDevice:
    """A trigger device on a serial port (the firmware in ``firmware/``).

    Parameters
    ----------
    config : OutputConfig
        The port, its rate, the watchdog and heartbeat periods, the acknowledgement timeout.
    on_result : callable
        Called as ``on_result(CommandResult)`` from this object's threads, once per trigger
        given to :meth:`send`.

    Notes
    -----
    ``start`` opens the port (a missing port is an error then: the user named it); a port
    that goes away later is reported and reopened every 0.5 s while decoding goes on.
    Low-latency mode is asked for where the driver offers it (FTDI, ACM); a pseudo-terminal
    or another driver without it is used as it is.
    """

    def __init__(self, config: OutputConfig, on_result: Callable[[CommandResult], None]) -> None:
        if config.port is None:
            raise ValueError("a TriggerDevice needs a port")
        self.config = config
        self._on_result = on_result
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the port and the pending table
        self._port = None
        self._seq = 0
        self._pending: dict[int, tuple[Trigger, float]] = {}
        self._fd: int | None = None  # the port's non-blocking file, for writes without waiting
        self._answered = threading.Event()  # the device has answered since the port opened
        self._ready = False  # handshake done: watchdog set, gates restored
        self._gates: dict[int, Trigger] = {}  # channel -> the gate that is on (resent on reopen)
        self._io: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self.counts = {"written": 0, "acknowledged": 0, "failed": 0, "reopened": 0}
        self.low_latency = False
        self.last_error: str | None = None
        self.watchdog_fired = 0

    # Lifetime --------------------------------------------------------------------------------
    def start(self) -> TriggerDevice:
        """Open the port, set the device's watchdog, start the threads."""
        self._open()  # raises: the port named at start-up must exist
        self._io = threading.Thread(target=self._io_loop, name="rtdecode-stim-io", daemon=True)
        self._reader = threading.Thread(
            target=self._read_loop, name="rtdecode-stim-ack", daemon=True
        )
        self._io.start()
        self._reader.start()
        return self

    def send(self, trigger: Trigger) -> None:
        """Send a trigger's command; returns at once (called from the decode thread).

        When the port is idle the command is written here, without waiting: the port's file is
        non-blocking, so a write either goes to the driver's buffer (microseconds) or fails
        with nothing waited for. Otherwise (the I/O thread busy, something queued, a full or
        lost port, no file descriptor) it is queued for the I/O thread, which may wait. A
        hand-over to that thread costs a wake-up and the interpreter lock, up to the end of the
        decode thread's work on this decision.
        """
        if self._fd is not None and self._queue.empty() and self._lock.acquire(blocking=False):
            try:
                if self._port is not None and self._ready and self._write_now(trigger):
                    return
            finally:
                self._lock.release()
        self._queue.put(trigger)

    def _write_now(self, trig: Trigger) -> bool:
        """Write a trigger's command without blocking (under the lock); whether it went."""
        frame = _trigger_frame(trig, (self._seq % 255) + 1)
        # stamped as the command is handed to the driver: the write itself may yield the CPU to
        # the process that reads the port (a pseudo-terminal's), which is the port's delay
        written = pylsl.local_clock()
        try:
            n = os.write(self._fd, frame)
        except OSError:
            return False  # full (EAGAIN) or failing: the I/O thread handles it
        self._next_seq()
        if n < len(frame):
            # the driver took part of it: the rest goes first from the I/O thread
            self._queue.put(_Rest(frame[n:]))
        self._track(trig, frame[2], written)
        return True

    def _track(self, trig: Trigger, seq: int, written: float) -> None:
        """A command written: await its acknowledgement; remember the gates that are on."""
        if trig.action == "on":
            self._gates[trig.channel] = trig
        elif trig.action == "off":
            self._gates.pop(trig.channel, None)
        self.counts["written"] += 1
        self._pending[seq] = (trig, written)

    def close(self) -> None:
        """Turn every output off, account for what is pending, close the port. Idempotent."""
        if self._stop.is_set():
            return
        self._queue.put(_CLOSE)  # after what is queued: the gates' last edges go out first
        if self._io is not None:
            self._io.join(2.0)
        self._stop.set()
        with self._lock:
            if self._port is not None:
                try:
                    self._write(Command(b"X", self._next_seq()))
                    self._port.flush()
                except Exception:  # noqa: BLE001 - the port may be gone; the watchdog covers it
                    pass
        if self._reader is not None:
            self._reader.join(1.0)
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            if self._port is not None:
                try:
                    self._port.close()
                finally:
                    self._port = None
                    self._fd = None
        for trig, written in pending:
            self._result(trig, written, None, None, "no acknowledgement before the decoder stopped")
        while True:
            try:
                trig = self._queue.get_nowait()
            except queue.Empty:
                break
            if trig is not None and trig is not _CLOSE:
                self._result(trig, None, None, None, "not written: the decoder stopped")

    @property
    def connected(self) -> bool:
        return self._port is not None

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the device has answered and the handshake is done (its watchdog set);
        whether that happened within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not (self._ready and self._answered.is_set()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # Port ------------------------------------------------------------------------------------
    def _open(self) -> None:
        import serial

        port = serial.Serial(self.config.port, self.config.baud, timeout=0.05, write_timeout=0.5)
        try:
            port.set_low_latency_mode(True)
            self.low_latency = True
        except (AttributeError, OSError, ValueError, NotImplementedError):
            self.low_latency = False  # a pty, or a driver without it
        port.reset_input_buffer()
        self._answered.clear()
        try:
            fd = port.fileno()  # POSIX: pyserial keeps it non-blocking
        except (AttributeError, OSError, ValueError):
            fd = None  # elsewhere every command goes through the I/O thread
        with self._lock:
            self._port = port
            self._fd = fd
            self._ready = False
        logger.info(
            "trigger device on %s (%d baud, low-latency %s, watchdog %d ms)",
            self.config.port,
            self.config.baud,
            "on" if self.low_latency else "not available",
            self.config.watchdog_ms,
        )

    def _handshake(self) -> None:
        """Heartbeats until the device answers (a board that resets when its port opens, as an
        Arduino Uno does, hears nothing for its first second or two), then the watchdog and
        any gate that was on when the port went away."""
        deadline = time.monotonic() + _HANDSHAKE_S
        while not self._stop.is_set() and self._port is not None:
            with self._lock:
                try:
                    self._write(Command(b"B", self._next_seq()))
                except Exception as exc:  # noqa: BLE001
                    err = exc
                else:
                    err = None
            if err is not None:
                self._lost(err)
                return
            if self._answered.wait(0.1):
                break
            if time.monotonic() > deadline:
                logger.warning(
                    "trigger device %s does not answer (is the firmware in firmware/ flashed, at "
                    "%d baud?); sending anyway",
                    self.config.port,
                    self.config.baud,
                )
                break
        with self._lock:
            if self._port is None:
                return
            try:
                self._write(Command(b"W", self._next_seq(), duration_ms=self.config.watchdog_ms))
                for trig in self._gates.values():  # a gate that was on when the port went away
                    self._write_frame(_trigger_frame(trig, self._next_seq()))
            except Exception as exc:  # noqa: BLE001
                err = exc
            else:
                self._ready = True
                return
        self._lost(err)

    def _lost(self, exc: BaseException) -> None:
        """The port failed: close it; the I/O thread reopens it."""
        with self._lock:
            if self._port is not None:
                try:
                    self._port.close()
                except Exception:  # noqa: BLE001
                    pass
                self._port = None
                self._fd = None
        self.last_error = f"{type(exc).__name__}: {exc}"
        logger.warning("trigger device %s lost (%s); reopening", self.config.port, self.last_error)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256 or 1  # 0 is the device's unsolicited frames
        return self._seq

    def _write(self, cmd: Command) -> float:
        """Write one command (under the lock); the LSL clock as it was handed to the port."""
        return self._write_frame(encode_command(cmd))

    def _write_frame(self, frame: bytes) -> float:
        written = pylsl.local_clock()
        self._port.write(frame)
        return written

    # Threads ---------------------------------------------------------------------------------
    def _io_loop(self) -> None:
        heartbeat_s = self.config.heartbeat_ms * 1e-3
        next_beat = time.monotonic() + heartbeat_s
        next_open = 0.0
        last_warned = -_WARN_EVERY_S
        while not self._stop.is_set():
            if self._port is not None and not self._ready:
                self._handshake()
            now = time.monotonic()
            if self._port is None and now >= next_open:
                next_open = now + _REOPEN_S
                try:
                    self._open()
                    self.counts["reopened"] += 1
                    logger.warning("trigger device %s is back", self.config.port)
                except Exception as exc:  # noqa: BLE001 - any failure to open is retried
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if now - last_warned >= _WARN_EVERY_S:
                        last_warned = now
                        logger.warning(
                            "trigger device %s unavailable (%s); retrying every %.1f s",
                            self.config.port,
                            self.last_error,
                            _REOPEN_S,
                        )
            self._expire_pending()
            wake = next_beat if self._port is not None else min(next_beat, next_open)
            try:
                trig = self._queue.get(timeout=max(0.001, wake - time.monotonic()))
            except queue.Empty:
                trig = None
            if trig is _CLOSE:
                return
            if trig is not None:
                self._send(trig)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + heartbeat_s
                self._heartbeat()

    def _send(self, trig) -> None:
        if isinstance(trig, _Rest):
            with self._lock:
                try:
                    if self._port is not None:
                        self._port.write(trig.data)
                    return
                except Exception as exc:  # noqa: BLE001 - reported, retried by reopening
                    err = exc
            self._lost(err)
            return
        with self._lock:
            if self._port is None:
                error = f"not written: port unavailable ({self.last_error})"
            else:
                seq = self._next_seq()
                try:
                    written = self._write_frame(_trigger_frame(trig, seq))
                except Exception as exc:  # noqa: BLE001 - reported, retried by reopening
                    error = f"not written: {type(exc).__name__}: {exc}"
                else:
                    self._track(trig, seq, written)
                    return
        if self._port is not None:
            self._lost(RuntimeError(error))
        self._result(trig, None, None, None, error)

    def _heartbeat(self) -> None:
        with self._lock:
            if self._port is None:
                return
            try:
                self._write(Command(b"B", self._next_seq()))
                return
            except Exception as exc:  # noqa: BLE001
                err = exc
        self._lost(err)

    def _expire_pending(self) -> None:
        limit = self.config.ack_timeout_ms * 1e-3
        now = pylsl.local_clock()
        with self._lock:
            late = [s for s, (_, w) in self._pending.items() if now - w > limit]
            expired = [self._pending.pop(s) for s in late]
        for trig, written in expired:
            self._result(trig, written, None, None, f"no acknowledgement within {limit * 1e3:g} ms")

    def _read_loop(self) -> None:
        parser = AckParser()
        while not self._stop.is_set() or self._pending:
            port = self._port
            if port is None:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            try:
                data = port.read(ACK_SIZE)
            except Exception:  # noqa: BLE001 - the I/O thread notices and reopens
                time.sleep(0.05)
                continue
            if not data:
                if self._stop.is_set():
                    return
                continue
            now = pylsl.local_clock()
            for ack in parser.feed(data):
                self._acknowledged(ack, now)

    def _acknowledged(self, ack: Ack, now: float) -> None:
        self._answered.set()
        if ack.seq == 0:
            if ack.status == 4:
                self.watchdog_fired += 1
                logger.warning(
                    "trigger device %s: its watchdog fired (no heartbeat): outputs off",
                    self.config.port,
                )
            return
        with self._lock:
            entry = self._pending.pop(ack.seq, None)
        if entry is None:
            return  # a heartbeat's or the watchdog setting's
        trig, written = entry
        self.counts["acknowledged"] += 1
        error = None if ack.ok else f"device: {ack.text}"
        self._result(trig, written, ack, now, error)

    def _result(self, trig, written, ack, ack_t, error) -> None:
        if error is not None:
            self.counts["failed"] += 1
        try:
            self._on_result(CommandResult(trig, written, ack, ack_t, error))
        except Exception:  # a broken callback must not stop the device threads
            logger.exception("trigger result handler failed")
