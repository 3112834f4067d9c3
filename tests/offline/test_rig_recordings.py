"""Rigs' recordings: Neuralynx, Open Ephys (binary and legacy), SpikeGLX, Blackrock and Intan
through neo, NWB through pynwb.

Each recording is written here from the format's published layout
(:mod:`rtdecode.simulator.rig_files`; pynwb for NWB), read back and compared sample for sample
with what was written; gaps (dropped Neuralynx records, Open Ephys sample numbers that jump,
Intan timestamps that jump, missing legacy Open Ephys records) are runs placed at their times.
"""

import numpy as np
import pytest

pytest.importorskip("neo")

from rtdecode.offline import neo_recordings  # noqa: E402
from rtdecode.offline.datasets import Source, recording_features  # noqa: E402
from rtdecode.offline.recordings import (  # noqa: E402
    DataError,
    Segment,
    detect_format,
    open_recording,
)
from rtdecode.simulator.rig_files import (  # noqa: E402
    INTAN_UV_PER_COUNT,
    NCS_RECORD,
    NCS_RECORD_SAMPLES,
    OE_LEGACY_RECORD,
    write_blackrock_nsx,
    write_intan,
    write_ncs_session,
    write_nwb,
    write_open_ephys_binary,
    write_open_ephys_legacy,
    write_spikeglx,
)

BIT_VOLTS = 1e-6 / 32.0  # Digital Lynx at +-1 mV: 1/32 uV per count


def _counts(n, n_ch, seed=0):
    return np.random.default_rng(seed).integers(-20000, 20000, (n, n_ch)).astype(np.int16)


def _uv(counts, uv_per_count):
    """What the reader must give: counts x gain, microvolts."""
    return counts.astype(np.float64) * uv_per_count


def assert_uv(got, want):
    """Equal to float32's rounding (the readers scale in float32)."""
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2**-22, atol=0)


# Neuralynx ----------------------------------------------------------------------------------
def test_ncs_layout_is_the_published_one(tmp_path):
    write_ncs_session(tmp_path, _counts(600, 1), 32000.0)
    raw = (tmp_path / "CSC1.ncs").read_bytes()
    assert NCS_RECORD.itemsize == 1044 and len(raw) == 16384 + 2 * 1044
    assert raw.startswith(b"######## Neuralynx Data File Header")
    # record 2 holds the last 88 samples: its count of valid samples says so
    ts, ch, fs, valid = np.frombuffer(raw[16384 + 1044 : 16384 + 1064], "<u8,<u4,<u4,<u4")[0]
    assert (ts, ch, fs, valid) == (1_000_000 + 16_000, 0, 32000, 88)


def test_neuralynx_session_reads_back_by_name_with_inversion_and_dropped_records(tmp_path):
    fs = 32000.0
    counts = _counts(20 * NCS_RECORD_SAMPLES, 10)
    names = [f"CSC{i + 1}" for i in range(10)]
    write_ncs_session(tmp_path, counts, fs, inverted=["CSC3"], dropped_records=[5, 6])
    rec = open_recording(tmp_path)
    # natural order (neo lists CSC1, CSC10, CSC2, ...), microvolts, the rig's rate
    assert rec.channel_names == tuple(names) and rec.units == ("uV",) * 10
    assert rec.fs_hz == fs and rec.format.name == "neuralynx"
    kept = np.r_[0 : 5 * 512, 7 * 512 : 20 * 512]
    want = _uv(counts[kept], BIT_VOLTS * 1e6)  # CSC3 stored negated, read with its polarity
    assert rec.n_samples == kept.size
    assert_uv(np.concatenate(list(rec.chunks(777))), want)
    # at once: across the gap, the columns put side by side in blocks (the last one partial)
    assert rec.n_samples > 2 * neo_recordings._ASSEMBLY_SAMPLES
    assert_uv(rec.read(0, rec.n_samples), want)
    # the dropped records are a gap: two runs, the second at its own time
    assert rec.runs() == [(0, 2560), (2560, 9216)]
    np.testing.assert_allclose(rec.times_s(2559, 2561), [2559 / fs, 7 * 512 / fs])
    assert rec.sample_at(7 * 512 / fs) == 2560 and rec.sample_at(0.09) == 2560
    assert rec.duration_s == pytest.approx(20 * 512 / fs)
    # by name and by index, in the order asked
    sub = open_recording(tmp_path, channels=["CSC10", "2"])
    assert sub.channel_names == ("CSC10", "CSC3")
    assert_uv(sub.read(2000, 3000), want[2000:3000][:, [9, 2]])


