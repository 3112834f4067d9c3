"""The acquisition's timing policy without LSL: the compiled classifier (the code the live loop
runs on every chunk) against its plain-Python reference (``rtdecode.acquisition.timing``), on
synthetic timestamp sequences; plus cases with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rtdecode.acquisition._acquire import COUNTER_NAMES, TimestampClassifier
from rtdecode.acquisition.timing import COUNTERS, TimingEvent, TimingPolicy, classify

# No example database and derandomized: every machine runs the same examples.
PROPERTY = settings(max_examples=60, deadline=None, database=None, derandomize=True)

RATES = (250.0, 1000.0, 2000.0, 30000.0, 32000.0)
TOLERANCES = (0.0, 0.005, 0.05, 0.3, 1.5)
MAX_SAMPLES = 30000  # per generated stream (the reference runs sample by sample in Python)
MAX_CHUNKS = 1500


def _kernel_counters(kernel: TimestampClassifier) -> dict[str, float]:
    counters = dict(zip(COUNTER_NAMES, kernel.counters.tolist()))
    assert counters.pop("lsl_error") == 0
    return counters


def _assert_agree(kernel: TimestampClassifier, reference: TimingPolicy, where: str) -> None:
    assert _kernel_counters(kernel) == reference.counters, where
    expected = None if reference.pending is None else dataclasses.astuple(reference.pending)
    assert kernel.pending == expected, where
    assert kernel.catch_up_until == reference.catch_up_until, where


class _Both:
    """The kernel and the reference fed alike, checked to agree after every call."""

    def __init__(self, fs: float, tol: float = 0.05) -> None:
        self.kernel = TimestampClassifier(fs, tol)
        self.reference = TimingPolicy(fs, tol)
        self.events: list[TimingEvent] = []
        self.calls = 0

    def push(self, stamps: np.ndarray, offset_s: float = 0.0) -> list[TimingEvent]:
        corrected = self.kernel.push(stamps, offset_s)
        events = self.reference.push(stamps, offset_s)
        # finite timestamps are kept as sent (+ offset) but for the lone outliers, which are
        # counted as bad; repaired ones alike in both
        assert np.array_equal(corrected, self.reference.corrected)
        finite = np.isfinite(np.asarray(stamps, np.float64))
        kept = corrected[finite] == np.asarray(stamps, np.float64)[finite] + offset_s
        bad = sum(e.kind == "bad_timestamp" for e in events)
        assert (~kept).sum() == bad - (~finite).sum()
        return self._after(events, f"chunk {self.calls}")

    def pause(self) -> list[TimingEvent]:
        self.kernel.pause()
        return self._after(self.reference.pause(), f"pause after call {self.calls}")

    def _after(self, events: list[TimingEvent], where: str) -> list[TimingEvent]:
        self.calls += 1
        _assert_agree(self.kernel, self.reference, where)
        self.events += events
        return events

    @property
    def counters(self) -> dict[str, float]:
        return self.reference.counters


def _assert_events_account_for_counters(events: list[TimingEvent], counters: dict) -> None:
    kinds = [e.kind for e in events]
    assert kinds.count("gap") == counters["gaps"]
    assert sum(e.missing_samples for e in events) == counters["missing_samples"]
    assert kinds.count("stall") == counters["source_stalls"]
    assert kinds.count("reset") == counters["timestamp_resets"]
    assert kinds.count("nonmonotonic") == counters["nonmonotonic"]
    assert kinds.count("clock_jump") == counters["clock_jumps"]


# --- synthetic sources -----------------------------------------------------------------------


def _steady(t, count, period, stamping, push_chunk, jitter_s, rng):
    """``count`` samples from nominal time ``t``: stamped at their nominal times plus uniform
    jitter, or by push time (each chunk of ``push_chunk`` at its last sample's time plus a
    random delay, the samples before it spaced back by one period)."""
    index = np.arange(count)
    if stamping == "nominal":
        return t + index * period + (rng.uniform(-jitter_s, jitter_s, count) if jitter_s else 0.0)
    ends = np.minimum(index // push_chunk * push_chunk + push_chunk - 1, count - 1)
    delays = (
        rng.uniform(0.0, jitter_s, count // push_chunk + 1)[index // push_chunk]
        if jitter_s
        else 0.0
    )
    return t + ends * period + delays - (ends - index) * period


def _stall(t, period, stall_s, push_chunk, eps_s):
    """A source stamping by push time that stops for ``stall_s``, then pushes its backlog, chunk
    after chunk ``eps_s`` apart, until it is back on time: a jump ahead, then steps back."""
    eps_s = min(eps_s, 0.5 * push_chunk * period)  # it must catch up
    span = push_chunk * period
    n_chunks = int(stall_s / (span - eps_s)) + 2
    k = np.arange(n_chunks)
    ends = t + (push_chunk - 1) * period + k * span  # each chunk's last sample, nominal
    pushed = ends[0] + stall_s + k * eps_s
    caught_up = int(np.argmax(ends >= pushed)) if np.any(ends >= pushed) else n_chunks - 1
    stamp_ends = np.maximum(ends, pushed)[: caught_up + 1]
    back = np.arange(push_chunk - 1, -1, -1) * period
    return (stamp_ends[:, None] - back[None, :]).ravel(), t + (caught_up + 1) * span


@st.composite
def _segments(draw, fs):
    period = 1.0 / fs
    steady = st.tuples(
        st.just("steady"),
        st.integers(1, 4000),
        st.sampled_from(["nominal", "push"]),
        st.integers(1, 64),
        st.sampled_from([0.0, 0.3 * period, 0.002, 0.012]),
    )
    stall = st.tuples(
        st.just("stall"),
        st.floats(0.001, 0.6),
        st.sampled_from([1, 4, 20, 32, 200]),
        st.sampled_from([0.0, 1e-5, 3e-4]),
    )
    # the source's clock moves without samples: samples lost (whole periods, or not), a
    # restarted clock, any step
    lost = st.builds(
        lambda k, frac: (k + frac) * period,
        st.integers(1, int(1.2 * fs)),
        st.sampled_from([0, 0.3]),
    )
    shift = st.tuples(
        st.just("shift"),
        st.one_of(
            lost,
            st.floats(-3.0, 3.0),
            st.sampled_from([-2.0, -1.0, -0.999, -0.3, 0.049, 0.2, 0.5, 0.51]),
        ),
    )
    first = draw(steady)
    return [first] + draw(st.lists(st.one_of(steady, stall, shift), max_size=5))


@st.composite
def _streams(draw):
    """``(fs, tolerance, timestamps, segment starts)`` of a synthetic source."""
    fs = draw(st.sampled_from(RATES))
    tol = draw(st.sampled_from(TOLERANCES))
    period = 1.0 / fs
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = draw(st.sampled_from([1.0, 1000.0, 86400.25, 1e6]))  # the next sample's nominal time
    parts, starts, n = [], [], 0
    for kind, *args in draw(_segments(fs)):
        starts.append(n)
        if kind == "steady":
            count, stamping, push_chunk, jitter_s = args
            stamps = _steady(t, count, period, stamping, push_chunk, jitter_s, rng)
            t += count * period
        elif kind == "stall":
            stamps, t = _stall(t, period, *args)
        else:
            stamps, t = np.empty(0), t + args[0]
        parts.append(stamps)
        n += len(stamps)
    return fs, tol, np.concatenate(parts)[:MAX_SAMPLES], starts


@st.composite
def _feeds(draw):
    """A stream as the loop pulls it: chunks of 1-1024 samples, with pauses and clock-offset
    changes between some of them: ``(fs, tolerance, [(timestamps, offset) or None])``."""
    fs, tol, stamps, starts = draw(_streams())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    max_chunk = draw(st.sampled_from([1, 5, 64, 1024]))
    cuts = np.cumsum(rng.integers(1, max_chunk + 1, len(stamps)))
    if draw(st.booleans()):  # pulls that end where the source changed
        cuts = np.union1d(cuts, np.asarray(starts[1:], dtype=np.int64))
    cuts = cuts[cuts < len(stamps)][: MAX_CHUNKS - 1]
    stamps = stamps[: cuts[-1] + max_chunk] if len(cuts) == MAX_CHUNKS - 1 else stamps
    pause_p = draw(st.sampled_from([0.0, 0.05, 0.5]))
    offset_p = draw(st.sampled_from([0.0, 0.02, 0.3]))
    offset = draw(st.sampled_from([0.0, 1e-4, -0.3, 2.5]))
    steps = [2e-4, -2e-4, 0.04, -0.04, 0.3, -0.3, 1.7, -5.0]
    feed = []
    for chunk in np.split(stamps, cuts):
        if rng.random() < pause_p:
            feed.append(None)
        if rng.random() < offset_p:
            offset += steps[rng.integers(len(steps))]
        feed.append((chunk, offset))
    return fs, tol, feed


# --- the kernel against the reference --------------------------------------------------------


def test_the_reference_keeps_the_kernels_counters():
    assert set(COUNTERS) == set(COUNTER_NAMES) - {"lsl_error"}


@PROPERTY
@given(_feeds())
def test_kernel_and_reference_agree_after_every_chunk(feed):
    fs, tol, items = feed
    both = _Both(fs, tol)
    for item in items:
        if item is None:
            both.pause()
        else:
            both.push(*item)
    both.pause()  # the stream ends: whatever is pending is settled
    assert both.counters["samples"] == sum(len(item[0]) for item in items if item is not None)
    assert both.counters["pending_gap_sample"] == 0 and both.reference.pending is None
    _assert_events_account_for_counters(both.events, both.counters)


@PROPERTY
@given(
    fs=st.sampled_from(RATES),
    tol=st.sampled_from([0.05, 0.3]),
    stall_s=st.floats(0.0, 0.6),
    chunk_share=st.floats(0.0, 1.0),
    eps_share=st.floats(0.0, 0.1),
    pull=st.integers(8, 1024),
)
def test_a_stalled_source_catching_up_in_chunks_is_a_stall_never_a_gap(
    fs, tol, stall_s, chunk_share, eps_share, pull
):
    """A source stamping its chunks by push time, stalled, then pushing its backlog a little
    faster than a chunk per chunk's span. With chunks of at least 4 samples, at most 20 ms
    (under the tolerance) and an eighth of the stall, the steps back make up half the jump
    within the verdict's 1.5 jumps + 20 ms: a stall, nothing missing. A stall within the
    tolerance is no jump; one over 0.5 s is a gap at once."""
    period = 1.0 / fs
    assume(abs(stall_s - tol) > 1e-6 and abs(stall_s - 0.5) > 1e-6)
    longest = min(0.02, stall_s / 8) if tol < stall_s < 0.5 else 0.02
    push_chunk = max(4, int(chunk_share * longest * fs))
    assume(push_chunk * period <= longest)
    eps_s = eps_share * (push_chunk - 1) * period
    before = _steady(T0, int(0.1 * fs) + push_chunk, period, "push", push_chunk, 0.0, None)
    before = before[: len(before) // push_chunk * push_chunk]
    stalled, t = _stall(T0 + len(before) * period, period, stall_s, push_chunk, eps_s)
    after = _steady(t, int(0.05 * fs), period, "push", push_chunk, 0.0, None)
    stamps = np.concatenate([before, stalled, after])
    both = _Both(fs, tol)
    for start in range(0, len(stamps), pull):
        both.push(stamps[start : start + pull])
    c = both.counters
    assert c["pending_gap_sample"] == 0 and c["timestamp_resets"] == 0
    if stall_s < tol:
        assert c["source_stalls"] == 0 and c["gaps"] == 0
    elif stall_s < 0.5:
        assert c["source_stalls"] == 1 and c["gaps"] == 0 and c["missing_samples"] == 0
    else:
        assert c["source_stalls"] == 0 and c["gaps"] == 1
        assert c["last_gap_sample"] == len(before)
        assert abs(c["missing_samples"] - stall_s * fs) <= 0.5 + 1e-6


@PROPERTY
@given(_streams(), st.integers(1, 1024), st.integers(0, 2**32 - 1))
def test_the_chunking_does_not_change_the_verdicts(stream, size, seed):
    """The same samples pulled in other chunks (offset unchanged, no pause): the same counters."""
    fs, tol, stamps, _ = stream
    fixed, random = TimestampClassifier(fs, tol), TimestampClassifier(fs, tol)
    for start in range(0, len(stamps), size):
        fixed.push(stamps[start : start + size])
    cuts = np.cumsum(np.random.default_rng(seed).integers(1, 100, len(stamps)))
    for chunk in np.split(stamps, cuts[cuts < len(stamps)]):
        random.push(chunk)
    a, b = _kernel_counters(fixed), _kernel_counters(random)
    assert a.pop("chunks") >= 1 and b.pop("chunks") >= 1
    assert a == b
    assert fixed.pending == random.pending


# --- known answers ---------------------------------------------------------------------------

FS = 2000.0
PERIOD = 1.0 / FS
T0 = 1000.0


def _nominal(n, start=0):
    return T0 + np.arange(start, start + n) * PERIOD


def _feed(both, stamps, size=20):
    for start in range(0, len(stamps), size):
        both.push(stamps[start : start + size])


def _pushed_with_stall(stall_s, stall_at=8000, n=12000, push_chunk=20):
    """Timestamps of a source stamping 10 ms chunks by push time that stalls ``stall_s`` before
    sample ``stall_at``, then pushes its backlog 0.1 ms apart."""
    before = _steady(T0, stall_at, PERIOD, "push", push_chunk, 0.0, None)
    stalled, t = _stall(T0 + stall_at * PERIOD, PERIOD, stall_s, push_chunk, 1e-4)
    after = _steady(t, n - stall_at - len(stalled), PERIOD, "push", push_chunk, 0.0, None)
    return np.concatenate([before, stalled, after])


def test_a_30ms_stall_made_up_by_steps_back_is_a_source_stall_not_a_gap():
    both = _Both(FS, tol=0.01)
    _feed(both, _pushed_with_stall(0.03))
    c = both.counters
    assert c["source_stalls"] == 1 and c["gaps"] == 0 and c["missing_samples"] == 0
    assert c["pending_gap_sample"] == 0 and c["last_gap_sample"] == 0
    assert c["nonmonotonic"] >= 2  # the backlog's steps back
    pending, stall = (e for e in both.events if e.kind in ("pending", "stall"))
    assert pending.at_sample == stall.at_sample == 8000
    assert pending.size_s == pytest.approx(0.03, abs=PERIOD)


def test_the_catch_up_after_a_stall_lasts_past_its_verdict():
    """A stall's backlog goes on arriving after the steps back settled it: the loop must not
    nap before the jump's judged_at (its 1.5 jumps + 20 ms of samples after it)."""
    both = _Both(FS, tol=0.01)
    _feed(both, _pushed_with_stall(0.03))
    assert both.counters["source_stalls"] == 1
    jump_s = [e for e in both.events if e.kind == "pending"][-1].size_s
    assert both.kernel.catch_up_until == 8000 + int((1.5 * jump_s + 0.02) / PERIOD)
    # past the 30 ms of samples the stall held back
    assert both.kernel.catch_up_until > 8000 + 0.03 * FS


