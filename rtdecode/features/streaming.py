"""Sliding-window band-power features: the one implementation used live and offline.

The input stream is decimated (anti-aliased, causal, stateful polyphase FIR in Cython) to an
analysis rate a few times the top band edge, then every hop a Hann-tapered FFT of the last
window gives the power in each band per channel (log10, in input units squared), plus log band
ratios. Each window's spectrum is computed in two parts that add up: an FFT of all but its last
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
from rtdecode.features._bandpower import finish_bands, head_terms, taper_head
from rtdecode.features._decimate import FirDecimator
from rtdecode.features.quality import ChannelQuality, QualityConfig, WindowQuality

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
        names = [b.name for b in config.bands]
        self._ratio_num = np.array([names.index(r.numerator) for r in config.ratios], dtype=np.intp)
        self._ratio_den = np.array(
            [names.index(r.denominator) for r in config.ratios], dtype=np.intp
        )
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
    m = _tail_samples(config, n_channels)
    n_bins = n // 2 + 1
    n_bands = len(config.bands)
    bin_hz = config.analysis_fs_hz / n
    band_bins = [min(n_bins, (b.hi_hz - b.lo_hz) / bin_hz + 2) for b in config.bands]
    hop_a = config.hop_samples // config.decimation
    # without decimation the filter is one tap (design_decimation_filter)
    n_taps = config.decimation * config.fir_taps_per_phase if config.decimation > 1 else 1
    per_channel = (
        4 * (2 * n + hop_a)  # the window store
        + 4 * n  # its tapered copy
        + 8 * n_bins  # the head's spectrum (complex64)
        + 12 * n_bands * m  # the head's cross terms, the tail's quadratic forms
        + 21 * (n // math.gcd(n, hop_a))  # the channel checks' bins
    )
    # the decimator's history and block, its rows padded to 16 channels and one more 16
    decimator = 4 * (n_taps + 4096) * (-(-n_channels // 16) * 16 + 16)
    shared = (
        8 * 2 * n_bins  # bin frequencies and scales (float64)
        + 4 * n_bins * n_bands  # the band matrix
        + 20 * n_bands * m * m  # the tail's quadratic forms (built in float64)
        # the tail's DFT basis in float32, twice while joined; one band's built in float64
        + 16 * sum(band_bins) * m
        + 32 * max(band_bins) * m
        + 16 * n_taps  # the decimation filter's design
    )
    return int(n_channels * per_channel + decimator + shared)


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
        self.band_power = BandPower(config, n_channels)
        self.n_features = self.band_power.n_features
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
        self._tail_a = self.band_power.tail_samples
        self._head_a = self._window_a - self._tail_a
        self._tail_in = self._tail_a * config.decimation
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
        self._fill = 0
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
            if emits and self._n_in == prepare_at:
                band_power.prepare(self._store[:, self._fill - self._head_a : self._fill])
                self._prepared_for = boundary
            elif emits and self._n_in == boundary:
                end = self._fill
                if self._prepared_for != boundary:
                    band_power.prepare(self._store[:, end - self._window_a : end - self._tail_a])
                row = band_power.finish(self._store[:, end - self._tail_a : end])
                self._prepared_for = -1
                quality = self._quality.window(
                    self._store, end, self._n_in // self.config.decimation
                )
                bad = quality.flags != 0 if quality.good_fraction < 1.0 else None
                if self._baseline is not None:
                    # a bad channel neither enters its running mean nor keeps its own values
                    self._subtract_baseline(row, bad)
                if bad is not None:
                    self._replace_bad_channels(row, bad)
                rows.append(FeatureRow(self._n_in, row, quality))
        return rows

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

    def _consume(self, samples: np.ndarray) -> None:
        n_out = self._decimator.n_out_for(samples.shape[0])
        if self._fill + n_out > self._store.shape[1]:
            keep = self._window_a
            self._store[:, :keep] = self._store[:, self._fill - keep : self._fill]
            self._fill = keep
        # the decimator writes each channel's row of the store directly (no transposed copy)
        made = self._decimator.process_columns(samples, self._store, self._fill)
        self._fill += made
        self._n_a += made
        self._n_in += samples.shape[0]


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