def test_one_ncs_file_and_channels_of_several_input_ranges(tmp_path):
    counts = _counts(3 * 512, 4, seed=1)
    write_ncs_session(tmp_path, counts[:, :2], 32000.0)
    # two more channels at another input range: neo puts them in a stream of their own
    write_ncs_session(
        tmp_path, counts[:, 2:], 32000.0, channel_names=["CSC3", "CSC4"], bit_volts=BIT_VOLTS * 2
    )
    rec = open_recording(tmp_path)
    assert rec.channel_names == ("CSC1", "CSC2", "CSC3", "CSC4") and len(rec.stream_names) == 2
    want = np.concatenate(
        [_uv(counts[:, :2], BIT_VOLTS * 1e6), _uv(counts[:, 2:], BIT_VOLTS * 2e6)], axis=1
    )
    assert_uv(rec.read(0, rec.n_samples), want)
    one = open_recording(tmp_path / "CSC2.ncs")
    assert one.channel_names == ("CSC2",)
    assert_uv(one.read(0, one.n_samples), want[:, [1]])


def test_files_that_lost_different_records_are_refused_together(tmp_path):
    counts = _counts(8 * 512, 2, seed=3)
    write_ncs_session(tmp_path, counts[:, :1], 32000.0)
    write_ncs_session(tmp_path, counts[:, 1:], 32000.0, channel_names=["CSC2"], dropped_records=[3])
    with pytest.raises(
        DataError,
        match=r"not recorded alike: CSC1\.ncs \(.*\) has segments of 4096 samples, CSC2\.ncs "
        r"\(.*\) 1536, 2048 \(records missing from some files only\?\)",
    ):
        open_recording(tmp_path)
    assert open_recording(tmp_path, channels=["CSC1"]).n_samples == 4096
    assert open_recording(tmp_path / "CSC2.ncs").runs() == [(0, 1536), (1536, 3584)]


def test_pages_of_the_files_are_released_as_reading_goes(tmp_path, monkeypatch):
    counts = _counts(8 * 512, 3, seed=2)
    write_ncs_session(tmp_path, counts, 32000.0)
    monkeypatch.setattr(neo_recordings, "_RELEASE_EVERY_BYTES", 1)
    rec = open_recording(tmp_path)
    assert len(rec._mappings) == 3  # one whole-file map per .ncs, as neo holds them
    released = []
    original = rec._release_pages
    monkeypatch.setattr(rec, "_release_pages", lambda: (released.append(1), original()))
    got = np.concatenate(list(rec.chunks(1000)))
    assert len(released) == 5
    assert_uv(got, _uv(counts, BIT_VOLTS * 1e6))


