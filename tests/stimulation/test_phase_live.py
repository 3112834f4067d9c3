"""Phase rules live: the simulator (rhythms of known phase) as a real LSL stream on loopback, the
decoder with the bundled sleep model, and the trigger device on a pseudo-terminal. The pulses
the live run schedules are those the offline dry run schedules on the same samples, and the
device's output edges land near the target phase of the simulator's true rhythm."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from rtdecode.phase.estimators import wrap
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.stimulation.emulator import PtyTriggerDevice
from rtdecode.stimulation.rules import OutputConfig, PhaseTarget, StimProtocol, StimRule

from ..conftest import decision_outputs

pytestmark = [pytest.mark.lsl, pytest.mark.slow, pytest.mark.timeout(180)]

FS = 2000.0
SECONDS = 26.0
CONFIG = SimulatorConfig(
    scenario="sleep", n_channels=64, fs_hz=FS, seed=7, phase_rhythms=True, first_state_s=3.0,
    wake_s=(3.0, 3.5), nrem_s=(8.0, 8.5), rem_s=(30.0, 31.0),
)  # fmt: skip


def _protocol(port):
    rule = StimRule(
        "theta", "in:rem", pulse_ms=5.0, phase=PhaseTarget(("ch001", "ch002"), (6.0, 9.0), 0.0)
    )
    return StimProtocol((rule,), OutputConfig(port=port))


def _decode_with_pulses(model, name, source, stop, log):
    """Decode the stream ``name`` (pushed by the thread ``source``, started) with the theta
    rule's pulses to a device on a pseudo-terminal, until the source ends: the log's lines and
    the device's (on, off) pulses."""
    from rtdecode.acquisition.acquisition import LslAcquisition
    from rtdecode.acquisition.inlet import StreamSelector, resolve_stream
    from rtdecode.decoding.decoder import Decoder
    from rtdecode.stimulation.stimulator import Stimulator

    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=name), timeout_s=10))
    outputs = decision_outputs(model, acquisition, name, log)
    config = model.stream_features(acquisition.fs_hz)
    with PtyTriggerDevice() as device:
        stim = Stimulator(
            _protocol(device.port), outputs, fs_hz=acquisition.fs_hz,
            window_samples=config.window_samples, input_source_id=acquisition.source_id,
            features=config, channel_labels=acquisition.channel_labels,
        ).start()  # fmt: skip
        with Decoder(model, acquisition, outputs, stimulator=stim):
            source.join(SECONDS + 30)
        stop.set()
        edges = device.pulses(0)
    return [json.loads(x) for x in log.read_text().splitlines()], edges


