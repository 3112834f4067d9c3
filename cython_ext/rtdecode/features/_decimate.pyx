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

cdef extern from "rt_fir.h" nogil:
    enum: RT_FIR_LANES
    ctypedef void (*rt_fir_block_t)(const float*, Py_ssize_t, const float*, Py_ssize_t,
                                    Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, float*,
                                    Py_ssize_t, Py_ssize_t) noexcept
    rt_fir_block_t rt_fir_select(const char** name)
    rt_fir_block_t rt_fir_portable()

cdef const char* _kernel_name
cdef rt_fir_block_t _fir_block = rt_fir_select(&_kernel_name)
#: The inner kernel this CPU runs: "avx2+fma" or "portable" (rt_fir.h).
KERNEL = _kernel_name.decode()
KERNELS = ("auto", "portable")


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
    kernel : {"auto", "portable"}
        The inner kernel: the best for this CPU (``KERNEL``), or the portable build (tests
        compare them; FMA rounds once per multiply-add, so they differ in the last bits).
    """
    cdef float[::1] _h
    cdef Py_ssize_t _n_taps, _factor, _n_ch, _block
    cdef float[:, ::1] _buf      # (n_taps - 1 + block, stride): history, then new input
    cdef Py_ssize_t _stride
    cdef long long _n_in
    cdef rt_fir_block_t _kernel
    cdef readonly str kernel

    def __cinit__(self, taps, Py_ssize_t factor, Py_ssize_t n_channels, Py_ssize_t block=4096,
                  str kernel="auto"):
        h = np.ascontiguousarray(taps, dtype=np.float32)
        if h.ndim != 1 or h.shape[0] < 1:
            raise ValueError(f"taps must be a non-empty 1-D array, got shape {h.shape}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self._kernel = _fir_block if kernel == "auto" else rt_fir_portable()
        self.kernel = KERNEL if kernel == "auto" else "portable"
        self._h = h
        self._n_taps = h.shape[0]
        self._factor = factor
        self._n_ch = n_channels
        self._block = block
        # Rows hold whole blocks of RT_FIR_LANES channels (zeros past the last channel) plus one cache
        # line: at 1024 channels unpadded rows are 4 KiB apart, and a column walk through the
        # taps hits one cache set only (measured 2x slower).
        self._stride = -(-n_channels // RT_FIR_LANES) * RT_FIR_LANES + 16
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
                self._kernel(h, L, buf + hist * S + c, S, min(<Py_ssize_t>RT_FIR_LANES, C - c),
                             first_out, D, n_new, out + n_out * out_i + c * out_c, out_i, out_c)
                c += RT_FIR_LANES
            n_out += n_new
            # Keep the newest L-1 samples as history for the next step.
            memmove(buf, buf + m * S, hist * S * sizeof(float))
            self._n_in += m
            done += m