def test_no_window_spans_a_dropped_record_and_labels_keep_their_times(tmp_path):
    """A loud stretch on either side of a 1 s loss: windows labelled by time match the signal."""
    from rtdecode.config import FeatureConfig

    fs, n_records = 2048.0, 80  # 20 s of 512-sample records at 2048 Hz
    n = n_records * 512
    t = np.arange(n) / fs
    loud = ((t >= 4) & (t < 8)) | ((t >= 13) & (t < 17))
    noise = np.random.default_rng(3).normal(0, 100, (n, 1))
    counts = (noise * np.where(loud, 10, 1)[:, None]).clip(-32767, 32767).astype(np.int16)
    lost = list(range(40, 44))  # 10..11 s lost
    write_ncs_session(tmp_path, counts, fs, dropped_records=lost)
    rec = open_recording(tmp_path)
    assert rec.runs() == [(0, 40 * 512), (40 * 512, 76 * 512)]
    labels = [Segment(0, 4, "quiet"), Segment(4, 4, "loud"), Segment(8, 5, "quiet")]
    labels += [Segment(13, 4, "loud"), Segment(17, 3, "quiet")]
    config = FeatureConfig(fs_hz=fs, window_s=1.0, hop_s=0.25)
    feats = recording_features(Source(tmp_path, tuple(labels)), config, ["quiet", "loud"])
    # no window ends within a window's length after the gap's end (11 s): none spans it
    assert not np.any((feats.end_s > 10.0 + 1e-9) & (feats.end_s < 12.0 - 1e-9))
    # windows labelled loud are the ones whose signal is loud (by time, after the gap too)
    for end, label in zip(feats.end_s, feats.y):
        if label >= 0:
            start_sample = rec.sample_at(end - 1.0)
            stop_sample = rec.sample_at(end)
            rms = np.sqrt(np.mean(rec.read(start_sample, stop_sample) ** 2))
            assert (rms > 10) == (label == 1), (end, label, rms)  # 31 uV loud, 3 quiet
    assert {int(v) for v in feats.y[feats.end_s > 13.5]} >= {0, 1}


# Open Ephys ---------------------------------------------------------------------------------
def test_open_ephys_binary_reads_the_neural_stream_with_its_gaps(tmp_path):
    fs = 30000.0
    counts = _counts(9000, 5, seed=4)
    folder = write_open_ephys_binary(
        tmp_path, counts, fs, adc_channels=1, first_sample_number=5000, missing=[(4000, 300)]
    )
    for where in (tmp_path, folder, folder / "structure.oebin"):
        rec = open_recording(where)
        assert rec.channel_names == ("CH1", "CH2", "CH3", "CH4") and rec.units == ("uV",) * 4
        assert rec.fs_hz == fs and rec.runs() == [(0, 4000), (4000, 9000)]
    assert_uv(np.concatenate(list(rec.chunks(999))), _uv(counts[:, :4], 0.195))
    np.testing.assert_allclose(rec.times_s(3999, 4001), [3999 / fs, 4300 / fs])
    # the ADC input, asked for by its stream's name: volts to microvolts
    (adc_stream,) = [s for s in rec._readers[0].header["signal_streams"]["name"] if "ADC" in s]
    adc = open_recording(tmp_path, stream=str(adc_stream))
    assert adc.channel_names == ("ADC1",) and adc.units == ("uV",)
    np.testing.assert_allclose(adc.read(0, 100)[:, 0], counts[:100, 4] * 150.0, rtol=1e-6)
    with pytest.raises(DataError, match=r"no signal stream named 'LFP'; the Open Ephys"):
        open_recording(tmp_path, stream="LFP")


def test_open_ephys_recordings_are_runs_and_experiments_are_refused_together(tmp_path):
    fs = 30000.0
    first, second = _counts(3000, 2, seed=6), _counts(2000, 2, seed=7)
    write_open_ephys_binary(tmp_path, first, fs, first_sample_number=0)
    # recording2 of the same acquisition: its sample numbers go on from where it restarted
    write_open_ephys_binary(tmp_path, second, fs, first_sample_number=9000, recording=2)
    rec = open_recording(tmp_path)
    assert rec.runs() == [(0, 3000), (3000, 5000)]
    assert rec.times_s(2999, 3001) == pytest.approx([2999 / fs, 9000 / fs])
    assert_uv(rec.read(2990, 3010), _uv(np.concatenate([first, second])[2990:3010], 0.195))
    # experiment2: the acquisition restarted, its sample numbers too
    write_open_ephys_binary(tmp_path, second, fs, first_sample_number=0, experiment=2)
    with pytest.raises(DataError, match=r"time goes back .* give one session's folder \(one exp"):
        open_recording(tmp_path)
    assert open_recording(tmp_path / "experiment2").n_samples == 2000


