"""Stimulation rules: when a decoder's decisions trigger an output, and how.

A rule names a condition on the smoothed state (``enter:STATE``, ``exit:STATE``, ``in:STATE``,
``onset:STATE`` for event models) and an action (a pulse or pulse train, or a gate that stays on
while the state holds), with the controls labs use: a delay, a minimum time in the state, a
refractory period, a rate limit, a maximum on-time, sham and random-delay controls, and yoked
replay of another run's triggers. A :class:`StimProtocol` holds the rules and what applies to
all of them; it is read from a TOML file (:func:`load_protocol`) or built from command-line flags
(:func:`protocol_from_flags`).

Example rules file::

    [stim]
    armed = true             # start armed (an operator or an LSL marker stream may disarm)
    arm_stream = "rig-arm"   # optional: markers "arm" / "disarm" on this LSL stream
    seed = 1                 # random delays are reproducible

    [output]
    port = "/dev/ttyACM0"    # the trigger device (firmware/); omit for a dry run
    baud = 1000000
    watchdog_ms = 500        # the device turns its outputs off without a heartbeat this long

    [[rule]]
    name = "rem-laser"
    when = "in:rem"          # a gate: on while REM holds
    after_s = 10             # ... once it has held 10 s
    max_on_s = 60
    channel = 0

    [[rule]]
    name = "seizure-pulse"
    when = "enter:seizure"
    pulse_ms = 10
    pulses = 5
    period_ms = 100
    refractory_s = 30
    max_per_hour = 20
    blank_ms = 50            # windows holding a pulse (+ 50 ms) are not decided

    [[rule]]
    name = "theta-peak"
    when = "in:rem"          # while REM holds ...
    phase = { channel = "CH001", band = [6, 9], target_deg = 0 }   # ... a pulse at each peak
    pulse_ms = 5

A ``phase`` table (:class:`PhaseTarget`) turns an ``in:`` rule into pulses at a phase of a
rhythm: ``channel`` (or ``channels``, averaged), ``band`` (Hz), ``target_deg`` (0: the
band-passed signal's peaks, 180: its troughs, -90: its rise), and optionally ``every`` (every
Nth cycle), ``max_per_s``, ``min_amplitude`` (input units) and ``min_band_share`` (the band's
share of the signal's power below which the rhythm is taken to have no phase), ``method``
(``echt``, ``ar``) and ``window_s``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "KINDS",
    "PhaseTarget",
    "parse_phase_flag",
    "StimRule",
    "OutputConfig",
    "StimProtocol",
    "RulesError",
    "load_protocol",
    "protocol_from_flags",
]

#: The conditions a rule can watch. ``onset`` is ``enter`` for an event model's event class.
KINDS = ("enter", "exit", "in", "onset")
_MAX_U16 = 65535


class RulesError(ValueError):
    """A rules file or flag that cannot be used; the message names it and what is allowed."""


# The band's share of the window's power below which a rhythm is taken to have no phase.
# Measured through the tracker (theta 6-9 Hz, 0.5 s windows; slow oscillations 0.5-2 Hz, 4 s):
# white noise 0.03-0.06 (median), 0.10-0.15 (p95); the simulator's theta in REM and slow
# oscillation in NREM 0.58 and 0.50 in their 5 % weakest windows, the same bands in a state
# without the rhythm 0.03-0.05: a floor that lets rhythms through and stops pulses on noise.
# min_amplitude sets an absolute one.
DEFAULT_MIN_BAND_SHARE = 0.2
_PHASE_METHODS = ("echt", "ar")
_MIN_WINDOW_S = 0.5
_WINDOW_CYCLES = 2.0  # the default window: this many cycles of the band's lowest frequency


@dataclass(frozen=True)
class PhaseTarget:
    """Pulses at a phase of an ongoing rhythm (the ``phase`` table of an ``in:`` rule).

    Attributes
    ----------
    channels : tuple of str
        The channels whose mean carries the rhythm (labels of the stream, as the model names
        them); ``("all",)`` for every channel.
    band_hz : (float, float)
        The rhythm's band, Hz.
    target_deg : float
        The phase to hit, degrees: 0 the band-passed signal's peaks, 180 (or -180) its
        troughs, -90 its rising slope, 90 its falling one.
    every : int
        A pulse every Nth cycle (1: every cycle).
    max_per_s : float or None
        At most this many pulses a second (cycles beyond are skipped).
    min_amplitude : float
        No pulse while the rhythm's envelope is below this (input units, e.g. microvolts).
    min_band_share : float
        No pulse while the band holds less than this share of the signal's power (0-1).
    method : str
        The estimator, ``"echt"`` (endpoint-corrected Hilbert transform) or ``"ar"``
        (autoregressive forward prediction); see ``benchmarks/bench_phase.py``.
    window_s : float or None
        Seconds of signal each estimate looks at; None: two cycles of the band's lowest
        frequency, at least 0.5 s (bench_phase.py methods).
    """

    channels: tuple[str, ...]
    band_hz: tuple[float, float]
    target_deg: float
    every: int = 1
    max_per_s: float | None = None
    min_amplitude: float = 0.0
    min_band_share: float = DEFAULT_MIN_BAND_SHARE
    method: str = "echt"
    window_s: float | None = None

    def __post_init__(self) -> None:
        channels = self.channels
        if isinstance(channels, str):
            channels = (channels,)
        if (
            not isinstance(channels, tuple | list)
            or not channels
            or not all(isinstance(c, str) and c for c in channels)
        ):
            raise RulesError(f"phase channel(s) must be channel labels, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(channels))
        band = self.band_hz
        if (
            not isinstance(band, tuple | list)
            or len(band) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in band)
            or not (math.isfinite(band[0]) and math.isfinite(band[1]) and 0 < band[0] < band[1])
        ):
            raise RulesError(f"phase band must be [low, high] Hz with 0 < low < high, got {band!r}")
        object.__setattr__(self, "band_hz", (float(band[0]), float(band[1])))
        _check_number("phase", "target_deg", self.target_deg, minimum=-360.0, maximum=360.0)
        object.__setattr__(self, "target_deg", float(self.target_deg))
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise RulesError(f"phase every must be an int >= 1, got {self.every!r}")
        if self.max_per_s is not None:
            _check_number("phase", "max_per_s", self.max_per_s, minimum=1e-6)
        _check_number("phase", "min_amplitude", self.min_amplitude, minimum=0.0)
        _check_number("phase", "min_band_share", self.min_band_share, minimum=0.0, maximum=1.0)
        if self.method not in _PHASE_METHODS:
            raise RulesError(
                f"phase method must be one of {', '.join(_PHASE_METHODS)}, got {self.method!r}"
            )
        if self.window_s is not None:
            _check_number("phase", "window_s", self.window_s, minimum=0.05, maximum=60.0)

    @property
    def target_rad(self) -> float:
        return math.radians(self.target_deg)

    @property
    def estimate_window_s(self) -> float:
        """Seconds of signal each estimate looks at."""
        if self.window_s is not None:
            return float(self.window_s)
        return max(_MIN_WINDOW_S, _WINDOW_CYCLES / self.band_hz[0])

    def channel_indices(self, labels: Sequence[str]) -> list[int]:
        """The rows of ``labels`` (the stream's channels, in the features' order) to average.

        Raises
        ------
        RulesError
            A channel that is not among ``labels`` (matched exactly, else ignoring case).
        """
        labels = list(labels)
        if self.channels == ("all",):
            return list(range(len(labels)))
        lower = {}
        for i, label in enumerate(labels):
            lower.setdefault(label.lower(), []).append(i)
        out = []
        for name in self.channels:
            if name in labels:
                out.append(labels.index(name))
            elif len(lower.get(name.lower(), ())) == 1:
                out.append(lower[name.lower()][0])
            else:
                shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
                raise RulesError(
                    f"phase channel {name!r} is not a channel of the stream ({shown}); or "
                    "'all' for their mean"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(PhaseTarget)}
        return d | {"channels": list(self.channels), "band_hz": list(self.band_hz)}


def _phase_from_table(where: str, table: Any) -> PhaseTarget:
    """A rule's ``phase = {...}`` table: ``channel`` or ``channels``, ``band``, ``target_deg``."""
    if isinstance(table, PhaseTarget):
        return table
    if not isinstance(table, Mapping):
        raise RulesError(
            f'{where}: phase must be a table, e.g. phase = {{ channel = "CH001", band = [6, 9], '
            "target_deg = 0 }"
        )
    allowed = {"channel", "channels", "band", "target_deg", "every", "max_per_s",
               "min_amplitude", "min_band_share", "method", "window_s"}  # fmt: skip
    _known(f"{where} phase", table, allowed)
    if ("channel" in table) == ("channels" in table):
        raise RulesError(f"{where} phase: give one of channel (a label) or channels (a list)")
    for key in ("band", "target_deg"):
        if key not in table:
            raise RulesError(f"{where} phase: missing key {key!r}")
    values = dict(table)
    channels = values.pop("channel", None) or values.pop("channels")
    if isinstance(channels, list):
        channels = tuple(channels)
    values["band_hz"] = values.pop("band")
    try:
        return PhaseTarget(channels=channels, **values)
    except (RulesError, TypeError) as exc:
        raise RulesError(f"{where} phase: {exc}") from None


