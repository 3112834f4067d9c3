"""The compiled record gatherer against numpy on the same records, and Neuralynx sessions read
through it against neo's own reading."""

import numpy as np
import pytest

from rtdecode.offline._records import ChannelRecords

# a record like Neuralynx's: a header, then the samples (the header's bytes lie between rows)
_RECORD = np.dtype([("timestamp", "<u8"), ("info", "<u4", 3), ("samples", "<i2", 512)])


def _records(n_records, n_ch, seed, dtype=_RECORD):
    rng = np.random.default_rng(seed)
    arrays = np.zeros((n_ch, n_records), dtype)
    arrays["samples"] = rng.integers(-32768, 32768, arrays["samples"].shape)
    arrays["timestamp"] = 7  # not samples: must never be read as such
    return [a["samples"] for a in arrays]


def _want(records, gains, first, n, offset_binary=False):
    flat = np.stack([r.reshape(-1) for r in records], axis=1)[first : first + n]
    if offset_binary:
        flat = (flat.astype(np.uint16) ^ 0x8000).view(np.int16)
    return flat.astype(np.int16).astype(np.float32) * gains


@pytest.mark.parametrize("n_ch", [1, 16, 37, 64])  # written sixteen channels at a time
def test_gathers_each_channels_samples_scaled_into_its_column(n_ch):
    records = _records(6, n_ch, seed=n_ch)
    assert records[0].strides == (_RECORD.itemsize, 2)  # rows apart by the whole record
    gains = np.random.default_rng(1).uniform(-2, 2, n_ch).astype(np.float32)
    channels = ChannelRecords(records)
    assert (channels.n_channels, channels.n_samples) == (n_ch, 6 * 512)
    for first, n in [(0, 6 * 512), (0, 1), (511, 2), (100, 1500), (6 * 512 - 3, 3)]:
        out = np.full((n, n_ch), np.nan, np.float32)
        channels.gather(gains, first, out)
        np.testing.assert_array_equal(out, _want(records, gains, first, n))


def test_offset_binary_words_are_read_as_the_counts_they_hold():
    """Intan's uint16 words are offset by 32768 counts."""
    records = [r.view(np.uint16) for r in _records(3, 20, seed=4)]
    gains = np.full(20, 0.195, np.float32)
    out = np.empty((1000, 20), np.float32)
    ChannelRecords(records, raw="offset_binary").gather(gains, 300, out)
    np.testing.assert_array_equal(out, _want(records, gains, 300, 1000, offset_binary=True))
    assert out.min() < -30000 * 0.195 and out.max() > 30000 * 0.195


@pytest.mark.parametrize("n_ch", [5, 20])  # a group of sixteen channels, and what is left
def test_big_endian_words_are_read_as_their_values(n_ch):
    """Legacy Open Ephys records hold big-endian int16."""
    big = np.dtype([("timestamp", "<i8"), ("samples", ">i2", 1024), ("marker", "u1", 10)])
    records = _records(3, n_ch, seed=9, dtype=big)
    assert records[0].dtype == np.dtype(">i2")
    gains = np.linspace(0.1, 2.0, n_ch).astype(np.float32)
    out = np.empty((2000, n_ch), np.float32)
    ChannelRecords(records, raw="int16_be").gather(gains, 700, out)
    np.testing.assert_array_equal(out, _want(records, gains, 700, 2000))


def test_bad_records_and_ranges_are_refused():
    records = _records(2, 3, seed=5)
    channels = ChannelRecords(records)
    gains = np.ones(3, np.float32)
    with pytest.raises(
        ValueError, match=r"samples 1000\.\.1100 are outside the records' 0\.\.1024"
    ):
        channels.gather(gains, 1000, np.empty((100, 3), np.float32))
    with pytest.raises(ValueError, match="samples -1"):
        channels.gather(gains, -1, np.empty((1, 3), np.float32))
    with pytest.raises(ValueError, match="outside the records"):  # first + n would wrap
        channels.gather(gains, 2**63 - 1, np.empty((100, 3), np.float32))
    with pytest.raises(ValueError, match="3 channels, 2 gains"):
        channels.gather(gains[:2], 0, np.empty((1, 3), np.float32))
    with pytest.raises(ValueError, match="differ in length"):
        ChannelRecords([records[0], records[1][:, :256]])
    with pytest.raises(ValueError, match="2-D int16 or uint16"):
        ChannelRecords([records[0].astype(np.float32)])
    with pytest.raises(ValueError, match="2-D int16 or uint16"):
        ChannelRecords([records[0][:, ::2]])  # rows not contiguous
    with pytest.raises(ValueError, match="raw must be one of"):
        ChannelRecords(records, raw="int24")
    with pytest.raises(ValueError, match="no channel"):
        ChannelRecords([])


def _fast_and_neo(path, **options):
    """The recording read through its records, and the same read as neo reads it."""
    from rtdecode.offline.recordings import open_recording

    fast, slow = open_recording(path, **options), open_recording(path, **options)
    assert fast._records is not None
    slow._records = None  # neo's own reading, as before the records were read directly
    return fast, slow


def _assert_same_reads(fast, slow):
    for start, stop in [(0, fast.n_samples), (250, 700), (fast.n_samples - 100, 10**9)]:
        got, want = fast.read(start, stop), slow.read(start, stop)
        assert got.shape == want.shape and got.shape[0] > 0
        np.testing.assert_array_equal(got, want)