def test_sample_numbers_are_read_in_blocks(tmp_path):
    numbers = np.r_[np.arange(10, 20), np.arange(25, 40), np.arange(41, 45)]
    np.save(tmp_path / "n.npy", numbers)
    got = neo_recordings._sample_number_splits(tmp_path / "n.npy", numbers.size, 10.0, block=4)
    assert got == [(0, 10, 0.0), (10, 25, 1.5), (25, 29, 3.1)]


# SpikeGLX -----------------------------------------------------------------------------------
def test_spikeglx_ap_band_reads_back_and_a_later_trigger_is_a_run(tmp_path):
    fs = 30000.0
    first, later = _counts(3000, 6, seed=8), _counts(1000, 6, seed=9)
    path = write_spikeglx(tmp_path, first, fs)
    write_spikeglx(tmp_path, later, fs, trigger=1, first_sample=5000)
    assert detect_format(path) == ("spikeglx", tmp_path)
    rec = open_recording(tmp_path)
    # the neural channels, without the sync word; microvolts: 0.6 V / 512 / gain 500
    assert rec.stream_names == ("imec0.ap",) and rec.channel_names == tuple(
        f"AP{c}" for c in range(6)
    )
    assert rec.fs_hz == fs and rec.runs() == [(0, 3000), (3000, 4000)]
    assert_uv(
        rec.read(0, rec.n_samples), _uv(np.concatenate([first, later]), 0.6 / 512 / 500 * 1e6)
    )
    assert rec.times_s(2999, 3001) == pytest.approx([2999 / fs, 5000 / fs])


# Blackrock ----------------------------------------------------------------------------------
def test_blackrock_nsx_reads_back_and_a_paused_packet_is_a_gap(tmp_path):
    counts = _counts(5000, 4, seed=10)
    # three packets: the second goes on where the first stopped, the third after a pause
    path = write_blackrock_nsx(
        tmp_path / "session.ns5", counts, packets=[(0, 0), (3000, 3000), (4000, 4500)]
    )
    assert detect_format(path) == ("blackrock", path)
    rec = open_recording(path)
    assert rec.stream_names == ("nsx5",) and rec.channel_names == (
        "elec1",
        "elec2",
        "elec3",
        "elec4",
    )
    assert rec.fs_hz == 30000.0 and rec.units == ("uV",) * 4
    assert rec.runs() == [(0, 4000), (4000, 5000)]
    assert rec.times_s(3999, 4001) == pytest.approx([3999 / 30000, 4500 / 30000])
    assert_uv(np.concatenate(list(rec.chunks(1234))), _uv(counts, 8191 / 32764))
    rec.close()


# Intan --------------------------------------------------------------------------------------
def test_intan_layout_is_the_published_one(tmp_path):
    counts = _counts(120, 3, seed=11)
    rhd = write_intan(tmp_path / "a.rhd", counts, 20000.0)
    raw = rhd.read_bytes()
    magic, major, minor = np.frombuffer(raw[:8], "<u4,<i2,<i2")[0]
    assert (magic, major, minor) == (0xC6912702, 1, 3)
    assert np.frombuffer(raw[8:12], "<f4")[0] == 20000.0
    # two data blocks of 60 samples: 60 int32 timestamps, 60 uint16 per amplifier channel
    block = 60 * 4 + 60 * 2 * 3
    header = len(raw) - 2 * block
    first = np.frombuffer(raw[header : header + block], np.uint8)
    np.testing.assert_array_equal(first[:240].view("<i4"), np.arange(60))
    np.testing.assert_array_equal(first[240:360].view("<u2"), counts[:60, 0].astype(int) + 32768)
    # rhs: 128-sample blocks, a stimulation word per amplifier channel after the amplifiers
    rhs = write_intan(tmp_path / "a.rhs", _counts(128, 3, seed=11), 30000.0)
    raw = rhs.read_bytes()
    assert np.frombuffer(raw[:4], "<u4")[0] == 0xD69127AC
    assert detect_format(rhs) == ("intan", rhs) and detect_format(rhd) == ("intan", rhd)
    header_rhs = len(raw) - (128 * 4 + 128 * 2 * 3 * 2)
    assert header_rhs > header  # the rhs header has its stimulation fields
    # written 1024 blocks at a time: a longer file reads back whole
    counts = _counts(60 * 2100, 1, seed=11)
    rec = open_recording(write_intan(tmp_path / "long.rhd", counts, 20000.0))
    assert_uv(rec.read(0, rec.n_samples), _uv(counts, INTAN_UV_PER_COUNT))


