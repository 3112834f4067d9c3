"""Stream faults: the source killed and restarted (several times) while the decoder runs."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pylsl
import pytest

from rtdecode.acquisition.acquisition import LslAcquisition
from rtdecode.acquisition.inlet import StreamSelector, resolve_stream
from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.decoding.decoder import Decoder
from rtdecode.decoding.model import OnnxModel
from rtdecode.outputs.decisions import DecisionOutputs
from rtdecode.streams import NO_SIGNAL, SCORES_STREAM_NAME, output_source_id

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(240)]


def _start_source(name):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "simulate",
            "--scenario",
            "sleep",
            "--channels",
            "4",
            "--rate",
            "2000",
            "--name",
            name,
            "--duration",
            "300",
        ],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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
    outputs = DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=name,
        hop_s=0.1,
        log_path=log,
    )
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
                assert decoder.status().stream_health == "stalled"
                time.sleep(1.0)
                assert decoder.status().decisions == stalled_at  # nothing stale is published
                source = _start_source(unique_name)  # same name -> same source_id
                assert _wait(lambda: decoder.status().decisions >= stalled_at + 10, 40), (
                    f"decoding did not resume after restart {restart + 1}"
                )
                assert decoder.status().state != NO_SIGNAL
                assert decoder.status().stream_health == "connected"
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
            nxt = next(d for d in lines[i + 1 :] if "probs" in d)
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
                [
                    sys.executable,
                    "-m",
                    "rtdecode",
                    "run",
                    "--model",
                    str(small_model),
                    "--source",
                    unique_name,
                    "--headless",
                    "--log",
                    str(log),
                    "--log-fsync-s",
                    "0.5",
                ],
                cwd=PACKAGE_PARENT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
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


@pytest.mark.parametrize("by", ["size", "age"])
def test_log_rotation_keeps_every_line(tmp_path, by):
    """Rotation by size (4000 bytes) or by age (0.2 s): files renamed, never a line lost."""
    import numpy as np

    from rtdecode.outputs.decisions import Decision

    log = tmp_path / "decisions.jsonl"
    rotate = dict(log_rotate_bytes=4000) if by == "size" else dict(log_rotate_s=0.2)
    outputs = DecisionOutputs(
        ("a", "b"), input_source_id=f"rot-{by}", input_name="rot", hop_s=0.1, log_path=log, **rotate
    )
    n = 200 if by == "size" else 30
    for i in range(n):
        outputs.publish(
            Decision(
                end_sample=i,
                timestamp=float(i),
                probabilities=np.array([0.25, 0.75], np.float32),
                state="b",
                state_changed=i == 0,
                counters={},
            )
        )
        if by == "age":
            time.sleep(0.02)
    outputs.close()
    files = sorted(tmp_path.glob("decisions*.jsonl"))
    assert len(files) >= (5 if by == "size" else 2) and log in files
    samples = sorted(
        json.loads(line)["end_sample"]
        for f in files
        for line in f.read_text().splitlines()
        if "end_sample" in line
    )
    assert samples == list(range(n))
    if by == "size":
        assert all(f.stat().st_size < 4000 + 300 for f in files)


def test_decisions_older_than_max_age_are_logged_not_published(small_model, unique_name, tmp_path):
    """A decision made too late to act on never reaches a consumer, but stays in the log."""
    import pylsl

    source = _start_source(unique_name)
    try:
        log = tmp_path / "decisions.jsonl"
        # every decision takes longer than 1 us from its window's last sample: all stale
        decoder = _decoder(small_model, unique_name, log, max_age_s=1e-6)
        acquisition = decoder.acquisition
        found = pylsl.resolve_byprop(
            "source_id", output_source_id(SCORES_STREAM_NAME, acquisition.source_id), timeout=10
        )
        scores = pylsl.StreamInlet(found[0])
        scores.open_stream(timeout=5)
        with decoder:
            assert _wait(lambda: decoder.status().stale_decisions >= 60, 30)
            sample, _ = scores.pull_sample(timeout=1.0)
            assert sample is None  # nothing was published
        decisions = [d for d in _lines(log) if "probs" in d]
        assert len(decisions) >= 60 and all(d.get("stale") is True for d in decisions)
        # stale for 5 s while the decoder was not behind: said once, as a clock problem
        assert [d.get("event") for d in _lines(log)].count("clock_behind") == 1
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
        [
            sys.executable,
            "-m",
            "rtdecode",
            "simulate",
            "--scenario",
            "sleep",
            "--channels",
            "4",
            "--rate",
            "2000",
            "--name",
            unique_name,
            "--duration",
            "300",
            "--fault",
            "1:nan@6-8",
            "--fault",
            "0:rail@13-16",
            "--fault",
            "1:nan@13-16",
            "--fault",
            "3:flat@13-16",
        ],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
            while (
                time.monotonic() < deadline and decoder.acquisition.counters["samples"] < 2000 * 22
            ):
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
    # announced again when good (a gap meanwhile, on a loaded machine, re-announces bad_signal)
    after = [m for m in marks[marks.index("bad_signal") + 1 :] if m != "bad_signal"]
    assert after and after[0] in ("wake", "nrem", "rem")
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
    exact = [
        d
        for d in most_bad
        if d["bad_channels"] == {labels[0]: "railed", labels[1]: "nonfinite", labels[3]: "flat"}
    ]
    assert len(exact) >= 0.7 * len(most_bad)


def _push_stamped(name, stamp, seconds, *, fs=2000.0, n_ch=4, before_push=None):
    """An in-process LSL source pushing noise in real time, sample i stamped ``stamp(i)``."""
    import numpy as np
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", n_ch, fs, "float32", name)
    outlet = pylsl.StreamOutlet(info, chunk_size=20)
    rng = np.random.default_rng(2)
    stop = threading.Event()

    def run():
        t0 = time.monotonic()
        chunk = 20
        for start in range(0, int(seconds * fs), chunk):
            if stop.is_set():
                return
            delay = t0 + (start + chunk) / fs - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if before_push is not None:
                before_push(start)
            data = (rng.standard_normal((chunk, n_ch)) * 20).astype(np.float32)
            stamps = [stamp(start + i) for i in range(chunk)]
            outlet.push_chunk(data, stamps)

    thread = threading.Thread(target=run, daemon=True)
    return outlet, thread, stop


def _scores_inlet(decoder):
    import pylsl

    sid = decoder.acquisition.source_id
    found = pylsl.resolve_byprop("source_id", output_source_id(SCORES_STREAM_NAME, sid), timeout=10)
    inlet = pylsl.StreamInlet(found[0], processing_flags=0)
    inlet.open_stream(timeout=5)
    return inlet


def test_timestamp_reset_restarts_windows_and_decisions_stay_monotonic(
    small_model, unique_name, tmp_path
):
    """A device whose clock starts over (timestamps 100 s back, off the LSL clock): counted and
    logged, no window spans it, decisions keep being published, their timestamps increasing."""
    import pylsl

    fs, reset_at = 2000.0, 2000 * 4
    t0 = pylsl.local_clock() + 1.0  # roughly when the pushing starts (real-time pace)

    def stamp(i):
        return t0 + i / fs if i < reset_at else t0 - 100.0 + (i - reset_at) / fs

    outlet, source, stop = _push_stamped(unique_name, stamp, 10.0)
    log = tmp_path / "decisions.jsonl"
    decoder = _decoder(small_model, unique_name, log, max_age_s=1.0)
    scores = _scores_inlet(decoder)
    got = []
    with decoder:
        source.start()
        while source.is_alive():
            while (s := scores.pull_sample(timeout=0.05))[0] is not None:
                got.append(s[1])
        time.sleep(0.5)
    stop.set()
    while (s := scores.pull_sample(timeout=0.2))[0] is not None:
        got.append(s[1])
    lines = _lines(log)
    events = [d["event"] for d in lines if "event" in d]
    assert "timestamp_reset" in events
    offsets = [d for d in lines if d.get("event") == "timestamp_offset"]
    assert len(offsets) == 1 and 95 < offsets[0]["offset_s"] < 105  # the clock went 100 s back
    assert decoder.acquisition.counters["timestamp_resets"] == 1
    decisions = [d for d in lines if "probs" in d]
    window = decoder.model.contract.features.window_samples
    ends = [d["end_sample"] for d in decisions]
    assert not any(reset_at < e < reset_at + window for e in ends)  # none spans the reset
    assert sum(e >= reset_at + window for e in ends) >= 20  # decoding went on after it
    stamps = [d["t"] for d in decisions]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    # after the reset, decisions still follow the data: one hop apart
    after = [d["t"] for d in decisions if d["end_sample"] >= reset_at + window]
    assert max(abs(b - a - 0.1) for a, b in zip(after, after[1:])) < 0.02
    assert len(got) == len(decisions) and all(b > a for a, b in zip(got, got[1:]))


def test_jitter_and_clock_offset_jumps_are_counted_not_gaps(small_model, unique_name, tmp_path):
    """Jittery timestamps (+-5 ms) and a 0.5 s clock-offset step (data continuous) are counted,
    neither restarts the windows: one decision per hop throughout."""
    import numpy as np
    import pylsl

    fs = 2000.0
    jitter = np.random.default_rng(4).uniform(-0.005, 0.005, int(fs * 10))
    t0 = pylsl.local_clock() + 1.0
    log = tmp_path / "decisions.jsonl"
    holder = {}

    def before_push(start):
        if start == int(fs * 5):  # the clock sync found a new offset (e.g. an NTP step)
            loop = holder["decoder"].acquisition._loop
            loop.set_time_offset(loop.time_offset - 0.5)

    outlet, source, stop = _push_stamped(
        unique_name, lambda i: t0 + i / fs + jitter[i], 9.0, before_push=before_push
    )
    decoder = _decoder(small_model, unique_name, log)
    holder["decoder"] = decoder
    decoder.acquisition._clock_sync_s = 1000.0  # only the step above changes the offset
    with decoder:
        source.start()
        source.join()
        time.sleep(0.3)
    stop.set()
    counters = decoder.acquisition.counters
    assert counters["clock_jumps"] == 1
    assert counters["gaps"] == 0 and counters["timestamp_resets"] == 0
    assert counters["nonmonotonic"] > 0  # the jitter
    decisions = [d for d in _lines(log) if "probs" in d]
    ends = np.array([d["end_sample"] for d in decisions])
    assert len(ends) > 60 and np.all(np.diff(ends) == decoder.config.hop_samples)
    t = np.array([d["t"] for d in decisions])
    assert np.all(np.diff(t) > 0)


def _decoder_process(model, name, log, max_age_s):
    """`rtdecode run` on the simulator ``name``, logging to ``log``; returns it and a scores
    inlet once it has made 10 decisions."""
    import pylsl

    decoder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "run",
            "--model",
            str(model),
            "--source",
            name,
            "--headless",
            "--log",
            str(log),
            "--max-age-s",
            str(max_age_s),
        ],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert _wait(lambda: sum("probs" in d for d in _lines(log)) >= 10, 40)
    found = pylsl.resolve_byprop(
        "source_id", output_source_id(SCORES_STREAM_NAME, f"rtdecode-sim:{name}"), timeout=10
    )
    scores = pylsl.StreamInlet(found[0], processing_flags=0)
    scores.open_stream(timeout=5)
    return decoder, scores


def _end(decoder, source):
    """Stop a decoder process (if started) cleanly, then kill the source."""
    if decoder is not None:
        decoder.terminate()
        decoder.wait(20)
    source.kill()
    source.wait()


def _drain_ages(scores, seconds, ages):
    """Pull decisions for ``seconds``; append each one's age on receipt (s) to ``ages``."""
    import pylsl

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sample, ts = scores.pull_sample(timeout=0.05)
        if sample is not None:
            ages.append(pylsl.local_clock() - ts)


