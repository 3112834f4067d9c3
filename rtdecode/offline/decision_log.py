"""A decision log read back as a timeline on the recording's clock: state intervals, triggers,
and stretches without signal or with a stalled decoder.

Reads the JSON lines of ``rtdecode run --log`` (decisions with ``t`` and ``end_sample``,
events, triggers; rotated files in order) or of ``rtdecode evaluate --decisions`` (decisions
with ``end_s``). Times come out in seconds from the decoded stream's first sample; how a
decision gets its time is :func:`read_decision_log`'s ``align``:

- ``samples``: ``(end_sample + samples lost before it) / fs_hz``, the samples lost being the
  ``missing_samples`` of the run's ``gap`` events. Exact whatever the LSL clock did, and the
  only right one for a replay faster than real time (its LSL time runs faster); it needs the
  stream's sample count to go on through the whole log, so one run (one ``start`` event).
- ``lsl``: the first decision's ``end_sample / fs_hz``, then the LSL timestamp difference
  ``t - t_first``. For logs of several runs (a restarted decoder counts its samples from 0
  again, the machine's LSL clock goes on).
- evaluate's decisions carry their time (``end_s``, already the recording's).

A decision's time is its window's end (one period after its last sample, as
:meth:`rtdecode.offline.recordings.Recording.end_time_s`): the state it reports holds from there
until the next decision. Events that carry only an LSL time (``no_signal``, ``decoder_stall``)
are placed by the nearest decision before them, plus the LSL time between the two.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rtdecode.offline.recordings import DataError

__all__ = [
    "StateInterval",
    "TriggerEvent",
    "HealthInterval",
    "DecisionTimeline",
    "read_decision_log",
    "ALIGNMENTS",
]

logger = logging.getLogger("rtdecode")

#: The ways to put a live log's decisions on the recording's clock (see the module notes).
ALIGNMENTS = ("auto", "samples", "lsl")

# a step between decisions beyond this many hops is a stretch without decisions (a gap, a
# stall, a restart): the state before it is not stretched over it
_BREAK_HOPS = 1.5

# what opens a health interval, and what closes it
_HEALTH_OPEN = {"no_signal": "no_signal", "decoder_stall": "decoder_stalled"}
_HEALTH_CLOSE = {
    "no_signal": {"signal_resumed"},
    "decoder_stalled": {"decoder_recovered", "decoder_gave_up"},
}


@dataclass(frozen=True)
class StateInterval:
    """A run of decisions of one state.

    Attributes
    ----------
    start_s, stop_s : float
        Seconds from the decoded stream's first sample: the first decision's window end, and
        the next decision's (or the last one's plus a hop when none follows at once).
    state : str
        A class, or ``bad_signal``.
    decisions : int
    mean_probability : float
        The mean probability of ``state`` over the run's decisions; NaN for a state that is no
        class.
    stale : bool
        Decisions too old to publish (``"stale": true`` in the log): decided and logged, never
        sent to consumers, so nothing acted on them.
    run : int
        Which run of the log (1 for the first ``start`` event).
    """

    start_s: float
    stop_s: float
    state: str
    decisions: int
    mean_probability: float
    stale: bool
    run: int


@dataclass(frozen=True)
class TriggerEvent:
    """One trigger line of the log.

    Attributes
    ----------
    time_s : float
        When the output was to start: the decision's time plus the rule's ``delay_ms`` (seconds
        from the decoded stream's first sample).
    duration_s : float
        A pulse train's length; a gate's time on (until its ``off``); NaN otherwise (``off``
        lines, suppressed triggers, a gate never turned off in the log).
    decision_s : float
        The time of the decision that made it.
    rule, action, state, reason : str
    sent : bool
        The command went to the device (not suppressed, not a sham).
    suppressed, control : str
        Why it was suppressed, and ``sham``/``yoked``; empty when neither.
    channel, pulses : int
    pulse_ms, period_ms, delay_ms, round_trip_ms : float
        ``round_trip_ms`` is NaN when the device did not acknowledge (or no device).
    """

    time_s: float
    duration_s: float
    decision_s: float
    rule: str
    action: str
    state: str
    reason: str
    sent: bool
    suppressed: str
    control: str
    channel: int
    pulses: int
    pulse_ms: float
    period_ms: float
    delay_ms: float
    round_trip_ms: float


@dataclass(frozen=True)
class HealthInterval:
    """A stretch without signal (``no_signal``) or with a stalled decoder (``decoder_stalled``).

    Attributes
    ----------
    start_s, stop_s : float
        Seconds from the decoded stream's first sample.
    kind : str
    ended_by : str
        The event that ended it (``signal_resumed``, ``decoder_recovered``, ``stop``, ...), or
        ``end of log``.
    """

    start_s: float
    stop_s: float
    kind: str
    ended_by: str


@dataclass(frozen=True)
class DecisionTimeline:
    """A decision log on the recording's clock (see the module notes).

    Attributes
    ----------
    states : tuple of StateInterval
    triggers : tuple of TriggerEvent
    health : tuple of HealthInterval
    alignment : str
        ``samples``, ``lsl`` or ``recording`` (evaluate's decisions).
    alignment_text : str
        How the times were made, in words (for the exported file).
    runs : int
        ``start`` events in the log (1 for evaluate's decisions).
    fs_hz : float or None
        The decoded stream's rate (from the first ``start`` event).
    first_sample_unix : float or None
        The wall-clock time (s since 1970) of the decoded stream's first sample, from the first
        ``start`` event (it gives both clocks); None for evaluate's decisions.
    start : dict
        The first ``start`` event (model, stream, source_id, ...); empty for evaluate's.
    decisions : int
    """

    states: tuple[StateInterval, ...]
    triggers: tuple[TriggerEvent, ...]
    health: tuple[HealthInterval, ...]
    alignment: str
    alignment_text: str
    runs: int
    fs_hz: float | None
    first_sample_unix: float | None
    start: dict = field(default_factory=dict)
    decisions: int = 0


# Reading ----------------------------------------------------------------------------------
@dataclass
class _Run:
    start: dict
    decisions: list[dict] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (at_sample, missing so far)


def _records(paths: Sequence[Path]) -> list[tuple[str, dict]]:
    """Every line of the files as (where, record); a torn last line of a file is skipped."""
    out = []
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: no such decision log")
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: cannot read it as a JSON-lines decision log ({exc})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines) and out:
                    # the last line of a log cut by a power failure: the rest is whole
                    logger.warning("%s: line %d is cut short; left out", p, n)
                    continue
                raise DataError(
                    f"{p}: line {n} is not JSON: is this a decision log (rtdecode run --log, "
                    "rtdecode evaluate --decisions)?"
                ) from None
            if not isinstance(rec, dict):
                raise DataError(f"{p}: line {n} is not a JSON object: is this a decision log?")
            out.append((f"{p}: line {n}", rec))
    return out


def _number(where: str, rec: dict, key: str) -> float:
    value = rec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where}: {key!r} is {value!r}, not a finite number")
    return float(value)


def read_decision_log(
    paths: str | Path | Sequence[str | Path], *, align: str = "auto"
) -> DecisionTimeline:
    """Read a decision log as a timeline in seconds from the decoded stream's first sample.

    Parameters
    ----------
    paths : path or sequence of paths
        The log; a rotated log's files oldest first, the current one last (the first must hold
        the first ``start`` event).
    align : {"auto", "samples", "lsl"}
        How live decisions get their time (module notes); ``auto``: ``samples`` for a log of one
        run, else ``lsl``. Ignored for evaluate's decisions.

    Raises
    ------
    DataError
        A missing or unreadable file, a line that is no JSON object, a decision without its
        fields, a log with no decision, ``samples`` asked of a log of several runs.
    """
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paths must name at least one log file")
    records = _records(paths)
    names = ", ".join(str(p) for p in paths)
    offline = [(w, r) for w, r in records if "end_s" in r and "probs" in r]
    if offline:
        if len(offline) != len(records):
            raise DataError(
                f"{names}: mixes rtdecode evaluate's decisions (end_s) with other lines; export "
                "one kind of log at a time"
            )
        return _offline_timeline(offline)
    runs: list[_Run] = []
    events: list[tuple[int, str, dict]] = []  # (run index, where, event) in log order
    triggers: list[tuple[int, str, dict]] = []
    for where, rec in records:
        kind = rec.get("event")
        if kind == "start":
            _number(where, rec, "fs_hz")
            runs.append(_Run(rec))
            events.append((len(runs) - 1, where, rec))
            continue
        if not runs:
            if kind is None and "probs" in rec:
                raise DataError(
                    f"{where}: a decision before any start event: give the log's files oldest "
                    "first (a rotated log's first file holds the start event)"
                )
            continue  # events of no run (a log started by hand): nothing to place them by
        run = runs[-1]
        if kind is None:
            if not ("probs" in rec and "state" in rec):
                raise DataError(
                    f"{where}: neither a decision (t, end_sample, probs, state) nor an event: is "
                    "this a decision log (rtdecode run --log)?"
                )
            _number(where, rec, "t")
            _number(where, rec, "end_sample")
            if not isinstance(rec["probs"], dict) or not isinstance(rec["state"], str):
                raise DataError(f"{where}: 'probs' must be an object and 'state' a string")
            run.decisions.append(rec)
        elif kind == "trigger":
            triggers.append((len(runs) - 1, where, rec))
        elif kind == "gap" and isinstance(rec.get("at_sample"), int):
            run.gaps.append((int(rec["at_sample"]), int(rec.get("missing_samples") or 0)))
        elif isinstance(kind, str):
            events.append((len(runs) - 1, where, rec))
    n_decisions = sum(len(r.decisions) for r in runs)
    if not n_decisions:
        raise DataError(
            f"{names}: holds no decision: is it a decision log (rtdecode run --log, rtdecode "
            "evaluate --decisions)?"
        )
    if align == "samples" and len(runs) > 1:
        raise DataError(
            f"{names}: {len(runs)} runs (start events): each counts its samples from 0, so "
            "--align samples cannot place them on one clock; use --align lsl, or export each "
            "run's lines on their own"
        )
    mode = align if align != "auto" else ("samples" if len(runs) == 1 else "lsl")
    clock = _Clock(runs, mode)
    states = _state_intervals(runs, clock)
    health = _health_intervals(events, clock)
    trig = _triggers(triggers, clock)
    first = next(r for r in runs if r.decisions)
    d0 = first.decisions[0]
    fs0 = float(first.start["fs_hz"])
    unix = first.start.get("unix_time")
    t_start = first.start.get("t")
    first_unix = None
    if isinstance(unix, int | float) and isinstance(t_start, int | float):
        # the LSL time of sample 0 (the window's last sample is end_sample - 1), on the wall clock
        first_unix = float(unix) + (d0["t"] - (d0["end_sample"] - 1) / fs0 - float(t_start))
    return DecisionTimeline(
        states=tuple(states),
        triggers=tuple(trig),
        health=tuple(health),
        alignment=mode,
        alignment_text=clock.text,
        runs=len(runs),
        fs_hz=fs0,
        first_sample_unix=first_unix,
        start=dict(first.start),
        decisions=n_decisions,
    )


class _Clock:
    """Decision times of a live log, by samples or by LSL time (see the module notes)."""

    def __init__(self, runs: list[_Run], mode: str) -> None:
        self.mode = mode
        self._runs = runs
        first = next(d for r in runs for d in r.decisions)
        self._fs0 = float(next(r for r in runs if r.decisions).start["fs_hz"])
        self._t0 = float(first["t"])
        self._e0 = float(first["end_sample"]) / self._fs0
        if mode == "samples":
            fs = float(runs[0].start["fs_hz"])
            gaps = len(runs[0].gaps)
            self.text = (
                f"decision times are sample counts of the decoded stream ({fs:g} Hz): window end "
                "= (end_sample + samples lost in gaps before it) / fs_hz, seconds from the "
                "stream's first sample" + (f" ({gaps} gap(s) in the log)" if gaps else "")
            )
        else:
            self.text = (
                "decision times are LSL timestamps: the first decision's window end "
                f"(end_sample / {self._fs0:g} Hz), then t - t_first; seconds from the first "
                f"decoded stream's first sample ({len(runs)} run(s))"
            )
        # (LSL t, time s) of every decision, for events that carry only an LSL time
        pairs = [
            (float(d["t"]), self.decision(i, d)) for i, r in enumerate(runs) for d in r.decisions
        ]
        pairs.sort()
        self._lsl = np.array([a for a, _ in pairs])
        self._time = np.array([b for _, b in pairs])
        self.last_s = float(self._time.max())

    def decision(self, run: int, rec: dict) -> float:
        """The window end of a decision (or trigger) line of run ``run``, seconds."""
        if self.mode == "lsl":
            return self._e0 + (float(rec["t"]) - self._t0)
        r = self._runs[run]
        end = int(rec["end_sample"])
        lost = 0
        for at_sample, missing in r.gaps:
            if at_sample < end:
                lost = missing  # cumulative: the latest gap before the window's end
        return (end + lost) / float(r.start["fs_hz"])

    def at_lsl(self, t: float) -> float:
        """An event's LSL time on the timeline: by the nearest decision before it (after it,
        when none is before)."""
        if self.mode == "lsl":
            return self._e0 + (t - self._t0)
        i = int(np.searchsorted(self._lsl, t, side="right")) - 1
        i = max(i, 0)
        return float(self._time[i] + (t - self._lsl[i]))


def _hop_s(times: list[float]) -> float:
    steps = np.diff(np.asarray(times, dtype=np.float64))
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 0.0


def _state_intervals(runs: list[_Run], clock: _Clock) -> list[StateInterval]:
    per_run = [[clock.decision(i, d) for d in r.decisions] for i, r in enumerate(runs)]
    hop_all = _hop_s([t for times in per_run for t in times])
    out: list[StateInterval] = []
    for i, (run, times) in enumerate(zip(runs, per_run)):
        hop = _hop_s(times) or hop_all
        rows = [
            (t, d["state"], bool(d.get("stale", False)), d["probs"].get(d["state"]))
            for t, d in zip(times, run.decisions)
        ]
        out += _runs_of(rows, hop, i + 1)
    return out


def _runs_of(rows: list[tuple], hop: float, run: int) -> list[StateInterval]:
    """Intervals of consecutive (time, state, stale, probability) rows of one state."""
    out = []
    k = 0
    while k < len(rows):
        j = k
        while (
            j + 1 < len(rows)
            and rows[j + 1][1:3] == rows[k][1:3]
            and rows[j + 1][0] - rows[j][0] <= _BREAK_HOPS * hop
        ):
            j += 1
        contiguous = j + 1 < len(rows) and rows[j + 1][0] - rows[j][0] <= _BREAK_HOPS * hop
        stop = rows[j + 1][0] if contiguous else rows[j][0] + hop
        probs = [p for *_, p in rows[k : j + 1] if isinstance(p, int | float)]
        out.append(
            StateInterval(
                start_s=rows[k][0],
                stop_s=stop,
                state=rows[k][1],
                decisions=j + 1 - k,
                mean_probability=float(np.mean(probs)) if probs else math.nan,
                stale=rows[k][2],
                run=run,
            )
        )
        k = j + 1
    return out


def _health_intervals(events: list[tuple[int, str, dict]], clock: _Clock) -> list[HealthInterval]:
    out: list[HealthInterval] = []
    open_: dict[str, float] = {}  # kind -> start time

    def close(kind: str, at: float, by: str) -> None:
        start = open_.pop(kind)
        out.append(HealthInterval(start, max(start, at), kind, by))

    for _, _, rec in events:
        kind = rec.get("event")
        t = rec.get("t")
        if not isinstance(t, int | float) or not math.isfinite(t):
            continue
        at = clock.at_lsl(float(t))
        if kind in ("start", "stop"):
            for open_kind in list(open_):
                close(open_kind, at, kind)
            continue
        if kind in _HEALTH_OPEN and _HEALTH_OPEN[kind] not in open_:
            open_[_HEALTH_OPEN[kind]] = at
            continue
        for open_kind in list(open_):
            if kind in _HEALTH_CLOSE[open_kind]:
                close(open_kind, at, kind)
    for open_kind in list(open_):
        close(open_kind, max(clock.last_s, open_[open_kind]), "end of log")
    return sorted(out, key=lambda h: h.start_s)


def _float_or_nan(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _triggers(lines: list[tuple[int, str, dict]], clock: _Clock) -> list[TriggerEvent]:
    out: list[TriggerEvent] = []
    gate_on: dict[str, int] = {}  # rule -> index in out of its gate's "on"
    for run, where, rec in lines:
        if "end_sample" in rec:
            _number(where, rec, "end_sample")
            _number(where, rec, "t")
            decision = clock.decision(run, rec)
        else:
            decision = clock.at_lsl(_number(where, rec, "t"))
        suppressed = rec.get("suppressed") or ""
        control = rec.get("control") or ""
        action = str(rec.get("action", ""))
        delay_ms = _float_or_nan(rec.get("delay_ms"))
        pulse_ms = _float_or_nan(rec.get("pulse_ms"))
        period_ms = _float_or_nan(rec.get("period_ms"))
        pulses = int(rec.get("pulses") or 0)
        time_s = decision + (delay_ms / 1000.0 if math.isfinite(delay_ms) else 0.0)
        duration = math.nan
        if not suppressed and action == "pulse" and pulses >= 1 and math.isfinite(pulse_ms):
            period = period_ms if math.isfinite(period_ms) else 0.0
            duration = ((pulses - 1) * period + pulse_ms) / 1000.0
        rule = str(rec.get("rule", ""))
        out.append(
            TriggerEvent(
                time_s=time_s,
                duration_s=duration,
                decision_s=decision,
                rule=rule,
                action=action,
                state=str(rec.get("state", "")),
                reason=str(rec.get("reason", "")),
                sent=not suppressed and control != "sham",
                suppressed=str(suppressed),
                control=str(control),
                channel=int(rec.get("channel") or 0),
                pulses=pulses,
                pulse_ms=pulse_ms,
                period_ms=period_ms,
                delay_ms=delay_ms,
                round_trip_ms=_float_or_nan(rec.get("round_trip_ms")),
            )
        )
        if not suppressed and action == "on":
            gate_on[rule] = len(out) - 1
        elif not suppressed and action == "off" and rule in gate_on:
            k = gate_on.pop(rule)
            on = out[k]
            out[k] = replace(on, duration_s=max(0.0, time_s - on.time_s))
    return out


def _offline_timeline(records: list[tuple[str, dict]]) -> DecisionTimeline:
    """evaluate's decisions: their times (end_s) are the recording's already."""
    rows = []
    for where, rec in records:
        end_s = _number(where, rec, "end_s")
        if not isinstance(rec.get("state"), str) or not isinstance(rec["probs"], dict):
            raise DataError(f"{where}: 'probs' must be an object and 'state' a string")
        rows.append((end_s, rec["state"], False, rec["probs"].get(rec["state"])))
    hop = _hop_s([r[0] for r in rows])
    return DecisionTimeline(
        states=tuple(_runs_of(rows, hop, 1)),
        triggers=(),
        health=(),
        alignment="recording",
        alignment_text=(
            "decision times are rtdecode evaluate's end_s: window ends in seconds from the "
            "recording's first sample"
        ),
        runs=1,
        fs_hz=None,
        first_sample_unix=None,
        decisions=len(rows),
    )
