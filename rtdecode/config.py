"""Frozen configuration objects shared by training and live decoding.

Each config round-trips through ``to_dict`` / ``from_dict`` (plain JSON types) so that it can
travel inside an ONNX model's metadata: the feature configuration a model was trained with is the
one the live decoder rebuilds.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "Band",
    "Ratio",
    "DEFAULT_BANDS",
    "DEFAULT_RATIOS",
    "FeatureConfig",
    "EventHysteresis",
    "StateHysteresis",
    "hysteresis_from_dict",
]


def _check_real(name: str, value: Any) -> None:
    """``TypeError`` unless ``value`` is a real number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")


def _check_whole(name: str, value: Any) -> None:
    """``TypeError`` unless ``value`` is an integer (not a bool, not a float like 2.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")


def _check_name(what: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {value!r} ({type(value).__name__})")
    if not value:
        raise ValueError(f"{what} must not be empty")


def _as_items(what: str, items: Any, item_type: type) -> tuple:
    """``items`` as a tuple of ``item_type``, each given as one or as a dict of its fields."""
    if isinstance(items, str) or not isinstance(items, (tuple, list)):
        raise TypeError(f"{what} must be a list, got {items!r} ({type(items).__name__})")
    out = []
    for item in items:
        if isinstance(item, dict):
            known = set(item_type.__dataclass_fields__)
            if set(item) != known:
                raise TypeError(f"{what} entries need the keys {sorted(known)}, got {item!r}")
            item = item_type(**item)
        elif not isinstance(item, item_type):
            raise TypeError(f"{what} must hold {item_type.__name__}s, got {item!r}")
        out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class Band:
    """A frequency band ``[lo_hz, hi_hz)`` with a stable name."""

    name: str
    lo_hz: float
    hi_hz: float

    def __post_init__(self) -> None:
        _check_name("band name", self.name)
        if not self.name.isidentifier():
            raise ValueError(f"band name must be an identifier, got {self.name!r}")
        _check_real(f"band {self.name!r} lo_hz", self.lo_hz)
        _check_real(f"band {self.name!r} hi_hz", self.hi_hz)
        if not (0.0 <= self.lo_hz < self.hi_hz < math.inf):
            raise ValueError(
                f"band {self.name!r}: need 0 <= lo_hz < hi_hz, both finite, got "
                f"{self.lo_hz}..{self.hi_hz} Hz"
            )


@dataclass(frozen=True)
class Ratio:
    """Power ratio ``numerator / denominator`` of two named bands (a log10 difference)."""

    name: str
    numerator: str
    denominator: str

    def __post_init__(self) -> None:
        _check_name("ratio name", self.name)
        _check_name(f"ratio {self.name!r} numerator", self.numerator)
        _check_name(f"ratio {self.name!r} denominator", self.denominator)


DEFAULT_BANDS: tuple[Band, ...] = (
    Band("delta", 1.0, 4.0),
    Band("theta", 6.0, 9.0),
    Band("sigma", 10.0, 15.0),
    Band("beta", 15.0, 30.0),
    Band("gamma", 30.0, 80.0),
    Band("high_gamma", 80.0, 150.0),
    Band("ripple", 150.0, 250.0),
    Band("fast_ripple", 250.0, 500.0),
)

# theta/delta separates REM from NREM; sigma/delta marks spindles; gamma/delta rises with
# EMG-like broadband activity in wake and with seizure discharges.
DEFAULT_RATIOS: tuple[Ratio, ...] = (
    Ratio("theta_delta", "theta", "delta"),
    Ratio("sigma_delta", "sigma", "delta"),
    Ratio("gamma_delta", "gamma", "delta"),
)

#: Per-recording feature normalisations (see FeatureConfig).
NORMALISATIONS = ("none", "relative", "baseline")


_MAX_PIECE_SAMPLES = 1024


def _auto_decimation(
    fs_hz: float, top_hz: float, hop_samples: int, max_factor: float = math.inf
) -> int:
    """Largest decimation factor that keeps >= 4x ``top_hz``, divides the hop exactly and is
    at most ``max_factor``."""
    limit = min(fs_hz / (4.0 * top_hz), max_factor)
    best = 1
    # the hop's divisors in pairs (d, hop / d): sqrt(hop) steps, whatever the rates and bands
    for d in range(1, math.isqrt(hop_samples) + 1):
        if hop_samples % d == 0:
            for factor in (d, hop_samples // d):
                if best < factor <= limit:
                    best = factor
    return best


@dataclass(frozen=True)
class FeatureConfig:
    """How band-power features are computed from a stream.

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the input stream, Hz.
    window_s : float
        Length of the analysis window, seconds (default 2 s).
    hop_s : float
        Time between decisions, seconds of *samples* (default 0.1 s).
    bands : tuple of Band
        Frequency bands. Bands whose lower edge is at or above the analysis Nyquist frequency are
        dropped when the config is built; a band crossing it is clipped.
    ratios : tuple of Ratio
        Band-power ratios computed per channel (ratios naming a dropped band are dropped).
    decimation : int
        Anti-aliased decimation factor applied before the FFT. ``0`` (default) chooses the largest
        factor that keeps the analysis rate >= 4x the top band edge and divides the hop.
    fir_taps_per_phase : int
        Length of each polyphase branch of the decimation filter (total taps =
        ``decimation * fir_taps_per_phase``).
    normalisation : {"none", "relative", "baseline"}
        Per-recording normalisation, causal so that it runs live: ``"relative"`` divides each
        channel's band powers by their sum (log relative power: a channel's gain cancels);
        ``"baseline"`` subtracts from every feature its running mean over about ``baseline_s``
        seconds of the stream so far (a cumulative mean until then, an exponential one after).
    baseline_s : float
        Time constant of the ``"baseline"`` running mean, seconds.
    short_windows_from_hz : float or None
        Bands whose lower edge is at or above this frequency (default 80 Hz), and which span
        at least two bins of ``1 / hop_s`` Hz, take their power from the window's hop-long
        pieces: the mean of their periodograms (each piece's linear trend removed; a strong
        slow rhythm leaks into them about 65 dB down). The other bands take it from one FFT of
        the whole window at the lowest rate that holds them (a second decimation that divides
        the hop, its filter's delay at most a quarter hop, the window at least 64 samples of
        it). Their window ends that filter's delay earlier than the pieces' (14.75 ms for the
        defaults at 32 kHz: 60 taps at 2 kHz), a lag of no weight for bands under 80 Hz; a
        fast band needs no 0.5 Hz bins, and one FFT of the whole window at the analysis rate
        was most of the features' cost. ``None``, a window that is not two or more whole hops,
        a hop of more than 1024 analysis samples, no band on either side, or no rate to shed
        for the slow bands (the default bands at 512 Hz and below; from 1 kHz the pieces
        apply): every band from one FFT of the whole window at the analysis rate (models saved
        before this option).

    Notes
    -----
    Window and hop are rounded to whole samples of the analysis (decimated) stream; the hop is a
    whole number of input samples, so decisions are clocked by the stream, not the wall clock.
    """

    fs_hz: float
    window_s: float = 2.0
    hop_s: float = 0.1
    bands: tuple[Band, ...] = DEFAULT_BANDS
    ratios: tuple[Ratio, ...] = DEFAULT_RATIOS
    decimation: int = 0
    fir_taps_per_phase: int = 12
    normalisation: str = "none"
    baseline_s: float = 300.0
    short_windows_from_hz: float | None = 80.0

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        for name in ("fs_hz", "window_s", "hop_s", "baseline_s"):
            _check_real(name, getattr(self, name))
        _check_whole("decimation", self.decimation)
        _check_whole("fir_taps_per_phase", self.fir_taps_per_phase)
        if self.short_windows_from_hz is not None:
            _check_real("short_windows_from_hz", self.short_windows_from_hz)
            if not (math.isfinite(self.short_windows_from_hz) and self.short_windows_from_hz > 0):
                raise ValueError(
                    "short_windows_from_hz must be a positive number or None, got "
                    f"{self.short_windows_from_hz!r}"
                )
        if not (math.isfinite(self.baseline_s) and self.baseline_s > 0):
            raise ValueError(f"baseline_s must be a positive number, got {self.baseline_s!r}")
        if not (math.isfinite(self.fs_hz) and self.fs_hz > 0):
            raise ValueError(f"fs_hz must be a positive number, got {self.fs_hz!r}")
        # infinity would pass "> 0" and then overflow the sample counts
        if not all(math.isfinite(v) and v > 0 for v in (self.window_s, self.hop_s)):
            raise ValueError(
                "window_s and hop_s must be finite numbers > 0, got "
                f"window_s={self.window_s}, hop_s={self.hop_s}"
            )
        if self.hop_s > self.window_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed window_s ({self.window_s})")
        hop_samples = round(self.hop_s * self.fs_hz)
        # the tolerance is relative to the hop: relative to the rate it let a 1 MHz stream's hop
        # be half a sample off
        if hop_samples < 1 or abs(hop_samples - self.hop_s * self.fs_hz) > 1e-6 * hop_samples:
            raise ValueError(
                f"hop_s={self.hop_s} s is not a whole number of samples at {self.fs_hz} Hz"
            )
        # Normalise containers to tuples of dataclasses (from_dict hands lists of dicts).
        bands = _as_items("bands", self.bands, Band)
        ratios = _as_items("ratios", self.ratios, Ratio)
        if not bands:
            raise ValueError("at least one band is required")
        names = [b.name for b in bands]
        if len(set(names)) != len(names):
            raise ValueError(f"band names must be unique, got {names}")
        # a band and a ratio of one name would make two features of one name
        clashes = sorted({r.name for r in ratios} & set(names))
        ratio_names = [r.name for r in ratios]
        if clashes or len(set(ratio_names)) != len(ratio_names):
            raise ValueError(
                f"ratio names must be unique and differ from the band names, got ratios "
                f"{ratio_names} with bands {names}"
            )
        decimation = self.decimation
        top_hz = max(b.hi_hz for b in bands)
        if decimation == 0:
            decimation = _auto_decimation(self.fs_hz, top_hz, hop_samples)
        if decimation < 1 or hop_samples % decimation:
            raise ValueError(
                f"decimation={decimation} must be >= 1 and divide the hop ({hop_samples} samples)"
            )
        nyquist = self.fs_hz / decimation / 2.0
        kept = tuple(
            b if b.hi_hz <= nyquist else Band(b.name, b.lo_hz, nyquist)
            for b in bands
            if b.lo_hz < nyquist
        )
        kept_names = {b.name for b in kept}
        for r in ratios:
            for part in (r.numerator, r.denominator):
                if part not in names:
                    raise ValueError(
                        f"ratio {r.name!r} names unknown band {part!r}; bands: {names}"
                    )
        ratios = tuple(
            r for r in ratios if r.numerator in kept_names and r.denominator in kept_names
        )
        if self.fir_taps_per_phase < 1:
            raise ValueError(f"fir_taps_per_phase must be >= 1, got {self.fir_taps_per_phase}")
        object.__setattr__(self, "bands", kept)
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "decimation", int(decimation))
        if self.window_samples_analysis < 8:
            raise ValueError(
                f"window_s={self.window_s} s gives only {self.window_samples_analysis} analysis samples"
            )
        bin_hz = _fft_bin_hz(self.window_samples_analysis, self.analysis_fs_hz)
        for b in kept:
            if not _holds_fft_bin(b, self.window_samples_analysis, bin_hz):
                raise ValueError(
                    f"band {b.name!r} ({b.lo_hz:g}-{b.hi_hz:g} Hz) holds no FFT bin: a "
                    f"{self.window_s:g} s window at {self.analysis_fs_hz:g} Hz has a bin every "
                    f"{bin_hz:g} Hz; widen the band or lengthen the window"
                )

    def at_rate(self, fs_hz: float) -> FeatureConfig:
        """The same features computed from a stream sampled at ``fs_hz``.

        The analysis rate, window, hop and bands stay the model's; only the decimation factor
        (and so the anti-aliasing filter) changes, e.g. a 30 kHz rig decimates by 15 instead of
        16 to reach a 32 kHz model's 2 kHz. Possible when ``fs_hz`` is a whole multiple of the
        analysis rate and the hop is a whole number of its samples.

        Raises
        ------
        ValueError
            Saying why the rate cannot be used.
        """
        fs_hz = float(fs_hz)
        if abs(fs_hz - self.fs_hz) <= 1e-6 * self.fs_hz:
            return self
        fs_a = self.analysis_fs_hz
        ratio = fs_hz / fs_a
        factor = round(ratio)
        if factor < 1 or abs(ratio - factor) > 1e-6 * ratio:
            raise ValueError(
                f"{fs_hz:g} Hz is not a whole multiple of the model's analysis rate {fs_a:g} Hz "
                f"(the model decimates {self.fs_hz:g} Hz by {self.decimation})"
            )
        hop = self.hop_s * fs_hz
        if abs(hop - round(hop)) > 1e-6 * hop:
            raise ValueError(
                f"the model's hop {self.hop_s:g} s is not a whole number of samples at {fs_hz:g} Hz"
            )
        return replace(self, fs_hz=fs_hz, decimation=factor)

    # Derived quantities -------------------------------------------------------------------
    @property
    def hop_samples(self) -> int:
        """Input samples between decisions."""
        return round(self.hop_s * self.fs_hz)

    @property
    def analysis_fs_hz(self) -> float:
        """Sampling rate after decimation, Hz."""
        return self.fs_hz / self.decimation

    @property
    def window_samples_analysis(self) -> int:
        """Window length in analysis (decimated) samples."""
        return round(self.window_s * self.analysis_fs_hz)

    @property
    def window_samples(self) -> int:
        """Window length in input samples."""
        return self.window_samples_analysis * self.decimation

    @property
    def hop_samples_analysis(self) -> int:
        """Analysis samples between decisions."""
        return self.hop_samples // self.decimation

    @property
    def short_window_bands(self) -> tuple[int, ...]:
        """Indices of the bands computed from hop-long pieces (``short_windows_from_hz``);
        empty when every band comes from one FFT of the whole window at the analysis rate."""
        if self.short_windows_from_hz is None:
            return ()
        hop_a = self.hop_samples_analysis
        # pieces: two or more to a window, each at most _MAX_PIECE_SAMPLES (their transform is
        # a matrix product, as cheap as an FFT only for short pieces)
        n_pieces, rest = divmod(self.window_samples_analysis, hop_a)
        if rest or n_pieces < 2 or hop_a > _MAX_PIECE_SAMPLES:
            return ()
        # at least two of a piece's bins, or the band's power would be one bin's
        piece_bin_hz = self.analysis_fs_hz / hop_a
        short = tuple(
            j
            for j, b in enumerate(self.bands)
            if b.lo_hz >= self.short_windows_from_hz and b.hi_hz - b.lo_hz >= 2 * piece_bin_hz
        )
        if not 0 < len(short) < len(self.bands):
            return ()
        # ... and only where the other bands' FFT gets cheaper: a rate above theirs to shed
        return short if self._long_window_decimation(short) > 1 else ()

    def _long_window_decimation(self, short: tuple[int, ...]) -> int:
        """The second decimation of the bands not in ``short``: its filter's delay at most a
        quarter hop and the slow bands' window at least 64 samples (a slow top edge of 5 Hz
        would otherwise ask for x100: a window of 4 samples, 0.3 s late at 2 kHz)."""
        top_hz = max(b.hi_hz for j, b in enumerate(self.bands) if j not in short)
        hop_a = self.hop_samples_analysis
        # delay (taps - 1) / 2 analysis samples, taps = factor * fir_taps_per_phase
        by_delay = (hop_a / 2 + 1) / self.fir_taps_per_phase
        by_window = self.window_samples_analysis / 64
        return _auto_decimation(self.analysis_fs_hz, top_hz, hop_a, min(by_delay, by_window))

    def long_window_config(self) -> FeatureConfig:
        """How the other bands are computed: from the analysis-rate stream, decimated again by
        the largest factor that divides the hop and keeps >= 4x their top edge; no ratios, no
        normalisation (both are applied to all the bands together). ``self`` when no band is
        computed from short pieces."""
        short = self.short_window_bands
        if not short:
            return self
        bands = tuple(b for j, b in enumerate(self.bands) if j not in short)
        factor = self._long_window_decimation(short)
        return FeatureConfig(
            fs_hz=self.analysis_fs_hz,
            window_s=self.window_s,
            hop_s=self.hop_s,
            bands=bands,
            ratios=(),
            decimation=factor,
            fir_taps_per_phase=self.fir_taps_per_phase,
            short_windows_from_hz=None,
        )

    @property
    def features_per_channel(self) -> int:
        return len(self.bands) + len(self.ratios)

    def feature_names(self, channel_labels: list[str] | tuple[str, ...]) -> list[str]:
        """Stable feature names ``"<channel>:<band or ratio>"``, channel-major."""
        per_channel = [b.name for b in self.bands] + [r.name for r in self.ratios]
        return [f"{ch}:{name}" for ch in channel_labels for name in per_channel]

    # Serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        if not isinstance(d, dict):
            raise TypeError(f"a feature config must be a JSON object, got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown feature config keys {sorted(unknown)}; known: {sorted(known)}"
            )
        # a config saved before short windows existed computed every band from the whole window
        return cls(**{"short_windows_from_hz": None, **d})


def _fft_bin_hz(n: int, fs_hz: float) -> float:
    """Spacing of the FFT bins of ``n`` samples at ``fs_hz``, computed as ``rfftfreq`` does."""
    return 1.0 / (n * (1.0 / fs_hz))


def _holds_fft_bin(band: Band, n: int, bin_hz: float) -> bool:
    """Whether a bin ``k * bin_hz`` (0 <= k <= n // 2) lies in ``[lo_hz, hi_hz)``."""
    first = math.ceil(band.lo_hz / bin_hz)
    # the neighbours too: the product k * bin_hz may round across an edge
    return any(
        0 <= k <= n // 2 and band.lo_hz <= k * bin_hz < band.hi_hz
        for k in (first - 1, first, first + 1)
    )


@dataclass(frozen=True)
class EventHysteresis:
    """Hysteresis for event tasks (e.g. seizure): one event class against the rest.

    Enter the event when ``p(event) >= on_threshold`` has held for ``on_dwell_s`` seconds of
    stream time; leave it when ``p(event) <= off_threshold`` has held for ``off_dwell_s``.
    """

    event_class: str
    on_threshold: float = 0.7
    off_threshold: float = 0.3
    on_dwell_s: float = 0.5
    off_dwell_s: float = 2.0
    kind: str = field(default="event", init=False)

    def __post_init__(self) -> None:
        if not (0.0 <= self.off_threshold <= self.on_threshold <= 1.0):
            raise ValueError(
                "need 0 <= off_threshold <= on_threshold <= 1, got "
                f"off={self.off_threshold}, on={self.on_threshold}"
            )
        if not all(math.isfinite(s) and s >= 0 for s in (self.on_dwell_s, self.off_dwell_s)):
            raise ValueError(
                "dwell times must be finite and >= 0 s, got "
                f"on={self.on_dwell_s}, off={self.off_dwell_s}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StateHysteresis:
    """Hysteresis for multi-class state tasks (e.g. wake / NREM / REM).

    Switch to class ``c`` only when ``p(c) - p(current) >= margin`` has held for ``dwell_s``
    seconds of stream time.
    """

    margin: float = 0.2
    dwell_s: float = 2.0
    kind: str = field(default="state", init=False)

    def __post_init__(self) -> None:
        if not (0.0 <= self.margin < 1.0):
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if not (math.isfinite(self.dwell_s) and self.dwell_s >= 0):
            raise ValueError(f"dwell_s must be finite and >= 0 s, got {self.dwell_s}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hysteresis_from_dict(d: dict[str, Any]) -> EventHysteresis | StateHysteresis:
    """Rebuild a hysteresis config from its ``to_dict`` form (dispatch on ``kind``)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind == "event":
        return EventHysteresis(**d)
    if kind == "state":
        return StateHysteresis(**d)
    raise ValueError(f"hysteresis kind must be 'event' or 'state', got {kind!r}")
