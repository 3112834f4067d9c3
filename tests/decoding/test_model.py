"""Tests of rtdecode.decoding.model: the contract, loading real exported ONNX files, and their failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.config import EventHysteresis, FeatureConfig, StateHysteresis
from rtdecode.decoding.model import (
    CONTRACT_KEY,
    ModelContract,
    ModelError,
    OnnxModel,
    default_channel_labels,
    describe,
)
from rtdecode.training.boosting import XGBParams, booster_predict_proba, export_onnx, fit_xgboost

N_CHANNELS = 2
FS_HZ = 1000.0
TINY = XGBParams(n_estimators=15, max_depth=3, early_stopping_rounds=0, seed=0)


def make_features(n_rows: int, n_classes: int, n_features: int, seed: int):
    """Gaussian clusters in time blocks of 10 rows: class k shifts the first features by k."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n_rows) // 10) % n_classes
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    X[:, :4] += 1.5 * y[:, None]
    return X, y


def make_contract(task: str, classes: tuple[str, ...], labels=None, training=None) -> ModelContract:
    features = FeatureConfig(fs_hz=FS_HZ)
    names = tuple(features.feature_names(labels or default_channel_labels(N_CHANNELS)))
    hysteresis = EventHysteresis(event_class=classes[-1]) if task == "event" else StateHysteresis()
    return ModelContract(
        task=task,
        classes=classes,
        n_channels=N_CHANNELS,
        channel_labels=labels,
        features=features,
        feature_names=names,
        hysteresis=hysteresis,
        training=training if training is not None else {"seed": 0},
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Real exported models: {name: (path, booster, contract, X)} for a 3- and a 2-class task."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    specs = {
        "sleep": ("state", ("wake", "nrem", "rem"), ("EEG1", "EEG2")),
        "seizure": ("event", ("background", "seizure"), None),
    }
    for i, (name, (task, classes, labels)) in enumerate(specs.items()):
        training = {
            "seed": 0,
            "n_rows": 300,
            "cv": {
                "n_folds": 5,
                "gap_rows": 19,
                "metrics": {
                    "accuracy": np.float64(0.95),
                    "kappa": 0.9,
                    "per_class": {
                        c: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 100}
                        for c in classes
                    },
                },
            },
        }
        contract = make_contract(task, classes, labels, training)
        X, y = make_features(300, len(classes), contract.n_features, seed=i)
        booster = fit_xgboost(X, y, None, None, len(classes), TINY)
        path = export_onnx(booster, contract, folder / f"{name}.onnx", X)
        out[name] = (path, booster, contract, X)
    return out


# Contract ----------------------------------------------------------------------------------
def test_default_channel_labels():
    assert default_channel_labels(3) == ("ch000", "ch001", "ch002")
    assert default_channel_labels(1200)[-1] == "ch1199"
    with pytest.raises(ValueError, match="n_channels must be >= 1, got 0"):
        default_channel_labels(0)
    with pytest.raises(TypeError, match="n_channels must be an int"):
        default_channel_labels(2.0)


@pytest.mark.parametrize("labels", [None, ("EEG1", "EEG2")])
def test_contract_round_trip(labels):
    contract = make_contract("state", ("wake", "nrem", "rem"), labels, {"cv": {"accuracy": 0.9}})
    d = json.loads(json.dumps(contract.to_dict()))
    assert d["format_version"] == 1
    assert ModelContract.from_dict(d) == contract
    again = ModelContract.from_json(contract.to_json())
    assert again == contract
    assert again.training == {"cv": {"accuracy": 0.9}}
    assert again.labels == (labels or ("ch000", "ch001"))
    assert isinstance(again.classes, tuple) and isinstance(again.feature_names, tuple)
    hash(again)


def test_contract_json_converts_numpy_in_training():
    contract = make_contract(
        "state", ("a", "b"), training={"acc": np.float32(0.5), "cm": np.eye(2, dtype=int)}
    )
    assert ModelContract.from_json(contract.to_json()).training == {
        "acc": 0.5,
        "cm": [[1, 0], [0, 1]],
    }


