"""`rtdecode train | evaluate | replay` on recordings written here (simulated LFP as EDF) and on
the real data when present: model card, validation, errors, and live replay == evaluate."""

import importlib.util
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("edfio")
pytest.importorskip("xgboost")

from edfio import Edf, EdfSignal  # noqa: E402

from rtdecode.cli.main import main  # noqa: E402
from rtdecode.decoding.model import OnnxModel  # noqa: E402
from rtdecode.offline.evaluation import decode_recording  # noqa: E402
from rtdecode.offline.labels import read_labels  # noqa: E402
from rtdecode.offline.recordings import open_recording  # noqa: E402
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig  # noqa: E402

BUNDLED_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_bundled_models.py"
FS = 1000.0


def simulated_edf(
    folder: Path,
    name: str,
    seed: int,
    seconds: float,
    n_ch: int = 4,
    order=None,
    prefix="LFP",
    fs: float = FS,
):
    """A simulated seizure recording as EDF + its label CSV (what a lab's scoring would give);
    ``order`` writes its channels in another order (``order[k]``: the channel written k-th),
    ``prefix`` names them, ``fs`` is the rate."""
    sim = LfpSimulator(
        SimulatorConfig(
            scenario="seizure",
            n_channels=n_ch,
            fs_hz=fs,
            seed=seed,
            normal_s=(15.0, 30.0),
            seizure_s=(8.0, 15.0),
        )
    )
    data, _ = sim.generate(int(seconds * fs))
    signals = [
        EdfSignal(
            data[:, c].astype(np.float64),
            fs,
            label=f"{prefix}{c}",
            physical_dimension="uV",
            physical_range=(-3000.0, 3000.0),
        )
        for c in (order or range(n_ch))
    ]
    edf_path = folder / f"{name}.edf"
    Edf(signals).write(edf_path)
    changes = sim.state_changes() + [(data.shape[0], None)]
    rows = ["onset_s,duration_s,label"]
    for (a, state), (b, _) in zip(changes, changes[1:]):
        rows.append(f"{a / fs:.6f},{(b - a) / fs:.6f},{state}")
    csv_path = folder / f"{name}.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return edf_path, csv_path


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recs")
    return [simulated_edf(folder, f"rec{i}", seed=10 + i, seconds=150.0) for i in range(2)]


TRAIN_ARGS = [
    "--task",
    "seizure",
    "--window-s",
    "1",
    "--hop-s",
    "0.1",
    "--trees",
    "60",
    "--dask",
    "none",
    "--no-progress",
]


def _train_args(out, data, labels, *extra):
    return ["train", *TRAIN_ARGS, "--out", str(out), "--data", *map(str, data), "--labels"] + [
        *map(str, labels),
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(recordings, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "seizure_lab.onnx"
    args = _train_args(out, [e for e, _ in recordings], [c for _, c in recordings])
    assert main(args) == 0
    return out


def test_train_writes_model_and_card(trained, recordings):
    model = OnnxModel(trained)
    c = model.contract
    assert c.classes == ("normal", "seizure") and c.task == "event"
    assert c.channel_labels == ("LFP0", "LFP1", "LFP2", "LFP3")
    assert c.features.fs_hz == FS and c.features.window_s == 1.0
    assert c.training["validation"].startswith("2-fold, grouped by recording")
    card = json.loads(trained.with_suffix(".json").read_text())
    cv = card["training"]["cv"]["metrics"]
    assert cv["accuracy"] > 0.9, cv  # held-out recording, simulated seizures are clear
    events = card["training"]["cv_after_hysteresis"]["events"]
    assert events["events"] >= 4 and events["events_detected"] >= events["events"] - 1
    md = trained.with_suffix(".md").read_text()
    for needle in (
        "Cohen's kappa",
        "Confusion matrix",
        "false alarms",
        "grouped by recording",
        "![confusion matrix",
    ):
        assert needle in md
    png = trained.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_evaluate_reports_the_card_metrics(trained, recordings, capsys, tmp_path):
    edf, csv = recordings[1]
    decisions = tmp_path / "dec.jsonl"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained),
                "--data",
                str(edf),
                "--labels",
                str(csv),
                "--json",
                "--decisions",
                str(decisions),
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["decisions"] == len(decisions.read_text().splitlines())
    assert metrics["windows"]["accuracy"] > 0.9
    assert set(metrics["events"]) >= {
        "events_detected",
        "detection_delay_median_s",
        "false_alarms_per_hour",
    }
    assert metrics["speed_x_real_time"] > 10


def test_bad_inputs_exit_2_with_one_message(trained, recordings, tmp_path, capsys):
    edf, csv = recordings[0]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("onset_s,duration_s,label\n0,10,normal\n400,10,seizure\n")
    assert (
        main(
            [
                "train",
                "--data",
                str(edf),
                "--labels",
                str(wrong),
                "--out",
                str(tmp_path / "m.onnx"),
                "--dask",
                "none",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "wrong.csv: 1 label(s) start after the end of rec0.edf" in err
    assert "Traceback" not in err
    assert (
        main(
            [
                "train",
                "--data",
                str(edf),
                "--labels",
                str(csv),
                "--classes",
                "normal,rem",
                "--out",
                str(tmp_path / "m.onnx"),
                "--dask",
                "none",
            ]
        )
        == 2
    )
    assert "class(es) ['rem'] appear in no label file" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained),
                "--data",
                str(edf),
                "--labels",
                str(csv),
                "--channels",
                "LFP0,LFP1",
            ]
        )
        == 2
    )
    assert "channel" in capsys.readouterr().err.lower()


