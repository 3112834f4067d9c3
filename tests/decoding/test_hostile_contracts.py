"""Contracts that would overflow, hang or crash the feature stage: each refused when the model
is loaded, with one message naming the file, the field and the value, and exit code 2 from
`rtdecode info` and `rtdecode run` alike (run before it looks for any stream). And every hop a
contract allows decodes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from rtdecode.cli.main import main
from rtdecode.common.channels import default_channel_labels
from rtdecode.decoding.model import CONTRACT_KEY, ModelContract, ModelError, OnnxModel
from rtdecode.offline.evaluation import decode_recording
from rtdecode.offline.recordings import open_recording

from ..conftest import make_small_model

N_CHANNELS = 4
FS_HZ = 2000.0


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A real exported model (4 channels at 2 kHz, 1 s window, no decimation) and its contract."""
    path = make_small_model(tmp_path_factory.mktemp("hostile") / "small.onnx")
    return path, OnnxModel(path).contract.to_dict()


def _with(base: dict, features: dict | None = None, **top) -> dict:
    """``base`` with fields of its feature config and top-level fields changed; the feature
    names follow the bands and ratios when they are well-formed, so that the change itself is
    what is refused."""
    d = json.loads(json.dumps(base))
    if features is not None:
        d["feature_config"].update(features)
    d.update(top)
    fc = d["feature_config"]
    try:
        per_channel = [b["name"] for b in fc["bands"]] + [r["name"] for r in fc["ratios"]]
        d["feature_names"] = [
            f"{ch}:{name}" for ch in default_channel_labels(N_CHANNELS) for name in per_channel
        ]
    except (TypeError, KeyError):
        pass
    return d


def _band(name, lo, hi) -> dict:
    return {"name": name, "lo_hz": lo, "hi_hz": hi}