def test_a_30ms_stall_is_within_the_default_tolerance():
    """At the live default (50 ms) the same stall is no forward jump: its steps back are
    jitter."""
    both = _Both(FS, tol=0.05)
    _feed(both, _pushed_with_stall(0.03))
    c = both.counters
    assert c["source_stalls"] == 0 and c["gaps"] == 0 and c["nonmonotonic"] >= 2
    assert not [e for e in both.events if e.kind == "pending"]


def test_a_150ms_stall_is_a_source_stall_at_the_default_tolerance():
    both = _Both(FS)
    _feed(both, _pushed_with_stall(0.15))
    c = both.counters
    assert c["source_stalls"] == 1 and c["gaps"] == 0 and c["missing_samples"] == 0


def test_samples_lost_in_a_jump_are_a_gap_once_the_timestamps_do_not_come_back():
    """200 ms of samples lost before sample 8000: pending at once, a gap of 400 missing samples
    once 1.5 jumps + 20 ms worth of samples have passed (640)."""
    stamps = np.concatenate([_nominal(8000), _nominal(4000, start=8400)])
    both = _Both(FS)
    _feed(both, stamps[:8020])
    assert both.counters["pending_gap_sample"] == 8000 and both.counters["gaps"] == 0
    assert both.reference.pending.judged_at == 8000 + 640
    _feed(both, stamps[8020:8640])
    assert both.counters["gaps"] == 0  # the verdict is due at sample 8640
    both.push(stamps[8640:8641])
    c = both.counters
    assert c["gaps"] == 1 and c["missing_samples"] == 400 and c["last_gap_sample"] == 8000
    assert c["pending_gap_sample"] == 0 and c["source_stalls"] == 0
    _feed(both, stamps[8641:])
    assert both.counters["gaps"] == 1


