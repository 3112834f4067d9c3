"""The acquisition's timing policy in plain Python: the reference for the compiled classifier.

The acquisition loop classifies the step from each sample's timestamp to the next as it pulls,
without the GIL (``rtdecode.acquisition._acquire.TimestampClassifier``). This module states the
same policy readably and reports each decision as an event;
``tests/acquisition/test_timing_policy.py`` holds the two to the same counters after every
chunk, on synthetic timestamps (no LSL). The live acquisition does not use it.

The policy (docs/failure-policy.md), with ``period = 1 / nominal rate`` and ``dt`` the
step from one sample's timestamp (clock offset added) to the next:

- ``dt > period + gap tolerance`` is a **forward jump**. A jump of up to 0.5 s (with the one
  already awaiting its verdict, if any) is **pending**: a source that stalls and stamps its
  chunks by push time (pylsl's default) jumps ahead, then steps back chunk by chunk while it
  pushes its backlog; nothing is missing. If the steps back make up half the jump before
  ``1.5 * jump + 20 ms`` worth of samples have passed, it was a **source stall**; otherwise, or
  if the stream pauses first, a **gap** at the jump. A longer jump is a gap at once.
- ``dt < -max(1 s, gap tolerance)`` is a **timestamp reset** (a device or source clock that
  started over); a pending jump is judged a gap first.
- A smaller step back is **jitter** (``nonmonotonic``): sources that stamp chunks by their push
  time step back by up to a chunk.
- A NaN or infinite timestamp, and a finite one whose step would be a reset or a gap at once
  while the next sample of its chunk steps on as if it had been on time (a lone outlier), is a
  **bad timestamp**: counted, and put one period after the sample before it (no step).
- A change of the clock offset between chunks is no step of the data: it is taken off the
  first step it affects, and counted as a **clock jump** when beyond the gap tolerance.

A source that stalled pushes its backlog in a burst that goes on past the verdict: until
``catch_up_until`` (the latest ``judged_at``) the acquisition waits for every packet instead of
napping, so the samples that settle a jump, and those after them, are not held in liblsl's
queue by a nap.

Gaps and resets give the first sample after them (``last_gap_sample``): the decoder's windows
start afresh there. While a jump is pending, ``pending_gap_sample`` holds its first sample: the
decoder decides nothing past it meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "COUNTERS",
    "MAX_PENDING_S",
    "EventKind",
    "PendingJump",
    "TimingEvent",
    "TimingPolicy",
    "classify",
]

# The counters the policy keeps, named as in ``_acquire.COUNTER_NAMES`` (which also holds
# ``lsl_error``, the loop's own).
COUNTERS: tuple[str, ...] = (
    "chunks",
    "samples",
    "gaps",
    "missing_samples",
    "nonmonotonic",
    "last_ts",
    "first_ts",
    "last_gap_sample",
    "timestamp_resets",
    "clock_jumps",
    "pending_gap_sample",
    "source_stalls",
    "bad_timestamps",
)

MAX_PENDING_S = 0.5
"""The longest forward jump (s) that waits for the next samples' verdict."""

# A pending jump is a stall once the steps back make up this share of it, ...
_STALL_SHARE = 0.5
# ... judged by the sample count ``jump * _VERDICT_JUMPS + _VERDICT_EXTRA_S`` seconds after it.
_VERDICT_JUMPS = 1.5
_VERDICT_EXTRA_S = 0.02

EventKind = Literal[
    "clock_jump", "nonmonotonic", "reset", "pending", "stall", "gap", "bad_timestamp"
]


@dataclass(frozen=True)
class TimingEvent:
    """One decision of the policy.

    Attributes
    ----------
    kind : {"clock_jump", "nonmonotonic", "reset", "pending", "stall", "gap", "bad_timestamp"}
        What was decided.
    at_sample : int
        The absolute index of the sample it concerns: the sample after the step (``reset``,
        ``nonmonotonic``), the jump's first sample (``pending``, ``stall``, ``gap``: the
        windows start afresh there), or the chunk's first sample (``clock_jump``).
    size_s : float
        The step (negative back), the jump beyond the nominal periods (``pending``: so far),
        or the offset change (``clock_jump``), in seconds.
    missing_samples : int
        For a ``gap``: the samples the jump stands for (``round(jump / period)``); else 0.
    """

    kind: EventKind
    at_sample: int
    size_s: float
    missing_samples: int = 0


@dataclass
class PendingJump:
    """A forward jump awaiting its verdict.

    Attributes
    ----------
    at_sample : int
        Its first sample.
    jump_s : float
        Its size beyond the nominal periods (later jumps before the verdict add to it).
    back_s : float
        The steps back since it (s, positive).
    judged_at : int
        The sample count from which it is a gap.
    """

    at_sample: int
    jump_s: float = 0.0
    back_s: float = 0.0
    judged_at: int = 0


