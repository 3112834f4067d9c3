"""Sliding-window band-power features: the one implementation used live and offline.

The input stream is decimated (anti-aliased, causal, stateful polyphase FIR in Cython) to an
analysis rate a few times the top band edge, then every hop a Hann-tapered FFT of the last
window gives the power in each band per channel (log10, in input units squared), plus log band
ratios. The fast bands (from ``short_windows_from_hz``, 80 Hz by default) take theirs from the
window's hop-long pieces instead, each transformed once as it ends, and the FFT of the whole
window runs on the samples decimated again for the slow bands alone. Each window's spectrum is
computed in two parts that add up: an FFT of all but its last
4 ms, run as soon as those samples have arrived (with the terms that tie it to the tail), and, when
the window ends, a small quadratic form per band and channel over the tail's samples (compiled:
only that is on the live latency path). Decisions are clocked by input samples: one feature row
each time the absolute sample count reaches a multiple of the hop (once a full window exists).

``StreamingFeatures.push`` is what the live decoder calls on every chunk it receives;
``extract_features`` is the offline path and calls the same ``push`` over the whole recording, so
live and offline features are identical for the same samples, whatever the chunking.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import scipy.fft
import scipy.signal
from threadpoolctl import threadpool_limits

from rtdecode.common.memory import resident_zeros
from rtdecode.config import FeatureConfig
from rtdecode.features._bandpower import (
    finish_bands,
    finish_piece,
    head_terms,
    join_row,
    taper_head,
)
from rtdecode.features._decimate import FirDecimator
from rtdecode.features.quality import NONFINITE, ChannelQuality, QualityConfig, WindowQuality

__all__ = [
    "design_decimation_filter",
    "BandPower",
    "FeatureRow",
    "StreamingFeatures",
    "extract_features",
    "feature_memory_bytes",
    "iter_features",
    "one_blas_thread",
]

# Power below this (units^2) is treated as this, so a flat channel gives a finite log.
_POWER_FLOOR = 1e-20
_KAISER_BETA = 8.0  # ~80 dB stopband
# Length of the window's tail left for the moment the window ends (seconds), per 170 channels
# (at least this): the head's FFT must be done before the window ends, and its time grows with
# the channel count, while the end's cost (m^2 per band and channel) stays under a millisecond.
_TAIL_S = 0.004
# ... and at least this: sources push blocks (10 ms is common); the head's point must come in an
# earlier block than the window's end, or the head's FFT lands on the latency path (64 ch x 32 kHz
# in 10 ms chunks: excess over the floor p50 1.3-2.0 ms with a 4 ms tail, 0.35-0.8 ms with 12 ms).
# Its cost: ~0.005 core live at 64 ch (the head's cross terms grow with the tail), none offline
# with BLAS on one thread. 36 ms (Open Ephys's 1024-sample blocks) gained 0.3 ms at 32 ms chunks
# for ~0.01 core more.
_TAIL_MIN_S = 0.012
_TAIL_CHANNELS = 170
# The second decimator's working block (samples): its input is already decimated, so a smaller
# block than the first one's does as well, in less memory.
_LONG_BLOCK = 1024


def design_decimation_filter(config: FeatureConfig) -> np.ndarray:
    """Anti-aliasing FIR taps (float32) for ``config.decimation``; ``[1.0]`` when no decimation.

    A Kaiser-windowed low-pass with cutoff at the analysis Nyquist frequency and
    ``decimation * fir_taps_per_phase`` taps. With the default 4x margin between the analysis
    rate and the top band edge, whatever aliases (above ``fs_a - top``) lands outside the bands.
    """
    if config.decimation == 1:
        return np.ones(1, dtype=np.float32)
    n_taps = config.decimation * config.fir_taps_per_phase
    taps = scipy.signal.firwin(
        n_taps, config.analysis_fs_hz / 2.0, window=("kaiser", _KAISER_BETA), fs=config.fs_hz
    )
    return taps.astype(np.float32)


class BandPower:
    """Band-power features of one analysis window.

    Parameters
    ----------
    config : FeatureConfig
    n_channels : int

    Notes
    -----
    All buffers are allocated here; ``compute`` allocates only scipy.fft's output.
    The power of band ``[lo, hi)`` is the one-sided periodogram (Hann taper, density scaling)
    summed over the FFT bins with ``lo <= f < hi``, times the bin width: a sinusoid of amplitude
    ``A`` inside the band gives ``A**2 / 2``.
    """

    def __init__(self, config: FeatureConfig, n_channels: int) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        self.config = config
        self.n_channels = n_channels
        n = config.window_samples_analysis
        fs_a = config.analysis_fs_hz
        self._taper = scipy.signal.get_window("hann", n, fftbins=True).astype(np.float32)
        freqs = scipy.fft.rfftfreq(n, d=1.0 / fs_a)
        # density scaling (x2 for the one-sided spectrum except DC/Nyquist) times bin width
        scale = np.full(
            freqs.size, 2.0 / (fs_a * float(np.sum(self._taper.astype(np.float64) ** 2)))
        )
        scale[0] /= 2.0
        if n % 2 == 0:
            scale[-1] /= 2.0
        scale *= fs_a / n
        matrix = np.zeros((freqs.size, len(config.bands)), dtype=np.float32)
        for j, band in enumerate(config.bands):
            in_band = (freqs >= band.lo_hz) & (freqs < band.hi_hz)
            if not in_band.any():
                raise ValueError(
                    f"band {band.name!r} ({band.lo_hz}-{band.hi_hz} Hz) holds no FFT bin with a "
                    f"{config.window_s} s window at {fs_a} Hz: widen the band or lengthen the window"
                )
            matrix[in_band, j] = scale[in_band]
        self._ratio_num, self._ratio_den = _ratio_indices(config)
        # The window's spectrum is computed in two parts that add up (the DFT is linear): the
        # head (all but the last ``tail_samples``, zero-padded) with an FFT *before* the window
        # ends, and the tail once its last sample arrives. Per band,
        #     sum_k s_k |H_k + T_k|^2 = sum_k s_k |H_k|^2 + 2 t.G_b + t'Q_b t
        # (t: the tapered tail; G_b from the head, prepared with it; Q_b constant), so the end of
        # a window costs m^2 multiply-adds per band and channel (``finish_bands``). Offline, the
        # same two calls run back to back: both paths give identical numbers.
        self.tail_samples = _tail_samples(config, n_channels)
        m = self.tail_samples
        t = np.arange(n - m, n, dtype=np.float64)
        band_bins = []
        cross_basis, quad = [], np.empty((len(config.bands), m, m), dtype=np.float64)
        for j in range(len(config.bands)):
            k = np.flatnonzero(matrix[:, j])
            lo, hi = int(k[0]), int(k[-1]) + 1
            band_bins.append((lo, hi))
            k = np.arange(lo, hi, dtype=np.float64)
            phase = 2.0 * np.pi * np.outer(k, t) / n
            cos, sin = np.cos(phase), -np.sin(phase)  # the tail's DFT basis, (bins, m)
            s = scale[lo:hi, None]
            # rows interleaved like the complex FFT output viewed as float32: re, im, re, ...
            basis = np.empty((2 * (hi - lo), m), dtype=np.float64)
            basis[0::2], basis[1::2] = 2.0 * s * cos, 2.0 * s * sin
            cross_basis.append(basis.astype(np.float32))
            q = (s * cos).T @ cos + (s * sin).T @ sin
            quad[j] = 0.5 * (q + q.T)  # exactly symmetric: Q_b t is computed as t Q_b
        self._band_bins = np.array(band_bins, dtype=np.intp).reshape(-1, 2)
        self._bases = np.ascontiguousarray(np.concatenate(cross_basis), dtype=np.float32)
        self._bin_scale = np.ascontiguousarray(scale)
        # all bands' Q_b side by side: Q_b t for every band in one matrix product
        self._quad_all = np.ascontiguousarray(np.concatenate(list(quad), axis=1), dtype=np.float32)
        self._tail_taper = np.ascontiguousarray(self._taper[n - m :])
        self._tapered = np.empty((n_channels, n), dtype=np.float32)
        self._head_bands = np.empty((n_channels, len(config.bands)), dtype=np.float32)
        self._cross = np.empty((len(config.bands), n_channels, m), dtype=np.float32)
        self._tapered_tail = np.empty((n_channels, m), dtype=np.float32)
        self._tail_quad = np.empty((n_channels, len(config.bands) * m), dtype=np.float32)
        self._relative = config.normalisation == "relative"
        # The window's FFT is the longest step; from ~500 channels splitting its rows over two
        # cores pays (1024 ch: 7.3 -> 3.4 ms), below it the threads cost more than they save.
        # Each row is transformed the same way whatever the split.
        self._fft_workers = min(os.cpu_count() or 1, max(1, n_channels // 256))
        self.n_features = n_channels * config.features_per_channel
        self._out_shape = (n_channels, config.features_per_channel)

    def compute(self, window: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Features of one window (``prepare`` on its head, then ``finish`` on its tail).

        Parameters
        ----------
        window : ndarray, shape (n_channels, window_samples_analysis), float32
            The analysis-rate samples of the window, oldest first; each channel's row contiguous
            (channel-major, so the taper multiplies contiguous memory: 0.07 ms instead of 0.25 ms
            for a strided transpose at 64 x 4000).
        out : ndarray, shape (n_features,), float32, optional

        Returns
        -------
        ndarray, shape (n_features,), float32
            Channel-major: for each channel its log10 band powers, then its log10 ratios.
        """
        head = window.shape[1] - self.tail_samples
        self.prepare(window[:, :head])
        return self.finish(window[:, head:], out)

    def prepare(self, head: np.ndarray) -> None:
        """Spectrum of the window's head: all its samples but the last ``tail_samples``.

        Parameters
        ----------
        head : ndarray, shape (n_channels, window_samples_analysis - tail_samples), float32
        """
        # Three calls, two of them compiled (taper, then every band's terms): as a dozen numpy
        # operations, on caches gone cold while the decode thread slept, the steps around the
        # FFT took longer than the FFT itself (64 channels: ~0.35 ms a window, live).
        taper_head(head, self._taper, self._tapered)
        spectrum = scipy.fft.rfft(
            self._tapered, axis=-1, overwrite_x=True, workers=self._fft_workers
        )
        # the complex spectrum viewed as float32 (re, im interleaved): no copies of its parts
        head_terms(
            spectrum.view(np.float32),
            self._bin_scale,
            self._band_bins,
            self._bases,
            self._cross,
            self._head_bands,
        )

    def finish(self, tail: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Features of the window whose head was last given to ``prepare``.

        Parameters
        ----------
        tail : ndarray, shape (n_channels, tail_samples), float32
            The window's last samples.
        out : ndarray, shape (n_features,), float32, optional

        Returns
        -------
        ndarray, shape (n_features,), float32
            As ``compute``.
        """
        if out is None:
            out = np.empty(self.n_features, dtype=np.float32)
        finish_bands(
            tail,
            self._tail_taper,
            self._quad_all,
            self._tapered_tail,
            self._tail_quad,
            self._cross,
            self._head_bands,
            self._ratio_num,
            self._ratio_den,
            self._relative,
            _POWER_FLOOR,
            out.reshape(self._out_shape),
        )
        return out


class PiecePower:
    """Power of the bands taken from a window's hop-long pieces (``short_windows_from_hz``).

    Parameters
    ----------
    config : FeatureConfig
    n_channels : int
    tail_samples : int
        Analysis samples of each piece left for the moment it ends (``finish``); the rest is
        transformed before (``prepare``), as :class:`BandPower` does with the window.

    Notes
    -----
    A piece's periodogram in the fast bands, its linear trend removed and a Hann taper applied,
    density-scaled as in :class:`BandPower` (a sinusoid of amplitude ``A`` inside a band gives
    ``A**2 / 2``), is computed once, when the piece ends; a window's band power is the mean
    over its pieces (``window_power``). Trend removal, taper and the DFT of the fast bands' bins
    are one linear map of the piece's samples, applied as a matrix product split at the tail:
    the head's share when it has arrived, the tail's (a few samples) at the end.
    """

    def __init__(self, config: FeatureConfig, n_channels: int, tail_samples: int) -> None:
        self.bands = config.short_window_bands
        if not self.bands:
            raise ValueError("the config computes no band from short pieces")
        n = config.hop_samples_analysis
        self.n_pieces = config.window_samples_analysis // n
        self.tail_samples = min(n, max(1, int(tail_samples)))
        taper = scipy.signal.get_window("hann", n, fftbins=True).astype(np.float32)
        freqs, bins, owner = _piece_bins(config)
        scale = np.full(freqs.size, 2.0 / (n * float(np.sum(taper.astype(np.float64) ** 2))))
        scale[0] /= 2.0
        if n % 2 == 0:
            scale[-1] /= 2.0
        k = np.array(bins, dtype=np.float64)
        t = np.arange(n, dtype=np.float64)
        root = np.sqrt(scale[bins])[:, None]
        # rows: each bin's scaled cos and -sin, times the taper (bins x samples) ...
        dft = np.concatenate(
            [
                root * np.cos(2 * np.pi * np.outer(k, t) / n),
                -root * np.sin(2 * np.pi * np.outer(k, t) / n),
            ]
        )
        dft *= taper.astype(np.float64)
        # ... after the piece's constant and linear trend are removed (an orthogonal
        # projection): a piece is a tenth of a slow wave, whose Hann sidelobes would otherwise
        # reach the fast bands at -64 dB
        ramp = t - (n - 1) / 2.0
        trend = np.stack([np.full(n, 1.0 / math.sqrt(n)), ramp / np.linalg.norm(ramp)], axis=1)
        linear_map = (dft - (dft @ trend) @ trend.T).T.astype(np.float32)  # samples x rows
        m = self.tail_samples
        self._head_map = np.ascontiguousarray(linear_map[: n - m])
        self._tail_map = np.ascontiguousarray(linear_map[n - m :])
        rows = 2 * len(bins)
        self._owner = np.array(owner, dtype=np.intp)
        self._head = np.zeros((n_channels, rows), dtype=np.float32)
        self._spectrum = np.empty((n_channels, rows), dtype=np.float32)
        self._pieces = np.zeros((self.n_pieces, n_channels, len(self.bands)), dtype=np.float32)
        self._next = 0

    def reset(self) -> None:
        """Forget the pieces (a new stream: a window is whole again ``n_pieces`` hops later)."""
        self._next = 0

    def prepare(self, head: np.ndarray) -> None:
        """The share of the newest piece's head, ``(n_channels, hop - tail_samples)`` float32."""
        if self._head_map.shape[0]:
            np.matmul(head, self._head_map, out=self._head)

    def finish(self, tail: np.ndarray) -> None:
        """The newest piece's band powers, from its tail ``(n_channels, tail_samples)``."""
        # one compiled call: it ends a window on the live path, where each numpy call would
        # run on caches gone cold while the decode thread slept
        finish_piece(
            tail,
            self._tail_map,
            self._head,
            self._owner,
            self._spectrum,
            self._pieces[self._next % self.n_pieces],
        )
        self._next += 1

    def add(self, piece: np.ndarray) -> None:
        """The band powers of a whole piece, ``(n_channels, hop)``: ``prepare`` then
        ``finish``, the same arithmetic whichever way a piece arrives."""
        head = piece.shape[1] - self.tail_samples
        self.prepare(piece[:, :head])
        self.finish(piece[:, head:])

    @property
    def powers(self) -> np.ndarray:
        """The last ``n_pieces`` pieces' band powers (input units squared), ``(n_pieces,
        n_channels, n_bands)`` float32, in no particular order: a window's power is their
        mean."""
        return self._pieces


def _ratio_indices(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each ratio's numerator and denominator band, as indices into ``config.bands``."""
    names = [b.name for b in config.bands]
    num = np.array([names.index(r.numerator) for r in config.ratios], dtype=np.intp)
    den = np.array([names.index(r.denominator) for r in config.ratios], dtype=np.intp)
    return num, den


def _piece_bins(config: FeatureConfig) -> tuple[np.ndarray, list[int], list[int]]:
    """A piece's bin frequencies, and the bins in the fast bands with the band (its position
    in ``short_window_bands``) each belongs to."""
    freqs = scipy.fft.rfftfreq(config.hop_samples_analysis, d=1.0 / config.analysis_fs_hz)
    bins, owner = [], []
    for j, band_index in enumerate(config.short_window_bands):
        band = config.bands[band_index]
        for k in np.flatnonzero((freqs >= band.lo_hz) & (freqs < band.hi_hz)):
            bins.append(int(k))
            owner.append(j)
    return freqs, bins, owner


def _tail_samples(config: FeatureConfig, n_channels: int) -> int:
    """Analysis samples of each window left for its end (see ``BandPower``)."""
    tail_s = max(_TAIL_MIN_S, _TAIL_S * n_channels / _TAIL_CHANNELS)
    n = config.window_samples_analysis
    return int(min(n // 2, max(1, math.ceil(tail_s * config.analysis_fs_hz))))


def feature_memory_bytes(config: FeatureConfig, n_channels: int) -> int:
    """Memory that :class:`StreamingFeatures` allocates for ``config`` and ``n_channels``.

    An upper estimate of its arrays (the constructor's temporaries included), so that a model
    whose features would not fit is refused before anything is allocated.

    Returns
    -------
    int
        Bytes.
    """
    n = config.window_samples_analysis
    hop_a = config.hop_samples_analysis
    per_channel = (
        4 * (2 * n + hop_a)  # the window store
        + 21 * (n // math.gcd(n, hop_a))  # the channel checks' bins
    )
    total = n_channels * per_channel + _decimator_bytes(config, n_channels)
    long = config.long_window_config()
    total += _band_power_bytes(long, n_channels)
    if long is not config:
        n_long = long.window_samples_analysis
        rows = 2 * len(_piece_bins(config)[1])
        short = len(config.short_window_bands)
        total += n_channels * (
            4 * (2 * n_long + long.hop_samples_analysis)  # the whole-window bands' store
            + 4 * hop_a  # their analysis samples, transposed for the second decimator
            + 4 * short * (n // hop_a + 1)  # the pieces' band powers and their mean
            + 8 * rows  # a piece's head terms and spectrum
            + 8 * config.features_per_channel  # the joined row, the whole-window bands' row
        )
        # the pieces' linear map, built in float64 (cos, sin, their join, the product)
        total += _decimator_bytes(long, n_channels, _LONG_BLOCK)
        total += 48 * rows * hop_a + 4 * rows * short
    return int(total)


def _decimator_bytes(config: FeatureConfig, n_channels: int, block: int = 4096) -> int:
    """A ``FirDecimator``'s history and block, its rows padded to 16 channels and one more 16."""
    # without decimation the filter is one tap (design_decimation_filter)
    n_taps = config.decimation * config.fir_taps_per_phase if config.decimation > 1 else 1
    return 4 * (n_taps + block) * (-(-n_channels // 16) * 16 + 16) + 16 * n_taps


def _band_power_bytes(config: FeatureConfig, n_channels: int) -> int:
    """What a :class:`BandPower` of ``config`` allocates, its constructor's temporaries included."""
    n = config.window_samples_analysis
    m = _tail_samples(config, n_channels)
    n_bins = n // 2 + 1
    n_bands = len(config.bands)
    bin_hz = config.analysis_fs_hz / n
    band_bins = [min(n_bins, (b.hi_hz - b.lo_hz) / bin_hz + 2) for b in config.bands]
    per_channel = (
        4 * n  # the tapered window
        + 8 * n_bins  # the head's spectrum (complex64)
        + 12 * n_bands * m  # the head's cross terms, the tail's quadratic forms
    )
    shared = (
        8 * 2 * n_bins  # bin frequencies and scales (float64)
        + 4 * n_bins * n_bands  # the band matrix
        + 20 * n_bands * m * m  # the tail's quadratic forms (built in float64)
        # the tail's DFT basis in float32, twice while joined; one band's built in float64
        + 16 * sum(band_bins) * m
        + 32 * max(band_bins) * m
    )
    return int(n_channels * per_channel + shared)


class FeatureRow(NamedTuple):
    """One window's features, as ``StreamingFeatures.push`` returns them."""

    end_sample: int  # input-sample count at the window's end (exclusive)
    features: np.ndarray  # (n_features,) float32, bad channels already replaced
    quality: WindowQuality  # fraction of good channels and each channel's flags


class StreamingFeatures:
    """Stateful feature extractor over a stream of input samples.

    Parameters
    ----------
    config : FeatureConfig
    n_channels : int
    quality : QualityConfig, optional
        Thresholds of the per-window channel checks (``rtdecode.features.quality``); the features of a
        bad channel are replaced by the median of the good channels' features.

    Notes
    -----
    Not thread-safe: one thread (the decode thread, or the offline loop) calls ``push``. Holds the
    decimator state and the last window of analysis-rate samples; memory is fixed at construction.
    """

    def __init__(
        self, config: FeatureConfig, n_channels: int, quality: QualityConfig | None = None
    ) -> None:
        self.config = config
        self.n_channels = n_channels
        # The whole-window bands: all of them, or (short windows) those below
        # short_windows_from_hz, from a second decimation of the analysis-rate samples.
        self._long = config.long_window_config()
        self.band_power = BandPower(self._long, n_channels)
        self._pieces = None
        self.n_features = n_channels * config.features_per_channel
        self._taps = design_decimation_filter(config)
        self._decimator = FirDecimator(self._taps, config.decimation, n_channels)
        self._window_a = config.window_samples_analysis
        self._hop_a = config.hop_samples // config.decimation
        # the config's derived counts, computed once (push reads them at every step)
        self._hop = config.hop_samples
        self._window = config.window_samples
        self._first_decision = -(-self._window // self._hop) * self._hop
        # Analysis samples are appended, channel-major, to a linear buffer twice the window; when
        # it fills, the newest window is moved to the front: one extra copy per sample, and every
        # window is a slice with contiguous rows.
        self._store = resident_zeros((n_channels, 2 * self._window_a + self._hop_a), np.float32)
        self._fill = 0
        self._n_in = 0
        self._n_a = 0
        self._long_decimator = None
        if config.short_window_bands:
            self._pieces = PiecePower(
                config, n_channels, self.band_power.tail_samples * self._long.decimation
            )
            self._long_decimator = FirDecimator(
                design_decimation_filter(self._long),
                self._long.decimation,
                n_channels,
                block=_LONG_BLOCK,
            )
            self._long_store = resident_zeros(
                (
                    n_channels,
                    2 * self._long.window_samples_analysis + self._long.hop_samples_analysis,
                ),
                np.float32,
            )
            self._long_row = np.empty(self.band_power.n_features, dtype=np.float32)
            # a step's analysis samples, samples x channels as the second decimator reads them
            # (a step is at most a hop: push stops at every hop boundary)
            self._analysis_t = np.empty((self._hop_a, n_channels), dtype=np.float32)
            long_bands = [j for j in range(len(config.bands)) if j not in self._pieces.bands]
            self._long_bands = np.array(long_bands, dtype=np.intp)
            self._short_bands = np.array(self._pieces.bands, dtype=np.intp)
            self._ratio_num, self._ratio_den = _ratio_indices(config)
            self._nonfinite = np.zeros(n_channels, dtype=np.uint8)
        self._long_fill = 0  # the second decimator's samples in _long_store (none without it)
        # the whole-window bands' windows, in their own stream's samples
        self._long_window = self._long.window_samples_analysis
        self._tail_a = self.band_power.tail_samples
        self._head_a = self._long_window - self._tail_a
        self._tail_in = (
            self._tail_a
            * self._long.decimation
            * (config.decimation if self._pieces is not None else 1)
        )
        self._prepared_for = -1  # the boundary whose window head band_power holds
        # running mean of every feature ("baseline" normalisation), kept across reset(): it
        # describes the recording and electrodes, which a gap does not change
        self._baseline = (
            np.zeros(self.n_features, dtype=np.float64)
            if config.normalisation == "baseline"
            else None
        )
        self._baseline_rows = np.zeros(n_channels, np.int64)  # good rows per channel
        self._baseline_alpha = min(1.0, config.hop_s / config.baseline_s)
        self.quality_config = quality or QualityConfig()
        self._quality = ChannelQuality(
            self.quality_config, n_channels, self._window_a, self._hop_a, config.hop_s
        )

    @property
    def samples_in(self) -> int:
        """Input samples consumed since construction or the last ``reset``."""
        return self._n_in

    @property
    def tail_input_samples(self) -> int:
        """Input samples of each window left for its end; the rest is prepared before it."""
        return self._tail_in

    @property
    def analysis_samples(self) -> int:
        """Analysis-rate samples made since construction or the last ``reset``."""
        return self._n_a

    def recent_analysis(self, n: int) -> np.ndarray:
        """The newest ``n`` analysis-rate samples, channel-major ``(n_channels, n)`` (a view,
        valid until the next ``push``); ``n`` at most a window."""
        n = min(n, self._fill, self._window_a)
        return self._store[:, self._fill - n : self._fill]

    @property
    def head_ready(self) -> bool:
        """Whether the next window's head is prepared: only its tail is left to arrive."""
        return self._prepared_for >= 0

    def next_decision_sample(self) -> int:
        """Absolute input-sample count at which the next feature row becomes available."""
        return max(self._first_decision, (self._n_in // self._hop + 1) * self._hop)

    def reset(self) -> None:
        """Start over, as at the beginning of a stream (after a gap)."""
        self._decimator.reset()
        if self._pieces is not None:
            self._long_decimator.reset()
            self._pieces.reset()
        self._fill = 0
        self._long_fill = 0
        self._n_in = 0
        self._n_a = 0
        self._prepared_for = -1
        self._quality.reset()

    def push(self, samples: np.ndarray) -> list[FeatureRow]:
        """Consume a chunk; return the feature rows it completes.

        Parameters
        ----------
        samples : ndarray, shape (n, n_channels), float32, C-contiguous

        Returns
        -------
        list of FeatureRow
            ``(end_sample, features, quality)``: ``end_sample`` is the input-sample count at the
            window's end (exclusive); ``features`` has shape (n_features,), float32.
        """
        if samples.ndim != 2 or samples.shape[1] != self.n_channels:
            raise ValueError(f"samples must have shape (n, {self.n_channels}), got {samples.shape}")
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        rows: list[FeatureRow] = []
        hop = self._hop
        band_power = self.band_power
        start = 0
        n = samples.shape[0]
        while start < n:
            # Stop each step at the next hop boundary so a row is computed exactly there, and
            # at the point where all but the window's tail has arrived, to prepare its head.
            boundary = (self._n_in // hop + 1) * hop
            prepare_at = boundary - self._tail_in
            emits = boundary >= self._window
            step_end = prepare_at if (emits and self._n_in < prepare_at) else boundary
            stop = min(n, start + (step_end - self._n_in))
            self._consume(samples[start:stop])
            start = stop
            pieces = self._pieces
            if emits and self._n_in == prepare_at:
                store, fill = self._whole_window_samples()
                band_power.prepare(store[:, fill - self._head_a : fill])
                if pieces is not None:
                    fill = self._fill
                    pieces.prepare(self._store[:, fill - self._hop_a + pieces.tail_samples : fill])
                self._prepared_for = boundary
            elif self._n_in == boundary:
                if not emits:
                    if pieces is not None:
                        pieces.add(self._store[:, self._fill - self._hop_a : self._fill])
                    continue
                store, end = self._whole_window_samples()
                if self._prepared_for != boundary:
                    band_power.prepare(store[:, end - self._long_window : end - self._tail_a])
                if pieces is None:
                    row = band_power.finish(store[:, end - self._tail_a : end])
                else:
                    fill = self._fill
                    if self._prepared_for != boundary:
                        pieces.prepare(
                            self._store[:, fill - self._hop_a : fill - pieces.tail_samples]
                        )
                    pieces.finish(self._store[:, fill - pieces.tail_samples : fill])
                    row, n_nonfinite = self._join(
                        band_power.finish(store[:, end - self._tail_a : end], self._long_row)
                    )
                self._prepared_for = -1
                quality = self._quality.window(
                    self._store, self._fill, self._n_in // self.config.decimation
                )
                if pieces is not None and n_nonfinite:
                    # the second decimator's history outlasts the window by its filter: a NaN
                    # the checks no longer see can still be in the slow bands' window
                    quality = _flag_nonfinite(self._nonfinite.view(bool), quality)
                bad = quality.flags != 0 if quality.good_fraction < 1.0 else None
                if self._baseline is not None:
                    # a bad channel neither enters its running mean nor keeps its own values
                    self._subtract_baseline(row, bad)
                if bad is not None:
                    self._replace_bad_channels(row, bad)
                rows.append(FeatureRow(self._n_in, row, quality))
        return rows

    def _join(self, long_logs: np.ndarray) -> tuple[np.ndarray, int]:
        """The row from the whole-window bands' log powers and the pieces' powers: every band in
        the config's order, the normalisation, the ratios (as ``finish_bands`` makes them); and
        how many channels hold a non-finite feature (marked in ``self._nonfinite``)."""
        row = np.empty(self.n_features, dtype=np.float32)
        n_nonfinite = join_row(
            long_logs.reshape(self.n_channels, -1),
            self._pieces.powers,
            self._long_bands,
            self._short_bands,
            self._ratio_num,
            self._ratio_den,
            self.config.normalisation == "relative",
            _POWER_FLOOR,
            row.reshape(self.n_channels, self.config.features_per_channel),
            self._nonfinite,
        )
        return row, n_nonfinite

    def push_blocks(self, blocks: Iterable[np.ndarray]) -> list[FeatureRow]:
        """``push`` each of consecutive blocks (e.g. the views of a ring buffer's range, which
        wraps in two); the rows they complete, in order."""
        rows: list[FeatureRow] = []
        for block in blocks:
            rows += self.push(block)
        return rows

    def _replace_bad_channels(self, row: np.ndarray, bad: np.ndarray) -> None:
        """Bad channels' features := the good channels' median (in place; never NaN)."""
        per_channel = row.reshape(self.n_channels, self.config.features_per_channel)
        if bad.all():
            # nothing to borrow from: finite placeholders (the window is bad_signal anyway)
            floor = np.float32(np.log10(_POWER_FLOOR))
            np.nan_to_num(per_channel, copy=False, nan=floor, posinf=-floor, neginf=floor)
        else:
            per_channel[bad] = np.median(per_channel[~bad], axis=0)

    def _subtract_baseline(self, row: np.ndarray, bad: np.ndarray | None = None) -> None:
        """row -= running mean of each channel's good rows so far (this one included), in
        place; channels in ``bad`` are not added to their mean."""
        good = np.ones(self.n_channels, bool) if bad is None else ~bad
        self._baseline_rows += good
        alpha = np.maximum(self._baseline_alpha, 1.0 / np.maximum(self._baseline_rows, 1))
        step = (row - self._baseline).reshape(self.n_channels, -1) * alpha[:, None]
        step[~good] = 0.0
        self._baseline += step.reshape(-1)
        row -= self._baseline.astype(np.float32)

    def _whole_window_samples(self) -> tuple[np.ndarray, int]:
        """The store the whole-window bands read and its fill: the analysis-rate samples, or
        those decimated again for the slow bands."""
        if self._long_decimator is None:
            return self._store, self._fill
        return self._long_store, self._long_fill

    def _consume(self, samples: np.ndarray) -> None:
        self._fill = _make_room(
            self._store, self._fill, self._decimator.n_out_for(samples.shape[0]), self._window_a
        )
        # the decimator writes each channel's row of the store directly (no transposed copy)
        made = self._decimator.process_columns(samples, self._store, self._fill)
        if self._long_decimator is not None and made:
            analysis = self._analysis_t[:made]
            np.copyto(analysis, self._store[:, self._fill : self._fill + made].T)
            self._long_fill = _make_room(
                self._long_store,
                self._long_fill,
                self._long_decimator.n_out_for(made),
                self._long_window,
            )
            self._long_fill += self._long_decimator.process_columns(
                analysis, self._long_store, self._long_fill
            )
        self._fill += made
        self._n_a += made
        self._n_in += samples.shape[0]


def _make_room(store: np.ndarray, fill: int, n_new: int, keep: int) -> int:
    """The fill after making room for ``n_new`` samples in a channel-major store: when they
    would not fit, its newest ``keep`` samples are moved to the front (one copy per sample:
    every window stays a slice with contiguous rows)."""
    if fill + n_new > store.shape[1]:
        store[:, :keep] = store[:, fill - keep : fill]
        return keep
    return fill


def _flag_nonfinite(nonfinite: np.ndarray, quality: WindowQuality) -> WindowQuality:
    """``quality`` with the channels in ``nonfinite`` (bool, per channel; ``join_row`` has
    counted at least one) flagged ``NONFINITE``."""
    flags = quality.flags.copy()
    flags[nonfinite] |= NONFINITE
    return WindowQuality(float(np.mean(flags == 0)), flags)


def one_blas_thread() -> threadpool_limits:
    """BLAS on one thread, as a context (``with one_blas_thread(): ...``) or for the process.

    The feature stage's matrix products (``BandPower``) are small: from a ~6 ms window tail
    (64 channels) OpenBLAS splits them over two threads, whose idle workers then spin: offline
    features took twice their CPU time (bench_rigs' floor: 47x real time per CPU-second against
    96x on one thread), live a core spun from 128 channels. The decoder sets it for its process; the
    offline loops (``iter_features``, ``recording_features``, ``decode_recording``) hold it
    within ``with``: a limit set per call would cost more than the products.
    """
    return threadpool_limits(limits=1, user_api="blas")


def iter_features(
    chunks: Iterable[np.ndarray], config: FeatureConfig, n_channels: int
) -> Iterator[FeatureRow]:
    """Feature rows for a recording given as consecutive chunks (bounded memory)."""
    extractor = StreamingFeatures(config, n_channels)
    with one_blas_thread():
        for chunk in chunks:
            yield from extractor.push(np.ascontiguousarray(chunk, dtype=np.float32))


def extract_features(
    data: np.ndarray, config: FeatureConfig, *, chunk_samples: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Offline features of a whole recording, through the live code path.

    Parameters
    ----------
    data : ndarray, shape (n_samples, n_channels)
        The recording at ``config.fs_hz`` (converted to float32 as the live path does).
    config : FeatureConfig
    chunk_samples : int
        Samples handed to ``StreamingFeatures.push`` at a time (does not change the result).

    Returns
    -------
    end_samples : ndarray, shape (n_rows,), int64
        Input-sample count at each window's end (exclusive).
    features : ndarray, shape (n_rows, n_features), float32
    """
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D (n_samples, n_channels), got shape {data.shape}")
    n_channels = data.shape[1]
    chunks = (data[i : i + chunk_samples] for i in range(0, data.shape[0], chunk_samples))
    rows = list(iter_features(chunks, config, n_channels))
    n_features = n_channels * config.features_per_channel
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, n_features), dtype=np.float32)
    ends = np.array([r.end_sample for r in rows], dtype=np.int64)
    return ends, np.stack([r.features for r in rows])