@pytest.mark.parametrize(
    ("name", "version", "block", "adc_uv_per_count", "adc_offset_uv"),
    [
        ("rhd 1.3", (1, 3), 60, 50.354, 0.0),  # USB interface board: 0-3.3 V
        ("rhd 3.0", (3, 0), 128, 50.354, 0.0),
        ("rhs 1.0", None, 128, 312.5, -32768 * 312.5),  # +-10.24 V, offset binary
    ],
)
def test_intan_reads_back_by_name_with_a_timestamp_jump(
    tmp_path, name, version, block, adc_uv_per_count, adc_offset_uv
):
    fs = 30000.0
    counts = _counts(6 * block, 5, seed=12)
    names = ["CA1-1", "CA1-2", "CA3-1", "CA3-2"]
    path = write_intan(
        tmp_path / f"session.{name[:3]}",
        counts,
        fs,
        channel_names=names,
        adc_channels=1,
        version=version,
        first_timestamp=-2 * block,  # a triggered start: the counter is negative before it
        missing=[(4 * block, 3000)],  # the board lost 0.1 s
    )
    rec = open_recording(path)
    assert rec.format.name == "intan" and rec.channel_names == tuple(names)
    assert rec.fs_hz == fs and rec.units == ("uV",) * 4
    # neo reads the file as one stretch (it only flags the jump): the jump is a gap here
    assert rec.runs() == [(0, 4 * block), (4 * block, 6 * block)]
    assert rec.times_s(4 * block - 1, 4 * block + 1) == pytest.approx(
        [(4 * block - 1) / fs, (4 * block + 3000) / fs]
    )
    # stored offset by 32768 counts, read as the counts themselves: no rounding of an offset
    assert_uv(np.concatenate(list(rec.chunks(block + 7))), _uv(counts[:, :4], INTAN_UV_PER_COUNT))
    sub = open_recording(path, channels=["CA3-2", "ca1-2"])
    assert sub.channel_names == ("CA3-2", "CA1-2")
    assert_uv(sub.read(50, 300), _uv(counts[50:300][:, [3, 1]], INTAN_UV_PER_COUNT))
    # the board's ADC input by its stream, volts to microvolts (its words stored as they are)
    adc = open_recording(path, stream="USB board ADC input channel")
    assert adc.channel_names == ("ANALOG-IN-1",) and adc.runs() == rec.runs()
    words = counts[:, 4].view(np.uint16).astype(np.float64)
    np.testing.assert_allclose(
        adc.read(0, adc.n_samples)[:, 0], words * adc_uv_per_count + adc_offset_uv, rtol=1e-6
    )


