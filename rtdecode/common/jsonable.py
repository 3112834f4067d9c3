"""JSON encoding of the values rtdecode writes: numpy scalars and arrays, paths."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_default", "finite_or_none"]


def json_default(obj: Any) -> Any:
    """``default=`` for :func:`json.dumps`: numpy scalars and arrays, paths, sets; else TypeError."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"a value of type {type(obj).__name__} is not JSON-serialisable: {obj!r}")


def finite_or_none(obj: Any) -> Any:
    """Replace non-finite floats by None, recursively (JSON has no NaN or Infinity)."""
    if isinstance(obj, np.generic | np.ndarray | Path):
        obj = json_default(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj
