"""Tests of rtdecode.training.boosting: folds, weights, metrics, boosting, cross-validation, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost

from rtdecode.common.channels import default_channel_labels
from rtdecode.config import FeatureConfig, StateHysteresis
from rtdecode.decoding.model import ModelContract, OnnxModel
from rtdecode.training.boosting import (
    XGBParams,
    balanced_sample_weight,
    booster_predict_proba,
    cross_validate,
    export_onnx,
    fit_xgboost,
    time_blocked_folds,
    with_n_estimators,
)

SMALL = XGBParams(n_estimators=30, max_depth=3, early_stopping_rounds=5)


def separable(n_rows: int, n_classes: int, n_features: int = 22, seed: int = 0):
    """Time-ordered Gaussian clusters: labels in blocks of 15 rows, far-apart class means."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n_rows) // 15) % n_classes
    means = rng.normal(scale=3.0, size=(n_classes, n_features))
    X = (means[y] + rng.normal(size=(n_rows, n_features))).astype(np.float32)
    return X, y


# Folds -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_rows", "n_folds", "gap"), [(10, 2, 0), (103, 5, 0), (103, 5, 7), (50, 10, 3), (7, 7, 1)]
)
def test_time_blocked_folds_properties(n_rows, n_folds, gap):
    folds = time_blocked_folds(n_rows, n_folds, gap_rows=gap)
    assert len(folds) == n_folds
    seen = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(seen, np.arange(n_rows))  # in order, each row once
    sizes = [val.size for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert np.all(np.diff(val) == 1)
        start, stop = val[0], val[-1] + 1
        assert np.all((train < start - gap) | (train >= stop + gap))
        expected = np.setdiff1d(np.arange(n_rows), np.arange(start - gap, stop + gap))
        np.testing.assert_array_equal(train, expected)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((3, 5), {}, ValueError, "n_rows=3 is too few for n_folds=5"),
        ((10, 1), {}, ValueError, "n_folds must be >= 2, got 1"),
        ((10, 2), {"gap_rows": -1}, ValueError, "gap_rows must be >= 0, got -1"),
        ((10, 2), {"gap_rows": 5}, ValueError, "gap_rows=5 leaves fold 0"),
        ((10.0, 2), {}, TypeError, "n_rows must be an int, got float"),
    ],
)
def test_time_blocked_folds_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        time_blocked_folds(*args, **kwargs)


# Weights -----------------------------------------------------------------------------------
def test_balanced_sample_weight():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 3, 3])  # class 2 absent
    w = balanced_sample_weight(y)
    assert w.shape == y.shape
    np.testing.assert_allclose(w.mean(), 1.0)
    for c in (0, 1, 3):
        np.testing.assert_allclose(w[y == c].sum(), 10 / 3)
    np.testing.assert_allclose(w[:2], 10 / 18)
    with pytest.raises(TypeError, match="integer class indices"):
        balanced_sample_weight(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="class indices -1..1"):
        balanced_sample_weight(np.array([-1, 1]))


# Metrics -----------------------------------------------------------------------------------


# Booster -----------------------------------------------------------------------------------
def test_xgb_params():
    p = XGBParams(n_estimators=10)
    assert XGBParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.xgb_params(2)["objective"] == "binary:logistic"
    assert p.xgb_params(3)["num_class"] == 3
    with pytest.raises(ValueError, match=r"subsample must be in \(0, 1\], got 0"):
        XGBParams(subsample=0)
    with pytest.raises(TypeError, match="max_depth must be an int, got float"):
        XGBParams(max_depth=3.0)
    with pytest.raises(ValueError, match="unknown XGBParams keys"):
        XGBParams.from_dict({"eta": 0.1})
    final = with_n_estimators(p, 6)
    assert final.n_estimators == 7 and final.early_stopping_rounds == 0


def test_fit_xgboost_early_stopping_trims():
    X, y = separable(300, 3)
    params = XGBParams(n_estimators=200, max_depth=2, early_stopping_rounds=3)
    booster = fit_xgboost(X[:200], y[:200], X[200:], y[200:], 3, params)
    best = int(booster.attr("best_iteration"))
    assert booster.num_boosted_rounds() == best + 1 < 200
    p = booster_predict_proba(booster, X[200:])
    assert p.shape == (100, 3) and p.dtype == np.float32


