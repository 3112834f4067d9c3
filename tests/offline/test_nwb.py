"""Labels from NWB TimeIntervals tables and Neuralynx event strings; decision logs exported to
NWB (``rtdecode export``) and read back with pynwb; the CLI's refusals (exit 2)."""

import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from pynwb import NWBHDF5IO, NWBFile  # noqa: E402
from pynwb.ecephys import ElectricalSeries  # noqa: E402
from pynwb.epoch import TimeIntervals  # noqa: E402

from rtdecode.offline.decision_log import read_decision_log  # noqa: E402
from rtdecode.offline.labels import NEV_RECORD, read_labels  # noqa: E402
from rtdecode.offline.nwb_export import labels_table  # noqa: E402
from rtdecode.offline.recordings import DataError, Recording, Segment  # noqa: E402

START = datetime.datetime(2024, 3, 1, 21, 0, 0, tzinfo=datetime.timezone.utc)


def write_nwb(path, *, data=None, fs=2000.0, starting_time=0.0, tables=(), start=START):
    """An NWB file: an ElectricalSeries (when ``data`` is given) starting at ``starting_time``,
    and the TimeIntervals ``tables``."""
    f = NWBFile(session_description="test", identifier=path.stem, session_start_time=start)
    if data is not None:
        device = f.create_device("amp")
        group = f.create_electrode_group("tetrode", description="t", location="ca1", device=device)
        for _ in range(data.shape[1]):
            f.add_electrode(group=group, location="ca1")
        region = f.create_electrode_table_region(list(range(data.shape[1])), "all")
        f.add_acquisition(
            ElectricalSeries(
                name="lfp",
                data=data,
                electrodes=region,
                starting_time=starting_time,
                rate=fs,
            )
        )
    for table in tables:
        f.add_time_intervals(table)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    return path


def _stages(rows, name="sleep_states", column="stage"):
    t = TimeIntervals(name=name, description="scored by hand")
    t.add_column(column, "the stage")
    for a, b, label in rows:
        t.add_row(start_time=float(a), stop_time=float(b), **{column: label})
    return t


def _recording_stub(path, fs=2000.0, n_samples=40_000):
    """A Recording standing for the NWB file at ``path`` (only its path, rate and length count
    for labels)."""
    return Recording(Path(path), fs, ["ch0"], ["uV"], n_samples)


# NWB labels -------------------------------------------------------------------------------
def test_nwb_table_by_name_and_column_counts_from_the_first_sample(tmp_path):
    # the series starts 2.5 s after the reference time: a label at 2.5 s is at the first sample
    rows = [(2.5, 7.5, "wake"), (7.5, 12.5, "nrem"), (12.5, 14.0, "rem")]
    trials = TimeIntervals(name="trials", description="trials")
    trials.add_row(start_time=3.0, stop_time=4.0)
    path = write_nwb(
        tmp_path / "rec.nwb",
        data=np.zeros((2000 * 20, 2), dtype=np.float32),
        starting_time=2.5,
        tables=[_stages(rows), trials],
    )
    segments = read_labels(path, intervals="sleep_states", label_column="stage")
    assert segments == [
        Segment(0.0, 5.0, "wake"),
        Segment(5.0, 5.0, "nrem"),
        Segment(10.0, 1.5, "rem"),
    ]
    # several tables and none named: refused, each listed with its columns
    with pytest.raises(DataError, match=r"2 TimeIntervals tables \(sleep_states \(3 rows; "):
        read_labels(path, label_column="stage")
    with pytest.raises(DataError, match=r"no TimeIntervals table named 'sleep'; .*--intervals"):
        read_labels(path, intervals="sleep", label_column="stage")
    with pytest.raises(DataError, match=r"no column 'label'; its columns: start_time, stop_time, "):
        read_labels(path, intervals="sleep_states")
    bare = write_nwb(tmp_path / "bare.nwb", data=np.zeros((100, 1), dtype=np.float32))
    with pytest.raises(DataError, match="no TimeIntervals table to use as labels; give the label"):
        read_labels(bare)


