"""Decisions, triggers and labels written into NWB files (``rtdecode export``).

What goes in, all in core NWB types (no extension, so pynwb, MatNWB and NWB tools read it as
it is):

- ``intervals/decoded_states`` (``TimeIntervals``): one row per run of decisions of one state:
  ``start_time``, ``stop_time``, ``state``, ``mean_probability``, ``decisions``, ``stale``,
  ``run``. Stale decisions (decided too late to be published) are rows of their own, flagged,
  since nothing acted on them.
- ``intervals/decoder_health`` (``TimeIntervals``): ``no_signal`` and ``decoder_stalled``
  stretches (``kind``, ``ended_by``).
- ``events/stimulation`` (``EventsTable``): one row per trigger line, sent or suppressed:
  ``timestamp`` (when the output was to start), ``duration`` (pulse train, or a gate's time on;
  NaN for none), rule, action, state, sent, suppressed, control, reason, channel, ... An
  ``EventsTable`` is a core type of the NWB schema (2.11, as pynwb 4.2 writes it; the
  ``ndx-events`` proposal taken into the core): the schema's own type for TTL pulses and
  stimulus onsets, one timestamp per row with an optional duration and columns of its own,
  which is what a trigger is. ``AnnotationSeries`` holds only a string per time (the rule,
  whether it was sent, its duration would be packed into text), a ``TimeIntervals`` table
  needs a stop for triggers that have none (suppressed, ``off``), and ``ndx-events`` itself
  would make every reader install an extension.

Times count from the file's ``timestamps_reference_time``. With a recording (an NWB file), the
output takes the recording's session start and reference time, and the decoded stream's first
sample is placed at the recording's ``ElectricalSeries``' first sample (plus ``offset_s``), so
the tables line up with the recording's samples in any NWB viewer; the file is written beside
the recording, not into a copy of it (a copy would duplicate its samples, gigabytes for a
night; an HDF5 external link breaks when either file moves). Without one, the session starts at
the decoded stream's first sample, whose wall-clock time the log's ``start`` event gives.
"""

from __future__ import annotations

import datetime
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtdecode.common.files import commit_files, discard_staged, staging_path
from rtdecode.offline.decision_log import DecisionTimeline
from rtdecode.offline.nwb_time import NwbTimeBase, nwb_time_base, open_nwb
from rtdecode.offline.recordings import DataError, Segment

__all__ = ["write_decisions_nwb", "labels_table", "ExportSummary"]

logger = logging.getLogger("rtdecode")


