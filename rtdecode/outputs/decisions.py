"""What the decoder publishes: class scores and state changes over LSL, and a JSON-lines log.

Two outlets are created per decoder, both keyed to the input stream's ``source_id`` so that a
restarted decoder is found again by consumers that were following it:

``rtdecode-scores`` (type ``Scores``)
    One float32 channel per class, labelled with the class name, then a ``quality`` channel (the
    fraction of input channels usable in the window, 0-1), one sample per decision at nominal
    rate ``1 / hop_s``. Closed-loop consumers read this one.
``rtdecode-state`` (type ``Markers``)
    One string channel, irregular rate; a marker with the state name whenever the state changes
    (including the initial state), and ``bad_signal`` / ``no_signal`` when the input cannot be
    trusted / stops.

Both carry the timestamp of the last input sample of the decision window, so consumers can
line decisions up with the raw data; the decode latency is reported in the log, not folded into
the timestamps. Neither outlet's timestamps ever go back: a sample or marker stamped before the
last one pushed on its outlet (a ``no_signal`` stamped by the local clock while the decisions
carry a source clock ahead of it, a state re-announced from a window older than that marker)
is stamped with the last one's time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pylsl

from rtdecode.common.checks import check_classes, check_seconds
from rtdecode.outputs.log import JsonLinesLog
from rtdecode.streams import (
    BAD_SIGNAL,
    QUALITY_CHANNEL,
    SCORES_STREAM_NAME,
    STATE_STREAM_NAME,
    output_source_id,
)

__all__ = [
    "Decision",
    "DecisionOutputs",
    "QUALITY_CHANNEL",
    "SCORES_STREAM_NAME",
    "STATE_STREAM_NAME",
]

logger = logging.getLogger("rtdecode")


# Keys every decision line owns; counters must not shadow them.
_DECISION_KEYS = frozenset(
    {"t", "end_sample", "probs", "state", "changed", "quality", "bad_channels", "stale"}
)
# LSL buffers this much per outlet: seconds for the scores stream, x100 markers for the state
# stream. A consumer that stalls longer than this loses the oldest decisions, not our memory.
_MAX_BUFFERED_S = 60


@dataclass(frozen=True, eq=False)
class Decision:
    """One decoder decision, as published.

    Parameters
    ----------
    end_sample : int
        Absolute count of input samples at the end of the window (exclusive), i.e. the window is
        ``[end_sample - window_samples, end_sample)``.
    timestamp : float
        LSL local-clock timestamp of the last sample of the window, seconds. Must be finite;
        note that LSL replaces a timestamp of exactly ``0.0`` by the time of the push.
    probabilities : ndarray, shape (n_classes,), float32
        Class probabilities in model output order. Other float dtypes are converted to float32.
    state : str
        Smoothed state after this decision.
    state_changed : bool
        Whether ``state`` differs from the previous decision's state (``True`` for the first).
    counters : mapping of str to int or float
        Free-form JSON-able diagnostics written to the log line (e.g. ``lost_samples``, ``gaps``,
        ``overruns``, ``latency_ms``). Keys must not be one of ``t``, ``end_sample``, ``probs``,
        ``state``, ``changed``, ``quality``, ``bad_channels``, ``stale``.
    quality : float
        Fraction of the input channels that were usable in the window (``rtdecode.features.quality``),
        published as the last score channel.
    bad_channels : mapping of str to str
        ``{channel: reason}`` of the unusable ones, logged when not empty.

    Notes
    -----
    Equality is identity (``eq=False``): comparing arrays field by field is ambiguous. The
    mapping and array are stored as given (after the float32 conversion), not copied.
    """

    end_sample: int
    timestamp: float
    probabilities: np.ndarray
    state: str
    state_changed: bool
    counters: Mapping[str, int | float] = field(default_factory=dict)
    quality: float = 1.0
    bad_channels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.end_sample, bool) or not isinstance(self.end_sample, int | np.integer):
            raise TypeError(f"end_sample must be an int, got {type(self.end_sample).__name__}")
        if self.end_sample < 0:
            raise ValueError(f"end_sample must be >= 0, got {self.end_sample}")
        if not math.isfinite(self.timestamp):
            raise ValueError(f"timestamp must be finite, got {self.timestamp!r}")
        probs = self.probabilities
        if not (isinstance(probs, np.ndarray) and probs.dtype == np.float32):
            probs = np.asarray(probs, dtype=np.float32)
            object.__setattr__(self, "probabilities", probs)
        if probs.ndim != 1:
            raise ValueError(f"probabilities must be 1-D (n_classes,), got shape {probs.shape}")
        if not isinstance(self.state, str):
            raise TypeError(f"state must be a str, got {type(self.state).__name__}")
        if not isinstance(self.counters, Mapping):
            raise TypeError(f"counters must be a mapping, got {type(self.counters).__name__}")
        clash = _DECISION_KEYS.intersection(self.counters)
        if clash:
            raise ValueError(
                f"counters must not use the reserved keys {sorted(_DECISION_KEYS)}, "
                f"got {sorted(clash)}"
            )


class DecisionOutputs:
    """Publish decisions on two LSL outlets and, optionally, a JSON-lines log.

    Parameters
    ----------
    classes : sequence of str
        Class names in model output order; they label the score channels.
    input_source_id : str
        ``source_id`` of the input stream; the outlets' source ids are
        ``"rtdecode-scores:<input_source_id>"`` and ``"rtdecode-state:<input_source_id>"``.
    input_name : str
        Name of the input stream (recorded in the outlets' descriptions).
    hop_s : float
        Time between decisions, seconds; the scores stream's nominal rate is ``1 / hop_s``.
    log_path : str or Path, optional
        JSON-lines decision log. Opened for appending, so a restarted decoder adds to the log
        of the previous run. Its directory must exist.
    model_name : str
        Model identifier recorded in the outlets' descriptions and available to the log.
    log_rotate_bytes : int, optional
        For 24/7 runs: when the log reaches this size it is renamed with the UTC time
        (``decisions.20261123T140102Z.jsonl``) and a new one is started; nothing is deleted.
    log_rotate_s : float, optional
        Also start a new log at every multiple of this many seconds of UTC time (86400: a file
        per UTC day for 24/7 runs); a restarted decoder keeps appending to the current period's
        file.
    log_fsync_s : float, optional
        Also ``os.fsync`` the log at most this often (a flushed line survives a crash of the
        process; an fsync'd one also survives a power cut).

    Notes
    -----
    The outlets exist (and are discoverable) from construction until ``close``. ``publish`` is
    called from the decode thread; ``log_event`` may be called from any thread (log writes are
    serialised by a lock). Each log line is flushed as it is written, so a crash loses at most
    the line being written.
    """

    def __init__(
        self,
        classes: Sequence[str],
        *,
        input_source_id: str,
        input_name: str,
        hop_s: float,
        log_path: str | Path | None = None,
        model_name: str = "",
        log_rotate_bytes: int | None = None,
        log_fsync_s: float | None = None,
        log_rotate_s: float | None = None,
    ) -> None:
        self._classes = check_classes(classes)
        for name, value in (
            ("input_source_id", input_source_id),
            ("input_name", input_name),
            ("model_name", model_name),
        ):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        hop_s = check_seconds("hop_s", hop_s)
        if not input_source_id:
            # An empty source id makes every decoder on the network look like the same source.
            logger.warning(
                "input stream has no source_id: the output streams cannot be told apart from "
                "those of another decoder reading a stream without one"
            )
        self._hop_s = hop_s
        self._input_source_id = input_source_id
        self._input_name = input_name
        self._model_name = model_name
        self._lock = threading.Lock()
        self._closed = False
        self._state_pending = False  # a stale decision changed the state: announce it next
        # the last timestamp pushed on each outlet: the next is never earlier
        self._last_scores_ts = -math.inf
        self._last_state_ts = -math.inf
        self._state_lock = threading.Lock()  # markers and state changes share the state outlet

        # Open the log before creating outlets: a bad path then fails without leaving streams
        # advertised on the network.
        self._log = (
            None
            if log_path is None
            else JsonLinesLog(
                log_path, rotate_bytes=log_rotate_bytes, rotate_s=log_rotate_s, fsync_s=log_fsync_s
            )
        )

        try:
            self._scores_info = self._make_scores_info()
            self._state_info = self._make_state_info()
            self._scores_outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(
                self._scores_info, chunk_size=1, max_buffered=_MAX_BUFFERED_S
            )
            self._state_outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(
                self._state_info, chunk_size=1, max_buffered=_MAX_BUFFERED_S
            )
        except BaseException:
            if self._log is not None:
                self._log.close()
            raise
        # Preallocated so publish() does not allocate for the LSL push.
        # one score per class, then the quality channel
        self._sample = np.zeros(len(self._classes) + 1, dtype=np.float32)
        self._class_set = frozenset(self._classes) | {BAD_SIGNAL}
        logger.debug(
            "outlets %r and %r created for input %r (source_id %r)",
            SCORES_STREAM_NAME,
            STATE_STREAM_NAME,
            input_name,
            input_source_id,
        )

    # Construction helpers ------------------------------------------------------------------
    def _describe(self, info: pylsl.StreamInfo) -> None:
        desc = info.desc()
        desc.append_child_value("manufacturer", "rtdecode")
        desc.append_child_value("input_name", self._input_name)
        desc.append_child_value("input_source_id", self._input_source_id)
        desc.append_child_value("model", self._model_name)
        desc.append_child_value("hop_s", repr(self._hop_s))
        classes = desc.append_child("classes")
        for c in self._classes:
            classes.append_child_value("class", c)

    def _make_scores_info(self) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            name=SCORES_STREAM_NAME,
            type="Scores",
            channel_count=len(self._classes) + 1,
            nominal_srate=1.0 / self._hop_s,
            channel_format=pylsl.cf_float32,
            source_id=output_source_id(SCORES_STREAM_NAME, self._input_source_id),
        )
        info.set_channel_labels([*self._classes, QUALITY_CHANNEL])
        info.set_channel_types(["probability"] * len(self._classes) + ["quality"])
        info.set_channel_units("none")
        self._describe(info)
        return info

    def _make_state_info(self) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            name=STATE_STREAM_NAME,
            type="Markers",
            channel_count=1,
            nominal_srate=pylsl.IRREGULAR_RATE,
            channel_format=pylsl.cf_string,
            source_id=output_source_id(STATE_STREAM_NAME, self._input_source_id),
        )
        info.set_channel_labels(["state"])
        self._describe(info)
        return info

    # Properties ------------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, in score-channel order."""
        return self._classes

    @property
    def hop_s(self) -> float:
        """Time between decisions, seconds."""
        return self._hop_s

    @property
    def log_error(self) -> str | None:
        """Why the decision log cannot be written now (its lines are held meanwhile), or None."""
        return None if self._log is None else self._log.error

    @property
    def log_path(self) -> Path | None:
        """Path of the decision log, or ``None``."""
        return None if self._log is None else self._log.path

    @property
    def scores_info(self) -> pylsl.StreamInfo:
        """Full description (with ``desc``) of the scores outlet."""
        return self._scores_info

    @property
    def state_info(self) -> pylsl.StreamInfo:
        """Full description (with ``desc``) of the state outlet."""
        return self._state_info

    @property
    def closed(self) -> bool:
        """Whether ``close`` has been called."""
        return self._closed

    # Publishing --------------------------------------------------------------------------------
    def wait_for_consumers(self, timeout: float) -> bool:
        """Block until both outlets have at least one consumer.

        Parameters
        ----------
        timeout : float
            Longest total wait, seconds.

        Returns
        -------
        connected : bool
            ``False`` if the timeout expired first.
        """
        scores, state = self._outlets()
        deadline = time.monotonic() + float(timeout)
        for outlet in (scores, state):
            if not outlet.wait_for_consumers(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def publish(self, d: Decision, *, stale: bool = False) -> None:
        """Publish one decision: scores, then the state marker if it changed, then the log line.

        Parameters
        ----------
        d : Decision
            The decision; ``d.probabilities`` must hold one value per class and ``d.state`` must
            be one of the classes.

        Notes
        -----
        Called from the decode thread, on the latency path. The scores go out first because
        closed-loop consumers act on them; the log line (a file write) comes last.
        """
        scores, state = self._outlets()
        probs = d.probabilities
        if probs.shape != (len(self._classes),):
            raise ValueError(
                f"decision probabilities must have shape {(len(self._classes),)} "
                f"(one per class {list(self._classes)}), got {probs.shape}"
            )
        if d.state not in self._class_set:
            raise ValueError(
                f"decision state {d.state!r} is not a class or {BAD_SIGNAL!r}; allowed: "
                f"{list(self._classes)}"
            )
        self._sample[:-1] = probs
        self._sample[-1] = d.quality
        if stale:
            # too old to act on: logged (nothing decided is lost) but not sent to consumers
            if self._log is not None:
                self._log.write(self._record(d, d.timestamp) | {"stale": True})
            # a state change made in a stale decision is announced with the next fresh one,
            # so a consumer of the state outlet never stays on a state the decoder has left
            self._state_pending = self._state_pending or d.state_changed
            return
        timestamp = max(d.timestamp, self._last_scores_ts)
        self._last_scores_ts = timestamp
        # push_chunk hands liblsl the buffer's pointer (push_sample rebuilds a ctypes array:
        # 3.3 vs 2.4 us); for one sample the explicit timestamp is kept as is.
        scores.push_chunk(self._sample, timestamp)
        if d.state_changed or self._state_pending:
            self._push_state(state, d.state, timestamp)
            self._state_pending = False
        if self._log is not None:
            self._log.write(self._record(d, timestamp))

    def _record(self, d: Decision, timestamp: float) -> dict[str, Any]:
        values = self._sample.tolist()
        record: dict[str, Any] = {
            "t": timestamp,
            "end_sample": int(d.end_sample),
            "probs": {c: round(v, 6) for c, v in zip(self._classes, values)},
            "state": d.state,
            "changed": bool(d.state_changed),
            "quality": round(float(d.quality), 4),
        }
        if d.bad_channels:
            record["bad_channels"] = dict(d.bad_channels)
        record.update(d.counters)
        return record

    def publish_marker(self, marker: str, timestamp: float) -> None:
        """Push a stream-health marker (e.g. ``"no_signal"``) on the state outlet and log it.

        Markers are not classes: a consumer of ``rtdecode-state`` sees the decoder's view of its
        input change, and the next decision's state (re-announced after the marker) ends it.
        The marker is stamped ``timestamp``, or the state outlet's last timestamp when that is
        later (the log line's ``t`` is the stamp pushed).
        """
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        _, state = self._outlets()
        self.log_event(marker, t=self._push_state(state, marker, timestamp))

    def _push_state(self, outlet: pylsl.StreamOutlet, text: str, timestamp: float) -> float:
        """Push ``text`` on the state outlet, stamped no earlier than the last push; the stamp."""
        with self._state_lock:
            timestamp = max(timestamp, self._last_state_ts)
            self._last_state_ts = timestamp
            outlet.push_sample([text], timestamp)
        return timestamp

    def log_event(self, kind: str, **fields: Any) -> None:
        """Append a non-decision line ``{"event": kind, "t": ..., "unix_time": ..., **fields}``.

        Parameters
        ----------
        kind : str
            Event name, e.g. ``"start"``, ``"stop"``, ``"gap"``.
        **fields
            JSON-able values. ``t`` (LSL local clock, s) and ``unix_time`` (s) default to now and
            may be overridden.

        Notes
        -----
        Does nothing when there is no log file. Safe to call from any thread.
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty str, got {kind!r}")
        if "event" in fields:
            raise ValueError("fields must not contain 'event' (it is set from kind)")
        if self._closed:
            raise RuntimeError("DecisionOutputs is closed")
        if self._log is None:
            return
        record: dict[str, Any] = {
            "event": kind,
            "t": pylsl.local_clock(),
            "unix_time": time.time(),
        }
        record.update(fields)
        self._log.write(record)

    def _outlets(self) -> tuple[pylsl.StreamOutlet, pylsl.StreamOutlet]:
        scores, state = self._scores_outlet, self._state_outlet
        if scores is None or state is None:
            raise RuntimeError("DecisionOutputs is closed")
        return scores, state

    # Lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Withdraw both outlets and close the log. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # Dropping the last reference destroys the liblsl outlet (pylsl has no close()).
            self._scores_outlet = None
            self._state_outlet = None
            if self._log is not None:
                self._log.close()
        logger.debug("outlets for input %r closed", self._input_name)

    def __enter__(self) -> DecisionOutputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DecisionOutputs(classes={list(self._classes)}, input={self._input_name!r}, "
            f"hop_s={self._hop_s}, log_path={self.log_path}, closed={self._closed})"
        )