def test_frozen_decoder_skips_ahead_and_never_publishes_stale_decisions(
    small_model, unique_name, tmp_path
):
    """The decoder process frozen for 10 s (SIGSTOP: what a starved or swapped-out process
    sees, in the extreme) wakes 10 s behind: it skips ahead to the newest window (logged with the
    decisions skipped), any decision still made late is logged as stale, none reaches the
    consumer older than --max-age-s, and fresh decisions follow."""
    import psutil

    source = _start_source(unique_name)
    log = tmp_path / "decisions.jsonl"
    decoder = None
    try:
        decoder, scores = _decoder_process(small_model, unique_name, log, 1.0)
        rss_before = psutil.Process(decoder.pid).memory_info().rss
        ages = []
        _drain_ages(scores, 2.0, ages)
        os.kill(decoder.pid, signal.SIGSTOP)
        time.sleep(10.0)
        os.kill(decoder.pid, signal.SIGCONT)
        _drain_ages(scores, 6.0, ages)
        rss_after = psutil.Process(decoder.pid).memory_info().rss
    finally:
        _end(decoder, source)
    lines = _lines(log)
    # the ~100 decisions of the freeze were skipped (logged with their count) or, the few made
    # while catching up, logged as stale
    skipped = sum(d.get("decisions", 0) for d in lines if d.get("event") == "skipped")
    late = [i for i, d in enumerate(lines) if d.get("stale") or d.get("event") == "skipped"]
    assert skipped + sum(bool(d.get("stale")) for d in lines) >= 60
    assert len(ages) > 40 and max(ages) < 1.0 + 0.25  # nothing older than max-age went out
    fresh_after = [d for d in lines[late[-1] + 1 :] if "probs" in d and not d.get("stale")]
    assert len(fresh_after) >= 20
    assert rss_after - rss_before < 20 * 2**20  # the backlog did not grow memory
    # the skip kept the hop grid: every decision ends where an offline one on the same samples
    # does (the source has no gap)
    config = OnnxModel(small_model).contract.features
    ends = np.array([d["end_sample"] for d in lines if "probs" in d])
    assert np.all((ends - config.window_samples) % config.hop_samples == 0)


