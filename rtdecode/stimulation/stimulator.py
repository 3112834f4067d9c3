"""The live stimulation stage: the rules' engine, the trigger device, the marker stream, the log.

The decode thread calls :meth:`Stimulator.on_decision` after each published decision (and
:meth:`Stimulator.blanked` before deciding a window); triggers go to the device through a queue
(never blocking), to the ``rtdecode-stim`` marker stream stamped with the decision's timestamp,
and to the decision log, one line per trigger, sent or suppressed. Arming and disarming come
from any thread (the CLI, an LSL marker stream) and are logged.

Phase rules are fed the decoder's analysis-rate samples (:meth:`Stimulator.push_signal`) and
told, at each decision, the latency their pulses must make up for: the decision's age when the
rules run (the decoder's own delay) plus the output's, half the median round trip of the
device's last acknowledgements (1 ms until it has answered; none without a device).
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import deque
from collections.abc import Callable

import pylsl

from rtdecode.config import FeatureConfig
from rtdecode.outputs.decisions import DecisionOutputs
from rtdecode.stimulation.device import CommandResult, TriggerDevice
from rtdecode.stimulation.engine import StimEngine, Trigger
from rtdecode.stimulation.rules import StimProtocol
from rtdecode.streams import (
    CONTROL_STREAM_NAME,
    OTHER_CLOCK_S,
    STIM_STREAM_NAME,
    output_source_id,
)

__all__ = ["Stimulator", "marker_text"]

logger = logging.getLogger("rtdecode")

_DEFAULT_OUTPUT_S = 0.001  # until the device has acknowledged a command: a USB device's ~1 ms
_ROUND_TRIPS = 32  # the output latency is measured over this many acknowledgements
# Some sources stamp samples ahead of their arrival (MNE-LSL's PlayerLSL stamps each block with
# its last sample's time as it starts the block's wait: a block ahead). Pulses keep to the
# stamps' time, in which the recording has them, up to this lead.
_MAX_STAMP_LEAD_S = 0.1


def marker_text(trig: Trigger) -> str:
    """The ``rtdecode-stim`` marker of a trigger: ``rule:action:state`` (``:sham`` for a sham)."""
    text = f"{trig.rule}:{trig.action}:{trig.state}"
    return text + (f":{trig.control}" if trig.control else "")


class Stimulator:
    """Stimulation for one decoder.

    Parameters
    ----------
    protocol : StimProtocol
    outputs : DecisionOutputs
        Its log gets the trigger lines (and arming events).
    fs_hz : float
        The input's rate.
    window_samples : int
        Input samples per decision window.
    input_source_id : str
        For the marker stream's source id.
    features : FeatureConfig, optional
        The stream's features; needed by phase rules.
    channel_labels : sequence of str, optional
        The features' channels in their order; needed by phase rules.
    """

    def __init__(
        self,
        protocol: StimProtocol,
        outputs: DecisionOutputs,
        *,
        fs_hz: float,
        window_samples: int,
        input_source_id: str,
        features: FeatureConfig | None = None,
        channel_labels=None,
    ) -> None:
        self.protocol = protocol
        self.engine = StimEngine(
            protocol,
            fs_hz=fs_hz,
            window_samples=window_samples,
            features=features,
            channel_labels=channel_labels,
        )
        # half the round trip (write -> acknowledgement read) of the device's latest commands
        self._half_trips: deque[float] = deque(maxlen=_ROUND_TRIPS)
        self._outputs = outputs
        self._lock = threading.Lock()  # the engine is shared with arming from other threads
        self._last = (0, 0.0)  # the newest decision's end sample and timestamp
        info = pylsl.StreamInfo(
            STIM_STREAM_NAME,
            "Markers",
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            output_source_id(STIM_STREAM_NAME, input_source_id),
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "rtdecode")
        desc.append_child_value("rules", ",".join(r.name for r in protocol.rules))
        self._markers = pylsl.StreamOutlet(info)
        self.device = (
            None
            if protocol.output.port is None
            else TriggerDevice(protocol.output, self._on_result)
        )
        # the triggers sent (and shams), for an observer in this process (the monitor's feed)
        self.recent: deque[tuple[float, str]] = deque(maxlen=1000)
        self._control_id = output_source_id(CONTROL_STREAM_NAME, input_source_id)
        self._arm_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    def start(self) -> Stimulator:
        """Open the device (a missing port fails here) and listen for arming markers."""
        self._outputs.log_event("stim_start", protocol=self.protocol.to_dict())
        if self.device is not None:
            self.device.start()
        # the monitor's control stream, and the protocol's arm_stream if any
        self._arm_thread = threading.Thread(
            target=self._listen_arming, name="rtdecode-stim-arm", daemon=True
        )
        self._arm_thread.start()
        return self

    # Decode thread ---------------------------------------------------------------------------
    def blanked(self, end_sample: int) -> bool:
        """Whether the window ending at ``end_sample`` holds a stimulation artefact."""
        with self._lock:
            return self.engine.blanked(end_sample)

    def push_signal(self, block, stop_sample: int) -> None:
        """The analysis-rate samples the features just made, for the phase rules
        (:meth:`StimEngine.push_signal`); nothing to do without phase rules."""
        if self.engine.has_phase_rules:
            with self._lock:
                self.engine.push_signal(block, stop_sample)

    @property
    def output_latency_s(self) -> float:
        """From a command's write to its effect at the device: half the median round trip of
        the latest acknowledgements (a default until there is one; 0 without a device)."""
        if self.device is None:
            return 0.0
        trips = list(self._half_trips)
        return statistics.median(trips) if trips else _DEFAULT_OUTPUT_S

    def latency_after(self, stamp: float) -> float:
        """The latency a phase pulse makes up for, predicted from the sample stamped ``stamp``
        (the source's own timestamp): the sample's age now and the output's.

        Negative when the source stamps its samples ahead of their arrival, by up to
        ``_MAX_STAMP_LEAD_S``: the pulse then waits for the stamps' time, where a floor at zero
        would send it early by the lead. A stamp further ahead, or a minute or more behind, is
        on a clock that is not the LSL clock: its age is unknown and taken as none."""
        age = pylsl.local_clock() - stamp
        if not -_MAX_STAMP_LEAD_S <= age < OTHER_CLOCK_S:
            age = 0.0
        return age + self.output_latency_s

    def on_decision(
        self, end_sample: int, t: float, state: str, *, stale: bool, stamp: float | None = None
    ) -> None:
        """Apply the rules to a published (or stale) decision stamped ``t``; ``stamp`` is its
        last sample's own timestamp when ``t`` differs from it (the decoder moves ``t`` forward
        after the source's clock went back), from which phase pulses take their latency."""
        source_stamp = t if stamp is None else stamp

        def latency_s() -> float:
            # when a phase pulse's delay is computed
            return self.latency_after(source_stamp)

        with self._lock:
            self._last = (end_sample, t)
            triggers = self.engine.decide(end_sample, t, state, stale=stale, latency_s=latency_s)
        self._emit(triggers)

    @property
    def phase_step_samples(self) -> int:
        """Input samples between the phase rules' estimates (0: none between decisions); the
        decode thread wakes at least this often."""
        return self.engine.phase_step_samples

    def advance(
        self,
        to_sample: int,
        stamp_of: Callable[[int], float],
        stale_of: Callable[[int, float], bool] | None = None,
    ) -> None:
        """The phase rules' estimates between decisions up to ``to_sample``
        (:meth:`StimEngine.advance`); ``stamp_of(sample)`` is the timestamp of the sample
        before it, ``stale_of(sample, stamp)`` whether that is too old to act on."""
        if not self.engine.phase_step_samples:
            return

        def latency_of(stamp: float):
            return lambda: self.latency_after(stamp)

        with self._lock:
            triggers = self.engine.advance(
                to_sample, stamp_of=stamp_of, latency_of=latency_of, stale_of=stale_of
            )
        if triggers:
            self._emit(triggers)

    def restart(self) -> None:
        """The signal starts afresh (a gap, a skip): :meth:`StimEngine.restart`."""
        with self._lock:
            self.engine.restart()

    def signal_lost(self, t: float) -> None:
        """The input stalled (``no_signal``): gates off."""
        with self._lock:
            triggers = self.engine.signal_lost(self._last[0], t)
        self._emit(triggers)

    # Any thread ------------------------------------------------------------------------------
    def set_armed(self, armed: bool, *, by: str) -> None:
        """Arm or disarm every rule (logged with who did it); disarming turns gates off."""
        with self._lock:
            triggers = self.engine.set_armed(armed, *self._last)
        self._outputs.log_event("armed" if armed else "disarmed", by=by)
        logger.warning("stimulation %s by %s", "armed" if armed else "disarmed", by)
        self._emit(triggers)

    @property
    def armed(self) -> bool:
        return self.engine.armed

    def close(self) -> None:
        """Gates off, the device's outputs off, every pending trigger logged. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._lock:
            triggers = self.engine.stop(*self._last)
        self._emit(triggers)
        if self.device is not None:
            self.device.close()
        counts = dict(self.engine.counts)
        if self.device is not None:
            counts |= {f"device_{k}": v for k, v in self.device.counts.items()}
        if not self._outputs.closed:
            self._outputs.log_event("stim_stop", **counts)
        self._markers = None

    # Internals -------------------------------------------------------------------------------
    def _emit(self, triggers: list[Trigger]) -> None:
        if self.device is not None:
            for trig in triggers:  # the device first: then the markers and the log
                if trig.sent:
                    self.device.send(trig)  # logged when the device has answered
        for trig in triggers:
            if trig.suppressed is None and self._markers is not None:
                text = marker_text(trig)
                self._markers.push_sample([text], trig.t)
                self.recent.append((trig.t, text))
            if not (trig.sent and self.device is not None):
                self._log(trig, {})

    def _on_result(self, result: CommandResult) -> None:
        if result.ack is not None and result.written_t is not None and result.ack_t is not None:
            self._half_trips.append(max(0.0, result.ack_t - result.written_t) / 2.0)
        if result.error is not None:
            logger.warning(
                "trigger %s %s: %s", result.trigger.rule, result.trigger.action, result.error
            )
        self._log(result.trigger, result.record())

    def _log(self, trig: Trigger, extra: dict) -> None:
        if self._outputs.closed:
            return
        try:
            self._outputs.log_event("trigger", **trig.record(), **extra)
        except RuntimeError:
            pass  # closed meanwhile: the decoder is going away

    def _listen_arming(self) -> None:
        """Arm/disarm markers from the monitor's control stream (found by its source id) and
        from the protocol's ``arm_stream`` (by name), whenever either appears."""
        wanted = [("source_id", self._control_id)]
        if self.protocol.arm_stream:
            wanted.append(("name", self.protocol.arm_stream))
        resolvers = [pylsl.ContinuousResolver(prop, value) for prop, value in wanted]
        inlets: dict[str, pylsl.StreamInlet] = {}
        while not self._stop.is_set():
            for resolver in resolvers:
                for info in resolver.results():
                    if info.uid() not in inlets:
                        inlets[info.uid()] = pylsl.StreamInlet(info)
                        logger.info("listening for arm/disarm markers on %r", info.name())
            if not inlets:
                self._stop.wait(0.5)
                continue
            for uid, inlet in list(inlets.items()):
                try:
                    sample, _ = inlet.pull_sample(timeout=0.1 / len(inlets))
                except Exception:  # noqa: BLE001 - a lost stream is found again by the resolver
                    del inlets[uid]
                    continue
                if sample is None:
                    continue
                word = str(sample[0]).strip().lower()
                name = inlet.info().name()
                if word in ("arm", "disarm"):
                    by = "monitor" if name == CONTROL_STREAM_NAME else f"LSL stream {name!r}"
                    self.set_armed(word == "arm", by=by)
                else:
                    logger.warning(
                        "ignored marker %r on %r (expected 'arm' or 'disarm')", sample[0], name
                    )
