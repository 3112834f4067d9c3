"""Decision outputs over real LSL streams on loopback, and the JSON-lines decision log."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pylsl
import pytest

from rtdecode.outputs.decisions import Decision, DecisionOutputs

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(60)]

CLASSES = ("wake", "nrem", "rem")
HOP = 0.1
RESOLVE_S = 10.0


def _source_id() -> str:
    # Unique per process and test so parallel runs on one host never resolve each other.
    return f"test-outputs-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _decisions(t0: float) -> list[Decision]:
    probs = [
        [0.8, 0.15, 0.05],
        [0.7, 0.2, 0.1],
        [0.1, 0.85, 0.05],
        [0.2, 0.7, 0.1],
        [0.05, 0.15, 0.8],
    ]
    states = ["wake", "wake", "nrem", "nrem", "rem"]
    changed = [True, False, True, False, True]
    return [
        Decision(
            end_sample=1000 * (i + 1),
            # Exactly one hop apart: the outlet must not replace these with deduced timestamps.
            timestamp=t0 + i * HOP,
            probabilities=np.array(p, dtype=np.float32),
            state=s,
            state_changed=c,
            counters={"lost_samples": 0, "gaps": i // 3, "latency_ms": 1.5 + i},
            quality=0.75 if i == 3 else 1.0,
            bad_channels={"Fz": "flat"} if i == 3 else {},
        )
        for i, (p, s, c) in enumerate(zip(probs, states, changed))
    ]


def _inlet(source_id: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", source_id, timeout=RESOLVE_S)
    assert len(found) == 1, f"expected one stream with source_id {source_id!r}, got {len(found)}"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    inlet.open_stream(timeout=RESOLVE_S)
    return inlet


@pytest.fixture
def source_id() -> str:
    return _source_id()


@pytest.fixture
def outputs(source_id: str, tmp_path: Path) -> Iterator[DecisionOutputs]:
    with DecisionOutputs(
        CLASSES,
        input_source_id=source_id,
        input_name="test-eeg",
        hop_s=HOP,
        log_path=tmp_path / "decisions.jsonl",
        model_name="sleep-v1",
    ) as out:
        yield out


def test_stream_infos(outputs: DecisionOutputs, source_id: str) -> None:
    scores, state = outputs.scores_info, outputs.state_info
    assert scores.name() == "rtdecode-scores"
    assert scores.type() == "Scores"
    assert scores.channel_count() == 4  # the classes, then the quality channel
    assert scores.channel_format() == pylsl.cf_float32
    assert scores.nominal_srate() == pytest.approx(1.0 / HOP)
    assert scores.source_id() == f"rtdecode-scores:{source_id}"
    assert scores.get_channel_labels() == [*CLASSES, "quality"]
    assert state.name() == "rtdecode-state"
    assert state.type() == "Markers"
    assert state.channel_count() == 1
    assert state.channel_format() == pylsl.cf_string
    assert state.nominal_srate() == pylsl.IRREGULAR_RATE
    assert state.source_id() == f"rtdecode-state:{source_id}"


def test_publish_over_lsl(outputs: DecisionOutputs, source_id: str) -> None:
    scores_inlet = _inlet(f"rtdecode-scores:{source_id}")
    state_inlet = _inlet(f"rtdecode-state:{source_id}")
    try:
        assert outputs.wait_for_consumers(RESOLVE_S)

        # The description (only complete from the inlet, not the resolver) carries the labels
        # and where the decisions come from.
        full = scores_inlet.info(timeout=RESOLVE_S)
        assert full.get_channel_labels() == [*CLASSES, "quality"]
        assert full.desc().child_value("input_name") == "test-eeg"
        assert full.desc().child_value("input_source_id") == source_id
        assert full.desc().child_value("model") == "sleep-v1"
        state_full = state_inlet.info(timeout=RESOLVE_S)
        assert state_full.desc().child_value("model") == "sleep-v1"

        decisions = _decisions(pylsl.local_clock())
        for d in decisions:
            outputs.publish(d)

        for d in decisions:
            sample, ts = scores_inlet.pull_sample(timeout=RESOLVE_S)
            assert sample is not None, "score sample not received"
            np.testing.assert_array_equal(np.array(sample[:-1], dtype=np.float32), d.probabilities)
            assert sample[-1] == d.quality
            assert ts == d.timestamp

        expected = [(d.state, d.timestamp) for d in decisions if d.state_changed]
        got = []
        for _ in expected:
            marker, ts = state_inlet.pull_sample(timeout=RESOLVE_S)
            assert marker is not None, "state marker not received"
            got.append((marker[0], ts))
        assert got == expected
        # Nothing beyond the changes (and no extra scores) was sent.
        assert state_inlet.pull_sample(timeout=0.2) == (None, None)
        assert scores_inlet.pull_sample(timeout=0.0) == (None, None)
    finally:
        # Inlets go first so closing the outlets does not make them try to reconnect.
        del scores_inlet, state_inlet


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_log_lines(outputs: DecisionOutputs) -> None:
    decisions = _decisions(1000.0)
    outputs.log_event("start", input="test-eeg", classes=list(CLASSES))
    for d in decisions:
        outputs.publish(d)
    # Flushed per line: readable before close.
    assert outputs.log_path is not None
    lines = _read_jsonl(outputs.log_path)
    assert len(lines) == 1 + len(decisions)
    start, rows = lines[0], lines[1:]
    assert start["event"] == "start"
    assert start["classes"] == list(CLASSES)
    assert math.isfinite(start["t"]) and math.isfinite(start["unix_time"])
    for d, row in zip(decisions, rows):
        assert row["t"] == d.timestamp
        assert row["end_sample"] == d.end_sample
        assert row["state"] == d.state
        assert row["changed"] is d.state_changed
        assert list(row["probs"]) == list(CLASSES)
        for c, p in zip(CLASSES, d.probabilities):
            assert row["probs"][c] == round(float(p), 6)
        for k, v in d.counters.items():
            assert row[k] == v
        assert row["quality"] == d.quality
        assert row.get("bad_channels", {}) == d.bad_channels


def test_log_appends_across_restarts(source_id: str, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    kwargs = dict(input_source_id=source_id, input_name="test-eeg", hop_s=HOP, log_path=path)
    decisions = _decisions(1000.0)
    with DecisionOutputs(CLASSES, **kwargs) as out:
        for d in decisions[:3]:
            out.publish(d)
    assert len(_read_jsonl(path)) == 3
    with DecisionOutputs(CLASSES, **kwargs) as out:
        out.log_event("start")
        for d in decisions[3:]:
            out.publish(d)
    lines = _read_jsonl(path)
    assert [ln.get("end_sample") for ln in lines] == [1000, 2000, 3000, None, 4000, 5000]
    assert lines[3]["event"] == "start"


def test_log_non_finite_counters_are_null(outputs: DecisionOutputs) -> None:
    d = _decisions(1000.0)[0]
    outputs.publish(
        Decision(
            d.end_sample,
            d.timestamp,
            d.probabilities,
            d.state,
            True,
            {"latency_ms": math.nan, "n": np.int64(3)},
        )
    )
    assert outputs.log_path is not None
    # json.loads accepts NaN; the strict check is that the text has none.
    text = outputs.log_path.read_text(encoding="utf-8")
    assert "NaN" not in text
    (row,) = _read_jsonl(outputs.log_path)
    assert row["latency_ms"] is None
    assert row["n"] == 3


def test_no_log(source_id: str) -> None:
    with DecisionOutputs(CLASSES, input_source_id=source_id, input_name="x", hop_s=HOP) as out:
        assert out.log_path is None
        out.publish(_decisions(1000.0)[0])
        out.log_event("start")  # no file: nothing to do


def test_missing_log_directory(source_id: str, tmp_path: Path) -> None:
    path = tmp_path / "missing" / "decisions.jsonl"
    with pytest.raises(FileNotFoundError, match="missing"):
        DecisionOutputs(
            CLASSES, input_source_id=source_id, input_name="x", hop_s=HOP, log_path=path
        )
    # The failed construction advertised no stream.
    assert pylsl.resolve_byprop("source_id", f"rtdecode-scores:{source_id}", timeout=0.2) == []


def test_close_is_idempotent(outputs: DecisionOutputs) -> None:
    outputs.close()
    outputs.close()
    assert outputs.closed
    with pytest.raises(RuntimeError, match="closed"):
        outputs.publish(_decisions(1000.0)[0])
    with pytest.raises(RuntimeError, match="closed"):
        outputs.log_event("stop")


def test_publish_rejects_mismatched_decision(outputs: DecisionOutputs) -> None:
    d = _decisions(1000.0)[0]
    with pytest.raises(ValueError, match="shape"):
        outputs.publish(Decision(1, 1.0, np.zeros(2, np.float32), "wake", True))
    with pytest.raises(ValueError, match="'sleep' is not a class"):
        outputs.publish(Decision(1, 1.0, d.probabilities, "sleep", True))
    assert outputs.log_path is not None
    assert outputs.log_path.read_text(encoding="utf-8") == ""


def test_decision_validation() -> None:
    p = np.zeros(3, np.float32)
    assert Decision(0, 1.0, [0.5, 0.25, 0.25], "wake", True).probabilities.dtype == np.float32
    with pytest.raises(ValueError, match="end_sample"):
        Decision(-1, 1.0, p, "wake", True)
    with pytest.raises(TypeError, match="end_sample"):
        Decision(1.5, 1.0, p, "wake", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timestamp"):
        Decision(0, math.nan, p, "wake", True)
    with pytest.raises(ValueError, match="1-D"):
        Decision(0, 1.0, np.zeros((1, 3), np.float32), "wake", True)
    with pytest.raises(ValueError, match="reserved keys.*'state'"):
        Decision(0, 1.0, p, "wake", True, {"state": 1})


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"hop_s": 0.0}, ValueError, "hop_s"),
        ({"hop_s": "0.1"}, TypeError, "hop_s"),
        ({"input_source_id": None}, TypeError, "input_source_id"),
        ({"log_path": 3}, TypeError, "log_path"),
    ],
)
def test_constructor_validation(kwargs: dict, exc: type[Exception], match: str) -> None:
    args = dict(input_source_id=_source_id(), input_name="x", hop_s=HOP) | kwargs
    with pytest.raises(exc, match=match):
        DecisionOutputs(CLASSES, **args)


def test_stale_decisions_are_logged_and_their_state_change_announced_later(
    outputs: DecisionOutputs, source_id: str
) -> None:
    """A stale decision goes to the log only; if it changed the state, the next fresh decision
    carries the state marker, so a consumer never stays on a state the decoder has left."""
    scores_inlet = _inlet(f"rtdecode-scores:{source_id}")
    state_inlet = _inlet(f"rtdecode-state:{source_id}")
    try:
        assert outputs.wait_for_consumers(RESOLVE_S)
        d = _decisions(pylsl.local_clock())
        outputs.publish(d[0])  # wake (fresh)
        outputs.publish(d[1])  # wake (fresh, unchanged)
        outputs.publish(d[2], stale=True)  # nrem: changed but too old to send
        outputs.publish(d[3])  # nrem (fresh, unchanged): announces nrem
        outputs.publish(d[4], stale=True)  # rem: stale
        got_scores = []
        while (s := scores_inlet.pull_sample(timeout=1.0))[0] is not None:
            got_scores.append(s[1])
        assert got_scores == [d[0].timestamp, d[1].timestamp, d[3].timestamp]
        markers = []
        while (m := state_inlet.pull_sample(timeout=1.0))[0] is not None:
            markers.append((m[0][0], m[1]))
        assert markers == [("wake", d[0].timestamp), ("nrem", d[3].timestamp)]
    finally:
        del scores_inlet, state_inlet
    lines = _read_jsonl(outputs.log_path)
    assert [line["end_sample"] for line in lines] == [x.end_sample for x in d]
    assert [line.get("stale", False) for line in lines] == [False, False, True, False, True]


def test_state_outlet_timestamps_never_go_back(outputs: DecisionOutputs, source_id: str) -> None:
    """``no_signal`` is stamped by the local clock, decisions by their window's last sample: a
    source clock ahead of ours, or a state re-announced from a window older than the marker,
    would put a marker before the one already sent. Each is stamped no earlier than the last
    push on its outlet."""
    scores_inlet = _inlet(f"rtdecode-scores:{source_id}")
    state_inlet = _inlet(f"rtdecode-state:{source_id}")
    try:
        assert outputs.wait_for_consumers(RESOLVE_S)
        t0 = pylsl.local_clock()
        d = _decisions(t0 + 10.0)  # a source clock 10 s ahead: decisions at t0 + 10 s ...
        outputs.publish(d[0])  # wake at t0 + 10
        outputs.publish_marker("no_signal", t0)  # the stall, by the local clock: 10 s earlier
        outputs.publish_marker("no_signal", t0 + 12.0)  # a later marker keeps its time
        # the source came back: the state is re-announced from a window stamped t0 + 10.2,
        # before the marker, and the scores of a decision stamped back go no earlier either
        back = Decision(1, t0 + 10.05, d[1].probabilities, "wake", state_changed=False)
        outputs.publish(d[2])  # nrem at t0 + 10.2
        outputs.publish(back)
        outputs.publish(d[3])
        markers = []
        while (m := state_inlet.pull_sample(timeout=1.0))[0] is not None:
            markers.append((m[0][0], m[1]))
        scores = []
        while (s := scores_inlet.pull_sample(timeout=1.0))[0] is not None:
            scores.append(s[1])
    finally:
        del scores_inlet, state_inlet
    assert markers == [
        ("wake", d[0].timestamp),
        ("no_signal", d[0].timestamp),
        ("no_signal", t0 + 12.0),
        ("nrem", t0 + 12.0),
    ]
    assert scores == [d[0].timestamp, d[2].timestamp, d[2].timestamp, d[3].timestamp]
    # the log says what was sent
    lines = _read_jsonl(outputs.log_path)
    events = [(x["event"], x["t"]) for x in lines if "event" in x]
    assert events == [("no_signal", d[0].timestamp), ("no_signal", t0 + 12.0)]
    assert [x["t"] for x in lines if "event" not in x] == scores
    with pytest.raises(ValueError, match="timestamp must be finite"):
        outputs.publish_marker("no_signal", math.nan)
