"""Hysteresis state machines over the sequence of class probabilities.

The model emits one probability vector per hop; these smoothers turn that sequence into a state
that does not flicker. Both are deterministic and clocked by decisions (stream time), never by the
wall clock, so replaying a recording reproduces the live state sequence exactly.

A condition "held for ``dwell_s`` seconds" means that it was met by ``n`` consecutive decisions
with ``n >= dwell_decisions(dwell_s, hop_s)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from rtdecode.common.checks import check_classes, check_seconds
from rtdecode.config import EventHysteresis, StateHysteresis
from rtdecode.streams import BAD_SIGNAL

__all__ = [
    "BAD_SIGNAL",
    "EventSmoother",
    "QualityGate",
    "StateSmoother",
    "dwell_decisions",
    "make_smoother",
]

# The state while too few channels are usable: a marker on the state outlet, never a class.

logger = logging.getLogger("rtdecode")

# Absorbs the rounding in dwell_s / hop_s (0.3 / 0.1 == 2.9999999999999996) so that a dwell that
# is a whole number of hops maps to exactly that many decisions, not one more.
_DWELL_EPS = 1e-9


def dwell_decisions(dwell_s: float, hop_s: float) -> int:
    """Number of consecutive decisions that make up a dwell time.

    Parameters
    ----------
    dwell_s : float
        Dwell time, seconds of stream time, ``>= 0``.
    hop_s : float
        Time between decisions, seconds, ``> 0``.

    Returns
    -------
    n : int
        ``max(1, ceil(dwell_s / hop_s - 1e-9))``: a dwell of 0 (or of at most one hop) is met by
        the decision that first satisfies the condition.
    """
    hop_s = check_seconds("hop_s", hop_s)
    if not (math.isfinite(dwell_s) and dwell_s >= 0):
        raise ValueError(f"dwell_s must be a finite number >= 0 s, got {dwell_s!r}")
    return max(1, math.ceil(dwell_s / hop_s - _DWELL_EPS))


def _probs_as_floats(probs: np.ndarray, n_classes: int) -> list[float]:
    """Validate one probability vector and return it as plain Python floats."""
    if isinstance(probs, np.ndarray):
        if probs.ndim != 1:
            raise ValueError(
                f"probs must be 1-D with shape ({n_classes},), got shape {probs.shape}"
            )
        # tolist() is one small allocation and makes every later comparison a cheap float op.
        values = probs.tolist()
    else:
        values = [float(v) for v in probs]
    if len(values) != n_classes:
        raise ValueError(f"probs must hold {n_classes} values (one per class), got {len(values)}")
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(f"probs must be finite, got {v!r} at index {i}")
    return values


class _Smoother:
    """What both smoothers share: validated classes, hop and hysteresis configuration."""

    _config_type: type = object

    def __init__(self, hysteresis, classes: Sequence[str], hop_s: float) -> None:
        if not isinstance(hysteresis, self._config_type):
            raise TypeError(
                f"hysteresis must be a{'n' if self._config_type.__name__[0] in 'AEIOU' else ''} "
                f"{self._config_type.__name__}, got {type(hysteresis).__name__}"
            )
        self._classes = check_classes(classes)
        self._hop_s = check_seconds("hop_s", hop_s)
        self._hysteresis = hysteresis

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in model output order."""
        return self._classes

    @property
    def hop_s(self) -> float:
        """Time between decisions, seconds."""
        return self._hop_s

    @property
    def hysteresis(self):
        """The configuration this smoother was built from."""
        return self._hysteresis


