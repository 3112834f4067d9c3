"""Readers (EDF, BDF, XDF, npz) and label formats, on files written here and on the real data."""

import datetime
import json
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("edfio")
pytest.importorskip("pyxdf")

from edfio import Bdf, BdfSignal, Edf, EdfAnnotation, EdfSignal  # noqa: E402
from edfio import Recording as EdfRecording  # noqa: E402

from rtdecode.offline.datasets import window_labels  # noqa: E402
from rtdecode.offline.labels import read_labels  # noqa: E402
from rtdecode.offline.recordings import DataError, Segment, open_recording  # noqa: E402


def _signals(fs=256.0, seconds=10.0, n_ch=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    return np.stack(
        [50 * np.sin(2 * np.pi * (3 + c) * t) + rng.normal(0, 5, t.size) for c in range(n_ch)],
        axis=1,
    )


def write_edf(path, data, fs, names=None, annotations=(), bdf=False):
    names = names or [f"EEG{i}" for i in range(data.shape[1])]
    cls, sig = (Bdf, BdfSignal) if bdf else (Edf, EdfSignal)
    signals = [
        sig(data[:, i], fs, label=n, physical_dimension="uV", physical_range=(-200.0, 200.0))
        for i, n in enumerate(names)
    ]
    kwargs = {}
    if annotations:
        kwargs["annotations"] = [EdfAnnotation(o, d, t) for o, d, t in annotations]
    cls(signals, **kwargs).write(path)
    return path


# A minimal XDF writer (format spec: github.com/sccn/xdf/wiki/Specifications): enough for
# pyxdf to read what LabRecorder writes: file header, stream headers, sample chunks, footers.
def _xdf_chunk(tag, payload):
    body = struct.pack("<H", tag) + payload
    return struct.pack("<B", 4) + struct.pack("<I", len(body)) + body


def _xdf_varlen(n):
    return struct.pack("<B", 4) + struct.pack("<I", n)


def write_xdf(path, streams):
    """streams: list of dicts name, type, fs, fmt ('float32'|'string'), labels, stamps, values."""
    out = b"XDF:" + _xdf_chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, start=1):
        chans = "".join(
            f"<channel><label>{lab}</label><unit>uV</unit></channel>" for lab in s.get("labels", [])
        )
        n_ch = len(s["labels"]) if s["fmt"] == "float32" else 1
        header = (
            f'<?xml version="1.0"?><info><name>{s["name"]}</name><type>{s["type"]}</type>'
            f"<channel_count>{n_ch}</channel_count><nominal_srate>{s['fs']}</nominal_srate>"
            f"<channel_format>{s['fmt']}</channel_format><created_at>0</created_at>"
            f"<desc><channels>{chans}</channels></desc></info>"
        ).encode()
        out += _xdf_chunk(2, struct.pack("<I", sid) + header)
        samples = b""
        for ts, value in zip(s["stamps"], s["values"]):
            samples += struct.pack("<B", 8) + struct.pack("<d", ts)
            if s["fmt"] == "float32":
                samples += np.asarray(value, dtype="<f4").tobytes()
            else:
                raw = value.encode()
                samples += _xdf_varlen(len(raw)) + raw
        out += _xdf_chunk(3, struct.pack("<I", sid) + _xdf_varlen(len(s["stamps"])) + samples)
    for sid, s in enumerate(streams, start=1):
        footer = (
            f'<?xml version="1.0"?><info><first_timestamp>{s["stamps"][0]}</first_timestamp>'
            f"<last_timestamp>{s['stamps'][-1]}</last_timestamp>"
            f"<sample_count>{len(s['stamps'])}</sample_count></info>"
        ).encode()
        out += _xdf_chunk(6, struct.pack("<I", sid) + footer)
    Path(path).write_bytes(out)
    return path


# Recordings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bdf", [False, True])
def test_edf_and_bdf_read_back_in_chunks(tmp_path, bdf):
    data = _signals()
    path = write_edf(tmp_path / ("r.bdf" if bdf else "r.edf"), data, 256.0, bdf=bdf)
    rec = open_recording(path)
    assert rec.fs_hz == 256.0 and rec.n_samples == data.shape[0]
    assert rec.channel_names == ("EEG0", "EEG1", "EEG2") and rec.units == ("uV",) * 3
    whole = np.concatenate(list(rec.chunks(777)))
    step = 400.0 / (2 ** (24 if bdf else 16) - 1)  # quantisation of the physical range
    np.testing.assert_allclose(whole, data, atol=step)
    assert whole.dtype == np.float32
    # a selection by name and index, in the order asked
    sub = open_recording(path, channels=["EEG2", "0"])
    np.testing.assert_array_equal(sub.read(100, 200), whole[100:200][:, [2, 0]])