def test_cpu_starved_decoder_recovers_and_never_publishes_stale(small_model, unique_name, tmp_path):
    """The decoder at idle priority (SCHED_IDLE, else nice 19) pinned to one core with three
    busy processes on it (about 0.1 % of the core left for it; at nice 19, 0.5 %, which a
    4-channel decoder can live on) for 8 s: decisions made late are logged stale or skipped,
    none is
    published older than --max-age-s (its age as it goes out is in the log); when the hogs
    stop, decoding is fresh again."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs sched_setaffinity (Linux)")
    source = _start_source(unique_name)
    log = tmp_path / "decisions.jsonl"
    decoder, hogs = None, []
    try:
        decoder, scores = _decoder_process(small_model, unique_name, log, 0.5)
        core = sorted(os.sched_getaffinity(0))[0]
        for tid in os.listdir(f"/proc/{decoder.pid}/task"):  # every thread of the decoder
            os.sched_setaffinity(int(tid), {core})
        os.setpriority(os.PRIO_PROCESS, decoder.pid, 19)
        for tid in os.listdir(f"/proc/{decoder.pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), 19)
            try:
                os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
            except (OSError, AttributeError):
                pass  # nice 19 alone
        ages = []
        n_before = sum("probs" in d for d in _lines(log))
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
        for hog in hogs:
            os.sched_setaffinity(hog.pid, {core})
        _drain_ages(scores, 8.0, ages)
        for hog in hogs:
            hog.kill()
            hog.wait()
        hogs = []
        _drain_ages(scores, 6.0, ages)
    finally:
        for hog in hogs:
            hog.kill()
        _end(decoder, source)
    lines = _lines(log)
    decisions = [d for d in lines if "probs" in d]
    late = [d for d in lines if d.get("stale") or d.get("event") == "skipped"]
    assert late, "the starved decoder was never late: the test did not starve it"
    # nothing older than max-age was published: the decoder's own view as it published (the
    # consumer may still receive late: liblsl's sending thread in the starved process is starved)
    assert ages and all(d["age_ms"] <= 500 for d in decisions if not d.get("stale"))
    assert sum(not d.get("stale") for d in decisions[n_before:]) >= 20  # fresh again after


def _decode_whole_source(model_path, name, tmp_path, pushed):
    """Decode the stream of ``_push_stamped`` until its source ends; the decoder (closed) and
    its log's lines."""
    _outlet, source, stop = pushed
    log = tmp_path / "decisions.jsonl"
    decoder = _decoder(model_path, name, log)
    with decoder:
        source.start()
        source.join()
        time.sleep(0.3)
    stop.set()
    return decoder, _lines(log)


