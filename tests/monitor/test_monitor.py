"""The operator monitor (offscreen Qt, pytest-qt) over a real decoder on a real LSL stream:
state text, alarm on and acknowledged, NO SIGNAL when the source stops, channel paging."""

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")
pytest.importorskip("xgboost")

import pylsl  # noqa: E402

from rtdecode.acquisition.acquisition import LslAcquisition  # noqa: E402
from rtdecode.acquisition.inlet import StreamSelector, resolve_stream  # noqa: E402
from rtdecode.common.channels import default_channel_labels  # noqa: E402
from rtdecode.config import EventHysteresis, FeatureConfig  # noqa: E402
from rtdecode.decoding.decoder import Decoder  # noqa: E402
from rtdecode.decoding.model import ModelContract, OnnxModel  # noqa: E402
from rtdecode.features.streaming import extract_features  # noqa: E402
from rtdecode.outputs.decisions import DecisionOutputs  # noqa: E402

FS, N_CH = 1000.0, 20
pytestmark = [pytest.mark.lsl, pytest.mark.timeout(120)]


def _signal(n, loud, rng, start=0):
    t = (start + np.arange(n)) / FS
    x = rng.normal(0, 1, (n, N_CH))
    if loud:
        x += 30 * np.sin(2 * np.pi * 8 * t)[:, None]
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def alarm_model(tmp_path_factory):
    """A real XGBoost -> ONNX event model: 'seizure' when 8 Hz activity is strong."""
    from rtdecode.training.boosting import XGBParams, export_onnx, fit_xgboost

    config = FeatureConfig(fs_hz=FS, window_s=0.5, hop_s=0.1)
    rng = np.random.default_rng(0)
    X = np.concatenate([extract_features(_signal(6000, loud, rng), config)[1] for loud in (0, 1)])
    y = np.repeat([0, 1], len(X) // 2)
    booster = fit_xgboost(X, y, None, None, 2, XGBParams(n_estimators=10, seed=0))
    contract = ModelContract(
        task="event",
        classes=("normal", "seizure"),
        n_channels=N_CH,
        channel_labels=None,
        features=config,
        feature_names=tuple(config.feature_names(default_channel_labels(N_CH))),
        hysteresis=EventHysteresis(
            "seizure", on_threshold=0.5, off_threshold=0.5, on_dwell_s=0.0, off_dwell_s=0.0
        ),
        training={"data": "test fixture"},
    )
    return export_onnx(booster, contract, tmp_path_factory.mktemp("m") / "alarm.onnx", X[:20])


class Source:
    """A real LSL source the test steers: quiet or loud, or silent."""

    def __init__(self, name):
        info = pylsl.StreamInfo(name, "EEG", N_CH, FS, "float32", name)
        chans = info.desc().append_child("channels")
        for i in range(N_CH):
            chans.append_child("channel").append_child_value("label", f"LFP{i:02d}")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=10)
        self.loud = False
        self.running = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        rng = np.random.default_rng(1)
        chunk, t0, k = 10, time.monotonic(), 0
        while not self._stop.is_set():
            if self.running:
                self.outlet.push_chunk(_signal(chunk, self.loud, rng, start=k * chunk))
            k += 1
            self._stop.wait(max(0.0, t0 + k * chunk / FS - time.monotonic()))

    def close(self):
        self._stop.set()
        self._thread.join(2)


def _live(alarm_model, name, tmp_path, stim_protocol=None):
    """A steered source and a decoder of it (not started) logging to ``tmp_path``, with a
    stimulation stage when ``stim_protocol`` is given."""
    source = Source(name)
    info = resolve_stream(StreamSelector(name=name), timeout_s=10)
    acquisition = LslAcquisition(info)
    model = OnnxModel(alarm_model)
    log = tmp_path / "log.jsonl"
    outputs = DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=name,
        hop_s=0.1,
        log_path=log,
    )
    stim = None
    if stim_protocol is not None:
        from rtdecode.stimulation.stimulator import Stimulator

        stim = Stimulator(
            stim_protocol,
            outputs,
            fs_hz=FS,
            window_samples=model.contract.features.window_samples,
            input_source_id=acquisition.source_id,
        ).start()
    return source, Decoder(model, acquisition, outputs, stimulator=stim), log


@pytest.fixture
def live(alarm_model, unique_name, tmp_path):
    source, decoder, log = _live(alarm_model, unique_name, tmp_path)
    yield source, decoder, log
    decoder.close()
    source.close()


def _window(qtbot, decoder, **config):
    from rtdecode.monitor.window import MonitorConfig, MonitorWindow

    window = MonitorWindow(
        decoder,
        config=MonitorConfig(channels_per_page=8, trace_s=2.0, columns=400, stall_s=1.0, **config),
    )
    qtbot.addWidget(window)
    decoder.start()
    window.show()
    return window


