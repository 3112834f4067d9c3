"""Hysteresis smoothers: hand-built probability sequences with known transition indices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtdecode.config import EventHysteresis, StateHysteresis
from rtdecode.decoding.smoother import EventSmoother, StateSmoother, dwell_decisions, make_smoother

HOP = 0.1
EVENT_CLASSES = ("normal", "seizure")
STATE_CLASSES = ("wake", "nrem", "rem")

# No example database: every machine runs the same examples, none replayed from .hypothesis/.
PROPERTY = settings(max_examples=150, deadline=None, database=None)


def _event(p: float) -> np.ndarray:
    # float32 like the model output; the values used keep clear of the thresholds, since
    # float32(0.3) > 0.3.
    return np.array([1.0 - p, p], dtype=np.float32)


def run_event(smoother: EventSmoother, ps: list[float]) -> list[tuple[str, bool]]:
    return [smoother.update(_event(p)) for p in ps]


def run_state(smoother: StateSmoother, rows: list[list[float]]) -> list[tuple[str, bool]]:
    return [smoother.update(np.array(r, dtype=np.float32)) for r in rows]


def changes(out: list[tuple[str, bool]]) -> list[tuple[int, str]]:
    return [(i, s) for i, (s, changed) in enumerate(out) if changed]


@pytest.fixture
def event_smoother() -> EventSmoother:
    # on-dwell 0.5 s = 5 decisions, off-dwell 0.3 s = 3 decisions.
    h = EventHysteresis(
        "seizure", on_threshold=0.7, off_threshold=0.3, on_dwell_s=0.5, off_dwell_s=0.3
    )
    return EventSmoother(h, EVENT_CLASSES, HOP)


@pytest.fixture
def state_smoother() -> StateSmoother:
    # dwell 0.3 s = 3 decisions.
    return StateSmoother(StateHysteresis(margin=0.2, dwell_s=0.3), STATE_CLASSES, HOP)


# dwell_decisions ---------------------------------------------
@pytest.mark.parametrize(
    ("dwell_s", "hop_s", "expected"),
    [
        (0.0, 0.1, 1),
        (0.05, 0.1, 1),
        (0.1, 0.1, 1),
        (0.3, 0.1, 3),  # 0.3 / 0.1 == 2.9999999999999996
        (0.7, 0.1, 7),  # 0.7 / 0.1 == 6.999999999999999
        (0.6, 0.2, 3),
        (0.5, 0.1, 5),
        (0.51, 0.1, 6),
        (2.0, 0.25, 8),
    ],
)
def test_dwell_decisions(dwell_s: float, hop_s: float, expected: int) -> None:
    assert dwell_decisions(dwell_s, hop_s) == expected


@pytest.mark.parametrize(
    ("dwell_s", "hop_s"), [(-0.1, 0.1), (math.nan, 0.1), (1.0, 0.0), (1.0, -1.0), (1.0, math.inf)]
)
def test_dwell_decisions_rejects_bad_values(dwell_s: float, hop_s: float) -> None:
    with pytest.raises(ValueError, match="dwell_s|hop_s"):
        dwell_decisions(dwell_s, hop_s)


# EventSmoother ---------------------------------------------
def test_event_dwell_counts(event_smoother: EventSmoother) -> None:
    assert event_smoother.on_decisions == 5
    assert event_smoother.off_decisions == 3
    assert event_smoother.background_class == "normal"
    assert event_smoother.state is None
    assert not event_smoother.event_state


def test_event_enter_band_and_leave(event_smoother: EventSmoother) -> None:
    ps = [0.1] * 3 + [0.8] * 5 + [0.5] * 4 + [0.2] * 3 + [0.5] * 2
    out = run_event(event_smoother, ps)
    # Initial state announced at 0; the 5th decision >= 0.7 (index 7) enters; the band (0.5)
    # keeps the event; the 3rd decision <= 0.3 (index 14) leaves.
    assert changes(out) == [(0, "normal"), (7, "seizure"), (14, "normal")]
    assert [s for s, _ in out] == (["normal"] * 7 + ["seizure"] * 7 + ["normal"] * 3)
    assert not event_smoother.event_state


def test_event_thresholds_are_inclusive() -> None:
    h = EventHysteresis(
        "seizure", on_threshold=0.75, off_threshold=0.25, on_dwell_s=0.2, off_dwell_s=0.2
    )
    s = EventSmoother(h, EVENT_CLASSES, HOP)
    out = [s.update(np.array([0.25, 0.75])) for _ in range(2)]
    out += [s.update(np.array([0.75, 0.25])) for _ in range(2)]
    assert changes(out) == [(0, "normal"), (1, "seizure"), (3, "normal")]


def test_event_dip_breaks_the_run(event_smoother: EventSmoother) -> None:
    ps = [0.8] * 4 + [0.69] + [0.8] * 4
    out = run_event(event_smoother, ps)
    assert changes(out) == [(0, "normal")]
    # The run restarted after the dip: one more decision completes it.
    assert event_smoother.update(_event(0.9)) == ("seizure", True)


def test_event_leave_needs_full_off_run(event_smoother: EventSmoother) -> None:
    ps = [0.9] * 5 + [0.2, 0.2, 0.31, 0.2, 0.2] + [0.2]
    out = run_event(event_smoother, ps)
    # 0.31 is above the off threshold: the off run restarts and completes at index 10.
    assert changes(out) == [(0, "normal"), (4, "seizure"), (10, "normal")]


def test_event_band_holds_background(event_smoother: EventSmoother) -> None:
    out = run_event(event_smoother, [0.1] + [0.69] * 20)
    assert changes(out) == [(0, "normal")]


def test_event_enter_on_first_decision_with_zero_dwell() -> None:
    h = EventHysteresis(
        "seizure", on_threshold=0.7, off_threshold=0.3, on_dwell_s=0.0, off_dwell_s=0.0
    )
    s = EventSmoother(h, EVENT_CLASSES, HOP)
    out = run_event(s, [0.9, 0.5, 0.25, 0.5, 0.75])
    assert changes(out) == [(0, "seizure"), (2, "normal"), (4, "seizure")]


def test_event_first_decision_counts_towards_dwell(event_smoother: EventSmoother) -> None:
    out = run_event(event_smoother, [0.9] * 5)
    assert changes(out) == [(0, "normal"), (4, "seizure")]


def test_event_equal_thresholds_do_not_toggle() -> None:
    h = EventHysteresis(
        "seizure", on_threshold=0.5, off_threshold=0.5, on_dwell_s=0.1, off_dwell_s=0.1
    )
    s = EventSmoother(h, EVENT_CLASSES, HOP)
    out = [s.update(np.array([0.5, 0.5])) for _ in range(5)]
    assert changes(out) == [(0, "seizure")]
    assert s.update(np.array([0.6, 0.4])) == ("normal", True)


def test_event_reset(event_smoother: EventSmoother) -> None:
    run_event(event_smoother, [0.9] * 4)
    event_smoother.reset()
    assert event_smoother.state is None
    # The partial run was forgotten: the next decision announces "normal", not "seizure".
    assert event_smoother.update(_event(0.9)) == ("normal", True)
    out = run_event(event_smoother, [0.9] * 4)
    assert changes(out) == [(3, "seizure")]
    event_smoother.reset()
    assert event_smoother.update(_event(0.5)) == ("normal", True)


@pytest.mark.parametrize(
    ("classes", "event", "background"),
    [
        (("a", "spike", "b"), "spike", "a"),
        (("spike", "x", "y"), "spike", "x"),
        (("seizure", "normal"), "seizure", "normal"),
    ],
)
def test_event_background_class(classes: tuple[str, ...], event: str, background: str) -> None:
    s = EventSmoother(EventHysteresis(event), classes, HOP)
    assert s.background_class == background
    probs = np.zeros(len(classes), dtype=np.float32)
    assert s.update(probs) == (background, True)


def test_event_uses_the_event_column() -> None:
    h = EventHysteresis("spike", on_threshold=0.6, off_threshold=0.4, on_dwell_s=0.0)
    s = EventSmoother(h, ("a", "b", "spike"), HOP)
    assert s.update(np.array([0.0, 0.9, 0.1])) == ("a", True)
    assert s.update(np.array([0.0, 0.1, 0.9])) == ("spike", True)


# StateSmoother ---------------------------------------------
def test_state_first_decision_is_argmax(state_smoother: StateSmoother) -> None:
    assert state_smoother.state is None
    assert state_smoother.update(np.array([0.2, 0.3, 0.5])) == ("rem", True)


def test_state_first_decision_tie_goes_to_lower_index(state_smoother: StateSmoother) -> None:
    assert state_smoother.update(np.array([0.1, 0.45, 0.45])) == ("nrem", True)


def test_state_margin_and_dwell(state_smoother: StateSmoother) -> None:
    rows = (
        [[0.8, 0.1, 0.1]]
        + [[0.45, 0.5, 0.05]] * 4  # nrem leads by 0.05 < margin: stay
        + [[0.2, 0.7, 0.1]] * 3  # leads by 0.5: switch on the 3rd (index 7)
        + [[0.6, 0.3, 0.1]] * 2  # wake leads by 0.3 for only 2 decisions
        + [[0.3, 0.6, 0.1]]
    )
    out = run_state(state_smoother, rows)
    assert changes(out) == [(0, "wake"), (7, "nrem")]
    assert state_smoother.state == "nrem"


def test_state_candidate_change_restarts_count(state_smoother: StateSmoother) -> None:
    rows = (
        [[0.8, 0.1, 0.1]]
        + [[0.1, 0.8, 0.1]] * 2  # nrem leads twice
        + [[0.1, 0.1, 0.8]] * 2  # rem takes over: count restarts at 1
        + [[0.1, 0.1, 0.8]]  # third rem decision: switch (index 5)
    )
    out = run_state(state_smoother, rows)
    assert changes(out) == [(0, "wake"), (5, "rem")]


def test_state_broken_condition_restarts_count(state_smoother: StateSmoother) -> None:
    rows = [[0.8, 0.1, 0.1]] + [[0.1, 0.8, 0.1]] * 2 + [[0.5, 0.4, 0.1]] + [[0.1, 0.8, 0.1]] * 3
    out = run_state(state_smoother, rows)
    assert changes(out) == [(0, "wake"), (6, "nrem")]


def test_state_zero_dwell_is_immediate() -> None:
    s = StateSmoother(StateHysteresis(margin=0.2, dwell_s=0.0), STATE_CLASSES, HOP)
    rows = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.15, 0.75], [0.3, 0.2, 0.5]]
    out = run_state(s, rows)
    assert changes(out) == [(0, "wake"), (1, "nrem"), (2, "rem")]


def test_state_margin_zero_tie_does_not_flip() -> None:
    s = StateSmoother(StateHysteresis(margin=0.0, dwell_s=0.0), STATE_CLASSES, HOP)
    rows = [[0.8, 0.1, 0.1]] + [[0.5, 0.5, 0.0]] * 4 + [[0.4, 0.6, 0.0]]
    out = run_state(s, rows)
    assert changes(out) == [(0, "wake"), (5, "nrem")]


def test_state_reset(state_smoother: StateSmoother) -> None:
    run_state(state_smoother, [[0.8, 0.1, 0.1]] + [[0.1, 0.8, 0.1]] * 2)
    state_smoother.reset()
    assert state_smoother.state is None
    assert state_smoother.update(np.array([0.8, 0.1, 0.1])) == ("wake", True)
    # Partial run before the reset does not count.
    out = run_state(state_smoother, [[0.1, 0.8, 0.1]] * 3)
    assert changes(out) == [(2, "nrem")]


# make_smoother and validation ---------------------------------------------
def test_make_smoother_dispatch() -> None:
    assert isinstance(make_smoother(EventHysteresis("seizure"), EVENT_CLASSES, HOP), EventSmoother)
    assert isinstance(make_smoother(StateHysteresis(), STATE_CLASSES, HOP), StateSmoother)
    with pytest.raises(TypeError, match="hysteresis"):
        make_smoother({"kind": "event"}, EVENT_CLASSES, HOP)  # type: ignore[arg-type]


def test_event_class_must_be_a_class() -> None:
    with pytest.raises(ValueError, match="event_class='spike'.*allowed"):
        EventSmoother(EventHysteresis("spike"), EVENT_CLASSES, HOP)


@pytest.mark.parametrize(
    ("classes", "exc", "match"),
    [
        ("wake", TypeError, "sequence of str"),
        (("wake",), ValueError, "at least 2"),
        (("wake", "wake"), ValueError, "unique"),
        (("wake", ""), ValueError, "non-empty"),
        (("wake", 3), TypeError, "str"),
    ],
)
def test_bad_classes(classes: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        StateSmoother(StateHysteresis(), classes, HOP)  # type: ignore[arg-type]


@pytest.mark.parametrize("hop_s", [0.0, -0.1, math.nan])
def test_bad_hop(hop_s: float) -> None:
    with pytest.raises(ValueError, match="hop_s"):
        EventSmoother(EventHysteresis("seizure"), EVENT_CLASSES, hop_s)


@pytest.mark.parametrize("factory", ["event", "state"])
@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.array([0.5, 0.5, 0.0, 0.0]), "3 values"),
        (np.array([0.5, math.nan, 0.5]), "finite.*index 1"),
        (np.array([0.5, 0.5, math.inf]), "finite.*index 2"),
        (np.zeros((1, 3)), "1-D"),
    ],
)
def test_bad_probs(factory: str, probs: np.ndarray, match: str) -> None:
    h = EventHysteresis("rem") if factory == "event" else StateHysteresis()
    s = make_smoother(h, STATE_CLASSES, HOP)
    with pytest.raises(ValueError, match=match):
        s.update(probs)
    # A rejected vector leaves the smoother untouched.
    assert s.state is None


# Properties ---------------------------------------------
_thresholds = st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0])
_event_p = st.one_of(st.floats(0.0, 1.0), _thresholds)
_event_cfg = st.tuples(_thresholds, _thresholds, st.floats(0.0, 0.6), st.floats(0.0, 0.6)).filter(
    lambda c: c[1] <= c[0]
)


@PROPERTY
@given(cfg=_event_cfg, ps=st.lists(_event_p, min_size=1, max_size=60))
def test_event_properties(cfg: tuple[float, float, float, float], ps: list[float]) -> None:
    on, off, on_dwell, off_dwell = cfg
    h = EventHysteresis(
        "seizure", on_threshold=on, off_threshold=off, on_dwell_s=on_dwell, off_dwell_s=off_dwell
    )
    s = EventSmoother(h, EVENT_CLASSES, HOP)
    n_on, n_off = dwell_decisions(on_dwell, HOP), dwell_decisions(off_dwell, HOP)
    previous: str | None = None
    # The first decision opens the background epoch and is itself counted, so the epoch before
    # the first transition starts after index -1.
    last_transition = -1
    for i, p in enumerate(ps):
        state, changed = s.update(np.array([1.0 - p, p]))
        assert state in EVENT_CLASSES
        assert state == s.state
        assert s.event_state == (state == "seizure")
        assert changed == (state != previous)
        if changed and (previous is not None or state == "seizure"):
            # Every transition needs its full run, all after the previous transition.
            n = n_on if state == "seizure" else n_off
            first = i - n + 1
            assert first > last_transition
            run = ps[first : i + 1]
            if state == "seizure":
                assert all(q >= on for q in run)
            else:
                assert all(q <= off and q < on for q in run)
            last_transition = i
        previous = state


_state_row = st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)


@PROPERTY
@given(
    margin=st.sampled_from([0.0, 0.1, 0.3]),
    dwell_s=st.floats(0.0, 0.5),
    rows=st.lists(
        st.one_of(_state_row, st.sampled_from([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4]])),
        min_size=1,
        max_size=60,
    ),
)
def test_state_properties(margin: float, dwell_s: float, rows: list[list[float]]) -> None:
    s = StateSmoother(StateHysteresis(margin=margin, dwell_s=dwell_s), STATE_CLASSES, HOP)
    n = dwell_decisions(dwell_s, HOP)
    states: list[str] = []
    for i, row in enumerate(rows):
        state, changed = s.update(np.array(row))
        assert state in STATE_CLASSES
        assert state == s.state
        previous = states[-1] if states else None
        assert changed == (state != previous)
        if changed and previous is not None:
            new, old = STATE_CLASSES.index(state), STATE_CLASSES.index(previous)
            first = i - n + 1
            assert first >= 1
            # The old state held throughout the run, and the new one led it by the margin.
            assert all(x == previous for x in states[first:i])
            for r in rows[first : i + 1]:
                assert r[new] - r[old] >= margin
                assert r[new] > r[old]
                assert r[new] == max(v for k, v in enumerate(r) if k != old)
        states.append(state)