def test_a_jump_longer_than_half_a_second_is_a_gap_at_once():
    stamps = np.concatenate([_nominal(100), _nominal(100, start=100 + 1600)])
    both = _Both(FS)
    both.push(stamps[:101])
    c = both.counters
    assert c["gaps"] == 1 and c["missing_samples"] == 1600 and c["last_gap_sample"] == 100
    assert c["pending_gap_sample"] == 0


def test_a_pending_jump_is_a_gap_when_the_stream_pauses():
    stamps = np.concatenate([_nominal(100), _nominal(50, start=100 + 200)])
    both = _Both(FS)
    _feed(both, stamps)
    assert both.counters["pending_gap_sample"] == 100
    (gap,) = both.pause()
    assert gap == TimingEvent("gap", 100, pytest.approx(0.1), 200)
    assert both.counters["gaps"] == 1 and both.counters["pending_gap_sample"] == 0
    assert both.pause() == []  # nothing left to judge


def test_jumps_before_the_verdict_add_up_then_a_gap_beyond_half_a_second():
    """Two 200 ms jumps wait as one of 400 ms at the first; a third makes it over 0.5 s: the
    pending one is a gap there, the third one a gap of its own."""
    skip = 400  # samples per 200 ms
    stamps = np.concatenate(
        [_nominal(100), _nominal(100, 100 + skip), _nominal(100, 200 + 2 * skip)]
        + [_nominal(100, 300 + 3 * skip)]
    )
    both = _Both(FS)
    both.push(stamps[:250])
    assert both.reference.pending.at_sample == 100
    assert both.reference.pending.jump_s == pytest.approx(0.4)
    both.push(stamps[250:])
    c = both.counters
    assert c["gaps"] == 2 and c["missing_samples"] == 2 * skip + skip
    assert [(e.at_sample, e.missing_samples) for e in both.events if e.kind == "gap"] == [
        (100, 2 * skip),
        (300, skip),
    ]


