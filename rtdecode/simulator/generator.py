"""Synthetic multichannel LFP with known brain states.

The generator is used to demo the decoder without hardware, to train the bundled models and as a
test fixture. It mixes a few latent sources (1/f background, delta, theta, spindles, EMG-like
broadband activity, spike-wave discharges, fast ripples, mains interference) into channels with
fixed per-channel gains, adds independent per-channel noise, and switches the source amplitudes
according to a random schedule of states. The true state of every sample is known, so decoders
can be scored exactly.

Signal model (amplitudes are typical per-channel values; per-channel gains vary about 1)
----------------------------------------------------------------------------------------
=============  ========================================================================
source         model
=============  ========================================================================
background     two leaky integrators of white noise (corner 1 Hz, ~1/f^2 above it) plus
               a faster one (corner 40 Hz); together a 1/f-like spectrum, tens of uV
delta          white noise band-passed 1-4 Hz; ~170 uV rms in NREM, 30-40 uV otherwise
theta          white noise band-passed 6.5-8.5 Hz; ~110 uV rms in REM, ~55 in wake
spindles       11-14 Hz waxing-waning bursts of 0.5-2 s every few seconds, NREM only
EMG            white noise band-passed 100-1000 Hz; ~25 uV rms in wake, a few uV asleep
spike-wave     7-9 Hz spike + slow wave; frequency drifts down and amplitude ramps up over
               each seizure (spike peak ~450 uV)
fast ripples   250-500 Hz noise bursts locked to the spikes of the spike-wave discharge
line           ``line_hz`` and its 3rd harmonic, common to all channels
noise          independent white noise per channel (``noise_uv`` rms per sample)
=============  ========================================================================

The amplitudes of delta, theta, fast background and EMG also drift slowly (log-normal, about
+-25 % over tens of seconds) so that no state has a constant band power.

With ``phase_rhythms=True`` (sleep scenario) two rhythms have a phase known at every sample,
for scoring phase-targeted stimulation (:meth:`LfpSimulator.generate_with_phase`): theta is an
oscillator instead of band-passed noise (same rms per state, frequency wandering about 7.5 Hz,
within 6.2-8.8 Hz), and a slow oscillation (about 0.9 Hz, within 0.55-1.6 Hz, ~220 uV rms)
joins NREM. Both are ``sqrt(2) * rms * cos(phase)``: phase 0 at their peaks.
"""

from __future__ import annotations

import logging
import math
import numbers
from bisect import bisect_right
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import signal
from scipy.integrate import trapezoid
from scipy.special import i0e

from rtdecode.common.channels import default_channel_labels

__all__ = ["SCENARIO_CLASSES", "SimulatorConfig", "LfpSimulator"]

logger = logging.getLogger("rtdecode")

SCENARIO_CLASSES: dict[str, tuple[str, ...]] = {
    "sleep": ("wake", "nrem", "rem"),
    "seizure": ("normal", "seizure"),
}

# ------------------------------------------------------------------------------------------
# Source parameters. Amplitudes are rms microvolts of the latent source before the per-channel
# gain (which averages ~1), unless noted.
# ------------------------------------------------------------------------------------------
_BG_SLOW_HZ = 1.0  # corner of the slow leaky integrators: flat below, 1/f^2 above

_BG_FAST_HZ = 40.0

_DELTA_BAND = (1.0, 4.0)

_THETA_BAND = (6.5, 8.5)

_EMG_BAND = (100.0, 1000.0)

_HFO_BAND = (250.0, 500.0)

_MOD_HZ = 0.05  # slow amplitude drift (log-normal), applied to the state-dependent sources

_MOD_SIGMA = 0.25

# Per state: (bg_slow_a, bg_slow_b, bg_fast, delta, theta, emg), rms uV.
_FILTERED_AMPS: dict[str, tuple[float, ...]] = {
    "wake": (20.0, 15.0, 7.0, 40.0, 55.0, 25.0),
    "nrem": (25.0, 18.0, 4.0, 170.0, 20.0, 4.0),
    "rem": (18.0, 14.0, 6.0, 30.0, 110.0, 2.5),
    "normal": (20.0, 15.0, 6.0, 40.0, 25.0, 8.0),
    "seizure": (20.0, 15.0, 8.0, 40.0, 25.0, 10.0),
}

_SPINDLE_UV = 110.0  # peak of the spindle envelope

_SPINDLE_HZ = (11.0, 14.0)

_SPINDLE_DURATION_S = (0.5, 2.0)

