"""The simulator's rhythms of known phase (phase_rhythms): theta in REM, slow oscillations in NREM."""

import math

import numpy as np
import pytest

from rtdecode.phase.estimators import wrap
from rtdecode.phase.reference import reference_phase
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig

FS = 1000.0


def _config(**kw):
    return SimulatorConfig(
        scenario="sleep", n_channels=3, fs_hz=FS, seed=5, phase_rhythms=True,
        wake_s=(10.0, 12.0), nrem_s=(30.0, 32.0), rem_s=(30.0, 32.0), **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def generated():
    sim = LfpSimulator(_config())
    data, labels, phases = sim.generate_with_phase(int(90 * FS))
    return sim, data, labels, phases


@pytest.mark.parametrize(
    "rhythm, state, band", [("theta", "rem", (6, 9)), ("slow", "nrem", (0.5, 2))]
)
def test_the_signal_follows_the_known_phase_in_its_state(generated, rhythm, state, band):
    sim, data, labels, phases = generated
    phase, rate = reference_phase(data.mean(axis=1), FS, band)
    inside = np.flatnonzero(labels == sim.classes.index(state))[:: int(FS // 10)]
    err = wrap(np.interp(inside * rate / FS, np.arange(phase.size), phase) - phases[rhythm][inside])
    mean = math.degrees(np.angle(np.mean(np.exp(1j * err))))
    assert abs(mean) < 5
    assert np.mean(np.abs(err) < math.radians(45)) > 0.9


def test_the_slow_oscillation_is_in_nrem_only_and_frequencies_stay_in_range(generated):
    sim, data, labels, phases = generated
    for name, (lo, hi) in (("theta", (6.2, 8.8)), ("slow", (0.55, 1.6))):
        freq = np.diff(np.unwrap(phases[name])) * FS / (2 * np.pi)
        assert lo - 1e-6 <= freq.min() and freq.max() <= hi + 1e-6
    x = data.mean(axis=1)
    nrem, rem = labels == sim.classes.index("nrem"), labels == sim.classes.index("rem")
    slow = np.cos(phases["slow"])
    # the slow oscillation's share of the signal: large in NREM, none in REM
    assert abs(np.corrcoef(x[nrem], slow[nrem])[0, 1]) > 0.5
    assert abs(np.corrcoef(x[rem], slow[rem])[0, 1]) < 0.1


def test_phases_do_not_depend_on_the_call_sizes():
    a = LfpSimulator(_config())
    whole = a.generate_with_phase(30000)
    b = LfpSimulator(_config())
    parts = [b.generate_with_phase(n) for n in (1, 9999, 12345, 7655)]
    for name in ("theta", "slow"):
        joined = np.concatenate([p[2][name] for p in parts])
        assert np.max(np.abs(wrap(joined - whole[2][name]))) < 1e-9
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), whole[0], atol=1e-3)


def test_off_by_default_and_checked():
    sim = LfpSimulator(SimulatorConfig(scenario="sleep", n_channels=2, fs_hz=FS, seed=1))
    assert sim.generate_with_phase(100)[2] == {}
    with pytest.raises(ValueError, match="sleep scenario"):
        SimulatorConfig(scenario="seizure", phase_rhythms=True)
    with pytest.raises(TypeError, match="phase_rhythms"):
        SimulatorConfig(scenario="sleep", phase_rhythms=1)
    assert SimulatorConfig.from_dict(_config().to_dict()) == _config()
