"""Classification scores of decisions against labels (accuracy, kappa, F1, confusion)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rtdecode.common.checks import check_classes, check_labels

__all__ = ["classification_metrics"]


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, per-class scores and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (n_rows,), int
        True and predicted class indices in ``0..len(classes)-1``.
    classes : sequence of str
        Class names, in index order.

    Returns
    -------
    dict
        Plain JSON types: ``n``, ``accuracy``, ``balanced_accuracy`` (mean recall over classes
        present in ``y_true``), ``kappa`` (NaN when chance agreement is 1, i.e. a single class
        everywhere), ``macro_f1`` (over classes present in ``y_true``), ``per_class``
        (``{name: {precision, recall, f1, support}}``; a score whose denominator is zero is 0.0)
        and ``confusion`` (list of rows: ``confusion[i][j]`` counts true ``i`` predicted ``j``).
    """
    classes = list(check_classes([str(c) for c in classes]))
    k = len(classes)
    y_true = check_labels("y_true", y_true, k)
    y_pred = check_labels("y_pred", y_pred, k)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}"
        )
    n = y_true.size
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    accuracy = tp.sum() / n
    chance = float(support @ predicted) / n**2
    kappa = (accuracy - chance) / (1.0 - chance) if chance < 1.0 else float("nan")
    present = support > 0
    return {
        "n": int(n),
        "accuracy": float(accuracy),
        "balanced_accuracy": float(recall[present].mean()),
        "kappa": float(kappa),
        "macro_f1": float(f1[present].mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion": cm.tolist(),
    }
