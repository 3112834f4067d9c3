"""Signals written as acquisition rigs record them: a Neuralynx session, an Open Ephys folder
(binary or legacy), a SpikeGLX run, a Blackrock ``.nsX``, an Intan ``.rhd``/``.rhs``, an NWB file
(through pynwb).

For the tests and benchmarks of the readers, and to try ``rtdecode replay``/``evaluate`` on a
rig's files without the rig. Each writer follows the format's published layout:

- **Neuralynx** ``.ncs`` (Neuralynx, "Data File Formats"): one file per channel, a 16 kB
  latin-1 text header of ``-Key value`` lines padded with NULs, then 1044-byte records: uint64
  timestamp (microseconds), uint32 channel number, uint32 sampling rate (Hz), uint32 count of
  valid samples, 512 int16 samples; little-endian. ``-ADBitVolts`` is volts per count;
  ``-InputInverted True`` says the amplifier stored the signal negated.
- **Open Ephys binary** (Open Ephys GUI >= 0.6, "Binary format"):
  ``experiment1/recording1/structure.oebin`` (JSON: each continuous stream's folder, rate and
  channels with ``bit_volts`` and ``units``), and per stream
  ``continuous/<processor>-<id>.<stream>/``: ``continuous.dat`` (int16, samples x channels,
  interleaved), ``sample_numbers.npy`` (int64, the acquisition's sample counter: a jump is
  samples not recorded) and ``timestamps.npy`` (float64 seconds).
- **SpikeGLX** (Bill Karsh, "SpikeGLX metadata", Neuropixels 1.0): per probe and band a pair
  ``<run>_g<gate>_t<trigger>.imec<k>.ap.bin`` (int16, samples x channels, interleaved, the
  sync word last) and ``.meta`` (``key=value`` lines; ``~imroTbl`` gives each channel's gain,
  ``~snsChanMap`` its name; microvolts per count = imAiRangeMax / imMaxInt / gain x 1e6);
  ``firstSample`` places a trigger's file in time.
- **Blackrock** ``.nsX`` (Blackrock Microsystems, "NEV and NSx file specification" 2.3): a
  314-byte basic header (``NEURALCD``, version 2.3, bytes in headers, label, comment, period
  in 1/30000 s, timestamp resolution, time origin, channel count), one 66-byte ``CC``
  extended header per channel (electrode id and label, digital and analog ranges, units,
  filters), then data packets: 0x01, uint32 timestamp, uint32 number of samples, int16
  samples x channels. A new packet starts where recording resumed.
- **Intan** ``.rhd`` / ``.rhs``, one file with its header ("traditional" layout; Intan, "RHD2000
  / RHS2000 data file formats"): little-endian; a magic number (``0xC6912702`` rhd,
  ``0xD69127AC`` rhs), version, sampling rate, the amplifiers' bandwidths, notes (QStrings:
  uint32 byte count, UTF-16LE), the signal groups (ports) and each channel's native and custom
  name, order, signal type and enabled flag; then data blocks of 60 samples (rhd before 2.0)
  or 128: int32 timestamps (the sample counter: a jump is samples not recorded), uint16 per
  amplifier channel (offset binary, 0.195 uV per count), rhs a uint16 stimulation word per
  amplifier channel, then board ADC inputs (uint16). RHX (3.x) can also save "one file per
  signal type": the header alone in ``info.rhd``/``info.rhs``, then ``time.dat`` (int32
  timestamps), ``amplifier.dat`` (int16, samples x channels, signed: 0.195 uV per count),
  ``analogin.dat`` (uint16), rhs ``stim.dat`` (uint16).
- **Open Ephys legacy** ``.continuous`` (Open Ephys GUI before 0.6, "Open Ephys format"): one
  file per channel, ``<processor>_<name>.continuous``; a 1024-byte text header of
  ``header.key = value;`` lines (``sampleRate``, ``bitVolts``: microvolts per count for ``CH``
  channels, volts for ``ADC``/``AUX``), then records: int64 timestamp (the sample number of
  the record's first sample), uint16 sample count N = 1024, uint16 recording number, N
  big-endian int16 samples, a 10-byte marker 0, 1, ..., 8, 255. A record starting later than
  its predecessor's samples account for follows samples not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "NCS_HEADER_BYTES",
    "NCS_RECORD",
    "NCS_RECORD_SAMPLES",
    "NcsSessionWriter",
    "write_ncs_session",
    "write_open_ephys_binary",
    "write_nwb",
    "write_spikeglx",
    "write_blackrock_nsx",
    "INTAN_UV_PER_COUNT",
    "write_intan",
    "OE_LEGACY_RECORD",
    "write_open_ephys_legacy",
]

NCS_HEADER_BYTES = 16384
NCS_RECORD_SAMPLES = 512
NCS_RECORD = np.dtype(
    [
        ("timestamp", "<u8"),
        ("channel_number", "<u4"),
        ("sample_rate", "<u4"),
        ("valid_samples", "<u4"),
        ("samples", "<i2", (NCS_RECORD_SAMPLES,)),
    ]
)  # 1044 bytes


def _ncs_header(
    name: str, ad_channel: int, fs_hz: float, bit_volts: float, inverted: bool
) -> bytes:
    lines = [
        "######## Neuralynx Data File Header",
        "-FileType NCS",
        "-FileVersion 3.4",
        f"-RecordSize {NCS_RECORD.itemsize}",
        '-ApplicationName Cheetah "6.4.2"',
        "-AcquisitionSystem AcqSystem1 DigitalLynxSX",
        "-HardwareSubSystemName AcqSystem1",
        "-HardwareSubSystemType DigitalLynxSX",
        f"-SamplingFrequency {fs_hz:g}",
        "-ADMaxValue 32767",
        f"-ADBitVolts {bit_volts:.24f}",
        f"-AcqEntName {name}",
        "-NumADChannels 1",
        f"-ADChannel {ad_channel}",
        f"-InputRange {round(32767 * bit_volts * 1e6)}",
        f"-InputInverted {'True' if inverted else 'False'}",
        "-DSPLowCutFilterEnabled True",
        "-DspLowCutFrequency 0.1",
        "-DSPHighCutFilterEnabled True",
        "-DspHighCutFrequency 9000",
        "-TimeCreated 2024/01/02 10:00:00",
        "-TimeClosed 2024/01/02 11:00:00",
    ]
    text = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    return text + b"\x00" * (NCS_HEADER_BYTES - len(text))


class NcsSessionWriter:
    """Write a Neuralynx session folder block by block: one ``.ncs`` file per channel.

    Parameters
    ----------
    folder : Path
        Created if needed; ``<name>.ncs`` for each channel.
    channel_names : sequence of str
        Also the files' names (``CSC1`` ... as Cheetah names them).
    fs_hz : float
    bit_volts : float
        Volts per count (``-ADBitVolts``).
    inverted : sequence of str
        Channels whose header says ``-InputInverted True``: their counts are stored negated.
    dropped_records : sequence of int
        Record numbers (0-based, counted as if none were dropped) left out of every file, as
        when the acquisition lost them: the next record's timestamp jumps.
    start_us : int
        Timestamp of the first record, microseconds.

    Notes
    -----
    ``write`` takes counts with the signal's true polarity, int16 (n, n_channels); the samples
    of a last partial record are written at ``close`` with ``valid_samples`` < 512.
    """

    def __init__(
        self,
        folder: Path,
        channel_names: Sequence[str],
        fs_hz: float,
        *,
        bit_volts: float = 1e-6 / 32.0,
        inverted: Sequence[str] = (),
        dropped_records: Sequence[int] = (),
        start_us: int = 1_000_000,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.channel_names = tuple(channel_names)
        self.fs_hz = float(fs_hz)
        self.start_us = int(start_us)
        self._sign = np.array(
            [-1 if n in set(inverted) else 1 for n in self.channel_names], dtype=np.int16
        )
        self._dropped = set(int(r) for r in dropped_records)
        self._records_done = 0
        self._pending = np.zeros((0, len(self.channel_names)), dtype=np.int16)
        self._files = []
        for ad, name in enumerate(self.channel_names):
            f = open(self.folder / f"{name}.ncs", "wb")
            f.write(_ncs_header(name, ad, self.fs_hz, bit_volts, name in set(inverted)))
            self._files.append(f)

    def write(self, counts: np.ndarray) -> None:
        """Append samples, int16 (n, n_channels), true polarity."""
        counts = np.asarray(counts, dtype=np.int16)
        if counts.ndim != 2 or counts.shape[1] != len(self.channel_names):
            raise ValueError(
                f"counts must have shape (n, {len(self.channel_names)}), got {counts.shape}"
            )
        if self._pending.shape[0]:
            counts = np.concatenate([self._pending, counts])
        whole = counts.shape[0] // NCS_RECORD_SAMPLES * NCS_RECORD_SAMPLES
        self._write_records(counts[:whole], NCS_RECORD_SAMPLES)
        self._pending = counts[whole:].copy()

    def close(self) -> None:
        """Write a last partial record, if any, and close the files."""
        if self._pending.shape[0]:
            n = self._pending.shape[0]
            padded = np.zeros((NCS_RECORD_SAMPLES, len(self.channel_names)), dtype=np.int16)
            padded[:n] = self._pending
            self._write_records(padded, n)
            self._pending = self._pending[:0]
        for f in self._files:
            f.close()

    def __enter__(self) -> NcsSessionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write_records(self, counts: np.ndarray, valid: int) -> None:
        n_records = counts.shape[0] // NCS_RECORD_SAMPLES
        if n_records == 0:
            return
        numbers = self._records_done + np.arange(n_records)
        self._records_done += n_records
        kept = np.array([k not in self._dropped for k in numbers.tolist()])
        records = np.zeros(n_records, dtype=NCS_RECORD)
        records["timestamp"] = self.start_us + np.round(
            numbers * NCS_RECORD_SAMPLES * 1e6 / self.fs_hz
        ).astype(np.uint64)
        records["sample_rate"] = round(self.fs_hz)
        records["valid_samples"] = valid
        # (n_records, 512, n_channels): each channel's records are one column
        blocks = (counts * self._sign).reshape(n_records, NCS_RECORD_SAMPLES, -1)
        for ad, f in enumerate(self._files):
            records["channel_number"] = ad
            records["samples"] = blocks[:, :, ad]
            f.write(records[kept].tobytes())


def write_ncs_session(
    folder: Path,
    counts: np.ndarray,
    fs_hz: float,
    *,
    channel_names: Sequence[str] | None = None,
    bit_volts: float = 1e-6 / 32.0,
    inverted: Sequence[str] = (),
    dropped_records: Sequence[int] = (),
    start_us: int = 1_000_000,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels), true polarity) as a Neuralynx session folder.

    Channels are named ``CSC1``, ``CSC2``, ... unless ``channel_names`` is given; the other
    options are :class:`NcsSessionWriter`'s. Returns ``folder``.
    """
    names = channel_names or [f"CSC{i + 1}" for i in range(counts.shape[1])]
    with NcsSessionWriter(
        folder,
        names,
        fs_hz,
        bit_volts=bit_volts,
        inverted=inverted,
        dropped_records=dropped_records,
        start_us=start_us,
    ) as writer:
        writer.write(counts)
    return Path(folder)


