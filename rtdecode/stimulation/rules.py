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

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
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
        if kind != "in":
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
        """Whether the rule holds an output on (``in:``) rather than sending pulses."""
        return self.kind == "in"

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
) -> StimProtocol:
    """The common case from the command line: a pulse when the state is entered.

    ``trigger_on`` is a state (``rem``: ``enter:rem``) or a full condition (``in:rem``).
    """
    when = trigger_on if ":" in trigger_on else f"enter:{trigger_on}"
    rule = StimRule(
        name="trigger",
        when=when,
        pulse_ms=float(pulse_ms),
        refractory_s=float(refractory_s),
    )
    return StimProtocol((rule,), OutputConfig(port=port), source="flags")
