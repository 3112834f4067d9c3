"""Offline side of a model: time-blocked cross-validation, gradient boosting, ONNX export.

Training data are feature matrices (one row per decision window, columns in
``ModelContract.feature_names`` order) and integer labels indexing ``classes``. Rows are in time
order: adjacent rows come from overlapping sliding windows, so cross-validation holds out
contiguous blocks of time and can purge rows next to them.

``xgboost``, ``onnx`` and ``onnxmltools`` (the ``rtdecode[train]`` extra) are imported inside the
functions that need them, so that the metrics and fold helpers work without them.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtdecode.common.checks import check_int, check_labels
from rtdecode.decoding.model import CONTRACT_KEY, ModelContract, OnnxModel
from rtdecode.offline.metrics import classification_metrics

if TYPE_CHECKING:
    import xgboost

__all__ = [
    "XGBParams",
    "balanced_sample_weight",
    "booster_predict_proba",
    "cross_validate",
    "export_onnx",
    "fit_xgboost",
    "grouped_folds",
    "time_blocked_folds",
    "with_n_estimators",
]

logger = logging.getLogger("rtdecode")

#: Highest ONNX ``ai.onnx`` opset the xgboost converter supports in the pinned toolchain.
TARGET_OPSET = 15
#: Fraction of each training fold held out (at its end in time) for early stopping.
EARLY_STOPPING_FRACTION = 0.15


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"training needs {module!r}, which is not installed; install the training extra: "
            "pip install 'rtdecode[train]'"
        ) from exc


def _check_features(name: str, X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {X.shape}")
    # float32 is what the ONNX model sees live; training on the same values avoids split
    # thresholds that only differ in float64.
    return np.ascontiguousarray(X, dtype=np.float32)


# Folds and weights -------------------------------------------------------------------------
def time_blocked_folds(
    n_rows: int, n_folds: int = 5, *, gap_rows: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous validation blocks for time-ordered rows, with a purge gap around each.

    Parameters
    ----------
    n_rows : int
        Number of rows (decision windows), in time order.
    n_folds : int
        Number of folds, >= 2. Validation blocks are consecutive and their sizes differ by at
        most one row; together they cover every row exactly once.
    gap_rows : int
        Rows on each side of a validation block left out of that fold's training set. Sliding
        windows overlap (a 2 s window with a 0.1 s hop shares samples with the 19 windows on
        either side), so without a gap the model is validated on rows it has partly seen; use
        ``ceil(window_s / hop_s) - 1``.

    Returns
    -------
    list of (train_idx, val_idx)
        ``n_folds`` pairs of sorted ``intp`` index arrays.

    Raises
    ------
    ValueError
        If there are fewer rows than folds, or the gap leaves some fold without training rows.
    """
    n_rows = check_int("n_rows", n_rows, 1)
    n_folds = check_int("n_folds", n_folds, 2)
    gap_rows = check_int("gap_rows", gap_rows, 0)
    if n_rows < n_folds:
        raise ValueError(
            f"n_rows={n_rows} is too few for n_folds={n_folds}; need n_rows >= n_folds"
        )
    rows = np.arange(n_rows, dtype=np.intp)
    folds = []
    for k, val in enumerate(np.array_split(rows, n_folds)):
        start, stop = int(val[0]), int(val[-1]) + 1
        train = rows[(rows < start - gap_rows) | (rows >= stop + gap_rows)]
        if train.size == 0:
            raise ValueError(
                f"gap_rows={gap_rows} leaves fold {k} (validation rows {start}..{stop - 1}) with "
                f"no training rows (n_rows={n_rows}, n_folds={n_folds}); use a smaller gap, more "
                "folds or more data"
            )
        folds.append((train, val.copy()))
    return folds