def test_labels_written_as_time_intervals_read_back_equal(tmp_path):
    segments = [
        Segment(0.0, 30.0, "wake", "night1"),
        Segment(30.0, 30.0, "nrem", "night1"),
        Segment(75.5, 4.25, "rem", "night1"),
    ]
    fs = 100.0
    path = write_nwb(
        tmp_path / "rec.nwb",
        data=np.zeros((int(fs * 100), 1), dtype=np.float32),
        fs=fs,
        starting_time=12.0,
        tables=[labels_table(segments, first_sample_s=12.0)],
    )
    assert read_labels(path, group_column="group") == segments
    # a file of labels alone, its reference time 20 s after the recording's, whose first sample
    # is at 12 s: moved by 20 - 12 s
    later = START + datetime.timedelta(seconds=20)
    alone = write_nwb(
        tmp_path / "labels.nwb", tables=[labels_table(segments, name="stages")], start=later
    )
    rec = _recording_stub(path, fs, int(fs * 100))
    moved = read_labels(alone, recording=rec)
    assert [(s.onset_s, s.label) for s in moved] == [(8.0, "wake"), (38.0, "nrem"), (83.5, "rem")]
    # alone, it counts from its own reference time
    assert read_labels(alone)[0] == Segment(0.0, 30.0, "wake")


def test_nwb_labels_before_the_first_sample_are_cut(tmp_path):
    path = write_nwb(
        tmp_path / "rec.nwb",
        data=np.zeros((2000 * 10, 1), dtype=np.float32),
        starting_time=5.0,
        tables=[_stages([(0.0, 3.0, "wake"), (3.0, 8.0, "nrem"), (8.0, 12.0, "rem")])],
    )
    assert read_labels(path, label_column="stage") == [
        Segment(0.0, 3.0, "nrem"),
        Segment(3.0, 4.0, "rem"),
    ]


