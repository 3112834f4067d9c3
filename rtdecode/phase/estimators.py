"""Causal estimates of a rhythm's phase at the last sample of a window.

Two methods, compared in ``benchmarks/bench_phase.py``:

- ``echt``: the endpoint-corrected Hilbert transform (Schreglmann et al. 2021, Nat Commun
  12:363): the window's analytic signal is computed by FFT and multiplied, in the frequency
  domain, by a causal 2nd-order band-pass filter centred on the rhythm, whose impulse response
  weighs the window's end, so the phase at the last sample is not bent by the FFT's implicit
  wrap-around. The filter's own phase shift is undone at the rhythm's frequency: the window's
  spectral peak when the band's power gathers there (theta), the band's centre when it is
  spread over the band (slow oscillations on the scalp), in proportion between.
- ``ar``: autoregressive forward prediction (Zrenner et al. 2018; the Open Ephys Phase
  Calculator): the window is band-passed without phase shift, the samples its end distorts
  are dropped, an AR model fitted to the rest predicts them and the time beyond, and the
  Hilbert transform of the whole gives the phase at the last real sample.

Each returns a :class:`WindowPhase`: the phase at the window's last sample, the rhythm's
frequency (for extrapolating to the target's next crossing), its amplitude and the share of the
window's power in the band (for refusing a rhythm too weak to have a phase).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.signal

__all__ = ["METHODS", "ECHT_FREQUENCIES", "WindowPhase", "estimate_window_phase", "band_share"]

#: The estimators :func:`estimate_window_phase` knows.
METHODS = ("echt", "ar")
_ZERO_PAD = 8  # the spectrum is zero-padded this much to find the peak frequency
# The in-band power within this ratio of the peak frequency (either side) is the share that
# weighs the peak against the band's centre as the ecHT's frequency (bench_phase.py methods:
# 1.1-1.3 gave the same within +-45 deg to 2 points on the simulator and on DREAMS)
_PEAK_RATIO = 1.2
#: What the ecHT's phase correction and the extrapolation take as the rhythm's frequency:
#: ``"blend"`` (default), ``"peak"`` (the window's spectral peak: before 2026-12-04),
#: ``"centre"`` (the band's geometric centre, where the filter shifts no phase).
ECHT_FREQUENCIES = ("blend", "peak", "centre")
# order and edge measured on noisy sinusoids in the theta band (200 Hz): edge 0.5 cycle left
# +-35 degrees of bias at the band's edges, 2 cycles +-7
_AR_ORDER = 30
_AR_EDGE_CYCLES = 2.0  # samples dropped at the end of the zero-phase filtered window (cycles)
_AR_AHEAD_CYCLES = 1.0  # predicted beyond the window, so its Hilbert transform has no edge there


class WindowPhase(NamedTuple):
    """The rhythm at the last sample of a window."""

    phase_rad: float  # in (-pi, pi]; 0 at a peak of the band-passed signal, -pi/2 at its rise
    freq_hz: float  # the rhythm's frequency, for extrapolating its phase (see echt_frequency)
    amplitude: float  # envelope at the last sample, input units
    band_share: float  # the band's share of the window's power (DC excluded), 0-1


def band_share(spectrum_power: np.ndarray, freqs: np.ndarray, band: tuple[float, float]) -> float:
    """The share of ``spectrum_power`` (DC excluded) with ``band[0] <= f <= band[1]``."""
    total = float(spectrum_power[1:].sum())
    if total <= 0.0:
        return 0.0
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return float(spectrum_power[inside].sum()) / total


def _peak_frequency(
    x: np.ndarray, fs_hz: float, band: tuple[float, float]
) -> tuple[float, float, float]:
    """The window's peak frequency in ``band`` (Hann, zero-padded, parabolic interpolation),
    the band's share of its power, and how much of the band's power lies within
    ``_PEAK_RATIO`` of the peak, relative to a pure sinusoid's at that frequency (1: a
    sinusoid; small: power spread over the band)."""
    n = x.size
    power, freqs = _hann_power(x, fs_hz)
    share = band_share(power, freqs, band)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    inside = np.flatnonzero(in_band)
    k = int(inside[np.argmax(power[inside])])
    freq = freqs[k]
    if 0 < k < power.size - 1:
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-300)
        denom = a - 2.0 * b + c
        if denom < 0:
            freq += 0.5 * (a - c) / denom * (freqs[1] - freqs[0])
    freq = float(np.clip(freq, band[0], band[1]))
    return freq, share, min(1.0, _near_peak(power, freqs, band, freq) / _pure_near_peak(
        n, float(fs_hz), (float(band[0]), float(band[1])), round(freq, 4)
    ))  # fmt: skip


def _hann_power(x: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    n_fft = _ZERO_PAD * x.size
    power = np.abs(np.fft.rfft(x * np.hanning(x.size), n_fft)) ** 2
    return power, np.fft.rfftfreq(n_fft, 1.0 / fs_hz)


def _near_peak(
    power: np.ndarray, freqs: np.ndarray, band: tuple[float, float], freq: float
) -> float:
    """The share of the band's power within ``_PEAK_RATIO`` of ``freq``."""
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    band_power = float(power[in_band].sum())
    near = in_band & (freqs >= freq / _PEAK_RATIO) & (freqs <= freq * _PEAK_RATIO)
    return float(power[near].sum()) / band_power if band_power > 0 else 0.0