def test_unknown_channel_lists_the_file_channels(tmp_path):
    path = write_edf(tmp_path / "r.edf", _signals(), 256.0)
    with pytest.raises(
        DataError,
        match=r"r\.edf: no channel named 'Cz'; channels in the file: "
        r"EEG0, EEG1, EEG2",
    ):
        open_recording(path, channels=["Cz"])
    with pytest.raises(DataError, match="index 7 is out of range"):
        open_recording(path, channels=["7"])


def test_truncated_and_wrong_files_are_data_errors(tmp_path):
    path = write_edf(tmp_path / "r.edf", _signals(), 256.0)
    cut = tmp_path / "cut.edf"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.edf: not a readable EDF file"):
        open_recording(cut)
    fake = tmp_path / "fake.xdf"
    fake.write_bytes(b"not xdf at all")
    with pytest.raises(DataError, match=r"fake\.xdf: not a readable XDF file"):
        open_recording(fake)
    with pytest.raises(DataError, match=r"unsupported recording format \.wav"):
        (tmp_path / "x.wav").write_bytes(b"RIFF")
        open_recording(tmp_path / "x.wav")
    with pytest.raises(DataError, match="no such file"):
        open_recording(tmp_path / "missing.edf")


def test_npz_reader_and_its_errors(tmp_path):
    data = _signals(fs=100.0)
    np.savez(tmp_path / "r.npz", data=data, fs=100.0, channel_names=["a", "b", "c"])
    rec = open_recording(tmp_path / "r.npz", channels=["c"])
    np.testing.assert_allclose(rec.read(0, rec.n_samples)[:, 0], data[:, 2], rtol=1e-6)
    np.savez(tmp_path / "bad.npz", samples=data)
    with pytest.raises(DataError, match=r"bad\.npz: missing array\(s\) \['data', 'fs'\]"):
        open_recording(tmp_path / "bad.npz")


def test_xdf_data_stream_and_marker_labels(tmp_path):
    fs = 200.0
    data = _signals(fs=fs, seconds=6.0, n_ch=2).astype(np.float32)
    t0 = 1000.0
    stamps = t0 + np.arange(data.shape[0]) / fs
    path = write_xdf(
        tmp_path / "rec.xdf",
        [
            {
                "name": "amp",
                "type": "EEG",
                "fs": fs,
                "fmt": "float32",
                "labels": ["C3", "C4"],
                "stamps": stamps,
                "values": data,
            },
            {
                "name": "scores",
                "type": "Markers",
                "fs": 0,
                "fmt": "string",
                "stamps": [t0, t0 + 2.0, t0 + 4.5],
                "values": ["wake", "nrem", "wake"],
            },
        ],
    )
    rec = open_recording(path)
    assert rec.channel_names == ("C3", "C4") and rec.fs_hz == fs
    np.testing.assert_allclose(rec.read(0, rec.n_samples), data, rtol=1e-6)
    segs = read_labels(path, recording=rec)
    assert [(s.label, round(s.onset_s, 3), round(s.end_s, 3)) for s in segs] == [
        ("wake", 0.0, 2.0),
        ("nrem", 2.0, 4.5),
        ("wake", 4.5, 6.0),
    ]
    with pytest.raises(DataError, match="no data stream named or typed 'ECoG'"):
        open_recording(path, stream="ECoG")


# Labels -------------------------------------------------------------------------------------
def test_csv_labels_ignore_extra_columns_and_read_groups(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("onset_s,duration_s,label,annotation,comment\n0,4,normal,7,x\n4,4,seizure,8,\n")
    segs = read_labels(p, group_column="annotation")
    assert segs == [Segment(0.0, 4.0, "normal", "7"), Segment(4.0, 4.0, "seizure", "8")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("start,len,label\n0,4,a\n", r"line 1: missing column\(s\) \['onset_s', 'duration_s'\]"),
        ("onset_s,duration_s,label\n0,4,a\nfour,4,b\n", r"line 3: onset_s='four'"),
        ("onset_s,duration_s,label\n0,-1,a\n", r"line 2: onset_s must be >= 0 and duration_s > 0"),
        (
            "onset_s,duration_s,label\n0,4,a\n3,4,b\n",
            r"segments overlap: 'a' 0-4 s and 'b' from 3 s",
        ),
        ("onset_s,duration_s,label\n0,4,\n", r"line 2: empty 'label'"),
        ("wake\nwake\nnrem\n", r"line 1: missing column.*needs --epoch-s"),
        # a quote left open would otherwise swallow the rest of the file as one label
        ('onset_s,duration_s,label\n0,4,a\n4,4,"b\n8,4,c\n', r"line 3: a quote opened on this "),
        ('onset_s,duration_s,label\n0,4,"a\n4,4,b"\n8,4,c\n', r"line 2: a quoted field runs on "),
        ("onset_s,duration_s,label\n0,4\n", r"line 2: 2 fields, the header has 3"),
        ("onset_s,duration_s,label\n0,4,stage 2, light\n", r"line 2: 4 fields.*quote a value"),
        ("onset_s,duration_s,label\n\n\n0,nan,a\n", r"line 4: onset_s must be >= 0 and "),
        ("onset_s,duration_s,label\n-2,4,a\n", r"line 2: onset_s must be >= 0 and "),
        ('onset_s,duration_s,label\n0,4,a\n4,4,"b"c\n', r"line 3: not valid CSV"),
    ],
)
def test_malformed_label_files_name_the_line(tmp_path, text, message):
    p = tmp_path / "labels.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=r"labels\.csv: " + message):
        read_labels(p)