def test_a_stalled_source_stamping_by_push_time_is_not_a_gap(small_model, unique_name, tmp_path):
    """A source that stalls 150 ms and stamps its chunks when it pushes them (pylsl's default)
    jumps ahead, then catches up: nothing is missing, so no gap, no restart of the windows; the
    decoder holds its decisions until the timestamps have come back, then decides every hop."""
    import numpy as np
    import pylsl

    fs, stall_at = 2000.0, 2000 * 4

    def push_time(i):  # the chunk's last sample at the push, earlier ones spaced back by 1/fs
        return pylsl.local_clock() - (19 - i % 20) / fs

    def before_push(start):
        if start == stall_at:
            time.sleep(0.15)

    pushed = _push_stamped(unique_name, push_time, 8.0, before_push=before_push)
    decoder, lines = _decode_whole_source(small_model, unique_name, tmp_path, pushed)
    counters = decoder.acquisition.counters
    assert counters["source_stalls"] == 1 and counters["pending_gap_sample"] == 0
    assert counters["gaps"] == 0 and counters["missing_samples"] == 0
    assert not [d for d in lines if d.get("event") == "gap"]
    stalls = [d for d in lines if d.get("event") == "source_stall"]
    assert len(stalls) == 1 and stalls[0]["total"] == 1
    ends = np.array([d["end_sample"] for d in lines if "probs" in d])
    hop = decoder.config.hop_samples
    assert len(ends) > 40 and np.all(np.diff(ends) == hop)  # every hop, no window refill
    assert ends[0] < stall_at < ends[-1]