def test_a_2s_step_back_is_a_reset():
    stamps = np.concatenate([_nominal(500), _nominal(500, start=500) - 2.0])
    both = _Both(FS)
    _feed(both, stamps)
    c = both.counters
    assert c["timestamp_resets"] == 1 and c["last_gap_sample"] == 500
    assert c["gaps"] == 0 and c["nonmonotonic"] == 0


@pytest.mark.parametrize("back_s, tol", [(0.9, 0.05), (1.5, 2.0)])
def test_a_step_back_within_the_reset_limit_is_jitter(back_s, tol):
    """Resets need a step back beyond max(1 s, gap tolerance)."""
    stamps = np.concatenate([_nominal(500), _nominal(500, start=500) - back_s])
    both = _Both(FS, tol)
    _feed(both, stamps)
    assert both.counters["timestamp_resets"] == 0 and both.counters["nonmonotonic"] == 1


def test_a_one_chunk_step_back_is_nonmonotonic():
    """Chunks stamped by push time, one pushed a chunk (10 ms) late: the next steps back."""
    stamps = _steady(T0, 2000, PERIOD, "push", 20, 0.0, None)
    stamps[1000:1020] += 0.01
    both = _Both(FS)
    _feed(both, stamps, size=64)
    c = both.counters
    assert c["nonmonotonic"] == 1 and c["gaps"] == 0 and c["timestamp_resets"] == 0
    (step,) = (e for e in both.events if e.kind == "nonmonotonic")
    assert step.at_sample == 1020 and step.size_s == pytest.approx(-0.01 + PERIOD)


