"""One decode step: a features row -> probabilities -> quality gate -> smoother -> decision.

The live decoder (:mod:`rtdecode.decoding.decoder`) and offline evaluation
(:func:`rtdecode.offline.evaluation.decode_recording`) both call :meth:`DecodeStep.decide` once
per window, so a recording decoded offline gives the decisions a live run on its replay gives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtdecode.config import EventHysteresis, StateHysteresis
from rtdecode.decoding.model import OnnxModel
from rtdecode.decoding.smoother import QualityGate, make_smoother

__all__ = ["DecodeStep", "StepResult"]


class StepResult(NamedTuple):
    """The outcome of one step."""

    probabilities: np.ndarray  # (n_classes,) float32, the model's output for the window
    state: str  # the smoothed state (a class, or BAD_SIGNAL)
    changed: bool  # the state changed at this step (or was announced afresh)


class DecodeStep:
    """The model and the smoother of one decoder, applied one window at a time.

    Parameters
    ----------
    model : OnnxModel
    hop_s : float
        Seconds between decisions (the stream's feature hop).
    hysteresis : EventHysteresis or StateHysteresis, optional
        Overrides the model's default hysteresis.
    min_good_fraction : float
        Windows with a smaller fraction of usable channels give ``BAD_SIGNAL`` and do not
        advance the hysteresis (:class:`rtdecode.decoding.smoother.QualityGate`).

    Notes
    -----
    Not thread-safe: one thread calls :meth:`decide` (the decode thread live).
    """

    def __init__(
        self,
        model: OnnxModel,
        *,
        hop_s: float,
        hysteresis: EventHysteresis | StateHysteresis | None = None,
        min_good_fraction: float,
    ) -> None:
        self.model = model
        self.classes = tuple(model.contract.classes)
        self.gate = QualityGate(
            make_smoother(hysteresis or model.contract.hysteresis, self.classes, hop_s),
            min_good_fraction,
        )

    @property
    def hysteresis(self) -> EventHysteresis | StateHysteresis:
        """The hysteresis in force."""
        return self.gate.hysteresis

    @property
    def state(self) -> str | None:
        """The current smoothed state (None before the first decision and after a reset)."""
        return self.gate.state

    def reset(self) -> None:
        """Forget the smoother's history (after a gap): the next decision announces its state."""
        self.gate.reset()

    def decide(self, row: np.ndarray, good_fraction: float = 1.0) -> StepResult:
        """Score one window's feature row and advance the smoother.

        Parameters
        ----------
        row : ndarray, shape (1, n_features), float32
        good_fraction : float
            Fraction of the window's channels that are usable (0-1).
        """
        probs = self.model.predict_proba(row)[0]
        state, changed = self.gate.update(probs, good_fraction)
        return StepResult(probs, state, changed)
