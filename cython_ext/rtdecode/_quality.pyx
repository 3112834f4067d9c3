# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Per-bin statistics of analysis-rate samples for the channel checks (``rtdecode.quality``).

One pass per bin and channel without the GIL: the numpy version of the same statistics took
~0.2 ms per 64 x 200 bin (a dozen small temporaries), on the decode thread's latency path.
"""
from libc.math cimport isfinite


def summarise_bins(const float[:, ::1] store, Py_ssize_t col0, Py_ssize_t n_bins,
                   Py_ssize_t bin_size, Py_ssize_t min_run, const long long[::1] slots,
                   float[:, ::1] lo,
                   float[:, ::1] hi, unsigned char[:, ::1] nonfinite, int[:, ::1] repeats,
                   int[:, ::1] at_max, int[:, ::1] at_min):
    """Summarise ``n_bins`` bins of ``bin_size`` columns of ``store`` from column ``col0``.

    ``store`` is channel-major (n_channels, n_columns). Bin ``b`` goes to row ``slots[b]`` of
    the outputs (n_slots, n_channels): its minimum and maximum, whether it holds a NaN or an
    infinity, how many samples equal the previous one within runs of at least ``min_run``
    identical samples (shorter runs are quantisation of a slow signal, not a stuck channel), and
    how many of those equal the bin's maximum / minimum.
    """
    cdef Py_ssize_t n_ch = store.shape[0], c, b, i, s
    cdef const float* p
    cdef float v, mn, mx
    cdef int rep, amax, amin, run
    cdef unsigned char bad
    if col0 < 0 or col0 + n_bins * bin_size > store.shape[1] or bin_size < 1:
        raise ValueError("bins outside the store")
    if slots.shape[0] < n_bins:
        raise ValueError("one slot per bin is needed")
    with nogil:
        for c in range(n_ch):
            for b in range(n_bins):
                p = &store[c, col0 + b * bin_size]
                s = slots[b]
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
