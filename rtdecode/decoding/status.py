"""What the decoder tells observers: its status snapshot and each decision as observed.

Both are plain frozen dataclasses without dependencies on the decoder, so the monitor (in this
process or another one) and the CLI read them without importing the decode thread.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from rtdecode.common.jsonable import json_default

__all__ = ["DecoderStatus", "Observation"]


@dataclass(frozen=True)
class DecoderStatus:
    """A snapshot of the decoder for status lines and the monitor (copied, never shared).

    The one schema of the decoder's status: :meth:`Decoder.status` makes it, the telemetry
    publishes it as JSON on ``rtdecode-status`` (:meth:`to_json`) and the monitor in another
    process reads it back (:meth:`from_json`).
    """

    decisions: int
    state: str | None
    state_since_s: float | None
    last_timestamp: float | None  # LSL timestamp of the newest decision's window end
    probabilities: tuple[float, ...]
    classes: tuple[str, ...]
    decisions_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    samples: int
    gaps: int
    missing_samples: int
    overruns: int
    input_rate_hz: float
    clock_offset_s: float
    counters: dict = field(default_factory=dict)
    stale_decisions: int = 0
    skipped_decisions: int = 0
    # "connected", "stalled" (no sample for stall_s), or "recovering" (after a gap, a timestamp
    # reset, a skip or a stall: waiting for a full window of fresh samples)
    stream_health: str = "connected"
    quality: float = 1.0  # fraction of good channels in the newest window
    bad_channels: dict = field(default_factory=dict)  # {channel: reason} in that window
    decoder_cpu_cores: float | None = None  # the decoder process's CPU, set by the telemetry
    blanked_decisions: int = 0  # windows held back by a stimulation artefact
    stim: dict = field(default_factory=dict)  # trigger counts: sent, sham, suppressed
    stim_armed: bool | None = None  # None: no stimulation
    log_error: str | None = None  # the decision log cannot be written (its lines are held)
    bad_model_outputs: int = 0  # windows not decided: the model's output was no probabilities

    @classmethod
    def empty(cls, classes: tuple[str, ...]) -> DecoderStatus:
        """The status before the first decision."""
        return cls(0, None, None, None, (), tuple(classes), 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0)

    def to_json(self) -> str:
        """The status as one JSON object."""
        return json.dumps(asdict(self), default=json_default)

    @classmethod
    def from_json(cls, text: str) -> DecoderStatus:
        """Read back :meth:`to_json`'s output; unknown keys (a newer decoder's) are ignored."""
        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["probabilities"] = tuple(d.get("probabilities") or ())
        d["classes"] = tuple(d.get("classes") or ())
        return cls(**d)

    def line(self) -> str:
        """One compact status line."""
        probs = " ".join(f"{c}={p:.2f}" for c, p in zip(self.classes, self.probabilities))
        # before the first decision there is no latency to show (0.00 ms would claim one)
        latency = (
            f"latency p50 {self.latency_p50_ms:.2f} p99 {self.latency_p99_ms:.2f} ms"
            if self.decisions
            else "latency -"
        )
        return (
            f"state {self.state or '-':<8} {probs} | {self.decisions_per_s:4.1f} dec/s "
            f"{latency} | "
            f"in {self.input_rate_hz / 1000:.1f} kHz gaps {self.gaps} lost {self.missing_samples} "
            f"overruns {self.overruns}"
            + ("" if self.stream_health == "connected" else f" | {self.stream_health.upper()}")
            + (
                f" | bad ch {', '.join(f'{c}:{r}' for c, r in self.bad_channels.items())}"
                if self.bad_channels
                else ""
            )
            + (f" | LOG ERROR: {self.log_error}" if self.log_error else "")
            + (f" | BAD MODEL OUTPUTS {self.bad_model_outputs}" if self.bad_model_outputs else "")
            + (
                f" | triggers {self.stim.get('sent', 0)} sham {self.stim.get('sham', 0)} "
                f"suppressed {self.stim.get('suppressed', 0)} held {self.blanked_decisions}"
                if self.stim
                else ""
            )
        )


@dataclass(frozen=True)
class Observation:
    """One decision as an observer sees it (copied: the decoder keeps nothing shared)."""

    end_sample: int
    timestamp: float
    probabilities: tuple[float, ...]
    state: str
    changed: bool
    features: np.ndarray
    quality: float = 1.0