_SPINDLE_GAP_S = (1.0, 4.0)  # silence between the end of one spindle and the next onset

_SWD_UV = 450.0  # spike peak at full amplitude

_SWD_START_HZ = (8.5, 9.5)

_SWD_END_HZ = (6.5, 7.5)

_SWD_SPIKE_SD_S = 0.006

_SWD_WAVE_GAIN = 0.55  # slow-wave peak relative to the spike

_SWD_WAVE_AT = 0.45  # cycle fraction where the slow wave peaks (spike at 0)

_SWD_WAVE_KAPPA = 1.1  # von Mises concentration: ~0.15 cycle wide, periodic hence seamless

_SWD_RAMP_TO = 0.6  # fraction of the seizure over which the amplitude ramps to full

_SWD_RAMP_FROM = 0.3  # starting amplitude fraction

_HFO_UV = 80.0  # rms of the fast-ripple noise at the spike peak

_HFO_SD_S = 0.007

_HFO_COLUMN = 6  # latent column of the fast-ripple noise (after the six of _FILTERED_AMPS)

_LINE_HARMONIC = 3

# Rhythms of known phase (phase_rhythms=True): centre Hz, frequency wander sd Hz, limits Hz
_THETA_OSC = (7.5, 0.45, (6.2, 8.8))
_SLOW_OSC = (0.9, 0.2, (0.55, 1.6))
_WANDER_HZ = 0.5  # the frequency wanders on this time scale (low-pass of white noise)
# slow oscillation rms per state, uV (NREM only; the crossfade carries it in and out)
_SLOW_UV = {"wake": 0.0, "nrem": 220.0, "rem": 0.0}

_LINE_HARMONIC_GAIN = 0.3

# Internal block size: bounds temporary memory for very long generate() calls.
_MAX_BLOCK = 1 << 16

_WARMUP_TAU = 6.0  # filter warm-up, in time constants of the slowest pole


