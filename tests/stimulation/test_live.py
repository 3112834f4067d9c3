"""Stimulation on a live stream: `rtdecode run` with rules or flags drives a trigger device on a
pseudo-terminal; every trigger is logged, marked on rtdecode-stim and accounted for; bad flags,
rules and ports are exit 2 with one message."""

import json
import subprocess
import sys
import threading

import pylsl
import pytest

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.stimulation.emulator import PtyTriggerDevice
from rtdecode.streams import STIM_STREAM_NAME

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(120)]

RTDECODE = [sys.executable, "-m", "rtdecode"]


@pytest.fixture
def source(unique_name):
    proc = subprocess.Popen(
        RTDECODE
        + ["simulate", "--scenario", "sleep", "--channels", "4", "--rate", "2000"]
        + ["--name", unique_name, "--duration", "120"],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield unique_name
    proc.kill()
    proc.wait()


def _run(model, name, *extra, duration=None, timeout=60):
    cmd = RTDECODE + ["run", "--model", str(model), "--source", name, "--headless"]
    cmd += ["--status-every", "0", *extra]
    if duration is not None:
        cmd += ["--duration", str(duration)]
    return subprocess.run(cmd, cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=timeout)


def _collect_markers(name_prefix, out, stop):
    found = pylsl.resolve_byprop("name", STIM_STREAM_NAME, timeout=20)
    found = [f for f in found if f.source_id().endswith(name_prefix)]
    if not found:
        return
    inlet = pylsl.StreamInlet(found[0])
    while not stop.is_set():
        sample, ts = inlet.pull_sample(timeout=0.1)
        if sample is not None:
            out.append((ts, sample[0]))


def test_rules_file_drives_the_device_and_every_trigger_is_accounted_for(
    small_model, source, tmp_path
):
    log = tmp_path / "run.jsonl"
    with PtyTriggerDevice() as dev:
        rules = tmp_path / "rules.toml"
        # a pulse on entering each state of the small model, so some fire whatever it decides
        rules.write_text(
            f'[output]\nport = "{dev.port}"\nbaud = 115200\n'
            + "".join(
                f'[[rule]]\nname = "{s}"\nwhen = "enter:{s}"\npulse_ms = 5\nchannel = {i}\n'
                for i, s in enumerate(("wake", "nrem", "rem"))
            )
        )
        markers, stop = [], threading.Event()
        listener = threading.Thread(target=_collect_markers, args=(source, markers, stop))
        listener.start()
        res = _run(small_model, source, "--stim", str(rules), "--log", str(log), duration=6)
        stop.set()
        listener.join(5)
        assert res.returncode == 0, res.stderr
        assert "stimulation: wake (enter:wake), nrem (enter:nrem), rem (enter:rem)" in res.stdout
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        triggers = [d for d in lines if d.get("event") == "trigger"]
        assert triggers, "no trigger in 6 s"
        for d in triggers:
            assert d["action"] == "pulse" and d["error"] is None
            assert d["ack"]["status"] == "ok"
            assert 0 <= d["decision_to_write_ms"] < 100 and d["round_trip_ms"] >= 0
        pulses = [r for r in dev.received if r.command.command == b"P"]
        assert len(pulses) == len(triggers)
        # each trigger's first byte reached the device after its decision
        assert all(r.first_byte_t >= d["t"] for r, d in zip(pulses, triggers))
        # every marker since the listener connected (a loaded machine may connect it after the
        # first decision's trigger: LSL sends an inlet nothing from before it connected)
        expected = [f"{d['rule']}:pulse:{d['state']}" for d in triggers]
        heard = len(markers)
        assert heard >= len(triggers) - 1 and heard > 0 or len(triggers) == 1
        assert [m for _, m in markers] == expected[len(expected) - heard :]
        assert [ts for ts, _ in markers] == pytest.approx(
            [d["t"] for d in triggers][len(triggers) - heard :], abs=1e-6
        )
        assert dev.received[-1].command.command == b"X"  # outputs off at the end
        stim_stop = [d for d in lines if d.get("event") == "stim_stop"]
        assert stim_stop and stim_stop[0]["sent"] == len(triggers)
        start = [d for d in lines if d.get("event") == "stim_start"][0]
        assert [r["name"] for r in start["protocol"]["rules"]] == ["wake", "nrem", "rem"]


def test_trigger_flags_run_a_gate_and_the_decoder_stopping_turns_it_off(
    small_model, source, tmp_path
):
    log = tmp_path / "run.jsonl"
    with PtyTriggerDevice() as dev:
        res = _run(
            small_model,
            source,
            "--trigger-on",
            "in:wake",
            "--trigger-port",
            dev.port,
            "--log",
            str(log),
            duration=4,
        )
        assert res.returncode == 0, res.stderr
        assert not any(dev.levels)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    states = {d["state"] for d in lines if "probs" in d}
    edges = [d for d in lines if d.get("event") == "trigger"]
    if "wake" in states:
        assert edges[0]["action"] == "on"
        assert edges[-1]["action"] == "off"


def test_a_dry_run_without_a_port_logs_and_marks(small_model, source, tmp_path):
    log = tmp_path / "run.jsonl"
    res = _run(small_model, source, "--trigger-on", "wake", "--log", str(log), duration=3)
    assert res.returncode == 0, res.stderr
    assert "dry run" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trigger-port", "/dev/ttyUSB9"], "--trigger-port needs --trigger-on"),
        (["--trigger-on", "enter:sleep"], "watches state 'sleep', which the model does not decide"),
        (["--trigger-on", "later:wake"], "expected KIND:STATE"),
        (["--trigger-on", "wake", "--trigger-port", "/dev/nonexistent-port"], "cannot be opened"),
        (["--stim", "missing.toml"], "rules file 'missing.toml' does not exist"),
        (["--trigger-on", "onset:wake"], "onset:, which needs an event model"),
    ],
)
def test_bad_stimulation_flags_are_exit_2_with_one_message(small_model, source, args, message):
    res = _run(small_model, source, *args, duration=2, timeout=40)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr
