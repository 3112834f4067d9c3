"""Channel identity live, over real LSL outlets on loopback: a stream whose channel labels differ
from the model's is refused (exit 2, the difference shown), and with ``--channel-map`` a
permuted stream, or one with extra channels, gives the very decisions of the stream in the
model's order."""

import json
import logging
import time

import numpy as np
import pylsl
import pytest

from rtdecode.acquisition.inlet import StreamSelector
from rtdecode.cli.live import _open_decoder
from rtdecode.cli.main import main
from rtdecode.common.channel_map import ChannelMap
from rtdecode.config import FeatureConfig, StateHysteresis
from rtdecode.decoding.model import ModelContract
from rtdecode.streams import SIGNAL_STREAM_NAME, output_source_id

from ..conftest import make_nan_model

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(120)]

FS = 2000.0
LABELS = ("CSC1", "CSC2", "CSC3", "CSC4")


@pytest.fixture
def labelled_model(tmp_path):
    """A model of the channels ``LABELS`` whose probabilities are the softmax of the first
    channel's first three band powers: any other channel in its place changes them."""
    config = FeatureConfig(fs_hz=FS, window_s=1.0, hop_s=0.1)
    contract = ModelContract(
        task="state",
        classes=("wake", "nrem", "rem"),
        n_channels=len(LABELS),
        channel_labels=LABELS,
        features=config,
        feature_names=tuple(config.feature_names(LABELS)),
        hysteresis=StateHysteresis(margin=0.1, dwell_s=0.2),
    )
    return make_nan_model(tmp_path / "labelled.onnx", contract, nan_above=np.inf)


def _signal(seconds: float) -> np.ndarray:
    """Four channels of distinct spectra (3, 7, 13 Hz and none, plus noise), microvolts; the
    first one's rhythm changes halfway, so the probabilities change over time."""
    n = int(seconds * FS)
    t = np.arange(n) / FS
    rng = np.random.default_rng(5)
    first = np.where(t < seconds / 2, np.sin(2 * np.pi * 3 * t), np.sin(2 * np.pi * 9 * t))
    rhythms = np.stack(
        [first, np.sin(2 * np.pi * 7 * t), np.sin(2 * np.pi * 13 * t), np.zeros(n)], axis=1
    )
    return (40 * rhythms + rng.normal(0, 5, (n, 4))).astype(np.float32)


def _outlet(name: str, labels) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", len(labels), FS, "float32", name)
    info.set_channel_labels(list(labels))
    return pylsl.StreamOutlet(info, chunk_size=20)


def _push_all(outlets, data):
    """Push ``data`` in real time to each ``(outlet, columns)``: the same samples, the same
    timestamps, each stream with its own channel order."""
    chunk = 20
    t0 = pylsl.local_clock()
    start_wall = time.monotonic()
    for start in range(0, data.shape[0], chunk):
        delay = start_wall + (start + chunk) / FS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamps = [t0 + (start + i) / FS for i in range(chunk)]
        block = data[start : start + chunk]
        for outlet, columns in outlets:
            outlet.push_chunk(np.ascontiguousarray(block[:, columns]), stamps)


