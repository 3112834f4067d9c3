"""XDF recordings whose timestamps have a gap: labels stay aligned and no window spans it.

The recording's signal carries its own truth (loud where the labels say ``loud``), so a label
placed by sample index / rate instead of by timestamp shows up as windows whose label and signal
disagree.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyxdf")

from rtdecode.config import FeatureConfig  # noqa: E402
from rtdecode.decoding.model import OnnxModel  # noqa: E402
from rtdecode.offline.datasets import Source, recording_features, window_labels  # noqa: E402
from rtdecode.offline.evaluation import decode_recording  # noqa: E402
from rtdecode.offline.labels import read_labels  # noqa: E402
from rtdecode.offline.recordings import DataError, Segment, open_recording  # noqa: E402
from rtdecode.offline.replay import _label_changes  # noqa: E402

# the XDF writer lives beside the reader tests; --import-mode=importlib does not put this
# folder on sys.path
sys.path.insert(0, str(Path(__file__).parent))
from test_recordings import write_xdf  # noqa: E402

FS = 100.0
T0 = 1000.0  # the LSL clock at the first sample
GAP_AT, GAP_S = 3000, 2.0  # the recorder lost 2 s after 30 s
LOUD = [(10.0, 20.0), (36.0, 46.0)]  # seconds from the first sample, one on each side of it
TRUTH = [
    Segment(0.0, 10.0, "quiet"),
    Segment(10.0, 10.0, "loud"),
    Segment(20.0, 16.0, "quiet"),
    Segment(36.0, 10.0, "loud"),
    Segment(46.0, 16.0, "quiet"),
]
CONFIG = FeatureConfig(fs_hz=FS, window_s=2.0, hop_s=0.5)


def _stamps(n=6000, gap_at=GAP_AT, gap_s=GAP_S, jitter_s=0.0, seed=0):
    stamps = T0 + np.arange(n) / FS
    stamps[gap_at:] += gap_s
    return stamps + np.random.default_rng(seed).uniform(-jitter_s, jitter_s, n)


def _write(path, stamps, markers=True):
    times = stamps - T0
    loud = np.zeros(times.size, bool)
    for a, b in LOUD:
        loud |= (times >= a) & (times < b)
    noise = np.random.default_rng(1).normal(0.0, 1.0, times.size)
    data = (noise * np.where(loud, 10.0, 1.0))[:, None].astype(np.float32)
    eeg = {"name": "amp", "type": "EEG", "fs": FS, "fmt": "float32", "labels": ["Cz"]}
    streams = [eeg | {"stamps": stamps, "values": data}]
    if markers:
        marks = {"name": "truth", "type": "Markers", "fs": 0, "fmt": "string"}
        onsets = [T0 + s.onset_s for s in TRUTH]
        streams.append(marks | {"stamps": onsets, "values": [s.label for s in TRUTH]})
    return write_xdf(path, streams)


def test_labels_after_a_gap_stay_aligned_and_no_window_spans_it(tmp_path):
    path = _write(tmp_path / "gap.xdf", _stamps())
    rec = open_recording(path, stream="amp")
    assert rec.discontinuities == (GAP_AT,)
    assert rec.duration_s == pytest.approx(62.0)
    # the labels of the file's marker stream are those of a CSV in seconds from the start
    csv = tmp_path / "truth.csv"
    csv.write_text(
        "onset_s,duration_s,label\n"
        + "".join(f"{s.onset_s},{s.duration_s},{s.label}\n" for s in TRUTH)
    )
    assert read_labels(csv, recording=rec) == TRUTH
    markers = read_labels(path, recording=rec)
    assert [s.label for s in markers] == [s.label for s in TRUTH]
    np.testing.assert_allclose(
        [(s.onset_s, s.end_s) for s in markers], [(s.onset_s, s.end_s) for s in TRUTH], atol=1e-9
    )

    feats = recording_features(Source(path, tuple(TRUTH), stream="amp"), CONFIG, ["quiet", "loud"])
    # no window spans the gap: the last before it ends at 30 s, the first after a full window
    # later (34 s), and the window ends are the timestamps' (32 s + ...), not sample / rate
    before, after = feats.end_s[feats.end_s < 31.0], feats.end_s[feats.end_s > 31.0]
    assert before[-1] == pytest.approx(30.0) and after[0] == pytest.approx(34.0)
    assert feats.end_s[-1] == pytest.approx(62.0)
    # every labelled window's signal agrees with its label, on both sides of the gap
    labelled = feats.y >= 0
    # the mean log band power: about +1 in loud windows, -1 in quiet ones
    loud_power = feats.X[:, : len(CONFIG.bands)].mean(axis=1) > 0.0
    assert np.array_equal(loud_power[labelled], feats.y[labelled] == 1)
    # windows inside 36-46 s: ends 38, 38.5, ..., 46
    assert np.count_nonzero(feats.y[feats.end_s > 31.0] == 1) == 17
    y_markers, _ = window_labels(feats.end_s, CONFIG.window_s, markers, ["quiet", "loud"])
    assert np.array_equal(y_markers, feats.y)


def test_decoding_restarts_at_the_gap(tmp_path, make_model):
    path = _write(tmp_path / "gap.xdf", _stamps(), markers=False)
    rec = open_recording(path)
    model = OnnxModel(make_model("m.onnx", n_channels=1, fs_hz=FS, window_s=2.0, hop_s=0.5))
    decoded = decode_recording(model, rec)
    feats = recording_features(Source(path, ()), CONFIG, ["quiet", "loud"])
    # the same windows as training's, at the timestamps' times
    np.testing.assert_allclose(decoded.end_s, feats.end_s)
    starts = decoded.end_samples - CONFIG.window_samples
    assert not np.any((starts < GAP_AT) & (decoded.end_samples > GAP_AT))
    # the first decision after the gap announces the state afresh, as live
    first_after = int(np.flatnonzero(decoded.end_samples > GAP_AT)[0])
    assert decoded.changed[first_after]


def test_replayed_truth_changes_at_the_samples_of_its_times(tmp_path):
    rec = open_recording(_write(tmp_path / "gap.xdf", _stamps(), markers=False))
    # 36 s is sample 3400 after the 2 s gap, not 3600
    assert _label_changes(TRUTH, rec) == [
        (0, "quiet"),
        (1000, "loud"),
        (2000, "quiet"),
        (3400, "loud"),
        (4400, "quiet"),
    ]


def test_a_short_gap_in_jittered_timestamps_is_still_a_gap(tmp_path):
    # 0.3 s: pyxdf's dejittering smooths over steps below max(1 s, 500 periods) by default
    stamps = _stamps(gap_s=0.3, jitter_s=0.002)
    rec = open_recording(_write(tmp_path / "short.xdf", stamps, markers=False))
    assert rec.discontinuities == (GAP_AT,)
    times = rec.times_s(0, rec.n_samples)
    assert times[GAP_AT] - times[GAP_AT - 1] == pytest.approx(0.31, abs=0.005)
    assert rec.sample_at(30.3 + 1.0) == GAP_AT + 100


def test_timestamps_that_start_over_are_refused(tmp_path):
    path = _write(tmp_path / "reset.xdf", _stamps(gap_s=-5.0), markers=False)
    with pytest.raises(DataError, match=r"reset\.xdf stream 'amp': the timestamps go back 4\.99"):
        open_recording(path)


@pytest.mark.lsl
@pytest.mark.timeout(60)
def test_a_replayed_gap_is_a_gap_in_the_stream(tmp_path, unique_name):
    """The replay pauses for the recording's gap, so a live decoder sees it as the rig sent it."""
    import threading

    import pylsl

    from rtdecode.offline.replay import replay_recording

    rec = open_recording(_write(tmp_path / "gap.xdf", _stamps(600, 300, 1.0), markers=False))
    assert rec.discontinuities == (300,)
    replay = threading.Thread(
        target=replay_recording,
        args=(rec, unique_name),
        kwargs=dict(chunk_samples=10, wait_for_consumers_s=10.0),
    )
    replay.start()
    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", unique_name, timeout=10)[0])
    stamps = []
    while len(stamps) < 600 and replay.is_alive() or inlet.samples_available():
        _, got = inlet.pull_chunk(timeout=0.0)
        stamps += got
        time.sleep(0.01)
    replay.join()
    steps = np.diff(stamps)
    assert len(stamps) == 600
    assert steps[299] == pytest.approx(1.0 + 1 / FS, abs=0.05)  # the gap, where the file has it
    assert np.delete(steps, 299).max() < 0.1
