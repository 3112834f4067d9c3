"""Bad channels injected into the simulator's stream: NaN, flat, railed or artefact segments."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["ChannelFault", "FAULT_KINDS"]

logger = logging.getLogger("rtdecode")

FAULT_KINDS = ("nan", "flat", "rail", "artefact")


@dataclass(frozen=True)
class ChannelFault:
    """A bad channel to inject into the simulated stream (for tests and demos).

    Parameters
    ----------
    channel : int
        Channel index.
    kind : {"nan", "flat", "rail", "artefact"}
        ``nan``: NaN samples (a dropped ADC); ``flat``: zeros (a broken lead); ``rail``: amplified
        x20 and clipped at 8 standard deviations (a saturated amplifier); ``artefact``: a 3 Hz
        swing of 500x the channel's standard deviation (movement).
    start_s, end_s : float
        When, in seconds of stream; ``end_s=None`` lasts to the end.
    """

    channel: int
    kind: str
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {FAULT_KINDS}")
        if self.channel < 0:
            raise ValueError(f"fault channel must be >= 0, got {self.channel}")
        if self.start_s < 0 or (self.end_s is not None and self.end_s <= self.start_s):
            raise ValueError(
                f"fault times must satisfy 0 <= start < end, got {self.start_s}-{self.end_s}"
            )

    @classmethod
    def parse(cls, text: str) -> ChannelFault:
        """``"CH:KIND"``, ``"CH:KIND@START"`` or ``"CH:KIND@START-END"`` (seconds)."""
        try:
            head, _, when = text.partition("@")
            channel, kind = head.split(":")
            start, _, end = when.partition("-")
            return cls(
                int(channel), kind.strip().lower(), float(start or 0.0), float(end) if end else None
            )
        except ValueError as exc:
            raise ValueError(
                f"bad fault {text!r} ({exc}); write CH:KIND[@START[-END]] with "
                f"KIND one of {FAULT_KINDS}, e.g. 3:nan@5-8"
            ) from None

    def apply(
        self, block: np.ndarray, first_sample: int, fs_hz: float, scale: np.ndarray | None = None
    ) -> None:
        """Inject the fault into ``block`` (samples x channels), whose row 0 is ``first_sample``.

        ``scale`` holds each channel's standard deviation (default: the block's); a stream should
        pass one fixed value so the rail stays at one level.
        """
        n = block.shape[0]
        lo = max(0, round(self.start_s * fs_hz) - first_sample)
        hi = n if self.end_s is None else min(n, round(self.end_s * fs_hz) - first_sample)
        if lo >= hi or self.channel >= block.shape[1]:
            return
        col = block[lo:hi, self.channel]
        std = float(np.std(block[:, self.channel]) if scale is None else scale[self.channel])
        if self.kind == "nan":
            col[:] = np.nan
        elif self.kind == "flat":
            col[:] = 0.0
        elif self.kind == "rail":
            # a saturating amplifier: gain x20 against rails at 8 standard deviations, which
            # the clean signal never reaches
            rail = 8.0 * std
            np.clip(col * 20.0, -rail, rail, out=col)
        else:
            t = (first_sample + lo + np.arange(hi - lo)) / fs_hz
            col += (500.0 * std * np.sin(2 * np.pi * 3.0 * t)).astype(col.dtype)