def test_intan_auxiliary_inputs_at_a_quarter_of_the_rate_keep_the_jump_at_its_time(tmp_path):
    fs = 20000.0
    path = write_intan(
        tmp_path / "s.rhd", _counts(600, 2, seed=19), fs, aux_channels=2, missing=[(240, 600)]
    )
    assert open_recording(path).runs() == [(0, 240), (240, 600)]
    aux = open_recording(path, stream="RHD2000 auxiliary input channel")
    assert aux.channel_names == ("AUX1", "AUX2") and aux.fs_hz == fs / 4
    # the jump after amplifier sample 240 is after auxiliary sample 60, at the same time
    assert aux.runs() == [(0, 60), (60, 150)]
    assert aux.times_s(59, 61) == pytest.approx([59 / 5000, (240 + 600) / fs])
    # each holds its sample count: 37.4 uV per count
    np.testing.assert_allclose(aux.read(0, 150)[:, 1], np.arange(150) * 37.4, rtol=1e-6)


@pytest.mark.parametrize("kind", ["rhd", "rhs"])
def test_intan_rhx_folder_of_one_file_per_signal_reads_back_with_its_jump(tmp_path, kind):
    fs = 20000.0
    counts = _counts(1000, 3, seed=18)  # any length: no data blocks in this layout
    header = write_intan(
        tmp_path / "rhx" / f"info.{kind}", counts, fs, per_signal=True, missing=[(700, 40)]
    )
    assert {p.name for p in header.parent.iterdir()} >= {"time.dat", "amplifier.dat"}
    assert detect_format(tmp_path / "rhx") == ("intan", header)
    assert open_recording(tmp_path / "rhx", file_format="intan").n_samples == 1000
    rec = open_recording(tmp_path / "rhx")
    assert rec.channel_names == ("A-000", "A-001", "A-002") and rec.units == ("uV",) * 3
    assert rec.runs() == [(0, 700), (700, 1000)]
    assert rec.times_s(699, 701) == pytest.approx([699 / fs, 740 / fs])
    # signed counts in amplifier.dat: scaled as they are, no offset
    assert_uv(np.concatenate(list(rec.chunks(333))), _uv(counts, INTAN_UV_PER_COUNT))


def test_intan_files_neo_would_misread_are_refused(tmp_path):
    path = write_intan(tmp_path / "session.rhd", _counts(60, 2, seed=13), 20000.0)
    # neo reads a file by its suffix: an .rhd named .rhs, or with no suffix, is refused
    for wrong in ("session.rhs", "session.dat", "session.RHD"):
        (tmp_path / wrong).write_bytes(path.read_bytes())
        with pytest.raises(DataError, match=r"by its suffix .* its first bytes say \.rhd; rename"):
            open_recording(tmp_path / wrong, file_format="intan")
    (tmp_path / "short.rhd").write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"short\.rhd: not a readable Intan recording"):
        open_recording(tmp_path / "short.rhd")
    # timestamps that start over inside the file: recordings joined, refused
    counts = _counts(180, 2, seed=14)
    joined = write_intan(tmp_path / "joined.rhd", counts, 20000.0, missing=[(120, -120)])
    with pytest.raises(DataError, match=r"time goes back .* give each recording's own file"):
        open_recording(joined)


# Open Ephys legacy ------------------------------------------------------------------------------
def test_open_ephys_legacy_layout_is_the_published_one(tmp_path):
    write_open_ephys_legacy(tmp_path, _counts(2048, 1, seed=15), 30000.0, first_sample_number=7)
    raw = (tmp_path / "100_CH1.continuous").read_bytes()
    assert OE_LEGACY_RECORD.itemsize == 2070 and len(raw) == 1024 + 2 * 2070
    assert raw.startswith(b"header.format = 'Open Ephys Data Format';")
    assert b"header.sampleRate = 30000;" in raw[:1024] and raw[1000:1024] == b" " * 24
    record = raw[1024 + 2070 : 1024 + 2 * 2070]
    assert np.frombuffer(record[:12], "<i8,<u2,<u2")[0].tolist() == (7 + 1024, 1024, 0)
    assert list(record[-10:]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 255]


