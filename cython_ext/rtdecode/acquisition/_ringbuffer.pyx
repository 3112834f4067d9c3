# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Preallocated single-writer / single-reader ring buffer of float32 samples.

The writer (the acquisition thread) copies chunks in without the GIL and without allocating;
the reader (the decode thread, the monitor) copies "the n samples ending at absolute sample
index k" into an array it owns. Samples are addressed by an absolute counter that never wraps
(int64), so a reader can ask for exactly the window a decision needs.

Consistency without locks, as in a seqlock: before copying, the writer *claims* the range it is
about to overwrite; after copying it *publishes* it. A reader copies, then checks that the writer
has not claimed any slot of the range it copied: if it has, the read raises ``OverrunError`` and
is counted. Torn data is never returned.
"""
import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy

from rtdecode.common.memory import resident_zeros

cnp.import_array()

cdef extern from "rt_sync.h" nogil:
    long long rt_load(const long long *p)
    void rt_store(long long *p, long long v)
    void rt_fence_acquire()
    void rt_fence_release()
    int rt_load_int(const int *p)
    void rt_store_int(int *p, int v)
    void rt_sync_init(rt_sync_t *s)
    void rt_sync_destroy(rt_sync_t *s)
    void rt_sync_notify(rt_sync_t *s)
    void rt_sync_notify_if(rt_sync_t *s, const long long *counter)
    int rt_sync_wait(rt_sync_t *s, const long long *counter, long long target,
                     const int *closed, double timeout_s)


class OverrunError(RuntimeError):
    """The requested samples were overwritten by the writer before (or while) they were read."""


cdef class RingBuffer:
    """Ring buffer of ``capacity`` samples x ``n_channels`` float32 values plus a float64
    timestamp per sample.

    Parameters
    ----------
    capacity : int
        Samples held (the reader must keep up to within this many samples).
    n_channels : int
        Values per sample.

    Notes
    -----
    Exactly one thread may write. Readers may run in other threads; reads and waits release the
    GIL. ``written`` is the absolute count of samples published so far.
    """

    def __cinit__(self, Py_ssize_t capacity, Py_ssize_t n_channels):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 sample, got {capacity}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        # resident from here: faulted in page by page, the first pass of the writer stalled
        # (see rtdecode.common.memory)
        self._data_array = resident_zeros((capacity, n_channels), np.float32)
        self._ts_array = resident_zeros(capacity, np.float64)
        self._data = self._data_array
        self._ts = self._ts_array
        self._capacity = capacity
        self._n_channels = n_channels
        self._written = 0
        self._claimed = 0
        self._overruns = 0
        self._closed = 0
        rt_sync_init(&self._sync)

    def __dealloc__(self):
        rt_sync_destroy(&self._sync)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def written(self) -> int:
        """Absolute number of samples published so far."""
        return rt_load(&self._written)

    @property
    def overruns(self) -> int:
        """Reads that failed because the writer had overwritten the requested samples."""
        return self._overruns

    cdef long long written_nogil(self) noexcept nogil:
        return rt_load(&self._written)

    cdef void write_ptr(self, const float* src, const double* ts, Py_ssize_t n) noexcept nogil:
        """Append ``n`` samples (C-contiguous, n x n_channels) with their timestamps."""
        cdef long long start = self._written
        cdef Py_ssize_t cap = self._capacity, nch = self._n_channels
        cdef Py_ssize_t skip = 0, pos, first
        if n <= 0:
            return
        if n > cap:
            # Only the newest `cap` samples can be held; the rest are counted as written.
            skip = n - cap
        rt_store(&self._claimed, start + n)
        rt_fence_release()
        pos = <Py_ssize_t>((start + skip) % cap)
        first = min(n - skip, cap - pos)
        memcpy(&self._data[pos, 0], src + skip * nch, first * nch * sizeof(float))
        memcpy(&self._ts[pos], ts + skip, first * sizeof(double))
        if first < n - skip:
            memcpy(&self._data[0, 0], src + (skip + first) * nch,
                   (n - skip - first) * nch * sizeof(float))
            memcpy(&self._ts[0], ts + skip + first, (n - skip - first) * sizeof(double))
        rt_store(&self._written, start + n)
        rt_sync_notify_if(&self._sync, &self._written)

    def write(self, const float[:, ::1] chunk, const double[::1] timestamps) -> None:
        """Append a chunk.

        Parameters
        ----------
        chunk : ndarray, shape (n_samples, n_channels), float32, C-contiguous
        timestamps : ndarray, shape (n_samples,), float64
        """
        if chunk.shape[1] != self._n_channels:
            raise ValueError(
                f"chunk has {chunk.shape[1]} channels, ring buffer holds {self._n_channels}"
            )
        if timestamps.shape[0] != chunk.shape[0]:
            raise ValueError(
                f"{timestamps.shape[0]} timestamps for {chunk.shape[0]} samples"
            )
        cdef Py_ssize_t n = chunk.shape[0]
        if n == 0:
            return
        with nogil:
            self.write_ptr(&chunk[0, 0], &timestamps[0], n)

    def read(self, long long end, float[:, ::1] out, double[::1] ts_out=None) -> None:
        """Copy the ``out.shape[0]`` samples ending at absolute index ``end`` (exclusive).

        Parameters
        ----------
        end : int
            Absolute sample count at the end of the range; must be <= ``written``.
        out : ndarray, shape (n, n_channels), float32, C-contiguous
            Destination, owned by the caller.
        ts_out : ndarray, shape (n,), float64, optional
            Destination for the timestamps.

        Raises
        ------
        OverrunError
            If any requested sample was overwritten before or during the copy.
        ValueError
            If the range is not yet written or does not fit the buffer.
        """
        cdef Py_ssize_t n = out.shape[0]
        cdef Py_ssize_t cap = self._capacity, nch = self._n_channels
        cdef long long start = end - n
        cdef long long written, claimed
        cdef Py_ssize_t pos, first
        cdef bint want_ts = ts_out is not None
        if out.shape[1] != nch:
            raise ValueError(f"out has {out.shape[1]} channels, ring buffer holds {nch}")
        if want_ts and ts_out.shape[0] != n:
            raise ValueError(f"ts_out holds {ts_out.shape[0]} timestamps, out holds {n} samples")
        if n > cap:
            raise ValueError(f"cannot read {n} samples from a ring buffer of {cap}")
        if start < 0:
            raise ValueError(f"range [{start}, {end}) starts before the first sample")
        written = rt_load(&self._written)
        if end > written:
            raise ValueError(f"range ends at sample {end}, only {written} written so far")
        if n == 0:
            return
        with nogil:
            pos = <Py_ssize_t>(start % cap)
            first = min(n, cap - pos)
            memcpy(&out[0, 0], &self._data[pos, 0], first * nch * sizeof(float))
            if want_ts:
                memcpy(&ts_out[0], &self._ts[pos], first * sizeof(double))
            if first < n:
                memcpy(&out[first, 0], &self._data[0, 0], (n - first) * nch * sizeof(float))
                if want_ts:
                    memcpy(&ts_out[first], &self._ts[0], (n - first) * sizeof(double))
            rt_fence_acquire()
            claimed = rt_load(&self._claimed)
        if start < claimed - cap:
            self._overruns += 1
            raise OverrunError(
                f"samples [{start}, {end}) were overwritten while reading (writer at {claimed}, "
                f"capacity {cap}): the reader fell more than {cap} samples behind"
            )

    def segments(self, long long start, long long end) -> tuple:
        """The samples ``[start, end)`` in place, without a copy: one ``(samples, timestamps)``
        pair of read-only views, or two when the range wraps round the buffer's end.

        For a reader that consumes the samples once (the decode thread decimates them): it
        saves the copy ``read`` makes. The writer may overwrite the views' memory once it laps
        them, so the reader calls ``check(start)`` after using them and before trusting any
        result (as ``read`` does after its copy).

        Raises
        ------
        OverrunError
            If samples of the range are overwritten already.
        ValueError
            If the range is not yet written or does not fit the buffer.
        """
        cdef Py_ssize_t cap = self._capacity
        cdef long long n = end - start
        if n < 0 or n > cap:
            raise ValueError(f"range [{start}, {end}) is not 0 to {cap} samples long")
        if start < 0:
            raise ValueError(f"range [{start}, {end}) starts before the first sample")
        if end > rt_load(&self._written):
            raise ValueError(f"range ends at sample {end}, only {self.written} written so far")
        self.check(start)
        cdef Py_ssize_t pos = <Py_ssize_t>(start % cap)
        cdef Py_ssize_t first = <Py_ssize_t>min(n, cap - pos)
        data, ts = self._data_array, self._ts_array
        parts = [(data[pos:pos + first], ts[pos:pos + first])]
        if first < n:
            parts.append((data[:n - first], ts[:n - first]))
        for samples, stamps in parts:
            samples.flags.writeable = False
            stamps.flags.writeable = False
        return tuple(parts)

    def check(self, long long start) -> None:
        """Raise ``OverrunError`` if the writer has overwritten sample ``start`` (or started
        to): samples from ``start`` on, as seen in ``segments``' views, are intact if not."""
        cdef long long claimed
        rt_fence_acquire()
        claimed = rt_load(&self._claimed)
        if start < claimed - self._capacity:
            self._overruns += 1
            raise OverrunError(
                f"samples from {start} on were overwritten while in use (writer at {claimed}, "
                f"capacity {self._capacity}): the reader fell more than {self._capacity} "
                f"samples behind"
            )

    def timestamp(self, long long index) -> float:
        """The timestamp of absolute sample ``index`` (written and not yet overwritten)."""
        if index < 0 or index >= rt_load(&self._written):
            raise ValueError(f"sample {index} is not written ({self.written} so far)")
        cdef double t = self._ts[index % self._capacity]
        self.check(index)
        return t

    def read_latest(self, float[:, ::1] out, double[::1] ts_out=None) -> int:
        """Copy the newest ``out.shape[0]`` samples; return the absolute end index."""
        cdef long long end = rt_load(&self._written)
        if end < out.shape[0]:
            raise ValueError(f"only {end} samples written, {out.shape[0]} requested")
        self.read(end, out, ts_out)
        return end

    def wait_for(self, long long count, double timeout_s) -> bool:
        """Block (without the GIL) until ``written >= count``, the buffer is closed, or
        ``timeout_s`` passes. Return True if the count was reached."""
        cdef int reached
        with nogil:
            reached = rt_sync_wait(&self._sync, &self._written, count, &self._closed, timeout_s)
        return bool(reached)

    def close(self) -> None:
        """Wake all waiters; later waits return at once. Idempotent."""
        rt_store_int(&self._closed, 1)
        rt_sync_notify(&self._sync)

    @property
    def closed(self) -> bool:
        return bool(rt_load_int(&self._closed))