def test_a_clock_offset_change_is_a_clock_jump_not_a_gap():
    stamps = _nominal(4000)
    both = _Both(FS)
    for i, start in enumerate(range(0, 4000, 100)):
        both.push(stamps[start : start + 100], offset_s=0.0 if i < 20 else -0.5)
    c = both.counters
    assert c["clock_jumps"] == 1 and c["gaps"] == 0 and c["nonmonotonic"] == 0
    assert c["timestamp_resets"] == 0 and c["last_ts"] == stamps[-1] - 0.5


def test_an_offset_change_within_the_tolerance_is_taken_off_silently():
    stamps = _nominal(400)
    both = _Both(FS)
    both.push(stamps[:200], offset_s=0.0)
    both.push(stamps[200:], offset_s=0.003)
    assert both.counters["clock_jumps"] == 0 and both.counters["nonmonotonic"] == 0


@pytest.mark.parametrize("offset_s", [3.0, -2.0])
def test_the_first_chunks_offset_is_not_a_step(offset_s):
    """A source on another machine has a large clock offset from the first sample on: that is
    no step (it read as a timestamp reset at sample 1 above 1 s, as a gap below -0.5 s)."""
    both = _Both(FS)
    both.push(_nominal(100), offset_s=offset_s)
    c = both.counters
    assert c["timestamp_resets"] == 0 and c["gaps"] == 0 and c["pending_gap_sample"] == 0


