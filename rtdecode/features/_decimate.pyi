"""Stubs of the compiled FIR decimator (``cython_ext/rtdecode/features/_decimate.pyx``)."""

import numpy as np
from numpy.typing import ArrayLike, NDArray

KERNEL: str  # the inner kernel this CPU runs: "avx2+fma" or "portable"
KERNELS: tuple[str, ...]

class FirDecimator:
    """Stateful, causal FIR decimator of multichannel float32 streams (chunking-invariant)."""

    def __init__(
        self,
        taps: ArrayLike,
        factor: int,
        n_channels: int,
        block: int = 4096,
        kernel: str = "auto",
    ) -> None: ...
    @property
    def kernel(self) -> str:
        """The inner kernel this decimator runs: "avx2+fma" or "portable"."""
    @property
    def factor(self) -> int:
        """The decimation factor."""
    @property
    def n_channels(self) -> int:
        """Channels per sample."""
    @property
    def n_in(self) -> int:
        """Input samples consumed so far."""
    def n_out_for(self, n: int) -> int:
        """Outputs that the next ``n`` input samples will produce."""
    def reset(self) -> None:
        """Forget the history (as after a stream gap)."""
    def process(self, x: NDArray[np.float32], out: NDArray[np.float32]) -> int:
        """Consume ``x`` (n x n_channels); write the outputs it completes into ``out``."""
    def process_columns(self, x: NDArray[np.float32], out: NDArray[np.float32], column: int) -> int:
        """As ``process``, with the outputs written channel-major from ``out[:, column]``."""
