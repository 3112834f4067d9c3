"""The stimulation stage's decisions: which rule fires on which decision, and what is held back.

:class:`StimEngine` observes the smoothed decisions (state, timestamp, end sample, staleness) and
returns :class:`Trigger` records: pulses, gate edges, and the triggers it suppressed with the
reason. It does no I/O and keeps no clock of its own (every time is a decision's timestamp), so
the same engine runs live (:class:`rtdecode.stimulation.stimulator.Stimulator`) and on a
recording (``rtdecode evaluate --stim``), and gives the same triggers on the same decisions.

Safety, whatever the rules say: nothing fires from a stale decision, during ``no_signal`` or
``bad_signal``, while disarmed, or after :meth:`StimEngine.stop`; gates go off on each of these.

Phase rules (``in:STATE`` with a ``phase`` table) are fed the decoder's analysis-rate samples
(:meth:`StimEngine.push_signal`); at each decision in the state, and between decisions every
``PHASE_STEP_S`` of samples (:meth:`StimEngine.advance`, the state being the last decision's),
each predicts the next crossing of its target phase (:class:`rtdecode.phase.tracker.PhaseTracker`)
and, when that crossing comes before the next estimate's pulse could (within one step after this
one's pulse can land), sends a pulse whose device-side delay puts it there: ``delay_ms`` =
crossing - the estimate's last sample - the latency the caller gives (the decoder's delay so far
plus the output's, live; a nominal one offline). The crossing, not the latency, is what live and
offline runs share: the steps fall on fixed samples, whatever the chunking.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rtdecode.config import FeatureConfig
from rtdecode.phase.tracker import PhaseEstimate, PhaseTracker
from rtdecode.stimulation.rules import RulesError, StimProtocol, StimRule
from rtdecode.streams import SPECIAL_STATES

__all__ = ["Trigger", "StimEngine", "yoked_offsets", "DEFAULT_LATENCY_S", "PHASE_STEP_S"]

# Phase estimates between decisions, this often: a crossing predicted at most this far ahead.
# bench_phase.py methods: on DREAMS's slow oscillations an estimate every 10-20 ms instead of
# every 0.1 s decision gained 5-9 points within +-45 deg (the rhythm drifts from its
# extrapolation); it costs an estimate (~0.15 ms) per step while a phase rule's state holds.
PHASE_STEP_S = 0.02

# Added to each blanked interval: a pulse lands after the decision by the output's latency too.
_BLANK_MARGIN_S = 0.02
_HOUR_S = 3600.0
#: The decision -> output latency assumed where none is measured (offline dry runs; live
#: before the device has acknowledged anything): the decoder's ~0.6 ms and a USB device's ~1 ms
#: (benchmarks/RESULTS.md, bench_stim).
DEFAULT_LATENCY_S = 0.002
# a command arriving while this rule's previous pulse is due within this margin would cut it (a
# new command replaces what the device's channel was doing)
_PULSE_GUARD_S = 0.002


@dataclass(frozen=True)
class Trigger:
    """One trigger, sent or suppressed.

    Attributes
    ----------
    rule : str
    action : str
        ``"pulse"`` (a pulse or train), ``"on"`` or ``"off"`` (a gate's edges).
    state : str
        The decision's smoothed state.
    end_sample : int
        The decision's window end (input samples since the decoder started).
    t : float
        The decision's timestamp (LSL clock: its window's last sample).
    channel : int
    delay_ms : int
        Carried out by the device after it reads the command (random part included).
    pulse_ms, pulses, period_ms : int, int, int
        The train (pulses); for ``on``, ``pulse_ms`` is the device-enforced maximum on-time
        (0: none).
    control : str or None
        ``"sham"`` (decided, not sent) or ``"yoked"`` (replayed from another run).
    suppressed : str or None
        Why it was not sent: ``refractory``, ``rate_limit``, ``disarmed``, ``stale``; None when
        it was (or, for a sham, would have been) sent.
    reason : str
        What made it: the rule's condition (``enter:rem``), ``max_on``, ``state_ended``,
        ``bad_signal``, ``no_signal``, ``stale``, ``disarmed``, ``stopped``, ``yoked``.
    phase : dict or None
        A phase rule's pulse: ``crossing_sample`` (the input-sample index at which the target
        phase is predicted), ``landing_sample`` (where the pulse lands with the latency assumed),
        ``latency_ms``, and the estimate (``phase_deg`` at ``estimate_sample``, ``freq_hz``,
        ``amplitude``, ``band_share``).
    """

    rule: str
    action: str
    state: str
    end_sample: int
    t: float
    channel: int
    delay_ms: int
    pulse_ms: int
    pulses: int
    period_ms: int
    control: str | None
    suppressed: str | None
    reason: str
    phase: dict | None = None

    @property
    def sent(self) -> bool:
        """Whether the command goes to the device."""
        return self.suppressed is None and self.control != "sham"

    def record(self) -> dict:
        """The trigger as a decision-log line's fields (``phase`` only for a phase rule's)."""
        fields = asdict(self)
        if fields["phase"] is None:
            del fields["phase"]
        return fields


def yoked_offsets(log_path: str | Path, rule_name: str) -> list[float]:
    """Seconds from a run's first decision to each trigger its rule ``rule_name`` sent.

    Raises
    ------
    RulesError
        The log cannot be read or holds no decision.
    """
    path = Path(log_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RulesError(f"yoked log {str(path)!r} cannot be read: {exc}") from None
    t0, offsets = None, []
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise RulesError(f"yoked log {str(path)!r} line {n} is not JSON") from None
        if t0 is None and "probs" in rec:
            t0 = float(rec["t"])
        if (
            rec.get("event") == "trigger"
            and rec.get("rule") == rule_name
            and rec.get("suppressed") is None
            and rec.get("action") in ("pulse", "on")
        ):
            offsets.append(float(rec["t"]))
    if t0 is None:
        raise RulesError(f"yoked log {str(path)!r} holds no decision: is it a decision log?")
    return sorted(t - t0 for t in offsets)


class _RuleState:
    """What one rule remembers between decisions."""

    def __init__(self, rule: StimRule, offsets: list[float] | None) -> None:
        self.rule = rule
        self.since_t: float | None = None  # when the rule's condition began to hold
        self.done = False  # the condition's episode already fired (or was suppressed)
        self.warned: set[str] = set()  # suppression reasons logged in this episode
        self.gate_on = False
        self.gate_on_t = 0.0
        self.spent = False  # the gate reached max_on_s in this episode
        self.last_t = -math.inf  # the last trigger that counted (sent or sham)
        self.recent: deque[float] = deque()  # those within the last hour
        self.offsets = deque(offsets or ())
        self.tracker: PhaseTracker | None = None
        self.last_crossing: float | None = None  # the last crossing a pulse was sent for
        self.seen_crossing: float | None = None  # the last crossing counted (sent or not)
        self.pulse_end: float = -math.inf  # input sample at which that pulse (train) ends
        self.cycles = 0  # crossings seen in this episode (every Nth)
        self.cycle_skipped = False  # the latest crossing seen is skipped (every, max_per_s)


class StimEngine:
    """Apply a protocol's rules to a sequence of decisions.

    Parameters
    ----------
    protocol : StimProtocol
    fs_hz : float
        The input stream's rate (for blanking, in samples).
    window_samples : int
        Input samples per decision window (a window that holds a pulse is not decided).
    features : FeatureConfig, optional
        The stream's features (analysis rate, decimation, hop): needed by phase rules.
    channel_labels : sequence of str, optional
        The features' channels, in their order: needed by phase rules.

    Notes
    -----
    Not thread-safe: the decode thread calls it (live), or the offline loop.
    """

    def __init__(
        self,
        protocol: StimProtocol,
        *,
        fs_hz: float,
        window_samples: int,
        features: FeatureConfig | None = None,
        channel_labels=None,
    ) -> None:
        self.protocol = protocol
        self.fs_hz = float(fs_hz)
        self.window_samples = int(window_samples)
        self._rng = np.random.default_rng(protocol.seed)
        self._rules = [
            _RuleState(r, yoked_offsets(r.yoked, r.name) if r.yoked else None)
            for r in protocol.rules
        ]
        self._hop = 0 if features is None else features.hop_samples
        # phase estimates between decisions every _step input samples (0: at decisions only),
        # on whole analysis samples
        self._step = 0
        if features is not None:
            d = features.decimation
            step = max(d, int(round(PHASE_STEP_S * self.fs_hz / d)) * d)
            self._step = step if step < self._hop else 0
        self._next_step = 0  # the input sample of the next estimate between decisions
        self._decided_at = -1  # the last decision's end sample (-1: none since a restart)
        self._decided_stale = False  # it was stale: no step acts on its state
        self._last_arrival = -math.inf  # the latest estimate's arrival (input samples)
        self._arrival_gaps: deque[float] = deque(maxlen=8)
        for rs in self._rules:
            target = rs.rule.phase
            if target is None:
                continue
            if features is None or channel_labels is None:
                raise ValueError(
                    f"rule {rs.rule.name!r} is a phase rule: the engine needs the stream's "
                    "features and channel labels"
                )
            rs.tracker = PhaseTracker(
                features,
                target.channel_indices(channel_labels),
                target.band_hz,
                window_s=target.estimate_window_s,
                method=target.method,
            )
        self.armed = protocol.armed
        self.stopped = False
        self._last_state: str | None = None
        self._stamp = 0.0  # the timestamp of the decision being handled (for the records)
        self._t0: float | None = None  # the first decision's timestamp (yoked offsets)
        self._blanks: deque[tuple[int, int]] = deque()  # (first, last) sample of each artefact
        self.counts = {"sent": 0, "sham": 0, "suppressed": 0, "blanked_windows": 0}
        if any(rs.tracker is not None for rs in self._rules):
            # estimates in a phase rule's state without a pulse, by why
            self.counts |= {"phase_weak": 0, "phase_skipped": 0, "phase_held": 0}

    @property
    def has_phase_rules(self) -> bool:
        return any(rs.tracker is not None for rs in self._rules)

    def push_signal(self, block: np.ndarray, stop_sample: int) -> None:
        """Feed the phase rules the analysis-rate samples the features just made.

        Parameters
        ----------
        block : ndarray, shape (n_channels, n), float32
            ``StreamingFeatures.recent_analysis(n)``.
        stop_sample : int
            Input-sample count (since the stream's start) at which its last sample was complete
            (origin + analysis samples made x decimation); a block that does not follow the last
            one starts the phase estimates afresh.
        """
        for rs in self._rules:
            if rs.tracker is not None:
                rs.tracker.push(block, stop_sample)

    @property
    def phase_step_samples(self) -> int:
        """Input samples between phase estimates (0: at decisions only)."""
        return self._step if self.has_phase_rules else 0

    def advance(
        self,
        to_sample: int,
        *,
        stamp_of: Callable[[int], float],
        latency_of: Callable[[float], float | Callable[[], float]] | None = None,
        stale_of: Callable[[int, float], bool] | None = None,
    ) -> list[Trigger]:
        """A phase estimate between decisions, at the newest step up to ``to_sample``.

        The newest step past the last decision's end and at most ``to_sample`` (its samples
        pushed, :meth:`push_signal`) runs the phase rules whose condition held at that decision,
        with its state; older steps not yet run are passed over (their samples came in the same
        read: the newest step predicts from fresher ones). Live, the decode thread calls it with
        ``end_sample - 1`` before each decision and with the newest sample after each read;
        offline, with each step's sample (as if every read were one step).

        Parameters
        ----------
        to_sample : int
            The newest input sample whose analysis samples were pushed (count since the start).
        stamp_of : callable
            A step's sample -> its timestamp (for the record).
        latency_of : callable, optional
            A step's timestamp -> the latency for its pulses (as :meth:`decide`'s); default
            ``DEFAULT_LATENCY_S``.
        stale_of : callable, optional
            A step's sample and timestamp -> whether it is too old to act on; default never.
        """
        out: list[Trigger] = []
        if not self._step or to_sample < self._next_step:
            return out
        rules = [rs for rs in self._rules if rs.tracker is not None and rs.since_t is not None]
        if not rules or self.stopped or self._decided_at < 0:
            # nothing to estimate: these steps are passed (advance_each does not revisit them)
            self._next_step = (to_sample // self._step + 1) * self._step
            return out
        at = to_sample // self._step * self._step
        self._next_step = at + self._step
        t = at / self.fs_hz
        held = [rs for rs in rules if t - rs.since_t >= rs.rule.after_s - 1e-9]
        if held and not self._holds_artefact(at):  # (an artefact's samples have no phase)
            self._stamp = stamp = stamp_of(at)
            stale = self._decided_stale or (stale_of is not None and stale_of(at, stamp))
            latency = latency_of(stamp) if latency_of is not None else DEFAULT_LATENCY_S
            for rs in held:
                self._phase(rs, at, t, self._last_state, stale, latency, out, between=True)
        for trig in out:
            self._count(trig)
        return out

    def advance_each(
        self,
        to_sample: int,
        *,
        stamp_of: Callable[[int], float],
        stale_of: Callable[[int, float], bool] | None = None,
    ) -> list[Trigger]:
        """:meth:`advance` at every step up to ``to_sample`` in turn, none passed over: a
        recording's dry run, as if each step's samples arrived alone (offline, where the whole
        recording is at hand). Call it before each decision (``end_sample - 1``) and after."""
        out: list[Trigger] = []
        if self.phase_step_samples:
            for at in range(max(self._next_step, 0), to_sample + 1, self._step):
                out += self.advance(at, stamp_of=stamp_of, stale_of=stale_of)
        return out

    # Blanking --------------------------------------------------------------------------------
    def blanked(self, end_sample: int) -> bool:
        """Whether the window ending at ``end_sample`` holds a pulse's artefact (not decided).

        Counted in ``counts["blanked_windows"]`` when it does.
        """
        if self._holds_artefact(end_sample):
            self.counts["blanked_windows"] += 1
            return True
        return False

    def _holds_artefact(self, end_sample: int) -> bool:
        start = end_sample - self.window_samples
        while self._blanks and self._blanks[0][1] <= start:
            self._blanks.popleft()
        return any(first < end_sample and last > start for first, last in self._blanks)

    def restart(self) -> None:
        """The signal starts afresh (a gap, a skip): the phase estimates forget the samples
        before it, and no step acts until the next decision (the state before it is not the
        state of the samples after it)."""
        self._decided_at = -1
        for rs in self._rules:
            if rs.tracker is not None:
                rs.tracker.reset()

    def _blank(self, trig: Trigger, rule: StimRule) -> None:
        """Hold the windows around a sent pulse train, or around a gate's edge."""
        if rule.blank_ms <= 0 or not trig.sent:
            return
        first = trig.end_sample + int(trig.delay_ms * 1e-3 * self.fs_hz)
        span_s = rule.train_ms * 1e-3 + rule.blank_ms * 1e-3 + _BLANK_MARGIN_S
        self._blanks.append((first, first + int(math.ceil(span_s * self.fs_hz))))

    # Decisions -------------------------------------------------------------------------------
    def decide(
        self,
        end_sample: int,
        t: float,
        state: str,
        *,
        stale: bool = False,
        latency_s: float | Callable[[], float] = DEFAULT_LATENCY_S,
    ) -> list[Trigger]:
        """The triggers of one decision, in rule order (sent and suppressed alike).

        Parameters
        ----------
        end_sample : int
            The decision's window end, input samples.
        t : float
            The decision's timestamp (the LSL clock live, the recording's time offline), for
            the record. The rules' times (``after_s``, refractory, rate, ``max_on_s``, yoked
            offsets) run on the stream's sample clock, ``end_sample / fs_hz``, so live and
            offline give the same triggers whatever the source's timestamps.
        state : str
            The smoothed state (a class, ``bad_signal`` or ``no_signal``).
        stale : bool
            The decision is too old to act on: nothing fires from it, gates go off.
        latency_s : float or callable
            From the decision's last sample to its command taking effect at the device (phase
            rules subtract it from their pulses' delays); live, a function of no argument,
            called when a pulse's delay is computed (after its phase estimate: the estimates
            took ~1 ms of a latency measured before them, bench_phase.py live).
        """
        self._stamp = t
        t = end_sample / self.fs_hz  # the rules' clock
        if self._t0 is None:
            self._t0 = t
        self._decided_at = end_sample
        self._decided_stale = stale
        if self._step:
            # the steps between decisions start after this one (none is run twice, or late)
            self._next_step = max(self._next_step, (end_sample // self._step + 1) * self._step)
        out: list[Trigger] = []
        prev, self._last_state = self._last_state, state
        for rs in self._rules:
            rule = rs.rule
            if self.stopped:
                break
            if rule.yoked:
                self._yoked(rs, end_sample, t, state, stale, out)
                continue
            holds = self._condition(rs, state, prev)
            if not holds:
                rs.since_t, rs.done, rs.spent, rs.warned = None, False, False, set()
                rs.cycles = 0
                if rs.gate_on:
                    why = state if state in SPECIAL_STATES else "state_ended"
                    out.append(self._off(rs, end_sample, t, state, why))
                continue
            if rs.since_t is None:
                rs.since_t = t
            held = t - rs.since_t >= rule.after_s - 1e-9
            if rs.tracker is not None:
                if held:
                    self._phase(rs, end_sample, t, state, stale, latency_s, out)
            elif rule.is_gate:
                self._gate(rs, end_sample, t, state, stale, held, out)
            elif held and not rs.done:
                self._fire(rs, end_sample, t, state, stale, out)
        for trig in out:
            self._count(trig)
        return out

    @staticmethod
    def _condition(rs: _RuleState, state: str, prev: str | None) -> bool:
        """Whether the rule's condition holds at this decision."""
        rule = rs.rule
        if state in SPECIAL_STATES:
            return False
        if rule.kind == "exit":
            # from the decision that leaves the state for another class, until it comes back
            return state != rule.state and (prev == rule.state or rs.since_t is not None)
        return state == rule.state

    def _gate(self, rs, end_sample, t, state, stale, held, out) -> None:
        rule = rs.rule
        if rs.gate_on:
            if stale:
                out.append(self._off(rs, end_sample, t, state, "stale"))
            elif rule.max_on_s is not None and t - rs.gate_on_t >= rule.max_on_s - 1e-9:
                rs.spent = True
                out.append(self._off(rs, end_sample, t, state, "max_on"))
            return
        if not held or rs.spent:
            return
        why = "stale" if stale else "disarmed" if not self.armed else None
        if why is not None:
            self._suppress_once(rs, "on", end_sample, t, state, why, out)
            return
        max_on_ms = 0 if rule.max_on_s is None else min(65535, int(round(rule.max_on_s * 1e3)))
        trig = self._make(rs, "on", end_sample, t, state, self._delay(rule), pulse_ms=max_on_ms)
        rs.gate_on, rs.gate_on_t = True, t
        out.append(trig)

    def _fire(self, rs, end_sample, t, state, stale, out) -> None:
        rule = rs.rule
        if stale:
            # the episode stays open: the next fresh decision may still fire it
            self._suppress_once(rs, "pulse", end_sample, t, state, "stale", out)
            return
        rs.done = True
        while rs.recent and rs.recent[0] <= t - _HOUR_S:
            rs.recent.popleft()
        why = None
        if not self.armed:
            why = "disarmed"
        elif t - rs.last_t < rule.refractory_s - 1e-9:
            why = "refractory"
        elif rule.max_per_hour is not None and len(rs.recent) >= rule.max_per_hour:
            why = "rate_limit"
        out.append(self._make(rs, "pulse", end_sample, t, state, self._delay(rule), suppressed=why))

    def _note_estimate(self, arrival: float) -> None:
        """An estimate whose pulse could land at ``arrival`` (input samples): the gaps between
        successive estimates, for :meth:`_reach` (every estimate, weak or not, counts)."""
        gap = arrival - self._last_arrival
        if 0 < gap < self._hop:
            self._arrival_gaps.append(gap)
        self._last_arrival = max(self._last_arrival, arrival)

    def _reach(self) -> float:
        """How far after its arrival an estimate schedules crossings: until the next estimate
        can, with a quarter to spare (so that a crossing the next one puts a sample earlier is
        not missed by both). The next comes a step later offline; live, when the next samples
        arrive, which may be later: the longest of the last gaps between estimates counts."""
        if not self._step:
            return float(self._hop)
        longest = max(self._arrival_gaps, default=0.0)
        return min(1.25 * max(self._step, longest), float(self._hop))

    def _phase(self, rs, end_sample, t, state, stale, latency_s, out, between=False) -> None:
        """A pulse at the target phase's next crossing, if this estimate is the last before it
        (``between``: a step between decisions, :meth:`advance`)."""
        rule, target = rs.rule, rs.rule.phase
        why = "stale" if stale else "disarmed" if not self.armed else None
        if why is not None:
            self._suppress_once(rs, "pulse", end_sample, t, state, why, out)
            return
        if self._step:
            early = latency_s() if callable(latency_s) else latency_s
            self._note_estimate(end_sample - 1 + early * self.fs_hz)
        est = rs.tracker.estimate(end_sample)
        if est is None:
            return  # not a window of signal yet (the start, after a gap)
        if est.amplitude < target.min_amplitude or est.band_share < target.min_band_share:
            self.counts["phase_weak"] += 1  # too weak a rhythm to have a phase
            return
        fs = self.fs_hz
        if callable(latency_s):
            latency_s = latency_s()
        arrival = end_sample - 1 + latency_s * fs
        crossing = est.next_crossing(target.target_rad, arrival, fs)
        if crossing >= arrival + self._reach():
            return  # the next estimate comes before it
        period = fs / est.freq_hz
        if rs.last_crossing is not None and crossing - rs.last_crossing < 0.5 * period:
            return  # this cycle's crossing has its pulse already
        if rs.seen_crossing is None or crossing - rs.seen_crossing >= 0.5 * period:
            # a new cycle (several estimates may see one: it is counted once)
            rs.seen_crossing = crossing
            rs.cycles += 1
            min_gap_s = max(rule.refractory_s, 1.0 / target.max_per_s if target.max_per_s else 0.0)
            rs.cycle_skipped = bool((rs.cycles - 1) % target.every) or (
                rs.last_crossing is not None and crossing - rs.last_crossing < min_gap_s * fs - 1e-6
            )
            if rs.cycle_skipped:
                self.counts["phase_skipped"] += 1
        if rs.cycle_skipped:
            return
        if arrival < rs.pulse_end + _PULSE_GUARD_S * fs:
            self.counts["phase_held"] += 1  # the command would cut the pulse before it short
            return
        while rs.recent and rs.recent[0] <= t - _HOUR_S:
            rs.recent.popleft()
        if rule.max_per_hour is not None and len(rs.recent) >= rule.max_per_hour:
            self._suppress_once(rs, "pulse", end_sample, t, state, "rate_limit", out)
            return
        delay_ms = int(round((crossing - arrival) / fs * 1e3))
        landing = arrival + delay_ms * 1e-3 * fs
        rs.last_crossing = crossing
        rs.pulse_end = landing + rule.train_ms * 1e-3 * fs
        out.append(
            self._make(
                rs,
                "pulse",
                end_sample,
                t,
                state,
                delay_ms,
                phase=_phase_record(est, crossing, landing, latency_s, between),
            )
        )

    def _suppress_once(self, rs, action, end_sample, t, state, why, out) -> None:
        """A suppressed trigger, once per reason in a rule's episode (not at every decision)."""
        if why not in rs.warned:
            rs.warned.add(why)
            out.append(self._make(rs, action, end_sample, t, state, 0, suppressed=why))

    def _yoked(self, rs, end_sample, t, state, stale, out) -> None:
        while rs.offsets and t - self._t0 >= rs.offsets[0] - 1e-9:
            rs.offsets.popleft()
            why = "stale" if stale else "disarmed" if not self.armed else None
            if state in SPECIAL_STATES and why is None:
                why = state
            action = "on" if rs.rule.is_gate else "pulse"
            out.append(
                self._make(rs, action, end_sample, t, state, self._delay(rs.rule), suppressed=why)
            )

    def _delay(self, rule: StimRule) -> int:
        extra = self._rng.uniform(0.0, rule.random_delay_ms) if rule.random_delay_ms > 0 else 0.0
        return int(round(rule.delay_ms + extra))

    def _make(
        self,
        rs,
        action,
        end_sample,
        t,
        state,
        delay_ms,
        *,
        suppressed=None,
        pulse_ms=None,
        phase=None,
    ):
        rule = rs.rule
        control = "sham" if rule.sham else "yoked" if rule.yoked else None
        trig = Trigger(
            rule=rule.name,
            action=action,
            state=state,
            end_sample=int(end_sample),
            t=float(self._stamp),
            channel=rule.channel,
            delay_ms=int(delay_ms),
            pulse_ms=int(round(rule.pulse_ms)) if pulse_ms is None else int(pulse_ms),
            pulses=rule.pulses if action == "pulse" else 0,
            period_ms=int(round(rule.period_ms)) if action == "pulse" else 0,
            control=control,
            suppressed=suppressed,
            reason="yoked" if rule.yoked else rule.when,
            phase=phase,
        )
        if suppressed is None and action in ("pulse", "on"):
            rs.last_t = t
            rs.recent.append(t)
        self._blank(trig, rule)
        return trig

    def _off(self, rs, end_sample, t, state, why) -> Trigger:
        rs.gate_on = False
        trig = Trigger(
            rule=rs.rule.name,
            action="off",
            state=state,
            end_sample=int(end_sample),
            t=float(self._stamp),
            channel=rs.rule.channel,
            delay_ms=0,
            pulse_ms=0,
            pulses=0,
            period_ms=0,
            control="sham" if rs.rule.sham else None,
            suppressed=None,
            reason=why,
        )
        self._blank(trig, rs.rule)
        return trig

    def _count(self, trig: Trigger) -> None:
        if trig.suppressed is not None:
            self.counts["suppressed"] += 1
        elif trig.action != "off":
            self.counts["sham" if trig.control == "sham" else "sent"] += 1

    # Safety ----------------------------------------------------------------------------------
    def _all_off(self, end_sample: int, t: float, state: str, why: str) -> list[Trigger]:
        self._stamp = t
        out = []
        for rs in self._rules:
            if rs.gate_on:
                out.append(self._off(rs, end_sample, t, state, why))
            rs.since_t, rs.done, rs.spent, rs.warned = None, False, False, set()
            rs.cycles = 0
        return out

    def signal_lost(self, end_sample: int, t: float) -> list[Trigger]:
        """No sample for the decoder's stall time: gates off, episodes end."""
        self._last_state = "no_signal"
        return self._all_off(end_sample, t, "no_signal", "no_signal")

    def set_armed(self, armed: bool, end_sample: int, t: float) -> list[Trigger]:
        """Arm or disarm every rule; disarming turns gates off."""
        self.armed = bool(armed)
        self._stamp = t
        if self.armed:
            return []
        out = []
        for rs in self._rules:
            if rs.gate_on:
                out.append(self._off(rs, end_sample, t, self._last_state or "", "disarmed"))
        return out

    def stop(self, end_sample: int, t: float) -> list[Trigger]:
        """The decoder stops: gates off, and nothing fires any more."""
        out = self._all_off(end_sample, t, self._last_state or "", "stopped")
        self.stopped = True
        return out


def _phase_record(
    est: PhaseEstimate, crossing: float, landing: float, latency_s: float, between: bool
) -> dict:
    """A phase pulse's fields in its trigger record."""
    return {
        "between_decisions": between,
        "crossing_sample": round(crossing, 3),
        "landing_sample": round(landing, 3),
        "latency_ms": round(latency_s * 1e3, 3),
        "estimate_sample": round(est.time_sample, 3),
        "phase_deg": round(math.degrees(est.phase_rad), 3),
        "freq_hz": round(est.freq_hz, 4),
        "amplitude": round(est.amplitude, 4),
        "band_share": round(est.band_share, 4),
    }
