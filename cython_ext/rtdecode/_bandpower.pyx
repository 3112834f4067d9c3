# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The end of a window's band powers, on the live latency path (``rtdecode.features.BandPower``).

With the window's spectrum split into its head ``H`` (prepared before the window ends) and its
tail ``T`` (the DFT of the last ``m`` tapered samples ``t``), each band's power is

    sum_k s_k |H_k + T_k|^2 = sum_k s_k |H_k|^2 + 2 t . G_b + t' Q_b t

where ``G_b`` (per channel) comes from ``H`` and is prepared with it, and ``Q_b`` (m x m) is a
constant of the window. What is left when the last sample arrives is therefore ``m^2`` multiply-
adds per band and channel (``Q_b t`` for all bands: one matrix product, by the caller) instead of
a DFT of the tail over every used bin, and the rest runs here in one pass without the GIL: the
numpy version (a dozen small array operations, caches cold after the decode thread's sleep) took
~0.5 ms per 64-channel window live.
"""
from libc.math cimport log10


def finish_bands(const float[:, ::1] tail, const float[:, ::1] tail_quad,
                 const float[:, :, ::1] cross, const float[:, ::1] head,
                 const Py_ssize_t[::1] ratio_num, const Py_ssize_t[::1] ratio_den,
                 bint relative, double floor, float[:, ::1] out):
    """Log band powers and log ratios of every channel, from the window's tail and head terms.

    Parameters
    ----------
    tail : (n_channels, m) float32
        The tapered tail ``t``.
    tail_quad : (n_channels, n_bands * m) float32
        ``Q_b t`` for each band (one matrix product over all bands, done by the caller).
    cross : (n_bands, n_channels, m) float32
        ``2 G_b``: twice the head's cross term with each tail sample.
    head : (n_channels, n_bands) float32
        The head's own band powers.
    ratio_num, ratio_den : (n_ratios,) intp
        Band indices of each ratio's numerator and denominator.
    relative : bool
        Divide each channel's band powers by their sum before the log.
    floor : float
        Powers below this are taken as this (a flat channel keeps a finite log); NaN stays NaN.
    out : (n_channels, n_bands + n_ratios) float32
    """
    cdef Py_ssize_t n_bands = cross.shape[0], n_ch = cross.shape[1], m = cross.shape[2]
    cdef Py_ssize_t n_ratios = ratio_num.shape[0]
    cdef Py_ssize_t c, b, j, r
    cdef double acc, total
    cdef double power[64]
    if n_bands > 64:
        raise ValueError("finish_bands: at most 64 bands")
    if (tail.shape[0] != n_ch or tail.shape[1] != m or tail_quad.shape[0] != n_ch
            or tail_quad.shape[1] != n_bands * m or head.shape[0] != n_ch
            or head.shape[1] != n_bands or ratio_den.shape[0] != n_ratios
            or out.shape[0] != n_ch or out.shape[1] != n_bands + n_ratios):
        raise ValueError("finish_bands: inconsistent shapes")
    for r in range(n_ratios):
        if not (0 <= ratio_num[r] < n_bands and 0 <= ratio_den[r] < n_bands):
            raise ValueError("finish_bands: ratio band index out of range")
    with nogil:
        for c in range(n_ch):
            total = 0.0
            for b in range(n_bands):
                acc = head[c, b]
                for j in range(m):
                    acc = acc + <double>tail[c, j] * (<double>cross[b, c, j]
                                                      + <double>tail_quad[c, b * m + j])
                if acc < floor:  # false for NaN, which stays NaN
                    acc = floor
                power[b] = acc
                total = total + acc
            for b in range(n_bands):
                if relative:
                    out[c, b] = <float>log10(power[b] / total)
                else:
                    out[c, b] = <float>log10(power[b])
            for r in range(n_ratios):
                out[c, n_bands + r] = out[c, ratio_num[r]] - out[c, ratio_den[r]]