def test_label_csv_with_trailing_delimiters_reads(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text('onset_s,duration_s,label\n0,4,a,,\n4,4,"b, c"\n')
    assert read_labels(p) == [Segment(0.0, 4.0, "a"), Segment(4.0, 4.0, "b, c")]


def test_oversized_csv_field_names_its_line(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("onset_s,duration_s,label\n0,4,a\n4,4," + "x" * 200_000 + "\n")
    with pytest.raises(DataError, match=r"labels\.csv: line 3: a field longer than \d+ char"):
        read_labels(p)


def test_malformed_labels_through_the_cli_exit_2(tmp_path, capsys):
    from rtdecode.cli.main import main

    rec = write_edf(tmp_path / "r.edf", _signals(seconds=10.0), 256.0)
    bad = tmp_path / "labels.csv"
    bad.write_text('onset_s,duration_s,label\n0,5,wake\n5,5,"sleep\n')
    code = main(["train", "--data", str(rec), "--labels", str(bad), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert "labels.csv: line 3: a quote opened on this line is never closed" in err


def test_hypnogram_and_labels_beyond_the_recording(tmp_path):
    rec_path = write_edf(tmp_path / "r.edf", _signals(seconds=10.0), 256.0)
    rec = open_recording(rec_path)
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("wake\nnrem\n")
    assert read_labels(hyp, epoch_s=5.0, recording=rec) == [
        Segment(0.0, 5.0, "wake"),
        Segment(5.0, 5.0, "nrem"),
    ]
    hyp.write_text("wake\nnrem\nrem\nrem\n")
    with pytest.raises(DataError, match=r"hyp\.txt: 2 label\(s\) start after the end of r\.edf"):
        read_labels(hyp, epoch_s=5.0, recording=rec)
    hyp.write_text("wake\n\nrem\n")
    with pytest.raises(DataError, match=r"hyp\.txt: line 2: empty epoch"):
        read_labels(hyp, epoch_s=5.0)


def test_edf_plus_annotations_are_labels(tmp_path):
    path = write_edf(
        tmp_path / "a.edf",
        _signals(seconds=10.0),
        256.0,
        annotations=[(0.0, 6.0, "normal"), (6.0, 4.0, "seizure")],
    )
    rec = open_recording(path)
    assert read_labels(path, recording=rec) == [
        Segment(0.0, 6.0, "normal"),
        Segment(6.0, 4.0, "seizure"),
    ]
    plain = write_edf(tmp_path / "plain.edf", _signals(seconds=10.0), 256.0)
    with pytest.raises(DataError, match="holds no EDF\\+ annotations"):
        read_labels(plain)


def write_hypnogram_edf(path, stages, *, epoch_s=30.0, starttime=None):
    """An EDF+ holding only annotations, laid out as Sleep-EDF's *-Hypnogram.edf files."""
    annotations = [
        EdfAnnotation(i * epoch_s, epoch_s, f"Sleep stage {s}") for i, s in enumerate(stages)
    ]
    header = EdfRecording(startdate=datetime.date(1989, 4, 24)) if starttime else None
    Edf([], annotations=annotations, starttime=starttime, recording=header).write(path)
    return path


def test_annotations_only_edf_is_a_label_file(tmp_path):
    # the recording starts at 22:00:00, its hypnogram 60 s later: onsets move by 60 s
    rec_path = tmp_path / "SC-PSG.edf"
    data = _signals(fs=100.0, seconds=300.0, n_ch=1)
    signal = EdfSignal(data[:, 0], 100.0, label="Fpz-Cz", physical_range=(-200.0, 200.0))
    header = EdfRecording(startdate=datetime.date(1989, 4, 24))
    Edf([signal], starttime=datetime.time(22, 0, 0), recording=header).write(rec_path)
    rec = open_recording(rec_path)
    hyp = write_hypnogram_edf(
        tmp_path / "SC-Hypnogram.edf", ["W", "1", "R", "?"], starttime=datetime.time(22, 1, 0)
    )
    assert read_labels(hyp, recording=rec) == [
        Segment(60.0, 30.0, "Sleep stage W"),
        Segment(90.0, 30.0, "Sleep stage 1"),
        Segment(120.0, 30.0, "Sleep stage R"),
        Segment(150.0, 30.0, "Sleep stage ?"),
    ]
    # alone (or with a recording of no start time) its onsets count from its own start
    assert read_labels(hyp)[0] == Segment(0.0, 30.0, "Sleep stage W")
    # given as a recording, it is refused, and the message says what it is
    with pytest.raises(
        DataError,
        match=r"SC-Hypnogram\.edf: the file holds no signals, only 4 annotation\(s\): "
        r"it is a label file .* give it with --labels",
    ):
        open_recording(hyp)


def test_annotations_only_edf_labels_a_recording_through_the_cli(tmp_path, capsys, make_model):
    from rtdecode.cli.main import main

    model = make_model("m.onnx", n_channels=1, fs_hz=100.0, window_s=2.0, hop_s=1.0)
    rec = write_edf(tmp_path / "r-PSG.edf", _signals(fs=100.0, seconds=120.0, n_ch=1), 100.0)
    hyp = write_hypnogram_edf(tmp_path / "r-Hypnogram.edf", ["W", "1", "1", "R"])
    stages = "Sleep stage W=wake,Sleep stage 1=nrem,Sleep stage R=rem"
    argv = ["evaluate", "--model", str(model), "--data", str(rec), "--json"]
    assert main([*argv, "--labels", str(hyp), "--map", stages]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # 2 s windows, 1 s hop, 30 s epochs: the windows inside one labelled stretch
    assert metrics["decisions"] == 119 and metrics["labelled_windows"] == 119 - 2
    # the label file given as the recording: exit 2, with what to do
    argv[4] = str(hyp)
    assert main([*argv, "--labels", str(hyp)]) == 2
    assert "it is a label file" in capsys.readouterr().err


def test_recordings_without_channels_are_refused(tmp_path):
    stamps = 5.0 + np.arange(50) / 100.0
    empty = {"name": "amp", "type": "EEG", "fs": 100.0, "fmt": "float32", "labels": []}
    path = write_xdf(tmp_path / "r.xdf", [empty | {"stamps": stamps, "values": np.zeros((50, 0))}])
    with pytest.raises(DataError, match=r"r\.xdf: stream 'amp' has no channels"):
        open_recording(path)
    markers = {"name": "m", "type": "Markers", "fs": 0, "fmt": "string"}
    path = write_xdf(tmp_path / "m.xdf", [markers | {"stamps": [1.0], "values": ["wake"]}])
    with pytest.raises(DataError, match=r"m\.xdf: no data stream, only marker streams"):
        open_recording(path)
    np.savez(tmp_path / "r.npz", data=np.zeros((100, 0)), fs=100.0)
    with pytest.raises(DataError, match=r"r\.npz: field 'data' has no channels"):
        open_recording(tmp_path / "r.npz")


def test_window_labels_leave_straddling_windows_out():
    segs = [
        Segment(0, 4, "a", "g1"),
        Segment(4, 4, "a", "g2"),
        Segment(8, 2, "b"),
        Segment(10, 5, "b"),
    ]
    ends = np.array([2.0, 4.0, 5.0, 8.0, 10.0, 12.0, 15.0])
    y, groups = window_labels(ends, 2.0, segs, ["a", "b"])
    # 5.0 straddles two groups of 'a' -> out; 12.0 spans two touching 'b' segments -> merged
    assert y.tolist() == [0, 0, -1, 0, 1, 1, 1]
    assert groups.tolist() == ["g1", "g1", None, "g2", None, None, None]


@pytest.mark.data
def test_real_recordings_and_labels_read(shared_data):
    rat = open_recording(shared_data / "rat-seizure" / "rat_seizure_dev.edf")
    assert rat.fs_hz == 512.0 and rat.n_channels == 1 and abs(rat.duration_s - 992.0) < 1e-6
    segs = read_labels(
        shared_data / "rat-seizure" / "rat_seizure_dev_labels.csv",
        recording=rat,
        group_column="annotation",
    )
    assert len(segs) == 248 and {s.label for s in segs} == {"normal", "seizure"}
    dreams = open_recording(shared_data / "dreams" / "excerpt1.edf")
    assert dreams.channel_names == ("C3-A1",) and dreams.fs_hz == 100.0
    hyp = read_labels(
        shared_data / "dreams" / "excerpt1_hypnogram.csv", recording=dreams, label_column="stage"
    )
    assert len(hyp) == 360 and hyp[-1].end_s == 1800.0