def test_neuralynx_sessions_read_through_records_as_neo_reads_them(tmp_path):
    """The same samples as neo's get_analogsignal_chunk (the fallback), bit for bit: dropped
    records (two segments), an inverted channel, a partial last record, channels picked out of
    order."""
    pytest.importorskip("neo")
    from rtdecode.simulator.rig_files import write_ncs_session

    rng = np.random.default_rng(6)
    counts = rng.integers(-20000, 20000, (20 * 512 + 88, 18)).astype(np.int16)
    write_ncs_session(tmp_path, counts, 32000.0, inverted=["CSC3"], dropped_records=[5, 6])
    for channels in (None, ["CSC10", "CSC2", "CSC18"]):
        fast, slow = _fast_and_neo(tmp_path, channels=channels)
        # the dropped records split the session
        assert sorted({piece.segment for piece in fast._records}) == [0, 1]
        _assert_same_reads(fast, slow)


def test_records_that_neo_would_not_read_alike_are_not_used(tmp_path, monkeypatch):
    """A neo whose private maps hold something else (here: shifted by a record) is caught at
    open, and neo's own reading is used."""
    pytest.importorskip("neo")
    from rtdecode.offline import neo_recordings
    from rtdecode.offline.recordings import open_recording
    from rtdecode.simulator.rig_files import write_ncs_session

    counts = np.random.default_rng(10).integers(-2000, 2000, (8 * 512, 3)).astype(np.int16)
    write_ncs_session(tmp_path, counts, 32000.0)
    original = neo_recordings._records_of
    monkeypatch.setattr(neo_recordings, "_records_of", lambda *args: original(*args)[1:])
    rec = open_recording(tmp_path)
    assert rec._records is None
    want = counts.astype(np.float32) * np.float32(1e6 / 32e6)
    np.testing.assert_allclose(rec.read(0, rec.n_samples), want, rtol=2**-22)


@pytest.mark.parametrize(("suffix", "version"), [("rhd", (1, 3)), ("rhd", (3, 0)), ("rhs", None)])
def test_intan_files_read_through_records_as_neo_reads_them(tmp_path, suffix, version):
    """Data blocks of 60 or 128 offset-binary words per channel, a timestamp jump, channels out
    of order."""
    pytest.importorskip("neo")
    from rtdecode.simulator.rig_files import write_intan

    counts = np.random.default_rng(7).integers(-20000, 20000, (3840, 3)).astype(np.int16)
    path = write_intan(
        tmp_path / f"session.{suffix}", counts, 30000.0, version=version, missing=[(1920, 300)]
    )
    fast, slow = _fast_and_neo(path)
    assert fast.runs() == [(0, 1920), (1920, 3840)]
    _assert_same_reads(fast, slow)
    fast, slow = _fast_and_neo(path, channels=[2, 0])
    _assert_same_reads(fast, slow)


def test_open_ephys_legacy_reads_through_records_as_neo_reads_them(tmp_path, caplog):
    """Records of 1024 big-endian samples; with missing records (neo fills the gaps in its own
    reading) each run of records with none missing is read from its own records."""
    pytest.importorskip("neo")
    from rtdecode.simulator.rig_files import write_open_ephys_legacy

    counts = np.random.default_rng(8).integers(-20000, 20000, (3 * 1024, 5)).astype(np.int16)
    write_open_ephys_legacy(tmp_path / "whole", counts, 30000.0)
    fast, slow = _fast_and_neo(tmp_path / "whole")
    _assert_same_reads(fast, slow)
    np.testing.assert_array_equal(
        fast.read(0, 3 * 1024), counts.astype(np.float32) * np.float32(0.195)
    )
    longer = np.concatenate([counts] * 4)[: 10 * 1024]
    write_open_ephys_legacy(
        tmp_path / "gaps",
        longer,
        30000.0,
        adc_channels=1,
        first_sample_number=5000,
        missing=[(3 * 1024, 300), (6 * 1024, 2048)],
    )
    fast, slow = _fast_and_neo(tmp_path / "gaps")
    assert len(fast.runs()) == 3 and len(fast._records) == 3
    assert "will be slow" not in caplog.text  # neo's note, no longer true
    _assert_same_reads(fast, slow)
    for start, stop in fast.runs():  # each run from its own records, across record edges
        for a, b in [(start, stop), (start + 1000, start + 1100), (stop - 1030, stop)]:
            np.testing.assert_array_equal(fast.read(a, b), slow.read(a, b))
    # what was written (the records' timestamps skip the missing samples; none is lost)
    assert fast.runs() == [(0, 3072), (3072, 6144), (6144, 10240)]
    np.testing.assert_array_equal(
        fast.read(0, 10240), longer[:, :4].astype(np.float32) * np.float32(0.195)
    )


def test_a_record_span_is_refused_unless_its_records_follow_one_another():
    from rtdecode.offline.neo_recordings import _record_span

    stamps = np.array([5000, 6024, 7348, 8372, 9396, 12468])  # missing: 300 samples, 2 records
    assert _record_span(stamps, 0, 2048, 1024) == (0, 2)
    assert _record_span(stamps, 2348, 5420, 1024) == (2, 5)
    assert _record_span(stamps, 2348, 5000, 1024) == (2, 5)  # a partial last record
    assert _record_span(stamps, 7468, 8492, 1024) == (5, 6)
    assert _record_span(stamps, 0, 3000, 1024) is None  # across the missing samples
    assert _record_span(stamps, 100, 1124, 1024) is None  # not at a record's start
    assert _record_span(stamps, 7468, 9000, 1024) is None  # past the last record