def _check_range(name: str, value: Any) -> tuple[float, float]:
    """Validate a ``(min, max)`` duration pair in seconds and return it as floats."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a (min_s, max_s) pair of numbers, got {value!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi):
        raise ValueError(f"{name} must satisfy 0 < min_s <= max_s (finite), got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class SimulatorConfig:
    """Configuration of the synthetic LFP generator.

    Parameters
    ----------
    scenario : str
        ``"sleep"`` (wake -> nrem -> rem -> wake ...) or ``"seizure"`` (normal background
        interrupted by spike-wave seizures). See ``SCENARIO_CLASSES``.
    n_channels : int
        Number of channels, >= 1.
    fs_hz : float
        Sampling rate, Hz, > 0. Sources whose band lies above 0.45 * fs_hz are left out and
        bands crossing it are clipped, as an anti-aliased recording would show them.
    seed : int
        Seed (>= 0) of everything random: channel gains, state schedule, noise.
    line_hz : float
        Mains frequency, Hz (``0`` disables line noise). Components at or above Nyquist are
        left out.
    wake_s, nrem_s, rem_s : tuple of float
        ``(min, max)`` duration of each sleep state, seconds, drawn uniformly.
    normal_s, seizure_s : tuple of float
        ``(min, max)`` duration of the interictal background and of each seizure, seconds.
    transition_s : float
        Length of the crossfade between two states, seconds (>= 0 and shorter than any state).
        The label switches at its midpoint.
    noise_uv : float
        Rms of the independent white noise of each channel, microvolts per sample.
    line_uv : float
        Peak amplitude of the mains fundamental, microvolts (channel gains vary 0.5-1.5x).
    first_state_s : float, optional
        The first state lasts this long instead of a random draw (the demo's first change
        comes within its first 20 s).
    phase_rhythms : bool
        Sleep scenario only: theta as an oscillator and a slow oscillation in NREM, both of
        known phase (see the module notes); off by default, so the bundled models' data stay
        as they were.

    Notes
    -----
    Runs start in the first class (``"wake"`` or ``"normal"``). The default durations make a
    1-2 minute demo show several changes: sleep states last 15-45 s, seizures 8-25 s separated
    by 25-60 s of normal background.
    """

    scenario: str
    n_channels: int = 64
    fs_hz: float = 32000.0
    seed: int = 0
    line_hz: float = 50.0
    wake_s: tuple[float, float] = (15.0, 45.0)
    nrem_s: tuple[float, float] = (15.0, 45.0)
    rem_s: tuple[float, float] = (15.0, 45.0)
    normal_s: tuple[float, float] = (25.0, 60.0)
    seizure_s: tuple[float, float] = (8.0, 25.0)
    transition_s: float = 0.8
    noise_uv: float = 4.0
    line_uv: float = 8.0
    first_state_s: float | None = None
    phase_rhythms: bool = False

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIO_CLASSES:
            raise ValueError(
                f"scenario must be one of {sorted(SCENARIO_CLASSES)}, got {self.scenario!r}"
            )
        if isinstance(self.n_channels, bool) or not isinstance(self.n_channels, numbers.Integral):
            raise TypeError(f"n_channels must be an int, got {type(self.n_channels).__name__}")
        if self.n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {self.n_channels}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name in ("fs_hz", "line_hz", "transition_s", "noise_uv", "line_uv"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if self.fs_hz <= 0:
            raise ValueError(f"fs_hz must be > 0, got {self.fs_hz}")
        for name in ("line_hz", "transition_s", "noise_uv", "line_uv"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("wake_s", "nrem_s", "rem_s", "normal_s", "seizure_s"):
            lo, hi = _check_range(name, getattr(self, name))
            if lo <= self.transition_s:
                raise ValueError(
                    f"{name}={(lo, hi)}: the shortest state must last longer than "
                    f"transition_s={self.transition_s} so that crossfades do not overlap"
                )
            object.__setattr__(self, name, (lo, hi))
        if self.first_state_s is not None:
            first = self.first_state_s
            if isinstance(first, bool) or not isinstance(first, numbers.Real):
                raise TypeError(f"first_state_s must be a number, got {type(first).__name__}")
            if not (math.isfinite(first) and first > self.transition_s):
                raise ValueError(
                    f"first_state_s must be finite and longer than transition_s="
                    f"{self.transition_s}, got {first!r}"
                )
            object.__setattr__(self, "first_state_s", float(first))
        if not isinstance(self.phase_rhythms, bool):
            raise TypeError(
                f"phase_rhythms must be True or False, got {type(self.phase_rhythms).__name__}"
            )
        if self.phase_rhythms and self.scenario != "sleep":
            raise ValueError(
                f"phase_rhythms needs the sleep scenario (theta and slow oscillations), got "
                f"scenario={self.scenario!r}"
            )
        # Normalise numeric types so that to_dict() is plain JSON.
        object.__setattr__(self, "n_channels", int(self.n_channels))
        object.__setattr__(self, "seed", int(self.seed))
        for name in ("fs_hz", "line_hz", "transition_s", "noise_uv", "line_uv"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def classes(self) -> tuple[str, ...]:
        """State names of the scenario, in label order."""
        return SCENARIO_CLASSES[self.scenario]

    def durations_s(self, state: str) -> tuple[float, float]:
        """``(min, max)`` duration of ``state``, seconds."""
        if state not in self.classes:
            raise ValueError(f"state must be one of {self.classes}, got {state!r}")
        return getattr(self, f"{state}_s")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimulatorConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown simulator config keys {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# ------------------------------------------------------------------------------------------
# Filter helpers
# ------------------------------------------------------------------------------------------
def _leaky_sos(corner_hz: float, fs_hz: float) -> np.ndarray:
    """One-pole low-pass ``y[n] = a*y[n-1] + x[n]`` as a single SOS row."""
    a = math.exp(-2.0 * math.pi * corner_hz / fs_hz)
    return np.array([[1.0, 0.0, 0.0, 1.0, -a, 0.0]])


def _band_sos(band: tuple[float, float], fs_hz: float, order: int) -> np.ndarray | None:
    """Butterworth band-pass clipped below 0.45 fs; ``None`` if the band is out of range."""
    lo, hi = band
    hi = min(hi, 0.45 * fs_hz)
    if lo >= 0.9 * hi:
        return None
    return signal.butter(order, [lo, hi], btype="bandpass", fs=fs_hz, output="sos")


# scipy >= 1.15 renamed sosfreqz to freqz_sos.
_freqz_sos = getattr(signal, "freqz_sos", None) or signal.sosfreqz


def _noise_gain(sos: np.ndarray, fs_hz: float, top_hz: float) -> float:
    """Rms output of ``sos`` for unit-variance white input (integral of |H|^2)."""
    nyq = fs_hz / 2.0
    knee = min(4.0 * top_hz, nyq)
    # Dense linear grid where the response lives, log grid for the tail up to Nyquist.
    freqs = np.linspace(0.0, knee, 40001)
    if knee < nyq:
        freqs = np.concatenate([freqs, np.geomspace(knee, nyq, 4001)[1:]])
    _, h = _freqz_sos(sos, worN=freqs, fs=fs_hz)
    power = trapezoid(np.abs(h) ** 2, freqs) * 2.0 / fs_hz
    return math.sqrt(power)


class _Filter:
    """A stateful SOS filter normalised to unit output rms for unit white input.

    Filters ``n_columns`` independent rows at once (input shape ``(n_columns, n)``) when
    ``n_columns`` is given, else a 1-D series; one scipy call per block either way.
    """

    def __init__(
        self,
        sos: np.ndarray,
        fs_hz: float,
        top_hz: float,
        slowest_hz: float,
        warmup_rng: np.random.Generator,
        n_columns: int | None = None,
    ) -> None:
        self.sos = sos.copy()
        self.sos[0, :3] /= _noise_gain(sos, fs_hz, top_hz)
        # Start in a steady state, not from rest: otherwise the first seconds of every run
        # would be quieter than the rest (filter transient).
        n_warm = int(min(_WARMUP_TAU * fs_hz / (2.0 * math.pi * slowest_hz), 60.0 * fs_hz)) + 1
        shape = (n_warm,) if n_columns is None else (n_columns, n_warm)
        zi = np.zeros((len(sos),) + shape[:-1] + (2,))
        _, self.zi = signal.sosfilt(self.sos, warmup_rng.standard_normal(shape), zi=zi)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self.zi = signal.sosfilt(self.sos, x, zi=self.zi)
        return y


# ------------------------------------------------------------------------------------------
# Generator
# ------------------------------------------------------------------------------------------
class LfpSimulator:
    """Stateful generator of multichannel LFP with a random schedule of brain states.

    Parameters
    ----------
    config : SimulatorConfig
        What to simulate.

    Attributes
    ----------
    config : SimulatorConfig
    classes : tuple of str
        State names; ``labels`` returned by :meth:`generate` index into it.
    channel_labels : tuple of str
        ``"ch000"``, ``"ch001"``, ...
    gains : ndarray, shape (n_sources, n_channels), float32
        Read-only mixing matrix of the latent sources (fixed per seed).

    Notes
    -----
    Consecutive calls to :meth:`generate` continue one signal: filters, oscillator phases and
    the state schedule carry over. The output depends only on the seed and on the total number
    of samples drawn: ``generate(1000)`` then ``generate(2345)`` matches ``generate(3345)``
    (bitwise on the machines tested; at worst float32 rounding of the channel mix).
    Not thread-safe; use one instance per thread.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        if not isinstance(config, SimulatorConfig):
            raise TypeError(f"config must be a SimulatorConfig, got {type(config).__name__}")
        self.config = config
        self.classes: tuple[str, ...] = config.classes
        fs = config.fs_hz
        self._fs = fs
        n_ch = config.n_channels
        self.channel_labels: tuple[str, ...] = default_channel_labels(n_ch)

        seeds = np.random.SeedSequence(config.seed).spawn(6)
        # SFC64: the fastest of numpy's bit generators for float32 normals here (1.7 vs 2.0 ms
        # for 3200 x 64 with PCG64), and the per-channel noise is the largest single cost.
        # Separate streams keep each part of the signal independent of the call sizes: a
        # Generator drawing (n1, k) then (n2, k) values yields the same as one (n1 + n2, k) draw.
        layout_rng, self._sched_rng, self._event_rng, self._latent_rng, self._chan_rng, warm = (
            np.random.Generator(np.random.SFC64(s)) for s in seeds
        )

        # Filtered noise sources: name -> filter (None when out of band at this rate).
        is_sleep = config.scenario == "sleep"
        specs: list[tuple[str, np.ndarray | None, float, float]] = [
            ("bg_slow_a", _leaky_sos(_BG_SLOW_HZ, fs), _BG_SLOW_HZ, _BG_SLOW_HZ),
            ("bg_slow_b", _leaky_sos(_BG_SLOW_HZ, fs), _BG_SLOW_HZ, _BG_SLOW_HZ),
            ("bg_fast", _leaky_sos(min(_BG_FAST_HZ, 0.2 * fs), fs), _BG_FAST_HZ, _BG_FAST_HZ),
            ("delta", _band_sos(_DELTA_BAND, fs, 3), _DELTA_BAND[1], _DELTA_BAND[0]),
            ("theta", _band_sos(_THETA_BAND, fs, 3), _THETA_BAND[1], _THETA_BAND[0]),
            ("emg", _band_sos(_EMG_BAND, fs, 2), _EMG_BAND[1], _EMG_BAND[0]),
        ]
        if not is_sleep:
            specs.append(("hfo", _band_sos(_HFO_BAND, fs, 3), _HFO_BAND[1], _HFO_BAND[0]))
        self._filters: list[_Filter | None] = [
            None if sos is None else _Filter(sos, fs, top, slow, warm)
            for _, sos, top, slow in specs
        ]
        self._n_filtered = 6  # columns covered by _FILTERED_AMPS
        self._modulated = (2, 3, 4, 5)  # bg_fast, delta, theta, emg drift slowly
        mod_sos = signal.butter(2, min(_MOD_HZ, 0.2 * fs), fs=fs, output="sos")
        self._mod_filter = _Filter(
            mod_sos, fs, _MOD_HZ, _MOD_HZ, warm, n_columns=len(self._modulated)
        )
        self._n_noise = len(specs) + len(self._modulated)

        # Latent source columns: filtered sources, then the event-driven one(s), then line.
        self._source_names: list[str] = [name for name, *_ in specs]
        if is_sleep:
            self._source_names.append("spindle")
        else:
            self._source_names.append("swd")
        self._line_terms: list[tuple[float, float, float]] = []  # (cycles per sample, gain, phase)
        if config.line_hz > 0 and config.line_uv > 0 and config.line_hz < fs / 2:
            self._line_terms.append((config.line_hz / fs, config.line_uv, 0.0))
            harmonic_hz = _LINE_HARMONIC * config.line_hz
            if harmonic_hz < fs / 2:
                self._line_terms.append(
                    (harmonic_hz / fs, _LINE_HARMONIC_GAIN * config.line_uv, 0.7)
                )
        if self._line_terms:
            self._source_names.append("line")
        self._amps = np.array([_FILTERED_AMPS[c] for c in self.classes])  # (n_states, 6)

        # Per-channel gains: a smooth profile along the probe plus jitter, so that channels
        # differ the way neighbouring contacts of a linear probe do.
        n_src = len(self._source_names)
        depth = np.arange(n_ch) / max(n_ch, 1)
        gains = np.empty((n_src, n_ch))
        for k in range(n_src):
            cycles = layout_rng.uniform(0.3, 1.5)
            phase = layout_rng.uniform(0.0, 2.0 * math.pi)
            depth_gain = 1.0 + 0.35 * np.sin(2.0 * math.pi * cycles * depth + phase)
            gains[k] = np.clip(depth_gain + 0.1 * layout_rng.standard_normal(n_ch), 0.2, None)
        if self._line_terms:
            gains[-1] = layout_rng.uniform(0.5, 1.5, n_ch)  # pickup depends on impedance
        self.gains = gains.astype(np.float32)
        self.gains.flags.writeable = False
        self._noise_scale = (config.noise_uv * layout_rng.uniform(0.8, 1.25, n_ch)).astype(
            np.float32
        )
        self._line_col = len(self._source_names) - 1 if self._line_terms else None
        self._rhythms: dict[str, list] = {}  # name -> [centre, sd, limits, wander filter, phase]
        self._last_phases: dict[str, np.ndarray] = {}
        if config.phase_rhythms:
            # their own random stream (the 7th child), drawn only when they are on: the other
            # parts of the signal stay as without them
            child = np.random.SeedSequence(config.seed).spawn(7)[6]
            rhythm_rng = np.random.Generator(np.random.SFC64(child))
            wander = signal.butter(2, min(_WANDER_HZ, 0.2 * fs), fs=fs, output="sos")
            for name, (centre, sd, limits) in (("theta", _THETA_OSC), ("slow", _SLOW_OSC)):
                filt = _Filter(wander, fs, _WANDER_HZ, _WANDER_HZ, rhythm_rng)
                phase0 = rhythm_rng.uniform(0, 2 * math.pi)
                self._rhythms[name] = [centre, sd, limits, filt, phase0]
            self._rhythm_rng = rhythm_rng
            # the slow oscillation's channel gains, drawn after everything else's
            self._source_names.append("slow")
            depth_gain = 1.0 + 0.35 * np.sin(
                2.0 * math.pi * layout_rng.uniform(0.3, 1.5) * depth + layout_rng.uniform(0, 6.28)
            )
            slow_gain = np.clip(depth_gain + 0.1 * layout_rng.standard_normal(n_ch), 0.2, None)
            self.gains = np.vstack([self.gains, slow_gain[None, :].astype(np.float32)])
            self.gains.flags.writeable = False

        # Schedule: segment i covers [starts[i], starts[i + 1]) with state states[i].
        self._half = 0.5 * config.transition_s * fs  # crossfade half-width, samples
        self._starts: list[int] = [0]
        self._states: list[int] = [0]
        self._seg_params: list[tuple[float, ...] | None] = [self._draw_segment_params(0)]
        self._next_start = (
            self._draw_duration(0)
            if config.first_state_s is None
            else round(config.first_state_s * fs)
        )
        # Spindle events: (onset sample, duration samples, cycles per sample, peak uV, phase).
        self._spindles: list[tuple[float, float, float, float, float]] = []
        self._spindle_next = self._event_rng.uniform(*_SPINDLE_GAP_S) * fs
        self._pos = 0

    # Schedule ------------------------------------------------------------------------------
    def _draw_duration(self, state: int) -> int:
        lo, hi = self.config.durations_s(self.classes[state])
        return max(1, round(self._sched_rng.uniform(lo, hi) * self._fs))

    def _draw_segment_params(self, state: int) -> tuple[float, ...] | None:
        if self.classes[state] != "seizure":
            return None
        rng = self._sched_rng
        return (rng.uniform(*_SWD_START_HZ), rng.uniform(*_SWD_END_HZ), rng.uniform(0.8, 1.25))

    def _extend_schedule(self, until: float) -> None:
        """Draw states until the schedule covers sample ``until``."""
        while self._next_start <= until:
            state = (self._states[-1] + 1) % len(self.classes)
            start = self._next_start
            self._starts.append(start)
            self._states.append(state)
            self._seg_params.append(self._draw_segment_params(state))
            self._next_start = start + self._draw_duration(state)

    def _extend_spindles(self, until: float) -> None:
        fs = self._fs
        rng = self._event_rng
        while self._spindle_next < until:
            onset = self._spindle_next
            duration = rng.uniform(*_SPINDLE_DURATION_S) * fs
            freq = rng.uniform(*_SPINDLE_HZ) / fs
            peak = _SPINDLE_UV * rng.uniform(0.6, 1.3)
            phase = rng.uniform(0.0, 2.0 * math.pi)
            self._spindles.append((onset, duration, freq, peak, phase))
            self._spindle_next = onset + duration + rng.uniform(*_SPINDLE_GAP_S) * fs

    def _rise(self, t: np.ndarray, boundary: float) -> np.ndarray:
        """Raised-cosine step from 0 to 1 centred on ``boundary`` over the transition."""
        if self._half <= 0:
            return (t >= boundary).astype(np.float64)
        x = np.clip((t - (boundary - self._half)) / (2.0 * self._half), 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * x)

    # Public API ----------------------------------------------------------------------------
    @property
    def n_generated(self) -> int:
        """Samples generated so far (the absolute index of the next sample)."""
        return self._pos

    def state_changes(self) -> list[tuple[int, str]]:
        """States begun so far.

        Returns
        -------
        list of (int, str)
            Absolute sample index where each state began (its label switches there) and the
            state name; the first entry is ``(0, initial_state)``.
        """
        n = max(1, bisect_right(self._starts, self._pos - 1))
        return [(self._starts[i], self.classes[self._states[i]]) for i in range(n)]

    def generate(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Generate the next ``n_samples`` samples.

        Parameters
        ----------
        n_samples : int
            Number of samples, >= 0.

        Returns
        -------
        data : ndarray, shape (n_samples, n_channels), float32, C-contiguous
            Signal in microvolts.
        labels : ndarray, shape (n_samples,), int8
            Index into :attr:`classes` of the true state at each sample.

        Notes
        -----
        Continues seamlessly from the previous call. Costs about 30-40 ms of CPU per second
        of 32 kHz x 64 channel data on a 2-core x86 VM, of which half is drawing the
        per-channel noise (see ``benchmarks/bench_simulator.py``).
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
            raise TypeError(f"n_samples must be an int, got {type(n_samples).__name__}")
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        n_samples = int(n_samples)
        data = np.empty((n_samples, self.config.n_channels), dtype=np.float32)
        labels = np.empty(n_samples, dtype=np.int8)
        phases = {name: np.empty(n_samples) for name in self._rhythms}
        for a in range(0, n_samples, _MAX_BLOCK):
            b = min(n_samples, a + _MAX_BLOCK)
            self._generate_block(data[a:b], labels[a:b])
            for name, block in self._last_phases.items():
                phases[name][a:b] = block
        self._last_phases = phases
        return data, labels

    def generate_with_phase(
        self, n_samples: int
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """:meth:`generate`, and the true phase of the rhythms at each sample.

        Returns
        -------
        data, labels
            As :meth:`generate`.
        phases : dict of str to ndarray, shape (n_samples,), float64
            ``"theta"`` and ``"slow"``: each rhythm's phase in radians, wrapped to
            [0, 2 pi), 0 at its peaks (the sources are cosines of it). Empty without
            ``phase_rhythms``.
        """
        data, labels = self.generate(n_samples)
        return data, labels, dict(self._last_phases)

    def _rhythm_phases(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` samples' phase of each rhythm (its frequency wanders slowly)."""
        # drawn (n, k) and transposed: (n1, k) then (n2, k) draws equal one (n1 + n2, k) draw
        white = self._rhythm_rng.standard_normal((n, len(self._rhythms))).T
        out = {}
        for k, (name, state) in enumerate(self._rhythms.items()):
            centre, sd, (lo, hi), wander, phase0 = state
            freq = np.clip(centre + sd * wander(white[k]), lo, hi)
            phase = phase0 + 2.0 * math.pi * np.cumsum(freq) / self._fs
            state[4] = float(phase[-1] % (2.0 * math.pi)) if n else phase0
            out[name] = np.mod(phase, 2.0 * math.pi)
        return out

    # Block synthesis -----------------------------------------------------------------------
    def _generate_block(self, out: np.ndarray, labels: np.ndarray) -> None:
        n = len(out)
        s0 = self._pos
        s1 = s0 + n
        t = np.arange(s0, s1, dtype=np.float64)
        self._extend_schedule(s1 + self._half + 1)

        weights = np.zeros((n, len(self.classes)))
        sources = np.zeros((n, len(self._source_names)))
        event_col = self._n_filtered + (1 if "hfo" in self._source_names else 0)

        white = self._latent_rng.standard_normal((n, self._n_noise)).T.copy()
        filtered = [None if f is None else f(white[k]) for k, f in enumerate(self._filters)]
        n_f = len(self._filters)
        drift = np.exp(_MOD_SIGMA * self._mod_filter(white[n_f:]))  # (n_modulated, n)

        # State weights (crossfaded) and labels, segment by segment.
        h = self._half
        first = max(0, bisect_right(self._starts, s0 - h) - 1)
        i = first
        while i < len(self._starts) and self._starts[i] - h < s1:
            start = self._starts[i]
            end = self._starts[i + 1] if i + 1 < len(self._starts) else self._next_start
            state = self._states[i]
            lo = 0 if i == 0 else min(n, max(0, math.floor(start - h) - s0))
            hi = min(n, max(0, math.ceil(end + h) + 1 - s0))
            if lo < hi:
                tt = t[lo:hi]
                w = np.ones(hi - lo) if i == 0 else self._rise(tt, start)
                w -= self._rise(tt, end)
                weights[lo:hi, state] += w
                if self._seg_params[i] is not None:
                    self._add_seizure(sources, filtered, tt, lo, hi, w, start, end, i, event_col)
            la, lb = max(0, start - s0), min(n, end - s0)
            if la < lb:
                labels[la:lb] = state
            i += 1

        env = np.einsum("ns,sk->nk", weights, self._amps)  # (n, 6) rms uV per filtered source
        if self._rhythms:
            self._last_phases = self._rhythm_phases(n)
            # theta: an oscillator of known phase, with the noise's rms (a cosine's is 1/sqrt 2)
            filtered[4] = math.sqrt(2.0) * np.cos(self._last_phases["theta"])
            slow_uv = np.array([_SLOW_UV.get(c, 0.0) for c in self.classes])
            delta_drift = drift[self._modulated.index(3)]
            slow = math.sqrt(2.0) * np.cos(self._last_phases["slow"])
            sources[:, -1] = slow * (weights @ slow_uv) * delta_drift
        for k in range(self._n_filtered):
            if filtered[k] is None:
                continue
            col = filtered[k] * env[:, k]
            if k in self._modulated:
                col *= drift[self._modulated.index(k)]
            sources[:, k] = col

        if self.config.scenario == "sleep":
            self._add_spindles(sources[:, event_col], t, s0, s1)
            sources[:, event_col] *= weights[:, self.classes.index("nrem")]

        if self._line_terms:
            line = sources[:, self._line_col]
            for cycles_per_sample, amp, phase in self._line_terms:
                # Phase from the absolute sample index: exact and independent of call sizes.
                cyc = np.mod(t * cycles_per_sample, 1.0)
                line += amp * np.sin(2.0 * math.pi * cyc + phase)

        # Channel mix of the latent sources, plus independent noise per channel. einsum, not
        # matmul: OpenBLAS threads a (3200, 10) @ (10, 64) sgemm and its worker then spins
        # between calls, taking the second core from the decoder (bench_simulator.py, 2 cores,
        # mix + noise per 0.1 s block: matmul 3.8 ms CPU for 1.9 ms wall, einsum 2.3 ms CPU
        # = wall). einsum is single-threaded and bitwise independent of the block size.
        self._chan_rng.standard_normal(out.shape, dtype=np.float32, out=out)
        out *= self._noise_scale
        out += np.einsum("nk,kc->nc", sources.astype(np.float32), self.gains)
        self._pos = s1
        self._prune_spindles(s1)

    def _add_seizure(
        self,
        sources: np.ndarray,
        filtered: list,
        tt: np.ndarray,
        lo: int,
        hi: int,
        w: np.ndarray,
        start: int,
        end: int,
        seg: int,
        col: int,
    ) -> None:
        """Add one seizure's spike-wave discharge (and locked fast ripples) to ``sources``."""
        fs = self._fs
        f0, f1, amp_factor = self._seg_params[seg]
        dur = (end - start) / fs
        tau = (tt - start) / fs  # seconds since onset (negative in the fade-in)
        u = np.clip(tau / dur, 0.0, 1.0)
        freq = f0 + (f1 - f0) * u
        # Closed-form phase of the linear chirp (constant frequency outside the seizure), so
        # no phase state is carried between calls.
        tau_in = np.clip(tau, 0.0, dur)
        cycles = (
            f0 * tau_in
            + 0.5 * (f1 - f0) * tau_in**2 / dur
            + f0 * np.minimum(tau, 0.0)
            + f1 * np.maximum(tau - dur, 0.0)
        )
        frac = cycles - np.floor(cycles)
        dt_spike = (frac - np.round(frac)) / freq  # seconds from the nearest spike
        spike = np.exp(-0.5 * (dt_spike / _SWD_SPIKE_SD_S) ** 2)
        wave = np.exp(_SWD_WAVE_KAPPA * (np.cos(2.0 * math.pi * (frac - _SWD_WAVE_AT)) - 1.0))
        # Remove the cycle mean so the discharge adds no slow offset.
        mean = -_SWD_SPIKE_SD_S * math.sqrt(2.0 * math.pi) * freq + _SWD_WAVE_GAIN * i0e(
            _SWD_WAVE_KAPPA
        )
        ramp = 1.0 - (1.0 - np.minimum(u / _SWD_RAMP_TO, 1.0)) ** 2
        amp = w * amp_factor * (_SWD_RAMP_FROM + (1.0 - _SWD_RAMP_FROM) * ramp)
        sources[lo:hi, col] += _SWD_UV * amp * (-spike + _SWD_WAVE_GAIN * wave - mean)
        hfo = filtered[_HFO_COLUMN]
        if hfo is not None:
            locked = np.exp(-0.5 * (dt_spike / _HFO_SD_S) ** 2)
            sources[lo:hi, _HFO_COLUMN] += _HFO_UV * amp * locked * hfo[lo:hi]

    def _add_spindles(self, col: np.ndarray, t: np.ndarray, s0: int, s1: int) -> None:
        self._extend_spindles(s1)
        for onset, duration, freq, peak, phase in self._spindles:
            if onset >= s1:
                break
            lo = max(0, math.ceil(onset) - s0)
            hi = min(len(col), math.ceil(onset + duration) - s0)
            if lo >= hi:
                continue
            rel = t[lo:hi] - onset
            envelope = np.sin(np.pi * rel / duration) ** 2  # waxing-waning
            col[lo:hi] += peak * envelope * np.sin(2.0 * math.pi * freq * rel + phase)

    def _prune_spindles(self, pos: int) -> None:
        keep = 0
        while keep < len(self._spindles) and sum(self._spindles[keep][:2]) < pos:
            keep += 1
        if keep:
            del self._spindles[:keep]