def _decisions(log):
    """``{end_sample: probabilities}`` of a decision log."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return {d["end_sample"]: list(d["probs"].values()) for d in lines if "probs" in d}


def _open(model, name, log, channel_map=None):
    return _open_decoder(
        str(model),
        StreamSelector(name=name),
        resolve_timeout=10.0,
        log_path=str(log),
        hysteresis_args=None,
        channel_map=None if channel_map is None else ChannelMap.parse(channel_map),
    )


def test_a_mapped_stream_gives_the_decisions_of_the_stream_in_the_models_order(
    labelled_model, unique_name, tmp_path
):
    """The same samples sent as three streams: in the model's order; permuted (and mapped back
    by label pairs); with two extra channels among them (picked by label). All three give the
    same probabilities, window by window; the permuted one decoded as it comes does not."""
    order = [2, 0, 3, 1]  # the permuted stream's channels, as indices of the model's
    streams = {
        "same": (LABELS, [0, 1, 2, 3]),
        "permuted": (tuple(LABELS[i] for i in order), order),
        "extra": (("AUX1", "CSC1", "CSC2", "AUX2", "CSC3", "CSC4"), [3, 0, 1, 3, 2, 3]),
        "unmapped": (("X1", "X2", "X3", "X4"), order),  # permuted, no labels to tell
    }
    outlets = {
        k: (_outlet(f"{unique_name}-{k}", labels), cols) for k, (labels, cols) in streams.items()
    }
    maps = {
        "same": None,
        "permuted": ",".join(f"{LABELS[m]}={LABELS[m]}" for m in range(4)),
        "extra": "by-label",
        "unmapped": "CSC1=X1,CSC2=X2,CSC3=X3,CSC4=X4",  # a wrong map: the permuted order
    }
    logs = {k: tmp_path / f"{k}.jsonl" for k in streams}
    decoders = {k: _open(labelled_model, f"{unique_name}-{k}", logs[k], maps[k]) for k in streams}
    assert decoders["same"].stream_channels is None
    assert decoders["permuted"].stream_channels == (1, 3, 0, 2)
    assert decoders["extra"].stream_channels == (1, 2, 4, 5)
    for decoder in decoders.values():
        decoder.start()
    try:
        time.sleep(0.5)  # every inlet connected before the first sample
        _push_all(list(outlets.values()), _signal(4.0))
        time.sleep(0.5)
    finally:
        for decoder in decoders.values():
            decoder.close()
    got = {k: _decisions(log) for k, log in logs.items()}
    ends = sorted(got["same"])
    assert len(ends) >= 25
    for k in ("permuted", "extra", "unmapped"):
        assert sorted(got[k]) == ends, k
    same = np.array([got["same"][e] for e in ends])
    assert np.ptp(same[:, 0]) > 0.05  # the probabilities move: a wrong channel would show
    for k in ("permuted", "extra"):
        np.testing.assert_allclose([got[k][e] for e in ends], same, atol=1e-5, err_msg=k)
    # the control: a channel other than CSC1 first gives other decisions
    assert np.max(np.abs(np.array([got["unmapped"][e] for e in ends]) - same)) > 0.05
    start = json.loads(logs["extra"].read_text().splitlines()[0])
    assert start["event"] == "start"
    assert start["channel_map"] == {label: label for label in LABELS}


def test_a_stream_with_other_channel_labels_is_exit_2_with_the_difference(
    labelled_model, unique_name, capsys
):
    outlet = _outlet(unique_name, ("CSC2", "CSC1", "CSC3", "AUX1"))
    code = main(["run", "--model", str(labelled_model), "--source", unique_name, "--headless"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"stream {unique_name!r} does not carry the channels of model labelled.onnx" in err
    assert "missing from the stream (CSC4)" in err and "not in the model (AUX1)" in err
    assert "CSC1 is channel 0 of the model, 1 of the stream" in err
    assert "--channel-map" in err and "Traceback" not in err
    # a map that names a channel the stream lacks: exit 2 too, before anything runs
    code = main(
        [
            "run",
            "--model",
            str(labelled_model),
            "--source",
            unique_name,
            "--headless",
            "--channel-map",
            "by-label",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "has no channel labelled CSC4" in err, err
    del outlet


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("CSC1=CSC2,CSC1=CSC3", "mapped more than once"),
        ("CSC1=CSC1", "gives no channel of stream"),
        ("nowhere.toml", "does not exist"),
    ],
)
def test_a_bad_channel_map_is_exit_2(labelled_model, unique_name, capsys, value, needle):
    outlet = _outlet(unique_name, LABELS)
    args = ["run", "--model", str(labelled_model), "--source", unique_name, "--headless"]
    code = main(args + ["--channel-map", value])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err, err
    del outlet


def test_without_labels_only_the_count_is_checked_and_a_warning_says_so(
    labelled_model, unique_name, tmp_path, caplog
):
    info = pylsl.StreamInfo(unique_name, "EEG", 4, FS, "float32", unique_name)
    outlet = pylsl.StreamOutlet(info)  # no channel labels in its header
    with caplog.at_level(logging.WARNING, logger="rtdecode"):
        decoder = _open(labelled_model, unique_name, tmp_path / "log.jsonl")
    decoder.close()
    warned = [r.getMessage() for r in caplog.records if "identity" in r.getMessage()]
    assert len(warned) == 1
    assert f"no channel labels on stream {unique_name!r}" in warned[0]
    del outlet


def test_a_stream_with_more_channels_and_no_map_points_to_the_map(
    labelled_model, unique_name, capsys
):
    """Without labels, a stream of more channels than the model is refused by its count, and
    the message says a map can pick the model's channels."""
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(unique_name, "EEG", 6, FS, "float32", unique_name))
    code = main(["run", "--model", str(labelled_model), "--source", unique_name, "--headless"])
    err = capsys.readouterr().err
    assert code == 2 and "expects 4 channels" in err and "--channel-map" in err, err
    del outlet


def test_the_signal_outlet_follows_the_models_channel_order(labelled_model, unique_name, tmp_path):
    """With a permuting map, the monitor's signal comes in the model's order, labelled with the
    stream channels that feed it, like the features."""
    outlet = _outlet(unique_name, ("CSC3", "CSC1", "CSC4", "CSC2"))
    decoder = _open(labelled_model, unique_name, tmp_path / "log.jsonl", "by-label")
    try:
        sid = output_source_id(SIGNAL_STREAM_NAME, decoder.acquisition.source_id)
        listener = pylsl.StreamInlet(pylsl.resolve_byprop("source_id", sid, timeout=5)[0])
        assert listener.info(timeout=5).get_channel_labels() == list(LABELS)
        listener.open_stream(timeout=5)
        time.sleep(0.5)  # the outlet sees its consumer
        samples = np.arange(4, dtype=np.float32)[:, None] * np.ones((4, 3), np.float32)
        decoder._telemetry.publish_signal(samples, pylsl.local_clock())
        chunk, _ = listener.pull_chunk(timeout=2.0)
        # the stream's channel 1 (CSC1) first, then 3 (CSC2), 0 (CSC3), 2 (CSC4)
        assert np.array(chunk)[0].tolist() == [1.0, 3.0, 0.0, 2.0]
    finally:
        decoder.close()
    del outlet
