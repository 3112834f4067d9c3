"""The decode thread: ring buffer -> features -> model -> smoother -> outputs.

The acquisition thread (``rtdecode.acquisition.inlet``) fills the ring buffer; this thread sleeps (without the
GIL) until the ring holds the next sample count it needs. It wakes when all of the next window
but its last 4 ms has arrived (the extractor decimates what came and runs the FFT of that head)
and at the hop boundary, where it finishes the spectrum with the tail, scores the window and
publishes the decision; above ~300 channels it also wakes every ``step_samples`` to spread the
decimation. Nothing here waits for a consumer or a GUI. BLAS is limited to one thread while it
runs (OpenBLAS's idle workers spin).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pylsl

from rtdecode.acquisition._ringbuffer import OverrunError
from rtdecode.acquisition.acquisition import LslAcquisition
from rtdecode.common.channels import labels_or_default
from rtdecode.common.memory import resident_zeros
from rtdecode.common.threads import realtime_record
from rtdecode.decoding.model import OnnxModel
from rtdecode.decoding.status import DecoderStatus, Observation
from rtdecode.decoding.step import DecodeStep
from rtdecode.decoding.watchdog import DecoderStalledError, DecodeWatchdog
from rtdecode.features.quality import QualityConfig
from rtdecode.features.streaming import StreamingFeatures, one_blas_thread
from rtdecode.outputs.decisions import Decision, DecisionOutputs
from rtdecode.streams import DECODER_STALLED, NO_SIGNAL, OTHER_CLOCK_S

__all__ = ["Decoder"]

logger = logging.getLogger("rtdecode")


# Input channel-samples decimated per wake at most, by default (at 1024 channels: 32 ms of input,
# ~1.5 ms of work).
_STEP_CHANNEL_SAMPLES = 2**20
_LATE_S = 0.004


class Decoder:
    """Decode one stream with one model on a dedicated thread.

    Parameters
    ----------
    model : OnnxModel
    acquisition : LslAcquisition
        Started or not; ``start`` starts it. Its stream must match the model's contract.
    outputs : DecisionOutputs
    hysteresis : EventHysteresis or StateHysteresis, optional
        Overrides the model's default hysteresis.
    step_samples : int, optional
        The decode thread wakes every this many input samples to decimate what has arrived, so
        the work left for the moment all but a window's tail has arrived (its FFT) is small.
        By default a hop below ~300 channels (two wakes per hop: that one and the window's
        end), and shorter steps above (``2**20`` channel-samples, ~0.1 s of decimation work
        at most).
    stall_s : float
        No sample for this long publishes ``no_signal`` on the state outlet (once); decoding
        resumes by itself when samples come back (after a timestamp gap, with fresh windows).
        A decode thread that makes no progress for this long (a hung log write, a model that
        does not return) is reported ``decoder_stalled`` by a watchdog
        (:mod:`rtdecode.decoding.watchdog`).
    give_up_s : float, optional
        A decode thread stuck this long makes ``wait`` raise
        :class:`~rtdecode.decoding.watchdog.DecoderStalledError` (default ``max(10, 10 *
        stall_s)`` s).
    max_age_s : float, optional
        A decision whose window ended longer ago than this (the decoder fell behind) is logged
        with ``"stale": true`` but not published on the outlets; counted in the status. A
        backlog longer than this makes the decoder skip to the newest window (logged, counted).
    stimulator : Stimulator, optional
        The stimulation stage (:mod:`rtdecode.stimulation`): told each decision after it is
        published, asked before each window whether a stimulation artefact holds it back.
    telemetry : DecoderTelemetry, optional
        Gets every decision's features and, about once a second, the status, after the decision
        is published (for a monitor in another process).
    stream_channels : sequence of int, optional
        For each model channel, in the model's order, the index of the stream channel that feeds
        it (from :func:`rtdecode.common.channel_map.route_channels`); default: the stream's
        channels in order. The same count as the stream's permutes the feature row's columns
        before the model (the samples are not copied); fewer copies those channels out of each
        block the ring buffer hands over.

    Notes
    -----
    ``start`` / ``stop`` / ``join``; errors in the thread are kept in ``error`` and re-raised by
    ``join``. ``status()`` may be called from any thread.
    """

    def __init__(
        self,
        model: OnnxModel,
        acquisition: LslAcquisition,
        outputs: DecisionOutputs,
        *,
        hysteresis=None,
        step_samples: int | None = None,
        telemetry=None,
        stimulator=None,
        stall_s: float = 1.0,
        give_up_s: float | None = None,
        max_age_s: float | None = None,
        quality: QualityConfig | None = None,
        stream_channels: Sequence[int] | None = None,
    ) -> None:
        contract = model.contract
        n_stream = acquisition.n_channels
        self.stream_channels = _checked_stream_channels(stream_channels, n_stream)
        model.check_stream(
            n_channels=len(self.stream_channels) if self.stream_channels else n_stream,
            fs_hz=acquisition.fs_hz,
            stream_name=acquisition.name,
        )
        self.model = model
        self.acquisition = acquisition
        self.outputs = outputs
        self.classes = tuple(contract.classes)
        # the model's features, with the decimation adapted when the stream's rate differs
        self.config = model.stream_features(acquisition.fs_hz)
        self.quality_config = quality or QualityConfig()
        self.step = DecodeStep(
            model,
            hop_s=self.config.hop_s,
            hysteresis=hysteresis,
            min_good_fraction=self.quality_config.min_good_fraction,
        )
        labels = list(getattr(acquisition, "channel_labels", None) or [])
        labels = list(labels_or_default(labels, n_stream))
        # Features are computed per channel, and what they share across channels (the quality
        # fraction, the median that replaces a bad channel) ignores the order: so a permutation
        # of the stream's channels is one of the row's columns, ~1 us per decision. A subset
        # must be picked from the samples (the other channels would count in the quality):
        # ~2-3 ms per second of stream at 64 of 72-128 channels x 32 kHz, ~13 us on the tail.
        self._pick: np.ndarray | None = None
        self._feature_order: np.ndarray | None = None
        feature_channels = n_stream
        if self.stream_channels is not None and len(self.stream_channels) < n_stream:
            self._pick = np.asarray(self.stream_channels, dtype=np.intp)
            feature_channels = len(self.stream_channels)
            labels = [labels[i] for i in self.stream_channels]
        elif self.stream_channels is not None:
            per_channel = self.config.features_per_channel
            self._feature_order = (
                np.asarray(self.stream_channels, dtype=np.intp)[:, None] * per_channel
                + np.arange(per_channel)
            ).ravel()
            self._model_row = np.zeros(self._feature_order.size, dtype=np.float32)
        self.features = StreamingFeatures(self.config, feature_channels, self.quality_config)
        # names of the features' channels (stream labels), for the bad channels in the log
        self._channel_names = labels
        self._last_quality = (1.0, {})
        # Each wake costs ~0.1 ms of cold caches and interpreter: as few as the work allows.
        self._step = int(
            step_samples
            or min(
                self.config.hop_samples,
                max(
                    self.features.tail_input_samples,
                    _STEP_CHANNEL_SAMPLES // feature_channels,
                ),
            )
        )
        if stimulator is not None and stimulator.phase_step_samples:
            # phase rules estimate between decisions: wake at their steps
            self._step = min(self._step, stimulator.phase_step_samples)
        # Wake when all of a window but its tail has arrived: the head's FFT runs then, and only
        # the tail's small DFT is left for when the last sample arrives.
        self._pre_boundary = self.features.tail_input_samples
        # With a tail longer than that (many channels), one more wake _LATE_S before the end
        # decimates most of the tail, so the end has only the last few ms to decimate.
        late = int(round(_LATE_S * acquisition.fs_hz))
        self._late_boundary = late if late < self._pre_boundary else 0
        # samples handed to the features at a time, at most (so that stop and gap checks
        # come between them after a backlog)
        self._max_read = max(self.config.hop_samples, self._step) * 2
        if self._pick is not None:
            # the picked channels of one block of the ring (a read never exceeds _max_read)
            self._picked = resident_zeros((self._max_read, self._pick.size), np.float32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._latencies_ms: deque[float] = deque(maxlen=600)
        self._decision_times: deque[float] = deque(maxlen=50)
        self._n_decisions = 0
        self._last_probs: tuple[float, ...] = tuple(0.0 for _ in self.classes)
        self._state_since_ts: float | None = None
        self._last_ts: float | None = None
        self._processed = 0
        self._origin = 0  # absolute sample where the features' count starts
        self._gap_handled = 0  # absolute sample of the newest gap already handled
        self._resets_seen = 0  # timestamp resets already logged
        self._stalls_seen = 0  # source stalls (timestamp jumps made up for) already logged
        self._bad_ts_seen = 0  # NaN/infinite timestamps already logged
        self._last_published_ts = -math.inf
        self._ts_offset = 0.0  # added to decision timestamps after the source's went back
        self._rebase_ts = False  # the windows restarted: set the offset afresh
        self._warned_clock = False
        self._warned_fast = False  # a stream faster than real time was reported
        self._old_not_behind = 0  # consecutive stale decisions while not behind
        self.stall_s = stall_s
        self.give_up_s = give_up_s
        self.max_age_s = max_age_s
        self._beat = time.monotonic()  # the decode thread's last sign of progress
        self.watchdog: DecodeWatchdog | None = None
        self._stale = 0
        self._skipped = 0
        self._recovering = False
        self._stalled = False
        self._newest_seen = -1
        self._last_arrival = time.monotonic()
        self._observers: list[deque] = []
        self._telemetry = telemetry
        self._stim = stimulator
        self._blanked = 0  # windows held back by a stimulation artefact
        # A forward jump awaiting its verdict (gap or source stall): its first sample, and the
        # rows of the windows after it, computed but not decided until the verdict (a stall:
        # decided then; a gap: dropped, the windows start afresh at the jump)
        self._jump_at = 0
        self._jump_rows: list[tuple[int, float, np.ndarray, Any]] = []
        self._jump_counts = (0, 0)  # the acquisition's stalls and gaps + resets when it came
        self._warm_row: np.ndarray | None = None  # features of the newest decision
        self._signal_sent = 0  # analysis samples published on the telemetry's signal outlet
        self._stim_sent = 0  # analysis samples given to the stimulation's phase rules

    # Thread control ---------------------------------------------------------------------
    def start(self) -> Decoder:
        if self._thread is not None:
            raise RuntimeError("decoder already started")
        one_blas_thread()  # for the process: the feature stage's products (see its notes)
        if not self.acquisition.alive:
            self.acquisition.start()
        self.outputs.log_event(
            "start",
            model=str(self.model.path),
            stream=self.acquisition.name,
            source_id=self.acquisition.source_id,
            fs_hz=self.acquisition.fs_hz,
            n_channels=self.acquisition.n_channels,
            **({"channel_map": self.channel_map} if self.stream_channels else {}),
            **realtime_record(),
        )
        self._beat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rtdecode-decode", daemon=True)
        self._thread.start()
        self.watchdog = DecodeWatchdog(
            beat=lambda: self._beat,
            backlog=lambda: self.acquisition.ring.written - self._processed,
            stream_name=self.acquisition.name,
            outputs=self.outputs,
            # the decode thread beats at least every 0.25 s (its longest wait for samples)
            stall_s=max(self.stall_s, 0.5),
            give_up_s=self.give_up_s or max(10.0, 10.0 * self.stall_s),
            on_stall=self._stim.signal_lost if self._stim is not None else None,
            publish_status=(
                (lambda t: self._telemetry.publish_status(self.status(), t))
                if self._telemetry is not None
                else None
            ),
        ).start()
        return self

    def stop(self) -> None:
        """Ask the decode thread to finish; idempotent."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the decode thread; re-raise its error if it failed."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop decoding and acquisition, close the outputs. Idempotent."""
        self.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self._thread is not None:
            self._thread.join(5.0)
        self.acquisition.close()
        if self._stim is not None:
            self._stim.close()  # gates off and every trigger logged before the log closes
        if not self.outputs.closed:
            self.outputs.log_event("stop", decisions=self._n_decisions)
        self.outputs.close()
        if self._telemetry is not None:
            self._telemetry.close()

    def __enter__(self) -> Decoder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The decode loop --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            logger.error("decode thread failed: %s", exc)
            self.error = exc

    def _restart_features(self, at_sample: int) -> None:
        """Start the windows afresh at absolute sample ``at_sample`` (after a gap or a skip):
        no window spans the discontinuity, and the next decision re-announces the state."""
        self.features.reset()
        self._signal_sent = 0
        self._stim_sent = 0
        self.step.reset()
        if self._stim is not None:
            self._stim.restart()  # no phase estimate spans it, no step acts on the old state
        self._origin = at_sample
        self._processed = at_sample
        self._recovering = True
        self._rebase_ts = True
        self._jump_at, self._jump_rows = 0, []

    def _loop(self) -> None:
        ring = self.acquisition.ring
        features = self.features
        while not self._stop.is_set():
            self._beat = time.monotonic()
            # features count samples from self._origin (0, or the last restart)
            boundary = self._origin + features.next_decision_sample()
            prepare_at = boundary - self._pre_boundary
            # The acquisition naps (up to 24 ms) except shortly before the samples named urgent:
            # the next two of head, late wake, end and next head, so no nap runs past a point
            # whose work would otherwise land on the latency path at the window's end.
            points = (
                (prepare_at, boundary - self._late_boundary, boundary)
                if self._late_boundary
                else (prepare_at, boundary)
            )
            # (with a hop shorter than the tail, the next head's point comes before this window's
            # end, and this window's head point is already past: the next end is the second)
            hop = self.config.hop_samples
            upcoming = sorted(
                at for at in points + (prepare_at + hop, boundary + hop) if at > self._processed
            )
            self.acquisition.set_urgent_at(upcoming[0], upcoming[1])
            # this thread wakes at the same points (the one just before the window ends, see
            # _pre_boundary, and the later one when the tail is long, _late_boundary), or
            # sooner, every step
            target = min(self._processed + self._step, upcoming[0])
            if self._jump_at:
                # rows held after a jump in the timestamps that awaits its verdict: wake at the
                # next samples, which bring it
                target = min(target, ring.written + 1)
            if not ring.wait_for(target, 0.25):
                if self.acquisition.error is not None:
                    raise RuntimeError(
                        f"acquisition from {self.acquisition.name!r} failed: {self.acquisition.error}"
                    )
                self._check_stall(ring.written)
                continue
            newest = ring.written  # read before the gap marker: a gap is marked before its write
            self._check_stall(newest)
            # the verdicts' counts before the pending mark, the mark before the gap: the
            # acquisition counts a verdict and publishes a gap before it clears the mark, so a
            # pending jump seen here has neither counted yet, and one gone is a gap below
            stalls = int(self.acquisition.counter("source_stalls"))
            gaps_and_resets = self._gaps_and_resets()
            pending_at = int(self.acquisition.counter("pending_gap_sample"))
            gap_at = int(self.acquisition.counter("last_gap_sample"))
            if stalls > self._stalls_seen:
                self._log_stalls(stalls)
            bad_ts = int(self.acquisition.counter("bad_timestamps"))
            if bad_ts > self._bad_ts_seen:
                self._log_bad_timestamps(bad_ts)
            if self._jump_at and pending_at != self._jump_at:
                self._jump_judged(stalls)
            if pending_at and not self._jump_at:
                self._jump_at, self._jump_rows = pending_at, []
                self._jump_counts = (stalls, gaps_and_resets)
            if newest - self._processed > ring.capacity:
                # Fell behind by more than the buffer: the samples are gone. Restart the
                # features from the oldest samples still held, and say so.
                self._skip_to(newest - ring.capacity // 2)
            elif newest - self._processed > self.config.window_samples and (
                newest - self._processed > self._skip_after
            ):
                # Behind by more than a decision may be late (a starved CPU, a frozen process):
                # every window before the newest would be stale; skip to the newest one
                self._skip_to(newest - self.config.window_samples)
            while self._processed < newest and not self._stop.is_set():
                if gap_at > self._gap_handled and gap_at <= self._processed:
                    # the stream jumped in time (a restarted source, lost packets, a device
                    # whose clock started over): windows must not span the jump
                    self._gap_handled = gap_at
                    self._log_discontinuity(gap_at)
                    self._restart_features(gap_at)
                gap_ahead = gap_at > self._gap_handled and gap_at > self._processed
                stop = min(newest, gap_at) if gap_ahead else newest
                if stop <= self._processed:
                    break
                n = min(stop - self._processed, self._max_read)
                start, end = self._processed, self._processed + n
                try:
                    # the samples are decimated where the acquisition wrote them (no copy);
                    # until check() says the writer has not lapped them, nothing is decided
                    blocks = (b for b, _ in ring.segments(start, end))
                    if self._pick is not None:
                        blocks = map(self._picked_channels, blocks)
                    rows = features.push_blocks(blocks)
                    stamps = [ring.timestamp(self._origin + r.end_sample - 1) for r in rows]
                    last_ts = ring.timestamp(end - 1)
                    ring.check(start)
                except OverrunError as exc:
                    # the writer lapped the reader: skip what is gone, and say so
                    logger.warning("%s", exc)
                    self._skip_to(ring.written - ring.capacity // 2, reason="overrun")
                    break
                self._processed = end
                self._beat = time.monotonic()
                if self._stim is not None and features.analysis_samples > self._stim_sent:
                    # the phase rules' samples, checked as the rows are (offline: decode_recording)
                    made = features.analysis_samples - self._stim_sent
                    self._stim_sent = features.analysis_samples
                    stop = self._origin + features.analysis_samples * self.config.decimation
                    self._stim.push_signal(features.recent_analysis(made), stop)
                for (end_sample, row, quality), stamp in zip(rows, stamps):
                    if self._jump_at and self._origin + end_sample > self._jump_at:
                        # the window spans a jump not yet judged (one that ends at it has every
                        # sample before it): computed now, decided when the verdict comes, so
                        # a stall's backlog is not left to decimate after it
                        self._jump_rows.append((self._origin + end_sample, stamp, row, quality))
                    else:
                        self._phase_steps(self._origin + end_sample - 1)
                        self._decide(self._origin + end_sample, stamp, row, quality)
                self._phase_steps(self._origin + features.analysis_samples * self.config.decimation)
                if self._telemetry is not None:
                    made = features.analysis_samples - self._signal_sent
                    if made > 0:
                        self._signal_sent = features.analysis_samples
                        self._telemetry.publish_signal(features.recent_analysis(made), last_ts)
                if not rows and features.head_ready and self._warm_row is not None:
                    # The window's end is next: warm the model's trees in cache now (a cold
                    # row costs ~0.2 ms instead of ~0.01 ms on the latency path).
                    self.model.predict_proba(self._warm_row)

    def _phase_steps(self, to_sample: int) -> None:
        """The phase rules' estimates between decisions, up to ``to_sample`` (absolute)."""
        if self._stim is None or self._jump_at or not self._stim.phase_step_samples:
            return  # (a jump awaiting its verdict: its rows are decided first)
        ring = self.acquisition.ring
        # the source's own timestamps: the pulses' latency is measured from them
        self._stim.advance(to_sample, lambda sample: ring.timestamp(sample - 1), self._step_stale)

    def _step_stale(self, sample: int, stamp: float) -> bool:
        """Whether a phase step is too old to act on."""
        return (
            self.max_age_s is not None
            and self._plain_age_s(sample, stamp, pylsl.local_clock()) > self.max_age_s
        )

    def _gaps_and_resets(self) -> int:
        acq = self.acquisition
        return int(acq.counter("gaps")) + int(acq.counter("timestamp_resets"))

    def _jump_judged(self, stalls: int) -> None:
        """The jump the held rows wait on has its verdict: a source stall (nothing missing)
        decides them; anything else drops them and starts the windows afresh at the jump."""
        at, rows = self._jump_at, self._jump_rows
        self._jump_at, self._jump_rows = 0, []
        stalls_then, gaps_then = self._jump_counts
        if stalls > stalls_then and self._gaps_and_resets() == gaps_then:
            for end_sample, stamp, row, quality in rows:
                self._decide(end_sample, stamp, row, quality)
            return
        # a gap (or a verdict mixed with another gap or reset since: the rows may span one)
        self._gap_handled = max(self._gap_handled, at)
        self._log_discontinuity(at)
        self._restart_features(at)

    def _picked_channels(self, block: np.ndarray) -> np.ndarray:
        """The model's channels of a block of the ring, in the model's order (a view of a
        preallocated buffer, valid until the next block)."""
        return np.take(block, self._pick, axis=1, out=self._picked[: block.shape[0]], mode="clip")

    @property
    def channel_map(self) -> dict[str, str]:
        """Model channel label -> the label of the stream channel that feeds it."""
        model_labels = self.model.contract.labels
        labels = labels_or_default(
            getattr(self.acquisition, "channel_labels", None), self.acquisition.n_channels
        )
        index = self.stream_channels or range(len(model_labels))
        return {m: labels[i] for m, i in zip(model_labels, index)}

    def _age_s(self, end_sample: int, timestamp: float, now: float) -> float:
        """How late a decision is: from its window's last sample, on the LSL clock; or, when the
        source's timestamps are not on this clock at all (off by more than a minute: a device
        clock), from the samples that arrived after the window's end. (That backlog cannot be
        the measure otherwise: after a freeze the samples still queued in liblsl are not in
        it.) Stale decisions while the decoder is not behind are reported once: a clock off by
        less than a minute cannot be told from a late decoder here."""
        age = self._plain_age_s(end_sample, timestamp, now)
        if abs(now - timestamp) >= OTHER_CLOCK_S:
            return age  # (the backlog: not this machine's clock)
        backlog = (self.acquisition.ring.written - end_sample) / self.acquisition.fs_hz
        if self.max_age_s is not None and age > self.max_age_s and backlog < self.config.hop_s:
            self._old_not_behind += 1  # a catch-up after a freeze lasts well under 50 of these
        else:
            self._old_not_behind = 0
        if self._old_not_behind >= 50 and not self._warned_clock:
            self._warned_clock = True
            logger.warning(
                "decisions are %.2f s old although the decoder is not behind: the timestamps of "
                "%r are behind this machine's LSL clock (its clock or LSL time correction); "
                "they are logged as stale, not published. Fix the source's clock or raise "
                "--max-age-s",
                age,
                self.acquisition.name,
            )
            self.outputs.log_event("clock_behind", age_s=age)
        return age

    def _plain_age_s(self, end_sample: int, timestamp: float, now: float) -> float:
        """``_age_s`` without its bookkeeping: the sample's age on the LSL clock, or the
        backlog after it when the source's clock is not this machine's."""
        if abs(now - timestamp) >= OTHER_CLOCK_S:
            return (self.acquisition.ring.written - end_sample) / self.acquisition.fs_hz
        return now - timestamp

    def _monotonic(self, timestamp: float) -> float:
        """The published timestamp: the window's last sample's plus an offset that is 0 unless
        the source's clock went back. The offset is set afresh at the first decision after each
        restart of the windows (a gap, a reset, a skip): 0 if the source's timestamps are ahead
        of the decisions already published, else what puts this decision one hop after the
        last (logged). Smaller steps back (jitter) are clamped, so decisions never go back."""
        last = self._last_published_ts
        if self._rebase_ts:
            self._rebase_ts = False
            offset = 0.0 if timestamp > last else last + self.config.hop_s - timestamp
            if offset != self._ts_offset:
                self._ts_offset = offset
                self.outputs.log_event("timestamp_offset", offset_s=offset)
                if offset:
                    logger.warning(
                        "source timestamps went back: decisions are stamped %+.3f s "
                        "from their window's last sample",
                        offset,
                    )
        published = max(timestamp + self._ts_offset, last + 1e-6)
        self._last_published_ts = published
        return published

    @property
    def _skip_after(self) -> int:
        """Backlog (samples) beyond which the decoder skips to the newest window: more than
        ``max_age_s`` of samples at the rate they arrive, and always at least a window (the skip
        lands a window back). A stream faster than real time (a replay at ``--speed 10``) brings
        that many samples sooner: counted at the nominal rate, a pause of a tenth of
        ``max_age_s`` skipped decisions that were not late."""
        if self.max_age_s is None:
            return self.acquisition.ring.capacity
        return max(
            int(self.max_age_s * self._arrival_rate_hz()),
            2 * self.config.hop_samples,
            self.config.window_samples,
        )

    def _arrival_rate_hz(self) -> float:
        """Samples per second of the stream's timestamps since it started (the nominal rate, or
        more for a stream faster than real time; said once)."""
        fs = self.acquisition.fs_hz
        acq = self.acquisition
        span = acq.counter("last_ts") - acq.counter("first_ts")
        if not span > 2.0:
            return fs
        rate = acq.counter("samples") / span
        if rate > 1.5 * fs and not self._warned_fast:
            self._warned_fast = True
            logger.warning(
                "%r delivers %.3g samples/s for a nominal %g Hz: faster than real time (a "
                "replay with --speed?); decisions are made for every hop all the same",
                acq.name,
                rate,
                fs,
            )
            self.outputs.log_event("faster_than_real_time", ratio=round(rate / fs, 2))
        return max(fs, rate)

    def _skip_to(self, at_sample: int, reason: str = "behind") -> None:
        # back to the hop grid of the windows since the last restart: the decisions after the
        # skip fall where evaluate's on the same samples do (a skip of half a hop made no live
        # decision line up with an offline one)
        at_sample -= (at_sample - self._origin) % self.config.hop_samples
        gap_at = int(self.acquisition.counters["last_gap_sample"])
        if self._gap_handled < gap_at <= at_sample:
            # a gap inside the skipped samples: the restart below covers it
            self._gap_handled = gap_at
            self._log_discontinuity(gap_at)
        samples = at_sample - self._processed
        decisions = samples // self.config.hop_samples
        self._skipped += decisions
        logger.warning(
            "decoder fell behind by %d samples; skipping %d decisions", samples, decisions
        )
        self.outputs.log_event(
            "skipped", samples=int(samples), decisions=int(decisions), reason=reason
        )
        self._restart_features(at_sample)

    def _log_discontinuity(self, at_sample: int) -> None:
        counters = self.acquisition.counters
        resets = int(counters.get("timestamp_resets", 0))
        if resets > self._resets_seen:
            self._resets_seen = resets
            self.outputs.log_event("timestamp_reset", at_sample=at_sample, resets=resets)
        else:
            self.outputs.log_event(
                "gap", at_sample=at_sample, missing_samples=int(counters["missing_samples"])
            )
        sync = getattr(self.acquisition, "request_clock_sync", None)
        if sync is not None:
            sync()

    def _log_stalls(self, stalls: int) -> None:
        """Say that the source's timestamps jumped ahead and came back (nothing missing)."""
        # a note, not a warning: nothing was lost and nobody need act (a loaded machine's own
        # simulator does it; the demo told newcomers to worry about it)
        logger.info(
            "the timestamps of %r jumped ahead and came back (%d time(s) so far): the "
            "source stalled and stamps its chunks when it pushes them; no sample is "
            "missing, decoding went on",
            self.acquisition.name,
            stalls,
        )
        self.outputs.log_event("source_stall", stalls=stalls - self._stalls_seen, total=stalls)
        self._stalls_seen = stalls

    def _log_bad_timestamps(self, total: int) -> None:
        """Say that bad timestamps came: NaN, infinite or lone outliers (each was replaced;
        decoding goes on)."""
        if self._bad_ts_seen == 0:
            logger.warning(
                "%r sent NaN or infinite timestamps, or one far off its neighbours' line (a broken "
                "or hostile source under its name?): each is replaced by one period after the "
                "sample before it, and counted",
                self.acquisition.name,
            )
        self.outputs.log_event("bad_timestamps", new=total - self._bad_ts_seen, total=total)
        self._bad_ts_seen = total

    def _check_stall(self, newest: int) -> None:
        """Publish ``no_signal`` once when no sample arrives for ``stall_s``; note the resume."""
        now = time.monotonic()
        if newest != self._newest_seen:
            self._newest_seen = newest
            self._last_arrival = now
            if self._stalled:
                self._stalled = False
                self.outputs.log_event("signal_resumed", samples=int(newest))
                self._recovering = True
                self.step.reset()  # the next decision re-announces the state
            return
        if not self._stalled and now - self._last_arrival > self.stall_s:
            self._stalled = True
            logger.warning(
                "no sample from %r for %.1f s: no_signal",
                self.acquisition.name,
                now - self._last_arrival,
            )
            now_t = pylsl.local_clock()
            self.outputs.publish_marker(NO_SIGNAL, now_t)
            if self._stim is not None:
                self._stim.signal_lost(now_t)

    def _decide(self, end_sample: int, timestamp: float, row: np.ndarray, quality) -> None:
        if self._stim is not None and self._stim.blanked(end_sample):
            self._blanked += 1  # the window holds a stimulation artefact: not decided
            return
        if self._feature_order is not None:
            # the stream's channel order -> the model's (mode "clip": indices checked at init)
            row = np.take(row, self._feature_order, out=self._model_row, mode="clip")
        result = self.step.decide(row, quality.good_fraction)
        if result is None:
            return  # the model gave no probabilities: counted by the step, never published
        probs, state, changed = result
        self._warm_row = row
        bad = quality.bad_channels(self._channel_names) if quality.good_fraction < 1.0 else {}
        acq = self.acquisition
        counters = {
            "gaps": int(acq.counter("gaps")),
            "missing_samples": int(acq.counter("missing_samples")),
            "overruns": int(self.acquisition.ring.overruns),
        }
        now = pylsl.local_clock()
        stale = (
            self.max_age_s is not None and self._age_s(end_sample, timestamp, now) > self.max_age_s
        )
        if stale:
            self._stale += 1
        raw_timestamp = timestamp
        timestamp = self._monotonic(raw_timestamp)
        # how old the decision is as it goes out (a starved process may deliver it later still)
        counters["age_ms"] = round((now - raw_timestamp) * 1e3, 3)
        if self._stim is not None:
            # the trigger first: the device's command is the loop's shortest path to the animal
            self._stim.on_decision(end_sample, timestamp, state, stale=stale, stamp=raw_timestamp)
        self.outputs.publish(
            Decision(
                end_sample=end_sample,
                timestamp=timestamp,
                probabilities=probs,
                state=state,
                state_changed=changed,
                counters=counters,
                quality=quality.good_fraction,
                bad_channels=bad,
            ),
            stale=stale,
        )
        now = pylsl.local_clock()
        self._recovering = False
        with self._lock:
            self._latencies_ms.append((now - raw_timestamp) * 1e3)
            self._decision_times.append(now)
            self._n_decisions += 1
            self._last_probs = tuple(float(p) for p in probs)
            self._last_ts = timestamp
            self._last_quality = (quality.good_fraction, bad)
            if changed:
                self._state_since_ts = timestamp
        if self._telemetry is not None:
            self._telemetry.publish(row, timestamp, self.status)
        if self._observers:
            seen = Observation(
                end_sample,
                timestamp,
                tuple(float(p) for p in probs),
                state,
                changed,
                row.copy(),
                quality.good_fraction,
            )
            for queue in self._observers:
                queue.append(seen)  # a bounded deque: never blocks, drops the oldest

    # Observation ------------------------------------------------------------------------
    def observe(self, maxlen: int = 6000) -> deque:
        """A bounded queue that receives an :class:`Observation` after each decision.

        For observers such as the monitor: the decode thread appends without waiting (the
        oldest entries go when the observer falls behind); the observer pops from its thread.
        Call before ``start``.
        """
        queue: deque = deque(maxlen=maxlen)
        self._observers.append(queue)
        return queue

    def status(self) -> DecoderStatus:
        """A consistent snapshot, safe to call from any thread."""
        acq = self.acquisition.counters
        with self._lock:
            lat = np.array(self._latencies_ms) if self._latencies_ms else np.zeros(1)
            times = list(self._decision_times)
            n = self._n_decisions
            probs = self._last_probs
            since = self._state_since_ts
            last_ts = self._last_ts
            quality, bad = self._last_quality
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0
        span = acq["last_ts"] - acq["first_ts"]
        return DecoderStatus(
            decisions=n,
            state=NO_SIGNAL if self._stalled else self.step.state,
            state_since_s=(last_ts - since)
            if (since is not None and last_ts is not None)
            else None,
            last_timestamp=last_ts,
            probabilities=probs,
            classes=self.classes,
            decisions_per_s=rate,
            latency_p50_ms=float(np.percentile(lat, 50)),
            latency_p99_ms=float(np.percentile(lat, 99)),
            samples=int(acq["samples"]),
            gaps=int(acq["gaps"]),
            missing_samples=int(acq["missing_samples"]),
            overruns=int(self.acquisition.ring.overruns),
            input_rate_hz=(acq["samples"] - 1) / span if span > 0 else 0.0,
            clock_offset_s=self.acquisition.clock_offset_s,
            counters=acq,
            stale_decisions=self._stale,
            skipped_decisions=self._skipped,
            blanked_decisions=self._blanked,
            stim=dict(self._stim.engine.counts) if self._stim is not None else {},
            stim_armed=self._stim.armed if self._stim is not None else None,
            log_error=self.outputs.log_error,
            bad_model_outputs=self.step.bad_outputs,
            stream_health=(
                DECODER_STALLED
                if self.watchdog is not None and self.watchdog.stalled
                else "stalled"
                if self._stalled
                else "recovering"
                if self._recovering
                else "connected"
            ),
            quality=quality,
            bad_channels=dict(bad),
        )

    def wait(
        self,
        duration_s: float | None = None,
        *,
        status_every_s: float | None = None,
        on_status=None,
    ) -> None:
        """Block the calling thread until ``duration_s`` passes, the decoder stops or fails.

        Raises the decode thread's error, or :class:`DecoderStalledError` when the watchdog
        gave up on it.

        Calls ``on_status(self.status())`` every ``status_every_s`` seconds if given.
        """
        t_end = None if duration_s is None else time.monotonic() + duration_s
        status = on_status is not None and bool(status_every_s)
        next_status = time.monotonic() + (status_every_s or 0)
        while self.running:
            if self.watchdog is not None and self.watchdog.gave_up:
                raise DecoderStalledError(
                    f"the decode thread of {self.acquisition.name!r} has made no progress for "
                    f"{self.watchdog.give_up_s:g} s (see the log's decoder_stall event); restart "
                    "rtdecode, and check the log's disk and the model"
                )
            now = time.monotonic()
            if t_end is not None and now >= t_end:
                break
            if status and now >= next_status:
                on_status(self.status())
                next_status = now + status_every_s
            # each wake of this thread costs the decoder's process CPU (and, on a 2-core
            # machine, a preemption of its other threads): sleep until something is due
            due = min(next_status if status else math.inf, t_end if t_end is not None else math.inf)
            time.sleep(min(0.25, max(0.001, due - time.monotonic())))
        if self.error is not None:
            raise self.error


def _checked_stream_channels(
    stream_channels: Sequence[int] | None, n_stream: int
) -> tuple[int, ...] | None:
    """``stream_channels`` as a tuple of distinct indices below ``n_stream``; None for None."""
    if stream_channels is None:
        return None
    index = tuple(stream_channels)
    bad = [
        i
        for i in index
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n_stream
    ]
    if bad:
        raise ValueError(
            f"stream_channels must be indices of the stream's {n_stream} channels, got {bad[0]!r}"
        )
    if len(set(index)) != len(index) or not index:
        raise ValueError(f"stream_channels must be distinct and not empty, got {list(index)}")
    return tuple(int(i) for i in index)
