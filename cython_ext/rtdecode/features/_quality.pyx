# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Per-bin statistics of analysis-rate samples for the channel checks (``rtdecode.features.streaming.quality``).

One pass per bin and channel without the GIL: the numpy version of the same statistics took
~0.2 ms per 64 x 200 bin (a dozen small temporaries), on the decode thread's latency path.
"""
from libc.math cimport isfinite, log10
from libc.stdlib cimport free, malloc


def summarise_bins(const float[:, ::1] store, Py_ssize_t col0, Py_ssize_t n_bins,
                   Py_ssize_t bin_size, Py_ssize_t min_run, long long first_bin,
                   float[:, ::1] lo,
                   float[:, ::1] hi, unsigned char[:, ::1] nonfinite, int[:, ::1] repeats,
                   int[:, ::1] at_max, int[:, ::1] at_min):
    """Summarise ``n_bins`` bins of ``bin_size`` columns of ``store`` from column ``col0``.

    ``store`` is channel-major (n_channels, n_columns). Bin ``b`` is the stream's bin
    ``first_bin + b`` and goes to row ``(first_bin + b) % n_slots`` of the outputs
    (n_slots, n_channels), which hold the window's bins round-robin: its minimum and maximum, whether it holds a NaN or an
    infinity, how many samples equal the previous one within runs of at least ``min_run``
    identical samples (shorter runs are quantisation of a slow signal, not a stuck channel), and
    how many of those equal the bin's maximum / minimum.
    """
    cdef Py_ssize_t n_ch = store.shape[0], c, b, i, s
    cdef Py_ssize_t n_slots = lo.shape[0]
    cdef const float* p
    cdef float v, mn, mx
    cdef int rep, amax, amin, run
    cdef unsigned char bad
    if col0 < 0 or col0 + n_bins * bin_size > store.shape[1] or bin_size < 1:
        raise ValueError("bins outside the store")
    if first_bin < 0 or n_slots < 1 or n_bins < 0:
        raise ValueError("first_bin must be >= 0 and the outputs hold at least one bin")
    if (lo.shape[1] != n_ch or hi.shape[0] != n_slots or hi.shape[1] != n_ch
            or nonfinite.shape[0] != n_slots or nonfinite.shape[1] != n_ch
            or repeats.shape[0] != n_slots or repeats.shape[1] != n_ch
            or at_max.shape[0] != n_slots or at_max.shape[1] != n_ch
            or at_min.shape[0] != n_slots or at_min.shape[1] != n_ch):
        raise ValueError("the outputs must all be (n_slots, n_channels)")
    with nogil:
        for c in range(n_ch):
            for b in range(n_bins):
                p = &store[c, col0 + b * bin_size]
                s = <Py_ssize_t>((first_bin + b) % n_slots)
                mn = p[0]
                mx = p[0]
                bad = not isfinite(p[0])
                for i in range(1, bin_size):
                    v = p[i]
                    if not isfinite(v):
                        bad = 1
                    if v < mn:
                        mn = v
                    if v > mx:
                        mx = v
                rep = 0
                amax = 0
                amin = 0
                run = 0
                for i in range(1, bin_size + 1):
                    if i < bin_size and p[i] == p[i - 1]:
                        run += 1
                        continue
                    if run > 0 and run + 1 >= min_run:
                        v = p[i - 1]
                        rep += run
                        if v == mx:
                            amax += run
                        if v == mn:
                            amin += run
                    run = 0
                lo[s, c] = mn
                hi[s, c] = mx
                nonfinite[s, c] = bad
                repeats[s, c] = rep
                at_max[s, c] = amax
                at_min[s, c] = amin


def all_fine(const float[:, ::1] lo, const float[:, ::1] hi,
             const unsigned char[:, ::1] nonfinite, const int[:, ::1] repeats,
             double stuck_limit, double max_deviation, double min_deviation, double alpha,
             double[::1] log_typical, long long[::1] n_typical):
    """The checks' common case in one pass: is every channel of the window fine?

    Fine means: no NaN or infinity, fewer than ``stuck_limit`` repeated samples, a peak-to-peak
    above zero and, where the channel's typical log10 peak-to-peak is known, a log10
    peak-to-peak within ``[typical + min_deviation, typical + max_deviation]``. If all are fine,
    each channel's typical value moves towards this window's (rate ``max(alpha, 1 / (n + 1))``)
    and True is returned; otherwise nothing changes and False is returned (the caller then
    works out which channel fails and why). The inputs are the per-bin summaries of
    ``summarise_bins``, (n_bins, n_channels).
    """
    cdef Py_ssize_t n_bins = lo.shape[0], n_ch = lo.shape[1], b, c
    cdef double mn, mx, rate, dev
    cdef long long rep
    cdef bint fine = True
    cdef double* log_ptp
    if (hi.shape[0] != n_bins or hi.shape[1] != n_ch or nonfinite.shape[0] != n_bins
            or nonfinite.shape[1] != n_ch or repeats.shape[0] != n_bins
            or repeats.shape[1] != n_ch or log_typical.shape[0] != n_ch
            or n_typical.shape[0] != n_ch or n_bins < 1):
        raise ValueError("all_fine: inconsistent shapes")
    log_ptp = <double*>malloc(n_ch * sizeof(double))
    if log_ptp == NULL:
        raise MemoryError()
    with nogil:
        for c in range(n_ch):
            mn = lo[0, c]
            mx = hi[0, c]
            rep = 0
            for b in range(n_bins):
                if nonfinite[b, c]:
                    fine = False
                if lo[b, c] < mn:
                    mn = lo[b, c]
                if hi[b, c] > mx:
                    mx = hi[b, c]
                rep = rep + repeats[b, c]
            if not fine or rep >= stuck_limit or not (mx - mn > 0.0):
                fine = False
                break
            log_ptp[c] = log10(mx - mn)
            if n_typical[c] > 0:
                dev = log_ptp[c] - log_typical[c]
                if not (dev <= max_deviation and dev >= min_deviation):
                    fine = False
                    break
        if fine:
            for c in range(n_ch):
                rate = 1.0 / <double>(n_typical[c] + 1)
                if rate < alpha:
                    rate = alpha
                log_typical[c] = log_typical[c] + rate * (log_ptp[c] - log_typical[c])
                n_typical[c] = n_typical[c] + 1
    free(log_ptp)
    return fine
