"""A new user's first hour with `rtdecode train | evaluate | replay | info` (issue 21): an
interrupted train writes nothing and says so, labels that are no class are named, in-sample
scores are called in-sample, info says how a model was validated, defaults work at the common
rates, and every flag says its default."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("edfio")
pytest.importorskip("xgboost")

from rtdecode.cli.common import PACKAGE_PARENT  # noqa: E402
from rtdecode.cli.main import main  # noqa: E402

# the EDF writer lives beside the train tests; --import-mode=importlib does not put this folder
# on sys.path
sys.path.insert(0, str(Path(__file__).parent))
from test_train_cli import simulated_edf  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SMALL_TRAINING = ["--window-s", "1", "--trees", "30", "--dask", "none", "--no-progress"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A simulated 4-channel seizure recording (1 kHz, 150 s) and its label CSV."""
    return simulated_edf(tmp_path_factory.mktemp("rec"), "rec", seed=11, seconds=150.0)


@pytest.fixture(scope="module")
def trained(recording, tmp_path_factory):
    """A small seizure model trained on ``recording``."""
    edf, csv = recording
    out = tmp_path_factory.mktemp("model") / "seizure.onnx"
    argv = ["train", "--task", "seizure", "--data", str(edf), "--labels", str(csv)]
    assert main([*argv, "--out", str(out), *SMALL_TRAINING]) == 0
    return out


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