def parse_phase_flag(text: str) -> PhaseTarget:
    """``--trigger-phase CHANNELS:LOW-HIGH:DEG[:MIN_AMPLITUDE]`` (``CH001:6-9:0``; channels
    joined by ``+`` are averaged, ``all`` averages every channel; ``MIN_AMPLITUDE``, input units,
    is the phase table's ``min_amplitude``)."""
    parts = str(text).split(":")
    usage = (
        f"--trigger-phase {text!r}: expected CHANNEL:LOW-HIGH:DEGREES[:MIN_AMPLITUDE], e.g. "
        "CH001:6-9:0 (theta peaks on CH001) or C3:0.5-2:0:37.5 (slow-oscillation up-states of "
        "at least 37.5 uV, the AASM's 75 uV peak to peak)"
    )
    if len(parts) not in (3, 4) or not parts[0]:
        raise RulesError(usage)
    low, sep, high = parts[1].partition("-")
    try:
        band = (float(low), float(high))
        target = float(parts[2])
        min_amplitude = float(parts[3]) if len(parts) == 4 else 0.0
    except ValueError:
        raise RulesError(usage) from None
    if not sep:
        raise RulesError(usage)
    try:
        return PhaseTarget(
            channels=tuple(parts[0].split("+")),
            band_hz=band,
            target_deg=target,
            min_amplitude=min_amplitude,
        )
    except RulesError as exc:
        raise RulesError(f"--trigger-phase {text!r}: {exc}") from None


