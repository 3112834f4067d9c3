"""Classification scores: known answers and edge cases."""

import json
import math

import numpy as np
import pytest

from rtdecode.offline.metrics import classification_metrics


def test_classification_metrics_known_kappa():
    # Wikipedia's Cohen's kappa example: agreement 0.7, chance 0.5 -> kappa 0.4.
    cm = [[20, 5], [10, 15]]
    y_true = np.repeat([0, 0, 1, 1], [20, 5, 10, 15])
    y_pred = np.repeat([0, 1, 0, 1], [20, 5, 10, 15])
    m = classification_metrics(y_true, y_pred, ["yes", "no"])
    assert m["confusion"] == cm
    assert m["n"] == 50
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["kappa"] == pytest.approx(0.4)
    yes = m["per_class"]["yes"]
    assert yes["precision"] == pytest.approx(20 / 30)
    assert yes["recall"] == pytest.approx(20 / 25)
    assert yes["f1"] == pytest.approx(2 * (2 / 3) * 0.8 / (2 / 3 + 0.8))
    assert yes["support"] == 25
    assert m["balanced_accuracy"] == pytest.approx((0.8 + 0.6) / 2)
    json.dumps(m)


def test_classification_metrics_edge_cases():
    perfect = classification_metrics(np.array([0, 1, 2]), np.array([0, 1, 2]), "abc")
    assert perfect["kappa"] == 1.0 and perfect["accuracy"] == 1.0
    # class 2 never predicted nor present: zero scores, excluded from the macro average
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["a", "b", "c"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    single = classification_metrics(np.zeros(4, int), np.zeros(4, int), ["a", "b"])
    assert math.isnan(single["kappa"])
    with pytest.raises(ValueError, match="class indices 0..2; allowed: 0..1"):
        classification_metrics(np.array([0, 2]), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="same length"):
        classification_metrics(np.array([0, 1]), np.array([0]), ["a", "b"])
