# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A window's band powers in compiled steps (``rtdecode.features.streaming.streaming.BandPower``): the head's
taper before its FFT, the head's terms after it, and the end of the window (on the live latency
path).

With the window's spectrum split into its head ``H`` (prepared before the window ends) and its
tail ``T`` (the DFT of the last ``m`` tapered samples ``t``), each band's power is

    sum_k s_k |H_k + T_k|^2 = sum_k s_k |H_k|^2 + 2 t . G_b + t' Q_b t

where ``G_b`` (per channel) comes from ``H`` and is prepared with it, and ``Q_b`` (m x m) is a
constant of the window. What is left when the last sample arrives is therefore ``m^2`` multiply-
adds per band and channel (``Q_b t`` for all bands: one BLAS product) instead of a DFT of the
tail over every used bin, and all of it runs here in one call without the GIL: the
numpy version (a dozen small array operations, caches cold after the decode thread's sleep) took
~0.5 ms per 64-channel window live. The head's steps are compiled for the same reason.
"""
from libc.math cimport log10
from scipy.linalg.cython_blas cimport sgemm


def finish_bands(const float[:, :] tail, const float[::1] tail_taper,
                 const float[:, ::1] quad_all, float[:, ::1] tapered, float[:, ::1] tail_quad,
                 const float[:, :, ::1] cross, const float[:, ::1] head,
                 const Py_ssize_t[::1] ratio_num, const Py_ssize_t[::1] ratio_den,
                 bint relative, double floor, float[:, ::1] out):
    """Log band powers and log ratios of every channel, from the window's tail and head terms.

    Parameters
    ----------
    tail : (n_channels, m) float32
        The window's last ``m`` samples (rows contiguous, any row stride).
    tail_taper : (m,) float32
        The taper's last ``m`` values.
    quad_all : (m, n_bands * m) float32
        Every band's ``Q_b`` side by side.
    tapered, tail_quad : (n_channels, m) and (n_channels, n_bands * m) float32
        Scratch: the tapered tail ``t``, and ``Q_b t`` for each band (one BLAS product).
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
    cdef int gm, gn, gk, lda, ldb, ldc
    cdef float one = 1.0, zero = 0.0
    cdef char no = b'N'
    cdef const float* src
    if n_bands > 64:
        raise ValueError("finish_bands: at most 64 bands")
    if (tail.shape[0] != n_ch or tail.shape[1] != m or tail_taper.shape[0] != m
            or quad_all.shape[0] != m or quad_all.shape[1] != n_bands * m
            or tapered.shape[0] != n_ch or tapered.shape[1] != m
            or tail_quad.shape[0] != n_ch or tail_quad.shape[1] != n_bands * m
            or head.shape[0] != n_ch or head.shape[1] != n_bands or ratio_den.shape[0] != n_ratios
            or out.shape[0] != n_ch or out.shape[1] != n_bands + n_ratios
            or (m > 0 and n_ch > 0 and tail.strides[1] != 4)):
        raise ValueError("finish_bands: inconsistent shapes")
    for r in range(n_ratios):
        if not (0 <= ratio_num[r] < n_bands and 0 <= ratio_den[r] < n_bands):
            raise ValueError("finish_bands: ratio band index out of range")
    if n_ch == 0 or m == 0 or n_bands == 0:
        raise ValueError("finish_bands: no channel, tail sample or band")
    with nogil:
        for c in range(n_ch):
            src = &tail[c, 0]
            for j in range(m):
                tapered[c, j] = src[j] * tail_taper[j]
        # tail_quad = tapered @ quad_all (row-major); in BLAS's column-major terms
        # tail_quad^T = quad_all^T . tapered^T
        gm, gn, gk = <int>(n_bands * m), <int>n_ch, <int>m
        lda, ldb, ldc = <int>(n_bands * m), <int>m, <int>(n_bands * m)
        sgemm(&no, &no, &gm, &gn, &gk, &one, <float*>&quad_all[0, 0], &lda,
              &tapered[0, 0], &ldb, &zero, &tail_quad[0, 0], &ldc)
    with nogil:
        for c in range(n_ch):
            total = 0.0
            for b in range(n_bands):
                acc = head[c, b]
                for j in range(m):
                    acc = acc + <double>tapered[c, j] * (<double>cross[b, c, j]
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


def taper_head(const float[:, :] head, const float[::1] taper, float[:, ::1] out):
    """``out[:, :n] = head * taper[:n]`` and ``out[:, n:] = 0``, ``n = head.shape[1]``: the
    window's head, tapered and zero-padded to the window, in one pass without the GIL.

    Parameters
    ----------
    head : (n_channels, n) float32
        Rows contiguous (a slice of the feature store), any row stride.
    taper : (>= n,) float32
    out : (n_channels, window) float32, window >= n
    """
    cdef Py_ssize_t n_ch = head.shape[0], n = head.shape[1], width = out.shape[1]
    cdef Py_ssize_t c, i
    cdef const float* src
    cdef const float* tp
    cdef float* dst
    if out.shape[0] != n_ch or n > width or taper.shape[0] < n or (n > 0 and head.strides[1] != 4):
        raise ValueError("taper_head: inconsistent shapes")
    if n_ch == 0 or width == 0:
        return
    with nogil:
        tp = &taper[0]
        for c in range(n_ch):
            # through plain pointers: the compiler vectorises the loop
            src = &head[c, 0]
            dst = &out[c, 0]
            for i in range(n):
                dst[i] = src[i] * tp[i]
            for i in range(n, width):
                dst[i] = 0.0


def head_terms(const float[:, ::1] spectrum, const double[::1] bin_scale,
               const Py_ssize_t[:, ::1] band_bins, const float[:, ::1] bases,
               float[:, :, ::1] cross, float[:, ::1] head):
    """The head's terms of every band (see the module's notes), from its spectrum.

    Parameters
    ----------
    spectrum : (n_channels, 2 * n_bins) float32
        The head's one-sided spectrum, complex viewed as float32 (re, im interleaved).
    bin_scale : (n_bins,) float64
        Each bin's weight in a band power (density scaling times bin width).
    band_bins : (n_bands, 2) intp
        Each band's bins ``[lo, hi)``.
    bases : (sum of 2 * (hi - lo), m) float32
        Each band's cross basis in turn: rows interleaved like the spectrum.
    cross : (n_bands, n_channels, m) float32
        Out: ``2 G_b`` per band (one BLAS product per band).
    head : (n_channels, n_bands) float32
        Out: the head's own band powers, ``sum_k s_k |H_k|^2`` (summed in double).
    """
    cdef Py_ssize_t n_ch = spectrum.shape[0], width = spectrum.shape[1]
    cdef Py_ssize_t n_bands = band_bins.shape[0], m = cross.shape[2]
    cdef Py_ssize_t b, c, k, lo, hi, row = 0
    cdef int gm, gn, gk, lda, ldb, ldc
    cdef float one = 1.0, zero = 0.0
    cdef double a0, a1, a2, a3
    cdef const float* spec_row
    cdef const double* sc
    cdef char no = b'N'
    if (cross.shape[0] != n_bands or cross.shape[1] != n_ch or head.shape[0] != n_ch
            or head.shape[1] != n_bands or bases.shape[1] != m
            or 2 * bin_scale.shape[0] > width or band_bins.shape[1] != 2):
        raise ValueError("head_terms: inconsistent shapes")
    for b in range(n_bands):
        lo, hi = band_bins[b, 0], band_bins[b, 1]
        if not (0 <= lo < hi <= bin_scale.shape[0]):
            raise ValueError("head_terms: band bins out of range")
        row += 2 * (hi - lo)
    if row != bases.shape[0]:
        raise ValueError("head_terms: the bases do not match the bands")
    if n_ch == 0:
        return
    row = 0
    with nogil:
        sc = &bin_scale[0]
        for b in range(n_bands):
            lo, hi = band_bins[b, 0], band_bins[b, 1]
            # cross[b] (n_ch x m, row-major) = spectrum[:, 2lo:2hi] @ bases[row:row + 2(hi-lo)]:
            # in BLAS's column-major terms, cross[b]^T = basis^T . spectrum[:, 2lo:2hi]^T
            gm, gn, gk = <int>m, <int>n_ch, <int>(2 * (hi - lo))
            lda, ldb, ldc = <int>m, <int>width, <int>m
            # (BLAS's prototype lacks const; it only reads these two)
            sgemm(&no, &no, &gm, &gn, &gk, &one, <float*>&bases[row, 0], &lda,
                  <float*>&spectrum[0, 2 * lo], &ldb, &zero, &cross[b, 0, 0], &ldc)
            row += 2 * (hi - lo)
            for c in range(n_ch):
                spec_row = &spectrum[c, 0]
                # four partial sums: one chain of dependent adds would wait on each add's latency
                a0 = a1 = a2 = a3 = 0.0
                k = lo
                while k + 4 <= hi:
                    a0 = a0 + sc[k] * <double>(spec_row[2 * k] * spec_row[2 * k]
                                               + spec_row[2 * k + 1] * spec_row[2 * k + 1])
                    a1 = a1 + sc[k + 1] * <double>(spec_row[2 * k + 2] * spec_row[2 * k + 2]
                                                   + spec_row[2 * k + 3] * spec_row[2 * k + 3])
                    a2 = a2 + sc[k + 2] * <double>(spec_row[2 * k + 4] * spec_row[2 * k + 4]
                                                   + spec_row[2 * k + 5] * spec_row[2 * k + 5])
                    a3 = a3 + sc[k + 3] * <double>(spec_row[2 * k + 6] * spec_row[2 * k + 6]
                                                   + spec_row[2 * k + 7] * spec_row[2 * k + 7])
                    k += 4
                while k < hi:
                    a0 = a0 + sc[k] * <double>(spec_row[2 * k] * spec_row[2 * k]
                                               + spec_row[2 * k + 1] * spec_row[2 * k + 1])
                    k += 1
                head[c, b] = <float>((a0 + a1) + (a2 + a3))


def finish_piece(const float[:, :] tail, const float[:, ::1] tail_map, const float[:, ::1] head,
                 const Py_ssize_t[::1] owner, float[:, ::1] spectrum, float[:, ::1] out):
    """One piece's fast-band powers (``rtdecode.features.streaming.PiecePower``), from its tail
    and the share its head gave, in one call without the GIL.

    Parameters
    ----------
    tail : (n_channels, m) float32
        The piece's last ``m`` samples (rows contiguous, any row stride).
    tail_map : (m, rows) float32
        The tail samples' share of the piece's linear map (trend removal, taper, scaled DFT).
    head : (n_channels, rows) float32
        The head samples' share, computed when they arrived.
    owner : (rows // 2,) intp
        The band (column of ``out``) of each bin; rows are every bin's cosine, then every
        bin's sine.
    spectrum : (n_channels, rows) float32
        Scratch: the piece's scaled spectrum.
    out : (n_channels, n_bands) float32
        The piece's band powers: each band's squared spectrum summed (in double).
    """
    cdef Py_ssize_t n_ch = tail.shape[0], m = tail.shape[1], rows = tail_map.shape[1]
    cdef Py_ssize_t n_bins = owner.shape[0], n_bands = out.shape[1]
    cdef Py_ssize_t c, k, b
    cdef int gm, gn, gk, lda, ldb, ldc
    cdef float one = 1.0, zero = 0.0
    cdef char no = b'N'
    cdef double re, im
    cdef double power[64]
    if (tail_map.shape[0] != m or head.shape[0] != n_ch or head.shape[1] != rows
            or rows != 2 * n_bins or spectrum.shape[0] != n_ch or spectrum.shape[1] != rows
            or out.shape[0] != n_ch
            or (m > 0 and n_ch > 0 and (tail.strides[1] != 4 or tail.strides[0] < 4 * m))):
        raise ValueError("finish_piece: inconsistent shapes")
    if n_bands > 64:
        raise ValueError("finish_piece: at most 64 bands")
    for k in range(n_bins):
        if not (0 <= owner[k] < n_bands):
            raise ValueError("finish_piece: bin owner out of range")
    if n_ch == 0 or m == 0 or n_bins == 0:
        raise ValueError("finish_piece: no channel, tail sample or bin")
    with nogil:
        # spectrum = tail @ tail_map; column-major: spectrum^T = tail_map^T . tail^T
        gm, gn, gk = <int>rows, <int>n_ch, <int>m
        lda, ldb, ldc = <int>rows, <int>(tail.strides[0] // 4), <int>rows
        sgemm(&no, &no, &gm, &gn, &gk, &one, <float*>&tail_map[0, 0], &lda,
              <float*>&tail[0, 0], &ldb, &zero, &spectrum[0, 0], &ldc)
        for c in range(n_ch):
            for b in range(n_bands):
                power[b] = 0.0
            for k in range(n_bins):
                re = <double>spectrum[c, k] + head[c, k]
                im = <double>spectrum[c, n_bins + k] + head[c, n_bins + k]
                power[owner[k]] += re * re + im * im
            for b in range(n_bands):
                out[c, b] = <float>power[b]


def join_row(const float[:, ::1] long_logs, const float[:, :, ::1] pieces,
             const Py_ssize_t[::1] long_bands, const Py_ssize_t[::1] short_bands,
             const Py_ssize_t[::1] ratio_num, const Py_ssize_t[::1] ratio_den,
             bint relative, double floor, float[:, ::1] out, unsigned char[::1] nonfinite):
    """A window's row from its whole-window bands' logs and its pieces' powers, with the
    normalisation and the ratios (as ``finish_bands`` makes them), and which channels are not
    all finite; one call without the GIL.

    Parameters
    ----------
    long_logs : (n_channels, n_long) float32
        log10 power of the bands taken from the whole window.
    pieces : (n_pieces, n_channels, n_short) float32
        Each piece's fast-band powers: a band's window power is their mean.
    long_bands, short_bands : (n_long,) and (n_short,) intp
        Each column's band in the row (the config's band order).
    ratio_num, ratio_den : (n_ratios,) intp
        Band indices of each ratio's numerator and denominator.
    relative : bool
        Divide each channel's band powers by their sum before the log.
    floor : float
        Mean powers below this are taken as this; NaN stays NaN.
    out : (n_channels, n_bands + n_ratios) float32
    nonfinite : (n_channels,) uint8
        Out: 1 where a channel's row holds a NaN or an infinity.

    Returns
    -------
    int
        The number of channels flagged in ``nonfinite``.
    """
    cdef Py_ssize_t n_pieces = pieces.shape[0], n_ch = pieces.shape[1]
    cdef Py_ssize_t n_short = pieces.shape[2], n_long = long_logs.shape[1]
    cdef Py_ssize_t n_bands = n_long + n_short, n_ratios = ratio_num.shape[0]
    cdef Py_ssize_t c, b, p, r, n_bad = 0
    cdef double acc, total, shift
    cdef float value
    cdef unsigned char bad
    if (long_logs.shape[0] != n_ch or long_bands.shape[0] != n_long
            or short_bands.shape[0] != n_short or ratio_den.shape[0] != n_ratios
            or out.shape[0] != n_ch or out.shape[1] != n_bands + n_ratios
            or nonfinite.shape[0] != n_ch or n_pieces == 0):
        raise ValueError("join_row: inconsistent shapes")
    for b in range(n_long):
        if not 0 <= long_bands[b] < n_bands:
            raise ValueError("join_row: band index out of range")
    for b in range(n_short):
        if not 0 <= short_bands[b] < n_bands:
            raise ValueError("join_row: band index out of range")
    for r in range(n_ratios):
        if not (0 <= ratio_num[r] < n_bands and 0 <= ratio_den[r] < n_bands):
            raise ValueError("join_row: ratio band index out of range")
    with nogil:
        for c in range(n_ch):
            for b in range(n_long):
                out[c, long_bands[b]] = long_logs[c, b]
            for b in range(n_short):
                acc = 0.0
                for p in range(n_pieces):
                    acc = acc + pieces[p, c, b]
                acc = acc / n_pieces
                if acc < floor:  # false for NaN, which stays NaN
                    acc = floor
                out[c, short_bands[b]] = <float>log10(acc)
            if relative:
                total = 0.0
                for b in range(n_bands):
                    total = total + 10.0 ** (<double>out[c, b])
                shift = log10(total)
                for b in range(n_bands):
                    out[c, b] = <float>(out[c, b] - shift)
            for r in range(n_ratios):
                out[c, n_bands + r] = out[c, ratio_num[r]] - out[c, ratio_den[r]]
            bad = 0
            for b in range(n_bands + n_ratios):
                value = out[c, b]
                if value != value or value - value != 0.0:  # NaN, or an infinity
                    bad = 1
            nonfinite[c] = bad
            n_bad += bad
    return n_bad