@lru_cache(maxsize=4096)
def _pure_near_peak(n: int, fs_hz: float, band: tuple[float, float], freq: float) -> float:
    """:func:`_near_peak` of a pure cosine at ``freq``: below 1 when the window's spectral
    lobe is wider than the ratio (a 4 s window at 0.6 Hz holds ~0.5 of it there)."""
    power, freqs = _hann_power(np.cos(2.0 * math.pi * freq / fs_hz * np.arange(n)), fs_hz)
    return max(_near_peak(power, freqs, band, freq), 1e-12)


@lru_cache(maxsize=64)
def _echt_design(fs_hz: float, centre_hz: float, width_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """The 2nd-order Butterworth band-pass of the ecHT (``b``, ``a``)."""
    lo = max(centre_hz - width_hz / 2.0, 0.05 * centre_hz)
    hi = min(centre_hz + width_hz / 2.0, 0.49 * fs_hz)
    return scipy.signal.butter(1, [lo, hi], btype="bandpass", fs=fs_hz)


@lru_cache(maxsize=64)
def _echt_weights(n: int, fs_hz: float, centre_hz: float, width_hz: float) -> np.ndarray:
    """The ecHT's last output sample as a weighted sum of the window: ``z = c @ x``.

    The ecHT multiplies the window's spectrum by the analytic signal's weights (0 at negative
    frequencies, 2 at positive ones) and the causal band-pass's response, and keeps the last
    sample of the inverse FFT: a linear function of the window, whose weights ``c`` are the
    inverse FFT of that product, reversed. One dot product per estimate instead of two FFTs.
    """
    b, a = _echt_design(fs_hz, centre_hz, width_hz)
    freqs = np.fft.fftfreq(n, 1.0 / fs_hz)
    _, response = scipy.signal.freqz(b, a, worN=np.abs(freqs), fs=fs_hz)
    analytic = np.zeros(n)
    analytic[0] = 1.0
    analytic[1 : (n + 1) // 2] = 2.0
    if n % 2 == 0:
        analytic[n // 2] = 1.0
    c = np.fft.ifft(response * analytic)[::-1].copy()
    c.flags.writeable = False
    return c


def _echt(
    x: np.ndarray, fs_hz: float, band: tuple[float, float], frequency: str = "blend"
) -> WindowPhase:
    peak, share, concentration = _peak_frequency(x, fs_hz, band)
    centre = math.sqrt(band[0] * band[1])  # where the band-pass shifts no phase
    if frequency == "peak":
        freq = peak
    elif frequency == "centre":
        freq = centre
    else:
        # A single sinusoid's correction at the window's peak fits a narrow rhythm; over a
        # broad one (scalp slow oscillations: the peak wanders 0.5-1 Hz from window to window)
        # it adds the peak's scatter to the phase (DREAMS: 60 % within +-45 deg at the peak,
        # 71 % uncorrected). Geometric blend, weighted by how much of the band the peak holds.
        freq = centre ** (1.0 - concentration) * peak**concentration
    n = x.size
    c = _echt_weights(n, fs_hz, round(0.5 * (band[0] + band[1]), 6), round(band[1] - band[0], 6))
    z = complex(c @ x)
    # A sinusoid at frequency freq, x[k] = Re(u e^{jwk}), gives z = (u A + conj(u) B)/2
    # with A, B the weights' response to e^{+jwk} and e^{-jwk}: solved for u, which undoes the
    # filter's gain and phase shift at that frequency (A) and the window's leak from negative
    # frequencies (B). Dividing by the filter's response alone left a lead of 4-9 degrees near
    # the band's low edge (bench_phase.py methods).
    w = 2.0 * math.pi * freq / fs_hz
    e = np.exp(1j * w * np.arange(n))
    A, B = complex(c @ e), complex(c @ e.conj())
    m = np.array([[(A + B).real, (1j * (A - B)).real], [(A + B).imag, (1j * (A - B)).imag]])
    try:
        re, im = np.linalg.solve(m, [2.0 * z.real, 2.0 * z.imag])
    except np.linalg.LinAlgError:
        re, im = (2.0 * z / A).real, (2.0 * z / A).imag
    u = complex(re, im)
    phase = math.atan2(math.sin(np.angle(u) + w * (n - 1)), math.cos(np.angle(u) + w * (n - 1)))
    return WindowPhase(phase, freq, abs(u), share)


@lru_cache(maxsize=64)
def _zero_phase_sos(fs_hz: float, lo: float, hi: float) -> np.ndarray:
    return scipy.signal.butter(2, [lo, hi], btype="bandpass", fs=fs_hz, output="sos")


def _ar_fit(y: np.ndarray, order: int) -> np.ndarray:
    """Yule-Walker AR coefficients ``a`` with ``y[t] ~ sum_k a[k] y[t-1-k]``."""
    r = np.correlate(y, y, mode="full")[y.size - 1 : y.size + order] / y.size
    if r[0] <= 0:
        return np.zeros(order)
    r[0] *= 1.0 + 1e-9  # a touch of regularisation: a pure sinusoid's matrix is singular
    return scipy.linalg.solve_toeplitz(r[:order], r[1 : order + 1])


def _ar(x: np.ndarray, fs_hz: float, band: tuple[float, float]) -> WindowPhase:
    freq, share, _ = _peak_frequency(x, fs_hz, band)
    hi = min(band[1], 0.45 * fs_hz)
    y = scipy.signal.sosfiltfilt(_zero_phase_sos(fs_hz, band[0], hi), x)
    centre = 0.5 * (band[0] + band[1])
    # at most half the window: a short window for its band predicts more and fits less
    edge = min(max(1, round(_AR_EDGE_CYCLES * fs_hz / centre)), x.size // 2)
    ahead = max(1, round(_AR_AHEAD_CYCLES * fs_hz / centre))
    kept = y[: y.size - edge]
    order = min(_AR_ORDER, max(2, kept.size // 4))
    a = _ar_fit(kept, order)
    full = np.empty(kept.size + edge + ahead)
    full[: kept.size] = kept
    for t in range(kept.size, full.size):
        full[t] = a @ full[t - 1 : t - 1 - order : -1] if t - 1 - order >= 0 else 0.0
    analytic = scipy.signal.hilbert(full)
    z = analytic[x.size - 1]
    # the envelope where the signal is still real (Yule-Walker's predictions decay), over the
    # band-pass's gain at the rhythm's frequency, squared (it ran forwards and backwards)
    _, gain = scipy.signal.sosfreqz(_zero_phase_sos(fs_hz, band[0], hi), worN=[freq], fs=fs_hz)
    amplitude = float(abs(analytic[kept.size - 1])) / max(float(abs(gain[0])) ** 2, 1e-6)
    return WindowPhase(float(np.angle(z)), freq, amplitude, share)


def estimate_window_phase(
    x: np.ndarray,
    fs_hz: float,
    band: tuple[float, float],
    method: str = "echt",
    *,
    echt_frequency: str = "blend",
) -> WindowPhase:
    """The rhythm's phase at the last sample of ``x``.

    Parameters
    ----------
    x : ndarray, shape (n,), float
        The window, oldest first, in input units; a few cycles of the band's lowest frequency.
    fs_hz : float
        Its rate.
    band : (float, float)
        The rhythm's band, Hz.
    method : {"echt", "ar"}
    echt_frequency : {"blend", "peak", "centre"}
        The ecHT's frequency for undoing its filter's phase shift, and the one returned for
        extrapolation: the window's spectral peak, the band's geometric centre, or (default)
        between the two by the share of the band's power near the peak.

    Returns
    -------
    WindowPhase
        Phase 0 at the band-passed signal's peaks (a cosine's convention), -90 degrees on its
        rising slope, +-180 at its troughs.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if echt_frequency not in ECHT_FREQUENCIES:
        raise ValueError(
            f"echt_frequency must be one of {ECHT_FREQUENCIES}, got {echt_frequency!r}"
        )
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    if not np.any(x):
        return WindowPhase(0.0, 0.5 * (band[0] + band[1]), 0.0, 0.0)
    return _echt(x, fs_hz, band, echt_frequency) if method == "echt" else _ar(x, fs_hz, band)


def wrap(rad: np.ndarray | float) -> np.ndarray | float:
    """Angles wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(rad), 2.0 * math.pi)
