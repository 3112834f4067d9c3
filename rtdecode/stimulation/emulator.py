"""A trigger device in software, on a pseudo-terminal: the firmware's protocol without a board.

:class:`PtyTriggerDevice` opens a pseudo-terminal and answers on its master side as the firmware
in ``firmware/`` does (acknowledgements with its own microsecond clock, delayed pulse trains,
gates with a maximum on-time, the heartbeat watchdog). Its :attr:`~PtyTriggerDevice.port` is a
path that rtdecode opens like a serial port, so tests, benchmarks and a dry rehearsal run the
whole output path without hardware. It records when each command's first byte arrived and every
output edge, on the LSL clock.
"""

from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from dataclasses import dataclass

import pylsl

from rtdecode.stimulation.protocol import (
    COMMAND_SIZE,
    HOST_SYNC,
    STATUS_BAD_ARGUMENT,
    STATUS_BAD_CHECKSUM,
    STATUS_OK,
    STATUS_UNKNOWN,
    STATUS_WATCHDOG,
    Ack,
    Command,
    decode_command,
    encode_ack,
)

__all__ = ["PtyTriggerDevice", "Received", "Edge"]

N_CHANNELS = 8
DEFAULT_WATCHDOG_MS = 500


@dataclass(frozen=True)
class Received:
    """A command as the device read it."""

    command: Command
    first_byte_t: float  # LSL clock when its first byte was read
    status: int


@dataclass(frozen=True)
class Edge:
    """An output's level change."""

    channel: int
    level: bool
    t: float  # LSL clock


class PtyTriggerDevice:
    """The firmware's behaviour on the master side of a pseudo-terminal.

    Use as a context manager; :attr:`port` is the path to open. ``silent=True`` reads and
    executes commands but never acknowledges them (a device whose replies are lost).
    """

    def __init__(self, *, silent: bool = False) -> None:
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.silent = silent
        self.received: list[Received] = []
        self.edges: list[Edge] = []
        self.watchdog_fired = 0
        self.levels = [False] * N_CHANNELS
        self._watchdog_s = DEFAULT_WATCHDOG_MS * 1e-3
        self._last_frame: float | None = None  # the watchdog counts from the first valid frame
        self._fired = False  # once per silence
        self._events: list[tuple[float, int, bool]] = []  # (monotonic due, channel, level)
        self._max_on: dict[int, float] = {}
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="pty-trigger-device", daemon=True)
        self._thread.start()

    def __enter__(self) -> PtyTriggerDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def pulses(self, channel: int = 0) -> list[tuple[float, float]]:
        """(on, off) LSL times of each completed high period of a channel."""
        out, on = [], None
        for e in self.edges:
            if e.channel != channel:
                continue
            if e.level and on is None:
                on = e.t
            elif not e.level and on is not None:
                out.append((on, e.t))
                on = None
        return out

    # The device ------------------------------------------------------------------------------
    def _now_us(self) -> int:
        return int((time.monotonic() - self._t0) * 1e6)

    def _set(self, channel: int, level: bool, due: float | None = None) -> None:
        """Set an output; a timed edge is recorded at its due time (monotonic), as the
        firmware's clock would place it, not when this thread got round to it."""
        if self.levels[channel] != level:
            self.levels[channel] = level
            t = pylsl.local_clock()
            if due is not None:
                t -= max(0.0, time.monotonic() - due)
            self.edges.append(Edge(channel, level, t))

    def _ack(self, seq: int, status: int) -> None:
        if not self.silent:
            try:
                os.write(self._master, encode_ack(Ack(seq, status, self._now_us())))
            except OSError:
                pass

    def _execute(self, cmd: Command) -> int:
        now = time.monotonic()
        kind = cmd.command
        if kind in (b"P", b"H", b"L") and cmd.channel >= N_CHANNELS:
            return STATUS_BAD_ARGUMENT
        if kind == b"P":
            if cmd.pulses < 1 or (cmd.pulses > 1 and cmd.period_ms < cmd.duration_ms):
                return STATUS_BAD_ARGUMENT
            # a new command replaces what the channel was doing; a train starts from low
            self._cancel(cmd.channel)
            self._set(cmd.channel, False)
            for k in range(cmd.pulses):
                on = now + (cmd.delay_ms + k * cmd.period_ms) * 1e-3
                self._events += [
                    (on, cmd.channel, True),
                    (on + cmd.duration_ms * 1e-3, cmd.channel, False),
                ]
        elif kind == b"H":
            self._cancel(cmd.channel)
            on = now + cmd.delay_ms * 1e-3
            self._events.append((on, cmd.channel, True))
            if cmd.duration_ms:
                self._max_on[cmd.channel] = on + cmd.duration_ms * 1e-3
        elif kind == b"L":
            self._cancel(cmd.channel)
            self._set(cmd.channel, False)
        elif kind == b"X":
            for ch in range(N_CHANNELS):
                self._cancel(ch)
                self._set(ch, False)
        elif kind == b"W":
            if cmd.duration_ms == 0:
                return STATUS_BAD_ARGUMENT
            self._watchdog_s = cmd.duration_ms * 1e-3
        elif kind != b"B":
            return STATUS_UNKNOWN
        return STATUS_OK

    def _cancel(self, channel: int) -> None:
        self._events = [e for e in self._events if e[1] != channel]
        self._max_on.pop(channel, None)

    def _run(self) -> None:
        buf = bytearray()
        first_t: float | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            due = [e[0] for e in self._events] + list(self._max_on.values())
            wait = min([0.05, *(d - now for d in due)])
            try:
                ready, _, _ = select.select([self._master], [], [], max(0.0, wait))
            except (OSError, ValueError):
                return
            if ready:
                try:
                    data = os.read(self._master, 256)
                except OSError:
                    data = b""  # the host closed its side; keep the outputs' timing
                if data:
                    if not buf:
                        first_t = pylsl.local_clock()
                    buf += data
            while buf:
                start = buf.find(HOST_SYNC)
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
                if len(buf) < COMMAND_SIZE:
                    break
                frame = bytes(buf[:COMMAND_SIZE])
                cmd = decode_command(frame)
                if cmd is None:
                    self._ack(frame[2], STATUS_BAD_CHECKSUM)
                    del buf[:1]
                    continue
                del buf[:COMMAND_SIZE]
                self._last_frame = time.monotonic()
                self._fired = False
                status = self._execute(cmd)
                self.received.append(Received(cmd, first_t or pylsl.local_clock(), status))
                first_t = pylsl.local_clock() if buf else None
                self._ack(cmd.seq, status)
            now = time.monotonic()
            for event in sorted(e for e in self._events if e[0] <= now):
                self._events.remove(event)
                self._set(event[1], event[2], due=event[0])
            for ch, until in list(self._max_on.items()):
                if until <= now:
                    del self._max_on[ch]
                    self._set(ch, False, due=until)
            silent = self._last_frame is not None and now - self._last_frame > self._watchdog_s
            if silent and not self._fired:
                self._fired = True
                for ch in range(N_CHANNELS):
                    self._cancel(ch)
                    self._set(ch, False)
                self.watchdog_fired += 1
                self._ack(0, STATUS_WATCHDOG)