@pytest.mark.lsl
def test_live_decisions_on_a_replay_equal_evaluate(trained, recordings, tmp_path):
    """rtdecode replay -> LSL -> the live Decoder gives evaluate's decisions, one for one, and
    a stimulation protocol run on both gives the same triggers (one engine, live and offline)."""
    from rtdecode.acquisition.acquisition import LslAcquisition
    from rtdecode.acquisition.inlet import StreamSelector, resolve_stream
    from rtdecode.decoding.decoder import Decoder
    from rtdecode.offline.replay import replay_recording
    from rtdecode.stimulation.rules import StimProtocol, StimRule
    from rtdecode.stimulation.stimulator import Stimulator

    from ..conftest import decision_outputs

    protocol = StimProtocol(
        (
            StimRule(
                "onset", "onset:seizure", pulses=3, period_ms=50, refractory_s=20, blank_ms=30
            ),
            StimRule("gate", "in:seizure", after_s=1.0, max_on_s=4.0, sham=True),
            StimRule("exit", "exit:seizure", random_delay_ms=200),
        ),
        seed=3,
    )
    edf, csv = recordings[1]
    rec = open_recording(edf)
    model = OnnxModel(trained)
    offline = decode_recording(model, rec, stim=protocol)
    assert offline.blanked > 0 and len(offline.triggers) >= 4

    name = f"replay-{time.monotonic_ns()}"
    stop = threading.Event()
    source = threading.Thread(
        target=replay_recording,
        args=(rec, name),
        kwargs=dict(
            speed=10.0,
            chunk_samples=25,
            segments=read_labels(csv, recording=rec),
            wait_for_consumers_s=20.0,
            stop_event=stop,
        ),
        daemon=True,
    )
    source.start()
    info = resolve_stream(StreamSelector(name=name), timeout_s=10)
    acquisition = LslAcquisition(info)
    log = tmp_path / "live.jsonl"
    outputs = decision_outputs(model, acquisition, name, log)
    stim = Stimulator(
        protocol,
        outputs,
        fs_hz=acquisition.fs_hz,
        window_samples=model.contract.features.window_samples,
        input_source_id=acquisition.source_id,
    ).start()
    decoder = Decoder(model, acquisition, outputs, stimulator=stim)
    with decoder:
        deadline = time.monotonic() + 60
        while decoder.status().decisions < len(offline.end_s) and time.monotonic() < deadline:
            time.sleep(0.1)
    stop.set()
    source.join(5)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    live = [d for d in lines if "probs" in d]
    keys = ("rule", "action", "end_sample", "suppressed", "delay_ms", "control", "reason")
    live_triggers = [tuple(d[k] for k in keys) for d in lines if d.get("event") == "trigger"]
    offline_triggers = [tuple(getattr(x, k) for k in keys) for x in offline.triggers]
    # the live run ends with 'stopped' gate edges that the offline run (never stopped) lacks
    assert live_triggers[: len(offline_triggers)] == offline_triggers
    assert all(tr[-1] == "stopped" for tr in live_triggers[len(offline_triggers) :])
    assert len(live) == len(offline.end_s)
    assert [d["end_sample"] for d in live] == offline.end_samples.tolist()
    assert [d["state"] for d in live] == offline.states
    live_p = np.array([[d["probs"][c] for c in model.contract.classes] for d in live])
    np.testing.assert_allclose(live_p, offline.proba, atol=1e-6)  # the log rounds to 6 digits