def test_classify_yields_events_and_counters_per_chunk_and_pause():
    stamps = np.concatenate([_nominal(100), _nominal(50, start=300)])
    results = list(classify([stamps[:100], stamps[100:], None], FS))
    assert [[e.kind for e in events] for events, _ in results] == [[], ["pending"], ["gap"]]
    assert results[-1][1]["missing_samples"] == 200 and results[-1][1]["chunks"] == 2


@pytest.mark.parametrize("make", [TimestampClassifier, TimingPolicy])
def test_bad_input_is_rejected(make):
    with pytest.raises(ValueError, match="nominal_rate_hz"):
        make(0.0)
    classifier = make(FS)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        classifier.push(np.empty(0))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        classifier.push(np.zeros((2, 2)))


@PROPERTY
@given(_feeds(), st.integers(0, 2**32 - 1), st.sampled_from([0.001, 0.05]))
def test_nan_and_infinite_timestamps_are_counted_repaired_and_no_step(feed, seed, share):
    """Any host may publish under a stream's name and send NaN or inf timestamps: each is
    counted and put one period after the sample before it, in the kernel as in the reference,
    and the finite ones are classified as if the bad ones had been on time."""
    fs, tol, items = feed
    rng = np.random.default_rng(seed)
    bad = np.array([np.nan, np.inf, -np.inf])
    both = _Both(fs, tol)
    n_bad = 0
    for item in items:
        if item is None:
            both.pause()
            continue
        stamps, offset = item
        stamps = np.array(stamps, dtype=np.float64)
        hit = rng.random(stamps.size) < share
        stamps[hit] = bad[rng.integers(0, 3, hit.sum())]
        n_bad += int(hit.sum())
        before = both.kernel.counters.copy()
        both.push(stamps, offset)
        assert np.isfinite(both.kernel.counters).all(), before
    assert both.counters["bad_timestamps"] == n_bad
    assert all(np.isfinite(v) for v in both.counters.values())