class EventSmoother(_Smoother):
    """Event detector (e.g. seizure vs normal) with on/off thresholds and dwell times.

    Parameters
    ----------
    hysteresis : EventHysteresis
        Thresholds and dwell times; ``hysteresis.event_class`` must be one of ``classes``.
    classes : sequence of str
        Class names in model output order (at least 2).
    hop_s : float
        Time between decisions, seconds of stream time.

    Notes
    -----
    Outside the event (the *background* state) the smoother counts consecutive decisions with
    ``p(event) >= on_threshold``; when the run reaches ``on_decisions`` it enters the event.
    Inside the event it counts consecutive decisions with ``p(event) <= off_threshold`` and
    leaves after ``off_decisions``. A decision that breaks the condition resets the run, and so
    does every transition, so each dwell is measured in the state it leads out of. Probabilities
    strictly between the thresholds keep the current state.

    With ``off_threshold == on_threshold`` a probability exactly at the threshold meets both
    conditions; leaving then also needs ``p(event) < on_threshold``, so a probability parked on
    the threshold keeps the event on rather than toggling it.

    The background state is the other class when there are two, else the first non-event class.
    ``update`` is called once per decision from the decode thread; it does no numpy work beyond
    one ``tolist`` and is not thread-safe.
    """

    _config_type = EventHysteresis

    def __init__(self, hysteresis: EventHysteresis, classes: Sequence[str], hop_s: float) -> None:
        super().__init__(hysteresis, classes, hop_s)
        if hysteresis.event_class not in self._classes:
            raise ValueError(
                f"hysteresis.event_class={hysteresis.event_class!r} is not a class; "
                f"allowed: {list(self._classes)}"
            )
        self._event = hysteresis.event_class
        self._event_index = self._classes.index(self._event)
        self._background = next(c for c in self._classes if c != self._event)
        self._on = float(hysteresis.on_threshold)
        self._off = float(hysteresis.off_threshold)
        self._n_on = dwell_decisions(hysteresis.on_dwell_s, self._hop_s)
        self._n_off = dwell_decisions(hysteresis.off_dwell_s, self._hop_s)
        self._state: str | None = None
        self._run = 0

    # Read-only configuration ----------------------------------------------------------------
    @property
    def event_class(self) -> str:
        """Name of the event state."""
        return self._event

    @property
    def background_class(self) -> str:
        """Name of the state outside the event."""
        return self._background

    @property
    def on_decisions(self) -> int:
        """Consecutive decisions with ``p >= on_threshold`` needed to enter the event."""
        return self._n_on

    @property
    def off_decisions(self) -> int:
        """Consecutive decisions with ``p <= off_threshold`` needed to leave the event."""
        return self._n_off

    # State ------------------------------------------------------------------------------------
    @property
    def state(self) -> str | None:
        """Current state name, ``None`` before the first decision (and after ``reset``)."""
        return self._state

    @property
    def event_state(self) -> bool:
        """``True`` while the event (alarm) is on."""
        return self._state == self._event

    def update(self, probs: np.ndarray) -> tuple[str, bool]:
        """Advance by one decision.

        Parameters
        ----------
        probs : ndarray, shape (n_classes,)
            Class probabilities of this decision, finite.

        Returns
        -------
        state : str
            State after this decision.
        changed : bool
            ``True`` if ``state`` differs from the state before this decision; the first decision
            (after construction or ``reset``) always reports ``True`` so the initial state is
            announced.
        """
        p = _probs_as_floats(probs, len(self._classes))[self._event_index]
        changed = False
        if self._state is None:
            self._state = self._background
            self._run = 0
            changed = True
        if self._state == self._event:
            if p <= self._off and p < self._on:
                self._run += 1
                if self._run >= self._n_off:
                    self._state = self._background
                    self._run = 0
                    changed = True
            else:
                self._run = 0
        else:
            if p >= self._on:
                self._run += 1
                if self._run >= self._n_on:
                    self._state = self._event
                    self._run = 0
                    # An event entered on the very first decision is still one announcement.
                    changed = True
            else:
                self._run = 0
        return self._state, changed

    def reset(self) -> None:
        """Forget the state and any partial run (e.g. after a gap in the input stream)."""
        self._state = None
        self._run = 0

    def __repr__(self) -> str:
        return (
            f"EventSmoother(event={self._event!r}, background={self._background!r}, "
            f"on={self._on}x{self._n_on}, off={self._off}x{self._n_off}, state={self._state!r})"
        )


