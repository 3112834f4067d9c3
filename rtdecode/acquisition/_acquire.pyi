"""Stubs of the compiled acquisition loop (``cython_ext/rtdecode/acquisition/_acquire.pyx``)."""

from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rtdecode.acquisition._ringbuffer import RingBuffer

FORMAT_FLOAT32: Final[int]
"""liblsl's channel format code of float32 streams."""
FORMAT_DOUBLE64: Final[int]
"""liblsl's channel format code of double64 streams."""
FORMAT_INT32: Final[int]
"""liblsl's channel format code of int32 streams."""
FORMAT_INT16: Final[int]
"""liblsl's channel format code of int16 streams."""
COUNTER_NAMES: Final[tuple[str, ...]]
"""The counters' names, in the order of ``AcquisitionLoop.counters``."""

class TimestampClassifier:
    """The acquisition's timing policy (gaps, source stalls, resets, jitter, clock jumps)."""

    def __init__(self, nominal_rate_hz: float, gap_tolerance_s: float = 0.05) -> None: ...
    @property
    def counters(self) -> NDArray[np.float64]:
        """Live view of the counters (in the order of ``COUNTER_NAMES``)."""
    def counter(self, index: int) -> float:
        """One counter (index into ``COUNTER_NAMES``)."""
    @property
    def pending(self) -> tuple[int, float, float, int] | None:
        """The jump awaiting its verdict: ``(at_sample, jump_s, back_s, judged_at)``, or None."""
    @property
    def catch_up_until(self) -> int:
        """The sample count until which a source may still be pushing the backlog of its last
        forward jump (the latest ``judged_at`` so far; 0: none): the loop does not nap before."""
    def push(self, timestamps: ArrayLike, offset_s: float = 0.0) -> NDArray[np.float64]:
        """Classify one chunk as the loop does; return its timestamps with the offset added."""
    def pause(self) -> None:
        """The stream paused: a jump awaiting its verdict is a gap."""

class AcquisitionLoop:
    """Pull from one LSL inlet into a ring buffer until stopped, without the GIL."""

    def __init__(
        self,
        ring: RingBuffer,
        inlet_handle: int,
        pull_sample_addr: int,
        pull_chunk_addr: int,
        channel_format: int,
        n_channels: int,
        nominal_rate_hz: float,
        gap_tolerance_s: float = 0.05,
        max_chunk: int = 4096,
        keepalive: object = None,
        lazy_s: float = 0.024,
        clock_addr: int = 0,
    ) -> None: ...
    def set_receive_socket(self, fd: int, inode: int) -> None:
        """The inlet's data socket, whose receive low-water mark the loop then sets."""
    @property
    def receive_socket_lost(self) -> bool:
        """Whether the socket given to ``set_receive_socket`` went (a reconnection)."""
    @property
    def counters(self) -> NDArray[np.float64]:
        """Live view of the counters (in the order of ``COUNTER_NAMES``)."""
    def counter(self, index: int) -> float:
        """One counter (index into ``COUNTER_NAMES``), without building an array view."""
    def set_time_offset(self, offset_s: float) -> None:
        """Clock offset added to every timestamp from now on (source clock -> local clock)."""
    @property
    def time_offset(self) -> float:
        """The clock offset in force (s)."""
    def set_urgent_at(self, count: int, then: int = 0) -> None:
        """The sample count whose arrival is latency-critical (and the one after it)."""
    @property
    def urgent(self) -> tuple[int, int]:
        """``(count, then)`` as last given to ``set_urgent_at``."""
    def stop(self) -> None:
        """Ask ``run`` to return after its current wait."""
    def run(self, wait_s: float = 0.05) -> int:
        """Acquire until stopped; return the liblsl error code that ended it (0 when stopped)."""
    @property
    def arrival_lag_s(self) -> float:
        """The smallest recent delay from a timestamp to its arrival (s; NaN until known)."""
