"""Channel labels for streams and files that carry none."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["default_channel_labels", "labels_or_default"]


def default_channel_labels(n_channels: int) -> tuple[str, ...]:
    """Channel labels used when a stream or file has none: ``("ch000", "ch001", ...)``.

    Parameters
    ----------
    n_channels : int
        Number of channels, >= 1.

    Returns
    -------
    tuple of str, length n_channels
        Zero-padded labels (at least three digits), so that they sort in channel order.
    """
    if isinstance(n_channels, bool) or not isinstance(n_channels, int | np.integer):
        raise TypeError(f"n_channels must be an int, got {type(n_channels).__name__}")
    if n_channels < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    width = max(3, len(str(int(n_channels) - 1)))
    return tuple(f"ch{i:0{width}d}" for i in range(int(n_channels)))


def labels_or_default(labels: Sequence[str] | None, n_channels: int) -> tuple[str, ...]:
    """``labels`` if it names every channel (non-empty, one per channel), else the defaults."""
    labels = tuple(str(x) for x in (labels or ()))
    if len(labels) == n_channels and all(labels):
        return labels
    return default_channel_labels(n_channels)