class StateSmoother(_Smoother):
    """Multi-class state tracker (e.g. wake / NREM / REM) with a margin and a dwell time.

    Parameters
    ----------
    hysteresis : StateHysteresis
        Margin and dwell time.
    classes : sequence of str
        Class names in model output order (at least 2); every one is a possible state.
    hop_s : float
        Time between decisions, seconds of stream time.

    Notes
    -----
    The first decision takes the most probable class. After that, the *candidate* is the most
    probable class other than the current one (ties go to the lower index). The smoother
    switches to the candidate after ``dwell_decisions`` consecutive decisions with the same
    candidate and ``p(candidate) - p(current) >= margin``; a decision that breaks the condition
    or names a different candidate restarts the count.

    A switch also needs ``p(candidate) > p(current)``. This only matters for ``margin == 0``,
    where two classes tied exactly would otherwise swap on every decision.

    ``update`` is called once per decision from the decode thread and is not thread-safe.
    """

    _config_type = StateHysteresis

    def __init__(self, hysteresis: StateHysteresis, classes: Sequence[str], hop_s: float) -> None:
        super().__init__(hysteresis, classes, hop_s)
        self._margin = float(hysteresis.margin)
        self._n_dwell = dwell_decisions(hysteresis.dwell_s, self._hop_s)
        self._current = -1  # index into classes; -1 = no state yet
        self._candidate = -1
        self._run = 0

    @property
    def dwell_decisions(self) -> int:
        """Consecutive decisions a candidate must lead by the margin before a switch."""
        return self._n_dwell

    @property
    def state(self) -> str | None:
        """Current state name, ``None`` before the first decision (and after ``reset``)."""
        return self._classes[self._current] if self._current >= 0 else None

    def update(self, probs: np.ndarray) -> tuple[str, bool]:
        """Advance by one decision.

        Parameters
        ----------
        probs : ndarray, shape (n_classes,)
            Class probabilities of this decision, finite.

        Returns
        -------
        state : str
            State after this decision.
        changed : bool
            ``True`` if ``state`` differs from the state before this decision; the first decision
            (after construction or ``reset``) always reports ``True``.
        """
        values = _probs_as_floats(probs, len(self._classes))
        current = self._current
        if current < 0:
            # max() keeps the first of equal values, so ties go to the lower index.
            self._current = max(range(len(values)), key=values.__getitem__)
            self._candidate = -1
            self._run = 0
            return self._classes[self._current], True
        candidate = -1
        best = -math.inf
        for i, v in enumerate(values):
            if i != current and v > best:
                candidate, best = i, v
        lead = best - values[current]
        if lead >= self._margin and lead > 0.0:
            if candidate == self._candidate:
                self._run += 1
            else:
                self._candidate = candidate
                self._run = 1
            if self._run >= self._n_dwell:
                self._current = candidate
                self._candidate = -1
                self._run = 0
                return self._classes[candidate], True
        else:
            self._candidate = -1
            self._run = 0
        return self._classes[current], False

    def reset(self) -> None:
        """Forget the state and any partial run (e.g. after a gap in the input stream)."""
        self._current = -1
        self._candidate = -1
        self._run = 0

    def __repr__(self) -> str:
        return (
            f"StateSmoother(classes={list(self._classes)}, margin={self._margin}, "
            f"dwell={self._n_dwell} decisions, state={self.state!r})"
        )


def make_smoother(
    hysteresis: EventHysteresis | StateHysteresis, classes: Sequence[str], hop_s: float
) -> EventSmoother | StateSmoother:
    """Build the smoother that matches a hysteresis config.

    Parameters
    ----------
    hysteresis : EventHysteresis or StateHysteresis
        The config; its type selects the smoother.
    classes : sequence of str
        Class names in model output order.
    hop_s : float
        Time between decisions, seconds.

    Returns
    -------
    smoother : EventSmoother or StateSmoother
    """
    if isinstance(hysteresis, EventHysteresis):
        return EventSmoother(hysteresis, classes, hop_s)
    if isinstance(hysteresis, StateHysteresis):
        return StateSmoother(hysteresis, classes, hop_s)
    raise TypeError(
        "hysteresis must be an EventHysteresis or a StateHysteresis, "
        f"got {type(hysteresis).__name__}"
    )


class QualityGate:
    """A smoother that stands aside while too few channels are usable.

    Parameters
    ----------
    smoother : EventSmoother or StateSmoother
    min_good_fraction : float
        Windows with a smaller fraction of good channels (``rtdecode.features.quality``) give the state
        :data:`BAD_SIGNAL` (announced once) and do not advance the hysteresis; the first good
        window after them starts the hysteresis afresh, so its state is announced again.
    """

    def __init__(self, smoother: EventSmoother | StateSmoother, min_good_fraction: float) -> None:
        self.smoother = smoother
        self.min_good_fraction = float(min_good_fraction)
        self._bad = False

    @property
    def hysteresis(self) -> EventHysteresis | StateHysteresis:
        """The wrapped smoother's hysteresis configuration."""
        return self.smoother.hysteresis

    @property
    def state(self) -> str | None:
        """:data:`BAD_SIGNAL`, or the smoother's state."""
        return BAD_SIGNAL if self._bad else self.smoother.state

    def reset(self) -> None:
        """Forget everything (after a gap): the next good window announces its state."""
        self._bad = False
        self.smoother.reset()

    def update(self, probs: np.ndarray, good_fraction: float = 1.0) -> tuple[str, bool]:
        """Advance by one decision; returns ``(state, changed)`` as the smoothers do."""
        if good_fraction < self.min_good_fraction:
            if self._bad:
                return BAD_SIGNAL, False
            self._bad = True
            self.smoother.reset()
            return BAD_SIGNAL, True
        self._bad = False
        return self.smoother.update(probs)