def write_open_ephys_binary(
    folder: Path,
    counts: np.ndarray,
    fs_hz: float,
    *,
    channel_names: Sequence[str] | None = None,
    bit_volts: float = 0.195,
    adc_channels: int = 0,
    first_sample_number: int = 0,
    missing: Sequence[tuple[int, int]] = (),
    stream_folder: str = "Acquisition_Board-100.Rhythm Data",
    experiment: int = 1,
    recording: int = 1,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels)) as an Open Ephys binary recording.

    Parameters
    ----------
    folder : Path
        The session's folder; the recording goes in ``experiment<experiment>/recording<recording>``
        (the GUI starts a new recording at each start of recording, a new experiment at each
        start of acquisition: its sample numbers start over).
    channel_names : sequence of str, optional
        Default ``CH1``, ``CH2``, ...
    bit_volts : float
        Microvolts per count of the neural channels (Open Ephys's ``bit_volts`` is in the
        channel's ``units``, here ``uV``).
    adc_channels : int
        The last this many columns are ADC inputs (``ADC1``, ..., volts, 0.00015 V per count).
    first_sample_number : int
    missing : sequence of (int, int)
        ``(at, count)``: ``count`` sample numbers skipped before sample ``at`` (samples the
        acquisition did not record).

    Returns
    -------
    Path
        The recording's folder.
    """
    n, n_ch = counts.shape
    n_neural = n_ch - adc_channels
    names = list(channel_names or [f"CH{i + 1}" for i in range(n_neural)])
    names += [f"ADC{i + 1}" for i in range(adc_channels)]
    recording_folder = Path(folder) / f"experiment{experiment}" / f"recording{recording}"
    stream = recording_folder / "continuous" / stream_folder
    stream.mkdir(parents=True, exist_ok=True)
    channels = [
        {
            "channel_name": name,
            "description": "ADC data channel" if k >= n_neural else "Headstage data channel",
            "identifier": "genericdata.continuous",
            "history": "Acquisition Board -> Record Node",
            "bit_volts": 0.00015 if k >= n_neural else bit_volts,
            "units": "V" if k >= n_neural else "uV",
            "source_processor_index": k,
            "recorded_processor_index": k,
        }
        for k, name in enumerate(names)
    ]
    processor, _, stream_name = stream_folder.partition(".")
    structure = {
        "GUI version": "0.6.7",
        "continuous": [
            {
                "folder_name": stream_folder + "/",
                "sample_rate": float(fs_hz),
                "source_processor_name": processor.rsplit("-", 1)[0].replace("_", " "),
                "source_processor_id": int(processor.rsplit("-", 1)[1]),
                "stream_name": stream_name,
                "recorded_processor": "Record Node",
                "recorded_processor_id": 101,
                "num_channels": n_ch,
                "channels": channels,
            }
        ],
        "events": [],
        "spikes": [],
    }
    (recording_folder / "structure.oebin").write_text(json.dumps(structure, indent=4))
    np.ascontiguousarray(counts, dtype="<i2").tofile(stream / "continuous.dat")
    numbers = first_sample_number + np.arange(n, dtype=np.int64)
    for at, count in missing:
        numbers[at:] += count
    np.save(stream / "sample_numbers.npy", numbers)
    np.save(stream / "timestamps.npy", numbers / float(fs_hz))
    return recording_folder


def write_nwb(
    path: Path,
    counts: np.ndarray,
    series: dict[str, dict],
    *,
    channel_names: Sequence[str] | None = None,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels)) as ElectricalSeries of an NWB file (pynwb).

    Parameters
    ----------
    path : Path
    counts : ndarray (n, n_channels), int16
    series : dict
        ``{name: keyword arguments of pynwb's ElectricalSeries}``: ``rate`` or ``timestamps``,
        ``conversion`` (volts per count), optionally ``offset`` and ``channel_conversion``.
        Each series holds ``counts``, in the file's acquisition.
    channel_names : sequence of str, optional
        The electrodes table's ``channel_name`` column (default ``CSC1``, ``CSC2``, ...).

    Returns
    -------
    Path
    """
    import datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    names = list(channel_names or [f"CSC{i + 1}" for i in range(counts.shape[1])])
    f = NWBFile(
        session_description="written by rtdecode.simulator.rig_files",
        identifier=Path(path).stem,
        session_start_time=datetime.datetime(2024, 1, 2, 10, tzinfo=datetime.timezone.utc),
    )
    group = f.create_electrode_group(
        name="shank0", description="probe", location="CA1", device=f.create_device(name="rig")
    )
    f.add_electrode_column(name="channel_name", description="the rig's channel name")
    for name in names:
        f.add_electrode(group=group, location="CA1", channel_name=name)
    region = f.create_electrode_table_region(region=list(range(len(names))), description="all")
    for name, options in series.items():
        f.add_acquisition(ElectricalSeries(name=name, data=counts, electrodes=region, **options))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    return Path(path)


def write_spikeglx(
    folder: Path,
    counts: np.ndarray,
    fs_hz: float = 30000.0,
    *,
    gain: int = 500,
    run: str = "run",
    trigger: int = 0,
    first_sample: int = 0,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels)) as a Neuropixels 1.0 AP band of SpikeGLX.

    Parameters
    ----------
    folder : Path
        Created if needed; holds ``<run>_g0_t<trigger>.imec0.ap.bin`` and ``.meta``.
    counts : ndarray (n, n_channels), int16
        The neural channels (named ``AP0``, ``AP1``, ...); a sync channel (``SY0``, zeros) is
        added last, as SpikeGLX saves it.
    gain : int
        The probe's AP gain (microvolts per count = 0.6 / 512 / gain x 1e6).
    trigger : int
        A later trigger of one gate is a new file of the run, at ``first_sample``.

    Returns
    -------
    Path
        The ``.bin`` file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, n_ch = counts.shape
    stem = f"{run}_g0_t{trigger}.imec0.ap"
    data = np.zeros((n, n_ch + 1), dtype="<i2")
    data[:, :n_ch] = counts
    data.tofile(folder / f"{stem}.bin")
    imro = f"(0,{n_ch})" + "".join(f"({c} 0 0 {gain} 250 1)" for c in range(n_ch))
    chan_map = f"({n_ch},{n_ch},1)" + "".join(f"(AP{c};{c}:{c})" for c in range(n_ch))
    chan_map += f"(SY0;{n_ch}:{n_ch})"
    meta = {
        "typeThis": "imec",
        "imDatPrb_pn": "PRB_1_4_0480_1",
        "imSampRate": f"{fs_hz:g}",
        "nSavedChans": str(n_ch + 1),
        "snsApLfSy": f"{n_ch},0,1",
        "snsSaveChanSubset": "all",
        "imAiRangeMax": "0.6",
        "imAiRangeMin": "-0.6",
        "imMaxInt": "512",
        "fileName": f"D:/SGL_DATA/{run}_g0/{stem}.bin",
        "fileSizeBytes": str(data.nbytes),
        "fileTimeSecs": f"{n / fs_hz:.6f}",
        "firstSample": str(first_sample),
        "~imroTbl": imro,
        "~snsChanMap": chan_map,
    }
    text = "".join(f"{k}={v}\n" for k, v in meta.items())
    (folder / f"{stem}.meta").write_text(text)
    return folder / f"{stem}.bin"


