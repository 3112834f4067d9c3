"""`rtdecode train | evaluate | replay` on rigs' recordings (issue 22 item 2): one simulated
signal written as EDF, a Neuralynx session, an Open Ephys folder (binary and legacy), NWB and
an Intan file; a model trained on one format scores every other the same (Intan, whose step is
0.195 uV, alike); replay streams a Neuralynx session and an Intan file at their own rate."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from rtdecode.cli.common import PACKAGE_PARENT

pytest.importorskip("edfio")
pytest.importorskip("xgboost")
pytest.importorskip("neo")
pytest.importorskip("pynwb")

from edfio import Edf, EdfSignal  # noqa: E402

from rtdecode.cli.main import main  # noqa: E402
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig  # noqa: E402
from rtdecode.simulator.rig_files import (  # noqa: E402
    INTAN_UV_PER_COUNT,
    write_intan,
    write_ncs_session,
    write_nwb,
    write_open_ephys_binary,
    write_open_ephys_legacy,
)

FS = 1024.0  # two 512-sample Neuralynx records a second
UV_PER_COUNT = 0.125  # exact in binary: every format holds the same microvolts
NAMES = ["CSC1", "CSC2", "CSC3", "CSC4"]
# legacy Open Ephys names channels by their files (100_CH1.continuous): CH1...
LEGACY_MAP = ["--channel-map", ",".join(f"{n}=CH{i + 1}" for i, n in enumerate(NAMES))]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The same 150 s of simulated seizures in six formats, and its labels."""
    folder = tmp_path_factory.mktemp("rigs")
    sim = LfpSimulator(
        SimulatorConfig(
            scenario="seizure",
            n_channels=4,
            fs_hz=FS,
            seed=21,
            normal_s=(15.0, 30.0),
            seizure_s=(8.0, 15.0),
        )
    )
    n = int(150 * FS) // 512 * 512
    data, _ = sim.generate(n)
    counts = np.clip(np.round(data / UV_PER_COUNT), -32767, 32767).astype(np.int16)
    uv = counts * UV_PER_COUNT
    edf = folder / "session.edf"
    top = 32767 * UV_PER_COUNT
    Edf(
        [
            EdfSignal(uv[:, c], FS, label=name, physical_dimension="uV", physical_range=(-top, top))
            for c, name in enumerate(NAMES)
        ]
    ).write(edf)
    nlx = write_ncs_session(folder / "nlx", counts, FS, bit_volts=UV_PER_COUNT * 1e-6)
    oe = write_open_ephys_binary(
        folder / "oe", counts, FS, channel_names=NAMES, bit_volts=UV_PER_COUNT
    )
    raw = {"rate": FS, "conversion": UV_PER_COUNT * 1e-6}
    nwb = write_nwb(folder / "session.nwb", counts, {"raw": raw, "copy": raw})
    legacy = write_open_ephys_legacy(folder / "oe_legacy", counts, FS, bit_volts=UV_PER_COUNT)
    intan_counts = np.clip(np.round(data / INTAN_UV_PER_COUNT), -32767, 32767).astype(np.int16)
    intan = write_intan(folder / "session.rhd", intan_counts, FS, channel_names=NAMES)
    changes = sim.state_changes() + [(n, None)]
    rows = ["onset_s,duration_s,label"]
    for (a, state), (b, _) in zip(changes, changes[1:]):
        rows.append(f"{a / FS:.6f},{(b - a) / FS:.6f},{state}")
    labels = folder / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return {
        "edf": edf,
        "neuralynx": nlx,
        "openephys": oe,
        "nwb": nwb,
        "openephys-legacy": legacy,
        "intan": intan,
        "labels": labels,
    }


def test_a_model_trained_on_a_neuralynx_session_scores_every_format_the_same(
    session, tmp_path, capsys
):
    model = tmp_path / "nlx.onnx"
    train = ["train", "--task", "seizure", "--window-s", "1", "--hop-s", "0.25"]
    train += ["--trees", "30", "--dask", "none", "--no-progress", "--out", str(model)]
    assert (
        main([*train, "--data", str(session["neuralynx"]), "--labels", str(session["labels"])]) == 0
    )
    capsys.readouterr()
    scores = {}
    for fmt in ("edf", "neuralynx", "openephys", "nwb", "openephys-legacy"):
        argv = ["evaluate", "--model", str(model), "--data", str(session[fmt])]
        argv += ["--labels", str(session["labels"]), "--json"]
        if fmt == "nwb":
            argv += ["--stream", "raw"]
        if fmt == "openephys-legacy":
            argv += LEGACY_MAP
        assert main(argv) == 0, capsys.readouterr().err
        scores[fmt] = json.loads(capsys.readouterr().out)
    edf = scores["edf"]
    assert edf["decisions"] == (150 * 4 - 3) and edf["windows"]["accuracy"] > 0.9
    for fmt, got in scores.items():
        for key in ("decisions", "labelled_windows", "windows", "after_hysteresis", "events"):
            assert got[key] == edf[key], (fmt, key)
    # the training session itself (by path or a copy's content) is in-sample, the others not
    assert [scores[f]["in_sample"] for f in scores] == [False, True, False, False, False]


