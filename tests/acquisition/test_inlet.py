"""Pinning the source: several streams under one name are refused with the flags that pin each;
name, type, source_id and host combine; a reconnection to a stream with another rate stops."""

import threading
import time

import numpy as np
import pylsl
import pytest

from rtdecode.acquisition.acquisition import LslAcquisition
from rtdecode.acquisition.inlet import (
    AmbiguousStreamError,
    StreamNotFoundError,
    StreamSelector,
    resolve_stream,
)
from rtdecode.cli.main import main
from rtdecode.decoding.decoder import Decoder
from rtdecode.decoding.model import OnnxModel
from rtdecode.outputs.decisions import DecisionOutputs

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(120)]


def _outlet(name, source_id, *, n_channels=4, fs_hz=2000.0, type_="EEG"):
    return pylsl.StreamOutlet(
        pylsl.StreamInfo(name, type_, n_channels, fs_hz, "float32", source_id)
    )


def test_several_streams_under_one_name_are_refused_with_the_flags_that_pin_each(
    unique_name, small_model, capsys
):
    outlets = [_outlet(unique_name, f"{unique_name}-a"), _outlet(unique_name, f"{unique_name}-b")]
    code = main(["run", "--model", str(small_model), "--source", unique_name, "--headless"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"2 LSL streams match name={unique_name!r}" in err
    for suffix in ("a", "b"):
        assert f"--source {unique_name} --source-id {unique_name}-{suffix}" in err
    # the flag shown pins it
    pinned = resolve_stream(
        StreamSelector(name=unique_name, source_id=f"{unique_name}-b"), timeout_s=5
    )
    assert pinned.source_id() == f"{unique_name}-b"
    del outlets


def test_streams_that_cannot_be_told_apart_are_refused_and_said_so(unique_name):
    outlets = [_outlet(unique_name, "same"), _outlet(unique_name, "same")]
    with pytest.raises(AmbiguousStreamError, match="cannot be told apart"):
        resolve_stream(StreamSelector(name=unique_name), timeout_s=5)
    del outlets


def test_the_resolve_listens_for_every_stream_not_only_the_first(unique_name):
    first = _outlet(unique_name, f"{unique_name}-1")
    later = []
    # a second publisher that answers a little after the first
    timer = threading.Timer(0.3, lambda: later.append(_outlet(unique_name, f"{unique_name}-2")))
    timer.start()
    with pytest.raises(AmbiguousStreamError):
        resolve_stream(StreamSelector(name=unique_name), timeout_s=5)
    timer.join()
    assert first is not None and len(later) == 1


def test_type_and_host_combine_with_the_name(unique_name):
    eeg = _outlet(unique_name, f"{unique_name}-eeg")
    markers = _outlet(unique_name, f"{unique_name}-m", type_="Other")
    found = resolve_stream(StreamSelector(name=unique_name, type="EEG"), timeout_s=5)
    assert found.source_id() == f"{unique_name}-eeg"
    host = found.hostname()
    with pytest.raises(StreamNotFoundError, match="host='no-such-machine'"):
        resolve_stream(
            StreamSelector(name=unique_name, type="EEG", host="no-such-machine"), timeout_s=1.5
        )
    assert resolve_stream(
        StreamSelector(name=unique_name, type="EEG", host=host), timeout_s=5
    ).source_id() == (f"{unique_name}-eeg")
    del eeg, markers


@pytest.mark.parametrize(
    "flags", [["--source", ""], ["--source-id", " "], ["--source", "x", "--host", ""], []]
)
def test_an_empty_or_missing_source_is_a_usage_error(small_model, flags, capsys):
    try:
        code = main(["run", "--model", str(small_model), "--headless", *flags])
    except SystemExit as exc:  # refused by argparse, as the command line is read
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and ("empty" in err or "give the input stream" in err)


def test_a_reconnection_to_a_stream_with_another_rate_stops_the_decoder(
    unique_name, small_model, tmp_path
):
    """liblsl reconnects an inlet to any stream with the same source_id and channel count: a
    source restarted at another rate must not be decoded as if it had the model's."""
    outlet = _outlet(unique_name, unique_name)
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), timeout_s=5))
    model = OnnxModel(small_model)
    outputs = DecisionOutputs(
        model.contract.classes, input_source_id=unique_name, input_name=unique_name, hop_s=0.1
    )
    decoder = Decoder(model, acquisition, outputs).start()
    block = np.random.default_rng(0).normal(0, 10, (20, 4)).astype(np.float32)
    try:
        for _ in range(100):  # 1 s at 2 kHz
            outlet.push_chunk(block)
            time.sleep(0.01)
        del outlet  # the source stops ...
        time.sleep(1.5)
        outlet = _outlet(unique_name, unique_name, fs_hz=1000.0)  # ... and comes back at 1 kHz
        deadline = time.monotonic() + 30
        while decoder.running and time.monotonic() < deadline:
            outlet.push_chunk(block)
            time.sleep(0.02)
        with pytest.raises(RuntimeError, match=r"rate \(Hz\) 2000\.0 -> 1000\.0"):
            decoder.wait(0.1)
    finally:
        decoder.close()


def test_a_stream_announcing_an_absurd_size_is_refused_with_the_memory_it_would_need(
    unique_name,
):
    from rtdecode.acquisition.inlet import StreamMismatchError

    info = pylsl.StreamInfo(unique_name, "EEG", 64, 1e9, "float32", unique_name)
    outlet = pylsl.StreamOutlet(info, max_buffered=1)
    found = resolve_stream(StreamSelector(name=unique_name), timeout_s=5)
    with pytest.raises(StreamMismatchError, match=r"announces 64 channels at 1e\+09 Hz: .* GiB"):
        LslAcquisition(found)
    del outlet


def test_run_refuses_a_stream_at_an_absurd_multiple_of_the_models_rate(
    unique_name, small_model, capsys
):
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", 4, 1e9, "float32", unique_name), max_buffered=1
    )
    code = main(["run", "--model", str(small_model), "--source", unique_name, "--headless"])
    assert code == 2
    err = capsys.readouterr().err
    assert "1e+09 Hz" in err and ("rtdecode decodes streams up to" in err or "GiB" in err)
    del outlet