def labels_table(
    segments: Sequence[Segment],
    *,
    name: str = "labels",
    description: str = "labels, in seconds from the session's reference time",
    label_column: str = "label",
    first_sample_s: float = 0.0,
):
    """Labels as an NWB ``TimeIntervals`` table, as :func:`rtdecode.offline.labels.read_labels`
    reads them back.

    Parameters
    ----------
    segments : sequence of Segment
        Onsets in seconds from the recording's first sample.
    name, description : str
    label_column : str
        The column holding the labels (a ``group`` column is added when any segment has one).
    first_sample_s : float
        The recording's first sample in the file's time (its ElectricalSeries'
        ``starting_time``), added to every onset.

    Returns
    -------
    pynwb.epoch.TimeIntervals
    """
    from hdmf.common import VectorData
    from pynwb.epoch import TimeIntervals

    onsets = np.array([s.onset_s for s in segments], dtype=np.float64) + first_sample_s
    ends = np.array([s.end_s for s in segments], dtype=np.float64) + first_sample_s
    columns = [
        VectorData(name="start_time", description="label onset, seconds", data=onsets),
        VectorData(name="stop_time", description="label end, seconds", data=ends),
        VectorData(name=label_column, description="the label", data=[s.label for s in segments]),
    ]
    if any(s.group is not None for s in segments):
        columns.append(
            VectorData(
                name="group",
                description="what the segment belongs to for validation (event, animal)",
                data=[s.group or "" for s in segments],
            )
        )
    return TimeIntervals(name=name, description=description, columns=columns)


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`write_decisions_nwb` wrote, for the CLI to say.

    Attributes
    ----------
    path : Path
    states, stale, triggers, sent, health, decisions : int
        Rows of decoded_states (of which stale), of stimulation (of which sent), of
        decoder_health; decisions in the log.
    alignment : str
        How the decisions got their times (``samples``, ``lsl``, ``recording``).
    shift_s : float
        Where the decoded stream's first sample is in the file's time, s.
    session_start : datetime.datetime
    placed : str
        The time base in words.
    """

    path: Path
    states: int
    stale: int
    triggers: int
    sent: int
    health: int
    decisions: int
    alignment: str
    shift_s: float
    session_start: datetime.datetime
    placed: str


def write_decisions_nwb(
    timeline: DecisionTimeline,
    out: str | Path,
    *,
    recording: str | Path | None = None,
    series: str | None = None,
    offset_s: float = 0.0,
    logs: Sequence[str | Path] = (),
) -> ExportSummary:
    """Write a decision timeline as an NWB file (see the module notes).

    Parameters
    ----------
    timeline : DecisionTimeline
        From :func:`rtdecode.offline.decision_log.read_decision_log`.
    out : str or Path
        The NWB file to write; written whole or not at all (staged beside it, then moved).
    recording : str or Path, optional
        The NWB recording the log decoded: its session start, reference time and the first
        sample of ``series`` give the output's time base.
    series : str, optional
        The recording's ElectricalSeries that was decoded (default: the earliest starting one).
    offset_s : float
        Seconds from the recording's first sample to the decoded stream's first sample (a live
        decoder started after the recording; 0 for a replay or ``evaluate`` of the recording).
    logs : sequence of path
        The log files, named in the output's notes.

    Returns
    -------
    ExportSummary

    Raises
    ------
    DataError
        The recording is unreadable, names no such series, or the decisions fall outside it;
        evaluate's decisions without a recording (they carry no wall-clock time).
    """
    from pynwb import NWBHDF5IO, NWBFile

    from rtdecode import __version__

    if not math.isfinite(offset_s):
        raise ValueError(f"offset_s must be finite, got {offset_s!r}")
    out = Path(out)
    base: NwbTimeBase | None = None
    if recording is not None:
        recording = Path(recording)
        with open_nwb(recording) as recfile:
            base = nwb_time_base(recfile, recording, series)
            identifier = recfile.identifier
        _check_against_recording(timeline, base, recording, offset_s)
    elif series is not None:
        raise DataError("--series names a series of --recording: give --recording too")
    elif timeline.first_sample_unix is None:
        raise DataError(
            "rtdecode evaluate's decisions carry no wall-clock time: give the recording they "
            "were decoded from with --recording REC.nwb"
        )
    if base is not None:
        session_start, reference = base.session_start_time, base.reference_time
        shift = (base.first_sample_s or 0.0) + offset_s
        placed = (
            f"time 0 is the reference time of {recording.name} (identifier {identifier}); the "
            f"decoded stream's first sample is placed at {shift:g} s, its series "
            f"{base.series!r} starting at {base.first_sample_s or 0.0:g} s"
            + (f" plus --offset-s {offset_s:g}" if offset_s else "")
        )
    else:
        session_start = datetime.datetime.fromtimestamp(
            timeline.first_sample_unix, tz=datetime.timezone.utc
        )
        reference, shift = session_start, offset_s
        placed = (
            "time 0 is the decoded stream's first sample, its wall-clock time from the log's "
            "start event"
        )
    start = timeline.start
    what = (
        f"model {Path(str(start['model'])).name} on LSL stream {start.get('stream')!r} "
        f"(source_id {start.get('source_id')!r})"
        if start.get("model")
        else "rtdecode evaluate"
    )
    nwbfile = NWBFile(
        session_description=f"rtdecode decisions: {what}",
        identifier=str(uuid.uuid4()),
        session_start_time=session_start,
        timestamps_reference_time=reference,
        notes=f"{timeline.alignment_text}; {placed}. Logs: "
        + ", ".join(str(Path(p).name) for p in logs),
        source_script=f"rtdecode {__version__} export",
        source_script_file_name="rtdecode",
        was_generated_by=[["rtdecode", __version__]],
    )
    # the state after the last decision holds a hop, but not past the recording's end
    end = (
        base.first_sample_s + base.duration_s
        if base is not None and base.first_sample_s is not None and base.duration_s is not None
        else math.inf
    )
    nwbfile.add_time_intervals(_states_table(timeline, shift, end))
    if timeline.health:
        nwbfile.add_time_intervals(_health_table(timeline, shift))
    if timeline.triggers:
        nwbfile.add_events_table(_stim_table(timeline, shift))
    # pynwb warns about a name not ending in .nwb: the staged file keeps the suffix
    staging = staging_path(out)
    staged = {out: staging.with_name(staging.name + out.suffix)}
    try:
        with NWBHDF5IO(str(staged[out]), mode="w") as io:
            io.write(nwbfile)
        commit_files(staged)
    finally:
        discard_staged(staged)
    return ExportSummary(
        path=out,
        states=len(timeline.states),
        stale=sum(s.stale for s in timeline.states),
        triggers=len(timeline.triggers),
        sent=sum(t.sent for t in timeline.triggers),
        health=len(timeline.health),
        decisions=timeline.decisions,
        alignment=timeline.alignment,
        shift_s=shift,
        session_start=session_start,
        placed=placed,
    )


def _check_against_recording(
    timeline: DecisionTimeline, base: NwbTimeBase, path: Path, offset_s: float
) -> None:
    """Refuse decisions that cannot be of this recording; warn about a rate that differs."""
    if base.first_sample_s is None:
        raise DataError(
            f"{path}: no ElectricalSeries to place the decisions by: is it the recording?"
        )
    if base.fs_hz and timeline.fs_hz and not math.isclose(base.fs_hz, timeline.fs_hz):
        logger.warning(
            "the decoded stream ran at %g Hz, series %r of %s at %g Hz: placed by time, so "
            "right only if the stream is this series (resampled)",
            timeline.fs_hz,
            base.series,
            path.name,
            base.fs_hz,
        )
    if base.duration_s is None or not timeline.states:
        return
    first = timeline.states[0].start_s + offset_s
    last = timeline.states[-1].stop_s + offset_s
    if first >= base.duration_s:
        raise DataError(
            f"{path}: the first decision falls at {first:.3f} s, after the end of series "
            f"{base.series!r} ({base.duration_s:.3f} s): is this the recording of the log?"
        )
    if last > base.duration_s + 1.0:
        logger.warning(
            "the decisions run to %.3f s, %.3f s past the end of series %r of %s",
            last,
            last - base.duration_s,
            base.series,
            path.name,
        )


def _vector(name: str, description: str, data) -> object:
    from hdmf.common import VectorData

    return VectorData(name=name, description=description, data=data)


def _states_table(timeline: DecisionTimeline, shift: float, end: float):
    from pynwb.epoch import TimeIntervals

    s = timeline.states
    stops = [max(x.start_s + shift, min(x.stop_s + shift, end)) for x in s]
    return TimeIntervals(
        name="decoded_states",
        description=(
            "rtdecode's smoothed state, one row per run of decisions of one state: from the "
            "first decision's window end to the next decision's (or a hop after the last, "
            "within the recording). " + timeline.alignment_text
        ),
        columns=[
            _vector(
                "start_time", "first decision's window end, s", _f([x.start_s + shift for x in s])
            ),
            _vector("stop_time", "next decision's window end, s", _f(stops)),
            _vector("state", "the smoothed state (a class, or bad_signal)", [x.state for x in s]),
            _vector(
                "mean_probability",
                "mean model probability of the state over the decisions (NaN: no class)",
                _f([x.mean_probability for x in s]),
            ),
            _vector("decisions", "decisions in the run", np.array([x.decisions for x in s])),
            _vector(
                "stale",
                "decided too late to publish: logged, never sent or acted on",
                np.array([x.stale for x in s], dtype=bool),
            ),
            _vector(
                "run", "decoder run (start event) of the log, from 1", np.array([x.run for x in s])
            ),
        ],
    )


def _health_table(timeline: DecisionTimeline, shift: float):
    from pynwb.epoch import TimeIntervals

    h = timeline.health
    return TimeIntervals(
        name="decoder_health",
        description=(
            "stretches without input samples (no_signal) or with the decode thread stalled "
            "(decoder_stalled), placed by the LSL time of the log's events"
        ),
        columns=[
            _vector("start_time", "detected, s", _f([x.start_s + shift for x in h])),
            _vector("stop_time", "ended, s", _f([x.stop_s + shift for x in h])),
            _vector("kind", "no_signal or decoder_stalled", [x.kind for x in h]),
            _vector("ended_by", "the log event that ended it", [x.ended_by for x in h]),
        ],
    )


def _stim_table(timeline: DecisionTimeline, shift: float):
    from pynwb.event import DurationVectorData, EventsTable, TimestampVectorData

    t = timeline.triggers
    resolution = 1.0 / timeline.fs_hz if timeline.fs_hz else None
    return EventsTable(
        name="stimulation",
        description=(
            "rtdecode's stimulation triggers, one row per trigger line of the log, sent or "
            "suppressed: timestamp = the deciding window's end + the rule's delay; duration = "
            "the pulse train, or a gate's time until its off (NaN: none). "
            + timeline.alignment_text
        ),
        source_description="rtdecode stimulation rules on the decoded state",
        columns=[
            TimestampVectorData(
                name="timestamp",
                description="when the output was to start, s",
                data=_f([x.time_s + shift for x in t]),
                resolution=resolution,
            ),
            DurationVectorData(
                name="duration",
                description="output length, s (NaN: none)",
                data=_f([x.duration_s for x in t]),
            ),
            _vector("rule", "the rule's name", [x.rule for x in t]),
            _vector("action", "pulse, on or off", [x.action for x in t]),
            _vector("state", "the smoothed state at the decision", [x.state for x in t]),
            _vector(
                "reason", "what made it (the rule's condition, max_on, ...)", [x.reason for x in t]
            ),
            _vector(
                "sent", "the command went to the device", np.array([x.sent for x in t], dtype=bool)
            ),
            _vector(
                "suppressed",
                "why not sent: refractory, rate_limit, disarmed, stale (empty: sent)",
                [x.suppressed for x in t],
            ),
            _vector("control", "sham or yoked (empty: neither)", [x.control for x in t]),
            _vector(
                "decision_time",
                "the deciding window's end, s",
                _f([x.decision_s + shift for x in t]),
            ),
            _vector("channel", "the device's output", np.array([x.channel for x in t])),
            _vector("pulses", "pulses in the train", np.array([x.pulses for x in t])),
            _vector("pulse_ms", "pulse length, ms", _f([x.pulse_ms for x in t])),
            _vector("period_ms", "train period, ms", _f([x.period_ms for x in t])),
            _vector("delay_ms", "delay before the output, ms", _f([x.delay_ms for x in t])),
            _vector(
                "round_trip_ms",
                "command to the device's acknowledgement, ms (NaN: none)",
                _f([x.round_trip_ms for x in t]),
            ),
        ],
    )


def _f(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
