"""Stubs of the compiled record gatherer (``cython_ext/rtdecode/offline/_records.pyx``)."""

import numpy as np
from numpy.typing import NDArray

RAW_KINDS: tuple[str, ...]

class ChannelRecords:
    """Each channel's records, checked once, read into scaled samples x channels."""

    def __init__(self, records: list[NDArray[np.integer]], raw: str = "int16") -> None: ...
    @property
    def n_channels(self) -> int:
        """Channels (one records array each)."""
    @property
    def n_samples(self) -> int:
        """Samples every channel's records hold."""
    def gather(self, gains: NDArray[np.float32], first: int, out: NDArray[np.float32]) -> None:
        """``out[t, j] = gains[j] * sample[first + t]`` of channel ``j``, for every row of
        ``out``."""
