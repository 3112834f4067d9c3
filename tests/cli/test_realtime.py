"""``rtdecode run --realtime``: every thread of the decoder at SCHED_FIFO, or a clear refusal.

Real processes: a simulator stream on loopback, ``rtdecode run`` as its own process, its threads'
scheduling read from ``/proc``. Whether this machine grants real-time priority decides which
of the two cases can run: the refusal is made real with ``setpriv`` when the tests run as root.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.common.threads import RealtimeError, run_at_realtime_priority

RTDECODE = [sys.executable, "-m", "rtdecode"]
_TRY_FIFO = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"


def _fifo_allowed(prefix: list[str]) -> bool:
    """Whether a process started with ``prefix`` may use SCHED_FIFO."""
    if not hasattr(os, "SCHED_FIFO"):
        return False
    return subprocess.run([*prefix, sys.executable, "-c", _TRY_FIFO]).returncode == 0


def _refusing_prefix() -> list[str] | None:
    """A command prefix under which real-time priority is refused, or None."""
    if not hasattr(os, "SCHED_FIFO"):
        return None
    if not _fifo_allowed([]):
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        prefix = [setpriv, "--bounding-set=-sys_nice"]  # root without CAP_SYS_NICE
        if not _fifo_allowed(prefix):
            return prefix
    return None


def _thread_scheduling(pid: int) -> list[tuple[int, int]]:
    """(policy, real-time priority) of each thread of a process, from /proc."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out.append((int(fields[38]), int(fields[37])))  # fields 41 (policy), 40 (rt_priority)
    return out


@pytest.mark.parametrize("priority", [0, 100, -5])
def test_a_priority_outside_1_99_is_refused(priority):
    with pytest.raises(RealtimeError, match="1-99"):
        run_at_realtime_priority(priority)


@pytest.mark.parametrize("value", ["0", "100", "high"])
def test_run_refuses_a_bad_realtime_flag_with_exit_2(value):
    proc = subprocess.run(
        [*RTDECODE, "run", "--model", "seizure", "--source", "x", "--realtime", value],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE_PARENT,
    )
    assert proc.returncode == 2
    assert "--realtime" in proc.stderr and "Traceback" not in proc.stderr


def test_run_without_the_right_to_realtime_says_what_to_do_and_exits_2():
    prefix = _refusing_prefix()
    if prefix is None:
        pytest.skip("no way here to run a process that is refused real-time priority")
    started = time.monotonic()
    proc = subprocess.run(
        [*prefix, *RTDECODE, "run", "--model", "seizure", "--source", "nowhere", "--realtime"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE_PARENT,
    )
    assert proc.returncode == 2, proc.stderr
    assert "may not use real-time priority" in proc.stderr
    assert "rtprio" in proc.stderr and "CAP_SYS_NICE" in proc.stderr
    assert "Traceback" not in proc.stderr
    # refused at once, before the stream is looked for (a resolve waits seconds)
    assert "nowhere" not in proc.stderr
    assert time.monotonic() - started < 30


@pytest.mark.lsl
@pytest.mark.timeout(90)
def test_every_thread_of_a_realtime_decoder_runs_at_its_priority(tmp_path, unique_name):
    if not _fifo_allowed([]):
        pytest.skip("this user may not use real-time priority")
    sim = subprocess.Popen(
        [*RTDECODE, "simulate", "--scenario", "seizure", "--name", unique_name]
        + ["--channels", "64", "--duration", "40"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PACKAGE_PARENT,
    )
    log = tmp_path / "decisions.jsonl"
    try:
        dec = subprocess.Popen(
            [*RTDECODE, "run", "--model", "seizure", "--source", unique_name, "--headless"]
            + ["--duration", "6", "--log", str(log), "--realtime", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PACKAGE_PARENT,
        )
        deadline = time.monotonic() + 40
        while not (log.is_file() and log.read_text().count("\n") > 5):
            assert dec.poll() is None, dec.communicate()
            assert time.monotonic() < deadline, "no decision logged"
            time.sleep(0.1)
        threads = _thread_scheduling(dec.pid)  # decisions flow: every thread has started
        out, err = dec.communicate(timeout=40)
    finally:
        sim.kill()
        sim.wait()
    assert dec.returncode == 0, err
    assert len(threads) >= 4  # main, acquisition, decode, liblsl's
    assert set(threads) == {(os.SCHED_FIFO, 10)}
    assert "real-time priority 10" in out
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["realtime_priority"] == 10
    assert sum("event" not in r for r in lines) > 20


def test_a_child_that_inherited_realtime_priority_leaves_it():
    # the monitor, started by run --realtime --monitor, calls this first
    if not _fifo_allowed([]):
        pytest.skip("this user may not use real-time priority")
    code = (
        "import os, threading\n"
        "from rtdecode.common.threads import leave_realtime_priority, run_at_realtime_priority\n"
        "run_at_realtime_priority(7)\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))\n"
        "t.start(); t.join()\n"
        "assert seen == [os.SCHED_FIFO], seen\n"
        "leave_realtime_priority()\n"
        "assert os.sched_getscheduler(0) == os.SCHED_OTHER\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE_PARENT
    )
    assert proc.returncode == 0, proc.stderr
