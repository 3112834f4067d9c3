"""The decode watchdog: a decode thread stuck in a log write (a named pipe nobody reads, as a
hung network mount) is reported ``decoder_stalled`` on the state outlet, the status and the log,
recovers when the write returns, and is given up on (``wait`` raises, ``run`` exits 1)."""

import json
import subprocess
import sys
import time

import pylsl
import pytest

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.decoding.watchdog import DecoderStalledError
from rtdecode.streams import DECODER_STALLED, STATE_STREAM_NAME, output_source_id

from .test_decoder_faults import _decoder, _start_source, _wait

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(240)]


def _state_inlet(decoder):
    sid = output_source_id(STATE_STREAM_NAME, decoder.acquisition.source_id)
    found = pylsl.resolve_byprop("source_id", sid, timeout=10)
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=5)
    return inlet


def _markers(inlet, seconds):
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sample, _ = inlet.pull_sample(timeout=0.1)
        if sample is not None:
            got.append(sample[0])
            if got[-1] == DECODER_STALLED:
                break
    return got


def test_a_decode_thread_hung_in_a_log_write_is_reported_and_recovers(
    small_model, unique_name, stuck_pipe
):
    source = _start_source(unique_name)
    decoder = _decoder(small_model, unique_name, stuck_pipe.path, stall_s=0.5)
    try:
        decoder.start()
        state = _state_inlet(decoder)
        stop_draining = time.monotonic() + 3.0
        while time.monotonic() < stop_draining:  # decisions flow while the pipe is read
            stuck_pipe.drain()
            time.sleep(0.05)
        before = decoder.status().decisions
        assert before > 5
        stuck_pipe.fill()  # the next log line hangs the decode thread
        assert DECODER_STALLED in _markers(state, 5.0)
        assert decoder.status().stream_health == DECODER_STALLED
        assert decoder.running  # stuck, not dead
        stuck = decoder.status().decisions
        time.sleep(0.5)
        assert decoder.status().decisions == stuck
        # the write returns: decoding goes on, and the log holds the report
        assert _wait(lambda: stuck_pipe.drain() and not decoder.watchdog.stalled, 10.0)
        assert _wait(lambda: stuck_pipe.drain() and decoder.status().decisions > stuck + 5, 10.0)
        assert decoder.status().stream_health != DECODER_STALLED
        decoder.wait(0.1)  # no error: it recovered
    finally:
        decoder.close()
        source.terminate()
        source.wait(10)
    events = [
        json.loads(line).get("event") for line in stuck_pipe.drain().splitlines() if line.strip()
    ]
    stall_at = events.index("decoder_stall")
    assert events.index(DECODER_STALLED) > 0
    assert events.index("decoder_recovered") > stall_at


def test_a_decode_thread_that_stays_stuck_is_given_up_on(small_model, unique_name, stuck_pipe):
    source = _start_source(unique_name)
    decoder = _decoder(small_model, unique_name, stuck_pipe.path, stall_s=0.5, give_up_s=2.0)
    try:
        decoder.start()
        assert _wait(lambda: stuck_pipe.drain() and decoder.status().decisions > 3, 20.0)
        stuck_pipe.fill()
        t0 = time.monotonic()
        with pytest.raises(DecoderStalledError, match="no progress"):
            decoder.wait(30.0)
        assert time.monotonic() - t0 < 10.0
    finally:
        t0 = time.monotonic()
        decoder.close()  # never waits forever on the hung thread or its log
        assert time.monotonic() - t0 < 15.0
        source.terminate()
        source.wait(10)


def test_run_exits_1_when_the_decoder_stays_stuck(small_model, unique_name, stuck_pipe):
    source = _start_source(unique_name)
    run = subprocess.Popen(
        [sys.executable, "-m", "rtdecode", "run", "--model", str(small_model), "--source"]
        + [unique_name, "--log", str(stuck_pipe.path), "--stall-s", "0.5", "--headless"],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait(lambda: b"end_sample" in stuck_pipe.drain(), 30.0)
        stuck_pipe.fill()
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
        source.terminate()
        source.wait(10)
    assert run.returncode == 1, err
    assert "decoder_stalled" in err and "no progress" in err