def test_bad_intervals_through_the_cli_exit_2(tmp_path, capsys, make_model):
    from rtdecode.cli.main import main

    model = make_model("m.onnx", n_channels=2, fs_hz=2000.0)
    data = np.random.default_rng(0).normal(0, 10, (2000 * 6, 2)).astype(np.float32)
    rec = tmp_path / "rec.npz"
    np.savez(rec, data=data, fs=2000.0)
    labels = write_nwb(
        tmp_path / "labels.nwb",
        tables=[_stages([(0, 3, "wake"), (3, 6, "nrem")]), _stages([(0, 6, "x")], name="other")],
    )
    argv = ["evaluate", "--model", str(model), "--data", str(rec), "--labels", str(labels)]
    assert main([*argv, "--label-column", "stage"]) == 2
    err = capsys.readouterr().err
    assert "labels.nwb: 2 TimeIntervals tables (" in err and "--intervals NAME" in err
    assert "sleep_states (2 rows; columns stage)" in err and "other (1 rows; columns stage)" in err
    assert main([*argv, "--label-column", "stage", "--intervals", "nope"]) == 2
    assert "no TimeIntervals table named 'nope'" in capsys.readouterr().err
    assert main([*argv, "--label-column", "stage", "--intervals", "sleep_states", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labelled_windows"] > 0


# Neuralynx events -------------------------------------------------------------------------
def _nlx_header(kind: str, extra: str = "") -> bytes:
    text = (
        "######## Neuralynx Data File Header\r\n"
        f"-FileType {kind}\r\n-FileVersion 3.4\r\n"
        '-ApplicationName Cheetah "6.4.1"\r\n'
        "-TimeCreated 2019/07/12 13:21:32\r\n-TimeClosed 2019/07/12 15:21:32\r\n" + extra
    )
    return text.encode("latin-1").ljust(16384, b"\0")


def write_nev(path, events):
    """A .nev file of ``(timestamp_us, event_string)``."""
    records = np.zeros(len(events), dtype=NEV_RECORD)
    for r, (stamp, text) in zip(records, events):
        r["timestamp"], r["event_string"] = stamp, text.encode("latin-1")
        r["npkt_id"], r["npkt_data_size"] = 4, 2
    path.write_bytes(_nlx_header("Event", "-RecordSize 184\r\n") + records.tobytes())
    return path


_NCS = np.dtype(
    [
        ("timestamp", "<u8"),
        ("channel", "<u4"),
        ("fs", "<u4"),
        ("n_valid", "<u4"),
        ("samples", "<i2", (512,)),
    ]
)


def write_ncs(path, first_us, n_records, fs=2000):
    """An .ncs file of ``n_records`` full records from ``first_us``, as neo reads them."""
    records = np.zeros(n_records, dtype=_NCS)
    records["timestamp"] = first_us + np.arange(n_records) * round(512e6 / fs)
    records["fs"], records["n_valid"] = fs, 512
    extra = (
        f"-RecordSize 1044\r\n-SamplingFrequency {fs}\r\n-ADMaxValue 32767\r\n"
        "-ADBitVolts 0.000000030518\r\n-AcqEntName CSC1\r\n-NumADChannels 1\r\n-ADChannel 0\r\n"
        "-InputRange 1000\r\n-InputInverted False\r\n-HardwareSubSystemType DigitalLynxSX\r\n"
        "-DSPLowCutFilterEnabled True\r\n-DspLowCutFrequency 0.1\r\n-DspLowCutNumTaps 0\r\n"
        "-DspLowCutFilterType DCO\r\n-DSPHighCutFilterEnabled True\r\n"
        "-DspHighCutFrequency 500\r\n-DspHighCutNumTaps 256\r\n-DspHighCutFilterType FIR\r\n"
        "-DspDelayCompensation Enabled\r\n-DspFilterDelay_\xb5s 984\r\n"
    )
    path.write_bytes(_nlx_header("CSC", extra) + records.tobytes())
    return path


T0_US = 1_000_000_000  # the acquisition clock's first sample, microseconds
SESSION = [
    (T0_US + 100, "Starting Recording"),
    (T0_US + 1_000_000, "sleep:wake"),
    (T0_US + 4_000_000, "TTL Input on AcqSystem1_0 board 0 port 0 value (0x0001)."),
    (T0_US + 4_500_000, "sleep:nrem"),
    (T0_US + 6_000_000, "note: door opened"),
    (T0_US + 8_250_000, "sleep:rem"),
]


def test_nev_event_strings_are_labels_timed_as_neo_times_them(tmp_path):
    write_ncs(tmp_path / "CSC1.ncs", T0_US, 40)  # 40 x 512 samples at 2 kHz: 10.24 s
    nev = write_nev(tmp_path / "Events.nev", SESSION)
    segments = read_labels(nev, event_prefix="sleep:")
    # each lasts until the next, the last until the end of the .ncs data
    assert segments == [
        Segment(1.0, 3.5, "wake"),
        Segment(4.5, 3.75, "nrem"),
        Segment(8.25, 10.24 - 8.25, "rem"),
    ]
    # the same times as neo's reader gives the events (seconds from the .ncs's first sample)
    NeuralynxRawIO = pytest.importorskip("neo.rawio").NeuralynxRawIO

    neo_io = NeuralynxRawIO(dirname=str(tmp_path))
    neo_io.parse_header()
    stamps, _, strings = neo_io.get_event_timestamps(0, 0, 0)
    times = neo_io.rescale_event_timestamp(stamps, event_channel_index=0)
    by_neo = {str(s): float(t) for s, t in zip(strings, times)}
    assert [by_neo["sleep:" + s.label] for s in segments] == [s.onset_s for s in segments]
    # without a prefix: every string but Cheetah's own (the TTL line, Starting Recording)
    labels = [s.label for s in read_labels(nev)]
    assert labels == ["sleep:wake", "sleep:nrem", "note: door opened", "sleep:rem"]


def test_nev_without_ncs_counts_from_its_first_event_and_stops_at_stop(tmp_path):
    events = [*SESSION[:4], (T0_US + 7_000_000, "Stopping Recording")]
    nev = write_nev(tmp_path / "Events.nev", events)
    assert read_labels(nev, event_prefix="sleep:") == [
        Segment(1.0 - 1e-4, 3.5, "wake"),
        Segment(4.5 - 1e-4, 2.5, "nrem"),
    ]
    # a last label with no end (no stop, no recording, no .ncs) is left out, said in the log
    nev = write_nev(tmp_path / "Events.nev", SESSION[:4])
    assert [s.label for s in read_labels(nev, event_prefix="sleep:")] == ["wake"]
    # ... and with the recording, it lasts until the recording's end
    rec = Recording(tmp_path / "r.npz", 1000.0, ["a"], [""], 9000)
    assert read_labels(nev, event_prefix="sleep:", recording=rec)[-1].end_s == pytest.approx(9.0)


def test_bad_nev_files_are_data_errors(tmp_path):
    nev = write_nev(tmp_path / "Events.nev", SESSION)
    with pytest.raises(DataError, match=r"no event starts with 'stage:'; the event strings: "):
        read_labels(nev, event_prefix="stage:")
    cut = tmp_path / "cut.nev"
    cut.write_bytes(nev.read_bytes()[:-10])
    with pytest.raises(DataError, match="the file may be truncated"):
        read_labels(cut)
    other = tmp_path / "other.nev"
    other.write_bytes(b"\0" * (16384 + 184))
    with pytest.raises(DataError, match="not a Neuralynx file"):
        read_labels(other)


# Export -----------------------------------------------------------------------------------
def _state_runs(decisions, fs, origin):
    """(start, state) of each run of one state in a log's decisions, by end_sample."""
    runs = []
    for d in decisions:
        if not runs or runs[-1][1] != d["state"]:
            runs.append((origin + d["end_sample"] / fs, d["state"]))
    return runs


def _session_data(fs, seconds, n_ch, seed=3):
    """Noise whose spectrum changes every 2 s, so the small model's state changes."""
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    t = np.arange(n) / fs
    data = rng.normal(0, 10, (n, n_ch))
    for k, f_hz in enumerate((4, 30, 9, 60, 2, 45)):
        part = slice(int(2 * k * fs), int(2 * (k + 1) * fs))
        data[part, k % n_ch] += 60 * np.sin(2 * np.pi * f_hz * t[part])
    return data.astype(np.float32)


@pytest.mark.lsl
@pytest.mark.timeout(120)
def test_a_live_log_exported_to_nwb_reads_back_on_the_recordings_clock(
    tmp_path, small_model, unique_name, capsys
):
    import pylsl

    from rtdecode.acquisition.acquisition import LslAcquisition
    from rtdecode.acquisition.inlet import StreamSelector, resolve_stream
    from rtdecode.cli.main import main
    from rtdecode.decoding.decoder import Decoder
    from rtdecode.decoding.model import OnnxModel
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording
    from rtdecode.outputs.decisions import DecisionOutputs
    from rtdecode.stimulation.rules import StimProtocol, StimRule
    from rtdecode.stimulation.stimulator import Stimulator

    fs, n_ch, starting_time = 2000.0, 4, 2.5
    data = _session_data(fs, 12.0, n_ch)
    rec_nwb = write_nwb(tmp_path / "rec.nwb", data=data, fs=fs, starting_time=starting_time)
    protocol = StimProtocol(
        (
            StimRule(
                name="pulse", when="enter:nrem", pulse_ms=5, pulses=2, period_ms=20, delay_ms=10
            ),
            StimRule(name="gate", when="in:rem", channel=1),
        )
    )
    # a live run of the decoder on the recording's samples, with a dry-run stimulation
    model = OnnxModel(small_model)
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(unique_name, "EEG", n_ch, fs, "float32", unique_name), chunk_size=16
    )
    acquisition = LslAcquisition(resolve_stream(StreamSelector(name=unique_name), 5.0))
    log = tmp_path / "run.jsonl"
    outputs = DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=unique_name,
        hop_s=0.1,
        log_path=log,
    )
    config = model.stream_features(fs)
    stimulator = Stimulator(
        protocol,
        outputs,
        fs_hz=fs,
        window_samples=config.window_samples,
        input_source_id=acquisition.source_id,
    ).start()
    decoder = Decoder(model, acquisition, outputs, stimulator=stimulator)
    expected_decisions = (data.shape[0] - config.window_samples) // config.hop_samples + 1
    with decoder:
        deadline = time.monotonic() + 10
        while not outlet.have_consumers() and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = pylsl.local_clock()
        for pos in range(0, data.shape[0], 200):
            chunk = np.ascontiguousarray(data[pos : pos + 200])
            outlet.push_chunk(chunk, timestamp=t0 + (pos + len(chunk) - 1) / fs)
            time.sleep(0.002)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lines = [json.loads(x) for x in log.read_text().splitlines()]
            if sum("probs" in x for x in lines) >= expected_decisions:
                break
            time.sleep(0.05)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    decisions = [x for x in lines if "probs" in x]
    triggers = [x for x in lines if x.get("event") == "trigger"]
    assert len(decisions) == expected_decisions
    runs = _state_runs(decisions, fs, starting_time)
    assert len(runs) >= 3, runs  # the data make the state change
    assert any(t["action"] == "pulse" for t in triggers) and any(
        t["action"] == "on" for t in triggers
    )

    out = tmp_path / "decoded.nwb"
    assert main(["export", str(log), "--nwb", str(out), "--recording", str(rec_nwb)]) == 0
    assert "times by samples" in capsys.readouterr().out
    with NWBHDF5IO(str(out), "r") as io:
        nwbfile = io.read()
        assert nwbfile.session_start_time == START
        states = nwbfile.intervals["decoded_states"].to_dataframe()
        stim = nwbfile.events["stimulation"].to_dataframe()
    # one row per run of one state, on the recording's clock (its series starts at 2.5 s)
    assert list(states["state"]) == [s for _, s in runs]
    np.testing.assert_allclose(states["start_time"], [t for t, _ in runs], atol=1e-9)
    np.testing.assert_allclose(states["stop_time"].iloc[:-1], states["start_time"].iloc[1:])
    # the last holds a hop after the last decision, but not past the recording's end
    assert decisions[-1]["end_sample"] == data.shape[0]
    assert states["stop_time"].iloc[-1] == pytest.approx(starting_time + data.shape[0] / fs)
    assert states["decisions"].sum() == len(decisions) and not states["stale"].any()
    assert ((states["mean_probability"] > 0) & (states["mean_probability"] <= 1)).all()
    # every trigger line, at its decision's time plus the rule's delay
    assert len(stim) == len(triggers)
    decided = np.array([starting_time + t["end_sample"] / fs for t in triggers])
    np.testing.assert_allclose(stim["decision_time"], decided, atol=1e-9)
    np.testing.assert_allclose(stim["timestamp"], decided + [t["delay_ms"] / 1e3 for t in triggers])
    pulses = stim[stim["action"] == "pulse"]
    np.testing.assert_allclose(pulses["duration"], (20 + 5) / 1e3)
    gate = stim[(stim["action"] == "on")].iloc[0]
    off = stim[(stim["action"] == "off") & (stim["timestamp"] > gate["timestamp"])].iloc[0]
    assert gate["duration"] == pytest.approx(off["timestamp"] - gate["timestamp"])

    # read back as labels of the recording: each run from its first decision's window end
    back = read_labels(
        out,
        intervals="decoded_states",
        label_column="state",
        recording=_recording_stub(rec_nwb, fs, data.shape[0]),
    )
    assert [s.label for s in back] == [s for _, s in runs]
    np.testing.assert_allclose([s.onset_s for s in back], [t - starting_time for t, _ in runs])

    # the same recording decoded offline (rtdecode evaluate --decisions) exports the same states
    rec_npz = tmp_path / "rec.npz"
    np.savez(rec_npz, data=data, fs=fs)
    offline = decode_recording(model, open_recording(rec_npz), stim=protocol)
    assert [d["end_sample"] for d in decisions] == offline.end_samples.tolist()
    assert [d["state"] for d in decisions] == offline.states
    assert [(t["rule"], t["action"], t["end_sample"]) for t in triggers] == [
        (t.rule, t.action, t.end_sample) for t in offline.triggers
    ]
    labels = tmp_path / "labels.csv"
    labels.write_text("onset_s,duration_s,label\n0,12,wake\n")
    evaluated = tmp_path / "evaluated.jsonl"
    argv = ["evaluate", "--model", str(small_model), "--data", str(rec_npz)]
    assert main([*argv, "--labels", str(labels), "--decisions", str(evaluated)]) == 0
    out2 = tmp_path / "evaluated.nwb"
    assert main(["export", str(evaluated), "--nwb", str(out2), "--recording", str(rec_nwb)]) == 0
    with NWBHDF5IO(str(out2), "r") as io:
        again = io.read().intervals["decoded_states"].to_dataframe()
    assert list(again["state"]) == list(states["state"])
    np.testing.assert_allclose(again["start_time"], states["start_time"], atol=1e-6)
    np.testing.assert_allclose(again["stop_time"], states["stop_time"], atol=1e-6)