_JUMP_AT = 2000 * 4  # the sample from which _jumping_source's timestamps are ahead


def _jumping_source(name, jump_s, seconds, fs=2000.0):
    """A ``_push_stamped`` source at ``fs`` whose timestamps are ``jump_s`` ahead from sample
    ``_JUMP_AT`` on (the samples before it lost), for ``seconds``."""
    import pylsl

    t0 = pylsl.local_clock() + 1.0
    return _push_stamped(
        name, lambda i: t0 + i / fs + (jump_s if i >= _JUMP_AT else 0.0), seconds, fs=fs
    )


def test_samples_lost_in_a_jump_are_a_gap_once_the_timestamps_do_not_come_back(
    small_model, unique_name, tmp_path
):
    """Timestamps 200 ms ahead from one sample on (samples lost before it): after the next
    samples' verdict it is a gap at that sample, with the missing samples counted; no window
    spans it and decoding goes on after it."""
    import numpy as np

    lost_at = _JUMP_AT
    decoder, lines = _decode_whole_source(
        small_model, unique_name, tmp_path, _jumping_source(unique_name, 0.2, 9.0)
    )
    counters = decoder.acquisition.counters
    assert counters["gaps"] == 1 and counters["source_stalls"] == 0
    assert counters["missing_samples"] == 400 and counters["last_gap_sample"] == lost_at
    gaps = [d for d in lines if d.get("event") == "gap"]
    assert len(gaps) == 1 and gaps[0]["at_sample"] == lost_at
    ends = np.array([d["end_sample"] for d in lines if "probs" in d])
    window = decoder.model.contract.features.window_samples
    assert not np.any((ends > lost_at) & (ends < lost_at + window))  # none spans the gap
    assert np.sum(ends >= lost_at + window) >= 20


