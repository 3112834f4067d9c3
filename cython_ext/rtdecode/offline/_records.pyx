# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Rigs' per-channel records, gathered into scaled samples x channels in one compiled pass.

Neuralynx writes one file per channel, in records of 512 samples between 20-byte headers (legacy
Open Ephys likewise, 1024 big-endian samples; Intan a field of 60 or 128 words per channel in
each data block); neo maps the files and returns a channel's samples as a copy
(``get_analogsignal_chunk``), which a reader then interleaves with the other channels' and
scales: three passes over the data, 9 ms per second of 64 ch x 32 kHz for Neuralynx. Here each
channel's records are read where neo mapped them and written once, scaled, into their column of
the output.
"""
import numpy as np
from libc.stdint cimport int16_t, uint16_t
from libc.stdlib cimport free, malloc

cdef enum:
    _GROUP = 16  # channels written together: 16 floats, one cache line of an output row

# raw words: native int16; uint16 offset by 32768 counts (read as the int16 they hold: Intan);
# big-endian int16 (legacy Open Ephys)
RAW_KINDS = ("int16", "offset_binary", "int16_be")


cdef inline float _word(const int16_t* src, Py_ssize_t i, int kind) noexcept nogil:
    """Word ``i`` as the count it holds (``kind``: the index in RAW_KINDS)."""
    cdef uint16_t w = <uint16_t>src[i]
    if kind == 1:
        return <float>(<int16_t>(w ^ 0x8000))
    if kind == 2:
        return <float>(<int16_t>(<uint16_t>((w >> 8) | (w << 8))))
    return <float>src[i]


cdef class ChannelRecords:
    """Each channel's records, checked once, read into scaled samples x channels.

    Parameters
    ----------
    records : list of ndarray, each (n_records, record_samples), int16 or uint16
        Channel ``j``'s records, rows contiguous (any row stride: the records' fields between
        them are skipped); sample ``i`` is ``records[j][i // record_samples, i % record_samples]``.
        All have the same ``record_samples``. Kept (referenced) while this exists.
    raw : {"int16", "offset_binary", "int16_be"}
        How to read the words (see ``RAW_KINDS``).
    """
    cdef list _records
    cdef const char** _bases
    cdef Py_ssize_t* _strides
    cdef Py_ssize_t _n_ch, _record_samples
    cdef long long _n_samples
    cdef int _kind

    def __cinit__(self, list records, str raw="int16"):
        self._bases = NULL
        self._strides = NULL
        if raw not in RAW_KINDS:
            raise ValueError(f"raw must be one of {RAW_KINDS}, got {raw!r}")
        if not records:
            raise ValueError("ChannelRecords: no channel")
        self._kind = RAW_KINDS.index(raw)
        self._records = list(records)
        self._n_ch = len(records)
        self._record_samples = -1
        self._n_samples = -1
        for rec in records:
            if (not isinstance(rec, np.ndarray) or rec.ndim != 2 or rec.itemsize != 2
                    or rec.dtype.kind not in "iu" or rec.strides[1] != 2 or rec.strides[0] <= 0):
                raise ValueError("ChannelRecords: each channel's records must be a 2-D int16 or "
                                 "uint16 array with contiguous rows")
            if self._record_samples == -1:
                self._record_samples = rec.shape[1]
            if rec.shape[1] != self._record_samples or self._record_samples == 0:
                raise ValueError("ChannelRecords: the channels' records differ in length")
            size = <long long>rec.shape[0] * self._record_samples
            self._n_samples = size if self._n_samples == -1 else min(self._n_samples, size)
        self._bases = <const char**>malloc(self._n_ch * sizeof(char*))
        self._strides = <Py_ssize_t*>malloc(self._n_ch * sizeof(Py_ssize_t))
        if self._bases == NULL or self._strides == NULL:
            raise MemoryError()
        for j, rec in enumerate(records):
            self._bases[j] = <const char*><size_t>rec.__array_interface__["data"][0]
            self._strides[j] = rec.strides[0]

    def __dealloc__(self):
        free(self._bases)
        free(self._strides)

    @property
    def n_channels(self) -> int:
        return self._n_ch

    @property
    def n_samples(self) -> int:
        """Samples every channel's records hold."""
        return self._n_samples

    def gather(self, const float[::1] gains, long long first, float[:, ::1] out):
        """``out[t, j] = gains[j] * sample[first + t]`` of channel ``j``, for every row of
        ``out`` (n, n_channels) float32."""
        cdef Py_ssize_t n = out.shape[0], n_ch = self._n_ch, record_samples = self._record_samples
        cdef Py_ssize_t j, j0, width, t, i, i2, k, run
        cdef long long p
        cdef const int16_t* srcs[_GROUP]
        cdef float g[_GROUP]
        cdef float* dst
        cdef int kind = self._kind
        if out.shape[1] != n_ch or gains.shape[0] != n_ch:
            raise ValueError(
                f"ChannelRecords.gather: {n_ch} channels, {gains.shape[0]} gains, out "
                f"({out.shape[0]}, {out.shape[1]})"
            )
        # (first + n could wrap: compared without the sum)
        if first < 0 or n > self._n_samples or first > self._n_samples - n:
            raise ValueError(
                f"samples {first}..{first + n} are outside the records' 0..{self._n_samples}"
            )
        if n == 0:
            return
        with nogil:
            # one stretch within a record at a time (a record's rows of the output, 128 KiB at
            # 64 channels, stay in cache), sixteen channels at a time: each output row gets a
            # whole cache line at once
            t = 0
            while t < n:
                p = first + t
                k = <Py_ssize_t>(p // record_samples)
                i = <Py_ssize_t>(p % record_samples)
                run = min(record_samples - i, n - t)
                j0 = 0
                while j0 < n_ch:
                    width = min(<Py_ssize_t>_GROUP, n_ch - j0)
                    for j in range(width):
                        srcs[j] = <const int16_t*>(self._bases[j0 + j] + k * self._strides[j0 + j]) + i
                        g[j] = gains[j0 + j]
                    dst = &out[t, j0]
                    # whole groups spelled out for each kind (a constant width and kind:
                    # unrolled, no branch per word)
                    if width == _GROUP and kind == 0:
                        for i2 in range(run):
                            for j in range(_GROUP):
                                dst[i2 * n_ch + j] = g[j] * _word(srcs[j], i2, 0)
                    elif width == _GROUP and kind == 1:
                        for i2 in range(run):
                            for j in range(_GROUP):
                                dst[i2 * n_ch + j] = g[j] * _word(srcs[j], i2, 1)
                    elif width == _GROUP:
                        for i2 in range(run):
                            for j in range(_GROUP):
                                dst[i2 * n_ch + j] = g[j] * _word(srcs[j], i2, 2)
                    else:
                        for i2 in range(run):
                            for j in range(width):
                                dst[i2 * n_ch + j] = g[j] * _word(srcs[j], i2, kind)
                    j0 += _GROUP
                t += run
