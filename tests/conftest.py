"""Shared fixtures: small real models and unique LSL names per test."""

import os
import signal
import uuid
from pathlib import Path

import numpy as np
import pytest

from rtdecode.common.channels import default_channel_labels
from rtdecode.config import FeatureConfig, StateHysteresis
from rtdecode.decoding.model import ModelContract

# A suite started in the background (nohup, "cmd &" in a script) inherits SIGINT ignored, and so
# would every rtdecode it starts: the tests of Ctrl-C need it as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Qt widgets are tested offscreen; without a display Qt would abort the whole run.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def unique_name():
    """An LSL stream name no other test (or process) uses."""
    return f"rtd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def make_small_model(path, *, n_channels=4, fs_hz=2000.0, window_s=1.0, hop_s=0.1, seed=0):
    """Train and export a real 3-class XGBoost -> ONNX model for a small stream."""
    from rtdecode.training.boosting import XGBParams, export_onnx, fit_xgboost

    config = FeatureConfig(fs_hz=fs_hz, window_s=window_s, hop_s=hop_s)
    n_features = n_channels * config.features_per_channel
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (300, n_features)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int) + (X[:, 1] > 0.5).astype(int)
    booster = fit_xgboost(X, y, None, None, 3, XGBParams(n_estimators=20, seed=seed))
    contract = ModelContract(
        task="state",
        classes=("wake", "nrem", "rem"),
        n_channels=n_channels,
        channel_labels=None,
        features=config,
        feature_names=tuple(config.feature_names(default_channel_labels(n_channels))),
        hysteresis=StateHysteresis(margin=0.1, dwell_s=0.2),
        training={"data": "random features (test fixture)"},
    )
    return export_onnx(booster, contract, path, X[:50])


@pytest.fixture
def small_model(tmp_path):
    return make_small_model(tmp_path / "small.onnx")


@pytest.fixture
def shared_data():
    """The shared real recordings (``$RTDECODE_DATA``, else ``shared/data`` beside the
    checkout); the test is skipped, saying where it looked, when they are absent."""
    path = Path(
        os.environ.get("RTDECODE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    if not path.is_dir():
        pytest.skip(f"the shared recordings are not at {path} (set RTDECODE_DATA)")
    return path


@pytest.fixture
def make_model(tmp_path):
    """``make_model(name, **options)``: a model as ``make_small_model`` makes, in ``tmp_path``."""
    return lambda name, **options: make_small_model(tmp_path / name, **options)


class StuckPipe:
    """A named pipe at ``path`` whose reader stops reading: a write to it hangs, as one to a
    hung network mount does, until ``drain`` reads what is waiting."""

    def __init__(self, path):
        import fcntl

        self.path = path
        os.mkfifo(path)
        self._reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._filler = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        fcntl.fcntl(self._filler, 1031, 4096)  # F_SETPIPE_SZ: a page, so it fills at once
        self.received = bytearray()

    def fill(self) -> None:
        """Fill the pipe: the next write of anyone else blocks."""
        try:
            while True:
                os.write(self._filler, b"#" * 4096)
        except BlockingIOError:
            pass

    def drain(self) -> bytes:
        """Read what is waiting (the filler's bytes dropped); returns the lines read so far."""
        try:
            while chunk := os.read(self._reader, 65536):
                self.received += chunk
        except BlockingIOError:
            pass
        return bytes(self.received.replace(b"#", b""))

    def close(self) -> None:
        os.close(self._filler)
        os.close(self._reader)


@pytest.fixture
def stuck_pipe(tmp_path):
    pipe = StuckPipe(tmp_path / "hung.jsonl")
    yield pipe
    pipe.close()


def make_graph_model(path, contract, nodes, initializers):
    """An ONNX file made of ``nodes`` (input ``X``, output ``probabilities``, declared as one
    column per class) that carries ``contract``: a model whose output a test controls."""
    import onnx
    from onnx import TensorProto, helper

    from rtdecode.decoding.model import CONTRACT_KEY

    graph = helper.make_graph(
        nodes,
        "test_model",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", contract.n_features])],
        [
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, ["N", contract.n_classes]
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every onnxruntime since 1.10 reads
    model.metadata_props.add(key=CONTRACT_KEY, value=contract.to_json())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _int64s(*values):
    return np.array(values, dtype=np.int64)


def make_passthrough_model(path, contract):
    """A model whose probabilities are the first features of the row, as many as its last
    feature says (so a test row sets the values and the width of the output)."""
    from onnx import numpy_helper as nh
    from onnx.helper import make_node

    last = contract.n_features - 1
    init = [
        nh.from_array(_int64s(last), "last"),
        nh.from_array(_int64s(last + 1), "end"),
        nh.from_array(_int64s(1), "columns"),
        nh.from_array(_int64s(0), "zero"),
        nh.from_array(_int64s(1), "one"),
        nh.from_array(_int64s(-1), "flat"),
    ]
    nodes = [
        make_node("Slice", ["X", "last", "end", "columns"], ["last_feature"]),
        make_node("Reshape", ["last_feature", "flat"], ["widths"]),
        make_node("Slice", ["widths", "zero", "one"], ["width_f"]),
        make_node("Cast", ["width_f"], ["width"], to=7),  # int64
        make_node("Slice", ["X", "zero", "width", "columns"], ["probabilities"]),
    ]
    return make_graph_model(path, contract, nodes, init)


def make_nan_model(path, contract, nan_above):
    """A model of softmax probabilities of the first features, NaN where the first feature is
    above ``nan_above``."""
    from onnx import numpy_helper as nh
    from onnx.helper import make_node

    init = [
        nh.from_array(_int64s(0), "zero"),
        nh.from_array(_int64s(1), "one"),
        nh.from_array(_int64s(contract.n_classes), "n_classes"),
        nh.from_array(np.array([nan_above], np.float32), "threshold"),
        nh.from_array(np.array([np.nan], np.float32), "nan"),
    ]
    nodes = [
        make_node("Slice", ["X", "zero", "n_classes", "one"], ["scores"]),
        make_node("Softmax", ["scores"], ["softmax"], axis=1),
        make_node("Slice", ["X", "zero", "one", "one"], ["first"]),
        make_node("Greater", ["first", "threshold"], ["above"]),
        make_node("Where", ["above", "nan", "softmax"], ["probabilities"]),
    ]
    return make_graph_model(path, contract, nodes, init)


def decision_outputs(model, acquisition, name, log_path):
    """The decoder's outputs for ``model`` on ``acquisition`` (a stream called ``name``), logging
    to ``log_path``, as ``rtdecode run`` makes them."""
    from rtdecode.outputs.decisions import DecisionOutputs

    return DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=name,
        hop_s=model.contract.features.hop_s,
        log_path=log_path,
    )
