"""``rtdecode device``: checking a trigger board before a session, and emulating one.

The board is the firmware's protocol on a pseudo-terminal (``PtyTriggerDevice``, or ``rtdecode
device --emulate`` as its own process); the check talks to it through pyserial as ``run`` does.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.cli.main import main
from rtdecode.stimulation.emulator import PtyTriggerDevice

RTDECODE = [sys.executable, "-m", "rtdecode"]
pytestmark = pytest.mark.timeout(60)


def test_check_sends_the_test_pulses_and_reports_their_round_trips(capsys):
    with PtyTriggerDevice() as board:
        code = main(["device", "--port", board.port, "--pulses", "4", "--channel", "2"])
        pulses = [r.command for r in board.received if r.command.command == b"P"]
        highs = [e for e in board.edges if e.level]
    out = capsys.readouterr().out
    assert code == 0
    assert "4 of 4 acknowledged" in out and "round trip" in out
    assert [(c.channel, c.duration_ms, c.pulses) for c in pulses] == [(2, 1, 1)] * 4
    assert len(highs) == 4 and {e.channel for e in highs} == {2}


def test_a_board_that_never_answers_is_exit_2_saying_what_to_check(capsys):
    with PtyTriggerDevice(silent=True) as board:
        code = main(["device", "--port", board.port, "--pulses", "1"])
        sent = [r.command.command for r in board.received]
    err = capsys.readouterr().err
    assert code == 2
    assert "does not answer" in err and "firmware" in err and board.port in err
    assert b"P" not in sent  # no test pulse to a board whose state is unknown


def test_a_missing_port_is_exit_2(capsys, tmp_path):
    port = str(tmp_path / "ttyACM9")
    assert main(["device", "--port", port]) == 2
    err = capsys.readouterr().err
    assert port in err and "cannot be opened" in err and "ls /dev/ttyACM*" in err


@pytest.mark.parametrize(
    "flags", [["--port", "x", "--emulate"], [], ["--port", "x", "--channel", "8"]]
)
def test_bad_flags_are_exit_2(flags, capsys, tmp_path):
    if "--channel" in flags:
        with PtyTriggerDevice() as board:
            flags = [board.port if f == "x" else f for f in flags]
            assert main(["device", *flags]) == 2
        assert "outputs 0-7" in capsys.readouterr().err
        return
    with pytest.raises(SystemExit) as exc:
        main(["device", *flags])
    assert exc.value.code == 2


def test_emulate_prints_its_port_and_what_a_check_makes_it_do(tmp_path):
    emulator = subprocess.Popen(
        RTDECODE + ["device", "--emulate", "--duration", "30"],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = emulator.stdout.readline()
        assert first.startswith("emulated trigger board on /dev/")
        port = first.split()[4]
        for _ in range(2):  # a second session of the host, after the first one's all-off
            check = subprocess.run(
                RTDECODE + ["device", "--port", port, "--pulses", "3", "--pulse-ms", "5"],
                cwd=PACKAGE_PARENT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert check.returncode == 0, check.stderr
            assert "3 of 3 acknowledged" in check.stdout
        time.sleep(0.3)
    finally:
        emulator.send_signal(2)  # Ctrl-C: a normal stop
        out, _ = emulator.communicate(timeout=10)
    assert emulator.returncode == 0
    lines = out.splitlines()
    assert sum("pulse 5 ms on output 0" in line for line in lines) == 6
    assert sum(line.endswith("output 0 HIGH") for line in lines) == 6
    assert sum(line.endswith("host connected (heartbeats)") for line in lines) == 2
    assert "watchdog set to 500 ms" in out and "stopped: " in out
    assert os.path.basename(port) in first


def test_demo_closes_the_loop_on_an_emulated_board(tmp_path):
    log = tmp_path / "demo.jsonl"
    demo = subprocess.run(
        RTDECODE
        + ["demo", "--trigger-on", "seizure", "--pulse-ms", "5", "--duration", "16", "--headless"]
        + ["--log", str(log)],
        cwd=PACKAGE_PARENT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert demo.returncode == 0, demo.stderr
    assert "trigger board: pulse 5 ms on output 0" in demo.stdout  # the first seizure, at ~8 s
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    triggers = [d for d in lines if d.get("event") == "trigger"]
    assert triggers and all(d["state"] == "seizure" and d["pulse_ms"] == 5 for d in triggers)
    assert all(d["ack"]["status"] == "ok" for d in triggers)
    assert (
        f"{len(triggers)} trigger(s) on entering seizure, {len(triggers)} pulse(s)" in demo.stdout
    )


def test_demo_with_a_state_the_model_does_not_decide_is_exit_2(capsys):
    assert main(["demo", "--trigger-on", "rem", "--scenario", "seizure", "--duration", "5"]) == 2
    err = capsys.readouterr().err
    assert "'rem'" in err and "normal" in err and "seizure" in err