@pytest.mark.parametrize("value", [1.0, 0.5, T0 - 3.0, T0 + 3600.0, T0 + 0.8, 1e300])
@pytest.mark.parametrize("where", [7, 10, 19])
def test_a_lone_outlying_timestamp_is_a_bad_timestamp_not_a_reset_or_a_gap(value, where):
    """One finite timestamp far off its neighbours' line (a glitch in the source's clock) was a
    reset and then a gap of its size: one sample stamped 1.0 in a stream at 1000 s counted 2
    million samples lost at 2 kHz, and restarted the windows twice. It is repaired as a NaN is,
    where the next sample in its pull shows the line going on; the last sample of a pull has
    none, and is classified as it steps (``where`` 19 of 20-sample chunks)."""
    stamps = _nominal(200)
    stamps[100 + where] = value
    both = _Both(FS)
    _feed(both, stamps)
    c = both.counters
    if where == 19:
        assert c["bad_timestamps"] == 0
        assert c["timestamp_resets"] + c["gaps"] >= 1
        return
    assert c["bad_timestamps"] == 1
    assert c["gaps"] == c["timestamp_resets"] == c["missing_samples"] == c["nonmonotonic"] == 0
    assert c["last_gap_sample"] == 0
    repaired = both.kernel.push(_nominal(1, start=200))  # the line goes on, no step
    assert repaired[0] == pytest.approx(_nominal(1, start=200)[0])


def test_a_real_reset_or_jump_is_not_taken_for_a_lone_outlier():
    """A clock that started over, or samples lost beyond half a second, move every later
    timestamp: the next sample follows the jump, so it stays a reset or a gap."""
    both = _Both(FS)
    _feed(both, np.concatenate([_nominal(500), _nominal(500, start=500) - 5.0]))
    assert both.counters["timestamp_resets"] == 1 and both.counters["bad_timestamps"] == 0
    both = _Both(FS)
    _feed(both, np.concatenate([_nominal(500), _nominal(500, start=500) + 2.0]))
    c = both.counters
    assert c["gaps"] == 1 and c["missing_samples"] == 4000 and c["bad_timestamps"] == 0


def test_a_short_lone_jump_ahead_stays_a_stall():
    """A jump the pending verdict can judge (up to half a second) is left to it, as before:
    made up by the next step back, it is a source stall, nothing lost."""
    stamps = _nominal(200)
    stamps[105] += 0.2
    both = _Both(FS)
    _feed(both, stamps)
    c = both.counters
    assert c["bad_timestamps"] == 0 and c["gaps"] == 0 and c["source_stalls"] == 1


def test_one_infinite_timestamp_in_a_regular_stream_is_counted_and_nothing_else():
    both = _Both(1000.0)
    stamps = 100.0 + np.arange(3000) / 1000.0
    for k, value in ((1000, np.inf), (1500, np.nan), (2000, -np.inf), (2001, np.inf)):
        stamps[k] = value
    _feed(both, stamps)
    c = both.counters
    assert c["bad_timestamps"] == 4
    assert c["gaps"] == c["timestamp_resets"] == c["nonmonotonic"] == c["missing_samples"] == 0
    assert both.kernel.push(np.array([np.nan, 103.001]))[0] == pytest.approx(103.0)
