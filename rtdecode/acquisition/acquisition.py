"""The acquisition thread: an LSL inlet drained into the ring buffer.

The thread runs a Cython loop that calls liblsl without the GIL (``_acquire``): it wakes as soon
as a sample arrives, drains what is queued, converts the stream's format to float32 once and
writes the ring buffer. Gaps, stalls, resets and jitter in the timestamps are classified there
(reference: :mod:`rtdecode.acquisition.timing`); the clock offset is refreshed on a side thread.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
import time

import psutil
import pylsl

from rtdecode.acquisition._acquire import COUNTER_NAMES, AcquisitionLoop
from rtdecode.acquisition._ringbuffer import RingBuffer
from rtdecode.acquisition.inlet import (
    _FORMAT_NAMES,
    _SUPPORTED_FORMATS,
    StreamMismatchError,
    channel_labels,
)

__all__ = ["LslAcquisition", "lazy_nap_s", "find_data_socket"]

logger = logging.getLogger("rtdecode")

_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTER_NAMES)}


def lazy_nap_s(n_channels: int, fs_hz: float) -> float:
    """The acquisition's longest nap while no urgent sample is near: 24 ms, or shorter for
    streams that bring more than 256 KiB in it (float32), down to 8 ms.

    Longer naps mean fewer wakes of the acquisition thread (64 ch x 32 kHz: ~90 a second
    instead of ~160 at 8 ms, 0.003 cores instead of 0.0045). From a few hundred channels each
    nap's data costs more than the wake, and delivering it in bigger lumps delays the decode
    thread (1024 ch at 24 ms: latency p99 11-13 ms instead of ~8.5 ms at 8 ms).
    """
    return max(0.008, min(0.024, 256 * 1024 / (4.0 * n_channels * fs_hz)))


def _function_address(func: ctypes._CFuncPtr) -> int:
    """C address of a ctypes foreign function (the pointer its buffer holds)."""
    return ctypes.c_void_p.from_address(ctypes.addressof(func)).value


def _recovery_key(info: pylsl.StreamInfo) -> tuple:
    """What liblsl matches when it reconnects a lost inlet: the source_id (or, without one, the
    name, type and host), and the channel count."""
    who = (info.source_id(),) if info.source_id() else (info.name(), info.type(), info.hostname())
    return who + (info.channel_count(),)


def _check_buffer_size(info: pylsl.StreamInfo, buffer_s: float) -> None:
    """Refuse a stream whose announced rate and channel count would need more memory than this
    machine has free (a broken or hostile header), with the figure."""
    capacity = max(int(buffer_s * info.nominal_srate()), 1024)
    need = capacity * (info.channel_count() * 4 + 8)  # float32 samples, float64 timestamps
    free = psutil.virtual_memory().available
    if need > free // 2:
        raise StreamMismatchError(
            f"stream {info.name()!r} (host {info.hostname()!r}) announces "
            f"{info.channel_count()} channels at {info.nominal_srate():g} Hz: its {buffer_s:g} s "
            f"buffer would need {need / 2**30:.3g} GiB, and this machine has "
            f"{free / 2**30:.3g} GiB free. A rig sends up to ~1024 channels at ~30 kHz: check "
            "the source's settings, or pin the right stream (--source-id, --host)"
        )


def _data_ports(info: pylsl.StreamInfo) -> set[int]:
    """The TCP ports the source serves its data on (from the stream's full header)."""
    header = info.desc().parent()
    values = (header.child_value(tag).strip() for tag in ("v4data_port", "v6data_port"))
    return {int(v) for v in values if v.isdigit() and int(v) > 0}


def find_data_socket(ports: set[int]) -> tuple[int, int] | None:
    """This process's one TCP connection to a remote port in ``ports``: ``(fd, inode)``.

    How the acquisition finds the socket liblsl receives the stream on (Linux: from
    ``/proc``); ``None`` when there is not exactly one such connection (another inlet to the
    same port, or no ``/proc``): the acquisition then leaves the socket as liblsl set it.
    """
    try:
        inodes = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[int(target[8:-1])] = int(fd)
        found = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as fh:
                    lines = fh.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                inode = int(fields[9])
                # state 01 = ESTABLISHED
                if fields[3] == "01" and remote_port in ports and inode in inodes:
                    found.append((inodes[inode], inode))
    except (OSError, ValueError, IndexError):
        return None
    return found[0] if len(found) == 1 else None


class LslAcquisition:
    """Acquire one LSL stream into a ring buffer on a dedicated thread.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A resolved stream.
    buffer_s : float
        Seconds held by the ring buffer.
    gap_tolerance_s : float
        Timestamp steps longer than one period plus this are counted as gaps.
    max_buflen_s : int
        Seconds liblsl may queue if the acquisition thread is held up.

    Notes
    -----
    Timestamps are mapped to this machine's LSL clock with the offset from
    ``StreamInlet.time_correction``, refreshed every ``clock_sync_s`` on a side thread (liblsl's
    in-pull ``proc_clocksync`` can hold a pull for a whole clock exchange: added latency), and
    kept as sent otherwise (no dejitter), so a decision's timestamp is the time the source
    stamped on the window's last sample. Use as a context manager or call
    ``start``/``close``; ``close`` is idempotent.
    """

    def __init__(
        self,
        info: pylsl.StreamInfo,
        *,
        buffer_s: float = 8.0,
        gap_tolerance_s: float = 0.05,
        max_buflen_s: int = 30,
        clock_sync_s: float = 5.0,
    ) -> None:
        fmt = info.channel_format()
        if fmt not in _SUPPORTED_FORMATS:
            raise StreamMismatchError(
                f"stream {info.name()!r} sends {_FORMAT_NAMES.get(fmt, fmt)} samples; rtdecode "
                "decodes float32, double64, int32 or int16 streams"
            )
        self.fs_hz = float(info.nominal_srate())
        if not (self.fs_hz > 0 and math.isfinite(self.fs_hz)):
            raise StreamMismatchError(
                f"stream {info.name()!r} has an irregular rate (nominal 0 Hz); rtdecode needs a "
                "stream with a fixed nominal sampling rate"
            )
        self.n_channels = int(info.channel_count())
        _check_buffer_size(info, buffer_s)  # before liblsl or the ring allocate anything
        self.name = info.name()
        self.source_id = info.source_id() or f"{info.name()}@{info.hostname()}"
        self.host = info.hostname()
        self._info = info  # the stream as first resolved: a reconnection must match it
        self._uids = {info.uid()}
        self._next_source_check = 0.0
        self._inlet = pylsl.StreamInlet(
            info,
            max_buflen=max_buflen_s,
            recover=True,
            processing_flags=0,
        )
        self._clock_sync_s = clock_sync_s
        self._stop_event = threading.Event()
        self._sync_now = threading.Event()  # a discontinuity asks for a clock sync at once
        self._sync_asked = False
        # The full header (channel labels, units) comes with the inlet's info.
        full_info = self._inlet.info(timeout=5.0)
        self.channel_labels = channel_labels(full_info)
        self._data_ports = _data_ports(full_info)
        self.data_socket: tuple[int, int] | None = None  # (fd, inode) once started
        capacity = max(int(buffer_s * self.fs_hz), 1024)
        self.ring = RingBuffer(capacity, self.n_channels)
        max_chunk = max(64, min(capacity // 4, int(0.05 * self.fs_hz)))
        self._loop = AcquisitionLoop(
            self.ring,
            self._inlet.obj.value,
            _function_address(self._inlet.do_pull_sample),
            _function_address(self._inlet.do_pull_chunk),
            fmt,
            self.n_channels,
            self.fs_hz,
            gap_tolerance_s,
            max_chunk,
            self._inlet,
            # the LSL clock, to predict when the samples the decoder waits for arrive
            clock_addr=_function_address(pylsl.lib.lib.lsl_local_clock),
            lazy_s=lazy_nap_s(self.n_channels, self.fs_hz),
        )
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------
    @property
    def counters(self) -> dict[str, float]:
        """Acquisition counters: samples, chunks, gaps, missing_samples, nonmonotonic, ..."""
        return dict(zip(COUNTER_NAMES, self._loop.counters.tolist()))

    def counter(self, name: str) -> float:
        """One acquisition counter (a name of ``counters``); cheap enough for every wake of
        the decode thread, where building ``counters`` took ~6 % of that thread's time."""
        return self._loop.counter(_COUNTER_INDEX[name])

    def start(self) -> LslAcquisition:
        """Open the stream and start the acquisition thread."""
        if self._thread is not None:
            raise RuntimeError("acquisition already started")
        self._inlet.open_stream(timeout=10.0)
        self._sync_clock(timeout_s=2.0)
        self._find_socket()
        self._thread = threading.Thread(target=self._run, name="rtdecode-acquire", daemon=True)
        self._thread.start()
        self._clock_thread = threading.Thread(
            target=self._clock_loop, name="rtdecode-clock", daemon=True
        )
        self._clock_thread.start()
        return self

    def _sync_clock(self, timeout_s: float) -> None:
        try:
            offset = self._inlet.time_correction(timeout=timeout_s)
        except Exception as exc:  # a missed exchange keeps the last offset; it is retried
            logger.warning("LSL clock correction for %r failed: %s", self.name, exc)
            return
        self._loop.set_time_offset(offset)

    def _find_socket(self) -> None:
        """Give the loop liblsl's data socket, so it can batch the receiver's wake-ups
        (``AcquisitionLoop.set_receive_socket``; measured at 64 ch x 32 kHz in 1 ms chunks:
        liblsl's receiver thread 0.018 -> 0.009 cores)."""
        sock = find_data_socket(self._data_ports)
        if sock is not None:
            self._loop.set_receive_socket(*sock)
        self.data_socket = sock

    def unmark_socket(self) -> None:
        """Leave liblsl's data socket as liblsl sets it (no low-water mark); call before
        ``start``. For comparing the cost with and without the mark
        (``benchmarks/bench_threads.py``)."""
        if self._thread is not None:
            raise RuntimeError("unmark_socket must be called before start")
        self._data_ports = set()  # start (and a reconnection) then find no socket to mark

    def _clock_loop(self) -> None:
        while not self._stop_event.is_set():
            self._sync_now.wait(self._clock_sync_s)
            self._sync_now.clear()
            if self._stop_event.is_set():
                break
            self._sync_clock(timeout_s=2.0)
            if self._loop.receive_socket_lost or self._sync_asked:
                # liblsl may have reconnected (a restarted source: a gap or a timestamp reset
                # asked for this sync): is it still the stream the model was checked against?
                # (at most every 5 s; one asked for sooner waits for the next sync)
                self._sync_asked = not self._check_reconnected()
            if self._loop.receive_socket_lost:
                # liblsl reconnected (the source restarted): its new socket, if there is one
                self._find_socket()

    def _check_reconnected(self) -> bool:
        """Stop with :class:`StreamMismatchError` if the stream liblsl reconnects to (same
        source_id, or name, type and host without one) has another rate or host than the one
        first resolved. liblsl itself insists only on the channel count and format. False when
        too soon after the last check."""
        now = time.monotonic()
        if now < self._next_source_check:
            return False
        self._next_source_check = now + 5.0
        first = self._info
        candidates = [
            s
            for s in pylsl.resolve_streams(wait_time=1.0)
            if _recovery_key(s) == _recovery_key(first)
        ]
        new = [s for s in candidates if s.uid() not in self._uids]
        if not new or any(s.uid() == first.uid() for s in candidates):
            return True  # the first stream still answers (or none does): nothing to check
        changed = [
            f"{what} {a!r} -> {b!r}"
            for s in new
            for what, a, b in (
                ("rate (Hz)", first.nominal_srate(), s.nominal_srate()),
                ("host", first.hostname(), s.hostname()),
            )
            if a != b
        ]
        if not changed:
            self._uids.update(s.uid() for s in new)  # a restarted source, same settings
            logger.info("%r restarted (same rate and host): decoding goes on", self.name)
            return True
        self.error = StreamMismatchError(
            f"liblsl reconnected {self.name!r} (source_id {first.source_id()!r}) to a stream "
            f"that is not the one rtdecode started with: {'; '.join(changed)}. Decoding it "
            "would give wrong decisions: rtdecode stopped. Check the source's settings, and "
            "restart rtdecode (with --host to pin the machine)"
        )
        logger.error("%s", self.error)
        self._loop.stop()
        return True

    def request_clock_sync(self) -> None:
        """Refresh the clock offset now rather than at the next period (after a gap or a
        timestamp reset, e.g. a source machine that restarted: its clock started over), and
        check that the source is still the same stream."""
        self._sync_asked = True
        self._sync_now.set()

    @property
    def arrival_lag_s(self) -> float:
        """The smallest recent delay from a sample's timestamp to its arrival (seconds; NaN
        until known): the acquisition predicts from it when an urgent sample is due."""
        return float(self._loop.arrival_lag_s)

    @property
    def clock_offset_s(self) -> float:
        """Offset currently added to the source's timestamps (seconds)."""
        return float(self._loop.time_offset)

    def _run(self) -> None:
        try:
            code = self._loop.run(0.05)
            if code != 0:
                raise RuntimeError(
                    f"liblsl error {code} while pulling from {self.name!r}; acquisition stopped"
                )
        except BaseException as exc:  # surfaced to the decode thread, never swallowed
            logger.error("acquisition thread failed: %s", exc)
            self.error = exc
        finally:
            self.ring.close()

    def set_urgent_at(self, sample_count: int, then: int = 0) -> None:
        """Tell the acquisition loop which sample's arrival is latency-critical, and which one
        after it (see ``AcquisitionLoop.set_urgent_at``); 0 makes every sample urgent."""
        self._loop.set_urgent_at(sample_count, then)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread and close the inlet. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_event.set()
        self._sync_now.set()
        self._loop.stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.ring.close()
        try:
            self._inlet.close_stream()
        except Exception:  # closing a lost stream may raise; nothing left to do
            pass

    def __enter__(self) -> LslAcquisition:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