@dataclass(frozen=True)
class StimRule:
    """One stimulation rule.

    Attributes
    ----------
    name : str
        Identifies the rule in the log, the ``rtdecode-stim`` markers and yoked replays.
    when : str
        ``"KIND:STATE"``, KIND one of :data:`KINDS`.
    channel : int
        The device's output channel (0-7).
    delay_ms : float
        From the decision to the output, carried out by the device's clock.
    random_delay_ms : float
        A uniform random extra delay in ``[0, random_delay_ms]`` (a control; seeded).
    pulse_ms, pulses, period_ms : float, int, float
        Pulse width, number of pulses and onset-to-onset period of a train (``pulses`` 1: a
        single pulse). Not used by ``in:`` rules, which are gates.
    after_s : float
        The condition must have held this long (``exit``: the state must have been left this
        long) before the rule fires.
    refractory_s : float
        No trigger of this rule sooner than this after its previous one.
    max_per_hour : int or None
        At most this many triggers of this rule in any 3600 s.
    max_on_s : float or None
        A gate goes off after this long even if the state holds (and stays off until the state
        is entered again); the device also enforces it (up to 65.5 s).
    blank_ms : float
        After each pulse (or gate edge), windows that contain it or end within this many ms
        after it are not decided, so the artefact cannot flip the state.
    sham : bool
        Decided and logged as a sham; nothing is sent to the device.
    yoked : str or None
        A decision log of another run: this rule fires at the times (from the run's start) at
        which that run's rule of the same name triggered, whatever the state (a yoked control).
    phase : PhaseTarget or None
        ``in:`` rules only: instead of a gate, pulses at this phase of a rhythm while the state
        holds (the delay of each is computed; ``delay_ms`` and ``random_delay_ms`` stay 0).
    """

    name: str
    when: str
    channel: int = 0
    delay_ms: float = 0.0
    random_delay_ms: float = 0.0
    pulse_ms: float = 10.0
    pulses: int = 1
    period_ms: float = 0.0
    after_s: float = 0.0
    refractory_s: float = 0.0
    max_per_hour: int | None = None
    max_on_s: float | None = None
    blank_ms: float = 0.0
    sham: bool = False
    yoked: str | None = None
    phase: PhaseTarget | None = None

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if self.phase is not None and not isinstance(self.phase, PhaseTarget):
            object.__setattr__(self, "phase", _phase_from_table(where, self.phase))
        if not isinstance(self.name, str) or not self.name.strip():
            raise RulesError(f"a rule needs a non-empty name, got {self.name!r}")
        kind, _, state = str(self.when).partition(":")
        if kind not in KINDS or not state:
            raise RulesError(
                f"{where}: when={self.when!r}; expected KIND:STATE with KIND one of "
                f"{', '.join(KINDS)} (e.g. 'enter:rem')"
            )
        if isinstance(self.channel, bool) or not isinstance(self.channel, int):
            raise RulesError(f"{where}: channel must be an int 0-7, got {self.channel!r}")
        if not 0 <= self.channel <= 7:
            raise RulesError(f"{where}: channel must be 0-7, got {self.channel}")
        for name in ("delay_ms", "random_delay_ms", "after_s", "refractory_s", "blank_ms"):
            _check_number(where, name, getattr(self, name), minimum=0.0)
        if self.delay_ms + self.random_delay_ms > _MAX_U16:
            raise RulesError(f"{where}: delay_ms + random_delay_ms must be <= {_MAX_U16} ms")
        if self.phase is not None:
            if kind != "in":
                raise RulesError(
                    f"{where}: a phase rule stimulates while its state holds: use "
                    f"when = 'in:{state}', got when={self.when!r}"
                )
            if self.delay_ms or self.random_delay_ms:
                raise RulesError(
                    f"{where}: a phase rule's delay is computed from the rhythm: leave out "
                    "delay_ms and random_delay_ms"
                )
            if self.yoked is not None:
                raise RulesError(f"{where}: a phase rule cannot be yoked")
            if self.blank_ms:
                # a pulse every cycle would put one in every window: none would be decided
                raise RulesError(
                    f"{where}: a phase rule pulses at every cycle, so blank_ms would hold back "
                    "every window; leave it out"
                )
        if kind != "in" or self.phase is not None:
            _check_number(where, "pulse_ms", self.pulse_ms, minimum=1.0, maximum=_MAX_U16)
            if isinstance(self.pulses, bool) or not isinstance(self.pulses, int):
                raise RulesError(f"{where}: pulses must be an int 1-255, got {self.pulses!r}")
            if not 1 <= self.pulses <= 255:
                raise RulesError(f"{where}: pulses must be 1-255, got {self.pulses}")
            _check_number(where, "period_ms", self.period_ms, minimum=0.0, maximum=_MAX_U16)
            if self.pulses > 1 and self.period_ms <= self.pulse_ms:
                raise RulesError(
                    f"{where}: a train of {self.pulses} pulses needs period_ms > pulse_ms "
                    f"({self.pulse_ms:g}), got period_ms={self.period_ms:g}"
                )
        if self.max_per_hour is not None and (
            isinstance(self.max_per_hour, bool)
            or not isinstance(self.max_per_hour, int)
            or self.max_per_hour < 1
        ):
            raise RulesError(
                f"{where}: max_per_hour must be an int >= 1, got {self.max_per_hour!r}"
            )
        if self.max_on_s is not None:
            _check_number(where, "max_on_s", self.max_on_s, minimum=0.001)
        if not isinstance(self.sham, bool):
            raise RulesError(f"{where}: sham must be true or false, got {self.sham!r}")
        if self.yoked is not None and not isinstance(self.yoked, str):
            raise RulesError(f"{where}: yoked must be the path of a decision log")

    @property
    def kind(self) -> str:
        """``enter``, ``exit``, ``in`` or ``onset``."""
        return self.when.partition(":")[0]

    @property
    def state(self) -> str:
        """The state the rule watches."""
        return self.when.partition(":")[2]

    @property
    def is_gate(self) -> bool:
        """Whether the rule holds an output on (``in:`` without ``phase``) rather than sending
        pulses."""
        return self.kind == "in" and self.phase is None

    @property
    def train_ms(self) -> float:
        """From the first pulse's onset to the last pulse's end."""
        if self.is_gate:
            return 0.0
        return (self.pulses - 1) * self.period_ms + self.pulse_ms


