"""Phase rules: the rules file and flag, and the engine's pulses on a signal of known phase."""

import math

import numpy as np
import pytest

from rtdecode.config import FeatureConfig
from rtdecode.features.streaming import StreamingFeatures
from rtdecode.phase.estimators import wrap
from rtdecode.stimulation.engine import PHASE_STEP_S, StimEngine
from rtdecode.stimulation.rules import (
    OutputConfig,
    PhaseTarget,
    RulesError,
    StimProtocol,
    StimRule,
    load_protocol,
    parse_phase_flag,
    protocol_from_flags,
)

FS = 32000.0
FREQ = 7.3
PHASE0 = 0.4
LABELS = ("ch000", "ch001", "ch002")


def _rules_file(tmp_path, phase_line, when="in:rem", extra=""):
    path = tmp_path / "rules.toml"
    path.write_text(f'[[rule]]\nname = "theta"\nwhen = "{when}"\nphase = {phase_line}\n{extra}')
    return path


def test_a_rules_file_phase_table(tmp_path):
    path = _rules_file(
        tmp_path,
        '{ channel = "CH001", band = [6, 9], target_deg = 0, every = 2 }',
        extra="pulse_ms = 5",
    )
    rule = load_protocol(path).rules[0]
    assert rule.phase == PhaseTarget(
        channels=("CH001",), band_hz=(6.0, 9.0), target_deg=0.0, every=2
    )
    assert not rule.is_gate and rule.pulse_ms == 5.0
    assert rule.phase.estimate_window_s == 0.5  # two cycles of 6 Hz, at least 0.5 s
    assert PhaseTarget(("a",), (0.5, 2.0), 0.0).estimate_window_s == 4.0
    # the protocol's record for the log carries it as plain JSON types
    assert load_protocol(path).to_dict()["rules"][0]["phase"]["band_hz"] == [6.0, 9.0]


@pytest.mark.parametrize(
    "phase_line, when, extra, message",
    [
        ('{ channel = "a", band = [6, 9], target_deg = 0 }', "enter:rem", "", "in:rem"),
        ('{ channel = "a", band = [9, 6], target_deg = 0 }', "in:rem", "", "band"),
        ('{ channel = "a", target_deg = 0 }', "in:rem", "", "missing key 'band'"),
        ('{ channel = "a", band = [6, 9], target_deg = 0, speed = 1 }', "in:rem", "", "speed"),
        (
            '{ channel = "a", channels = ["b"], band = [6, 9], target_deg = 0 }',
            "in:rem",
            "",
            "one of",
        ),
        ('{ channel = "a", band = [6, 9], target_deg = 400 }', "in:rem", "", "target_deg"),
        ('{ channel = "a", band = [6, 9], target_deg = 0, every = 0 }', "in:rem", "", "every"),
        ('{ channel = "a", band = [6, 9], target_deg = 0, method = "x" }', "in:rem", "", "method"),
        ('{ channel = "a", band = [6, 9], target_deg = 0 }', "in:rem", "delay_ms = 5", "delay"),
        ('{ channel = "a", band = [6, 9], target_deg = 0 }', "in:rem", "blank_ms = 50", "blank"),
        ('"CH001:6-9:0"', "in:rem", "", "must be a table"),
    ],
)
def test_bad_phase_tables_name_the_rule_and_the_key(tmp_path, phase_line, when, extra, message):
    with pytest.raises(RulesError, match=message) as err:
        load_protocol(_rules_file(tmp_path, phase_line, when, extra))
    assert "theta" in str(err.value)


def test_the_flag():
    assert parse_phase_flag("CH001:6-9:0") == PhaseTarget(("CH001",), (6.0, 9.0), 0.0)
    assert parse_phase_flag("a+b:0.5-2:-90").channels == ("a", "b")
    # the amplitude floor, as the phase table's min_amplitude (scalp slow oscillations)
    assert parse_phase_flag("C3:0.5-2:0:37.5") == PhaseTarget(
        ("C3",), (0.5, 2.0), 0.0, min_amplitude=37.5
    )
    for bad in ("CH001", "CH001:6:0", "CH001:x-9:0", ":6-9:0", "CH001:9-6:0", "CH001:6-9:zero",
                "C3:0.5-2:0:-1", "C3:0.5-2:0:big", "C3:0.5-2:0:1:2"):  # fmt: skip
        with pytest.raises(RulesError, match="--trigger-phase"):
            parse_phase_flag(bad)
    protocol = protocol_from_flags(trigger_on="rem", port=None, phase="ch001:6-9:180")
    assert protocol.rules[0].when == "in:rem" and protocol.rules[0].phase.target_deg == 180.0
    with pytest.raises(RulesError, match="in:rem"):
        protocol_from_flags(trigger_on="enter:rem", port=None, phase="ch001:6-9:180")


