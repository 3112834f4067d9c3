"""Real LSL on loopback: a source -> the decoder -> pylsl consumers.

The live features equal the offline ones on the same samples; decisions carry the timestamp of
their window's last sample; the CLI runs simulator and decoder as separate processes.
"""

import json
import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pylsl
import pytest

from rtdecode.acquisition.acquisition import LslAcquisition
from rtdecode.acquisition.inlet import StreamSelector, resolve_stream
from rtdecode.decoding.decoder import Decoder
from rtdecode.decoding.model import OnnxModel
from rtdecode.features.streaming import extract_features
from rtdecode.models import bundled_model_path
from rtdecode.outputs.decisions import DecisionOutputs

pytestmark = pytest.mark.lsl

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.streams import SCORES_STREAM_NAME, STATE_STREAM_NAME, output_source_id

RTDECODE = [sys.executable, "-m", "rtdecode"]


def _pull_all(inlet, sink, seconds):
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        chunk, ts = inlet.pull_chunk(timeout=0.05)
        sink.extend(zip(ts, chunk))


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "channel_format, dtype",
    [("float32", np.float32), ("int16", np.int16), ("double64", np.float64)],
)
def test_live_decisions_equal_offline(tmp_path, small_model, unique_name, channel_format, dtype):
    fs, n_ch = 2000.0, 4
    rng = np.random.default_rng(11)
    n = int(fs * 5)
    t = np.arange(n) / fs
    data = rng.standard_normal((n, n_ch)) * 20 + 80 * np.sin(2 * np.pi * 7 * t)[:, None]
    data = data.astype(dtype)
    info = pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, channel_format, unique_name)
    outlet = pylsl.StreamOutlet(info, chunk_size=16)

    model = OnnxModel(small_model)
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    outputs = DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=unique_name,
        hop_s=0.1,
        log_path=tmp_path / "log.jsonl",
    )
    decoder = Decoder(model, acquisition, outputs)
    observed = decoder.observe()
    scores_info = pylsl.resolve_byprop(
        "source_id", output_source_id(SCORES_STREAM_NAME, unique_name), timeout=5
    )[0]
    scores = pylsl.StreamInlet(scores_info, processing_flags=0)
    scores.open_stream(5)
    with decoder:
        # the decoder runs BLAS on one thread (idle OpenBLAS workers spin: a core at 128 ch)
        from threadpoolctl import threadpool_info

        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} <= {1}
        _wait_for_consumer(outlet)
        # Push in random chunk sizes, faster than real time, with exact sample timestamps.
        t0 = pylsl.local_clock()
        pos = 0
        while pos < n:
            k = int(rng.integers(1, 300))
            chunk = data[pos : pos + k]
            pos += len(chunk)
            outlet.push_chunk(np.ascontiguousarray(chunk), timestamp=t0 + (pos - 1) / fs)
            time.sleep(0.002)
        ends, offline = extract_features(data.astype(np.float32), model.contract.features)
        deadline = time.monotonic() + 20
        while len(observed) < len(ends) and time.monotonic() < deadline:
            time.sleep(0.05)
        live_rows = [(o.end_sample, o.features) for o in observed]
        received = []
        _pull_all(scores, received, 1.0)
    assert [e for e, _ in live_rows] == ends.tolist()
    np.testing.assert_array_equal(np.stack([r for _, r in live_rows]), offline)
    # what the consumer received: the model's probabilities and the quality channel (all
    # channels good), stamped with the window's last sample
    expected = model.predict_proba(offline)
    assert len(received) == len(ends)
    got = np.array([x for _, x in received])
    np.testing.assert_allclose(got[:, :-1], expected, atol=1e-6)
    np.testing.assert_array_equal(got[:, -1], 1.0)
    stamps = np.array([ts for ts, _ in received])
    np.testing.assert_allclose(stamps, t0 + (ends - 1) / fs, atol=2e-3)
    lines = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    decisions = [d for d in lines if "event" not in d]
    assert [d["end_sample"] for d in decisions] == ends.tolist()
    assert lines[0]["event"] == "start"


