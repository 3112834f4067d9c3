"""Stream faults: the source killed and restarted (several times) while the decoder runs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rtdecode.cli import PACKAGE_PARENT
from rtdecode.decoder import NO_SIGNAL, Decoder
from rtdecode.inlet import LslAcquisition, StreamSelector, resolve_stream
from rtdecode.model import OnnxModel
from rtdecode.outputs import DecisionOutputs

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(240)]


def _start_source(name):
    return subprocess.Popen(
        [sys.executable, "-m", "rtdecode", "simulate", "--scenario", "sleep", "--channels", "4",
         "--rate", "2000", "--name", name, "--duration", "300"],
        cwd=PACKAGE_PARENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _lines(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _decoder(model_path, name, log, **options) -> Decoder:
    """A decoder of the stream called ``name`` that logs to ``log`` (not started)."""
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=name), timeout_s=20))
    model = OnnxModel(model_path)
    outputs = DecisionOutputs(model.contract.classes, input_source_id=acquisition.source_id,
                              input_name=name, hop_s=0.1, log_path=log)
    return Decoder(model, acquisition, outputs, **options)


def test_source_killed_and_restarted_three_times(small_model, unique_name, tmp_path):
    source = _start_source(unique_name)
    try:
        log = tmp_path / "decisions.jsonl"
        decoder = _decoder(small_model, unique_name, log, stall_s=1.0)
        window = decoder.model.contract.features.window_samples
        with decoder:
            for restart in range(3):
                n = decoder.status().decisions
                assert _wait(lambda: decoder.status().decisions >= n + 10, 30), "no decisions"
                os.kill(source.pid, signal.SIGKILL)
                source.wait()
                assert _wait(lambda: decoder.status().state == NO_SIGNAL, 10)
                stalled_at = decoder.status().decisions
                time.sleep(1.0)
                assert decoder.status().decisions == stalled_at  # nothing stale is published
                source = _start_source(unique_name)  # same name -> same source_id
                assert _wait(lambda: decoder.status().decisions >= stalled_at + 10, 40), \
                    f"decoding did not resume after restart {restart + 1}"
                assert decoder.status().state != NO_SIGNAL
        lines = _lines(log)
        kinds = [d.get("event") for d in lines]
        assert kinds.count(NO_SIGNAL) == 3 and kinds.count("signal_resumed") == 3
        gaps = [d for d in lines if d.get("event") == "gap"]
        assert len(gaps) == 3
        decisions = [d for d in lines if "probs" in d]
        times = [d["t"] for d in decisions]
        assert times == sorted(times)  # decision timestamps stay monotonic
        for gap in gaps:
            after = [d["end_sample"] for d in decisions if d["end_sample"] > gap["at_sample"]]
            # the first window after a gap starts at the gap: none spans it
            assert after and min(after) >= gap["at_sample"] + window
        # every restart re-announces a state: changed decisions right after each resume
        resumed = [i for i, d in enumerate(lines) if d.get("event") == "signal_resumed"]
        for i in resumed:
            nxt = next(d for d in lines[i + 1:] if "probs" in d)
            assert nxt["changed"] is True
    finally:
        source.kill()
        source.wait()


def test_decision_log_survives_kill_9_and_a_restart_appends(small_model, unique_name, tmp_path):
    """`kill -9` the decoder while it logs: every line written is complete JSON; a restart
    appends to the same file."""
    source = _start_source(unique_name)
    log = tmp_path / "decisions.jsonl"
    try:
        counts = []
        for run in range(2):
            decoder = subprocess.Popen(
                [sys.executable, "-m", "rtdecode", "run", "--model", str(small_model), "--source",
                 unique_name, "--headless", "--log", str(log), "--log-fsync-s", "0.5"],
                cwd=PACKAGE_PARENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert _wait(lambda: sum("probs" in d for d in _lines(log)) >= 20 * (run + 1), 40)
            os.kill(decoder.pid, signal.SIGKILL)
            decoder.wait()
            text = log.read_text()
            assert text.endswith("\n")
            lines = [json.loads(line) for line in text.splitlines()]  # every line parses
            counts.append(sum("probs" in d for d in lines))
            assert [d.get("event") for d in lines].count("start") == run + 1
        assert counts[1] > counts[0]  # the second run appended, nothing was truncated
    finally:
        source.kill()
        source.wait()


def test_log_rotation_by_size_keeps_every_line(tmp_path):
    import numpy as np

    from rtdecode.outputs import Decision

    log = tmp_path / "decisions.jsonl"
    outputs = DecisionOutputs(("a", "b"), input_source_id="rot", input_name="rot", hop_s=0.1,
                              log_path=log, log_rotate_bytes=4000)
    for i in range(200):
        outputs.publish(Decision(end_sample=i, timestamp=float(i), probabilities=np.array(
            [0.25, 0.75], np.float32), state="b", state_changed=i == 0, counters={}))
    outputs.close()
    files = sorted(tmp_path.glob("decisions*.jsonl"))
    assert len(files) >= 5 and log in files
    samples = sorted(json.loads(line)["end_sample"] for f in files
                     for line in f.read_text().splitlines())
    assert samples == list(range(200))
    assert all(f.stat().st_size < 4000 + 300 for f in files)


def test_decisions_older_than_max_age_are_logged_not_published(small_model, unique_name,
                                                                tmp_path):
    """A decision made too late to act on never reaches a consumer, but stays in the log."""
    import pylsl

    source = _start_source(unique_name)
    try:
        log = tmp_path / "decisions.jsonl"
        # every decision takes longer than 1 us from its window's last sample: all stale
        decoder = _decoder(small_model, unique_name, log, max_age_s=1e-6)
        acquisition = decoder.acquisition
        found = pylsl.resolve_byprop("source_id", f"rtdecode-scores:{acquisition.source_id}",
                                     timeout=10)
        scores = pylsl.StreamInlet(found[0])
        scores.open_stream(timeout=5)
        with decoder:
            assert _wait(lambda: decoder.status().stale_decisions >= 10, 30)
            sample, _ = scores.pull_sample(timeout=1.0)
            assert sample is None  # nothing was published
        decisions = [d for d in _lines(log) if "probs" in d]
        assert len(decisions) >= 10 and all(d.get("stale") is True for d in decisions)
    finally:
        source.kill()
        source.wait()


def test_bad_channels_are_flagged_replaced_and_gate_the_state(small_model, unique_name, tmp_path):
    """NaN / flat / railed channels injected at the source: the scores carry the quality
    channel, probabilities stay finite, the log names the bad channels, and with most channels
    bad the state outlet says bad_signal until the signal is good again."""
    import math

    import numpy as np
    import pylsl

    source = subprocess.Popen(
        [sys.executable, "-m", "rtdecode", "simulate", "--scenario", "sleep", "--channels", "4",
         "--rate", "2000", "--name", unique_name, "--duration", "300",
         "--fault", "1:nan@6-8", "--fault", "0:rail@13-16", "--fault", "1:nan@13-16",
         "--fault", "3:flat@13-16"],
        cwd=PACKAGE_PARENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = tmp_path / "decisions.jsonl"
        decoder = _decoder(small_model, unique_name, log)
        sid = decoder.acquisition.source_id
        inlets = {}
        for kind in ("scores", "state"):
            found = pylsl.resolve_byprop("source_id", f"rtdecode-{kind}:{sid}", timeout=10)
            inlets[kind] = pylsl.StreamInlet(found[0], processing_flags=0)
            inlets[kind].open_stream(timeout=5)
        labels = decoder.acquisition.channel_labels
        scores, states = [], []
        with decoder:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and decoder.acquisition.counters["samples"] < 2000 * 22:
                for kind, sink in (("scores", scores), ("state", states)):
                    while (got := inlets[kind].pull_sample(timeout=0.0))[0] is not None:
                        sink.append(got[0])
                time.sleep(0.05)
        del inlets
    finally:
        source.kill()
        source.wait()
    values = np.array(scores)
    assert values.shape[1] == 4  # three classes, then quality
    assert np.isfinite(values).all()
    quality = values[:, -1]
    # 0.5 in the windows where the second set of faults is entering or leaving
    assert {1.0, 0.75, 0.25} <= set(np.round(quality, 3)) <= {1.0, 0.75, 0.5, 0.25}
    marks = [s[0] for s in states]
    assert "bad_signal" in marks
    after = marks[marks.index("bad_signal") + 1:]
    assert after and after[0] in ("wake", "nrem", "rem")  # announced again when good
    decisions = [d for d in _lines(log) if "probs" in d]
    assert all(math.isfinite(p) for d in decisions for p in d["probs"].values())
    one_bad = [d for d in decisions if d["quality"] == 0.75]
    assert one_bad and all(d["bad_channels"] == {labels[1]: "nonfinite"} for d in one_bad)
    most_bad = [d for d in decisions if d["quality"] == 0.25]
    assert most_bad and all(d["state"] == "bad_signal" for d in most_bad)
    assert all(set(d["bad_channels"]) == {labels[0], labels[1], labels[3]} for d in most_bad)
    assert all(d["bad_channels"][labels[1]] == "nonfinite" for d in most_bad)
    assert all("railed" in d["bad_channels"][labels[0]] for d in most_bad)
    # a window only partly covered can see a stretch of zeros at its extreme (railed) or part of
    # a clipped stretch inside its range (flat): the reasons are exact when the fault covers it
    exact = [d for d in most_bad
             if d["bad_channels"] == {labels[0]: "railed", labels[1]: "nonfinite",
                                      labels[3]: "flat"}]
    assert len(exact) >= 0.7 * len(most_bad)