@dataclass(frozen=True)
class OutputConfig:
    """Where triggers go: a serial trigger device, or nowhere (a dry run).

    Attributes
    ----------
    port : str or None
        A serial port (``/dev/ttyACM0``, ``COM3``, a pseudo-terminal's path); None: no device.
    baud : int
        The firmware's rate (1,000,000 by default; USB boards such as a Teensy ignore it).
    watchdog_ms : int
        The device turns every output off when it hears nothing for this long.
    heartbeat_ms : int
        How often rtdecode tells the device it is alive (well under ``watchdog_ms``).
    ack_timeout_ms : int
        How long to wait for the device's acknowledgement of a command before logging it as
        missing.
    """

    port: str | None = None
    baud: int = 1_000_000
    watchdog_ms: int = 500
    heartbeat_ms: int = 100
    ack_timeout_ms: int = 200

    def __post_init__(self) -> None:
        if self.port is not None and (not isinstance(self.port, str) or not self.port):
            raise RulesError(f"output port must be a path or device name, got {self.port!r}")
        for name, low, high in (
            ("baud", 300, 10_000_000),
            ("watchdog_ms", 10, _MAX_U16),
            ("heartbeat_ms", 5, 10_000),
            ("ack_timeout_ms", 1, 10_000),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise RulesError(f"output {name} must be an int in {low}..{high}, got {value!r}")
        if self.heartbeat_ms * 2 > self.watchdog_ms:
            raise RulesError(
                f"output heartbeat_ms ({self.heartbeat_ms}) must be at most half of watchdog_ms "
                f"({self.watchdog_ms}), or one late heartbeat turns the outputs off"
            )


@dataclass(frozen=True)
class StimProtocol:
    """The rules of one run and what applies to all of them.

    Attributes
    ----------
    rules : tuple of StimRule
    output : OutputConfig
    armed : bool
        Whether the run starts armed.
    arm_stream : str or None
        An LSL marker stream whose ``arm`` / ``disarm`` markers arm and disarm the rules.
    seed : int
        Seed of the random delays.
    source : str
        Where the protocol came from (a file's path, or ``"flags"``), for messages and the log.
    """

    rules: tuple[StimRule, ...]
    output: OutputConfig = field(default_factory=OutputConfig)
    armed: bool = True
    arm_stream: str | None = None
    seed: int = 0
    source: str = "flags"

    def __post_init__(self) -> None:
        if not self.rules:
            raise RulesError(f"{self.source}: no [[rule]] given")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise RulesError(f"{self.source}: rule names must be unique, got {names}")

    @property
    def phase_rules(self) -> tuple[StimRule, ...]:
        return tuple(r for r in self.rules if r.phase is not None)

    def check_channels(self, labels: Sequence[str]) -> None:
        """Refuse phase rules whose channels the stream does not have."""
        for rule in self.phase_rules:
            try:
                rule.phase.channel_indices(labels)
            except RulesError as exc:
                raise RulesError(f"{self.source}: rule {rule.name!r}: {exc}") from None

    def check_states(self, classes: Sequence[str], task: str) -> None:
        """Refuse rules whose state the model cannot decide (``onset`` needs an event model)."""
        for rule in self.rules:
            if rule.state not in classes:
                raise RulesError(
                    f"{self.source}: rule {rule.name!r} watches state {rule.state!r}, which the "
                    f"model does not decide; its classes are {list(classes)}"
                )
            if rule.kind == "onset" and task != "event":
                raise RulesError(
                    f"{self.source}: rule {rule.name!r} uses onset:, which needs an event model "
                    f"(this one is a {task} model: use enter:{rule.state})"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for the log's start line."""
        return {
            "source": self.source,
            "armed": self.armed,
            "arm_stream": self.arm_stream,
            "seed": self.seed,
            "output": {f.name: getattr(self.output, f.name) for f in fields(OutputConfig)},
            "rules": [
                {
                    f.name: getattr(r, f.name)
                    for f in fields(StimRule)
                    if getattr(r, f.name) != f.default
                }
                | {"name": r.name, "when": r.when}
                | ({"phase": r.phase.to_dict()} if r.phase is not None else {})
                for r in self.rules
            ],
        }


def _check_number(where: str, name: str, value: Any, *, minimum: float, maximum: float = math.inf):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RulesError(f"{where}: {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and minimum <= value <= maximum):
        bound = f">= {minimum:g}" if maximum == math.inf else f"in {minimum:g}..{maximum:g}"
        raise RulesError(f"{where}: {name} must be {bound}, got {value!r}")


def _known(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RulesError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _rule_from_table(where: str, table: Mapping[str, Any]) -> StimRule:
    allowed = {f.name for f in fields(StimRule)}
    _known(where, table, allowed)
    for key in ("name", "when"):
        if key not in table:
            raise RulesError(f"{where}: missing key {key!r}")
    values = dict(table)
    if "phase" in values:
        values["phase"] = _phase_from_table(where, values["phase"])
    for key in ("delay_ms", "random_delay_ms", "pulse_ms", "period_ms", "after_s",
                "refractory_s", "blank_ms", "max_on_s"):  # fmt: skip
        if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
            values[key] = float(values[key])
    try:
        return StimRule(**values)
    except RulesError as exc:
        raise RulesError(f"{where}: {exc}") from None


def load_protocol(path: str | Path) -> StimProtocol:
    """Read a rules file (TOML, see the module's example).

    Raises
    ------
    RulesError
        The file is missing, is not TOML, or holds a key or value that cannot be used; the
        message names the file, the rule and the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"rules file {str(path)!r} cannot be read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {str(path)!r} is not valid TOML: {exc}") from None
    where = str(path)
    _known(where, doc, {"stim", "output", "rule"})
    stim = doc.get("stim", {})
    _known(f"{where} [stim]", stim, {"armed", "arm_stream", "seed"})
    out = doc.get("output", {})
    _known(f"{where} [output]", out, {f.name for f in fields(OutputConfig)})
    tables = doc.get("rule", [])
    if not isinstance(tables, list):
        raise RulesError(f"{where}: rules go in [[rule]] tables (double brackets)")
    rules = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise RulesError(f"{where}: rule {i + 1} must be a table of keys")
        if isinstance(table.get("yoked"), str) and not Path(table["yoked"]).is_absolute():
            # a yoked log named relative to the rules file, as a lab would write it
            table = table | {"yoked": str((path.parent / table["yoked"]).resolve())}
        rules.append(_rule_from_table(f"{where} rule {i + 1} ({table.get('name', '?')})", table))
    armed = stim.get("armed", True)
    if not isinstance(armed, bool):
        raise RulesError(f"{where} [stim]: armed must be true or false, got {armed!r}")
    seed = stim.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RulesError(f"{where} [stim]: seed must be an int >= 0, got {seed!r}")
    arm_stream = stim.get("arm_stream")
    if arm_stream is not None and (not isinstance(arm_stream, str) or not arm_stream):
        raise RulesError(f"{where} [stim]: arm_stream must be a stream name, got {arm_stream!r}")
    try:
        output = OutputConfig(**out)
    except RulesError as exc:
        raise RulesError(f"{where} [output]: {exc}") from None
    return StimProtocol(tuple(rules), output, armed, arm_stream, seed, source=where)


def protocol_from_flags(
    *,
    trigger_on: str,
    port: str | None,
    pulse_ms: float = 10.0,
    refractory_s: float = 0.0,
    phase: str | None = None,
) -> StimProtocol:
    """The common case from the command line: a pulse when the state is entered, or with
    ``phase`` (``--trigger-phase CH001:6-9:0``) a pulse at that phase of every cycle while it
    holds.

    ``trigger_on`` is a state (``rem``: ``enter:rem``, or ``in:rem`` with ``phase``) or a full
    condition (``in:rem``).
    """
    target = None if phase is None else parse_phase_flag(phase)
    default_kind = "enter" if target is None else "in"
    when = trigger_on if ":" in trigger_on else f"{default_kind}:{trigger_on}"
    rule = StimRule(
        name="trigger",
        when=when,
        pulse_ms=float(pulse_ms),
        refractory_s=float(refractory_s),
        phase=target,
    )
    return StimProtocol((rule,), OutputConfig(port=port), source="flags")