NAN, INF = math.nan, math.inf
FEATURES = [
    ({"window_s": INF}, "window_s and hop_s must be finite numbers > 0, got window_s=inf"),
    ({"window_s": NAN}, "window_s and hop_s must be finite numbers > 0, got window_s=nan"),
    (
        {"window_s": 1e9},
        r"would need [0-9.e+]+ GiB of memory for 4 channels \(a 1000000000 s window",
    ),
    ({"window_s": -1.0}, "window_s and hop_s must be finite numbers > 0"),
    ({"hop_s": 0.0}, "window_s and hop_s must be finite numbers > 0, got window_s=1.0, hop_s=0.0"),
    ({"hop_s": INF}, "hop_s=inf"),
    ({"hop_s": 2.0}, r"hop_s \(2.0\) must not exceed window_s \(1.0\)"),
    ({"hop_s": 0.00025}, "hop_s=0.00025 s is not a whole number of samples at 2000.0 Hz"),
    # half a sample at 1 MHz: within the tolerance when it was relative to the rate
    ({"fs_hz": 1e6, "hop_s": 1.05e-5}, "hop_s=1.05e-05 s is not a whole number of samples"),
    ({"fs_hz": 1e15}, "fs_hz is 1e[+]15 Hz; rtdecode decodes streams up to 1000000 Hz"),
    ({"fs_hz": 2e6, "hop_s": 0.1}, "fs_hz is 2000000 Hz"),
    ({"fs_hz": -2000.0}, "fs_hz must be a positive number, got -2000.0"),
    ({"fs_hz": "2000"}, "fs_hz must be a number, got '2000' [(]str[)]"),
    ({"fs_hz": True}, "fs_hz must be a number, got True"),
    ({"decimation": 0}, "decimation must be the factor the model was trained with"),
    ({"decimation": 2.0}, "decimation must be a whole number, got 2.0"),
    ({"decimation": 3}, r"decimation=3 must be >= 1 and divide the hop \(200 samples\)"),
    (
        {"decimation": 2, "fir_taps_per_phase": 10**8},
        "decimation 2 with 100000000 filter taps per phase[)]; at most 4 GiB",
    ),
    ({"fir_taps_per_phase": 0}, "fir_taps_per_phase must be >= 1"),
    ({"baseline_s": INF}, "baseline_s must be a positive number, got inf"),
    ({"normalisation": "zscore"}, "normalisation must be one of"),
    ({"bands": []}, "at least one band is required"),
    ({"bands": "delta"}, "bands must be a list, got 'delta'"),
    ({"bands": [["delta", 1, 4]]}, r"bands must hold Bands, got \['delta', 1, 4\]"),
    ({"bands": [{"name": "x", "lo_hz": 1}]}, "bands entries need the keys"),
    ({"bands": [_band(3, 1, 4)], "ratios": []}, "band name must be a str, got 3 [(]int[)]"),
    ({"bands": [_band(None, 1, 4)], "ratios": []}, "band name must be a str, got None"),
    ({"bands": [_band("", 1, 4)], "ratios": []}, "band name must not be empty"),
    ({"bands": [_band("a b", 1, 4)], "ratios": []}, "band name must be an identifier"),
    ({"bands": [_band("x", 1, 4), _band("x", 4, 8)], "ratios": []}, "band names must be unique"),
    ({"bands": [_band("x", NAN, 4)], "ratios": []}, "need 0 <= lo_hz < hi_hz, both finite"),
    (
        {"bands": [_band("x", 1, INF)], "ratios": []},
        "need 0 <= lo_hz < hi_hz, both finite, got 1..inf",
    ),
    ({"bands": [_band("x", 8, 4)], "ratios": []}, "got 8..4 Hz"),
    ({"bands": [_band("x", -1, 4)], "ratios": []}, "need 0 <= lo_hz"),
    ({"bands": [_band("x", "1", 4)], "ratios": []}, "band 'x' lo_hz must be a number"),
    (
        {"bands": [_band("x", 1.1, 1.4)], "ratios": []},
        r"band 'x' \(1.1-1.4 Hz\) holds no FFT bin: a 1 s window at 2000 Hz has a bin every 1 Hz",
    ),
    (
        {"bands": [_band("x", 1, 4), _band("y", 900, 1100)], "ratios": []},
        r"band 'y' \(900-1100 Hz\) reaches above the analysis Nyquist frequency, 1000 Hz",
    ),
    ({"bands": [_band("x", 1, 4), _band("y", 1200, 1300)], "ratios": []}, "band 'y'.*Nyquist"),
    (
        {"ratios": [{"name": "r", "numerator": 1, "denominator": "delta"}]},
        "numerator must be a str",
    ),
    (
        {"ratios": [{"name": "r", "numerator": "delta", "denominator": "nope"}]},
        "unknown band 'nope'",
    ),
    ({"ratios": [{"name": "delta", "numerator": "theta", "denominator": "delta"}]}, "ratio names"),
    (
        {"ratios": [{"name": "", "numerator": "theta", "denominator": "delta"}]},
        "ratio name must not",
    ),
]
TOP = [
    ({"classes": []}, "classes must be at least 2 unique non-empty names"),
    ({"classes": ["wake", "wake", "rem"]}, r"got \['wake', 'wake', 'rem'\]"),
    ({"classes": [1, 2, 3]}, "classes must contain only str, got 1"),
    ({"classes": ["", "nrem", "rem"]}, "at least 2 unique non-empty names"),
    ({"classes": "wake"}, "classes must be a tuple or list of str"),
    ({"n_channels": 4.0}, "n_channels must be an int"),
    ({"feature_config": []}, "a feature config must be a JSON object, got list"),
    ({"hysteresis": {"kind": "state", "margin": 0.1, "dwell_s": INF}}, "dwell_s must be finite"),
    ({"hysteresis": {"kind": "state", "margin": NAN, "dwell_s": 1.0}}, "margin must be in"),
    ({"hysteresis": {"kind": "state", "margin": 0.1, "dwell_s": NAN}}, "dwell_s must be finite"),
]
CASES = [pytest.param(_fc, {}, m, id=f"{_fc}") for _fc, m in FEATURES] + [
    pytest.param(None, top, m, id=f"{top}") for top, m in TOP
]


