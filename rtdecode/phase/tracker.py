"""The streaming phase stage: analysis-rate samples in, the next target-phase crossing out.

:class:`PhaseTracker` is fed the blocks of analysis-rate (decimated) samples that
:class:`rtdecode.features.streaming.StreamingFeatures` makes, averages the rule's channels,
reduces them to a rate some 20 times the band's top (a boxcar mean: its nulls fall where
aliases onto the band would come from), and at a decision estimates the rhythm's phase at the
decision's last sample from the window before it (:mod:`rtdecode.phase.estimators`). Every time
is an input-sample index of the stream, corrected for the decimation filter's delay, so live and
offline runs on the same samples give the same estimates, whatever the chunking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rtdecode.config import FeatureConfig
from rtdecode.phase.estimators import ECHT_FREQUENCIES, METHODS, estimate_window_phase

__all__ = ["PhaseEstimate", "PhaseTracker", "phase_rate_factor", "analysis_delay_samples"]

_RATE_PER_TOP = 20.0  # phase rate >= this many times the band's top
# Signal kept beyond a window, seconds: an estimate may be asked for a decision whose window
# ended this long before the newest sample pushed (a decoder reading a backlog at once)
_HISTORY_S = 64.0


class PhaseEstimate(NamedTuple):
    """The rhythm at a decision.

    ``at_sample`` is the decision's end (input samples, exclusive); ``time_sample`` the
    (fractional) input-sample index the phase refers to: the newest sample the estimate saw,
    after the decimation filter's delay.
    """

    at_sample: int
    time_sample: float
    phase_rad: float
    freq_hz: float
    amplitude: float
    band_share: float

    def next_crossing(self, target_rad: float, after_sample: float, fs_hz: float) -> float:
        """The input-sample index (fractional) of the first crossing of ``target_rad`` at or
        after ``after_sample``, extrapolating the phase at the rhythm's frequency."""
        period = fs_hz / self.freq_hz
        ahead = ((target_rad - self.phase_rad) % (2.0 * math.pi)) / (2.0 * math.pi)
        t = self.time_sample + ahead * period
        if t < after_sample:
            t += math.ceil((after_sample - t) / period) * period
        return t


