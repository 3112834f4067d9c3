# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Stateful, causal FIR decimator for multichannel float32 streams.

Output sample ``m`` is ``sum_k h[k] * x[m*D + D-1 - k]``, with ``x[i] = x[0]`` for ``i < 0`` (the
history starts filled with the first sample): it covers the input up to and including sample
``m*D + D-1``, so after ``k*D`` input samples exactly ``k`` outputs exist. Only the outputs
are computed (polyphase cost: ``len(h)`` multiply-adds per output per channel), and each one is
computed the same way whatever the chunking of the input, so a stream fed in random chunk sizes
gives bit-identical output to the whole recording fed at once.
"""
import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy, memmove, memset

from rtdecode.common.memory import resident_zeros

cnp.import_array()

cdef enum:
    LANES = 16  # channels summed together in registers (4 SSE / 2 AVX / 1 AVX-512 vectors)


cdef inline void _fir_block(const float* h, Py_ssize_t L, const float* x0, Py_ssize_t S,
                            Py_ssize_t width, Py_ssize_t first, Py_ssize_t step,
                            Py_ssize_t n_out, float* out, Py_ssize_t out_i,
                            Py_ssize_t out_c) noexcept nogil:
    """Outputs of ``width`` (<= LANES) adjacent channels: for output ``i``,
    ``out[i*out_i + c*out_c] = sum_k h[k] * x0[(first + i*step - k)*S + c]``, summed in k
    order (``S``: the input's row stride; the output strides give time-major or channel-major
    output).

    One block of channels at a time, all its outputs before the next block: the block's
    history (one cache line per sample at 16 channels) stays in cache while every output
    reuses it, and the partial sums stay in registers across the taps. The order of the
    additions per channel is a plain loop's, so the result does not depend on the blocking
    (bit-identical to ~3x slower code that loaded and stored every partial sum per tap).
    A last block narrower than LANES reads the rows' zero padding and keeps ``width`` sums.
    """
    cdef Py_ssize_t i, k, cc
    cdef float a[LANES]
    cdef float last[LANES]
    cdef const float* row
    cdef float hk
    for i in range(n_out):
        row = x0 + (first + i * step) * S
        for cc in range(LANES):
            a[cc] = 0.0
        for k in range(L):
            hk = h[k]
            for cc in range(LANES):
                a[cc] += hk * row[cc]
            row -= S
        if width == LANES:
            for cc in range(LANES):
                out[i * out_i + cc * out_c] = a[cc]
        else:
            # through a copy: indexing ``a`` by a variable would keep it out of registers
            for cc in range(LANES):
                last[cc] = a[cc]
            for cc in range(width):
                out[i * out_i + cc * out_c] = last[cc]


cdef class FirDecimator:
    """Decimate by ``factor`` with FIR ``taps`` (anti-aliasing designed by the caller).

    Parameters
    ----------
    taps : ndarray, shape (n_taps,), float32
    factor : int
        Decimation factor D >= 1.
    n_channels : int
    block : int
        Input samples processed per internal step (bounds the scratch memory).
    """
    cdef float[::1] _h
    cdef Py_ssize_t _n_taps, _factor, _n_ch, _block
    cdef float[:, ::1] _buf      # (n_taps - 1 + block, stride): history, then new input
    cdef Py_ssize_t _stride
    cdef long long _n_in

    def __cinit__(self, taps, Py_ssize_t factor, Py_ssize_t n_channels, Py_ssize_t block=4096):
        h = np.ascontiguousarray(taps, dtype=np.float32)
        if h.ndim != 1 or h.shape[0] < 1:
            raise ValueError(f"taps must be a non-empty 1-D array, got shape {h.shape}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self._h = h
        self._n_taps = h.shape[0]
        self._factor = factor
        self._n_ch = n_channels
        self._block = block
        # Rows hold whole blocks of LANES channels (zeros past the last channel) plus one cache
        # line: at 1024 channels unpadded rows are 4 KiB apart, and a column walk through the
        # taps hits one cache set only (measured 2x slower).
        self._stride = -(-n_channels // LANES) * LANES + 16
        self._buf = resident_zeros((self._n_taps - 1 + block, self._stride), np.float32)
        self._n_in = 0

    @property
    def factor(self) -> int:
        return self._factor

    @property
    def n_channels(self) -> int:
        return self._n_ch

    @property
    def n_in(self) -> int:
        """Input samples consumed so far."""
        return self._n_in

    def n_out_for(self, Py_ssize_t n) -> int:
        """Outputs that the next ``n`` input samples will produce."""
        return (self._n_in + n) // self._factor - self._n_in // self._factor

    def reset(self) -> None:
        """Forget the history (as after a stream gap); the next input's first sample fills it."""
        self._buf[:, :] = 0
        self._n_in = 0

    def process(self, const float[:, ::1] x, float[:, ::1] out) -> int:
        """Consume ``x`` and write the outputs it completes into ``out``.

        Parameters
        ----------
        x : ndarray, shape (n, n_channels), float32, C-contiguous
        out : ndarray, shape (>= n_out_for(n), n_channels), float32, C-contiguous

        Returns
        -------
        int
            Number of output rows written.
        """
        need = self._check(x)
        if out.shape[0] < need or (need > 0 and out.shape[1] != self._n_ch):
            raise ValueError(
                f"out must be at least ({need}, {self._n_ch}), got ({out.shape[0]}, {out.shape[1]})"
            )
        if x.shape[0] > 0:
            with nogil:
                self._process(&x[0, 0], x.shape[0], &out[0, 0] if need > 0 else NULL,
                              self._n_ch, 1)
        return need

    def process_columns(self, const float[:, ::1] x, float[:, ::1] out, Py_ssize_t column) -> int:
        """As ``process``, but write the outputs channel-major: ``out[c, column + i]``.

        Parameters
        ----------
        x : ndarray, shape (n, n_channels), float32, C-contiguous
        out : ndarray, shape (n_channels, >= column + n_out_for(n)), float32, C-contiguous
        column : int
            Where the first output goes in each row.

        Returns
        -------
        int
            Number of outputs written per channel.
        """
        need = self._check(x)
        if out.shape[0] != self._n_ch or column < 0 or out.shape[1] < column + need:
            raise ValueError(
                f"out must be ({self._n_ch}, >= {column + need}), got "
                f"({out.shape[0]}, {out.shape[1]})"
            )
        if x.shape[0] > 0:
            with nogil:
                self._process(&x[0, 0], x.shape[0], &out[0, column] if need > 0 else NULL,
                              1, out.shape[1])
        return need

    cdef Py_ssize_t _check(self, const float[:, ::1] x) except -1:
        if x.shape[1] != self._n_ch:
            raise ValueError(f"input has {x.shape[1]} channels, decimator expects {self._n_ch}")
        return self.n_out_for(x.shape[0])

    cdef void _process(self, const float* x, Py_ssize_t n, float* out, Py_ssize_t out_i,
                       Py_ssize_t out_c) noexcept nogil:
        cdef Py_ssize_t L = self._n_taps, D = self._factor, C = self._n_ch
        cdef Py_ssize_t hist = L - 1
        cdef Py_ssize_t done = 0, m, i, c, first_out, n_new
        cdef Py_ssize_t n_out = 0
        cdef Py_ssize_t S = self._stride
        cdef float* buf = &self._buf[0, 0]
        cdef const float* h = &self._h[0]
        if self._n_in == 0 and n > 0:
            # Start (or restart after a gap) as if the first sample had always been there: a
            # zero history would put a step from 0 to the signal's DC offset into the first
            # windows (broadband power, and a peak-to-peak the channel checks call an artefact).
            for i in range(hist):
                memcpy(buf + i * S, x, C * sizeof(float))
        while done < n:
            m = min(self._block, n - done)
            for i in range(m):
                memcpy(buf + (hist + i) * S, x + (done + i) * C, C * sizeof(float))
            # Local index (in buf) of the first input sample that completes an output: absolute
            # input index i with (i + 1) % D == 0.
            first_out = (D - 1 - (self._n_in % D)) % D
            n_new = (m - first_out + D - 1) // D if first_out < m else 0
            c = 0
            while c < C and n_new > 0:
                _fir_block(h, L, buf + hist * S + c, S, min(<Py_ssize_t>LANES, C - c), first_out,
                           D, n_new, out + n_out * out_i + c * out_c, out_i, out_c)
                c += LANES
            n_out += n_new
            # Keep the newest L-1 samples as history for the next step.
            memmove(buf, buf + m * S, hist * S * sizeof(float))
            self._n_in += m
            done += m