@pytest.mark.parametrize(("feature_config", "top", "message"), CASES)
def test_a_hostile_contract_is_refused_by_its_check(small, feature_config, top, message):
    with pytest.raises(ValueError, match=message):
        ModelContract.from_dict(_with(small[1], feature_config, **top))


def _write(src: Path, dst: Path, contract: dict) -> Path:
    """``src`` (a real ONNX model) with ``contract`` as its rtdecode contract."""
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == CONTRACT_KEY:
            prop.value = json.dumps(contract)  # NaN and Infinity as Python's json writes them
    onnx.save(model, str(dst))
    return dst


@pytest.mark.parametrize(("feature_config", "top", "message"), CASES)
def test_info_and_run_refuse_it_with_exit_2_and_one_message(
    small, tmp_path, capsys, monkeypatch, feature_config, top, message
):
    bad = _write(small[0], tmp_path / "hostile.onnx", _with(small[1], feature_config, **top))
    with pytest.raises(ModelError, match=message):
        OnnxModel(bad)

    def no_stream(*args, **kwargs):
        raise AssertionError("run looked for a stream with a model it cannot use")

    monkeypatch.setattr("rtdecode.acquisition.inlet.resolve_stream", no_stream)
    messages = []
    for argv in (["info", str(bad)], ["run", "--model", str(bad), "--source", "nowhere"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and "\n" not in err
        assert f"model {bad} has an invalid rtdecode contract: " in err
        messages.append(err.split(": error: ", 1)[1])
    assert messages[0] == messages[1]


def test_the_models_that_training_writes_pass(small):
    """What the checks refuse is never what `rtdecode train` writes: the fixture's contract
    round-trips, and so does one at the largest rate, decimated."""
    assert ModelContract.from_dict(small[1]).to_dict() == small[1]
    fast = _with(small[1], {"fs_hz": 1e6, "decimation": 500, "hop_s": 0.1})
    assert ModelContract.from_dict(fast).features.analysis_fs_hz == 2000.0


# Hops -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hop_s", "window_s"),
    [
        (0.0005, 1.0),  # one sample: shorter than the window's 4 ms tail
        (0.0015, 1.0),  # three samples, not a divisor of the window
        (0.3, 1.0),  # no common bin of window and hop the channel checks could count runs in
        (1.0, 1.0),  # the window itself: windows side by side
        (0.5, 0.5),
    ],
)
def test_every_hop_the_contract_allows_decodes(tmp_path, hop_s, window_s):
    path = make_small_model(tmp_path / "m.onnx", hop_s=hop_s, window_s=window_s)
    model = OnnxModel(path)
    hop = model.contract.features.hop_samples
    n = 4000
    rng = np.random.default_rng(0)
    npz = tmp_path / "rec.npz"
    np.savez(npz, data=rng.normal(0, 50, (n, N_CHANNELS)).astype(np.float32), fs=FS_HZ)
    decoded = decode_recording(model, open_recording(npz, channels=None, stream=None))
    window = model.contract.features.window_samples
    expected = np.arange(-(-window // hop) * hop, n + 1, hop)
    np.testing.assert_array_equal(decoded.end_samples, expected)
    assert np.isfinite(decoded.proba).all()


@pytest.mark.parametrize("fs_hz", [4000.0, 6000.0])
def test_a_hop_at_a_multiple_of_the_analysis_rate_is_whole_samples_there(small, fs_hz):
    """A stream at another rate: the model's hop is a whole number of analysis samples, so of
    the stream's samples too; another rate is refused (stream mismatch, exit 2)."""
    model = OnnxModel(small[0])
    config = model.stream_features(fs_hz)
    assert config.hop_samples == round(0.1 * fs_hz)
    assert config.analysis_fs_hz == FS_HZ
    with pytest.raises(ModelError, match="not a whole multiple of the model's analysis rate"):
        model.stream_features(3000.0)