def test_a_model_trained_on_an_intan_file_scores_the_other_formats(session, tmp_path, capsys):
    """The Intan file holds the signal in 0.195 uV steps, the others in 0.125: scores alike, not
    equal."""
    model = tmp_path / "intan.onnx"
    train = ["train", "--task", "seizure", "--window-s", "1", "--hop-s", "0.25"]
    train += ["--trees", "30", "--dask", "none", "--no-progress", "--out", str(model)]
    assert main([*train, "--data", str(session["intan"]), "--labels", str(session["labels"])]) == 0
    capsys.readouterr()
    for fmt in ("intan", "openephys-legacy"):
        argv = ["evaluate", "--model", str(model), "--data", str(session[fmt]), "--format", fmt]
        argv += LEGACY_MAP if fmt == "openephys-legacy" else []
        assert main([*argv, "--labels", str(session["labels"]), "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["decisions"] == 150 * 4 - 3 and got["windows"]["accuracy"] > 0.9, fmt
        assert got["in_sample"] == (fmt == "intan")


def test_format_stream_and_label_errors_through_the_cli(session, tmp_path, capsys, make_model):
    model = make_model("m.onnx", n_channels=4, fs_hz=FS, window_s=1.0, hop_s=0.5)
    base = ["evaluate", "--model", str(model), "--labels", str(session["labels"]), "--json"]
    # two series in the NWB file: refused, naming them and the flag
    assert main([*base, "--data", str(session["nwb"])]) == 2
    err = capsys.readouterr().err
    assert "2 ElectricalSeries ('copy' (acquisition, 4 ch), 'raw'" in err and "--stream" in err
    # --format overrides the content: a Neuralynx folder is no Open Ephys recording
    assert main([*base, "--data", str(session["neuralynx"]), "--format", "openephys"]) == 2
    assert "not a readable Open Ephys (binary) recording" in capsys.readouterr().err
    rename = ["--map", "normal=wake,seizure=rem"]  # the small model's classes
    assert main([*base, *rename, "--data", str(session["neuralynx"]), "--format", "neuralynx"]) == 0
    assert json.loads(capsys.readouterr().out)["decisions"] == 150 * 2 - 1
    # a folder has no labels of its own
    argv = ["train", "--data", str(session["openephys"]), "--out", str(tmp_path / "x.onnx")]
    assert main([*argv, "--dask", "none"]) == 2
    assert "a folder holds no labels of its own; give the recording's label file with --labels" in (
        capsys.readouterr().err
    )


@pytest.mark.lsl
@pytest.mark.timeout(90)
def test_replay_of_a_neuralynx_session_sends_what_the_rig_would(tmp_path, unique_name):
    """64 ch at 32 kHz, the channels in the rig's order, the values in microvolts, and the
    dropped records as a pause of their length."""
    fs, n_ch = 32000.0, 64
    counts = np.random.default_rng(0).integers(-3000, 3000, (40 * 512, n_ch)).astype(np.int16)
    counts[:, 0] = np.arange(counts.shape[0]) % 30000  # a sample counter on the first channel
    folder = write_ncs_session(tmp_path / "nlx", counts, fs, dropped_records=range(20, 30))
    info, samples, stamps, labels = _replayed(folder, unique_name, 30 * 512)
    assert (info.nominal_srate(), info.channel_count()) == (fs, n_ch)
    assert labels == [f"CSC{i + 1}" for i in range(n_ch)]
    kept = np.r_[0 : 20 * 512, 30 * 512 : 40 * 512]
    np.testing.assert_array_equal(np.array(samples), counts[kept] / 32.0)  # 1/32 uV per count
    steps = np.diff(stamps)
    assert steps[20 * 512 - 1] == pytest.approx(10 * 512 / fs + 1 / fs, abs=0.05)


@pytest.mark.lsl
@pytest.mark.timeout(60)
def test_replay_of_an_intan_file_sends_its_microvolts_and_pauses_at_its_jump(tmp_path, unique_name):
    fs, n_ch = 30000.0, 8
    counts = np.random.default_rng(1).integers(-3000, 3000, (60 * 128, n_ch)).astype(np.int16)
    names = [f"CA1-{i + 1}" for i in range(n_ch)]
    path = write_intan(
        tmp_path / "s.rhs", counts, fs, channel_names=names, missing=[(30 * 128, 15000)]
    )
    info, samples, stamps, labels = _replayed(path, unique_name, counts.shape[0])
    assert (info.nominal_srate(), info.channel_count(), labels) == (fs, n_ch, names)
    np.testing.assert_allclose(np.array(samples), counts * INTAN_UV_PER_COUNT, rtol=2**-22)
    # the 0.5 s the board lost is a pause of its length
    assert np.diff(stamps)[30 * 128 - 1] == pytest.approx(0.5 + 1 / fs, abs=0.05)


def _replayed(path, name, n):
    """``rtdecode replay path`` in its own process: the stream's info, its first ``n`` samples,
    their timestamps and its channel labels."""
    import pylsl

    replay = subprocess.Popen(
        [sys.executable, "-m", "rtdecode", "replay", str(path), "--name", name]
        + ["--wait-for-consumer", "20"],
        cwd=PACKAGE_PARENT,
    )
    try:
        (info,) = pylsl.resolve_byprop("name", name, timeout=20)
        samples, stamps, labels = _pull(info, n)
    finally:
        replay.wait(20)
    assert replay.returncode == 0
    return info, samples, stamps, labels


def _pull(info, n):
    """The first ``n`` samples of a stream, their timestamps, and its channel labels."""
    import pylsl

    inlet = pylsl.StreamInlet(info)
    labels, ch = [], inlet.info().desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    samples, stamps = [], []
    deadline = time.monotonic() + 30
    while len(samples) < n and time.monotonic() < deadline:
        got, ts = inlet.pull_chunk(timeout=0.2)
        samples += got
        stamps += ts
    return samples, stamps, labels
