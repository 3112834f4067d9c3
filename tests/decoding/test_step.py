"""One decode step and the status schema: what the live decoder and evaluation share."""

import json

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
    )
    back = DecoderStatus.from_json(status.to_json())
    assert back.latency_p99_ms != back.latency_p99_ms  # NaN survives
    assert back == status.__class__(**{**status.__dict__, "latency_p99_ms": back.latency_p99_ms})
    # a newer decoder's extra keys are ignored, not an error
    d = json.loads(status.to_json()) | {"some_future_field": 1}
    assert DecoderStatus.from_json(json.dumps(d)).decisions == 12


def test_the_empty_status_names_the_classes():
    empty = DecoderStatus.empty(("a", "b"))
    assert empty.decisions == 0 and empty.state is None and empty.classes == ("a", "b")
    with pytest.raises(TypeError):
        DecoderStatus.from_json('{"decisions": 1}')  # the required fields are required