def test_state_alarm_ack_and_no_signal(qtbot, live):
    source, decoder, log = live
    window = _window(qtbot, decoder)
    qtbot.waitUntil(
        lambda: (
            window.banner_text.startswith("NORMAL")
            and "<b>input</b> 1.00 / 1.00 kHz" in window.health.text()
        ),
        timeout=15000,
    )
    assert decoder.status().state == "normal" and not window.alarm_on

    source.loud = True
    qtbot.waitUntil(
        lambda: window.alarm_on and window.banner_text.startswith("ALARM: SEIZURE"), timeout=15000
    )
    assert "since onset" in window.banner_text and window.ack_button.isEnabled()
    window.ack_button.click()
    assert not window.ack_button.isEnabled()
    source.loud = False
    qtbot.waitUntil(
        lambda: window.banner_text.startswith("NORMAL") and not window.alarm_on, timeout=15000
    )

    source.running = False
    qtbot.waitUntil(
        lambda: window.banner_text.startswith("NO SIGNAL") and "NO SIGNAL" in window.health.text(),
        timeout=10000,
    )
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(e.get("event") == "alarm_acknowledged" for e in events)
    assert any(e.get("state") == "seizure" and e.get("changed") for e in events)
    # the traces, heat map and probabilities were drawn from what arrived
    assert window.frames > 10
    xs, ys = window.trace_curves[0].getData()
    assert xs is not None and len(xs) > 100 and np.isfinite(ys).all()
    assert window.heat_img.image.shape == (N_CH, len(decoder.config.bands))
    spectrogram = window.spec_img.image  # decisions x frequency bins up to the top band
    assert spectrogram.shape[0] > 5 and spectrogram.shape[1] > 50
    assert np.isfinite(spectrogram).all() and spectrogram.std() > 0
    # the probabilities and the state timeline run on the wall clock
    import time

    wx, wy = window.prob_curves[0].getData()
    assert abs(wx[-1] - time.time()) < 10 and np.all(np.diff(wx) > 0)
    assert f"channels</b> {N_CH}/{N_CH} ok" in window.health.text()
    # the decoder's own stall check (every 0.25 s while it waits) can come a redraw of the
    # health line (0.5 s) after the monitor's
    qtbot.waitUntil(lambda: "<b>stream</b> stalled" in window.health.text(), timeout=3000)


def test_channel_paging_by_key_and_spin_box(qtbot, live):
    from pyqtgraph.Qt import QtCore

    _, decoder, _ = live
    window = _window(qtbot, decoder)
    assert window.n_pages == 3 and window.page_channels() == list(range(8))
    ticks = window.trace_plot.getAxis("left")._tickLevels[0]
    assert [label for _, label in ticks][:2] == ["LFP00", "LFP01"]  # labels from the stream
    qtbot.keyClick(window, QtCore.Qt.Key.Key_PageDown)
    assert window.page == 1 and window.page_channels() == list(range(8, 16))
    qtbot.keyClick(window, QtCore.Qt.Key.Key_PageDown)
    assert window.page_channels() == list(range(16, 20))
    assert not window.trace_curves[4].isVisible()  # only 4 channels on the last page
    qtbot.keyClick(window, QtCore.Qt.Key.Key_PageDown)
    assert window.page == 2  # clamped
    window.page_spin.setValue(1)
    assert window.page == 0
    assert window.trace_plot.getAxis("left")._tickLevels[0][0][1] == "LFP00"


def _publish_telemetry(decoder):
    """Give the decoder the outlets `rtdecode run` gives it (features, status, signal)."""
    from rtdecode.outputs.telemetry import DecoderTelemetry

    decoder._telemetry = DecoderTelemetry(
        decoder.model.contract,
        input_source_id=decoder.acquisition.source_id,
        input_name=decoder.acquisition.name,
        channel_labels=decoder.acquisition.channel_labels,
    )


def test_monitor_process_over_lsl_and_screenshot(live, tmp_path):
    """`rtdecode monitor` in its own process reads the decoder's outlets and saves a PNG."""
    import os
    import subprocess
    import sys

    from rtdecode.cli.common import PACKAGE_PARENT

    source, decoder, _ = live
    _publish_telemetry(decoder)
    decoder.start()
    png = tmp_path / "monitor.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "monitor",
            "--source",
            decoder.acquisition.name,
            "--duration",
            "4",
            "--screenshot",
            str(png),
            "--channels-per-page",
            "8",
        ],
        cwd=PACKAGE_PARENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    m = [line for line in result.stderr.splitlines() if "monitor:" in line and "fps" in line]
    assert m, result.stderr[-2000:]


