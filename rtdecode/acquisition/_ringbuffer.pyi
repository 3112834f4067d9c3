"""Stubs of the compiled ring buffer (``cython_ext/rtdecode/acquisition/_ringbuffer.pyx``)."""

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

_Samples: TypeAlias = NDArray[np.float32]
_Stamps: TypeAlias = NDArray[np.float64]

class OverrunError(RuntimeError):
    """The requested samples were overwritten by the writer before (or while) they were read."""

class RingBuffer:
    """Single-writer ring buffer of float32 samples and float64 timestamps, lock-free."""

    def __init__(self, capacity: int, n_channels: int) -> None: ...
    @property
    def capacity(self) -> int:
        """Samples held."""
    @property
    def n_channels(self) -> int:
        """Values per sample."""
    @property
    def written(self) -> int:
        """Absolute number of samples published so far."""
    @property
    def overruns(self) -> int:
        """Reads that failed because the writer had overwritten the requested samples."""
    def write(self, chunk: _Samples, timestamps: _Stamps) -> None:
        """Append a chunk (n_samples x n_channels, C-contiguous) and its timestamps."""
    def read(self, end: int, out: _Samples, ts_out: _Stamps | None = None) -> None:
        """Copy the ``out.shape[0]`` samples ending at absolute index ``end`` into ``out``."""
    def segments(self, start: int, end: int) -> tuple[tuple[_Samples, _Stamps], ...]:
        """The samples ``[start, end)`` in place: one or two read-only ``(samples, stamps)``."""
    def check(self, start: int) -> None:
        """Raise ``OverrunError`` if the writer has overwritten sample ``start``."""
    def timestamp(self, index: int) -> float:
        """The timestamp of absolute sample ``index``."""
    def read_latest(self, out: _Samples, ts_out: _Stamps | None = None) -> int:
        """Copy the newest ``out.shape[0]`` samples; return the absolute end index."""
    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Block until ``written >= count``, the buffer closes or the timeout passes."""
    def close(self) -> None:
        """Wake all waiters; later waits return at once. Idempotent."""
    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