def grouped_folds(groups: Sequence[Any], n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that keep every group (a recording, an animal, an event) on one side of each split.

    Groups are taken in order of first appearance and dealt into ``n_folds`` consecutive runs
    of about equal row counts, so with time-ordered rows a fold is also a stretch of time.

    Parameters
    ----------
    groups : sequence, one entry per row
        Hashable group ids.
    n_folds : int
        >= 2 and <= the number of groups.

    Returns
    -------
    list of (train_idx, val_idx)
    """
    n_folds = check_int("n_folds", n_folds, 2)
    keys = list(groups)
    order: dict[Any, int] = {}
    for g in keys:
        order.setdefault(g, len(order))
    if len(order) < n_folds:
        raise ValueError(
            f"{len(order)} group(s) cannot make {n_folds} folds; need at least one group per fold"
        )
    codes = np.array([order[g] for g in keys], dtype=np.intp)
    sizes = np.bincount(codes, minlength=len(order))
    cum = np.cumsum(sizes)
    # cut the sequence of groups where the cumulative row count crosses k/n of the total
    targets = cum[-1] * np.arange(1, n_folds) / n_folds
    cuts = np.searchsorted(cum, targets, side="left") + 1
    cuts = np.maximum.accumulate(np.clip(cuts, 1, len(order) - 1))
    bounds = np.r_[0, cuts, len(order)]
    rows = np.arange(codes.size, dtype=np.intp)
    folds = []
    for k in range(n_folds):
        lo, hi = bounds[k], bounds[k + 1]
        if hi <= lo:
            lo, hi = min(lo, len(order) - 1), min(lo, len(order) - 1) + 1
        in_val = (codes >= lo) & (codes < hi)
        folds.append((rows[~in_val], rows[in_val]))
    return [(tr, va) for tr, va in folds if va.size and tr.size]


def balanced_sample_weight(y: np.ndarray) -> np.ndarray:
    """Per-row weights that give every class present the same total weight.

    Parameters
    ----------
    y : ndarray, shape (n_rows,), int
        Class indices.

    Returns
    -------
    ndarray, shape (n_rows,), float64
        ``n_rows / (n_present_classes * count[y[i]])``: weights average 1, and each present class
        sums to ``n_rows / n_present_classes`` (scikit-learn's ``"balanced"``).
    """
    y = check_labels("y", y)
    counts = np.bincount(y)
    n_present = np.count_nonzero(counts)
    per_class = np.zeros(counts.size, dtype=np.float64)
    present = counts > 0
    per_class[present] = y.size / (n_present * counts[present])
    return per_class[y]


# Booster -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class XGBParams:
    """Gradient-boosting hyper-parameters (xgboost native API).

    Parameters
    ----------
    n_estimators : int
        Maximum boosting rounds (trees per class).
    max_depth : int
        Maximum tree depth.
    learning_rate : float
        Shrinkage (xgboost ``eta``), in (0, 1].
    subsample : float
        Fraction of rows sampled per tree, in (0, 1].
    colsample_bytree : float
        Fraction of features sampled per tree, in (0, 1].
    early_stopping_rounds : int
        Stop when the validation log-loss has not improved for this many rounds; 0 disables.
    seed : int
        Random seed (row and column sampling).
    n_jobs : int
        xgboost threads.
    """

    n_estimators: int = 200
    max_depth: int = 4
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    early_stopping_rounds: int = 20
    seed: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        check_int("n_estimators", self.n_estimators, 1)
        check_int("max_depth", self.max_depth, 1)
        check_int("early_stopping_rounds", self.early_stopping_rounds, 0)
        check_int("seed", self.seed, 0)
        check_int("n_jobs", self.n_jobs, 1)
        for name in ("learning_rate", "subsample", "colsample_bytree"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not (0.0 < value <= 1.0):
                raise ValueError(f"{name} must be in (0, 1], got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XGBParams:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown XGBParams keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def xgb_params(self, n_classes: int) -> dict[str, Any]:
        """Parameter dict for ``xgboost.train`` for a problem with ``n_classes`` classes.

        Two classes use ``binary:logistic``: onnxmltools converts ``multi:softprob`` with
        ``num_class=2`` wrongly (probabilities off by up to 0.99, measured with onnxmltools 1.16).
        """
        n_classes = check_int("n_classes", n_classes, 2)
        params: dict[str, Any] = {
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "seed": self.seed,
            "nthread": self.n_jobs,
            "tree_method": "hist",
        }
        if n_classes == 2:
            params.update(objective="binary:logistic", eval_metric="logloss")
        else:
            params.update(objective="multi:softprob", num_class=n_classes, eval_metric="mlogloss")
        return params


def booster_predict_proba(booster: xgboost.Booster, X: np.ndarray) -> np.ndarray:
    """Class probabilities from a booster, shape (n_rows, n_classes), float32.

    Binary boosters return p(class 1) only; this adds the class-0 column so both objectives look
    like the ONNX model's output.
    """
    xgb = _require("xgboost")
    X = _check_features("X", X)
    p = np.asarray(booster.predict(xgb.DMatrix(X)), dtype=np.float32)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p]).astype(np.float32)
    return p


def fit_xgboost(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    n_classes: int,
    params: XGBParams,
    *,
    client: Any = None,
) -> xgboost.Booster:
    """Fit a class-balanced gradient-boosted tree classifier.

    Parameters
    ----------
    X_train : ndarray, shape (n_train, n_features), float
        Training features (converted to float32, as the ONNX model sees them).
    y_train : ndarray, shape (n_train,), int
        Class indices in ``0..n_classes-1``.
    X_val, y_val : ndarray or None
        Early-stopping set (weighted the same way). Both None to train exactly
        ``params.n_estimators`` rounds, e.g. for the final model after cross-validation.
    n_classes : int
        Number of classes (>= 2); classes absent from ``y_train`` still get a probability column.
    params : XGBParams
        Hyper-parameters.
    client : dask.distributed.Client, optional
        Train with ``xgboost.dask`` on that cluster's workers (the rows are split among them)
        instead of in this process.

    Returns
    -------
    xgboost.Booster
        Trimmed to the best iteration when early stopping ran. Its attribute ``"best_iteration"``
        (``booster.attr("best_iteration")``) records the last kept round, zero-based.
    """
    xgb = _require("xgboost")
    if not isinstance(params, XGBParams):
        raise TypeError(f"params must be an XGBParams, got {type(params).__name__}")
    n_classes = check_int("n_classes", n_classes, 2)
    X_train = _check_features("X_train", X_train)
    y_train = check_labels("y_train", y_train, n_classes)
    if X_train.shape[0] != y_train.shape[0]:
        raise ValueError(
            f"X_train has {X_train.shape[0]} rows but y_train has {y_train.shape[0]}; "
            "they must match"
        )
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val must both be given or both be None")
    if client is not None:
        return _fit_xgboost_dask(client, X_train, y_train, X_val, y_val, n_classes, params)
    dtrain = xgb.DMatrix(X_train, label=y_train, weight=balanced_sample_weight(y_train))
    evals = []
    early = None
    if X_val is not None:
        X_val = _check_features("X_val", X_val)
        y_val = check_labels("y_val", y_val, n_classes)
        if X_val.shape != (y_val.shape[0], X_train.shape[1]):
            raise ValueError(
                f"X_val has shape {X_val.shape}; expected ({y_val.shape[0]}, {X_train.shape[1]}) "
                "(rows of y_val, columns of X_train)"
            )
        dval = xgb.DMatrix(X_val, label=y_val, weight=balanced_sample_weight(y_val))
        evals = [(dval, "val")]
        early = params.early_stopping_rounds or None
    booster = xgb.train(
        params.xgb_params(n_classes),
        dtrain,
        num_boost_round=params.n_estimators,
        evals=evals,
        early_stopping_rounds=early,
        verbose_eval=False,
    )
    return _trim_to_best(booster, early_stopped=early is not None)


def _trim_to_best(booster, *, early_stopped: bool):
    """Keep the rounds up to the best iteration; record it as the ``best_iteration`` attr."""
    if early_stopped:
        best = int(booster.best_iteration)
        booster = booster[: best + 1]
    else:
        best = booster.num_boosted_rounds() - 1
    booster.set_attr(best_iteration=str(best))
    return booster


def _fit_xgboost_dask(client, X_train, y_train, X_val, y_val, n_classes, params) -> Any:
    """``fit_xgboost`` on a Dask cluster with ``xgboost.dask``: same weights, early stopping."""
    import dask.array as da
    from xgboost import dask as dxgb

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))

    def matrix(X, y):
        rows = max(1, -(-X.shape[0] // n_workers))
        return dxgb.DaskDMatrix(
            client,
            da.from_array(X, chunks=(rows, -1)),
            da.from_array(y, chunks=rows),
            weight=da.from_array(balanced_sample_weight(y), chunks=rows),
        )

    evals, early = [], None
    if X_val is not None:
        X_val = _check_features("X_val", X_val)
        y_val = check_labels("y_val", y_val, n_classes)
        evals = [(matrix(X_val, y_val), "val")]
        early = params.early_stopping_rounds or None
    out = dxgb.train(
        client,
        params.xgb_params(n_classes),
        matrix(X_train, y_train),
        num_boost_round=params.n_estimators,
        evals=evals,
        early_stopping_rounds=early,
        verbose_eval=False,
    )
    booster = out["booster"]
    return _trim_to_best(booster, early_stopped=early is not None)


# Metrics -----------------------------------------------------------------------------------


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    params: XGBParams,
    *,
    n_folds: int = 5,
    gap_rows: int = 0,
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Time-blocked cross-validation of :func:`fit_xgboost`.

    Each fold trains on the rows outside its validation block (minus ``gap_rows`` on each side).
    Early stopping never looks at the validation block: the last
    ``EARLY_STOPPING_FRACTION`` of the fold's training rows (in time) stop the boosting, and
    ``gap_rows`` before them are purged from the rows that fit the trees.

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_features), float
        Features, rows in time order.
    y : ndarray, shape (n_rows,), int
        Class indices in ``0..len(classes)-1``.
    classes : sequence of str
        Class names, in index order.
    params : XGBParams
        Hyper-parameters.
    n_folds, gap_rows : int
        See :func:`time_blocked_folds`.
    folds : list of (train_idx, val_idx), optional
        Explicit folds (e.g. :func:`grouped_folds`) instead of time-blocked ones.
    client : dask.distributed.Client, optional
        Fit each fold with ``xgboost.dask`` on that cluster (see :func:`fit_xgboost`).

    Returns
    -------
    dict
        ``metrics``: :func:`classification_metrics` of the pooled out-of-fold predictions;
        ``folds``: per fold ``{fold, val_start, val_stop, n_train, n_val, best_iteration,
        accuracy, kappa}``; ``n_folds``, ``gap_rows``, ``n_rows``; ``best_iteration_median``
        (a sensible ``n_estimators - 1`` for the final model on all rows); ``oof_proba``:
        ndarray (n_rows, n_classes) float32 of out-of-fold probabilities, NaN for rows never
        validated; ``oof_pred``: ndarray (n_rows,) int, -1 for those rows. Everything except
        the two ``oof_`` arrays is plain JSON and can go into ``ModelContract.training``.
    """
    classes = [str(c) for c in classes]
    n_classes = len(classes)
    X = _check_features("X", X)
    y = check_labels("y", y, n_classes)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match")
    if not isinstance(params, XGBParams):
        raise TypeError(f"params must be an XGBParams, got {type(params).__name__}")
    gap_rows = check_int("gap_rows", gap_rows, 0)
    if folds is None:
        folds = time_blocked_folds(X.shape[0], n_folds, gap_rows=gap_rows)

    oof_proba = np.full((X.shape[0], n_classes), np.nan, dtype=np.float32)
    fold_info = []
    for k, (train, val) in enumerate(folds):
        fit_rows, stop_rows = _early_stopping_split(train, gap_rows)
        if stop_rows is None:
            booster = fit_xgboost(X[train], y[train], None, None, n_classes, params, client=client)
        else:
            booster = fit_xgboost(
                X[fit_rows],
                y[fit_rows],
                X[stop_rows],
                y[stop_rows],
                n_classes,
                params,
                client=client,
            )
        proba = booster_predict_proba(booster, X[val])
        oof_proba[val] = proba
        fold_metrics = classification_metrics(y[val], proba.argmax(axis=1), classes)
        fold_info.append(
            {
                "fold": k,
                "val_start": int(val[0]),
                "val_stop": int(val[-1]) + 1,
                "n_train": int(fit_rows.size if stop_rows is not None else train.size),
                "n_val": int(val.size),
                "best_iteration": int(booster.attr("best_iteration")),
                "accuracy": fold_metrics["accuracy"],
                "kappa": fold_metrics["kappa"],
            }
        )
        logger.info(
            "fold %d/%d: %d train rows, %d validation rows, %d trees per class, accuracy %.3f",
            k + 1,
            len(folds),
            fold_info[-1]["n_train"],
            val.size,
            fold_info[-1]["best_iteration"] + 1,
            fold_metrics["accuracy"],
        )

    validated = ~np.isnan(oof_proba[:, 0])
    oof_pred = np.full(X.shape[0], -1, dtype=np.intp)
    oof_pred[validated] = oof_proba[validated].argmax(axis=1)
    return {
        "n_rows": int(X.shape[0]),
        "n_folds": len(folds),
        "gap_rows": gap_rows,
        "metrics": classification_metrics(y[validated], oof_pred[validated], classes),
        "folds": fold_info,
        "best_iteration_median": int(np.median([f["best_iteration"] for f in fold_info])),
        "oof_proba": oof_proba,
        "oof_pred": oof_pred,
    }


def _early_stopping_split(train: np.ndarray, gap_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Split sorted training rows into (fit rows, early-stopping rows), latest rows stopping.

    Returns ``(train, None)`` when the fold is too small to spare rows for early stopping.
    """
    n_stop = int(round(EARLY_STOPPING_FRACTION * train.size))
    if n_stop < 1:
        return train, None
    stop_rows = train[-n_stop:]
    fit_rows = train[train < stop_rows[0] - gap_rows]
    if fit_rows.size == 0:
        return train, None
    return fit_rows, stop_rows


# Export ------------------------------------------------------------------------------------
def export_onnx(
    booster: xgboost.Booster,
    contract: ModelContract,
    path: str | Path,
    X_check: np.ndarray,
    *,
    tolerance: float = 1e-5,
) -> Path:
    """Write a booster as an rtdecode ONNX model and prove it predicts like the booster.

    Parameters
    ----------
    booster : xgboost.Booster
        Trained on ``contract.n_features`` columns and ``contract.n_classes`` classes (from
        :func:`fit_xgboost`).
    contract : ModelContract
        Stored as JSON in the ONNX metadata entry ``"rtdecode_contract"``.
    path : str or Path
        Output file; its folder must exist. Written atomically: an existing file is replaced only
        by a model that passed the check.
    X_check : ndarray, shape (n_rows, n_features), float
        Rows on which the ONNX model's probabilities must match the booster's, e.g. a sample of
        the training features.
    tolerance : float
        Largest allowed absolute difference of any probability.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    RuntimeError
        If the exported model disagrees with the booster by more than ``tolerance``; nothing is
        written then.
    """
    xgb = _require("xgboost")
    onnx = _require("onnx")
    onnxmltools = _require("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    if not isinstance(booster, xgb.Booster):
        raise TypeError(f"booster must be an xgboost.Booster, got {type(booster).__name__}")
    if not isinstance(contract, ModelContract):
        raise TypeError(f"contract must be a ModelContract, got {type(contract).__name__}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path {path}: folder {path.parent} does not exist; create it first")
    X_check = _check_features("X_check", X_check)
    n_features = contract.n_features
    if X_check.shape[1] != n_features or booster.num_features() != n_features:
        raise ValueError(
            f"contract lists {n_features} features but the booster was trained on "
            f"{booster.num_features()} and X_check has {X_check.shape[1]} columns; all must match"
        )
    reference = booster_predict_proba(booster, X_check)
    if reference.shape[1] != contract.n_classes:
        raise ValueError(
            f"booster predicts {reference.shape[1]} classes but the contract lists "
            f"{contract.n_classes} ({list(contract.classes)}); they must match"
        )

    # The converter maps trees to inputs by the names f0..fN; a booster trained on named
    # columns (e.g. a DataFrame) would fail to convert, and the names add nothing here.
    if booster.feature_names is not None:
        booster = booster.copy()
        booster.feature_names = None
    model = onnxmltools.convert_xgboost(
        booster,
        name="rtdecode",
        initial_types=[("features", FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
    )
    model.doc_string = (
        f"rtdecode {contract.task} model: classes {', '.join(contract.classes)}; "
        f"{contract.n_channels} channels at {contract.features.fs_hz:g} Hz"
    )
    for i in reversed(range(len(model.metadata_props))):
        if model.metadata_props[i].key == CONTRACT_KEY:
            del model.metadata_props[i]
    entry = model.metadata_props.add()
    entry.key = CONTRACT_KEY
    entry.value = contract.to_json()
    onnx.checker.check_model(model)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(model.SerializeToString())
            fh.flush()
            os.fsync(fh.fileno())
        # Check the bytes on disk through the same loader live decoding uses.
        exported = OnnxModel(tmp).predict_proba(X_check)
        diff = float(np.max(np.abs(exported.astype(np.float64) - reference)))
        if not diff <= tolerance:
            raise RuntimeError(
                f"ONNX export of {path} disagrees with the xgboost booster: max |p_onnx - p_xgb| "
                f"= {diff:.3g} > tolerance {tolerance:g} on {X_check.shape[0]} check rows "
                f"({contract.n_classes} classes). The file was not written; the converter may "
                "not support this booster's objective or parameters."
            )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info(
        "ONNX export: %d trees, %d features, %d classes, max |p_onnx - p_xgb| = %.2g",
        booster.num_boosted_rounds(),
        n_features,
        contract.n_classes,
        diff,
    )
    return path


def with_n_estimators(params: XGBParams, best_iteration: int) -> XGBParams:
    """``params`` for a final fit without early stopping, ``best_iteration + 1`` rounds."""
    return replace(params, n_estimators=int(best_iteration) + 1, early_stopping_rounds=0)
