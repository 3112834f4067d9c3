"""Stream a recording over LSL at real-time pace (or faster), with its labels as truth markers."""
from __future__ import annotations

import logging
import threading
from typing import Sequence

import numpy as np

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
    Chunk ``k`` is pushed at ``t0 + (k + 1) * chunk / (fs * speed)`` on the LSL clock and
    stamped with the time of its push (the time of its last sample); a late chunk goes at once.
    """
    import pylsl

    fs = recording.fs_hz
    source_id = source_id or f"rtdecode-replay:{name}:{recording.path.name}"
    info = pylsl.StreamInfo(name, "EEG", recording.n_channels, fs, "float32", source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", "rtdecode replay")
    desc.append_child_value("file", str(recording.path))
    channels = desc.append_child("channels")
    for label, unit in zip(recording.channel_names, recording.units):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit or "unknown")
        ch.append_child_value("type", "EEG")
    outlet = pylsl.StreamOutlet(info, chunk_size=chunk_samples, max_buffered=360)
    truth = None
    changes: list[tuple[int, str]] = []
    if segments:
        truth_info = pylsl.StreamInfo(f"{name}-truth", "Markers", 1, pylsl.IRREGULAR_RATE,
                                      "string", f"{source_id}-truth")
        truth_info.desc().append_child_value(
            "classes", ",".join(dict.fromkeys(s.label for s in segments)))
        truth = pylsl.StreamOutlet(truth_info)
        changes = _label_changes(segments, fs, recording.n_samples)
    if wait_for_consumers_s > 0 and not outlet.wait_for_consumers(wait_for_consumers_s):
        logger.info("no consumer after %g s; streaming anyway", wait_for_consumers_s)

    period = chunk_samples / (fs * speed)
    read_block = chunk_samples * max(1, round(0.1 * fs / chunk_samples))
    pushed = 0
    change_i = 0
    t0 = pylsl.local_clock()
    k = 0
    stop_event = stop_event or threading.Event()
    while not stop_event.is_set():
        for start in range(0, recording.n_samples, read_block):
            block = recording.read(start, start + read_block)
            for j in range(0, block.shape[0], chunk_samples):
                chunk = np.ascontiguousarray(block[j : j + chunk_samples])
                due = t0 + (k + 1) * period
                wait = due - pylsl.local_clock()
                if wait > 0 and stop_event.wait(wait):
                    return pushed
                now = pylsl.local_clock()
                outlet.push_chunk(chunk, now)
                k += 1
                first = start + j
                pushed += chunk.shape[0]
                # truth marker right after the chunk holding the new label's first sample,
                # stamped with that sample's time
                while truth is not None and change_i < len(changes) and \
                        changes[change_i][0] < first + chunk.shape[0]:
                    sample, label = changes[change_i]
                    back = (first + chunk.shape[0] - 1 - sample) / (fs * speed)
                    truth.push_sample([label], now - back)
                    change_i += 1
        if not loop:
            break
        truth = None  # truth is sent once
    if outlet.have_consumers():
        stop_event.wait(0.5)  # let the last chunk reach the inlets before the outlet closes
    return pushed


def _label_changes(segments: Sequence[Segment], fs: float, n_samples: int) -> list[tuple[int, str]]:
    """(first sample, label) of every label change, ``unlabelled`` between segments."""
    changes: list[tuple[int, str]] = []
    current = None
    pos = 0
    for s in sorted(segments, key=lambda s: s.onset_s):
        a, b = int(round(s.onset_s * fs)), int(round(s.end_s * fs))
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