def test_a_jump_just_before_the_source_stops_is_judged_a_gap(small_model, unique_name, tmp_path):
    """Timestamps jump 100 ms ahead 50 ms before the source stops: no catch-up follows, so the
    pause itself settles it as a gap (the decoder is not left waiting for a verdict)."""
    decoder, _ = _decode_whole_source(
        small_model, unique_name, tmp_path, _jumping_source(unique_name, 0.1, 4.05)
    )
    counters = decoder.acquisition.counters
    assert counters["gaps"] == 1 and counters["pending_gap_sample"] == 0
    assert counters["last_gap_sample"] == _JUMP_AT and counters["source_stalls"] == 0


def _run_stamped(small_model, name, tmp_path, stamp):
    """``rtdecode run`` for 10 s on a 12 s source whose sample i is stamped ``stamp(i)``; its
    result (exit 0 checked) and decision log lines."""
    _outlet, source, stop = _push_stamped(name, stamp, 12.0)  # held: the stream lives on
    log = tmp_path / "decisions.jsonl"
    source.start()
    try:
        res = subprocess.run(
            [sys.executable, "-m", "rtdecode", "run", "--model", str(small_model), "--source",
             name, "--headless", "--log", str(log), "--duration", "10"],
            cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        stop.set()
        source.join(5)
    assert res.returncode == 0, res.stderr
    return res, _lines(log)


def test_nan_and_infinite_timestamps_are_counted_and_decoding_goes_on(
    small_model, unique_name, tmp_path
):
    """One timestamp of inf from any host publishing under the stream's name used to end
    `rtdecode run` (OverflowError): a 24/7 alarm must survive it."""
    fs = 2000.0
    t0 = pylsl.local_clock()
    # from 5 s on: the decoder process has connected by then
    bad = {10000: math.inf, 12000: math.nan, 14000: -math.inf, 14001: math.inf}

    def stamp(i):
        return bad.get(i, t0 + i / fs)

    res, lines = _run_stamped(small_model, unique_name, tmp_path, stamp)
    assert "NaN or infinite timestamps" in res.stderr
    decisions = [d for d in lines if "probs" in d]
    assert decisions[-1]["end_sample"] > 14000 - decisions[0]["end_sample"]  # past every bad one
    assert decisions[-1]["gaps"] == 0 and decisions[-1]["missing_samples"] == 0
    assert sum(d["new"] for d in lines if d.get("event") == "bad_timestamps") == 4
    assert all(math.isfinite(d["t"]) for d in decisions)


def test_a_lone_outlying_timestamp_is_counted_not_a_reset_and_a_gap(
    small_model, unique_name, tmp_path
):
    """One sample stamped 1.0 in the middle of a 20-sample chunk (a glitch in the source's
    clock) used to be a reset, then a gap of the LSL clock's size: ~10^8 samples "lost" at
    2 kHz, the windows restarted twice, and the log's timeline shifted by that much."""
    fs = 2000.0
    t0 = pylsl.local_clock()
    bad = {10010: 1.0, 12010: t0 + 3600.0}  # from 5 s on: the decoder has connected by then

    def stamp(i):
        return bad.get(i, t0 + i / fs)

    res, lines = _run_stamped(small_model, unique_name, tmp_path, stamp)
    assert "far off its neighbours' line" in res.stderr
    decisions = [d for d in lines if "probs" in d]
    assert decisions[-1]["end_sample"] > 12010 - decisions[0]["end_sample"]  # past both
    assert decisions[-1]["gaps"] == 0 and decisions[-1]["missing_samples"] == 0
    assert not [d for d in lines if d.get("event") in ("gap", "timestamp_reset")]
    assert sum(d["new"] for d in lines if d.get("event") == "bad_timestamps") == 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_log_that_cannot_be_written_never_stops_the_decoding(small_model, unique_name, tmp_path):
    """A full disk under the decision log: decisions go on being published, the status says
    why the log is not written, and the held lines reach the file when it has room again."""
    from rtdecode.outputs import log as log_module

    log = tmp_path / "decisions.jsonl"
    os.symlink("/dev/full", log)
    source = _start_source(unique_name)
    try:
        decoder = _decoder(small_model, unique_name, log)
        log_module_retry = log_module._RETRY_S
        with decoder:
            assert _wait(lambda: decoder.status().decisions >= 20, 30)
            status = decoder.status()
            assert status.log_error is not None and "No space left" in status.log_error
            assert "LOG ERROR" in status.line()
            n = status.decisions
            assert _wait(lambda: decoder.status().decisions >= n + 10, 10)  # still deciding
            os.unlink(log)  # room again
            assert _wait(lambda: decoder.status().log_error is None, 5 + log_module_retry)
        decisions = [d for d in _lines(log) if "probs" in d]
        # every decision made while the disk was full is in the file, in order
        assert len(decisions) >= n + 10
        ends = [d["end_sample"] for d in decisions]
        assert ends == sorted(ends) and len(set(ends)) == len(ends)
    finally:
        source.kill()
        source.wait()


def test_a_hop_shorter_than_the_windows_tail_decodes(make_model, unique_name, tmp_path):
    """A contract may allow a hop shorter than the tail the decoder finishes a window with (here
    2 ms against 4 ms): the decode thread's wake points must still be found (it crashed with an
    IndexError after the first decision)."""
    model = make_model("short_hop.onnx", hop_s=0.002, window_s=0.5)
    source = _start_source(unique_name)
    try:
        decoder = _decoder(model, unique_name, tmp_path / "decisions.jsonl")
        assert decoder.features.tail_input_samples > decoder.config.hop_samples
        with decoder:
            assert _wait(lambda: decoder.status().decisions >= 1000, 20), decoder.error
            assert decoder.error is None and decoder.running
    finally:
        source.kill()
        source.wait()


def test_a_model_that_gives_nan_is_survived_and_never_published(small_model, unique_name, tmp_path):
    """Every window's output NaN: the decode thread goes on, counts each in the status and
    publishes no decision (it crashed on the first before)."""
    from ..conftest import make_nan_model

    contract = OnnxModel(small_model).contract
    model = make_nan_model(tmp_path / "nan.onnx", contract, nan_above=-math.inf)
    source = _start_source(unique_name)
    try:
        log = tmp_path / "decisions.jsonl"
        decoder = _decoder(model, unique_name, log)
        with decoder:
            assert _wait(lambda: decoder.status().bad_model_outputs >= 20, 30), decoder.error
            assert decoder.error is None and decoder.running
            status = decoder.status()
        assert status.decisions == 0
        assert f"BAD MODEL OUTPUTS {status.bad_model_outputs}" in status.line()
        assert not [d for d in _lines(log) if "probs" in d]
    finally:
        source.kill()
        source.wait()


def test_a_stream_faster_than_real_time_is_recognised_and_a_pause_skips_nothing(
    small_model, unique_name, stuck_pipe
):
    """A replay at 10x brings max_age_s of samples in a tenth of it: a 0.4 s pause of the
    decode thread (its log write held) is no reason to skip decisions, and the speed is said."""
    fs, speed = 2000.0, 10.0
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(unique_name, "EEG", 4, fs, "float32", unique_name))
    decoder = _decoder(small_model, unique_name, stuck_pipe.path, max_age_s=1.0).start()
    block = np.random.default_rng(0).normal(0, 10, (200, 4)).astype(np.float32)
    try:
        for i in range(400):  # 40 s of stream in 4 s, stamped as pushed (a fast replay)
            outlet.push_chunk(block)
            if i == 250:
                stuck_pipe.fill()  # the decode thread stops at its next log line ...
            elif not 250 < i < 290:  # ... for about 0.4 s (8 s of stream)
                stuck_pipe.drain()
            time.sleep(200 / fs / speed)
        assert _wait(lambda: stuck_pipe.drain() and decoder.status().decisions >= 390, 20.0)
    finally:
        decoder.close()
    lines = [json.loads(x) for x in stuck_pipe.drain().splitlines() if x.strip()]
    assert not [d for d in lines if d.get("event") == "skipped"]
    assert [d["ratio"] > 5 for d in lines if d.get("event") == "faster_than_real_time"] == [True]
    ends = np.array([d["end_sample"] for d in lines if "probs" in d])
    assert np.all(np.diff(ends) == decoder.config.hop_samples)
