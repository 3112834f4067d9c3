"""Per-window channel quality: NaN/Inf samples, flat lines, railed channels, huge artefacts.

Part of the feature stage (``StreamingFeatures`` owns one), so training and live decoding judge
and repair windows the same way. The checks run on the analysis-rate samples the band powers are
computed from: each sample is examined once, in bins whose size divides both the window and the
hop, and a window's verdict combines the bins it covers (about 0.05 ms per hop at 64 channels).

Policy (documented in docs/failure-policy.md):

* a channel is **bad** in a window when any of its samples there is NaN or infinite; it is flat
  (peak-to-peak zero or far below its typical value, or a stretch of identical samples inside
  its range: a dropout); it is railed (identical samples at its extremes: the anti-aliasing
  filter turns a clipped stretch longer than the filter into exactly repeated values); or its
  peak-to-peak exceeds ``artefact_factor`` times its typical value (a running geometric mean over
  good windows);
* the features of bad channels are replaced by the median of the good channels' features
  (exclude and re-normalise), so no NaN reaches the model;
* the window's quality is the fraction of good channels; below ``min_good_fraction`` the
  decision is flagged ``bad_signal`` and the smoother holds (see ``rtdecode.decoding.smoother``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rtdecode.features._quality import all_fine, summarise_bins

logger = logging.getLogger("rtdecode")

__all__ = [
    "QualityConfig",
    "WindowQuality",
    "ChannelQuality",
    "NONFINITE",
    "FLAT",
    "RAILED",
    "ARTEFACT",
    "REASONS",
]

NONFINITE, FLAT, RAILED, ARTEFACT = 1, 2, 4, 8
REASONS = {NONFINITE: "nonfinite", FLAT: "flat", RAILED: "railed", ARTEFACT: "artefact"}


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the channel checks.

    Parameters
    ----------
    artefact_factor : float
        Peak-to-peak above this many times the channel's typical value is an artefact. High by
        default: seizure discharges reach 5-10x background and must not be excluded.
    flat_factor : float
        Peak-to-peak below the typical value divided by this is flat.
    stuck_fraction : float
        At least this fraction of the window's samples equal to the previous one, at the
        channel's extremes, is railed (saturated); inside its range, flat (a dropout).
    stuck_run_s : float
        Only runs of identical samples at least this long (and 3 samples) count as stuck: an
        integer-valued source sampled fast repeats values for a few samples near every slow peak.
    typical_s : float
        Time constant of the running typical peak-to-peak, seconds.
    min_good_fraction : float
        Below this fraction of good channels a window is ``bad_signal``.
    """

    artefact_factor: float = 30.0
    flat_factor: float = 1000.0
    stuck_fraction: float = 0.02
    stuck_run_s: float = 0.01
    typical_s: float = 60.0
    min_good_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("artefact_factor", "flat_factor"):
            if not getattr(self, name) > 1.0:
                raise ValueError(f"{name} must be > 1, got {getattr(self, name)}")
        for name in ("stuck_fraction", "min_good_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not (self.typical_s > 0 and self.stuck_run_s > 0):
            raise ValueError(
                f"typical_s and stuck_run_s must be > 0, got {self.typical_s}, {self.stuck_run_s}"
            )

    def stuck_run_samples(self, fs_a: float) -> int:
        """Identical samples in a row that count as stuck at the analysis rate ``fs_a``, Hz."""
        return max(3, math.ceil(self.stuck_run_s * fs_a - 1e-9))

    def checks_stuck_runs(self, window_a: int, hop_a: int, fs_a: float) -> bool:
        """Whether windows of ``window_a`` and hops of ``hop_a`` analysis samples let the
        flat/railed checks work: runs are counted in bins of their gcd, which must hold one."""
        return math.gcd(window_a, hop_a) >= self.stuck_run_samples(fs_a)


class WindowQuality(NamedTuple):
    """Verdict on one window: the fraction of good channels and each channel's flags."""

    good_fraction: float
    flags: np.ndarray  # (n_channels,) uint8, 0 = good, else an OR of NONFINITE, FLAT, ...

    def bad_channels(self, names=None) -> dict[str, str]:
        """``{channel name (or index): "flat" | "railed+artefact" | ...}`` of the bad ones."""
        out = {}
        for i in np.flatnonzero(self.flags):
            reason = "+".join(r for bit, r in REASONS.items() if self.flags[i] & bit)
            out[str(names[i]) if names is not None else str(int(i))] = reason
        return out


class ChannelQuality:
    """Running channel checks over the analysis-rate samples of a stream.

    Parameters
    ----------
    config : QualityConfig
    n_channels : int
    window_a, hop_a : int
        Window and hop in analysis samples.
    hop_s : float
        Hop in seconds (for the running typical value).
    """

    def __init__(
        self, config: QualityConfig, n_channels: int, window_a: int, hop_a: int, hop_s: float
    ) -> None:
        self.config = config
        self.n_channels = n_channels
        self._window_a = window_a
        self._bin = math.gcd(window_a, hop_a)
        fs_a = hop_a / hop_s
        self._min_run = config.stuck_run_samples(fs_a)
        if not config.checks_stuck_runs(window_a, hop_a, fs_a):
            # runs are counted within bins (gcd of window and hop): with bins this short the
            # stuck-sample checks cannot work; NaN, size and peak-to-peak checks still do
            logger.warning(
                "window and hop share only %d analysis samples: flat/railed runs of "
                "%d samples are not detected; make the window a multiple of the hop",
                self._bin,
                self._min_run,
            )
            self._min_run = self._bin + 1  # no run fits in a bin: nothing counts as stuck
        n_bins = window_a // self._bin
        shape = (n_bins, n_channels)
        self._min = np.zeros(shape, np.float32)
        self._max = np.zeros(shape, np.float32)
        self._nonfinite = np.zeros(shape, bool)
        self._nonfinite_u8 = self._nonfinite.view(
            np.uint8
        )  # the same memory, as the kernels take it
        self._repeats = np.zeros(shape, np.int32)  # samples equal to the previous one
        self._at_max = np.zeros(shape, np.int32)  # ... and equal to the bin's maximum
        self._at_min = np.zeros(shape, np.int32)  # ... and equal to the bin's minimum
        self._done = 0  # analysis samples (since reset) whose bins are summarised
        # typical log10 peak-to-peak per channel; kept across reset (same electrodes)
        self._log_typical = np.zeros(n_channels, np.float64)
        self._n_typical = np.zeros(n_channels, np.int64)
        self._alpha = min(1.0, hop_s / config.typical_s)
        # all_fine's thresholds: stuck samples, log10 of the artefact and flat factors
        self._fine_limits = (
            config.stuck_fraction * window_a,
            math.log10(config.artefact_factor),
            -math.log10(config.flat_factor),
        )
        self._good = WindowQuality(1.0, np.zeros(n_channels, np.uint8))

    def reset(self) -> None:
        """Start over with the windows (after a gap); the typical values are kept."""
        self._done = 0

    def window(self, store: np.ndarray, end_col: int, end_a: int) -> WindowQuality:
        """Verdict on the window that ends at analysis sample ``end_a`` (since reset).

        Parameters
        ----------
        store : ndarray, shape (n_channels, n), float32
            Analysis samples, channel-major; column ``end_col - 1`` is sample ``end_a - 1``.
        end_col : int
        end_a : int
            A multiple of the hop, >= the window.
        """
        g = self._bin
        start = max(self._done, end_a - self._window_a)
        if end_a > start:
            nb = (end_a - start) // g
            summarise_bins(
                store,
                end_col - (end_a - start),
                nb,
                g,
                self._min_run,
                start // g,
                self._min,
                self._max,
                self._nonfinite_u8,
                self._repeats,
                self._at_max,
                self._at_min,
            )
            self._done = end_a
        # the common case (every channel fine) in one compiled pass, which also moves the
        # typical values; numpy works out the rest only when something is off
        if all_fine(
            self._min,
            self._max,
            self._nonfinite_u8,
            self._repeats,
            *self._fine_limits,
            self._alpha,
            self._log_typical,
            self._n_typical,
        ):
            return self._good
        return self._verdict()

    def _ptp(self) -> np.ndarray:
        return self._max.max(axis=0).astype(np.float64) - self._min.min(axis=0)

    def _railed_count(self) -> np.ndarray:
        """Repeated samples at the window's maximum or minimum, per channel."""
        top = self._max == self._max.max(axis=0)
        bottom = self._min == self._min.min(axis=0)
        return (self._at_max * top).sum(axis=0) + (self._at_min * bottom).sum(axis=0)

    def _verdict(self) -> WindowQuality:
        cfg = self.config
        n = self._window_a
        flags = np.zeros(self.n_channels, np.uint8)
        nonfinite = self._nonfinite.any(axis=0)
        flags[nonfinite] |= NONFINITE
        with np.errstate(invalid="ignore", over="ignore"):
            ptp = self._ptp()
            ok = ~nonfinite & np.isfinite(ptp)
            log_ptp = np.full(self.n_channels, -np.inf)
            np.log10(ptp, out=log_ptp, where=ok & (ptp > 0))
        known = ok & (self._n_typical > 0)
        stuck = cfg.stuck_fraction * n
        at_rail = self._railed_count()
        railed = ok & (ptp > 0) & (at_rail >= stuck)
        flat = ok & ((ptp <= 0) | (self._repeats.sum(axis=0) - at_rail >= stuck))
        too_small = known & (log_ptp < self._log_typical - math.log10(cfg.flat_factor))
        huge = known & (log_ptp > self._log_typical + math.log10(cfg.artefact_factor))
        flags[flat | too_small] |= FLAT
        flags[railed] |= RAILED
        flags[huge] |= ARTEFACT
        # Flagged only for its size, a channel still moves its typical value, ten times slower:
        # a seconds-long artefact barely shifts it, but a gain change, or a typical value first
        # learnt from an unusual stretch, is accepted within minutes instead of never.
        by_size = (too_small | huge) & ~(flat | railed | nonfinite)
        self._update_typical(flags == 0, log_ptp, slow=by_size)
        return WindowQuality(float(np.mean(flags == 0)), flags)

    def _update_typical(
        self, good: np.ndarray, log_ptp: np.ndarray, slow: np.ndarray | None = None
    ) -> None:
        n = self._n_typical
        alpha = np.maximum(self._alpha, 1.0 / (n + 1))
        if slow is not None:
            alpha = np.where(slow, self._alpha / 10.0, alpha)
            good = good | slow
        self._log_typical[:] = np.where(
            good, self._log_typical + alpha * (log_ptp - self._log_typical), self._log_typical
        )
        self._n_typical += good