_NSX_BASIC = np.dtype(
    [
        ("file_id", "S8"),
        ("ver_major", "u1"),
        ("ver_minor", "u1"),
        ("bytes_in_headers", "<u4"),
        ("label", "S16"),
        ("comment", "S256"),
        ("period", "<u4"),
        ("timestamp_resolution", "<u4"),
        ("time_origin", "<u2", (8,)),
        ("channel_count", "<u4"),
    ]
)  # 314 bytes
_NSX_CHANNEL = np.dtype(
    [
        ("type", "S2"),
        ("electrode_id", "<u2"),
        ("electrode_label", "S16"),
        ("front_end_id", "u1"),
        ("connector_pin", "u1"),
        ("min_digital", "<i2"),
        ("max_digital", "<i2"),
        ("min_analog", "<i2"),
        ("max_analog", "<i2"),
        ("units", "S16"),
        ("high_corner", "<u4"),
        ("high_order", "<u4"),
        ("high_type", "<u2"),
        ("low_corner", "<u4"),
        ("low_order", "<u4"),
        ("low_type", "<u2"),
    ]
)  # 66 bytes


def write_blackrock_nsx(
    path: Path,
    counts: np.ndarray,
    *,
    period: int = 1,
    packets: Sequence[tuple[int, int]] | None = None,
    analog_max_uv: int = 8191,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels)) as a Blackrock NSx 2.3 file (``.ns5`` at 30 kHz).

    Parameters
    ----------
    path : Path
        ``.ns5`` for 30 kHz (``period`` 1), ``.ns2`` for 1 kHz (``period`` 30)...
    period : int
        Sample period in 1/30000 s.
    packets : sequence of (int, int), optional
        ``(first sample, timestamp)`` of each data packet (default: one packet at 0): a packet
        whose timestamp is later than its predecessor's samples account for follows a pause.
    analog_max_uv : int
        Microvolts at the digital maximum 32764 (the range is symmetric): the Cerebus default,
        8191 uV, is 0.25 uV per count.

    Returns
    -------
    Path
    """
    n, n_ch = counts.shape
    basic = np.zeros((), dtype=_NSX_BASIC)
    basic["file_id"] = b"NEURALCD"
    basic["ver_major"], basic["ver_minor"] = 2, 3
    basic["bytes_in_headers"] = _NSX_BASIC.itemsize + n_ch * _NSX_CHANNEL.itemsize
    basic["label"] = f"{30 // period} kS/s".encode()
    basic["period"] = period
    basic["timestamp_resolution"] = 30000
    basic["time_origin"] = (2024, 1, 2, 2, 10, 0, 0, 0)
    basic["channel_count"] = n_ch
    channels = np.zeros(n_ch, dtype=_NSX_CHANNEL)
    channels["type"] = b"CC"
    channels["electrode_id"] = np.arange(1, n_ch + 1)
    channels["electrode_label"] = [f"elec{i + 1}".encode() for i in range(n_ch)]
    channels["front_end_id"] = 1
    channels["connector_pin"] = np.arange(n_ch) % 32 + 1
    channels["min_digital"], channels["max_digital"] = -32764, 32764
    channels["min_analog"], channels["max_analog"] = -analog_max_uv, analog_max_uv
    channels["units"] = b"uV"
    packets = list(packets or [(0, 0)])
    with open(path, "wb") as f:
        f.write(basic.tobytes())
        f.write(channels.tobytes())
        for k, (first, timestamp) in enumerate(packets):
            stop = packets[k + 1][0] if k + 1 < len(packets) else n
            header = np.zeros((), dtype=[("flag", "u1"), ("timestamp", "<u4"), ("n", "<u4")])
            header["flag"], header["timestamp"], header["n"] = 1, timestamp, stop - first
            f.write(header.tobytes())
            f.write(np.ascontiguousarray(counts[first:stop], dtype="<i2").tobytes())
    return Path(path)


INTAN_UV_PER_COUNT = 0.195  # the RHD2000/RHS2000 amplifiers' step
_INTAN_MAGIC = {".rhd": 0xC6912702, ".rhs": 0xD69127AC}


def _qstring(text: str) -> bytes:
    """Intan's QString: uint32 byte count, then UTF-16LE (0xFFFFFFFF: a null string)."""
    data = text.encode("utf-16-le")
    return np.uint32(len(data) if text else 0xFFFFFFFF).tobytes() + data


