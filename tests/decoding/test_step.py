"""One decode step and the status schema: what the live decoder and evaluation share."""

import json
import logging
import math

import numpy as np
import pytest

from rtdecode.decoding.model import OnnxModel
from rtdecode.decoding.smoother import QualityGate, make_smoother
from rtdecode.decoding.status import DecoderStatus
from rtdecode.decoding.step import DecodeStep
from rtdecode.streams import BAD_SIGNAL


def test_a_step_is_the_model_then_the_gated_smoother(small_model):
    model = OnnxModel(small_model)
    hop_s = model.contract.features.hop_s
    step = DecodeStep(model, hop_s=hop_s, min_good_fraction=0.5)
    reference = QualityGate(
        make_smoother(model.contract.hysteresis, model.contract.classes, hop_s), 0.5
    )
    rng = np.random.default_rng(1)
    rows = rng.normal(0.0, 1.5, (60, model.contract.n_features)).astype(np.float32)
    good = np.where(np.arange(60) % 17 < 3, 0.25, 1.0)  # some windows with too few channels
    states = set()
    for row, g in zip(rows, good):
        probs, state, changed = step.decide(row[None, :], float(g))
        expected_probs = model.predict_proba(row[None, :])[0]
        np.testing.assert_array_equal(probs, expected_probs)
        assert (state, changed) == reference.update(expected_probs, float(g))
        assert step.state == state
        states.add(state)
    assert BAD_SIGNAL in states and len(states) >= 2
    step.reset()
    assert step.state is None


def test_a_step_takes_the_hysteresis_it_is_given(small_model):
    from rtdecode.config import StateHysteresis

    model = OnnxModel(small_model)
    h = StateHysteresis(margin=0.3, dwell_s=1.0)
    step = DecodeStep(model, hop_s=0.1, hysteresis=h, min_good_fraction=0.5)
    assert step.hysteresis == h
    assert DecodeStep(model, hop_s=0.1, min_good_fraction=0.5).hysteresis == (
        model.contract.hysteresis
    )


def test_status_round_trips_through_json():
    status = DecoderStatus(
        decisions=12,
        state="nrem",
        state_since_s=3.5,
        last_timestamp=1234.5,
        probabilities=(0.1, 0.8, 0.1),
        classes=("wake", "nrem", "rem"),
        decisions_per_s=10.0,
        latency_p50_ms=0.4,
        latency_p99_ms=float("nan"),
        samples=32000,
        gaps=1,
        missing_samples=10,
        overruns=0,
        input_rate_hz=32000.0,
        clock_offset_s=0.001,
        counters={"gaps": 1},
        stream_health="recovering",
        quality=0.75,
        bad_channels={"ch001": "flat"},
        decoder_cpu_cores=0.03,
        bad_model_outputs=3,
    )
    back = DecoderStatus.from_json(status.to_json())
    assert back.latency_p99_ms != back.latency_p99_ms  # NaN survives
    assert back == status.__class__(**{**status.__dict__, "latency_p99_ms": back.latency_p99_ms})
    # a newer decoder's extra keys are ignored, not an error
    d = json.loads(status.to_json()) | {"some_future_field": 1}
    assert DecoderStatus.from_json(json.dumps(d)).decisions == 12
    assert back.bad_model_outputs == 3 and "BAD MODEL OUTPUTS 3" in status.line()


def test_the_empty_status_names_the_classes():
    empty = DecoderStatus.empty(("a", "b"))
    assert empty.decisions == 0 and empty.state is None and empty.classes == ("a", "b")
    with pytest.raises(TypeError):
        DecoderStatus.from_json('{"decisions": 1}')  # the required fields are required


# Model outputs that are no probabilities -------------------------------------------------
@pytest.fixture
def passthrough(small_model, tmp_path):
    """A model whose output is the row's first features (as many as its last feature says)."""
    from ..conftest import make_passthrough_model

    contract = OnnxModel(small_model).contract
    return OnnxModel(make_passthrough_model(tmp_path / "passthrough.onnx", contract))


