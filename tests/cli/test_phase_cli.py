"""Phase rules from the command line: ``evaluate --stim`` reports where the pulses landed (on a
simulated recording whose rhythms' phase is known), and bad phase options are exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rtdecode.cli.main import main
from rtdecode.phase.estimators import wrap
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig

FS = 2000.0  # the bundled sleep model decodes 2 kHz (its analysis rate) as well as 32 kHz
RULES = """
[[rule]]
name = "theta"
when = "in:rem"
phase = { channel = "ch001", band = [6, 9], target_deg = 0 }
pulse_ms = 5

[[rule]]
name = "slow"
when = "in:nrem"
phase = { channels = ["ch000", "ch010"], band = [0.5, 2], target_deg = 180 }
pulse_ms = 5
channel = 1
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """150 s of the sleep simulator with rhythms of known phase: npz, labels, rules, truth."""
    folder = tmp_path_factory.mktemp("phase")
    sim = LfpSimulator(
        SimulatorConfig(
            scenario="sleep", n_channels=64, fs_hz=FS, seed=4, phase_rhythms=True,
            wake_s=(20.0, 25.0), nrem_s=(45.0, 50.0), rem_s=(45.0, 50.0),
        )
    )  # fmt: skip
    data, labels, phases = sim.generate_with_phase(int(150 * FS))
    np.savez(folder / "sim.npz", data=data, fs=FS)
    changes = sim.state_changes() + [(len(labels), None)]
    lines = ["onset_s,duration_s,label"] + [
        f"{a / FS},{(b - a) / FS},{state}" for (a, state), (b, _) in zip(changes, changes[1:])
    ]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    (folder / "rules.toml").write_text(RULES)
    return folder, phases


def _evaluate(folder, *extra):
    return [
        "evaluate", "--model", "sleep", "--data", str(folder / "sim.npz"),
        "--labels", str(folder / "labels.csv"), *extra,
    ]  # fmt: skip


def test_evaluate_reports_the_phase_of_each_pulse_and_a_rose_plot(recording, capsys):
    folder, _ = recording
    rose = folder / "rose.png"
    argv = _evaluate(folder, "--stim", str(folder / "rules.toml"), "--rose-plot", str(rose))
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["stimulation_phase"]
    theta = report["theta"]
    assert theta["pulses"] > 200  # ~7.5 a second for most of 45 s of REM
    assert abs(theta["mean_error_deg"]) <= 10 and theta["within_45"] >= 0.8
    assert theta["outside_state"] == 0
    # the pulses that landed in labelled REM, apart from the decoder's late or early switches
    inside = theta["inside_label"]
    assert inside["pulses"] == theta["pulses"] - theta["landed_outside_label"] > 200
    assert abs(inside["mean_error_deg"]) <= 10 and inside["within_45"] >= 0.8
    assert report["slow"]["pulses"] > 15 and report["slow"]["target_deg"] == 180
    assert rose.read_bytes()[:4] == b"\x89PNG"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "theta (6-9 Hz, target 0 deg)" in out and "within +-45 deg" in out


def test_the_pulses_land_on_the_simulators_true_phase(recording):
    """The same dry run through the API: each pulse's landing sample against the simulator's
    own phase (the truth, not the reference computed from the recording)."""
    from rtdecode.decoding.model import OnnxModel
    from rtdecode.models import bundled_model_path
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording
    from rtdecode.stimulation.rules import load_protocol

    folder, phases = recording
    protocol = load_protocol(folder / "rules.toml")
    decoded = decode_recording(
        OnnxModel(bundled_model_path("sleep")), open_recording(folder / "sim.npz"), stim=protocol
    )
    for rule, rhythm, target_deg, min_share in (
        ("theta", "theta", 0, 0.9),
        ("slow", "slow", 180, 0.6),
    ):
        landing = np.array(
            [x.phase["landing_sample"] for x in decoded.triggers if x.rule == rule and x.phase]
        )
        true = np.interp(landing, np.arange(len(phases[rhythm])), np.unwrap(phases[rhythm]))
        errors = wrap(true - math.radians(target_deg))
        assert np.mean(np.abs(errors) <= math.pi / 4) >= min_share, rule


def test_bad_phase_options_are_exit_2(recording, tmp_path, capsys):
    folder, _ = recording
    assert main(_evaluate(folder, "--rose-plot", str(tmp_path / "r.png"))) == 2
    assert "--rose-plot needs --stim" in capsys.readouterr().err
    rules = tmp_path / "bad.toml"
    rules.write_text(RULES.replace('"ch001"', '"CH999"'))
    assert main(_evaluate(folder, "--stim", str(rules))) == 2
    assert "'CH999' is not a channel" in capsys.readouterr().err
    run = ["run", "--model", "sleep", "--source", "nowhere", "--resolve-timeout", "0.1"]
    assert main([*run, "--trigger-on", "rem", "--trigger-phase", "ch001:9-6:0"]) == 2
    assert "--trigger-phase 'ch001:9-6:0'" in capsys.readouterr().err
    assert main([*run, "--trigger-phase", "ch001:6-9:0"]) == 2
    assert "needs --trigger-on" in capsys.readouterr().err


def test_the_dry_run_does_not_depend_on_the_chunk_size(recording):
    """Chunks longer than a window (a 100 Hz EEG read 3200 samples at a time is 32 s) give
    the phase rules the same samples: the features hand them over a hop at a time."""
    from rtdecode.decoding.model import OnnxModel
    from rtdecode.models import bundled_model_path
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording
    from rtdecode.stimulation.rules import load_protocol

    folder, _ = recording
    model = OnnxModel(bundled_model_path("sleep"))
    protocol = load_protocol(folder / "rules.toml")
    runs = [
        decode_recording(model, open_recording(folder / "sim.npz"), stim=protocol, chunk_samples=n)
        for n in (3200, 20011)
    ]
    assert runs[0].triggers == runs[1].triggers
    assert sum(x.phase is not None for x in runs[0].triggers) > 200