class TimingPolicy:
    """The acquisition's classification of timestamp steps, fed chunk by chunk.

    Parameters
    ----------
    nominal_rate_hz : float
        The stream's nominal rate.
    gap_tolerance_s : float
        A step longer than one period plus this is a forward jump (>= 0).

    Notes
    -----
    The arithmetic is the kernel's, operation for operation (``t - last - offset_step``, not
    ``t - (last + offset_step)``): the two must agree even where a step lands within an ulp of a
    threshold.
    """

    def __init__(self, nominal_rate_hz: float, gap_tolerance_s: float = 0.05) -> None:
        if not nominal_rate_hz > 0:
            raise ValueError(f"nominal_rate_hz must be > 0, got {nominal_rate_hz}")
        if not gap_tolerance_s >= 0:
            raise ValueError(f"gap_tolerance_s must be >= 0, got {gap_tolerance_s}")
        self.period_s = 1.0 / nominal_rate_hz
        self.gap_tolerance_s = gap_tolerance_s
        self.pending: PendingJump | None = None
        # the latest judged_at so far: a stalled source may push its backlog until then, also
        # after the verdict, so the acquisition waits for every packet (no naps) before it
        self.catch_up_until = 0
        self._counters: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        self._counters["last_ts"] = self._counters["first_ts"] = 0.0
        self._offset_used = 0.0  # the clock offset applied to the newest sample
        self._events: list[TimingEvent] = []

    @property
    def counters(self) -> dict[str, float]:
        """The counters (a copy), keyed by the names of ``COUNTERS``."""
        return dict(self._counters)

    def push(self, timestamps: ArrayLike, offset_s: float = 0.0) -> list[TimingEvent]:
        """Classify one chunk, as the acquisition loop does after a pull.

        Parameters
        ----------
        timestamps : array_like of float, shape (n,)
            The chunk's timestamps in the source's clock, ``n >= 1``.
        offset_s : float
            The clock offset in force (added to every timestamp).

        Returns
        -------
        list of TimingEvent
            The decisions this chunk brought, in order.
        """
        stamps = np.asarray(timestamps, dtype=np.float64)
        if stamps.ndim != 1 or stamps.size == 0:
            raise ValueError(
                f"timestamps must be a non-empty 1-D sequence, got shape {stamps.shape}"
            )
        c = self._counters
        self._events = []
        first = int(c["samples"])
        offset_step = offset_s - self._offset_used
        if c["last_ts"] != 0.0 and abs(offset_step) > self.gap_tolerance_s:
            c["clock_jumps"] += 1
            self._events.append(TimingEvent("clock_jump", first, offset_step))
        last = c["last_ts"]
        values = (stamps + offset_s).tolist()
        corrected = []
        for i, t in enumerate(values):
            if not math.isfinite(t):
                # NaN or infinite (a broken or hostile source): counted, and put one period after
                # the sample before it (no step); with none before, one period before the next
                # finite timestamp of the chunk, else 0 (no timestamp yet)
                c["bad_timestamps"] += 1
                self._events.append(TimingEvent("bad_timestamp", first + i, 0.0))
                if last != 0.0:
                    t = last + self.period_s + offset_step
                else:
                    later = [
                        (j, v) for j, v in enumerate(values[i + 1 :], i + 1) if math.isfinite(v)
                    ]
                    t = later[0][1] - (later[0][0] - i) * self.period_s if later else 0.0
            elif last != 0.0 and self._lone_outlier(values, i, t, last, offset_step):
                # one finite timestamp far off a line its neighbours keep (a glitch in the
                # source's clock): repaired as a NaN is, not a reset or a gap of its size
                c["bad_timestamps"] += 1
                self._events.append(TimingEvent("bad_timestamp", first + i, t - last))
                t = last + self.period_s + offset_step
            if last == 0.0:
                # no sample before: a newest timestamp of exactly 0 reads as none, as in the
                # kernel
                c["first_ts"] = t
                offset_step = 0.0  # the offset in force from the first sample on is no step
            else:
                # the offset step is taken off the first step with a sample before it
                self._classify_step(first + i, t - last - offset_step)
                offset_step = 0.0
            last = t
            corrected.append(t)
        self.corrected = np.array(corrected)
        c["last_ts"] = last
        c["chunks"] += 1
        c["samples"] += stamps.size
        self._offset_used = offset_s
        return self._events

    def pause(self) -> list[TimingEvent]:
        """The stream paused (nothing arrived for a while): no catch-up is coming, so a pending
        jump is a gap.

        Returns
        -------
        list of TimingEvent
            The gap, if a jump was pending.
        """
        self._events = []
        self._judge_pending_a_gap()
        return self._events

    def _lone_outlier(
        self, values: list[float], i: int, t: float, last: float, offset_step: float
    ) -> bool:
        """Whether the finite timestamp ``t`` of sample ``i`` (offset added) is a lone outlier:
        its step would be a reset or a gap at once, while the next sample of the chunk steps
        normally from ``last`` as if ``i`` had been on time. One at a chunk's end has no next
        sample to tell: it is classified as it steps."""
        dt = t - last - offset_step
        limit = self.period_s + self.gap_tolerance_s
        reset_limit = max(self.gap_tolerance_s, 1.0)
        held = self.pending.jump_s if self.pending is not None else 0.0
        if not ((dt > limit and held + dt - self.period_s > MAX_PENDING_S) or dt < -reset_limit):
            return False
        if i + 1 >= len(values) or not math.isfinite(values[i + 1]):
            return False
        return -reset_limit <= values[i + 1] - last - self.period_s - offset_step <= limit

    def _classify_step(self, at: int, dt: float) -> None:
        """Classify the step ``dt`` (s) that ends at sample ``at``."""
        c = self._counters
        if dt > self.period_s + self.gap_tolerance_s:
            self._forward_jump(at, dt)
        elif dt < -max(self.gap_tolerance_s, 1.0):
            self._judge_pending_a_gap()
            c["timestamp_resets"] += 1
            c["last_gap_sample"] = at
            self._events.append(TimingEvent("reset", at, dt))
        elif dt < 0.0:
            c["nonmonotonic"] += 1
            self._events.append(TimingEvent("nonmonotonic", at, dt))
            if self.pending is not None:
                self._step_back(dt)
        if self.pending is not None and at >= self.pending.judged_at:
            self._judge_pending_a_gap()

    def _forward_jump(self, at: int, dt: float) -> None:
        """A forward jump: pending (alone or added to the one pending), or a gap at once."""
        held = self.pending.jump_s if self.pending is not None else 0.0
        if held + dt - self.period_s <= MAX_PENDING_S:
            if self.pending is None:
                self.pending = PendingJump(at)
                self._counters["pending_gap_sample"] = at
            p = self.pending
            p.jump_s += dt - self.period_s
            p.judged_at = at + int((_VERDICT_JUMPS * p.jump_s + _VERDICT_EXTRA_S) / self.period_s)
            self.catch_up_until = max(self.catch_up_until, p.judged_at)
            self._events.append(TimingEvent("pending", p.at_sample, p.jump_s))
        else:
            self._judge_pending_a_gap()
            self._gap(at, dt - self.period_s)

    def _step_back(self, dt: float) -> None:
        """A step back while a jump is pending: a stall once they make up enough of it."""
        p = self.pending
        p.back_s -= dt
        if p.back_s >= _STALL_SHARE * p.jump_s:
            self.pending = None
            self._counters["source_stalls"] += 1
            self._counters["pending_gap_sample"] = 0
            self._events.append(TimingEvent("stall", p.at_sample, p.jump_s))

    def _judge_pending_a_gap(self) -> None:
        if self.pending is not None:
            p, self.pending = self.pending, None
            self._gap(p.at_sample, p.jump_s)
            self._counters["pending_gap_sample"] = 0

    def _gap(self, at: int, jump_s: float) -> None:
        missing = math.floor(jump_s / self.period_s + 0.5)
        c = self._counters
        c["gaps"] += 1
        c["missing_samples"] += missing
        c["last_gap_sample"] = at
        self._events.append(TimingEvent("gap", at, jump_s, missing))


def classify(
    chunks: Iterable[ArrayLike | None], nominal_rate_hz: float, gap_tolerance_s: float = 0.05
) -> Iterator[tuple[list[TimingEvent], dict[str, float]]]:
    """Run the policy over a stream's chunks (clock offset 0).

    Parameters
    ----------
    chunks : iterable of array_like or None
        Each chunk's timestamps as pulled; ``None`` where the stream paused.
    nominal_rate_hz : float
        The stream's nominal rate.
    gap_tolerance_s : float
        A step longer than one period plus this is a forward jump.

    Yields
    ------
    events : list of TimingEvent
        The decisions the chunk (or pause) brought.
    counters : dict
        The counters after it.
    """
    policy = TimingPolicy(nominal_rate_hz, gap_tolerance_s)
    for chunk in chunks:
        events = policy.pause() if chunk is None else policy.push(chunk)
        yield events, policy.counters
