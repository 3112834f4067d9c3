"""Stubs of the compiled band-power steps (``cython_ext/rtdecode/features/_bandpower.pyx``)."""

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

_F32: TypeAlias = NDArray[np.float32]
_F64: TypeAlias = NDArray[np.float64]
_Index: TypeAlias = NDArray[np.intp]

def finish_bands(
    tail: _F32,
    tail_taper: _F32,
    quad_all: _F32,
    tapered: _F32,
    tail_quad: _F32,
    cross: _F32,
    head: _F32,
    ratio_num: _Index,
    ratio_den: _Index,
    relative: bool,
    floor: float,
    out: _F32,
) -> None:
    """Log band powers and log ratios of every channel, from the window's tail and head terms."""

def taper_head(head: _F32, taper: _F32, out: _F32) -> None:
    """The window's head, tapered and zero-padded to the window, into ``out``."""

def head_terms(
    spectrum: _F32, bin_scale: _F64, band_bins: _Index, bases: _F32, cross: _F32, head: _F32
) -> None:
    """The head's terms of every band, from its spectrum, into ``cross`` and ``head``."""

def finish_piece(
    tail: _F32, tail_map: _F32, head: _F32, owner: _Index, spectrum: _F32, out: _F32
) -> None:
    """One piece's fast-band powers, from its tail and its head's share, into ``out``."""

def join_row(
    long_logs: _F32,
    pieces: _F32,
    long_bands: _Index,
    short_bands: _Index,
    ratio_num: _Index,
    ratio_den: _Index,
    relative: bool,
    floor: float,
    out: _F32,
    nonfinite: NDArray[np.uint8],
) -> int:
    """A window's row from its whole-window logs and its pieces' powers; the non-finite count."""