def phase_rate_factor(analysis_fs_hz: float, band_hz: tuple[float, float]) -> int:
    """Analysis samples averaged into one phase-rate sample for ``band_hz``."""
    return max(1, int(analysis_fs_hz // (_RATE_PER_TOP * band_hz[1])))


def analysis_delay_samples(config: FeatureConfig) -> float:
    """Input samples from analysis sample ``m``'s last input sample back to the moment it
    represents: the decimation filter's group delay (linear phase)."""
    if config.decimation == 1:
        return 0.0
    return (config.decimation * config.fir_taps_per_phase - 1) / 2.0


class PhaseTracker:
    """Causal phase of one rhythm on a stream's analysis-rate samples.

    Parameters
    ----------
    config : FeatureConfig
        The stream's features (rate, decimation, the decimation filter's length).
    channels : sequence of int
        Rows of the analysis blocks averaged into the rhythm's signal.
    band_hz : (float, float)
        The rhythm's band, Hz; its top must be below the analysis Nyquist frequency.
    window_s : float
        Seconds of signal each estimate looks at (a few cycles of the band's bottom).
    method : {"echt", "ar"}
    echt_frequency : {"blend", "peak", "centre"}
        The ecHT's frequency (:func:`rtdecode.phase.estimators.estimate_window_phase`).

    Notes
    -----
    Not thread-safe: one thread (the decode thread, or the offline loop) pushes and estimates.
    Memory is fixed here; a push allocates only its channel mean.
    """

    def __init__(
        self,
        config: FeatureConfig,
        channels: Sequence[int],
        band_hz: tuple[float, float],
        *,
        window_s: float,
        method: str = "echt",
        echt_frequency: str = "blend",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if echt_frequency not in ECHT_FREQUENCIES:
            raise ValueError(
                f"echt_frequency must be one of {ECHT_FREQUENCIES}, got {echt_frequency!r}"
            )
        self.echt_frequency = echt_frequency
        lo, hi = (float(b) for b in band_hz)
        fs_a = config.analysis_fs_hz
        if not 0 < lo < hi < fs_a / 2:
            raise ValueError(
                f"band_hz must satisfy 0 < low < high < {fs_a / 2:g} Hz (the analysis Nyquist), "
                f"got {band_hz!r}"
            )
        if not channels:
            raise ValueError("channels must name at least one channel")
        self.band_hz = (lo, hi)
        self.method = method
        self.fs_hz = config.fs_hz
        self._channels = np.asarray(channels, dtype=np.intp)
        self._decimation = config.decimation
        self._factor = phase_rate_factor(fs_a, self.band_hz)
        self.phase_fs_hz = fs_a / self._factor
        self._window = max(16, round(window_s * self.phase_fs_hz))
        self.window_s = self._window / self.phase_fs_hz
        # the centre of phase sample k is analysis sample k*factor + (factor - 1)/2 of the run,
        # whose last input sample is run0 + (m + 1)*decimation - 1
        self._offset = (
            (self._factor - 1) / 2.0 * self._decimation
            + self._decimation
            - 1
            - analysis_delay_samples(config)
        )
        # a linear buffer, its newest half moved to the front when it fills (one copy per sample)
        self._keep = self._window + math.ceil(_HISTORY_S * self.phase_fs_hz)
        self._buf = np.zeros(2 * self._keep, dtype=np.float64)
        self._partial = np.zeros(self._factor, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the signal (a gap, a restart): estimates wait for a new window."""
        self._stop: int | None = None  # input count at which the last pushed sample completed
        self._run0 = 0  # input count before the run's first analysis sample
        self._n_partial = 0
        self._fill = 0  # phase samples in _buf
        self._count = 0  # phase samples made in this run (the newest is _count - 1)

    def push(self, block: np.ndarray, stop_sample: int) -> None:
        """Add analysis-rate samples.

        Parameters
        ----------
        block : ndarray, shape (n_channels, n), float32
            Consecutive analysis-rate samples, channel-major (``StreamingFeatures
            .recent_analysis``).
        stop_sample : int
            The input-sample count (since the stream's start) at which the block's last sample
            was complete: the decoder's origin + analysis samples made x decimation. A block that
            does not follow the previous one starts a new run (the old samples are dropped).
        """
        n = block.shape[1]
        if n == 0:
            return
        start = stop_sample - n * self._decimation
        if self._stop is None or start != self._stop:
            self.reset()
            self._run0 = start
        self._stop = stop_sample
        x = block[self._channels].mean(axis=0, dtype=np.float64)
        f = self._factor
        i = 0
        if self._n_partial:
            take = min(f - self._n_partial, n)
            self._partial[self._n_partial : self._n_partial + take] = x[:take]
            self._n_partial += take
            i = take
            if self._n_partial == f:
                self._append(np.array([self._partial.mean()]))
                self._n_partial = 0
        whole = (n - i) // f
        if whole:
            self._append(x[i : i + whole * f].reshape(whole, f).mean(axis=1))
            i += whole * f
        rest = n - i
        if rest:
            self._partial[:rest] = x[i:]
            self._n_partial = rest

    def _append(self, values: np.ndarray) -> None:
        m = values.size
        if m > self._keep:
            values = values[-self._keep :]
        if self._fill + values.size > self._buf.size:
            keep = min(self._fill, self._keep)
            self._buf[:keep] = self._buf[self._fill - keep : self._fill]
            self._fill = keep
        self._buf[self._fill : self._fill + values.size] = values
        self._fill += values.size
        self._count += m

    def estimate(self, at_sample: int) -> PhaseEstimate | None:
        """The rhythm at the decision whose window ends at ``at_sample`` (input samples,
        exclusive), from the samples complete by then; None until a window of them exists."""
        if self._stop is None:
            return None
        per = self._factor * self._decimation
        newest = (at_sample - self._run0) // per - 1  # the newest phase sample complete by then
        if newest >= self._count or newest + 1 < self._window:
            return None
        end = self._fill - (self._count - 1 - newest)
        if end - self._window < 0:
            return None
        x = self._buf[end - self._window : end]
        est = estimate_window_phase(
            x, self.phase_fs_hz, self.band_hz, self.method, echt_frequency=self.echt_frequency
        )
        time_sample = self._run0 + newest * per + self._offset
        return PhaseEstimate(
            int(at_sample), time_sample, est.phase_rad, est.freq_hz, est.amplitude, est.band_share
        )
