"""Where pulses landed: the non-causal phase of a whole recording, and circular statistics.

The reference phase is what a causal estimator can only approach: a zero-phase band-pass
(Butterworth, forwards and backwards) of the whole signal and its Hilbert transform. A pulse's
error is the reference phase where it landed minus its target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.signal

from rtdecode.phase.estimators import wrap

__all__ = [
    "reference_phase",
    "phase_at",
    "ReferencePhase",
    "circular_summary",
    "write_rose_plot",
]

_REFERENCE_ORDER = 3
_RATE_PER_TOP = 20.0  # the reference is computed at this many times the band's top, at least


def reference_phase(
    x: np.ndarray, fs_hz: float, band_hz: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """The zero-phase band-passed signal's phase, from the whole signal.

    Parameters
    ----------
    x : ndarray, shape (n,)
        The rhythm's signal (a channel, or the mean of the rule's channels) at ``fs_hz``.
    fs_hz : float
    band_hz : (float, float)

    Returns
    -------
    phase : ndarray, shape (m,), float64, radians
        Unwrapped phase at a reduced rate (``x`` is first decimated without phase shift).
    rate_hz : float
        The rate of ``phase``: sample ``k`` is the input's sample ``k * fs_hz / rate_hz``.
    """
    x = np.asarray(x, dtype=np.float64)
    factor = max(1, int(fs_hz // (_RATE_PER_TOP * band_hz[1] * 2)))
    if factor > 1:
        # anti-aliasing low-pass run forwards and backwards: no shift, then every factor-th
        sos = scipy.signal.butter(8, 0.8 * fs_hz / (2 * factor), fs=fs_hz, output="sos")
        x = scipy.signal.sosfiltfilt(sos, x)[::factor]
    rate = fs_hz / factor
    sos = scipy.signal.butter(_REFERENCE_ORDER, band_hz, btype="bandpass", fs=rate, output="sos")
    analytic = scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, x - x.mean()))
    return np.unwrap(np.angle(analytic)), rate


def phase_at(phase: np.ndarray, rate_hz: float, fs_hz: float, samples: np.ndarray) -> np.ndarray:
    """The reference phase (wrapped) at input-sample indices ``samples`` (fractional allowed)."""
    k = np.asarray(samples, dtype=np.float64) * rate_hz / fs_hz
    return wrap(np.interp(k, np.arange(phase.size), phase))


class ReferencePhase:
    """The reference phase of a recording's channel mean, read chunk by chunk.

    The chunks are averaged over ``channels`` and then over blocks of samples (a boxcar down to
    some 40 times the band's top, its delay accounted for), so an hour at 32 kHz needs tens of
    megabytes, not gigabytes.

    Parameters
    ----------
    chunks : iterable of ndarray, shape (n, n_channels)
        The recording's samples in order, from its first.
    fs_hz : float
    band_hz : (float, float)
    channels : sequence of int
        The columns averaged.
    """

    def __init__(self, chunks, fs_hz: float, band_hz: tuple[float, float], channels) -> None:
        self.fs_hz = float(fs_hz)
        self._box = max(1, int(fs_hz // (2 * _RATE_PER_TOP * band_hz[1])))
        channels = np.asarray(channels, dtype=np.intp)
        parts, rest = [], np.zeros(0)
        for chunk in chunks:
            x = np.concatenate([rest, chunk[:, channels].mean(axis=1, dtype=np.float64)])
            whole = x.size // self._box * self._box
            parts.append(x[:whole].reshape(-1, self._box).mean(axis=1))
            rest = x[whole:]
        signal = np.concatenate(parts) if parts else np.zeros(0)
        self._phase, self._rate = reference_phase(signal, fs_hz / self._box, band_hz)

    def at(self, samples: np.ndarray) -> np.ndarray:
        """The reference phase (radians, wrapped) at input-sample indices (fractional allowed)."""
        # boxcar sample k is the mean of input samples k*box .. k*box + box - 1: its centre
        centred = (np.asarray(samples, dtype=np.float64) - (self._box - 1) / 2.0) / self._box
        return phase_at(self._phase, self._rate, self.fs_hz / self._box, centred)


def circular_summary(errors_rad: Sequence[float]) -> dict:
    """Circular mean error (degrees), resultant vector length and the share within +-45
    degrees of a set of phase errors (radians); None values when there is none."""
    e = np.asarray(errors_rad, dtype=np.float64)
    if e.size == 0:
        return {"pulses": 0, "mean_error_deg": None, "vector_length": None, "within_45": None}
    mean = np.mean(np.exp(1j * e))
    return {
        "pulses": int(e.size),
        "mean_error_deg": round(math.degrees(float(np.angle(mean))), 2),
        "vector_length": round(float(abs(mean)), 4),
        "within_45": round(float(np.mean(np.abs(wrap(e)) <= math.pi / 4)), 4),
    }


def write_rose_plot(
    errors_by_rule: dict[str, Sequence[float]], path: str | Path, *, bins: int = 36
) -> Path:
    """A rose plot (polar histogram) of each rule's phase errors (radians) into a PNG.

    matplotlib (the ``train`` extra) is imported here, not with the package.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            f"the rose plot needs matplotlib (pip install 'rtdecode[train]'): {exc}"
        ) from None
    path = Path(path)
    names = list(errors_by_rule)
    fig = plt.figure(figsize=(4.2 * max(1, len(names)), 4.4))
    edges = np.linspace(-math.pi, math.pi, bins + 1)
    for i, name in enumerate(names):
        e = wrap(np.asarray(errors_by_rule[name], dtype=np.float64))
        ax = fig.add_subplot(1, max(1, len(names)), i + 1, projection="polar")
        counts, _ = np.histogram(e, edges)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4477aa", alpha=0.8)
        s = circular_summary(e)
        if s["pulses"]:
            mean = math.radians(s["mean_error_deg"])
            top = max(1, counts.max())
            ax.plot([mean, mean], [0, s["vector_length"] * top], color="#cc3311", lw=2)
            title = (
                f"{name}: {s['pulses']} pulses\nmean error {s['mean_error_deg']:+.1f} deg, "
                f"R {s['vector_length']:.2f}, {100 * s['within_45']:.0f}% within 45 deg"
            )
        else:
            title = f"{name}: no pulse"
        ax.set_title(title, fontsize=9)
        ax.set_theta_zero_location("N")
        ax.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
