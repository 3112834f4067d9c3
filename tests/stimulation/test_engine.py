"""The stimulation rules' engine on hand-built decision sequences with known answers."""

import json

import pytest

from rtdecode.stimulation.engine import StimEngine, yoked_offsets
from rtdecode.stimulation.rules import OutputConfig, RulesError, StimProtocol, StimRule

FS = 1000.0
HOP = 0.1


def engine(*rules, armed=True, seed=0, window_samples=1000):
    return StimEngine(
        StimProtocol(tuple(rules), OutputConfig(), armed=armed, seed=seed),
        fs_hz=FS,
        window_samples=window_samples,
    )


def run(eng, states, *, stale=(), t0=0.0):
    """Feed one decision per state, HOP apart; the triggers of each, by decision index."""
    out = {}
    for i, state in enumerate(states):
        trig = eng.decide(int((t0 + (i + 1) * HOP) * FS), t0 + i * HOP, state, stale=i in stale)
        if trig:
            out[i] = trig
    return out


def sent(out):
    return {i: [(x.rule, x.action) for x in ts if x.suppressed is None] for i, ts in out.items()}


def test_enter_fires_once_per_entry():
    eng = engine(StimRule("r", "enter:rem"))
    out = run(eng, ["wake", "rem", "rem", "wake", "rem", "rem"])
    assert sent(out) == {1: [("r", "pulse")], 4: [("r", "pulse")]}
    assert eng.counts["sent"] == 2


def test_enter_after_s_waits_for_the_state_to_hold():
    eng = engine(StimRule("r", "enter:rem", after_s=0.25))
    # rem from decision 1: held 0.25 s at decision 4 (t 0.4 - 0.1 = 0.3 >= 0.25 first at i=4)
    out = run(eng, ["wake", "rem", "rem", "rem", "rem", "rem", "wake", "rem", "rem", "wake"])
    assert sent(out) == {4: [("r", "pulse")]}


def test_exit_fires_when_the_state_is_left_for_another_class():
    eng = engine(StimRule("r", "exit:seizure"))
    out = run(eng, ["normal", "seizure", "seizure", "normal", "normal", "seizure", "normal"])
    assert sent(out) == {3: [("r", "pulse")], 6: [("r", "pulse")]}


def test_a_gate_is_on_while_the_state_holds_and_off_when_it_ends():
    eng = engine(StimRule("g", "in:rem", after_s=0.1))
    out = run(eng, ["wake", "rem", "rem", "rem", "wake", "wake"])
    assert sent(out) == {2: [("g", "on")], 4: [("g", "off")]}
    assert out[4][0].reason == "state_ended"


def test_a_gate_goes_off_at_max_on_and_stays_off_until_the_state_is_entered_again():
    eng = engine(StimRule("g", "in:rem", max_on_s=0.2))
    out = run(eng, ["rem"] * 5 + ["wake", "rem"])
    assert sent(out) == {0: [("g", "on")], 2: [("g", "off")], 6: [("g", "on")]}
    assert out[2][0].reason == "max_on"
    assert out[0][0].pulse_ms == 200  # the device enforces the same maximum


@pytest.mark.parametrize("special", ["bad_signal", "no_signal"])
def test_nothing_fires_during_bad_or_no_signal_and_gates_go_off(special):
    eng = engine(StimRule("g", "in:rem"), StimRule("p", "enter:rem"))
    out = run(eng, ["rem", special, special, "rem"])
    assert sent(out) == {
        0: [("g", "on"), ("p", "pulse")],
        1: [("g", "off")],
        3: [("g", "on"), ("p", "pulse")],
    }
    assert out[1][0].reason == special


def test_a_stale_decision_fires_nothing_the_next_fresh_one_does():
    eng = engine(StimRule("p", "enter:seizure"), StimRule("g", "in:seizure"))
    out = run(eng, ["normal", "seizure", "seizure", "seizure"], stale={1})
    suppressed = [(x.rule, x.suppressed) for x in out[1]]
    assert suppressed == [("p", "stale"), ("g", "stale")]
    assert sent(out)[2] == [("p", "pulse"), ("g", "on")]
    # a gate that is on goes off at a stale decision
    out = run(eng, ["seizure", "seizure"], stale={0}, t0=1.0)
    assert sent(out)[0] == [("g", "off")] and out[0][0].reason == "stale"


