"""A new user's first hour with `rtdecode train | evaluate | replay | info` (issue 21): an
interrupted train writes nothing and says so, labels that are no class are named, in-sample
scores are called in-sample, info says how a model was validated, defaults work at the common
rates, and every flag says its default."""

import json
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("edfio")
pytest.importorskip("xgboost")

from rtdecode.cli.common import PACKAGE_PARENT  # noqa: E402
from rtdecode.cli.main import main  # noqa: E402
from rtdecode.decoding.model import OnnxModel  # noqa: E402

# the EDF writer lives beside the train tests; --import-mode=importlib does not put this folder
# on sys.path
sys.path.insert(0, str(Path(__file__).parent))
from test_train_cli import simulated_edf  # noqa: E402

SMALL_TRAINING = ["--window-s", "1", "--trees", "30", "--dask", "none", "--no-progress"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A simulated 4-channel seizure recording (1 kHz, 150 s) and its label CSV."""
    return simulated_edf(tmp_path_factory.mktemp("rec"), "rec", seed=11, seconds=150.0)


@pytest.fixture(scope="module")
def coded_labels(recording):
    """``recording``'s labels as a lab's scoring codes them: ``bg`` and ``sz``."""
    _, csv = recording
    coded = csv.with_name("coded.csv")
    text = csv.read_text().replace(",normal", ",bg").replace(",seizure", ",sz")
    coded.write_text(text)
    return coded


@pytest.fixture(scope="module")
def trained(recording, coded_labels, tmp_path_factory):
    """A small seizure model trained on ``recording`` with ``--map bg=normal,sz=seizure``."""
    edf, _ = recording
    out = tmp_path_factory.mktemp("model") / "seizure.onnx"
    argv = ["train", "--task", "seizure", "--data", str(edf), "--labels", str(coded_labels)]
    argv += ["--map", "bg=normal,sz=seizure", "--out", str(out)]
    assert main([*argv, *SMALL_TRAINING]) == 0
    return out


def _evaluate_json(capsys, *argv) -> dict:
    assert main(["evaluate", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


# 1. An interrupted train -------------------------------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_train_exits_128_plus_the_signal_and_writes_nothing(
    recording, tmp_path, stop, code
):
    edf, csv = recording
    out = tmp_path / "m.onnx"
    # a model and card from an earlier run: an interrupted train must leave them as they were
    before = {out.with_suffix(s): f"earlier {s}" for s in (".onnx", ".json", ".md", ".png")}
    for path, text in before.items():
        path.write_text(text)
    argv = ["train", "--task", "seizure", "--data", str(edf), "--labels", str(csv)]
    argv += ["--out", str(out), "--window-s", "1", "--trees", "300", "--dask", "none"]
    with subprocess.Popen(
        [sys.executable, "-m", "rtdecode", *argv, "--no-progress"],
        cwd=PACKAGE_PARENT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as train:
        seen = []
        for line in train.stderr:  # the folds start after the features: stop it in the middle
            seen.append(line)
            if "fold 1/" in line:
                train.send_signal(stop)
                break
        rest = train.stderr.read()
        assert train.wait(60) == code, "".join(seen) + rest
    assert "rtdecode train: interrupted, no model written" in rest
    assert "Traceback" not in rest
    assert {p: p.read_text() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)


def test_an_interrupted_evaluate_exits_130_with_no_report(
    recording, trained, tmp_path, monkeypatch, capsys
):
    import rtdecode.offline.evaluation as evaluation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "decode_recording", interrupted)
    edf, csv = recording
    decisions = tmp_path / "decisions.jsonl"
    argv = ["evaluate", "--model", str(trained), "--data", str(edf), "--labels", str(csv)]
    assert main([*argv, "--decisions", str(decisions)]) == 130
    assert "rtdecode evaluate: interrupted, no report" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# 2. Labels that are no class, and --map ---------------------------------------------------
@pytest.mark.parametrize(
    ("mapping", "named"),
    [("BG=normal,sz=seizure", "BG (did you mean bg?)"), ("bg=normal,sezure=seizure", "sezure")],
)
def test_a_map_key_that_matches_no_label_is_refused(
    recording, coded_labels, tmp_path, capsys, mapping, named
):
    edf, _ = recording
    argv = ["train", "--data", str(edf), "--labels", str(coded_labels), "--map", mapping]
    assert main([*argv, "--out", str(tmp_path / "m.onnx"), *SMALL_TRAINING]) == 2
    err = capsys.readouterr().err
    assert f"--map: no label is {named}" in err and "Labels found: bg, sz" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_and_replay_rename_labels_as_training_did(
    recording, coded_labels, trained, capsys, caplog, monkeypatch
):
    edf, csv = recording
    caplog.set_level(logging.INFO, logger="rtdecode")
    coded = _evaluate_json(
        capsys, "--model", str(trained), "--data", str(edf), "--labels", str(coded_labels)
    )
    assert "labels renamed as in training: bg=normal, sz=seizure" in caplog.text
    named = _evaluate_json(
        capsys, "--model", str(trained), "--data", str(edf), "--labels", str(csv)
    )
    assert coded["labelled_windows"] == named["labelled_windows"] > 1000
    assert coded["windows"] == named["windows"] and coded["windows_left_out_by_label"] == {}
    assert OnnxModel(trained).contract.training["label_map"] == {"bg": "normal", "sz": "seizure"}

    import rtdecode.offline.replay as replay

    replayed = {}
    monkeypatch.setattr(replay, "replay_recording", lambda rec, name, **kw: replayed.update(kw))
    argv = ["replay", str(edf), "--labels", str(coded_labels), "--model", str(trained)]
    assert main(argv) == 0
    assert {s.label for s in replayed["segments"]} == {"normal", "seizure"}


def test_evaluate_names_the_labels_left_out_and_refuses_when_none_is_a_class(
    recording, coded_labels, trained, tmp_path, capsys, caplog
):
    edf, csv = recording
    rows = csv.read_text().splitlines()
    first = rows[1].split(",")
    rows[1] = ",".join([*first[:2], "artefact"])  # the first segment is left out
    partly = tmp_path / "partly.csv"
    partly.write_text("\n".join(rows) + "\n")
    metrics = _evaluate_json(
        capsys, "--model", str(trained), "--data", str(edf), "--labels", str(partly)
    )
    left_out = metrics["windows_left_out_by_label"]
    assert list(left_out) == ["artefact"] and left_out["artefact"] > 10
    assert f"left out of the scores: artefact ({left_out['artefact']} windows)" in caplog.text

    other = tmp_path / "other.csv"
    other.write_text(csv.read_text().replace(",normal", ",wake").replace(",seizure", ",rem"))
    argv = ["evaluate", "--model", str(trained), "--data", str(edf), "--labels", str(other)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no label is a class of the model: labels rem, wake; classes normal, seizure" in err


def test_train_names_the_labels_left_out(recording, coded_labels, tmp_path, caplog):
    edf, _ = recording
    out = tmp_path / "m.onnx"
    rows = coded_labels.read_text().splitlines()
    rows[1] = ",".join([*rows[1].split(",")[:2], "artefact"])
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    argv = ["train", "--data", str(edf), "--labels", str(labels), "--classes", "bg,sz"]
    assert main([*argv, "--out", str(out), *SMALL_TRAINING]) == 0
    left_out = OnnxModel(out).contract.training["windows_left_out_by_label"]
    assert list(left_out) == ["artefact"]
    assert f"left out of training: artefact ({left_out['artefact']} windows)" in caplog.text


@pytest.mark.data
def test_dreams_evaluate_scores_every_stage_with_the_training_map(tmp_path, capsys, shared_data):
    """The issue's case: evaluate without --map scored only wake (271 of 1734 windows)."""
    dreams = shared_data / "dreams"
    data = ["--data", str(dreams / "excerpt1.edf")]
    labels = ["--labels", str(dreams / "excerpt1_hypnogram.csv"), "--label-column", "stage"]
    out = tmp_path / "dreams.onnx"
    wrong_case = ["--map", "S1=light,S2=light,S3=deep,S4=deep"]
    assert main(["train", *data, *labels, *wrong_case, "--out", str(out), *SMALL_TRAINING]) == 2
    assert "no label is S1 (did you mean s1?)" in capsys.readouterr().err
    mapping = ["--map", "s1=light,s2=light,s3=deep,s4=deep"]
    assert main(["train", *data, *labels, *mapping, "--out", str(out), *SMALL_TRAINING]) == 0
    capsys.readouterr()
    metrics = _evaluate_json(capsys, "--model", str(out), *data, *labels)
    assert metrics["windows_left_out_by_label"] == {}
    assert metrics["labelled_windows"] > 1500
    assert set(metrics["windows"]["per_class"]) == {"wake", "light", "deep"}


# 3. In-sample scores ----------------------------------------------------------------------
def test_evaluate_on_a_training_recording_says_it_is_in_sample(
    recording, trained, tmp_path, capsys, caplog
):
    edf, csv = recording
    copy = tmp_path / "copy.edf"  # the same recording under another name is still in-sample
    copy.write_bytes(edf.read_bytes())
    for data in (edf, copy):
        metrics = _evaluate_json(
            capsys, "--model", str(trained), "--data", str(data), "--labels", str(csv)
        )
        assert metrics["in_sample"] is True
    assert f"in-sample: copy.edf is one of this model's training recordings ({edf})" in caplog.text
    assert (
        main(["evaluate", "--model", str(trained), "--data", str(edf), "--labels", str(csv)]) == 0
    )
    assert "IN-SAMPLE: rec.edf is a training recording" in capsys.readouterr().out

    other, other_csv = simulated_edf(tmp_path, "other", seed=12, seconds=60.0)
    argv = ["--model", str(trained), "--data", str(other), "--labels", str(other_csv)]
    assert _evaluate_json(capsys, *argv)["in_sample"] is False


@pytest.mark.data
def test_rat_evaluate_on_its_training_file_is_in_sample_and_info_says_grouped(
    tmp_path, capsys, shared_data
):
    rat = shared_data / "rat-seizure"
    data = ["--data", str(rat / "rat_seizure_dev.edf")]
    labels = ["--labels", str(rat / "rat_seizure_dev_labels.csv")]
    out = tmp_path / "rat.onnx"
    argv = ["train", "--task", "seizure", *data, *labels, "--hop-s", "0.5", "--out", str(out)]
    assert main([*argv, "--group-column", "annotation", *SMALL_TRAINING]) == 0
    capsys.readouterr()
    assert _evaluate_json(capsys, "--model", str(out), *data, *labels)["in_sample"] is True
    assert main(["info", str(out)]) == 0  # item 4: info says how it was validated
    info = capsys.readouterr().out
    assert "validation: 5-fold, grouped by label group" in info
    assert "time-blocked" not in info


# 4. info says what validation was done ------------------------------------------------------
def test_info_describes_validation_and_settings_in_words(trained, capsys):
    assert main(["info", str(trained)]) == 0
    info = capsys.readouterr().out
    assert "validation: 5-fold, contiguous blocks of time" in info
    assert "labels renamed: bg -> normal, sz -> seizure" in info
    training = info[info.index("training:") :]
    assert not any(c in training for c in "{}[]'\"")


# 6. Defaults that work at the common rates, and which task was chosen -----------------------
COMMON_RATES = [250.0, 256.0, 500.0, 512.0, 1000.0, 1024.0, 2000.0, 30000.0, 32000.0]


@pytest.mark.parametrize("fs", COMMON_RATES)
def test_the_default_window_and_hop_work_at_the_common_rates(fs, capsys):
    from rtdecode.cli.main import build_parser
    from rtdecode.cli.offline import _feature_config
    from rtdecode.features.quality import QualityConfig

    args = build_parser().parse_args(["train", "--data", "r.edf", "--out", "m.onnx"])
    features = _feature_config(args, fs, normalisation="relative")
    assert features.window_s == 2.0  # whole samples at every one of these rates
    assert features.hop_samples == pytest.approx(features.hop_s * fs, abs=1e-9)
    assert abs(features.hop_s - 0.1) <= 0.1 * 0.1
    hop_a = features.hop_samples // features.decimation
    assert QualityConfig().checks_stuck_runs(
        features.window_samples_analysis, hop_a, features.analysis_fs_hz
    )
    said = capsys.readouterr().out
    assert ("hop: --hop-s 0.1 is" in said) == (features.hop_s != 0.1), said


def test_train_at_512_hz_with_default_flags_says_the_hop_and_the_task(tmp_path, capsys):
    edf, csv = simulated_edf(tmp_path, "rat512", seed=13, seconds=120.0, n_ch=2, fs=512.0)
    out = tmp_path / "m.onnx"
    argv = ["train", "--data", str(edf), "--labels", str(csv), "--out", str(out)]
    assert main([*argv, "--trees", "20", "--dask", "none", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "hop: --hop-s 0.1 is 51.2 samples at 512 Hz; using 48 samples, 0.09375 s" in said
    assert "task: state model, classes normal, seizure (--task custom, the default" in said
    assert "raises no alarm" in said and "--event-class seizure or --task seizure" in said
    assert OnnxModel(out).contract.features.hop_samples == 48
    # the live path takes it: evaluate decodes the recording through it
    assert main(["evaluate", "--model", str(out), "--data", str(edf), "--labels", str(csv)]) == 0

    argv = ["train", "--task", "seizure", "--data", str(edf), "--labels", str(csv)]
    assert main([*argv, "--out", str(out), "--hop-s", "0.125", *SMALL_TRAINING]) == 0
    said = capsys.readouterr().out
    assert "task: event model, classes normal, seizure (--task seizure); alarms on seizure" in said
    assert "hop:" not in said  # 64 samples: nothing to round
    assert "hysteresis: event 'seizure': on when p >=" in said
    _no_raw_numbers_or_dicts(said)  # item 8


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--window-s", "0.1", "--hop-s", "0.05"], "holds no FFT bin"),
        (["--window-s", "1", "--hop-s", "2"], "give --hop-s 1 or less"),
    ],
)
def test_a_refused_window_or_hop_suggests_one_that_works(
    recording, tmp_path, capsys, flags, message
):
    edf, csv = recording
    argv = ["train", "--data", str(edf), "--labels", str(csv), "--out", str(tmp_path / "m.onnx")]
    assert main([*argv, *flags, "--dask", "none"]) == 2
    err = capsys.readouterr().err
    assert message in err
    if "FFT" in message:
        window_s = float(err.split("--window-s ")[-1].split()[0])
        assert (
            main([*argv, "--window-s", str(window_s), "--hop-s", "0.05", *SMALL_TRAINING[2:]]) == 0
        )


@pytest.mark.data
def test_rat_recording_trains_with_default_window_and_hop(tmp_path, capsys, shared_data):
    """The issue's case: train with default flags on the 512 Hz rat recording stopped."""
    rat = shared_data / "rat-seizure"
    argv = ["train", "--data", str(rat / "rat_seizure_dev.edf")]
    argv += ["--labels", str(rat / "rat_seizure_dev_labels.csv"), "--out", str(tmp_path / "r.onnx")]
    assert main([*argv, "--trees", "20", "--dask", "none", "--no-progress"]) == 0
    assert "using 48 samples, 0.09375 s" in capsys.readouterr().out


# 8. Help texts, rounded numbers, settings as text ---------------------------------------------
def _subcommands() -> dict:
    import argparse

    from rtdecode.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


@pytest.mark.parametrize("command", ["train", "evaluate", "replay", "info"])
def test_every_flag_says_what_it_does_and_its_default(command):
    for action in _subcommands()[command]._actions:
        if action.dest == "help":
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{command} {name} has no help"
        text = action.help % dict(vars(action), prog=command)
        if action.option_strings and not action.required:
            assert "default" in text.lower(), f"{command} {name}: {text}"
            if action.default not in (None, False):
                shown = (
                    f"{action.default:g}"
                    if isinstance(action.default, float)
                    else str(action.default)
                )
                assert shown in text, f"{command} {name}: default {shown} not in {text!r}"


def test_evaluate_data_says_it_takes_one_file():
    (data,) = [a for a in _subcommands()["evaluate"]._actions if a.dest == "data"]
    assert data.nargs is None and "one recording" in data.help


def _no_raw_numbers_or_dicts(text: str) -> None:
    assert not re.search(r"\d\.\d{4,}", text), text  # 3.63/h, not 3.629032258064516/h
    assert not any(c in text for c in "{}"), text


def test_evaluate_and_the_card_print_rounded_numbers_and_settings_as_text(
    recording, trained, capsys
):
    edf, csv = recording
    assert (
        main(["evaluate", "--model", str(trained), "--data", str(edf), "--labels", str(csv)]) == 0
    )
    out = capsys.readouterr().out
    assert re.search(
        r"events: detected \d+/\d+, delay median [\d.]+ s p90 [\d.]+ s, false alarms \d+ \(\d+\.\d\d/h\)",
        out,
    ), out
    _no_raw_numbers_or_dicts(out.replace(str(edf), ""))
    card = trained.with_suffix(".md").read_text()
    assert "- hysteresis: event 'seizure': on when p >=" in card
    assert "labels renamed: bg -> normal, sz -> seizure" in card
    _no_raw_numbers_or_dicts(card)
