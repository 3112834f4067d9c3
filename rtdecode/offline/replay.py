"""Stream a recording over LSL at real-time pace (or faster), with its labels as truth markers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from rtdecode.common.paced_source import PacedSource
from rtdecode.offline.recordings import Recording, Segment

__all__ = ["replay_recording"]

logger = logging.getLogger("rtdecode")


def replay_recording(
    recording: Recording,
    name: str,
    *,
    speed: float = 1.0,
    chunk_samples: int = 32,
    segments: Sequence[Segment] | None = None,
    source_id: str | None = None,
    wait_for_consumers_s: float = 0.0,
    loop: bool = False,
    stop_event: threading.Event | None = None,
) -> int:
    """Push a recording's samples to an LSL outlet, chunk by chunk, at ``speed`` x real time.

    Parameters
    ----------
    recording : Recording
        Read one chunk at a time (memory stays bounded by the read block).
    name : str
        Data stream name (type ``EEG``, float32, the recording's rate). Channel labels and units
        go in the stream header. Labels, if given, go on ``NAME-truth`` (``Markers``): the
        segment's label at its onset and ``unlabelled`` where no segment covers the time.
    speed : float
        1 = real time. The stream's nominal rate stays the recording's: a decoder clocks its
        decisions by samples, so decisions are the same at any speed.
    chunk_samples : int
        Samples per push.
    loop : bool
        Start over at the end (the sample clock keeps counting; no truth is re-sent).

    Returns
    -------
    int
        Samples pushed.

    Notes
    -----
    Paced by :class:`rtdecode.common.paced_source.PacedSource`: each chunk is pushed when its
    last sample is due at ``speed`` and stamped with the time of its push; a late chunk goes at
    once. A gap in the recording's timestamps (:meth:`Recording.runs`) is a pause of its length
    in the stream, so the decoder sees the gap a rig's live stream would have had.
    """
    fs = recording.fs_hz
    changes = _label_changes(segments, recording) if segments else []
    source = PacedSource(
        name,
        fs_hz=fs,
        channels=[
            (label, unit, "EEG") for label, unit in zip(recording.channel_names, recording.units)
        ],
        source_id=source_id or f"rtdecode-replay:{name}:{recording.path.name}",
        chunk_samples=chunk_samples,
        max_buffered_s=360,
        speed=speed,
        description={"manufacturer": "rtdecode replay", "file": str(recording.path)},
        truth_classes=list(dict.fromkeys(s.label for s in segments)) if segments else None,
    )
    if wait_for_consumers_s > 0 and not source.wait_for_consumers(wait_for_consumers_s):
        logger.info("no consumer after %g s; streaming anyway", wait_for_consumers_s)

    read_block = chunk_samples * max(1, round(0.1 * fs / chunk_samples))
    change_i = 0
    stop_event = stop_event or threading.Event()
    source.start_clock()
    try:
        while not stop_event.is_set():
            for start, stop in _read_blocks(recording, read_block):
                if start > 0 and start in recording.discontinuities:
                    # a gap in the recording is a gap in the stream, as the rig sent it live
                    before, after = recording.times_s(start - 1, start + 1)
                    source.skip(max(float(after - before) - 1 / fs, 0.0))
                block = recording.read(start, stop)
                for j in range(0, block.shape[0], chunk_samples):
                    chunk = np.ascontiguousarray(block[j : j + chunk_samples])
                    # label changes whose first sample is in this chunk (first pass only)
                    end = source.pushed + chunk.shape[0]
                    first_change = change_i
                    while change_i < len(changes) and changes[change_i][0] < end:
                        change_i += 1
                    if source.push(chunk, changes[first_change:change_i], stop_event) is None:
                        return source.pushed
            if not loop:
                break
            source.stop_truth()  # truth is sent once
            changes, change_i = [], 0
        return source.pushed
    finally:
        source.close()


def _read_blocks(recording: Recording, read_block: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each read, up to ``read_block`` samples, none across a gap."""
    return [
        (start, min(start + read_block, stop))
        for first, stop in recording.runs()
        for start in range(first, stop, read_block)
    ]


def _label_changes(segments: Sequence[Segment], recording: Recording) -> list[tuple[int, str]]:
    """(first sample, label) of every label change, ``unlabelled`` between segments; placed by
    the samples' times (their timestamps when the file has them)."""
    n_samples = recording.n_samples
    changes: list[tuple[int, str]] = []
    current = None
    pos = 0
    for s in sorted(segments, key=lambda s: s.onset_s):
        a, b = recording.sample_at(s.onset_s), recording.sample_at(s.end_s)
        if a > pos and current != "unlabelled":
            changes.append((pos, "unlabelled"))
            current = "unlabelled"
        if s.label != current:
            changes.append((a, s.label))
            current = s.label
        pos = max(pos, b)
    if pos < n_samples and current != "unlabelled":
        changes.append((pos, "unlabelled"))
    return [(a, lab) for a, lab in changes if a < n_samples]