def _run(args, timeout=60):
    return subprocess.run(
        RTDECODE + args, capture_output=True, text=True, timeout=timeout, cwd=PACKAGE_PARENT
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_simulator_to_decoder_to_consumer(tmp_path, unique_name):
    """rtdecode simulate | rtdecode run, each its own process; a pylsl consumer listens."""
    model = bundled_model_path("seizure")
    contract = OnnxModel(model).contract
    sim = subprocess.Popen(
        RTDECODE
        + [
            "simulate",
            "--scenario",
            "seizure",
            "--name",
            unique_name,
            "--channels",
            str(contract.n_channels),
            "--duration",
            "40",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PACKAGE_PARENT,
    )
    log = tmp_path / "decisions.jsonl"
    try:
        time.sleep(1.0)
        dec = subprocess.Popen(
            RTDECODE
            + [
                "run",
                "--model",
                str(model),
                "--source",
                unique_name,
                "--headless",
                "--duration",
                "12",
                "--log",
                str(log),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PACKAGE_PARENT,
        )
        found = {}
        deadline = time.monotonic() + 20
        while len(found) < 2 and time.monotonic() < deadline:
            for s in pylsl.resolve_streams(wait_time=0.5):
                if unique_name in s.source_id() and s.name() in (
                    SCORES_STREAM_NAME,
                    STATE_STREAM_NAME,
                ):
                    found.setdefault(s.name(), s)
        if set(found) != {SCORES_STREAM_NAME, STATE_STREAM_NAME}:
            dec.kill()
            pytest.fail(f"decoder outlets not found; decoder said: {dec.communicate()}")
        scores = pylsl.StreamInlet(found[SCORES_STREAM_NAME], processing_flags=0)
        states = pylsl.StreamInlet(found[STATE_STREAM_NAME], processing_flags=0)
        scores.open_stream(5)
        states.open_stream(5)
        labels = []
        ch = scores.info().desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        got_scores, got_states, latency = [], [], []
        t_end = time.monotonic() + 8
        while time.monotonic() < t_end:
            x, ts = scores.pull_sample(timeout=0.2)
            if x is not None:
                latency.append(pylsl.local_clock() - ts)
                got_scores.append((ts, x))
            m, mts = states.pull_sample(timeout=0.0)
            if m is not None:
                got_states.append(m[0])
        out, err = dec.communicate(timeout=30)
    finally:
        sim.kill()
        sim.wait()
    assert dec.returncode == 0, err
    assert labels == [*contract.classes, "quality"]
    assert len(got_scores) > 40  # ~10 decisions per second
    stamps = np.array([ts for ts, _ in got_scores])
    assert np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(np.median(np.diff(stamps)), 0.1, atol=0.01)  # one per hop
    probs = np.array([x for _, x in got_scores])
    np.testing.assert_allclose(probs[:, :-1].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs[:, -1], 1.0)  # the simulator's channels are all good
    assert 0 < np.median(latency) < 0.5  # sanity, not a benchmark: decisions are fresh
    assert all(s in contract.classes for s in got_states)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    decisions = [r for r in records if "event" not in r]
    assert len(decisions) >= len(got_scores)
    assert {"t", "end_sample", "probs", "state"} <= set(decisions[0])
    assert "decisions" in out and "latency" in out


@pytest.mark.timeout(60)
def test_missing_stream_lists_visible_streams(unique_name):
    info = pylsl.StreamInfo(unique_name + "-other", "EEG", 2, 100, "float32", unique_name + "-o")
    outlet = pylsl.StreamOutlet(info)  # noqa: F841 (kept alive so it is visible)
    result = _run(
        [
            "run",
            "--model",
            str(bundled_model_path("sleep")),
            "--source",
            unique_name + "-absent",
            "--resolve-timeout",
            "1",
        ]
    )
    assert result.returncode == 2
    assert "no LSL stream with name=" in result.stderr
    assert unique_name + "-other" in result.stderr  # the visible one is listed
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_stream_model_mismatch_is_a_clear_error(unique_name):
    info = pylsl.StreamInfo(unique_name, "EEG", 8, 30000, "float32", unique_name)
    outlet = pylsl.StreamOutlet(info)  # noqa: F841
    result = _run(
        [
            "run",
            "--model",
            str(bundled_model_path("sleep")),
            "--source",
            unique_name,
            "--resolve-timeout",
            "3",
        ]
    )
    assert result.returncode == 2
    assert "expects 64 channels at 32000 Hz" in result.stderr
    assert "8 channels at 30000 Hz" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", None])
def test_bad_model_file_is_exit_2(tmp_path, content):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    result = _run(["info", str(path)])
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_info_prints_the_contract():
    result = _run(["info", str(bundled_model_path("sleep"))])
    assert result.returncode == 0, result.stderr
    for word in ("wake", "nrem", "rem", "32000", "theta", "fast_ripple"):
        assert word in result.stdout


def test_version():
    result = _run(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("rtdecode ")


def test_hysteresis_flag_for_the_wrong_task_is_rejected(unique_name):
    result = _run(
        [
            "run",
            "--model",
            str(bundled_model_path("sleep")),
            "--source",
            unique_name,
            "--on-threshold",
            "0.9",
            "--resolve-timeout",
            "1",
        ]
    )
    assert result.returncode == 2
    assert "--on-threshold" in result.stderr and "--margin" in result.stderr


def _wait_for_consumer(outlet: pylsl.StreamOutlet) -> None:
    deadline = time.monotonic() + 10
    while not outlet.have_consumers() and time.monotonic() < deadline:
        time.sleep(0.01)


def _assert_all_arrived(acquisition: LslAcquisition, data: np.ndarray) -> None:
    """Every pushed sample (``data``, all of the stream so far) reaches the ring, unchanged."""
    n = data.shape[0]
    deadline = time.monotonic() + 5
    while acquisition.ring.written < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert acquisition.ring.written == n
    out = np.empty_like(data)
    acquisition.ring.read(n, out, np.empty(n))
    np.testing.assert_array_equal(out, data)


@pytest.mark.timeout(60)
def test_acquisition_batches_the_receivers_wakes_and_loses_nothing(unique_name):
    """While the acquisition naps, liblsl's data socket gets a receive low-water mark (its
    receiver thread then wakes per batch, not per packet); near the urgent sample, and when the
    source pauses, the mark is 1 again, so the last samples before a pause are not held."""
    import socket

    fs, n_ch = 4000.0, 8
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=4
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))

    def mark() -> int:
        fd, _ = acquisition.data_socket
        sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)  # a dup: same socket
        try:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
        finally:
            sock.close()

    n = int(fs * 3)
    data = np.arange(n * n_ch, dtype=np.float32).reshape(n, n_ch)
    with acquisition:
        assert acquisition.data_socket is not None
        fd, inode = acquisition.data_socket
        assert os.fstat(fd).st_ino == inode
        acquisition.set_urgent_at(10**12)  # far away: lazy naps with a mark
        _wait_for_consumer(outlet)
        marks = []
        for i in range(0, n, 4):  # real time, 1 ms chunks
            outlet.push_chunk(data[i : i + 4])
            if i % 400 == 0:
                marks.append(mark())
            time.sleep(0.001)
        # a mark of several samples' bytes was set while data flowed ...
        assert max(marks) > 4 * n_ch * 4
        # ... and after the source stopped, every sample still arrives (the mark is released)
        _assert_all_arrived(acquisition, data)
        deadline = time.monotonic() + 2  # a nap or two after the last data
        while mark() != 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert mark() == 1
        acquisition.set_urgent_at(0)  # every sample urgent: no mark
        outlet.push_chunk(data[:4])
        deadline = time.monotonic() + 5
        while acquisition.ring.written < n + 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mark() == 1 and acquisition.ring.written == n + 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ahead_s, then_ahead_s", [(0.0, 0.0), (3.0, 3.0), (0.0, 0.2)])
def test_acquisition_learns_when_urgent_samples_arrive(unique_name, ahead_s, then_ahead_s):
    """When an urgent sample is due is predicted from the timestamps and the delays from a
    timestamp to its arrival seen while blocking: those delays are learnt whatever the source's
    clock (also one 3 s ahead of this machine's, or one that steps 0.2 s ahead halfway), and
    every sample is delivered."""
    fs, n_ch = 4000.0, 8
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=4
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    assert math.isnan(acquisition.arrival_lag_s)
    n = int(fs * 2)
    data = np.arange(n * n_ch, dtype=np.float32).reshape(n, n_ch)
    with acquisition:
        _wait_for_consumer(outlet)
        for i in range(0, n, 4):  # real time, 1 ms chunks stamped at their push
            if i % 100 == 0:  # an urgent sample 15 ms ahead, and the next 5 ms after it
                acquisition.set_urgent_at(i + 60, i + 80)
            ahead = ahead_s if i < n // 2 else then_ahead_s
            outlet.push_chunk(data[i : i + 4], pylsl.local_clock() + ahead)
            time.sleep(0.001)
        lag = acquisition.arrival_lag_s
        _assert_all_arrived(acquisition, data)
    # the smallest delay seen: loopback's (well under 50 ms), minus the clock's lead
    assert -then_ahead_s <= lag < -then_ahead_s + 0.05


@pytest.mark.timeout(60)
def test_a_late_arrival_prediction_is_learnt_again(unique_name):
    """Samples delivered 30 ms after their timestamps for a second (a source, or this machine,
    under load) teach the acquisition that they arrive 30 ms late. Once they come on time again,
    its waits for urgent samples would begin after those had arrived, and the delays are only
    measured in waits: it must notice the late start and learn the delay again."""
    fs, n_ch, late_s = 4000.0, 8, 0.03
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=4
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    n = int(fs * 3)
    data = np.arange(n * n_ch, dtype=np.float32).reshape(n, n_ch)
    with acquisition:
        _wait_for_consumer(outlet)
        t0 = pylsl.local_clock()
        lag_while_late = math.nan
        for i in range(0, n, 4):  # 1 ms chunks stamped when sampled, pushed then or late
            if i == int(fs * 1.5):
                lag_while_late = acquisition.arrival_lag_s
            stamp = t0 + (i + 4) / fs
            delay = late_s if fs * 0.5 <= i < fs * 1.5 else 0.0
            wait = stamp + delay - pylsl.local_clock()
            if wait > 0:
                time.sleep(wait)
            if i % 100 == 0:
                acquisition.set_urgent_at(i + 60, i + 80)
            outlet.push_chunk(data[i : i + 4], stamp)
        lag = acquisition.arrival_lag_s
        _assert_all_arrived(acquisition, data)
    assert late_s <= lag_while_late < late_s + 0.01
    assert 0.0 <= lag < 0.005


@pytest.mark.timeout(60)
def test_an_urgent_sample_in_a_late_sources_catch_up_is_not_napped_through(unique_name):
    """A source that falls behind its pace stamps its late chunks late, then pushes the rest at
    once. Predicted from the newest (late) timestamp, the urgent sample in that catch-up would
    be due ~12 ms after it comes, and the acquisition would nap through its arrival (for up to
    its 24 ms naps here). The prediction must not be later than the stream's recent pace says."""
    fs, n_ch, chunk = 4000.0, 8, 4  # 1 ms chunks
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=chunk
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    n = int(fs * 2)
    data = np.arange(n * n_ch, dtype=np.float32).reshape(n, n_ch)
    stall_at, stall_s = int(fs * 1.5), 0.030  # the source stops for 30 ms, here
    urgent = stall_at + 60  # 15 ms after it, on the stream's pace
    arrived = {}

    def watch() -> None:
        if acquisition.ring.wait_for(urgent, 10.0):
            arrived["t"] = pylsl.local_clock()

    with acquisition:
        _wait_for_consumer(outlet)
        t0 = pylsl.local_clock()
        i = 0
        while i < stall_at:  # on pace, stamped at the push
            if i % 100 == 0:  # urgent samples to learn the delays from
                acquisition.set_urgent_at(i + 60, i + 80)
            wait = t0 + (i + chunk) / fs - pylsl.local_clock()
            if wait > 0:
                time.sleep(wait)
            outlet.push_chunk(data[i : i + chunk], pylsl.local_clock())
            i += chunk
        acquisition.set_urgent_at(urgent)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(stall_s)
        for _ in range(2):  # two chunks pushed 30 ms late, stamped so
            outlet.push_chunk(data[i : i + chunk], pylsl.local_clock())
            i += chunk
            time.sleep(0.001)
        catch_up = pylsl.local_clock()  # then the rest at once, the urgent in it
        outlet.push_chunk(data[i : urgent + 40], catch_up)
        i = urgent + 40
        watcher.join(10.0)
        outlet.push_chunk(data[i:], pylsl.local_clock())
        _assert_all_arrived(acquisition, data)
    # loopback delivers in well under a millisecond; napped through, it came ~12 ms after
    assert arrived["t"] - catch_up < 0.005


@pytest.mark.timeout(60)
def test_an_urgent_sample_late_in_the_next_block_is_not_napped_through(unique_name):
    """A source that sends 32 ms blocks (Open Ephys: 1024 samples at 32 kHz) brings nothing
    between two. Before the arrival delays are learnt, the wait for an urgent sample is
    predicted from the sample count: counted from the newest write, not from each wake, the
    loop napped twice its 24 ms through a sample 30 ms into the next block and wrote it ~16 ms
    after it came (bench_stim, 32 ms blocks: decisions 9-17 ms late)."""
    fs, n_ch, block = 32000.0, 8, 1024
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=block
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    data = np.arange(12 * block * n_ch, dtype=np.float32).reshape(-1, n_ch)
    late_by = []
    acquisition.set_urgent_at(10**12)  # far away from the start: naps, no wait learns a delay
    with acquisition:
        _wait_for_consumer(outlet)
        t0 = time.monotonic()
        for k in range(12):
            wait = t0 + k * block / fs - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pushed = pylsl.local_clock()
            outlet.push_chunk(data[k * block : (k + 1) * block], pushed)
            if k >= 2:
                assert acquisition.ring.wait_for(k * block + 960, 1.0)
                late_by.append(pylsl.local_clock() - pushed)
            assert acquisition.ring.wait_for((k + 1) * block, 1.0)
            # the next urgent sample: 30 ms into the next block (then none near)
            acquisition.set_urgent_at((k + 1) * block + 960, 10**12)
        _assert_all_arrived(acquisition, data)
    # loopback delivers a block in about a millisecond; napped through, ~16 ms
    assert np.median(late_by) < 0.005


@pytest.mark.timeout(90)
def test_the_decoder_names_its_next_two_wake_points_urgent(unique_name, make_model):
    """The acquisition is told the decoder's next two latency-critical samples, in order: a
    window's head point, with many channels the extra wake 4 ms before its end, its end, and the
    next head point. Without the late wake's, the acquisition could nap past it (up to 8-24 ms),
    leaving the whole tail to decimate at the window's end."""
    fs, n_ch = 2000.0, 512
    model = OnnxModel(make_model("wide.onnx", n_channels=n_ch, fs_hz=fs))
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=10
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    outputs = DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=unique_name,
        hop_s=0.1,
        log_path=None,
    )
    decoder = Decoder(model, acquisition, outputs)
    hop, late, pre = decoder.config.hop_samples, decoder._late_boundary, decoder._pre_boundary
    assert 0 < late < pre  # this many channels: the extra wake exists
    points = sorted({b - d for b in range(hop, int(fs * 4), hop) for d in (pre, late, 0)})
    following = dict(zip(points, points[1:]))
    rng = np.random.default_rng(5)
    seen = []
    with decoder:
        _wait_for_consumer(outlet)
        t0 = time.monotonic()
        for i in range(0, int(fs * 3), 10):  # 5 ms chunks, in real time
            outlet.push_chunk((rng.standard_normal((10, n_ch)) * 20).astype(np.float32))
            first, again = acquisition._loop.urgent, acquisition._loop.urgent
            if first == again and first[0] > 0:  # not torn by a change between the reads
                seen.append(first)
            time.sleep(max(0.0, t0 + (i + 10) / fs - time.monotonic()))
        assert decoder.error is None
    assert len(seen) > 100
    assert all(then == following[count] for count, then in seen)
    late_points = {b - late for b in range(hop, int(fs * 4), hop)}
    assert sum(count in late_points for count, _ in seen) >= 3


def test_a_socket_that_is_not_the_one_given_is_left_alone(unique_name):
    """If the fd given as the data socket no longer is that socket (liblsl reconnected and the
    number was reused), the loop notices by its inode and never touches it."""
    import socket

    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", 2, 1000.0, "float32", unique_name), chunk_size=1
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with acquisition:
            acquisition._loop.set_receive_socket(
                other.fileno(), os.fstat(other.fileno()).st_ino + 1
            )
            acquisition.set_urgent_at(10**12)
            deadline = time.monotonic() + 5
            while not acquisition._loop.receive_socket_lost and time.monotonic() < deadline:
                outlet.push_sample([1.0, 2.0])
                time.sleep(0.002)
            assert acquisition._loop.receive_socket_lost
            assert other.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
    finally:
        other.close()


def test_unmarked_acquisition_leaves_the_socket_alone(unique_name):
    """``unmark_socket`` (for benchmarks) keeps liblsl's socket as liblsl set it; after start
    it is refused."""
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", 2, 1000.0, "float32", unique_name), chunk_size=1
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    acquisition.unmark_socket()
    with acquisition:
        assert acquisition.data_socket is None
        with pytest.raises(RuntimeError, match="before start"):
            acquisition.unmark_socket()
    assert outlet is not None