def test_live_phase_pulses_equal_the_offline_ones_and_land_on_the_phase(unique_name, tmp_path):
    from rtdecode.decoding.model import OnnxModel
    from rtdecode.models import bundled_model_path
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording
    from rtdecode.simulator.source import run_lsl_source

    model = OnnxModel(bundled_model_path("sleep"))
    stop = threading.Event()
    pushed = {}
    source = threading.Thread(
        target=lambda: pushed.setdefault(
            "n",
            run_lsl_source(
                CONFIG, unique_name, duration_s=SECONDS, chunk_samples=20,
                wait_for_consumers_s=20.0, stop_event=stop,
            ),
        ),
        daemon=True,
    )  # fmt: skip
    source.start()
    lines, edges = _decode_with_pulses(model, unique_name, source, stop, tmp_path / "live.jsonl")
    live = {
        d["end_sample"]: d
        for d in lines
        if d.get("event") == "trigger" and d["action"] == "pulse" and d["suppressed"] is None
    }
    # ~12 s of decoded REM at ~7.5 Hz: ~90 on a quiet machine; fewer when decisions come late
    # (a crossing that a late decision can no longer reach has no pulse)
    assert len(live) > 40
    assert all(d["error"] is None and d["ack"]["status"] == "ok" for d in live.values())
    assert all(d["phase"]["latency_ms"] > 0 for d in live.values())
    # most cycles' crossings are reached from the estimates between decisions
    assert sum(d["phase"]["between_decisions"] for d in live.values()) > len(live) / 2

    # the same samples offline: the generator is deterministic, the stream carried all of them
    data, _, phases = LfpSimulator(CONFIG).generate_with_phase(pushed["n"])
    np.savez(tmp_path / "same.npz", data=data, fs=FS)
    offline = decode_recording(model, open_recording(tmp_path / "same.npz"), stim=_protocol(None))
    planned = {x.end_sample: x.phase for x in offline.triggers if x.suppressed is None}
    # Live, samples come in reads of several phase steps, and only the newest step of a read
    # estimates: a crossing may be scheduled from another step than offline (and its latency
    # differs from the offline 2 ms). Live pulses aim at crossings the dry run aims at too,
    # predicted within 5 % of a cycle; from the same step, the very same one.
    crossings = np.array(sorted(p["crossing_sample"] for p in planned.values()))
    same_step = matched = 0
    for end, pulse in live.items():
        c = pulse["phase"]["crossing_sample"]
        nearest = crossings[np.argmin(np.abs(crossings - c))]
        matched += abs(nearest - c) <= 0.05 * FS / pulse["phase"]["freq_hz"]
        if end in planned:
            same_step += 1
            assert c == pytest.approx(planned[end]["crossing_sample"], abs=1e-3)
            assert pulse["phase"]["estimate_sample"] == planned[end]["estimate_sample"]
    # (a crossing at the edge of two steps' reach may be reached by one run and not the other)
    assert matched >= 0.9 * len(live) and same_step >= 1
    # and the live run reaches most of the dry run's cycles: its estimates come when the samples
    # do, its reach stretched to the gaps between them (not a hole between two estimates)
    assert len(live) >= 0.5 * len(planned), (len(live), len(planned))

    # where the device's edges landed, on the stream's clock (decision t = its last sample's)
    decisions = [d for d in lines if "probs" in d]
    t0 = np.median([d["t"] - (d["end_sample"] - 1) / FS for d in decisions])
    assert len(edges) == len(live)
    landed = (np.array([on for on, _ in edges]) - t0) * FS
    truth = np.interp(landed, np.arange(pushed["n"]), np.unwrap(phases["theta"]))
    errors = wrap(truth)
    print(
        f"live: {len(edges)} pulses, mean error {math.degrees(np.angle(np.mean(np.exp(1j * errors)))):+.1f} deg, "
        f"{100 * np.mean(np.abs(errors) <= math.pi / 4):.0f}% within 45 deg"
    )
    assert np.mean(np.abs(errors) <= math.pi / 4) >= 0.7