def test_refractory_and_rate_limit_suppress_and_say_so():
    eng = engine(StimRule("r", "enter:rem", refractory_s=0.35))
    out = run(eng, ["rem", "wake", "rem", "wake", "wake", "rem"])
    assert [(i, x.suppressed) for i, ts in out.items() for x in ts] == [
        (0, None),
        (2, "refractory"),
        (5, None),
    ]
    eng = engine(StimRule("r", "enter:rem", max_per_hour=2))
    out = run(eng, ["rem", "wake"] * 4)
    assert [x.suppressed for ts in out.values() for x in ts] == [
        None,
        None,
        "rate_limit",
        "rate_limit",
    ]


def test_disarmed_rules_log_and_send_nothing_and_disarming_turns_gates_off():
    eng = engine(StimRule("p", "enter:rem"), StimRule("g", "in:rem"), armed=False)
    out = run(eng, ["rem", "rem"])
    assert [(x.rule, x.suppressed) for x in out[0]] == [("p", "disarmed"), ("g", "disarmed")]
    assert 1 not in out  # said once per episode
    assert eng.set_armed(True, 2000, 0.2) == []
    out = run(eng, ["rem"], t0=0.2)
    assert sent(out) == {0: [("g", "on")]}  # the gate comes on; the pulse's episode was used
    off = eng.set_armed(False, 3000, 0.3)
    assert [(x.rule, x.action, x.reason) for x in off] == [("g", "off", "disarmed")]


def test_stop_turns_gates_off_and_nothing_fires_after():
    eng = engine(StimRule("g", "in:rem"))
    run(eng, ["rem"])
    off = eng.stop(1000, 0.1)
    assert [(x.action, x.reason) for x in off] == [("off", "stopped")]
    assert run(eng, ["wake", "rem"], t0=1.0) == {}


def test_sham_is_decided_and_logged_not_sent():
    eng = engine(StimRule("s", "enter:rem", sham=True, blank_ms=100))
    out = run(eng, ["wake", "rem"])
    (trig,) = out[1]
    assert trig.control == "sham" and trig.suppressed is None and not trig.sent
    assert eng.counts == {"sent": 0, "sham": 1, "suppressed": 0, "blanked_windows": 0}
    assert not eng.blanked(3000)  # nothing sent: no artefact to blank


def test_random_delay_is_uniform_within_bounds_and_seeded():
    rule = StimRule("r", "enter:rem", delay_ms=5, random_delay_ms=20)
    delays = []
    for seed in (0, 0, 1):
        eng = engine(rule, seed=seed)
        out = run(eng, ["rem", "wake"] * 50)
        delays.append([x.delay_ms for ts in out.values() for x in ts])
    assert delays[0] == delays[1] != delays[2]
    assert min(delays[0]) >= 5 and max(delays[0]) <= 25 and len(set(delays[0])) > 10


def test_a_pulse_train_blanks_the_windows_that_hold_it():
    rule = StimRule("r", "enter:rem", pulse_ms=10, pulses=3, period_ms=50, blank_ms=40)
    eng = engine(rule, window_samples=200)
    (trig,) = eng.decide(1000, 1.0, "rem")
    assert trig.sent
    # the artefact spans samples 1000 .. 1000 + (2*50 + 10 + 40 + 20 margin) = 1170
    assert eng.blanked(1100)  # holds the start of the train
    assert eng.blanked(1369)  # its window starts at 1169, inside the artefact
    assert not eng.blanked(1371)
    assert eng.counts["blanked_windows"] == 2


def test_yoked_rules_replay_another_runs_trigger_times(tmp_path):
    log = tmp_path / "other.jsonl"
    lines = [{"t": 100.0, "probs": {}, "state": "wake"}]
    for t, sup in ((100.3, None), (100.55, "refractory"), (100.7, None)):
        lines.append(
            {"event": "trigger", "rule": "r", "action": "pulse", "t": t, "suppressed": sup}
        )
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert yoked_offsets(log, "r") == pytest.approx([0.3, 0.7])
    eng = engine(StimRule("r", "enter:rem", yoked=str(log)))
    out = run(eng, ["wake"] * 10)  # whatever the state
    assert sent(out) == {3: [("r", "pulse")], 7: [("r", "pulse")]}
    assert all(x.control == "yoked" for ts in out.values() for x in ts)


def test_a_yoked_log_that_is_not_a_decision_log_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"event": "start"}\n')
    with pytest.raises(RulesError, match="holds no decision"):
        yoked_offsets(bad, "r")
    with pytest.raises(RulesError, match="cannot be read"):
        yoked_offsets(tmp_path / "missing.jsonl", "r")