def _row(model: OnnxModel, values: list[float], width: int | None = None) -> np.ndarray:
    row = np.zeros((1, model.contract.n_features), np.float32)
    row[0, : len(values)] = values
    row[0, -1] = len(values) if width is None else width
    return row


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("values", "width", "said"),
    [
        ([NAN, 0.5, 0.5], None, "[nan, 0.5, 0.5], not all finite and in [0, 1]"),
        ([0.2, INF, 0.0], None, "inf"),
        ([0.2, 0.3, -INF], None, "-inf"),
        ([1.5, 0.0, 0.0], None, "[1.5, 0.0, 0.0]"),
        ([-0.1, 0.6, 0.5], None, "-0.1"),
        ([0.5, 0.5], None, "an output of shape (1, 2) for one window, not (1, 3)"),
        ([0.2, 0.2, 0.2, 0.2, 0.2], None, "shape (1, 5)"),
        ([0.1, 0.8, 0.1], 0, "shape (1, 0)"),
    ],
)
def test_a_bad_model_output_is_never_decided(passthrough, caplog, values, width, said):
    """Counted, warned about once (with what the model gave), and the smoother neither advances
    nor restarts: decoding goes on where it was."""
    step = DecodeStep(passthrough, hop_s=0.1, min_good_fraction=0.5)  # dwell: 2 decisions
    assert step.decide(_row(passthrough, [0.1, 0.8, 0.1])).state == "nrem"
    assert step.decide(_row(passthrough, [0.1, 0.2, 0.7])).state == "nrem"  # rem leads once
    with caplog.at_level(logging.WARNING, logger="rtdecode"):
        for _ in range(5):
            assert step.decide(_row(passthrough, values, width)) is None
    assert step.bad_outputs == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(passthrough.path) in warnings[0] and said in warnings[0]
    assert step.state == "nrem"
    result = step.decide(_row(passthrough, [0.1, 0.2, 0.7]))  # rem leads twice: it switches
    assert (result.state, result.changed) == ("rem", True)


def test_probabilities_off_the_range_by_a_rounding_are_decided(passthrough):
    step = DecodeStep(passthrough, hop_s=0.1, min_good_fraction=0.5)
    for values in ([1.000001, 0.0, 0.0], [-0.000001, 0.5, 0.5], [0.0, 0.0, 1.0]):
        assert step.decide(_row(passthrough, values)) is not None
    assert step.bad_outputs == 0


def test_offline_decoding_leaves_the_windows_of_bad_outputs_undecided(small_model, tmp_path):
    """decode_recording (the live path, offline): windows whose output is NaN are counted and
    left out; the others are decided as they would have been."""
    from rtdecode.features.streaming import extract_features
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording

    from ..conftest import make_nan_model

    contract = OnnxModel(small_model).contract
    data = np.random.default_rng(2).normal(0, 30, (8000, contract.n_channels)).astype(np.float32)
    npz = tmp_path / "rec.npz"
    np.savez(npz, data=data, fs=contract.features.fs_hz)
    ends, features = extract_features(data, contract.features)
    threshold = float(np.median(features[:, 0]))
    bad = features[:, 0] > threshold
    assert 0 < bad.sum() < bad.size
    model = OnnxModel(make_nan_model(tmp_path / "nan.onnx", contract, threshold))
    decoded = decode_recording(model, open_recording(npz, channels=None, stream=None))
    assert decoded.bad_model_outputs == bad.sum()
    np.testing.assert_array_equal(decoded.end_samples, ends[~bad])
    scores = np.exp(features[~bad, :3] - features[~bad, :3].max(axis=1, keepdims=True))
    np.testing.assert_allclose(decoded.proba, scores / scores.sum(axis=1, keepdims=True), rtol=1e-5)
    assert np.isfinite(decoded.proba).all()