def _dict(**changes):
    d = make_contract("event", ("background", "seizure")).to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "regression"}, "task must be one of"),
        ({"classes": ["only"]}, "at least 2 unique"),
        ({"classes": ["a", "a"]}, "at least 2 unique"),
        ({"n_channels": 3}, "feature_names has 22 entries but 3 channels x 11"),
        ({"feature_names": ["x"] * 22}, "entry 0 is 'x', expected 'ch000:delta'"),
        ({"channel_labels": ["A"]}, "channel_labels must be 2 unique names"),
        ({"format_version": 2}, "format_version is 2"),
        ({"extra": 1}, r"unknown \['extra'\]"),
        ({"hysteresis": StateHysteresis().to_dict()}, "task 'event' needs an EventHysteresis"),
        ({"hysteresis": EventHysteresis("rem").to_dict()}, "event_class 'rem' is not one of"),
        (
            {"feature_config": {**FeatureConfig(fs_hz=FS_HZ).to_dict(), "fs_hz": -1.0}},
            "'feature_config' is invalid: fs_hz must be",
        ),
        ({"training": []}, "training must be a dict"),
    ],
)
def test_contract_from_dict_rejects(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelContract.from_dict(_dict(**changes))


def test_contract_missing_key():
    d = _dict()
    del d["feature_names"]
    with pytest.raises(ValueError, match=r"missing \['feature_names'\]"):
        ModelContract.from_dict(d)


# Loading and inference ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sleep", "seizure"])
def test_onnx_matches_xgboost(exported, name):
    path, booster, contract, _ = exported[name]
    model = OnnxModel(path)
    X, _ = make_features(200, contract.n_classes, contract.n_features, seed=99)
    X[::7, 3] = np.nan  # missing values must take the same branch in both
    got = model.predict_proba(X)
    want = booster_predict_proba(booster, X)
    assert got.dtype == np.float32
    assert got.shape == (200, contract.n_classes)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["sleep", "seizure"])
def test_loaded_contract_equals_exported(exported, name):
    path, _, contract, _ = exported[name]
    model = OnnxModel(path)
    assert model.contract == contract
    assert model.contract.training["cv"]["metrics"]["accuracy"] == 0.95
    assert model.path == path
    assert str(path) in repr(model)


def test_predict_proba_shapes(exported):
    path, _, contract, X = exported["sleep"]
    model = OnnxModel(path, intra_op_threads=2)
    batch = model.predict_proba(X[:50])
    assert batch.shape == (50, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-5)
    single = np.stack([model.predict_proba(row)[0] for row in X[:50]])
    np.testing.assert_array_equal(single, batch)
    # float64 and non-contiguous input are converted, not rejected
    np.testing.assert_array_equal(model.predict_proba(X[:50].astype(np.float64)), batch)
    np.testing.assert_array_equal(model.predict_proba(X[:100:2]), model.predict_proba(X[:100][::2]))
    assert model.predict_proba(X[0]).shape == (1, 3)


def test_predict_proba_wrong_width(exported):
    model = OnnxModel(exported["sleep"][0])
    with pytest.raises(ValueError, match=r"n_features=22, got shape \(3, 21\)"):
        model.predict_proba(np.zeros((3, 21), np.float32))


def test_constructor_argument_types(exported):
    with pytest.raises(TypeError, match="path must be a str or Path"):
        OnnxModel(3)
    with pytest.raises(ValueError, match="intra_op_threads must be >= 1, got 0"):
        OnnxModel(exported["sleep"][0], intra_op_threads=0)


def test_runtime_module_imports_no_training_dependencies():
    code = (
        "import sys, rtdecode.decoding.model\n"
        "bad = sorted({'onnx', 'xgboost', 'onnxmltools', 'skl2onnx'} & set(sys.modules))\n"
        "print(','.join(bad))\n"
    )
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=PACKAGE_PARENT,  # not the checkout: `-c` puts the working directory first
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == ""