def test_channels_are_checked_against_the_stream():
    protocol = protocol_from_flags(trigger_on="rem", port=None, phase="CH001+ch002:6-9:0")
    protocol.check_channels(LABELS)  # case-insensitive when unambiguous
    assert protocol.rules[0].phase.channel_indices(LABELS) == [1, 2]
    assert PhaseTarget(("all",), (6, 9), 0).channel_indices(LABELS) == [0, 1, 2]
    with pytest.raises(RulesError, match="'CH009' is not a channel of the stream \\(ch000"):
        protocol_from_flags(trigger_on="rem", port=None, phase="CH009:6-9:0").check_channels(LABELS)


def _signal(seconds, *, amplitude=80.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    truth = 2 * np.pi * FREQ * t + PHASE0
    x = amplitude * np.cos(truth)[:, None] * np.array([0.5, 1.0, 1.5]) + 10 * rng.standard_normal(
        (t.size, 3)
    )
    return x.astype(np.float32)


def _true_phase(samples):
    return 2 * np.pi * FREQ * np.asarray(samples) / FS + PHASE0


def _run(rule, data, states, *, armed=True, stale=(), latency_s=0.002):
    """Decide every row of ``data`` with the state ``states(end_sample)``."""
    config = FeatureConfig(fs_hz=FS, window_s=1.0, hop_s=0.1)
    features = StreamingFeatures(config, 3)
    eng = StimEngine(
        StimProtocol((rule,), OutputConfig(), armed=armed),
        fs_hz=FS,
        window_samples=config.window_samples,
        features=config,
        channel_labels=LABELS,
    )
    triggers = []
    decided = [0]

    def step_stale(sample, stamp):
        return decided[0] in stale

    for i in range(0, len(data), 4000):
        before = features.analysis_samples
        rows = features.push(data[i : i + 4000])
        made = features.analysis_samples - before
        eng.push_signal(features.recent_analysis(made), features.analysis_samples * 16)
        for row in rows:
            end = row.end_sample
            # the estimates between decisions (every PHASE_STEP_S), as decode_recording's,
            # stale after a stale decision
            triggers += eng.advance_each(end - 1, stamp_of=lambda s: s / FS, stale_of=step_stale)
            triggers += eng.decide(
                end, end / FS, states(end), stale=end in stale, latency_s=latency_s
            )
            decided[0] = end
        triggers += eng.advance_each(
            features.analysis_samples * 16, stamp_of=lambda s: s / FS, stale_of=step_stale
        )
    return eng, triggers


def _rem_between(a_s, b_s):
    return lambda end: "rem" if a_s * FS < end <= b_s * FS else "wake"


def test_one_pulse_per_cycle_at_the_target_phase_only_while_the_state_holds():
    rule = StimRule("theta", "in:rem", pulse_ms=5.0, phase=PhaseTarget(("ch001",), (6, 9), 90.0))
    eng, triggers = _run(rule, _signal(12.0), _rem_between(3.0, 9.0))
    pulses = [x for x in triggers if x.suppressed is None]
    assert all(x.state == "rem" and x.action == "pulse" for x in pulses)
    # one per cycle of the 6 s of REM (the first decision in it has a full window already)
    assert abs(len(pulses) - FREQ * 6.0) <= 2
    landing = np.array([x.phase["landing_sample"] for x in pulses])
    errors = wrap(_true_phase(landing) - math.radians(90.0))
    assert np.max(np.abs(errors)) < math.radians(20)
    assert abs(math.degrees(np.angle(np.mean(np.exp(1j * errors))))) < 5
    # distinct cycles: consecutive landings one period apart
    assert np.allclose(np.diff(landing), FS / FREQ, rtol=0.1)
    for x in pulses:
        arrival = x.end_sample - 1 + 0.002 * FS
        assert x.delay_ms == round((x.phase["crossing_sample"] - arrival) / FS * 1e3)
        assert 0 <= x.delay_ms <= 1.25 * PHASE_STEP_S * 1e3 + 1  # within the next step's reach
        assert x.phase["landing_sample"] == pytest.approx(arrival + x.delay_ms * FS / 1e3)
    assert eng.counts["sent"] == len(pulses)
    # estimates between decisions, on the fixed grid of steps (the same whatever the chunks)
    step = eng.phase_step_samples
    assert step == round(PHASE_STEP_S * FS) and 3200 % step == 0
    between = [x for x in pulses if x.phase["between_decisions"]]
    assert between and all(x.end_sample % step == 0 for x in between)


def test_every_nth_cycle_and_max_per_s():
    target = PhaseTarget(("all",), (6, 9), 0.0, every=2)
    _, triggers = _run(StimRule("t", "in:rem", phase=target), _signal(8.0), _rem_between(2, 8))
    every2 = [x for x in triggers if x.suppressed is None]
    assert abs(len(every2) - FREQ * 6 / 2) <= 2
    target = PhaseTarget(("all",), (6, 9), 0.0, max_per_s=3.0)
    _, triggers = _run(StimRule("t", "in:rem", phase=target), _signal(8.0), _rem_between(2, 8))
    landing = np.array([x.phase["landing_sample"] for x in triggers if x.suppressed is None])
    assert np.min(np.diff(landing)) >= FS / 3.0 - 1
    assert len(landing) <= 3 * 6 + 1


def test_no_pulse_when_the_rhythm_is_too_weak():
    target = PhaseTarget(("all",), (6, 9), 0.0, min_band_share=0.5)
    rule = StimRule("t", "in:rem", phase=target)
    eng, triggers = _run(rule, _signal(6.0, amplitude=0.0), lambda end: "rem")  # noise only
    assert not triggers
    assert eng.counts["phase_weak"] > 40
    target = PhaseTarget(("all",), (6, 9), 0.0, min_amplitude=200.0)  # the rhythm has ~80
    eng, triggers = _run(StimRule("t", "in:rem", phase=target), _signal(6.0), lambda e: "rem")
    assert not triggers and eng.counts["phase_weak"] > 40


def test_stale_and_disarmed_decisions_send_nothing_and_say_so_once():
    rule = StimRule("t", "in:rem", phase=PhaseTarget(("all",), (6, 9), 0.0))
    _, triggers = _run(rule, _signal(5.0), lambda e: "rem", armed=False)
    assert [x.suppressed for x in triggers] == ["disarmed"]
    stale = {int(s * FS) for s in np.arange(1.0, 5.01, 0.1).round(1)}
    _, triggers = _run(rule, _signal(5.0), lambda e: "rem", stale=stale)
    assert [x.suppressed for x in triggers] == ["stale"]


def test_a_phase_rule_needs_the_stream_features():
    rule = StimRule("t", "in:rem", phase=PhaseTarget(("all",), (6, 9), 0.0))
    with pytest.raises(ValueError, match="phase rule"):
        StimEngine(StimProtocol((rule,)), fs_hz=FS, window_samples=32000)


def test_the_latency_may_be_asked_for_when_each_pulse_is_scheduled():
    """Live, the latency is a function, called after the phase estimate (which takes time)."""
    rule = StimRule("t", "in:rem", phase=PhaseTarget(("all",), (6, 9), 0.0))
    calls = []

    def latency():
        calls.append(1)
        return 0.002

    _, fixed = _run(rule, _signal(5.0), lambda e: "rem")
    _, asked = _run(rule, _signal(5.0), lambda e: "rem", latency_s=latency)
    assert asked == fixed and len(asked) > 20
    assert len(calls) >= len(asked)


def test_only_phase_pulses_carry_a_phase_record():
    eng = StimEngine(StimProtocol((StimRule("e", "enter:rem"),)), fs_hz=FS, window_samples=32000)
    (trig,) = eng.decide(32000, 1.0, "rem")
    assert "phase" not in trig.record()
    rule = StimRule("t", "in:rem", phase=PhaseTarget(("all",), (6, 9), 0.0))
    _, triggers = _run(rule, _signal(4.0), lambda e: "rem")
    assert set(triggers[0].record()["phase"]) >= {"crossing_sample", "landing_sample", "latency_ms"}


def _fed_engine(rule, seconds):
    """An engine fed ``seconds`` of the theta signal (no decision yet), and its last sample."""
    config = FeatureConfig(fs_hz=FS, window_s=1.0, hop_s=0.1)
    features = StreamingFeatures(config, 3)
    eng = StimEngine(
        StimProtocol((rule,), OutputConfig()),
        fs_hz=FS,
        window_samples=config.window_samples,
        features=config,
        channel_labels=LABELS,
    )
    features.push(_signal(seconds))
    eng.push_signal(
        features.recent_analysis(features.analysis_samples), features.analysis_samples * 16
    )
    return eng, features.analysis_samples * 16


def test_no_step_acts_after_a_restart_until_the_next_decision():
    rule = StimRule("t", "in:rem", phase=PhaseTarget(("all",), (6, 9), 0.0))
    eng, end = _fed_engine(rule, 4.0)
    decided = end - 3200
    eng.decide(decided, decided / FS, "rem")
    assert eng.advance_each(end, stamp_of=lambda s: s / FS)  # steps pulse in REM
    eng2, end = _fed_engine(rule, 4.0)
    eng2.decide(decided, decided / FS, "rem")
    eng2.restart()  # a gap: the state decided before it is not the state after it
    assert eng2.advance_each(end, stamp_of=lambda s: s / FS) == []


def test_no_step_acts_on_a_stale_decisions_state():
    rule = StimRule("t", "in:rem", phase=PhaseTarget(("all",), (6, 9), 0.0))
    eng, end = _fed_engine(rule, 4.0)
    decided = end - 3200
    triggers = eng.decide(decided, decided / FS, "rem", stale=True)
    triggers += eng.advance_each(end, stamp_of=lambda s: s / FS)
    assert [x.suppressed for x in triggers] == ["stale"]
