"""Stubs of the compiled channel checks (``cython_ext/rtdecode/features/_quality.pyx``)."""

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

_F32: TypeAlias = NDArray[np.float32]
_I32: TypeAlias = NDArray[np.int32]

def summarise_bins(
    store: _F32,
    col0: int,
    n_bins: int,
    bin_size: int,
    min_run: int,
    first_bin: int,
    lo: _F32,
    hi: _F32,
    nonfinite: NDArray[np.uint8],
    repeats: _I32,
    at_max: _I32,
    at_min: _I32,
) -> None:
    """Per-bin minimum, maximum, non-finite flag and repeat counts of each channel."""

def all_fine(
    lo: _F32,
    hi: _F32,
    nonfinite: NDArray[np.uint8],
    repeats: _I32,
    stuck_limit: float,
    max_deviation: float,
    min_deviation: float,
    alpha: float,
    log_typical: NDArray[np.float64],
    n_typical: NDArray[np.int64],
) -> bool:
    """Whether every channel of the window is fine (and if so, update their typical values)."""
