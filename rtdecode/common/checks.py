"""Checks of arguments that several stages take: class names, durations in seconds.

Each raises ``TypeError`` for a wrong type and ``ValueError`` for a wrong value, naming the
parameter, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_classes", "check_seconds", "check_int", "check_labels"]


def check_classes(classes: Sequence[str], name: str = "classes") -> tuple[str, ...]:
    """Check a list of class names and return it as a tuple.

    Parameters
    ----------
    classes : sequence of str
        At least two unique, non-empty class names, in model output order.
    name : str
        The parameter's name, for messages.

    Returns
    -------
    classes : tuple of str
    """
    # A bare string is a Sequence of characters: "wake" would silently become four classes.
    if isinstance(classes, str | bytes) or not isinstance(classes, Sequence | np.ndarray):
        raise TypeError(
            f"{name} must be a sequence of str (e.g. a list), got {type(classes).__name__}"
        )
    out = tuple(classes)
    for c in out:
        if not isinstance(c, str):
            raise TypeError(f"{name} must contain str, got {c!r} ({type(c).__name__})")
    if len(out) < 2 or len(set(out)) != len(out) or not all(out):
        raise ValueError(f"{name} must be at least 2 unique non-empty names, got {list(out)}")
    return out


def check_seconds(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check a duration in seconds: a finite number > 0 (>= 0 with ``allow_zero``); as float."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound} s, got {value!r}")
    return value


def check_int(name: str, value: Any, minimum: int) -> int:
    """Check an integer option: an int (not a bool) >= ``minimum``; as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_labels(name: str, y: Any, n_classes: int | None = None) -> np.ndarray:
    """Check a 1-D array of class indices (0 .. ``n_classes`` - 1 when given); as an array."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        allowed = "0 or more" if n_classes is None else f"0..{n_classes - 1}"
        raise ValueError(f"{name} holds class indices {lo}..{hi}; allowed: {allowed}")
    return y