def _intan_values(*items: tuple[str, float]) -> bytes:
    """Header fields, each (numpy type, value), packed little-endian."""
    return b"".join(
        np.array(value, dtype=np.dtype(kind).newbyteorder("<")).tobytes() for kind, value in items
    )


def _intan_header(
    suffix: str,
    version: tuple[int, int],
    fs_hz: float,
    groups: Sequence[tuple[str, str, list[tuple[str, str, int]]]],
) -> bytes:
    """The header of an ``.rhd``/``.rhs``: the global fields of ``version`` and the signal
    groups, each ``(name, prefix, [(native name, custom name, signal type), ...])``."""
    rhs = suffix == ".rhs"
    head = _intan_values(("u4", _INTAN_MAGIC[suffix]), ("i2", version[0]), ("i2", version[1]))
    head += _intan_values(("f4", fs_hz), ("i2", 1), ("f4", 1.0), ("f4", 0.1))  # DSP on, 1 Hz
    if rhs:
        head += _intan_values(("f4", 1000.0))  # actual lower bandwidth during settle
    head += _intan_values(("f4", 7500.0), ("f4", 1.0), ("f4", 0.1))  # upper; desired DSP, lower
    if rhs:
        head += _intan_values(("f4", 1000.0))
    head += _intan_values(("f4", 7500.0), ("i2", 0), ("f4", 1000.0), ("f4", 1000.0))  # no notch
    if rhs:
        # amplifier settle and charge recovery modes, stimulation step (A), recovery limits
        head += _intan_values(("i2", 0), ("i2", 0), ("f4", 1e-6), ("f4", 1e-6), ("f4", 0.0))
    head += _qstring("written by rtdecode.simulator.rig_files") + _qstring("") + _qstring("")
    if rhs:
        head += _intan_values(("i2", 0), ("i2", 0)) + _qstring("hardware")  # no DC data saved
    else:
        if version >= (1, 1):
            head += _intan_values(("i2", 0))  # temperature sensors
        if version >= (1, 3):
            head += _intan_values(("i2", 0))  # board mode 0: ADC 50.354 uV per count
        if version >= (2, 0):
            head += _qstring("hardware")  # reference channel
    head += _intan_values(("i2", len(groups)))
    for name, prefix, channels in groups:
        n_amp = sum(kind == 0 for _, _, kind in channels)
        head += _qstring(name) + _qstring(prefix)
        head += _intan_values(("i2", 1), ("i2", len(channels)), ("i2", n_amp))
        for k, (native, custom, kind) in enumerate(channels):
            head += _qstring(native) + _qstring(custom)
            # native and custom order, signal type, enabled, chip channel, (rhs: command
            # stream,) board stream, spike scope trigger settings, impedance
            head += _intan_values(("i2", k), ("i2", k), ("i2", kind), ("i2", 1), ("i2", k))
            if rhs:
                head += _intan_values(("i2", 0))
            head += _intan_values(("i2", 0), ("i2", 0), ("i2", -70), ("i2", 0), ("i2", 0))
            head += _intan_values(("f4", 0.0), ("f4", 0.0))
    return head