def _push_stamped_ahead(outlet, data, chunk, stop):
    """Push ``data`` in ``chunk``-sample blocks paced at the nominal rate, each stamped as
    MNE-LSL's PlayerLSL stamps: its last sample's nominal time, reached only when the next
    block goes out (the stamps lead the pushes by a block). Sample ``i`` is stamped
    ``t0 + (i + 1) / FS``; returns ``t0``."""
    import time

    import pylsl

    t0 = pylsl.local_clock()
    for k in range(data.shape[0] // chunk):
        delay = t0 + k * chunk / FS - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        if stop.is_set():
            break
        outlet.push_chunk(data[k * chunk : (k + 1) * chunk], t0 + (k + 1) * chunk / FS)
    return t0


def test_pulses_keep_to_stamps_that_lead_the_pushes(unique_name, tmp_path):
    """A source whose stamps lead its pushes by a 40 ms block (PlayerLSL's): the pulses wait
    for the stamps' time (a negative latency made up for), and land on the target phase of the
    sample stamped then. Floored at zero latency, they went out up to a block early: 108 deg at
    7.5 Hz."""
    import pylsl

    from rtdecode.decoding.model import OnnxModel
    from rtdecode.models import bundled_model_path

    chunk = int(0.040 * FS)
    data, _, phases = LfpSimulator(CONFIG).generate_with_phase(int(SECONDS * FS))
    info = pylsl.StreamInfo(unique_name, "EEG", 64, FS, "float32", unique_name)
    labels = info.desc().append_child("channels")
    for i in range(64):
        labels.append_child("channel").append_child_value("label", f"ch{i:03d}")
    outlet = pylsl.StreamOutlet(info, chunk_size=chunk)
    model = OnnxModel(bundled_model_path("sleep"))
    stop, started = threading.Event(), {}

    def source():
        outlet.wait_for_consumers(20)
        started["t0"] = _push_stamped_ahead(outlet, data, chunk, stop)

    thread = threading.Thread(target=source, daemon=True)
    thread.start()
    lines, edges = _decode_with_pulses(model, unique_name, thread, stop, tmp_path / "ahead.jsonl")
    pulses = [
        d for d in lines
        if d.get("event") == "trigger" and d["action"] == "pulse" and d["suppressed"] is None
    ]  # fmt: skip
    assert len(pulses) > 40 and len(edges) == len(pulses)
    landed = (np.array([on for on, _ in edges]) - started["t0"]) * FS - 1
    errors = wrap(np.interp(landed, np.arange(data.shape[0]), np.unwrap(phases["theta"])))
    assert np.mean(np.abs(errors) <= math.pi / 4) >= 0.7, math.degrees(
        np.angle(np.mean(np.exp(1j * errors)))
    )
    assert np.median([d["phase"]["latency_ms"] for d in pulses]) < 0  # they waited


def test_run_with_the_phase_flag_sends_phase_pulses(small_model, unique_name, tmp_path):
    """`rtdecode simulate --phase-rhythms` and `rtdecode run --trigger-on rem --trigger-phase
    ... --trigger-port PTY`: the flag reaches the engine with the stream's channels and features;
    every pulse carries its phase estimate and the latency it made up for."""
    import subprocess
    import sys

    from rtdecode.cli.common import PACKAGE_PARENT

    rt = [sys.executable, "-m", "rtdecode"]
    source = subprocess.Popen(
        rt + ["simulate", "--scenario", "sleep", "--channels", "4", "--rate", "2000",
              "--phase-rhythms", "--name", unique_name, "--duration", "60"],
        cwd=PACKAGE_PARENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = tmp_path / "run.jsonl"
    try:
        with PtyTriggerDevice() as device:
            res = subprocess.run(
                rt + ["run", "--model", str(small_model), "--source", unique_name, "--headless",
                      "--status-every", "0", "--log", str(log), "--duration", "8",
                      "--trigger-on", "rem", "--trigger-phase", "CH001:6-9:90",
                      "--trigger-port", device.port, "--pulse-ms", "3"],
                cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            received = [r for r in device.received if r.command.command == b"P"]
    finally:
        source.kill()
        source.wait()
    assert res.returncode == 0, res.stderr
    assert "stimulation: trigger (in:rem)" in res.stdout
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    start = next(d for d in lines if d.get("event") == "stim_start")
    phase = start["protocol"]["rules"][0]["phase"]
    assert phase["channels"] == ["CH001"] and phase["band_hz"] == [6.0, 9.0]
    pulses = [d for d in lines if d.get("event") == "trigger" and d["suppressed"] is None]
    assert pulses and len(received) == len(pulses)
    for d in pulses:
        assert d["state"] == "rem" and d["ack"]["status"] == "ok"
        assert d["phase"]["latency_ms"] > 0 and 0 <= d["delay_ms"] <= 120


def test_the_output_latency_is_half_the_median_acknowledgement_round_trip(unique_name):
    from rtdecode.outputs.decisions import DecisionOutputs
    from rtdecode.stimulation.device import CommandResult
    from rtdecode.stimulation.engine import Trigger
    from rtdecode.stimulation.protocol import Ack
    from rtdecode.stimulation.stimulator import Stimulator

    outputs = DecisionOutputs(
        ("wake", "rem"), input_source_id=unique_name, input_name=unique_name, hop_s=0.1
    )
    trig = Trigger("t", "pulse", "rem", 1, 1.0, 0, 0, 5, 1, 0, None, None, "in:rem")
    dry = Stimulator(
        StimProtocol((StimRule("g", "in:rem"),)), outputs, fs_hz=FS, window_samples=4000,
        input_source_id=unique_name,
    )  # fmt: skip
    assert dry.output_latency_s == 0.0  # no device: nothing to make up for
    wired = Stimulator(  # its port is never opened (start() is not called)
        StimProtocol((StimRule("g", "in:rem"),), OutputConfig(port="/dev/not-opened")),
        outputs, fs_hz=FS, window_samples=4000, input_source_id=unique_name,
    )  # fmt: skip
    assert wired.output_latency_s == pytest.approx(0.001)  # before any acknowledgement
    for round_trip in (0.004, 0.002, 0.010):  # written at 1.0, acknowledgement read after
        wired._on_result(CommandResult(trig, 1.0, Ack(1, 0, 0), 1.0 + round_trip, None))
    wired._on_result(CommandResult(trig, 1.0, None, None, "no acknowledgement"))  # not counted
    assert wired.output_latency_s == pytest.approx(0.002)  # half the median round trip
    outputs.close()


def _stimulator_without_device(name):
    """A stimulator with one gate rule and no device (its port never opened), and its
    outputs (close them)."""
    from rtdecode.outputs.decisions import DecisionOutputs
    from rtdecode.stimulation.stimulator import Stimulator

    outputs = DecisionOutputs(("wake", "rem"), input_source_id=name, input_name=name, hop_s=0.1)
    stim = Stimulator(
        StimProtocol((StimRule("g", "in:rem"),)), outputs, fs_hz=FS, window_samples=4000,
        input_source_id=name,
    )  # fmt: skip
    return stim, outputs


def test_a_pulse_keeps_to_stamps_that_lead_the_samples_arrival(unique_name):
    """A source that stamps samples ahead of their arrival (PlayerLSL stamps a block with its
    last sample's time as it starts waiting for it): the latency made up for is negative by the
    lead, so the pulse waits for the stamps' time. A stamp in the past: its age. A lead beyond
    0.1 s, or a stamp a minute behind, is another clock (a device's): no age known, none taken
    (a minute's latency would leave no crossing within reach)."""
    import pylsl

    stim, outputs = _stimulator_without_device(unique_name)
    now = pylsl.local_clock()
    assert stim.latency_after(now + 0.030) == pytest.approx(-0.030, abs=0.005)
    assert stim.latency_after(now - 0.020) == pytest.approx(0.020, abs=0.005)
    assert stim.latency_after(now + 5.0) == pytest.approx(0.0, abs=0.005)
    assert stim.latency_after(now - 3600.0) == pytest.approx(0.0, abs=0.005)
    outputs.close()


def test_a_decision_moved_forward_takes_its_latency_from_its_own_sample(unique_name):
    """After the source's clock went back the decoder publishes decisions a hop after the last
    (``t`` ahead of the window's last sample): the phase pulses' latency is still that sample's
    age (``stamp``), not a lead of the published time."""
    import pylsl

    stim, outputs = _stimulator_without_device(unique_name)
    decide, latencies = stim.engine.decide, []

    def noting_latency(*args, latency_s, **kwargs):
        latencies.append(latency_s())  # as a phase rule reads it
        return decide(*args, latency_s=latency_s, **kwargs)

    stim.engine.decide = noting_latency
    now = pylsl.local_clock()
    stim.on_decision(4000, now + 0.08, "rem", stale=False, stamp=now - 0.010)
    stim.on_decision(4200, now - 0.010, "rem", stale=False)  # t is the sample's own stamp
    assert latencies == [pytest.approx(0.010, abs=0.005)] * 2
    outputs.close()