def test_lsl_feed_draws_the_decoders_analysis_samples_not_the_raw_stream(live):
    """The monitor's samples come from the decoder's ``rtdecode-signal`` outlet: exactly the
    analysis-rate samples the features were computed from, with the input's labels."""
    from rtdecode.monitor.feeds import LslFeed

    source, decoder, _ = live
    _publish_telemetry(decoder)
    decoder.start()
    feed = LslFeed(StreamSelector(name=decoder.acquisition.name), resolve_timeout_s=10)
    try:
        assert feed.fs_hz == decoder.config.analysis_fs_hz and feed.input_fs_hz == FS
        assert feed.channel_labels == tuple(f"LFP{i:02d}" for i in range(N_CH))
        time.sleep(2.0)
        source.running = False  # let both sides drain, then compare the newest samples
        deadline = time.monotonic() + 10
        last = -1
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = feed.ring.written
            if now == last and now > 0:
                break
            last = now
        n = 200
        got = np.empty((n, N_CH), np.float32)
        feed.ring.read(feed.ring.written, got)
        np.testing.assert_array_equal(got, decoder.features.recent_analysis(n).T)
        assert np.std(got) > 0
    finally:
        feed.close()


def test_monitor_without_a_decoder_is_a_clear_error(unique_name):
    import subprocess
    import sys

    from rtdecode.cli.common import PACKAGE_PARENT

    info = pylsl.StreamInfo(unique_name, "EEG", 2, 1000.0, "float32", unique_name)
    outlet = pylsl.StreamOutlet(info)  # noqa: F841 (a raw stream nobody decodes)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "monitor",
            "--source",
            unique_name,
            "--resolve-timeout",
            "2",
        ],
        cwd=PACKAGE_PARENT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no decoder publishes for stream {unique_name!r}" in result.stderr
    assert "start `rtdecode run`" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def live_stim(alarm_model, unique_name, tmp_path):
    """``live`` with a dry-run stimulation rule: a pulse at each seizure onset."""
    from rtdecode.stimulation.rules import StimProtocol, StimRule

    protocol = StimProtocol((StimRule("onset", "enter:seizure"),))
    source, decoder, log = _live(alarm_model, unique_name, tmp_path, protocol)
    yield source, decoder, log
    decoder.close()
    source.close()


def test_triggers_on_the_timeline_a_sounding_alarm_and_disarming_by_key(qtbot, live_stim):
    from pyqtgraph.Qt import QtCore

    source, decoder, log = live_stim
    window = _window(qtbot, decoder)
    assert window.arm_button.isVisible() and window.arm_button.text().startswith("Disarm")
    qtbot.waitUntil(lambda: window.banner_text.startswith("NORMAL"), timeout=15000)
    source.loud = True
    qtbot.waitUntil(lambda: window.alarm_on and window.triggers_seen == 1, timeout=15000)
    qtbot.waitUntil(lambda: window.trigger_marks.data.size == 1, timeout=3000)
    qtbot.waitUntil(lambda: "<b>triggers</b> 1" in window.health.text(), timeout=3000)
    # the alarm sounds until it is acknowledged, then stops
    qtbot.waitUntil(lambda: window.beeps >= 2, timeout=5000)
    window.ack_button.click()
    beeps = window.beeps
    qtbot.wait(1500)
    assert window.beeps == beeps
    # the operator disarms: the decoder's stage is disarmed and logs who did it
    qtbot.keyClick(window, QtCore.Qt.Key.Key_S)
    assert decoder._stim.armed is False
    qtbot.waitUntil(lambda: "DISARMED" in window.health.text(), timeout=3000)
    assert "ARM stimulation" in window.arm_button.text()
    source.loud = False
    qtbot.waitUntil(lambda: window.banner_text.startswith("NORMAL"), timeout=15000)
    source.loud = True  # a second onset while disarmed: decided, logged, not sent
    qtbot.waitUntil(lambda: window.alarm_on, timeout=15000)
    qtbot.wait(500)
    assert window.triggers_seen == 1
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert any(d.get("event") == "disarmed" and d.get("by") == "monitor" for d in lines)
    triggers = [d for d in lines if d.get("event") == "trigger"]
    # the onset while armed was sent; every onset after (the loud signal may flicker) was not
    assert triggers[0]["suppressed"] is None and len(triggers) >= 2
    assert {d["suppressed"] for d in triggers[1:]} == {"disarmed"}


def test_a_marker_on_the_control_stream_arms_and_disarms(live_stim):
    from rtdecode.streams import CONTROL_STREAM_NAME, output_source_id

    _, decoder, log = live_stim
    decoder.start()
    stim = decoder._stim
    info = pylsl.StreamInfo(
        CONTROL_STREAM_NAME,
        "Markers",
        1,
        pylsl.IRREGULAR_RATE,
        pylsl.cf_string,
        output_source_id(CONTROL_STREAM_NAME, decoder.acquisition.source_id),
    )
    outlet = pylsl.StreamOutlet(info)
    assert outlet.wait_for_consumers(10)
    outlet.push_sample(["disarm"])
    deadline = time.monotonic() + 5
    while stim.armed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stim.armed is False
    outlet.push_sample(["arm"])
    deadline = time.monotonic() + 5
    while not stim.armed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stim.armed is True
    assert decoder.status().stim_armed is True