def _telemetry_files_after(code: str, home: Path, model: Path) -> list[Path]:
    """Run ``code`` (with ``model`` as MODEL) in a fresh interpreter whose home is ``home``
    and no ORT_DISABLE_TELEMETRY set; the onnxruntime telemetry files it left there. (Nor CI:
    onnxruntime records nothing when CI is set, which would hide a failure on the CI machine.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "CI")}
    env.update(HOME=str(home), PYTHONPATH=PACKAGE_PARENT)
    home.mkdir()
    subprocess.run(
        [sys.executable, "-c", f"MODEL = {str(model)!r}\n" + code],
        env=env,
        cwd=PACKAGE_PARENT,
        timeout=60,
        check=True,
        capture_output=True,
    )
    return sorted((home / ".cache").rglob("onnxruntime*")) if (home / ".cache").exists() else []


def test_rtdecode_leaves_onnxruntime_telemetry_off(exported, tmp_path):
    """onnxruntime 1.32 records usage events in ~/.cache and sends them to Microsoft from the
    decoding process; rtdecode turns that off before onnxruntime is imported."""
    model = exported["sleep"][0]
    plain = (
        "import onnxruntime as ort\n"
        "ort.InferenceSession(MODEL, providers=['CPUExecutionProvider'])\n"
    )
    if not _telemetry_files_after(plain, tmp_path / "plain", model):
        pytest.skip("this onnxruntime records no telemetry here: nothing to turn off")
    ours = (
        "import numpy as np\n"
        "from rtdecode.decoding.model import OnnxModel\n"
        "m = OnnxModel(MODEL)\n"
        "m.predict_proba(np.zeros((1, m.contract.n_features), np.float32))\n"
    )
    assert _telemetry_files_after(ours, tmp_path / "ours", model) == []


# Unusable files ----------------------------------------------------------------------------
def _load_error(path) -> str:
    with pytest.raises(ModelError) as info:
        OnnxModel(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_missing_file(tmp_path):
    assert "does not exist" in _load_error(tmp_path / "nope.onnx")


def test_directory(tmp_path):
    assert "is not a file" in _load_error(tmp_path)


def test_truncated_file(exported, tmp_path):
    data = exported["sleep"][0].read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    assert "not a valid ONNX model" in _load_error(bad)


def test_random_bytes(tmp_path):
    bad = tmp_path / "random.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a valid ONNX model" in _load_error(bad)


def _rewrite(src: Path, dst: Path, contract_text: str | None, *, drop_others: bool = False) -> Path:
    model = onnx.load(str(src))
    keep = (
        []
        if drop_others
        else [(p.key, p.value) for p in model.metadata_props if p.key != CONTRACT_KEY]
    )
    del model.metadata_props[:]
    for key, value in keep:
        model.metadata_props.add(key=key, value=value)
    if contract_text is not None:
        model.metadata_props.add(key=CONTRACT_KEY, value=contract_text)
    onnx.save(model, str(dst))
    return dst


def test_no_contract(exported, tmp_path):
    bad = _rewrite(exported["sleep"][0], tmp_path / "foreign.onnx", None, drop_others=True)
    message = _load_error(bad)
    assert "was not exported by rtdecode" in message
    assert "rtdecode train" in message


def test_contract_not_json(exported, tmp_path):
    bad = _rewrite(exported["sleep"][0], tmp_path / "badjson.onnx", "{not json")
    assert "not valid JSON" in _load_error(bad)


def test_contract_with_wrong_feature_count(exported, tmp_path):
    d = exported["sleep"][2].to_dict()
    d["feature_names"] = d["feature_names"][:-1]
    bad = _rewrite(exported["sleep"][0], tmp_path / "count.onnx", json.dumps(d))
    message = _load_error(bad)
    assert "invalid rtdecode contract" in message
    assert "feature_names has 21 entries" in message


def test_contract_disagrees_with_model_input(exported, tmp_path):
    # A valid contract for 3 channels (33 features) on a model that takes 22.
    c = exported["sleep"][2]
    labels = ("EEG1", "EEG2", "EEG3")
    wide = replace(
        c,
        n_channels=3,
        channel_labels=labels,
        feature_names=tuple(c.features.feature_names(labels)),
    )
    bad = _rewrite(exported["sleep"][0], tmp_path / "width.onnx", wide.to_json())
    message = _load_error(bad)
    assert "contract lists 33 features" in message
    assert "[N, 33]" in message


def test_contract_disagrees_with_model_classes(exported, tmp_path):
    c = exported["sleep"][2]
    two = replace(c, classes=("wake", "sleep"))
    bad = _rewrite(exported["sleep"][0], tmp_path / "classes.onnx", two.to_json())
    assert "probability output with 2 columns" in _load_error(bad)


# Stream checks and description -------------------------------------------------------------
def test_check_stream(exported):
    path = exported["sleep"][0]
    model = OnnxModel(path)
    model.check_stream(n_channels=2, fs_hz=1000.0, stream_name="rig")
    model.check_stream(n_channels=2, fs_hz=1000.0 * (1 + 1e-9), stream_name="rig")
    # a rig at twice the rate decimates by 2 more to the model's analysis rate
    model.check_stream(n_channels=2, fs_hz=2000.0, stream_name="rig")
    assert model.stream_features(2000.0).analysis_fs_hz == model.contract.features.analysis_fs_hz
    with pytest.raises(
        ModelError,
        match=r"cannot decode a 1500 Hz stream: 1500 Hz is not a whole "
        r"multiple of the model's analysis rate 1000 Hz",
    ):
        model.stream_features(1500.0)
    for n, fs in [(3, 1000.0), (2, 999.0), (2, 1000.01)]:
        with pytest.raises(ModelError) as info:
            model.check_stream(n_channels=n, fs_hz=fs, stream_name="X")
        message = str(info.value)
        assert f"model {path} expects 2 channels at 1000 Hz" in message
        assert f"stream 'X' has {n} channels at {fs:g} Hz" in message
        assert "rtdecode train" in message and "select the matching stream" in message


def test_describe(exported):
    path, _, contract, _ = exported["sleep"]
    text = describe(contract, path)
    assert str(path) in text
    for needle in [
        "state",
        "wake, nrem, rem",
        "2 at 1000 Hz",
        "EEG1, EEG2",
        "hop 0.1 s",
        "delta 1-4 Hz",
        "fast_ripple 250-500 Hz",
        "theta_delta = theta/delta",
        "22 (11 per channel)",
        "EEG1:delta ... EEG2:gamma_delta",
        "margin",
        "accuracy 0.950",
        "kappa 0.900",
        "gap 19 rows",
        "seed: 0",
    ]:
        assert needle in text, needle
    event = describe(exported["seizure"][2])
    assert "event 'seizure'" in event and "ch000" in event


def test_describe_says_how_the_model_was_validated_in_words():
    training = {
        "validation": "5-fold, grouped by label group (148 groups)",
        "cv": {"n_folds": 5, "gap_rows": 3, "metrics": {"accuracy": 0.98, "kappa": 0.96}},
        "cv_after_hysteresis": {
            "after_hysteresis": {"accuracy": 0.9, "kappa": 0.8},
            "events": {"events": 27, "events_detected": 27, "false_alarms_per_hour": 3.6290322},
        },
        "class_counts": {"normal": 945, "seizure": 295},
        "label_map": {"bg": "normal", "sz": "seizure"},
        "xgboost_params": {"max_depth": 4, "learning_rate": 0.1},
        "windows_left_out_by_label": {},
    }
    text = describe(make_contract("event", ("normal", "seizure"), training=training))
    assert "validation: 5-fold, grouped by label group (148 groups)" in text
    assert "time-blocked" not in text and "gap 3 rows" not in text
    assert "events detected 27/27, false alarms 3.63/h" in text
    assert "class counts: normal 945, seizure 295" in text
    assert "labels renamed: bg -> normal, sz -> seizure" in text
    assert "xgboost params: max_depth 4, learning_rate 0.1" in text
    assert "windows left out by label: none" in text
    # no dicts, lists or quoted strings
    assert not any(c in text[text.index("training:") :] for c in "{}[]'\"")


def test_describe_decimated_and_untrained():
    features = FeatureConfig(fs_hz=32000.0)
    c = ModelContract(
        task="state",
        classes=("a", "b"),
        n_channels=64,
        channel_labels=None,
        features=features,
        feature_names=tuple(features.feature_names(default_channel_labels(64))),
        hysteresis=StateHysteresis(),
    )
    text = describe(c)
    assert f"decimation x{features.decimation}" in text
    assert "ch000, ch001, ch002, ..., ch063" in text
    assert "training: (no information)" in text