def test_open_ephys_legacy_reads_back_with_its_missing_records(tmp_path):
    fs = 30000.0
    counts = _counts(10 * 1024, 4, seed=16)
    # records missing at two places (300 samples, then two whole records)
    write_open_ephys_legacy(
        tmp_path,
        counts,
        fs,
        adc_channels=1,
        first_sample_number=5000,
        missing=[(3 * 1024, 300), (6 * 1024, 2048)],
    )
    for where in (tmp_path, tmp_path / "100_CH2.continuous"):
        assert detect_format(where) == ("openephys-legacy", tmp_path)
        assert open_recording(where, file_format="openephys-legacy").n_channels == 3
    rec = open_recording(tmp_path)
    assert rec.format.name == "openephys-legacy" and rec.channel_names == ("CH1", "CH2", "CH3")
    assert rec.units == ("uV",) * 3 and rec.fs_hz == fs
    # neo fills the missing records with zeros; they are gaps here, not samples
    assert rec.n_samples == 10 * 1024
    assert rec.runs() == [(0, 3072), (3072, 6144), (6144, 10240)]
    assert rec.times_s(6143, 6145) == pytest.approx([6443 / fs, (6144 + 2348) / fs])
    want = _uv(counts[:, :3], 0.195)
    assert_uv(np.concatenate(list(rec.chunks(1000))), want)
    for start, stop in [(3000, 3100), (6100, 6200), (5, 10240)]:
        assert_uv(rec.read(start, stop), want[start:stop])
    adc = open_recording(tmp_path, stream="Signals ADC")
    assert adc.channel_names == ("ADC1",) and adc.units == ("uV",)
    np.testing.assert_allclose(adc.read(0, 10240)[:, 0], counts[:, 3] * 150.0, rtol=1e-6)


def test_open_ephys_legacy_later_files_are_runs_or_refused_when_their_clock_restarts(tmp_path):
    first, second = _counts(4096, 2, seed=20), _counts(2048, 2, seed=21)
    # _2 files whose sample numbers go on: a second run at its time
    write_open_ephys_legacy(tmp_path / "on", first, 30000.0)
    write_open_ephys_legacy(tmp_path / "on", second, 30000.0, session=2, first_sample_number=9000)
    rec = open_recording(tmp_path / "on")
    assert rec.runs() == [(0, 4096), (4096, 6144)]
    assert rec.times_s(4095, 4097) == pytest.approx([4095 / 30000, 9000 / 30000])
    assert_uv(rec.read(0, 6144), _uv(np.concatenate([first, second]), 0.195))
    # _2 files of a restarted acquisition: their sample numbers start over
    write_open_ephys_legacy(tmp_path / "over", first, 30000.0)
    write_open_ephys_legacy(tmp_path / "over", second, 30000.0, session=2)
    with pytest.raises(DataError, match=r"time goes back .*\(files ending _2, _3: .* of their own"):
        open_recording(tmp_path / "over")


def test_open_ephys_legacy_channels_that_lost_different_records_are_refused(tmp_path):
    counts = _counts(6 * 1024, 2, seed=17)
    session, other = tmp_path / "session", tmp_path / "other"
    write_open_ephys_legacy(session, counts, 30000.0, missing=[(2048, 1024)])
    write_open_ephys_legacy(other, counts, 30000.0, missing=[(4096, 1024)])
    (other / "100_CH2.continuous").replace(session / "100_CH2.continuous")
    with pytest.raises(DataError, match=r"CH1 and CH2 lost different records .* --channels"):
        open_recording(session)
    assert open_recording(session, channels=["CH1"]).runs() == [(0, 2048), (2048, 6144)]


def test_a_neo_that_hides_legacy_records_is_said_not_silently_trusted(caplog):
    from types import SimpleNamespace

    reader = SimpleNamespace(source_name=lambda: "session")  # neither of neo 0.14's attributes
    read = SimpleNamespace(stream_index=0, channel_indexes=slice(0, 1))
    with caplog.at_level("WARNING", logger="rtdecode"):
        assert neo_recordings._oe_legacy_splits(reader, 0, read, 100, 1.0) == [(0, 100, 0.0)]
    assert "session: this neo version does not show the records' timestamps" in caplog.text


