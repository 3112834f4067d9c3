"""One decode step: a features row -> probabilities -> quality gate -> smoother -> decision.

The live decoder (:mod:`rtdecode.decoding.decoder`) and offline evaluation
(:func:`rtdecode.offline.evaluation.decode_recording`) both call :meth:`DecodeStep.decide` once
per window, so a recording decoded offline gives the decisions a live run on its replay gives.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NamedTuple

import numpy as np

from rtdecode.config import EventHysteresis, StateHysteresis
from rtdecode.decoding.model import OnnxModel
from rtdecode.decoding.smoother import QualityGate, make_smoother

__all__ = ["DecodeStep", "StepResult"]

logger = logging.getLogger("rtdecode")

# A float32 probability may round a little past 0 or 1; beyond this it is no probability.
_PROBABILITY_TOLERANCE = 1e-5
# A model that goes bad goes bad on every window: one warning per this many seconds, not per hop.
_BAD_OUTPUT_LOG_S = 30.0


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

    Attributes
    ----------
    bad_outputs : int
        Windows left undecided because the model's output was not one probability per class.

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
        self.bad_outputs = 0
        self._next_bad_output_log = -math.inf

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

    def decide(self, row: np.ndarray, good_fraction: float = 1.0) -> StepResult | None:
        """Score one window's feature row and advance the smoother.

        Parameters
        ----------
        row : ndarray, shape (1, n_features), float32
        good_fraction : float
            Fraction of the window's channels that are usable (0-1).

        Returns
        -------
        StepResult or None
            None when the model's output is not one probability per class (a value not finite
            or outside [0, 1], another width): the window is undecided, the smoother does not
            advance, ``bad_outputs`` counts it and a warning says why (at most every 30 s).
        """
        output = self.model.predict_proba(row)
        problem = _output_problem(output, len(self.classes))
        if problem is not None:
            self._bad_output(problem)
            return None
        probs = output[0]
        state, changed = self.gate.update(probs, good_fraction)
        return StepResult(probs, state, changed)

    def _bad_output(self, problem: str) -> None:
        self.bad_outputs += 1
        now = time.monotonic()
        if now >= self._next_bad_output_log:
            self._next_bad_output_log = now + _BAD_OUTPUT_LOG_S
            logger.warning(
                "model %s gave %s: the window is not decided (%d such window(s) so far; this "
                "warning repeats at most every %g s). Check the model: re-export it with "
                "`rtdecode train`",
                self.model.path,
                problem,
                self.bad_outputs,
                _BAD_OUTPUT_LOG_S,
            )


def _output_problem(output: np.ndarray, n_classes: int) -> str | None:
    """What makes the model's output for one row no probability per class, or None."""
    if output.shape != (1, n_classes):
        return f"an output of shape {output.shape} for one window, not (1, {n_classes})"
    # plain floats: a few values, compared faster than numpy reductions (the latency path)
    values = output[0].tolist()
    lo, hi = -_PROBABILITY_TOLERANCE, 1.0 + _PROBABILITY_TOLERANCE
    if not all(lo <= v <= hi for v in values):  # NaN fails both comparisons
        return f"probabilities {values}, not all finite and in [0, 1]"
    return None