def test_fit_xgboost_without_validation_and_binary():
    X, y = separable(120, 2)
    booster = fit_xgboost(X, y, None, None, 2, XGBParams(n_estimators=7, max_depth=2))
    assert booster.num_boosted_rounds() == 7
    assert booster.attr("best_iteration") == "6"
    p = booster_predict_proba(booster, X)
    assert p.shape == (120, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_fit_xgboost_input_errors():
    X, y = separable(40, 2)
    with pytest.raises(ValueError, match="y_train holds class indices 0..2; allowed: 0..1"):
        fit_xgboost(X, np.where(y == 1, 2, 0), None, None, 2, SMALL)
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        fit_xgboost(X, y * 0, None, None, 1, SMALL)
    with pytest.raises(ValueError, match="X_train has 40 rows but y_train has 39"):
        fit_xgboost(X, y[:-1], None, None, 2, SMALL)
    with pytest.raises(ValueError, match="both be given or both be None"):
        fit_xgboost(X, y, X, None, 2, SMALL)
    with pytest.raises(TypeError, match="params must be an XGBParams"):
        fit_xgboost(X, y, None, None, 2, {"max_depth": 2})
    with pytest.raises(TypeError, match="X_train must be a float array, got dtype int64"):
        fit_xgboost(X.astype(np.int64), y, None, None, 2, SMALL)


# Cross-validation --------------------------------------------------------------------------
@pytest.mark.parametrize("n_classes", [2, 3])
def test_cross_validate_separable(n_classes):
    X, y = separable(450, n_classes)
    classes = [f"c{k}" for k in range(n_classes)]
    cv = cross_validate(X, y, classes, SMALL, n_folds=5, gap_rows=4)
    assert cv["metrics"]["accuracy"] > 0.9
    assert cv["metrics"]["kappa"] > 0.8
    assert cv["n_folds"] == 5 and cv["gap_rows"] == 4 and cv["n_rows"] == 450
    proba = cv["oof_proba"]
    assert proba.shape == (450, n_classes) and proba.dtype == np.float32
    assert not np.isnan(proba).any()  # every row is validated exactly once
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(cv["oof_pred"], proba.argmax(axis=1))
    for fold in cv["folds"]:
        assert fold["n_val"] == 90
        # 15 % of the training rows stop the boosting, 4 rows before them are purged
        n_train = 450 - 90 - (4 if fold["fold"] in (0, 4) else 8)
        assert fold["n_train"] == n_train - round(0.15 * n_train) - 4
        assert 0 <= fold["best_iteration"] < SMALL.n_estimators
    summary = {k: v for k, v in cv.items() if not k.startswith("oof_")}
    json.dumps(summary)


def test_cross_validate_is_deterministic():
    X, y = separable(150, 3, seed=1)
    a = cross_validate(X, y, "abc", SMALL, n_folds=3)
    b = cross_validate(X, y, "abc", SMALL, n_folds=3)
    np.testing.assert_array_equal(a["oof_proba"], b["oof_proba"])


def test_cross_validate_input_errors():
    X, y = separable(30, 2)
    with pytest.raises(ValueError, match="X has 30 rows but y has 29"):
        cross_validate(X, y[:-1], "ab", SMALL)
    with pytest.raises(ValueError, match="gap_rows=20 leaves fold 0"):
        cross_validate(X, y, "ab", SMALL, n_folds=2, gap_rows=20)


# Export ------------------------------------------------------------------------------------
def _contract(classes) -> ModelContract:
    features = FeatureConfig(fs_hz=1000.0)
    return ModelContract(
        task="state",
        classes=tuple(classes),
        n_channels=2,
        channel_labels=None,
        features=features,
        feature_names=tuple(features.feature_names(default_channel_labels(2))),
        hysteresis=StateHysteresis(),
    )


def test_export_refuses_a_model_that_disagrees(tmp_path):
    # onnxmltools converts multi:softprob with two classes wrongly: the check must catch it.
    X, y = separable(200, 2)
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 2, "max_depth": 2, "nthread": 1},
        xgboost.DMatrix(X, label=y),
        num_boost_round=5,
    )
    target = tmp_path / "bad.onnx"
    with pytest.raises(RuntimeError, match=r"max \|p_onnx - p_xgb\| = .* > tolerance 1e-05"):
        export_onnx(booster, _contract("ab"), target, X)
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_atomically(tmp_path):
    X, y = separable(200, 3)
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    booster = fit_xgboost(X, y, None, None, 3, XGBParams(n_estimators=5, max_depth=2))
    assert export_onnx(booster, _contract("abc"), str(target), X[:50]) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    np.testing.assert_allclose(
        OnnxModel(target).predict_proba(X), booster_predict_proba(booster, X), atol=1e-5, rtol=0
    )


def test_export_input_errors(tmp_path):
    X, y = separable(60, 3)
    booster = fit_xgboost(X, y, None, None, 3, XGBParams(n_estimators=3, max_depth=2))
    with pytest.raises(ValueError, match="booster predicts 3 classes but the contract lists 2"):
        export_onnx(booster, _contract("ab"), tmp_path / "m.onnx", X)
    with pytest.raises(ValueError, match="X_check has 21 columns"):
        export_onnx(booster, _contract("abc"), tmp_path / "m.onnx", X[:, :21])
    with pytest.raises(ValueError, match="does not exist; create it first"):
        export_onnx(booster, _contract("abc"), tmp_path / "no" / "m.onnx", X)
    assert list(tmp_path.iterdir()) == []