@pytest.mark.slow
def test_dask_local_cluster_extracts_the_same_features(recordings):
    from rtdecode.config import FeatureConfig
    from rtdecode.offline.datasets import Source, extract_sources

    config = FeatureConfig(fs_hz=FS, window_s=1.0, hop_s=0.1)
    sources = [Source(data=e, labels=tuple(read_labels(c))) for e, c in recordings]
    serial = extract_sources(sources, config, ("normal", "seizure"), dask="none", progress=False)
    parallel = extract_sources(sources, config, ("normal", "seizure"), dask="local", progress=False)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.data
def test_rat_seizure_set_meets_the_issue_figures(tmp_path, capsys, shared_data):
    """Grouped by annotation (never one event on both sides): >= 98 % windows, every event."""
    out = tmp_path / "rat.onnx"
    rat = shared_data / "rat-seizure"
    assert (
        main(
            [
                "train",
                "--task",
                "seizure",
                "--data",
                str(rat / "rat_seizure_dev.edf"),
                "--labels",
                str(rat / "rat_seizure_dev_labels.csv"),
                "--group-column",
                "annotation",
                "--windows-within-segments",
                "--window-s",
                "2",
                "--hop-s",
                "0.5",
                "--max-false-alarms-per-hour",
                "4",
                "--out",
                str(out),
                "--dask",
                "none",
                "--no-progress",
            ]
        )
        == 0
    )
    card = json.loads(out.with_suffix(".json").read_text())
    assert "grouped by label group" in card["training"]["validation"]
    assert card["training"]["cv"]["metrics"]["accuracy"] >= 0.98
    events = card["training"]["cv_after_hysteresis"]["events"]
    assert events["events_detected"] == events["events"] == 27


