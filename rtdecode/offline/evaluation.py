"""Scoring decisions against labels, tuning hysteresis, and decoding a file through the live path.

The metrics here are what model cards and ``rtdecode evaluate`` report:

- per window: accuracy, Cohen's kappa, per-class precision/recall/F1, confusion matrix, on the
  windows that one labelled segment covers entirely;
- after hysteresis: the same, on the smoothed states;
- event tasks (e.g. seizure), in time rather than windows: an *event* is a run of contiguous
  labelled segments of the event class; it is detected when the smoothed state is on at a
  decision whose window overlaps it, with the delay from its onset to that decision's window end;
  a *false alarm* is a run of "on" decisions none of whose windows overlaps an event, counted per
  hour of recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rtdecode.config import EventHysteresis, StateHysteresis
from rtdecode.decoding.smoother import make_smoother
from rtdecode.decoding.step import DecodeStep
from rtdecode.features.quality import QualityConfig
from rtdecode.offline.metrics import classification_metrics
from rtdecode.offline.recordings import Recording, Segment
from rtdecode.phase.estimators import wrap as wrap_phase
from rtdecode.stimulation.engine import StimEngine
from rtdecode.stimulation.rules import StimProtocol

__all__ = [
    "smooth",
    "event_episodes",
    "event_metrics",
    "decision_metrics",
    "tune_hysteresis",
    "DecodedRecording",
    "decode_recording",
    "stim_report",
    "phase_report",
]


def smooth(proba: np.ndarray, classes: Sequence[str], hysteresis, hop_s: float) -> np.ndarray:
    """Class index of the smoothed state after each decision (a fresh smoother, in order)."""
    smoother = make_smoother(hysteresis, classes, hop_s)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[smoother.update(p)[0]] for p in proba], dtype=np.int64)


def event_episodes(segments: Sequence[Segment], event_class: str) -> list[tuple[float, float]]:
    """(onset_s, end_s) of each run of contiguous segments labelled ``event_class``."""
    episodes: list[list[float]] = []
    for s in sorted(segments, key=lambda s: s.onset_s):
        if s.label != event_class:
            continue
        if episodes and s.onset_s <= episodes[-1][1] + 1e-6:
            episodes[-1][1] = max(episodes[-1][1], s.end_s)
        else:
            episodes.append([s.onset_s, s.end_s])
    return [(a, b) for a, b in episodes]


def event_metrics(
    end_s: np.ndarray,
    on: np.ndarray,
    episodes: Sequence[tuple[float, float]],
    window_s: float,
    duration_s: float,
) -> dict:
    """Event sensitivity, detection delay and false alarms per hour (see the module notes).

    Parameters
    ----------
    end_s : ndarray (n,)
        Window end of each decision, seconds, increasing.
    on : ndarray (n,), bool
        Whether the smoothed state is the event class after each decision.
    episodes : list of (onset_s, end_s)
    window_s, duration_s : float
        Window length, and the recording time the decisions cover (for the hourly rate).
    """
    end_s = np.asarray(end_s, dtype=np.float64)
    on = np.asarray(on, dtype=bool)
    start_s = end_s - window_s
    overlaps_event = np.zeros(end_s.size, dtype=bool)
    delays, detected = [], 0
    for onset, stop in episodes:
        inside = (end_s > onset) & (start_s < stop)
        overlaps_event |= inside
        hits = np.flatnonzero(inside & on)
        if hits.size:
            detected += 1
            delays.append(float(end_s[hits[0]] - onset))
    run_starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
    run_stops = np.flatnonzero(on & ~np.r_[on[1:], False]) + 1
    false_alarms = int(sum(not overlaps_event[a:b].any() for a, b in zip(run_starts, run_stops)))
    hours = duration_s / 3600.0
    return {
        "events": len(episodes),
        "events_detected": detected,
        "event_sensitivity": detected / len(episodes) if episodes else None,
        "detection_delay_median_s": float(np.median(delays)) if delays else None,
        "detection_delay_p90_s": float(np.percentile(delays, 90)) if delays else None,
        "false_alarms": false_alarms,
        "false_alarms_per_hour": false_alarms / hours if hours > 0 else None,
        "hours": hours,
    }


@dataclass(frozen=True)
class _Run:
    """Decisions of one recording in time order, for scoring."""

    end_s: np.ndarray
    proba: np.ndarray
    y: np.ndarray
    episodes: list
    duration_s: float


def decision_metrics(
    runs: Sequence[_Run] | Sequence[tuple],
    classes: Sequence[str],
    hysteresis,
    *,
    hop_s: float,
    window_s: float,
) -> dict:
    """Window and smoothed metrics over one or more recordings' decision sequences.

    Parameters
    ----------
    runs : sequence of (end_s, proba, y, episodes, duration_s)
        Per recording: decisions in time order, their probabilities, window labels (-1 for
        unlabelled windows: scored by nothing but the smoother sees them), event episodes
        (empty for state tasks) and the recording time covered.
    """
    runs = [r if isinstance(r, _Run) else _Run(*r) for r in runs]
    ys, raw, smoothed, ev = [], [], [], []
    for r in runs:
        states = smooth(r.proba, classes, hysteresis, hop_s)
        labelled = r.y >= 0
        ys.append(r.y[labelled])
        raw.append(r.proba[labelled].argmax(axis=1))
        smoothed.append(states[labelled])
        if isinstance(hysteresis, EventHysteresis):
            event = list(classes).index(hysteresis.event_class)
            ev.append(event_metrics(r.end_s, states == event, r.episodes, window_s, r.duration_s))
    y, raw_pred, sm_pred = np.concatenate(ys), np.concatenate(raw), np.concatenate(smoothed)
    result = {
        "windows": classification_metrics(y, raw_pred, classes),
        "after_hysteresis": classification_metrics(y, sm_pred, classes),
    }
    if ev:
        events = sum(e["events"] for e in ev)
        detected = sum(e["events_detected"] for e in ev)
        fa = sum(e["false_alarms"] for e in ev)
        hours = sum(e["hours"] for e in ev)
        delays = [
            e["detection_delay_median_s"] for e in ev if e["detection_delay_median_s"] is not None
        ]
        result["events"] = {
            "events": events,
            "events_detected": detected,
            "event_sensitivity": detected / events if events else None,
            "detection_delay_median_s": float(np.median(delays)) if delays else None,
            "detection_delay_p90_s": float(np.percentile(delays, 90)) if delays else None,
            "false_alarms": fa,
            "false_alarms_per_hour": fa / hours if hours > 0 else None,
            "hours": hours,
        }
        if len(ev) == 1:
            result["events"] = ev[0]
    return result


def tune_hysteresis(
    runs: Sequence[tuple],
    classes: Sequence[str],
    task: str,
    *,
    hop_s: float,
    window_s: float,
    event_class: str | None = None,
    max_false_alarms_per_hour: float = 1.0,
) -> tuple[EventHysteresis | StateHysteresis, dict]:
    """Pick hysteresis parameters on validation decisions (out-of-fold probabilities).

    Event tasks: the highest event sensitivity whose false-alarm rate stays within
    ``max_false_alarms_per_hour``, ties broken by the shorter median delay, then by smoothed
    kappa. State tasks: the best smoothed Cohen's kappa, ties broken by the longer dwell (fewer
    flips). Returns the parameters and the metrics they achieve.
    """
    best_key, best = None, None
    if task == "event":
        if event_class is None:
            raise ValueError("event tasks need event_class")
        grid = [
            EventHysteresis(
                event_class=event_class,
                on_threshold=on,
                off_threshold=off,
                on_dwell_s=on_dwell,
                off_dwell_s=off_dwell,
            )
            for on in (0.5, 0.6, 0.7, 0.8, 0.9)
            for off in (0.2, 0.3, 0.4, 0.5)
            if off < on
            for on_dwell in sorted({0.0, hop_s, 2 * hop_s, 0.5, 1.0})
            for off_dwell in (0.5, 1.0, 2.0)
        ]
        for h in grid:
            m = decision_metrics(runs, classes, h, hop_s=hop_s, window_s=window_s)
            e = m["events"]
            within = (e["false_alarms_per_hour"] or 0.0) <= max_false_alarms_per_hour
            key = (
                within,
                e["event_sensitivity"] or 0.0,
                -(e["detection_delay_median_s"] or 1e9),
                m["after_hysteresis"]["kappa"],
            )
            if best_key is None or key > best_key:
                best_key, best = key, (h, m)
    else:
        grid = [
            StateHysteresis(margin=margin, dwell_s=dwell)
            for margin in (0.0, 0.1, 0.2, 0.3)
            for dwell in (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
        ]
        for h in grid:
            m = decision_metrics(runs, classes, h, hop_s=hop_s, window_s=window_s)
            key = (round(m["after_hysteresis"]["kappa"], 4), h.dwell_s)
            if best_key is None or key > best_key:
                best_key, best = key, (h, m)
    assert best is not None
    return best


@dataclass
class DecodedRecording:
    """Decisions of one recording decoded through the live path."""

    end_samples: np.ndarray  # (n,) int64, input-sample count at each window's end
    end_s: np.ndarray  # (n,) float64, seconds from the first sample
    proba: np.ndarray  # (n, n_classes) float32
    states: list[str]  # smoothed state after each decision
    changed: np.ndarray  # (n,) bool, state changed at this decision
    quality: np.ndarray  # (n,) float32, fraction of good channels in the window
    triggers: list = field(default_factory=list)  # stimulation Triggers (with a protocol)
    blanked: int = 0  # windows not decided: they held a stimulation artefact
    bad_model_outputs: int = 0  # windows not decided: the model's output was no probabilities


def decode_recording(
    model,
    recording: Recording,
    *,
    hysteresis=None,
    chunk_samples: int = 3200,
    quality: QualityConfig | None = None,
    stim: StimProtocol | None = None,
) -> DecodedRecording:
    """Decode a recording as the live decoder would, as fast as the machine allows.

    The samples go in ``chunk_samples`` chunks through a :class:`rtdecode.acquisition._ringbuffer.RingBuffer`
    (as the acquisition thread writes them), are pushed from it (in place) through
    :class:`rtdecode.features.streaming.StreamingFeatures`, the model and the smoother: the same objects
    and calls as :class:`rtdecode.decoding.decoder.Decoder`, without LSL and without threads, so the
    decisions equal those of a live run on a replay of the same file. With a stimulation
    protocol, its rules run on the decisions as they would live (the same engine), as a dry run:
    the triggers come back in ``triggers``, and windows that would have held a pulse's artefact
    are not decided (``blanked``). Nor are windows whose model output is not one probability
    per class (``bad_model_outputs``). Time is the recording's: seconds from its first sample, by
    the samples' timestamps when the file has them; at a gap in them the windows start afresh,
    so no decision spans it.
    """
    from rtdecode.acquisition._ringbuffer import RingBuffer
    from rtdecode.features.streaming import StreamingFeatures, one_blas_thread

    contract = model.contract
    model.check_stream(
        n_channels=recording.n_channels, fs_hz=recording.fs_hz, stream_name=str(recording.path)
    )
    config = model.stream_features(recording.fs_hz)
    quality = quality or QualityConfig()
    features = StreamingFeatures(config, recording.n_channels, quality)
    step = DecodeStep(
        model,
        hop_s=config.hop_s,
        hysteresis=hysteresis,
        min_good_fraction=quality.min_good_fraction,
    )
    ring = RingBuffer(max(4 * chunk_samples, config.hop_samples), recording.n_channels)
    engine = (
        None
        if stim is None
        else StimEngine(
            stim,
            fs_hz=recording.fs_hz,
            window_samples=config.window_samples,
            features=config,
            channel_labels=recording.channel_names,
        )
    )
    phase = engine is not None and engine.has_phase_rules

    def stamp_of(sample: int) -> float:
        return float(recording.end_time_s(np.array([sample]))[0])

    triggers = []
    ends, probas, states, changed, goods = [], [], [], [], []
    with one_blas_thread():  # see its notes
        for origin, stop in recording.runs():
            if origin > 0:
                # a gap: the windows start afresh and the next decision re-announces the state,
                # as the live decoder does (Decoder._restart_features)
                features.reset()
                step.reset()
                if engine is not None:
                    engine.restart()
            for chunk in recording.chunks(chunk_samples, origin, stop):
                n = chunk.shape[0]
                first = ring.written
                stamps = recording.times_s(first, first + n)
                ring.write(np.ascontiguousarray(chunk, dtype=np.float32), stamps)
                blocks = (b for b, _ in ring.segments(first, ring.written))
                if phase:
                    # the phase rules see the analysis-rate samples as live (Decoder._loop), a hop at
                    # a time: the features keep no more than a window of them
                    rows = []
                    for piece in _pieces(blocks, config.hop_samples):
                        made = features.analysis_samples
                        rows += features.push(piece)
                        if features.analysis_samples > made:
                            stop = origin + features.analysis_samples * config.decimation
                            made = features.analysis_samples - made
                            engine.push_signal(features.recent_analysis(made), stop)
                else:
                    rows = features.push_blocks(blocks)
                for row_end, row, verdict in rows:
                    end_sample = origin + row_end
                    if phase:
                        # the phase rules' steps between decisions, each as its samples complete
                        # (live: Decoder._phase_steps, as they arrive)
                        triggers += engine.advance_each(end_sample - 1, stamp_of=stamp_of)
                    if engine is not None and engine.blanked(end_sample):
                        continue
                    result = step.decide(row, verdict.good_fraction)
                    if result is None:
                        continue  # the model gave no probabilities (counted by the step), as live
                    probs, state, did_change = result
                    if engine is not None:
                        triggers += engine.decide(end_sample, stamp_of(end_sample), state)
                    goods.append(verdict.good_fraction)
                    ends.append(end_sample)
                    probas.append(probs)
                    states.append(state)
                    changed.append(did_change)
                if phase:
                    pushed = origin + features.analysis_samples * config.decimation
                    triggers += engine.advance_each(pushed, stamp_of=stamp_of)
    end_samples = np.array(ends, dtype=np.int64)
    return DecodedRecording(
        end_samples=end_samples,
        end_s=recording.end_time_s(end_samples),
        proba=np.array(probas, dtype=np.float32).reshape(-1, len(contract.classes)),
        states=states,
        changed=np.array(changed, dtype=bool),
        quality=np.array(goods, dtype=np.float32),
        triggers=triggers,
        blanked=0 if engine is None else engine.counts["blanked_windows"],
        bad_model_outputs=step.bad_outputs,
    )


def _pieces(blocks, size: int):
    """Consecutive pieces of at most ``size`` rows of each block, in order."""
    for block in blocks:
        for i in range(0, block.shape[0], size):
            yield block[i : i + size]


def stim_report(
    triggers: Sequence, protocol: StimProtocol, segments: Sequence[Segment], duration_s: float
) -> dict:
    """What a protocol would have done on a labelled recording, rule by rule.

    Parameters
    ----------
    triggers : sequence of Trigger
        From :func:`decode_recording` with the protocol (times in recording seconds).
    protocol : StimProtocol
    segments : sequence of Segment
        The recording's labels (may be empty: then only counts and rates).
    duration_s : float
        The recording's length.

    Returns
    -------
    dict
        Per rule: ``triggers`` (sent, shams included), ``per_hour``, ``suppressed`` by reason,
        and with labels ``inside_target_share`` (triggers whose decision falls in the rule's
        target state: the state itself, or for ``exit:`` rules any other), ``outside_per_hour``,
        ``episodes`` / ``episodes_triggered`` and ``onset_delay_median_s`` / ``_p90_s`` (from each
        labelled episode's onset to its first trigger; ``enter``, ``in`` and ``onset`` rules).
    """
    hours = max(duration_s, 1e-9) / 3600.0
    report = {}
    for rule in protocol.rules:
        mine = [x for x in triggers if x.rule == rule.name]
        fired = [x for x in mine if x.suppressed is None and x.action in ("pulse", "on")]
        suppressed: dict[str, int] = {}
        for x in mine:
            if x.suppressed is not None:
                suppressed[x.suppressed] = suppressed.get(x.suppressed, 0) + 1
        entry = {
            "when": rule.when,
            "triggers": len(fired),
            "per_hour": round(len(fired) / hours, 3),
            "suppressed": suppressed,
        }
        if segments:
            episodes = event_episodes(segments, rule.state)
            times = np.array([x.t for x in fired])
            in_state = [any(a <= ts <= b for a, b in episodes) for ts in times]
            target = [x != (rule.kind == "exit") for x in in_state]
            entry["inside_target_share"] = round(float(np.mean(target)), 4) if len(target) else None
            entry["outside_per_hour"] = round((len(target) - sum(target)) / hours, 3)
            if rule.kind != "exit":
                delays = []
                for a, b in episodes:
                    hit = times[(times >= a) & (times <= b)]
                    if hit.size:
                        delays.append(float(hit.min() - a))
                entry["episodes"] = len(episodes)
                entry["episodes_triggered"] = len(delays)
                entry["onset_delay_median_s"] = (
                    round(float(np.median(delays)), 3) if delays else None
                )
                entry["onset_delay_p90_s"] = (
                    round(float(np.percentile(delays, 90)), 3) if delays else None
                )
        report[rule.name] = entry
    return report


def phase_report(
    triggers: Sequence,
    protocol: StimProtocol,
    recording: Recording,
    segments: Sequence[Segment] = (),
    *,
    rose_plot: str | None = None,
) -> dict:
    """Where each phase rule's pulses would have landed, against the recording's own phase.

    The reference is computed non-causally from the whole recording (zero-phase band-pass and
    Hilbert transform of the rule's channels' mean: :class:`rtdecode.phase.reference
    .ReferencePhase`); a pulse's error is the reference phase at its landing sample (the
    decision's last sample + the latency assumed + its delay) minus the target.

    Parameters
    ----------
    triggers : sequence of Trigger
        From :func:`decode_recording` with ``protocol``.
    protocol : StimProtocol
    recording : Recording
        The recording the triggers were decided on (its channels in the features' order).
    segments : sequence of Segment
        Labels, if any: pulses landing outside a labelled episode of the rule's state are
        counted.
    rose_plot : str, optional
        Write a rose plot of each rule's errors (PNG) there.

    Returns
    -------
    dict
        Per phase rule: ``pulses``, ``mean_error_deg`` (circular), ``vector_length``,
        ``within_45`` (share), ``target_deg``, ``band_hz``, ``outside_state`` (pulses decided
        outside the rule's state: always 0, checked), and with labels ``landed_outside_label`` and
        ``inside_label`` (the same summary over the pulses that landed in a labelled episode).
    """
    from rtdecode.phase.reference import ReferencePhase, circular_summary, write_rose_plot

    report, errors_by_rule = {}, {}
    for rule in protocol.phase_rules:
        target = rule.phase
        pulses = [
            x
            for x in triggers
            if x.rule == rule.name and x.suppressed is None and x.phase is not None
        ]
        landing = np.array([x.phase["landing_sample"] for x in pulses], dtype=np.float64)
        reference = ReferencePhase(
            recording.chunks(1 << 16),
            recording.fs_hz,
            target.band_hz,
            target.channel_indices(recording.channel_names),
        )
        errors = wrap_phase(reference.at(landing) - target.target_rad) if landing.size else []
        entry = {"state": rule.state, "target_deg": target.target_deg}
        entry["band_hz"] = list(target.band_hz)
        entry |= circular_summary(errors)
        entry["outside_state"] = sum(x.state != rule.state for x in pulses)
        if segments:
            episodes = event_episodes(segments, rule.state)
            ends = np.clip(np.floor(landing).astype(np.int64) + 1, 1, recording.n_samples)
            times = recording.end_time_s(ends)
            inside = np.array([any(a <= ts <= b for a, b in episodes) for ts in times], bool)
            entry["landed_outside_label"] = int(inside.size - inside.sum())
            # the estimator's own accuracy, apart from the decoder's mistakes about the state
            entry["inside_label"] = circular_summary(np.asarray(errors)[inside])
        report[rule.name] = entry
        errors_by_rule[rule.name] = np.asarray(errors)
    if rose_plot is not None and errors_by_rule:
        write_rose_plot(errors_by_rule, rose_plot)
    return report
