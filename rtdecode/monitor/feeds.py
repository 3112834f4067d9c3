"""What the monitor shows, fetched without Qt: a decoder's decisions, status and signal.

:class:`LslFeed` reads a decoder in another process (``rtdecode monitor``) from its outlets only
(``rtdecode-signal``, ``-scores``, ``-state``, ``-features``, ``-status``), so it also runs on
another machine and the source never sends its raw stream twice. :class:`DecoderFeed` shows a
decoder of the same process (tests) from its raw ring buffer. :class:`TruthInlet` reads a
source's ``NAME-truth`` markers. Every call returns at once: the window polls them on its timer.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from rtdecode.decoding.status import DecoderStatus, Observation
from rtdecode.streams import (
    CONTROL_STREAM_NAME,
    FEATURES_STREAM_NAME,
    SCORES_STREAM_NAME,
    SIGNAL_STREAM_NAME,
    STATE_STREAM_NAME,
    STATUS_STREAM_NAME,
    STIM_STREAM_NAME,
    output_source_id,
    truth_stream_name,
)

__all__ = ["DecoderFeed", "LslFeed", "TruthInlet"]

logger = logging.getLogger("rtdecode")


class _Envelope:
    """Min/max per column of the last ``n_columns * per_column`` samples, updated incrementally."""

    def __init__(self, n_columns: int, per_column: int, n_channels: int) -> None:
        self.n_columns, self.per_column = n_columns, max(1, per_column)
        self.lo = np.zeros((n_columns, n_channels), dtype=np.float32)
        self.hi = np.zeros((n_columns, n_channels), dtype=np.float32)
        self._partial = np.zeros((0, n_channels), dtype=np.float32)
        self.filled = 0

    def push(self, samples: np.ndarray) -> None:
        data = np.concatenate([self._partial, samples]) if self._partial.size else samples
        n_full = data.shape[0] // self.per_column
        if n_full:
            blocks = data[: n_full * self.per_column].reshape(n_full, self.per_column, -1)
            lo, hi = blocks.min(axis=1), blocks.max(axis=1)
            k = min(n_full, self.n_columns)
            self.lo = np.roll(self.lo, -k, axis=0)
            self.hi = np.roll(self.hi, -k, axis=0)
            self.lo[-k:], self.hi[-k:] = lo[-k:], hi[-k:]
            self.filled = min(self.n_columns, self.filled + n_full)
        self._partial = data[n_full * self.per_column :].copy()


class TruthInlet:
    """A source's ``NAME-truth`` markers (simulator, replay), pulled without waiting.

    Parameters
    ----------
    source_name : str
        The name of the source stream; its truth stream is ``truth_stream_name(source_name)``.
    timeout_s : float
        How long to look for the truth stream; without one, nothing is ever returned.
    """

    def __init__(self, source_name: str, timeout_s: float = 1.0) -> None:
        import pylsl

        found = pylsl.resolve_byprop("name", truth_stream_name(source_name), timeout=timeout_s)
        self._inlet = pylsl.StreamInlet(found[0]) if found else None
        if self._inlet is not None:
            self._inlet.open_stream(timeout=2.0)
        self.changes: list[tuple[float, str]] = []

    @property
    def available(self) -> bool:
        """Whether a truth stream was found (the monitor draws a truth row only then)."""
        return self._inlet is not None

    def drain(self) -> list[tuple[float, str]]:
        """The markers that came since the last call, as ``(timestamp, state)``."""
        if self._inlet is None:
            return []
        new = []
        while True:
            sample, ts = self._inlet.pull_sample(timeout=0.0)
            if sample is None:
                break
            new.append((ts, str(sample[0])))
        self.changes.extend(new)
        return new

    def state_at(self, t: float) -> str | None:
        """The true state at LSL time ``t`` (None before the first marker)."""
        self.drain()
        current = None
        for ts, state in self.changes:
            if ts > t:
                break
            current = state
        return current

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None


class DecoderFeed:
    """The monitor's view of a decoder in this process (tests, benchmarks).

    The GUI then shares the decoder's interpreter lock; ``rtdecode run --monitor`` instead
    starts the monitor as its own process over :class:`LslFeed`.
    """

    def __init__(self, decoder) -> None:
        self.decoder = decoder
        acq = decoder.acquisition
        self.ring, self.n_channels, self.fs_hz, self.name = (
            acq.ring,
            acq.n_channels,
            acq.fs_hz,
            acq.name,
        )
        self.input_fs_hz = acq.fs_hz
        self.channel_labels = tuple(getattr(acq, "channel_labels", None) or ())
        self.classes = tuple(decoder.classes)
        self.hysteresis = decoder.step.hysteresis
        self.feature_config = decoder.config
        self._queue = decoder.observe()
        self._stim = getattr(decoder, "_stim", None)

    @property
    def stim_active(self) -> bool:
        """Whether the decoder runs stimulation rules."""
        return self._stim is not None

    def triggers(self) -> list[tuple[float, str]]:
        """Triggers sent since the last call: (decision timestamp, ``rule:action:state``)."""
        out = []
        while self._stim is not None and self._stim.recent:
            out.append(self._stim.recent.popleft())
        return out

    def set_armed(self, armed: bool) -> None:
        if self._stim is not None:
            self._stim.set_armed(armed, by="monitor")

    def decision_waiting(self) -> bool:
        """Whether a decision came that ``drain`` has not returned yet."""
        return bool(self._queue)

    def drain(self) -> list:
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out

    def status(self):
        return self.decoder.status()

    def samples_received(self) -> int:
        return int(self.decoder.acquisition.counters["samples"])

    def acknowledge(self, state: str | None, onset_t: float | None) -> None:
        if not self.decoder.outputs.closed:
            self.decoder.outputs.log_event("alarm_acknowledged", state=state, onset_t=onset_t)

    def running(self) -> bool:
        return self.decoder.running

    def close(self) -> None:
        pass


class LslFeed:
    """The monitor's view of a decoder in another process, all from the decoder's outlets for
    one input stream: ``rtdecode-signal`` (the analysis-rate samples, into the monitor's own
    ring buffer), ``rtdecode-scores``, ``rtdecode-state``, ``rtdecode-features`` and
    ``rtdecode-status``.

    The raw stream itself is only resolved (for its source_id and nominal rate), never opened:
    a second full-rate consumer would make the source send everything twice and wake this
    process a thousand times a second, on the machine the decoder runs on.

    Parameters
    ----------
    selector : StreamSelector
        The raw input stream the decoder decodes.
    resolve_timeout_s : float
        How long to wait for the raw stream and the decoder's outlets.
    log_path : str, optional
        Alarm acknowledgements are appended here as JSON lines (and logged).
    """

    def __init__(
        self, selector, *, resolve_timeout_s: float = 10.0, log_path: str | None = None
    ) -> None:
        import pylsl

        from rtdecode.acquisition.acquisition import LslAcquisition
        from rtdecode.acquisition.inlet import resolve_stream
        from rtdecode.decoding.model import ModelContract

        info = resolve_stream(selector, timeout_s=resolve_timeout_s)
        sid = info.source_id()
        self.input_fs_hz = info.nominal_srate()

        def inlet(prefix: str, required: bool = True):
            found = pylsl.resolve_byprop(
                "source_id", output_source_id(prefix, sid), timeout=resolve_timeout_s
            )
            if not found:
                if required:
                    raise RuntimeError(
                        f"no decoder publishes for stream {info.name()!r} ({prefix}:{sid} not "
                        "found): start `rtdecode run` on that stream first"
                    )
                return None
            # No clock processing: the decoder stamps scores and features with the same value,
            # and per-inlet clock corrections would pull them apart (they are paired by it).
            return pylsl.StreamInlet(found[0], max_buflen=30)

        signal = pylsl.resolve_byprop(
            "source_id", output_source_id(SIGNAL_STREAM_NAME, sid), timeout=resolve_timeout_s
        )
        if not signal:
            raise RuntimeError(
                f"no decoder publishes for stream {info.name()!r} ({SIGNAL_STREAM_NAME}:{sid} "
                "not found): start `rtdecode run` on that stream first"
            )
        self.acquisition = LslAcquisition(signal[0], buffer_s=12.0)
        self._status_inlet = inlet(STATUS_STREAM_NAME)
        full = self._status_inlet.info(timeout=resolve_timeout_s)
        contract = ModelContract.from_json(full.desc().child_value("contract"))
        self._scores = inlet(SCORES_STREAM_NAME)
        self._state = inlet(STATE_STREAM_NAME)
        self._features = inlet(FEATURES_STREAM_NAME, required=False)
        self._stim = (
            inlet(STIM_STREAM_NAME, required=False) if self._has(STIM_STREAM_NAME, sid) else None
        )
        self._input_sid = sid
        self._control = None  # the outlet for arm/disarm, made at the first use
        for i in (self._status_inlet, self._scores, self._state, self._features, self._stim):
            if i is not None:
                i.open_stream(timeout=resolve_timeout_s)
        self.acquisition.start()
        self.ring = self.acquisition.ring
        self.n_channels, self.fs_hz = self.acquisition.n_channels, self.acquisition.fs_hz
        self.name = info.name()
        self.channel_labels = tuple(self.acquisition.channel_labels)
        self.classes = tuple(contract.classes)
        self.hysteresis = contract.hysteresis
        self.feature_config = contract.features
        self._state_now: str | None = None
        self._state_marks: list[tuple[float, str]] = []
        self._pending: dict[float, list] = {}
        self._status = None
        self._last_status_wall = time.monotonic()
        self._log_path = log_path
        self.decoder_cpu_cores: float | None = None

    @staticmethod
    def _has(stream: str, sid: str) -> bool:
        """Whether the decoder publishes ``stream`` (looked for briefly: it is made at start)."""
        import pylsl

        return bool(pylsl.resolve_byprop("source_id", output_source_id(stream, sid), timeout=0.5))

    @property
    def stim_active(self) -> bool:
        """Whether the decoder runs stimulation rules (it publishes rtdecode-stim)."""
        return self._stim is not None

    def triggers(self) -> list[tuple[float, str]]:
        """Triggers sent since the last call: (decision timestamp, ``rule:action:state``)."""
        if self._stim is None:
            return []
        return [(ts, str(sample[0])) for ts, sample in self._pull(self._stim)]

    def set_armed(self, armed: bool) -> None:
        """Ask the decoder to arm or disarm its stimulation (on rtdecode-control; it logs it)."""
        import pylsl

        if self._control is None:
            info = pylsl.StreamInfo(
                CONTROL_STREAM_NAME,
                "Markers",
                1,
                pylsl.IRREGULAR_RATE,
                pylsl.cf_string,
                output_source_id(CONTROL_STREAM_NAME, self._input_sid),
            )
            self._control = pylsl.StreamOutlet(info)
            # the decoder finds the new stream within a second; wait for it, once
            self._control.wait_for_consumers(3.0)
        self._control.push_sample(["arm" if armed else "disarm"])

    def _pull(self, inlet):
        out = []
        while True:
            sample, ts = inlet.pull_sample(timeout=0.0)
            if sample is None:
                return out
            out.append((ts, sample))

    def decision_waiting(self) -> bool:
        """Whether a decision came that ``drain`` has not returned yet."""
        return self._scores.samples_available() > 0

    def drain(self) -> list:
        for ts, sample in self._pull(self._state):
            self._state_marks.append((ts, str(sample[0])))
        for ts, sample in self._pull(self._scores):
            self._pending.setdefault(round(ts, 6), [ts, None, None])[1] = sample
        if self._features is not None:
            for ts, sample in self._pull(self._features):
                self._pending.setdefault(round(ts, 6), [ts, None, None])[2] = sample
        out = []
        newest = max((v[0] for v in self._pending.values()), default=None)
        # features whose scores never came (should not happen) must not pile up
        for key in [k for k, v in self._pending.items() if v[1] is None and v[0] < newest - 5]:
            del self._pending[key]
        for key in sorted(self._pending):
            ts, probs, feats = self._pending[key]
            # wait for the features of a decision unless a newer decision already came
            if probs is None or (feats is None and self._features is not None and ts >= newest):
                continue
            del self._pending[key]
            changed = False
            while self._state_marks and self._state_marks[0][0] <= ts + 1e-6:
                changed = self._state_marks[0][1] != self._state_now
                self._state_now = self._state_marks.pop(0)[1]
            # the scores stream holds one channel per class, then the quality channel
            k = len(self.classes)
            state = self._state_now or self.classes[int(np.argmax(probs[:k]))]
            out.append(
                Observation(
                    0,
                    ts,
                    tuple(float(p) for p in probs[:k]),
                    state,
                    changed,
                    None if feats is None else np.asarray(feats, np.float32),
                    float(probs[k]) if len(probs) > k else 1.0,
                )
            )
        return out

    def status(self) -> DecoderStatus:
        for _, sample in self._pull(self._status_inlet):
            self._status = DecoderStatus.from_json(sample[0])
            self.decoder_cpu_cores = self._status.decoder_cpu_cores
            self._last_status_wall = time.monotonic()
        if self._status is None:
            return DecoderStatus.empty(self.classes)
        return self._status

    def samples_received(self) -> int:
        return int(self.acquisition.counters["samples"])

    def acknowledge(self, state: str | None, onset_t: float | None) -> None:
        import json

        logger.warning("alarm %s (onset %s) acknowledged at the monitor", state, onset_t)
        if self._log_path:
            with open(self._log_path, "a", encoding="utf-8") as f:
                f.write(
                    json.dumps(
                        {
                            "event": "alarm_acknowledged",
                            "state": state,
                            "onset_t": onset_t,
                            "unix_time": time.time(),
                        }
                    )
                    + "\n"
                )

    def running(self) -> bool:
        return True

    def close(self) -> None:
        self.acquisition.close()