@pytest.mark.slow
def test_bundled_model_rebuild_is_reproducible(tmp_path):
    """`python scripts/build_bundled_models.py` (here scaled down) gives the same model card twice."""
    # a maintainer script, outside the installed package: loaded from its file
    spec = importlib.util.spec_from_file_location("build_bundled_models", BUNDLED_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    build_model = script.build_model

    cards = []
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        card = build_model("seizure", out, minutes=1.5, recordings=2, n_channels=4, fs_hz=2000.0)
        assert (out / "seizure.onnx").is_file() and (out / "seizure.png").is_file()
        cards.append(card["training"])
    for key in ("cv", "cv_after_hysteresis", "class_counts", "xgboost_params"):
        assert cards[0][key] == cards[1][key], key
    assert cards[0]["cv"]["metrics"]["accuracy"] > 0.9


@pytest.mark.slow
def test_train_on_a_dask_scheduler_uses_xgboost_dask(recordings, tmp_path):
    """--dask tcp://... : features on the workers and XGBoost through xgboost.dask."""
    from dask.distributed import LocalCluster

    out = tmp_path / "dask.onnx"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, protocol="tcp://"
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        args = [
            "train",
            "--task",
            "seizure",
            "--out",
            str(out),
            "--window-s",
            "1",
            "--trees",
            "40",
            "--dask",
            address,
            "--no-progress",
            "--data",
        ]
        args += [str(e) for e, _ in recordings] + ["--labels"] + [str(c) for _, c in recordings]
        assert main(args) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["trained_on"] == f"xgboost.dask on {address}"
    assert card["training"]["cv"]["metrics"]["accuracy"] > 0.9
    OnnxModel(out)  # exported and parity-checked like any other


# Channel identity -----------------------------------------------------------------------------
PERMUTATION = [2, 0, 3, 1]  # the second recording's channels written LFP2, LFP0, LFP3, LFP1


@pytest.fixture(scope="module")
def permuted(tmp_path_factory):
    """The second recording (same seed, same samples) with its channels in another order."""
    return simulated_edf(
        tmp_path_factory.mktemp("permuted"), "rec1p", seed=11, seconds=150.0, order=PERMUTATION
    )


def _probabilities(model_path, edf):
    return decode_recording(OnnxModel(model_path), open_recording(edf)).proba


def test_training_refuses_recordings_whose_channel_order_differs(
    recordings, permuted, tmp_path, capsys
):
    (edf0, csv0), (edf1, csv1) = recordings[0], permuted
    args = _train_args(tmp_path / "m.onnx", [edf0, edf1], [csv0, csv1])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{edf1}: its channels are not those of {edf0} in the same order" in err
    assert "LFP0 is channel 0 of the first recording (rec0.edf), 1 of this one" in err
    assert "--channels A,B,..." in err and "--channel-map" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()
    # other names, as another recording system gives them: refused too
    other = simulated_edf(tmp_path, "other", seed=11, seconds=20.0, prefix="CSC")
    assert main(_train_args(tmp_path / "m.onnx", [edf0, other[0]], [csv0, other[1]])) == 2
    assert "4 channel(s) of the first recording (rec0.edf) missing" in capsys.readouterr().err
    # selected by position, the names still differ: refused
    args = _train_args(tmp_path / "m.onnx", [edf0, edf1], [csv0, csv1], "--channels", "0,1,2,3")
    assert main(args) == 2
    assert "its channels are not those of" in capsys.readouterr().err


def test_training_with_a_channel_map_learns_the_model_of_the_unpermuted_recordings(
    trained, recordings, permuted, tmp_path
):
    """by-label reads the permuted file's channels in the first file's order: the model is the
    one trained on the files as written alike (same features, same trees), decision for
    decision."""
    (edf0, csv0), (edf1, csv1) = recordings[0], permuted
    out = tmp_path / "mapped.onnx"
    assert main(_train_args(out, [edf0, edf1], [csv0, csv1], "--channel-map", "by-label")) == 0
    contract = OnnxModel(out).contract
    assert contract.channel_labels == ("LFP0", "LFP1", "LFP2", "LFP3")
    assert contract.training["data"][1]["channels"] == ["LFP0", "LFP1", "LFP2", "LFP3"]
    expected = _probabilities(trained, recordings[1][0])
    assert np.ptp(expected[:, 1]) > 0.5  # seizures and normal: a wrong channel would show
    np.testing.assert_allclose(_probabilities(out, recordings[1][0]), expected, atol=1e-6)
    # --channels by name reads them in the order given: the same model
    args = _train_args(out, [edf0, edf1], [csv0, csv1], "--channels", "lfp0,LFP1,LFP2,LFP3")
    assert main(args) == 0
    np.testing.assert_allclose(_probabilities(out, recordings[1][0]), expected, atol=1e-6)
    # the control: a map that takes the permuted file's channels by position learns another
    same_positions = ",".join(f"LFP{m}=LFP{k}" for m, k in enumerate(PERMUTATION))
    maps = ["LFP0=LFP0,LFP1=LFP1,LFP2=LFP2,LFP3=LFP3", same_positions]
    assert main(_train_args(out, [edf0, edf1], [csv0, csv1], "--channel-map", *maps)) == 0
    assert np.max(np.abs(_probabilities(out, recordings[1][0]) - expected)) > 0.1


def test_per_file_maps_join_recordings_whose_channels_have_other_names(
    recordings, tmp_path, capsys
):
    """Two systems' names for one montage: a map per file gives the model its own labels."""
    (edf0, csv0) = recordings[0]
    other, other_csv = simulated_edf(tmp_path, "other", seed=11, seconds=40.0, prefix="CSC")
    maps = ["A=LFP0,B=LFP1,C=LFP2,D=LFP3", "A=CSC0,B=CSC1,C=CSC2,D=CSC3"]
    out = tmp_path / "m.onnx"
    args = _train_args(out, [edf0, other], [csv0, other_csv], "--channel-map", *maps)
    assert main(args + ["--channels", "0,1"]) == 2
    assert "--channels and --channel-map both select channels" in capsys.readouterr().err
    assert main(_train_args(out, [edf0, other], [csv0, other_csv], "--channel-map", *maps[:1])) == 2
    assert "has no channel labelled LFP0" in capsys.readouterr().err
    assert main(args) == 0
    assert OnnxModel(out).contract.channel_labels == ("A", "B", "C", "D")


def test_evaluate_refuses_a_permuted_recording_and_maps_it(trained, recordings, permuted, capsys):
    def evaluate(edf, *extra):
        return ["evaluate", "--model", str(trained), "--data", str(edf), "--labels", str(csv)] + [
            "--json",
            *extra,
        ]

    edf, csv = permuted
    base = evaluate(edf)
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "does not carry the channels of model seizure_lab.onnx in its order" in err
    assert "--channel-map by-label" in err
    assert main(base + ["--channel-map", "by-label"]) == 0
    mapped = json.loads(capsys.readouterr().out)
    assert main(evaluate(recordings[1][0])) == 0
    expected = json.loads(capsys.readouterr().out)
    # rec1 is a training recording (in-sample); its permuted copy is another file
    assert expected.pop("in_sample") and not mapped.pop("in_sample")
    for metrics in (mapped, expected):
        metrics.pop("speed_x_real_time")
    assert mapped == expected