def _log_lines(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _decision(t, end_sample, state, **extra):
    return {"t": t, "end_sample": end_sample, "probs": {"a": 0.7, "b": 0.3}, "state": state} | extra


def test_log_timeline_stale_gaps_stalls_and_runs(tmp_path):
    fs = 100.0
    start = {"event": "start", "t": 1000.0, "unix_time": 1.7e9, "fs_hz": fs, "model": "m.onnx"}
    lines = [
        start,
        _decision(1001.99, 200, "a"),
        _decision(1002.09, 210, "a", stale=True),
        _decision(1002.19, 220, "a"),
        {"event": "gap", "t": 1003.0, "at_sample": 230, "missing_samples": 50},
        _decision(1004.39, 330, "b"),  # 230 + 100 samples, after 50 lost: at 3.8 s
        {"event": "no_signal", "t": 1004.6, "unix_time": 1.7e9 + 4.6},
        {"event": "signal_resumed", "t": 1005.1, "samples": 330},
        {"event": "decoder_stall", "t": 1005.2},
        {"event": "stop", "t": 1005.5},
    ]
    timeline = read_decision_log(_log_lines(tmp_path / "log.jsonl", lines))
    assert timeline.alignment == "samples"
    got = [(s.start_s, s.stop_s, s.state, s.stale, s.decisions) for s in timeline.states]
    expected = [
        (2.0, 2.1, "a", False, 1),
        (2.1, 2.2, "a", True, 1),
        (2.2, 2.3, "a", False, 1),  # no decision follows at once: a hop
        (3.8, 3.9, "b", False, 1),
    ]
    for g, e in zip(got, expected, strict=True):
        assert g[2:] == e[2:] and g[0] == pytest.approx(e[0]) and g[1] == pytest.approx(e[1])
    # events placed by the decision before them: no_signal 0.21 s after the one at 3.8 s
    health = [(h.kind, h.start_s, h.stop_s, h.ended_by) for h in timeline.health]
    assert health[0][0] == "no_signal" and health[0][3] == "signal_resumed"
    assert health[0][1:3] == pytest.approx((4.01, 4.51))
    assert health[1][0] == "decoder_stalled" and health[1][3] == "stop"
    # the session starts at sample 0: the first decision's last sample (199) 1.99 s before it
    assert timeline.first_sample_unix == pytest.approx(1.7e9 + (1001.99 - 1.99 - 1000.0))

    # a restarted decoder (a second start event): by LSL time; samples refused
    restarted = lines + [start | {"t": 1010.0}, _decision(1011.0, 100, "b")]
    log2 = _log_lines(tmp_path / "log2.jsonl", restarted)
    timeline = read_decision_log(log2)
    assert timeline.alignment == "lsl" and timeline.runs == 2
    assert timeline.states[-1].start_s == pytest.approx(2.0 + (1011.0 - 1001.99))
    assert timeline.states[-1].run == 2
    with pytest.raises(DataError, match="2 runs .*use --align lsl"):
        read_decision_log(log2, align="samples")


def test_rotated_logs_and_a_torn_last_line(tmp_path):
    start = {"event": "start", "t": 0.0, "unix_time": 1.7e9, "fs_hz": 10.0}
    first = _log_lines(tmp_path / "d.20240301T000000Z.jsonl", [start, _decision(1.0, 10, "a")])
    current = _log_lines(tmp_path / "d.jsonl", [_decision(1.1, 11, "b")])
    with current.open("a") as f:
        f.write('{"t": 1.2, "end_sam')  # a power cut mid-line
    timeline = read_decision_log([first, current])
    assert [s.state for s in timeline.states] == ["a", "b"]
    with pytest.raises(DataError, match="a decision before any start event: give the log's files"):
        read_decision_log([current, first])


def test_export_refusals_exit_2(tmp_path, capsys):
    from rtdecode.cli.main import main

    out = str(tmp_path / "out.nwb")
    assert main(["export", str(tmp_path / "missing.jsonl"), "--nwb", out]) == 2
    assert "missing.jsonl: no such decision log" in capsys.readouterr().err
    card = tmp_path / "model.json"
    card.write_text(json.dumps({"classes": ["a", "b"]}, indent=2))
    assert main(["export", str(card), "--nwb", out]) == 2
    assert "line 1 is not JSON: is this a decision log" in capsys.readouterr().err
    events = _log_lines(tmp_path / "events.jsonl", [{"event": "start", "t": 0.0, "fs_hz": 10.0}])
    assert main(["export", str(events), "--nwb", out]) == 2
    assert "holds no decision: is it a decision log" in capsys.readouterr().err
    log = _log_lines(
        tmp_path / "log.jsonl",
        [{"event": "start", "t": 0.0, "unix_time": 1.7e9, "fs_hz": 10.0}, _decision(1.0, 10, "a")],
    )
    rec = write_nwb(tmp_path / "rec.nwb", data=np.zeros((100, 1), np.float32), fs=10.0)
    assert main(["export", str(log), "--nwb", str(rec), "--recording", str(rec)]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert main(["export", str(log), "--nwb", out, "--recording", str(rec), "--series", "x"]) == 2
    assert "no ElectricalSeries named 'x'; the file has 'lfp'" in capsys.readouterr().err
    # decisions beyond the recording's end: not its log
    assert (
        main(["export", str(log), "--nwb", out, "--recording", str(rec), "--offset-s", "20"]) == 2
    )
    assert "after the end of series 'lfp'" in capsys.readouterr().err
    # without a recording: a file of its own, its session starting at the stream's first sample
    assert main(["export", str(log), "--nwb", out]) == 0
    with NWBHDF5IO(out, "r") as io:
        nwbfile = io.read()
        row = nwbfile.intervals["decoded_states"].to_dataframe().iloc[0]
        assert nwbfile.session_start_time.timestamp() == pytest.approx(1.7e9 + 1.0 - 0.9)
    assert (row["start_time"], row["state"]) == (1.0, "a") and math.isclose(
        row["mean_probability"], 0.7
    )