def write_intan(
    path: Path,
    counts: np.ndarray,
    fs_hz: float = 30000.0,
    *,
    channel_names: Sequence[str] | None = None,
    adc_channels: int = 0,
    aux_channels: int = 0,
    version: tuple[int, int] | None = None,
    first_timestamp: int = 0,
    missing: Sequence[tuple[int, int]] = (),
    per_signal: bool = False,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels), signed) as an Intan ``.rhd`` or ``.rhs`` file
    with its header (the suffix of ``path`` says which), or as RHX's one file per signal type.

    Parameters
    ----------
    path : Path
        ``*.rhd`` (RHD2000 amplifiers) or ``*.rhs`` (RHS2000 stimulation/recording); with
        ``per_signal``, ``<folder>/info.rhd`` (or ``.rhs``), the data files beside it.
    counts : ndarray (n, n_channels), int16
        Amplifier counts (0.195 uV each, stored offset by 32768 in data blocks), then
        ``adc_channels`` board ADC inputs (their 16 bits stored as they are); ``n`` a whole
        number of data blocks unless ``per_signal``.
    channel_names : sequence of str, optional
        The amplifier channels' custom names (default: their native names, ``A-000``, ...).
    aux_channels : int
        rhd, one file: headstage auxiliary inputs (``A-AUX1``, ...), sampled at a quarter of
        the rate (a quarter of each block's samples); each holds its sample count (uint16).
    version : (int, int), optional
        The file format's version: rhd (1, 3) by default, 60-sample blocks (128 from 2.0);
        rhs (1, 0), 128-sample blocks.
    first_timestamp : int
        The first sample's timestamp (the controller's sample counter).
    missing : sequence of (int, int)
        ``(at, count)``: ``count`` timestamps skipped before sample ``at`` (a block boundary),
        as when the interface board dropped data.
    per_signal : bool
        RHX's "one file per signal type" layout (version 3.0 by default) instead of one file.

    Returns
    -------
    Path
        The file written, or the header file (``info.rhd``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _INTAN_MAGIC:
        raise ValueError(f"path must end in .rhd or .rhs, got {path.name!r}")
    rhs = suffix == ".rhs"
    version = version or ((1, 0) if rhs else (3, 0) if per_signal else (1, 3))
    block = 128 if rhs or version >= (2, 0) else 60
    n, n_ch = counts.shape
    n_amp = n_ch - adc_channels
    if n % block and not per_signal:
        raise ValueError(f"counts must hold whole data blocks of {block} samples, got {n}")
    if aux_channels and (rhs or per_signal):
        raise ValueError("aux_channels: only an .rhd written as one file has them here")
    native = [f"A-{k:03d}" for k in range(n_amp)]
    amplifiers = [(a, c, 0) for a, c in zip(native, channel_names or native)]
    amplifiers += [(f"A-AUX{k + 1}", f"AUX{k + 1}", 1) for k in range(aux_channels)]
    adc = [(f"ANALOG-IN-{k + 1}", f"ANALOG-IN-{k + 1}", 3) for k in range(adc_channels)]
    groups = [("Port A", "A", amplifiers)] + (
        [("Board ADC Inputs", "ANALOG-IN", adc)] if adc else []
    )
    stamps = first_timestamp + np.arange(n, dtype=np.int64)
    for at, count in missing:
        stamps[at:] += count
    header = _intan_header(suffix, version, fs_hz, groups)
    if per_signal:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(header)
        stamps.astype("<i4").tofile(path.parent / "time.dat")
        np.ascontiguousarray(counts[:, :n_amp], dtype="<i2").tofile(path.parent / "amplifier.dat")
        if rhs:
            np.zeros((n, n_amp), dtype="<u2").tofile(path.parent / "stim.dat")
        if adc_channels:
            np.ascontiguousarray(counts[:, n_amp:]).view("<u2").tofile(path.parent / "analogin.dat")
        return path
    fields = [("timestamp", "<i4", (block,)), ("amplifier", "<u2", (n_amp, block))]
    if rhs:
        fields.append(("stimulation", "<u2", (n_amp, block)))  # no current: zeros
    if aux_channels:
        fields.append(("aux", "<u2", (aux_channels, block // 4)))
    if adc_channels:
        fields.append(("adc", "<u2", (adc_channels, block)))
    with open(path, "wb") as f:
        f.write(header)
        # 1024 blocks at a time: a long recording is not held three times over
        for first in range(0, n, 1024 * block):
            stop = min(n, first + 1024 * block)
            blocks = np.zeros((stop - first) // block, dtype=fields)
            blocks["timestamp"] = stamps[first:stop].reshape(-1, block)
            # (blocks, channels, samples): each channel's samples of a block together
            per_block = counts[first:stop].reshape(-1, block, n_ch).transpose(0, 2, 1)
            blocks["amplifier"] = per_block[:, :n_amp].astype(np.int32) + 32768
            if aux_channels:
                aux = np.arange(first // 4, stop // 4) % 65536
                blocks["aux"] = aux.reshape(-1, 1, block // 4)
            if adc_channels:
                blocks["adc"] = per_block[:, n_amp:].astype(np.int32) & 0xFFFF
            f.write(blocks.tobytes())
    return path


OE_LEGACY_RECORD_SAMPLES = 1024
OE_LEGACY_RECORD = np.dtype(
    [
        ("timestamp", "<i8"),
        ("n_samples", "<u2"),
        ("recording", "<u2"),
        ("samples", ">i2", (OE_LEGACY_RECORD_SAMPLES,)),
        ("marker", "u1", (10,)),
    ]
)  # 2070 bytes


def _oe_legacy_header(channel: str, fs_hz: float, bit_volts: float) -> bytes:
    fields = {
        "format": "'Open Ephys Data Format'",
        "version": "0.4",
        "header_bytes": "1024",
        "description": "'each record contains one 64-bit timestamp, one 16-bit sample count "
        "(N), 1 uint16 recordingNumber, N 16-bit samples, and one 10-byte record marker "
        "(0 1 2 3 4 5 6 7 8 255)'",
        "date_created": "'2-Jan-2024 100000'",
        "channel": f"'{channel}'",
        "channelType": "'Continuous'",
        "sampleRate": f"{fs_hz:g}",
        "blockLength": str(OE_LEGACY_RECORD_SAMPLES),
        "bufferSize": "1024",
        "bitVolts": f"{bit_volts!r}",
    }
    text = "".join(f"header.{key} = {value};\n" for key, value in fields.items()).encode()
    return text + b" " * (1024 - len(text))


def write_open_ephys_legacy(
    folder: Path,
    counts: np.ndarray,
    fs_hz: float = 30000.0,
    *,
    bit_volts: float = 0.195,
    adc_channels: int = 0,
    first_sample_number: int = 0,
    missing: Sequence[tuple[int, int]] = (),
    processor: int = 100,
    session: int = 1,
) -> Path:
    """Write ``counts`` (int16 (n, n_channels)) as an Open Ephys legacy session: one
    ``.continuous`` file per channel, ``<processor>_CH1.continuous``, ...

    Parameters
    ----------
    folder : Path
        Created if needed.
    counts : ndarray (n, n_channels), int16
        ``n`` a whole number of 1024-sample records.
    bit_volts : float
        Microvolts per count of the neural channels (``CH``).
    adc_channels : int
        The last this many columns are ADC inputs (``ADC1``, ..., 0.00015 V per count).
    first_sample_number : int
        The first record's timestamp.
    missing : sequence of (int, int)
        ``(at, count)``: ``count`` sample numbers skipped before sample ``at`` (a record
        boundary): the records the GUI did not write.
    session : int
        From 2: the files of a later start of acquisition in the same folder,
        ``<processor>_CH1_<session>.continuous``.

    Returns
    -------
    Path
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, n_ch = counts.shape
    if n % OE_LEGACY_RECORD_SAMPLES:
        raise ValueError(f"counts must hold whole records of 1024 samples, got {n} samples")
    n_neural = n_ch - adc_channels
    names = [f"CH{k + 1}" for k in range(n_neural)] + [f"ADC{k + 1}" for k in range(adc_channels)]
    numbers = first_sample_number + np.arange(n, dtype=np.int64)
    for at, count in missing:
        numbers[at:] += count
    records = np.zeros(n // OE_LEGACY_RECORD_SAMPLES, dtype=OE_LEGACY_RECORD)
    records["timestamp"] = numbers[::OE_LEGACY_RECORD_SAMPLES]
    records["n_samples"] = OE_LEGACY_RECORD_SAMPLES
    records["marker"] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 255]
    for k, name in enumerate(names):
        records["samples"] = counts[:, k].reshape(-1, OE_LEGACY_RECORD_SAMPLES)
        tail = f"_{session}" if session > 1 else ""
        with open(folder / f"{processor}_{name}{tail}.continuous", "wb") as f:
            f.write(_oe_legacy_header(name, fs_hz, 0.00015 if k >= n_neural else bit_volts))
            f.write(records.tobytes())
    return folder