# NWB ----------------------------------------------------------------------------------------
def test_nwb_electrical_series_reads_back_in_microvolts(tmp_path):
    pytest.importorskip("pynwb")
    counts = _counts(3000, 4, seed=5)
    gains = np.array([1.0, 2.0, 1.0, 0.5])
    raw = dict(rate=30000.0, conversion=0.195e-6, offset=1e-6, channel_conversion=gains)
    lfp = dict(timestamps=_gapped_times(3000, 1000.0, 1200, 0.5), conversion=1e-6)
    path = write_nwb(tmp_path / "session.nwb", counts, {"raw": raw, "lfp": lfp})
    assert detect_format(path) == ("nwb", path)
    with pytest.raises(DataError, match=r"2 ElectricalSeries \('lfp' .*'raw' .*--stream NAME"):
        open_recording(path)
    rec = open_recording(path, stream="raw")
    assert rec.channel_names == ("CSC1", "CSC2", "CSC3", "CSC4") and rec.fs_hz == 30000.0
    want = counts * gains * 0.195 + 1.0
    np.testing.assert_allclose(np.concatenate(list(rec.chunks(700))), want, rtol=1e-6, atol=1e-4)
    sub = open_recording(path, stream="raw", channels=["CSC4", "1"])
    np.testing.assert_allclose(sub.read(10, 20), want[10:20][:, [3, 1]], rtol=1e-6, atol=1e-4)
    # timestamps with a jump: a gap, the rate from the timestamps
    lfp = open_recording(path, stream="lfp")
    assert lfp.fs_hz == pytest.approx(1000.0) and lfp.runs() == [(0, 1200), (1200, 3000)]
    assert lfp.times_s(1199, 1201) == pytest.approx([1.199, 1.7])


def _gapped_times(n, fs, at, gap_s):
    times = 100.0 + np.arange(n) / fs
    times[at:] += gap_s
    return times


# Formats ------------------------------------------------------------------------------------
def test_formats_are_recognised_from_content(tmp_path):
    from edfio import Edf, EdfSignal

    edf = tmp_path / "no_suffix"
    Edf([EdfSignal(np.zeros(256), 256.0, label="Cz", physical_range=(-1, 1))]).write(
        tmp_path / "x.edf"
    )
    (tmp_path / "x.edf").rename(edf)
    assert detect_format(edf) == ("edf", edf) and open_recording(edf).channel_names == ("Cz",)
    nlx = tmp_path / "nlx"
    write_ncs_session(nlx, _counts(512, 2), 32000.0)
    assert detect_format(nlx) == ("neuralynx", nlx)
    assert detect_format(nlx / "CSC1.ncs") == ("neuralynx", nlx / "CSC1.ncs")
    oe = write_open_ephys_binary(tmp_path / "oe", _counts(100, 2), 30000.0)
    assert detect_format(tmp_path / "oe") == ("openephys", tmp_path / "oe")
    dat = next(oe.glob("continuous/*/continuous.dat"))
    assert detect_format(dat) == ("openephys", oe)
    rhd = tmp_path / "no_suffix"
    rhd.write_bytes(bytes.fromhex("0227 91c6") + bytes(100))
    assert detect_format(rhd) == ("intan", rhd)
    legacy = tmp_path / "legacy"
    write_open_ephys_legacy(legacy, _counts(1024, 1), 30000.0)
    assert detect_format(legacy) == ("openephys-legacy", legacy)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no recording rtdecode recognises \(files: notes\.txt\)"):
        open_recording(tmp_path / "empty")
    # --format says what the content would: a Neuralynx folder read as Open Ephys is refused
    with pytest.raises(DataError, match=r"nlx: not a readable Open Ephys \(binary\) recording"):
        open_recording(nlx, file_format="openephys")
    with pytest.raises(DataError, match=r"unknown format 'wav'"):
        open_recording(edf, file_format="wav")
