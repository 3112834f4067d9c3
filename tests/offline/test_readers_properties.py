"""Property tests for the file readers: what is written reads back, in any chunking, and any
damaged or foreign file gives a DataError (a readable message), never another exception."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("edfio")

from rtdecode.offline.labels import read_labels  # noqa: E402
from rtdecode.offline.recordings import DataError, Segment, open_recording  # noqa: E402

# the file writers live beside the example tests; --import-mode=importlib does not put this
# folder on sys.path
sys.path.insert(0, str(Path(__file__).parent))
from test_recordings import write_edf, write_xdf  # noqa: E402

# No example database: every machine runs the same examples, none replayed from .hypothesis/.
PROPERTY = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


_ROOT = tempfile.TemporaryDirectory(prefix="rtd-prop-")  # removed when the run ends


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT.name))


@PROPERTY
@given(
    n_ch=st.integers(1, 4),
    fs=st.sampled_from([100.0, 128.0, 256.0, 500.0]),
    seconds=st.integers(1, 6),
    chunk=st.integers(1, 5000),
    seed=st.integers(0, 2**16),
    bdf=st.booleans(),
)
def test_edf_reads_back_whatever_the_chunking(n_ch, fs, seconds, chunk, seed, bdf):
    data = np.random.default_rng(seed).uniform(-190, 190, (int(fs * seconds), n_ch))
    path = write_edf(_tmp() / ("r.bdf" if bdf else "r.edf"), data, fs, bdf=bdf)
    rec = open_recording(path)
    assert (rec.fs_hz, rec.n_channels, rec.n_samples) == (fs, n_ch, data.shape[0])
    got = np.concatenate(list(rec.chunks(chunk)))
    step = 400.0 / (2 ** (24 if bdf else 16) - 1)
    np.testing.assert_allclose(got, data, atol=step)


@PROPERTY
@given(
    n_ch=st.integers(1, 3),
    n=st.integers(1, 400),
    chunk=st.integers(1, 500),
    seed=st.integers(0, 2**16),
)
def test_xdf_reads_back_whatever_the_chunking(n_ch, n, chunk, seed):
    data = np.random.default_rng(seed).normal(0, 50, (n, n_ch)).astype(np.float32)
    path = write_xdf(
        _tmp() / "r.xdf",
        [
            dict(
                name="eeg",
                type="EEG",
                fs=250.0,
                fmt="float32",
                labels=[f"C{i}" for i in range(n_ch)],
                stamps=[10.0 + i / 250.0 for i in range(n)],
                values=list(data),
            )
        ],
    )
    rec = open_recording(path)
    assert rec.n_channels == n_ch and rec.channel_names == tuple(f"C{i}" for i in range(n_ch))
    np.testing.assert_array_equal(np.concatenate(list(rec.chunks(chunk))), data)


segments = st.lists(
    st.tuples(
        st.floats(0.0, 100.0, allow_nan=False).map(lambda x: round(x, 3)),
        st.floats(0.01, 20.0, allow_nan=False).map(lambda x: round(x, 3)),
        st.sampled_from(["wake", "nrem", "rem", "seizure", "a b", "N2"]),
    ),
    min_size=1,
    max_size=30,
)


@PROPERTY
@given(segments)
def test_label_csv_round_trips_non_overlapping_segments(rows):
    # lay the segments end to end so they never overlap
    t, laid = 0.0, []
    for _, duration, label in rows:
        laid.append((round(t, 3), duration, label))
        t = round(t + duration, 3)
    path = _tmp() / "labels.csv"
    lines = ["onset_s,duration_s,label,comment"] + [
        f"{o},{d},{lab},x" for o, d, lab in reversed(laid)
    ]
    path.write_text("\n".join(lines) + "\n")
    got = read_labels(path)
    assert [(s.onset_s, s.duration_s, s.label) for s in got] == [
        (pytest.approx(o), pytest.approx(d), lab) for o, d, lab in laid
    ]
    assert all(isinstance(s, Segment) for s in got)


# Damaged files: a valid file cut short or with bytes overwritten, or random bytes.
def _valid(kind: str, folder: Path) -> Path:
    t = np.arange(512) / 128.0
    data = np.stack([50 * np.sin(2 * np.pi * 5 * t), 30 * np.cos(2 * np.pi * 3 * t)], axis=1)
    if kind in ("edf", "bdf"):
        return write_edf(folder / f"r.{kind}", data, 128.0, bdf=kind == "bdf")
    if kind == "xdf":
        return write_xdf(
            folder / "r.xdf",
            [
                dict(
                    name="eeg",
                    type="EEG",
                    fs=128.0,
                    fmt="float32",
                    labels=["a", "b"],
                    stamps=list(1.0 + t),
                    values=list(data.astype(np.float32)),
                )
            ],
        )
    if kind == "npz":
        np.savez(folder / "r.npz", data=data, fs=128.0)
        return folder / "r.npz"
    path = folder / "labels.csv"
    path.write_text("onset_s,duration_s,label\n0,1,wake\n1,2.5,nrem\n3.5,0.5,rem\n")
    return path


@PROPERTY
@given(
    kind=st.sampled_from(["edf", "bdf", "xdf", "npz", "csv"]),
    damage=st.sampled_from(["truncate", "overwrite", "random"]),
    where=st.floats(0.0, 1.0),
    payload=st.binary(min_size=1, max_size=64),
)
def test_damaged_files_give_a_data_error_and_nothing_else(kind, damage, where, payload):
    path = _valid(kind, _tmp())
    raw = bytearray(path.read_bytes())
    at = int(where * (len(raw) - 1))
    if damage == "truncate":
        raw = raw[:at]
    elif damage == "overwrite":
        raw[at : at + len(payload)] = payload
    else:
        raw = bytearray(payload * (1 + 200 // len(payload)))
    path.write_bytes(bytes(raw))
    try:
        if kind == "csv":
            read_labels(path)
        else:
            rec = open_recording(path)
            for _ in rec.chunks(100):
                pass
    except DataError as exc:
        assert str(path) in str(exc)  # says which file
    # reading may also succeed: an overwrite inside the samples is still a valid file
