"""Recordings and their labels, read from files: EDF/BDF (edfio), XDF (pyxdf), NumPy ``.npz``;
rigs' sessions (Neuralynx, Open Ephys, SpikeGLX, Blackrock, Intan:
:mod:`rtdecode.offline.neo_recordings`) and NWB
(:mod:`rtdecode.offline.nwb_recordings`) through :func:`open_recording`, which recognises the
format from the content.

A :class:`Recording` gives a recording's rate, channel names and units, and its samples as
consecutive float32 chunks of shape (n, n_channels), so feature extraction holds one chunk at a
time, whatever the file's size (EDF/BDF are memory-mapped by edfio; XDF and ``.npz`` have no
partial reader and are loaded whole, see :func:`open_recording`).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rtdecode.common.channels import default_channel_labels

# the base classes live apart so the readers of other modules can use them without a circle
from rtdecode.offline.recording_base import DataError, Recording, Segment, select_channels

__all__ = [
    "DataError",
    "Segment",
    "Recording",
    "open_recording",
    "select_channels",
    "RECORDING_SUFFIXES",
    "RECORDING_FORMATS",
    "detect_format",
    "EdfRecording",
    "NpzRecording",
    "XdfRecording",
    "read_edf_annotations",
]

RECORDING_SUFFIXES = (".edf", ".bdf", ".xdf", ".xdfz", ".npz", ".nwb", ".ncs", ".rhd", ".rhs")

# The live acquisition's default: a step beyond one period plus this is a jump in the timestamps.
_GAP_TOLERANCE_S = 0.05


class EdfRecording(Recording):
    """EDF/EDF+ or BDF/BDF+ through edfio (EDF memory-mapped and read one chunk at a time)."""

    def __init__(
        self, path: Path, channels: Sequence[str | int] | None, *, bdf: bool | None = None
    ) -> None:
        edf = _read_edf(path, bdf=bdf)
        signals = edf.signals
        if not signals:
            n = len(edf.annotations)
            raise DataError(
                f"{path}: the file holds no signals"
                + (
                    f", only {n} annotation(s): it is a label file (as a Sleep-EDF "
                    "*-Hypnogram.edf); give it with --labels, and the recording it labels with "
                    "--data"
                    if n
                    else " and no annotations"
                )
            )
        names = [s.label for s in signals]
        picked = select_channels(names, channels, where=str(path))
        rates = {float(signals[i].sampling_frequency) for i in picked}
        if len(rates) != 1:
            detail = ", ".join(f"{names[i]}={signals[i].sampling_frequency:g} Hz" for i in picked)
            raise DataError(
                f"{path}: the selected channels have different sampling rates ({detail}); "
                "select channels of one rate with --channels"
            )
        fs_hz = rates.pop()
        self._edf = edf
        self._signals = [signals[i] for i in picked]
        n_samples = int(
            round(float(edf.num_data_records) * float(edf.data_record_duration) * fs_hz)
        )
        super().__init__(
            path,
            fs_hz,
            [names[i] for i in picked],
            [s.physical_dimension for s in self._signals],
            n_samples,
        )

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.n_channels), dtype=np.float32)
        t0, t1 = start / self.fs_hz, stop / self.fs_hz
        for j, signal in enumerate(self._signals):
            # edfio rounds seconds back to these sample indices and reads only their records
            values = signal.get_data_slice(t0, t1)
            if values.shape[0] != stop - start:
                raise DataError(
                    f"{self.path}: channel {self.channel_names[j]!r} gave {values.shape[0]} "
                    f"samples for {start}..{stop}; the file may be truncated"
                )
            out[:, j] = values
        return out

    @property
    def start(self) -> datetime.datetime | None:
        """The recording's start date and time from the header; None when anonymised."""
        return _edf_start(self._edf)

    def annotations(self) -> list[Segment]:
        return _edf_segments(self._edf)


def read_edf_annotations(path: Path, *, recording: Recording | None = None) -> list[Segment]:
    """EDF+/BDF+ annotations as segments, from a file with or without signals.

    A file holding only annotations is a label file (as Sleep-EDF's ``*-Hypnogram.edf``).

    Parameters
    ----------
    path : Path
    recording : Recording, optional
        The recording the annotations label. When both it (an EDF/BDF) and the file give their
        start date and time, onsets are moved to count from the recording's start, as MNE
        aligns annotations by their origin time; otherwise both are taken to start together.
    """
    edf = _read_edf(path)
    segments = _edf_segments(edf)
    start = _edf_start(edf)
    other = recording.start if isinstance(recording, EdfRecording) else None
    if start is None or other is None or start == other:
        return segments
    shift = (start - other).total_seconds()
    return [Segment(s.onset_s + shift, s.duration_s, s.label, s.group) for s in segments]


def _read_edf(path: Path, *, bdf: bool | None = None):
    """An EDF or BDF (``bdf``; default: by the suffix) through edfio."""
    import edfio

    if bdf is None:
        bdf = path.suffix.lower() == ".bdf"
    try:
        # edfio memory-maps EDF and reads only the records asked for; it loads BDF whole
        if bdf:
            return edfio.read_bdf(path)
        return edfio.read_edf(path, lazy_load_data=True)
    except Exception as exc:  # edfio raises ValueError/EdfError/OSError variants
        raise DataError(
            f"{path}: not a readable {'BDF' if bdf else 'EDF'} file ({exc}); check that the "
            "file is complete and really is EDF/BDF"
        ) from None


def _edf_segments(edf) -> list[Segment]:
    segments = []
    for a in edf.annotations:
        text = str(a.text).strip()
        if not text:
            continue
        duration = float(a.duration) if a.duration is not None else 0.0
        segments.append(Segment(float(a.onset), duration, text))
    return segments


def _edf_start(edf) -> datetime.datetime | None:
    from edfio import AnonymizedDateError

    try:
        return datetime.datetime.combine(edf.startdate, edf.starttime)
    except AnonymizedDateError:
        return None


class NpzRecording(Recording):
    """``.npz`` with ``data`` (n_samples, n_channels), ``fs`` and optionally ``channel_names``
    and ``units``. Loaded whole (NumPy cannot read part of a compressed member)."""

    def __init__(self, path: Path, channels: Sequence[str | int] | None) -> None:
        try:
            # our own file object: np.load leaks the one it opens when the zip is damaged
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                missing = [k for k in ("data", "fs") if k not in z.files]
                if missing:
                    raise DataError(
                        f"{path}: missing array(s) {missing}; an rtdecode .npz holds 'data' "
                        f"(n_samples, n_channels), 'fs' (Hz) and optionally 'channel_names', "
                        f"'units' (found: {z.files})"
                    )
                data = z["data"]
                fs = z["fs"]
                names = z["channel_names"] if "channel_names" in z.files else None
                units = z["units"] if "units" in z.files else None
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from None
        if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
            raise DataError(
                f"{path}: field 'data' must be a numeric 2-D array (n_samples, n_channels), got "
                f"shape {data.shape} dtype {data.dtype}"
            )
        if fs.size != 1:
            raise DataError(f"{path}: field 'fs' must be one number (Hz), got shape {fs.shape}")
        n_ch = data.shape[1]
        if n_ch == 0:
            raise DataError(
                f"{path}: field 'data' has no channels (shape {data.shape}): nothing to decode"
            )
        names = [str(n) for n in names] if names is not None else list(default_channel_labels(n_ch))
        if len(names) != n_ch:
            raise DataError(
                f"{path}: field 'channel_names' has {len(names)} names for {n_ch} channels"
            )
        units = [str(u) for u in units] if units is not None else [""] * n_ch
        picked = select_channels(names, channels, where=str(path))
        self._data = data[:, picked]
        super().__init__(
            path,
            float(fs.reshape(())),
            [names[i] for i in picked],
            [units[i] if i < len(units) else "" for i in picked],
            data.shape[0],
        )

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._data[start:stop], dtype=np.float32)


class XdfRecording(Recording):
    """One data stream of an XDF file (LabRecorder) through pyxdf, picked by name or type.

    pyxdf has no partial reader: the chosen stream is loaded whole. Marker streams in the same
    file are available as labels (``read_labels(path.xdf, marker_stream=...)``).
    """

    def __init__(
        self, path: Path, channels: Sequence[str | int] | None, stream: str | None
    ) -> None:
        streams = _load_xdf(path)
        data_streams = [s for s in streams if _xdf_fs(s) > 0]
        if not data_streams and streams:
            raise DataError(
                f"{path}: no data stream, only marker streams "
                f"({', '.join(_xdf_describe(s) for s in streams)}): no signal to decode (XDF "
                "markers label the data stream of their own file)"
            )
        chosen = _pick_xdf_stream(path, data_streams, stream, "data", "--stream")
        series = np.asarray(chosen["time_series"])
        if series.ndim != 2 or series.shape[0] == 0:
            raise DataError(f"{path}: stream {_xdf_name(chosen)!r} holds no samples")
        if series.shape[1] == 0:
            raise DataError(
                f"{path}: stream {_xdf_name(chosen)!r} has no channels (channel_count 0): "
                "nothing to decode; pick the data stream with --stream"
            )
        names, units = _xdf_channels(chosen, series.shape[1])
        picked = select_channels(names, channels, where=f"{path} stream {_xdf_name(chosen)!r}")
        self._data = series[:, picked]
        stamps = np.asarray(chosen["time_stamps"], dtype=np.float64)
        self._t0 = float(stamps[0])
        self._streams = streams
        self.stream_name = _xdf_name(chosen)
        fs_hz = _xdf_fs(chosen)
        where = f"{path} stream {self.stream_name!r}"
        super().__init__(
            path,
            fs_hz,
            [names[i] for i in picked],
            [units[i] for i in picked],
            series.shape[0],
            # a sample stamped before the one ahead of it (jitter) takes that one's time
            times_s=np.maximum.accumulate(stamps - self._t0),
            discontinuities=_gaps(stamps, fs_hz, where),
        )

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._data[start:stop], dtype=np.float32)

    def marker_segments(self, marker_stream: str | None) -> list[Segment]:
        """Labels from a marker stream: each marker starts a segment lasting to the next one."""
        chosen = _pick_xdf_stream(
            self.path,
            [s for s in self._streams if _xdf_fs(s) == 0],
            marker_stream,
            "marker",
            "--marker-stream",
        )
        stamps = np.asarray(chosen["time_stamps"], dtype=np.float64) - self._t0
        values = [
            str(v[0]) if isinstance(v, (list, tuple, np.ndarray)) else str(v)
            for v in chosen["time_series"]
        ]
        segments = []
        for k, (t, label) in enumerate(zip(stamps, values)):
            end = stamps[k + 1] if k + 1 < len(stamps) else self.duration_s
            onset = max(0.0, float(t))
            if end > onset:
                segments.append(Segment(onset, float(end) - onset, label))
        return segments

    def annotations(self) -> list[Segment]:
        if not any(_xdf_fs(s) == 0 for s in self._streams):
            return []
        return self.marker_segments(None)


def _gaps(stamps: np.ndarray, fs_hz: float, where: str) -> list[int]:
    """The first sample after each gap in a stream's timestamps, judged as live
    (:class:`rtdecode.acquisition.timing.TimingPolicy`: a forward jump beyond one period plus
    the gap tolerance, unless the following timestamps take it back)."""
    from rtdecode.acquisition.timing import TimingPolicy

    policy = TimingPolicy(fs_hz, _GAP_TOLERANCE_S)
    steps = np.diff(stamps)
    if not np.any((steps < 0) | (steps > policy.period_s + policy.gap_tolerance_s)):
        return []  # the common case, without a Python loop over every sample
    events = policy.push(stamps) + policy.pause()  # the file's end: a jump pending is a gap
    reset = next((e for e in events if e.kind == "reset"), None)
    if reset is not None:
        # live, the decisions would go on; offline, labels in seconds cannot be placed
        raise DataError(
            f"{where}: the timestamps go back {-reset.size_s:.3f} s at sample {reset.at_sample} "
            "(the source's clock started over), so times after it cannot be matched with "
            "labels; split the recording there"
        )
    return [e.at_sample for e in events if e.kind == "gap"]


def _pick_xdf_stream(
    path: Path, candidates: list[dict], wanted: str | None, kind: str, option: str
) -> dict:
    """The one candidate stream named or typed ``wanted`` (or the only one when not given)."""
    if wanted is not None:
        matches = [s for s in candidates if wanted in (_xdf_name(s), _xdf_type(s))]
    else:
        matches = candidates
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(_xdf_describe(s) for s in candidates) or "none"
    if wanted is None:
        raise DataError(
            f"{path}: {len(matches) or 'no'} {kind} streams ({listing})"
            + ("; pick one with " + option if matches else "")
        )
    raise DataError(
        f"{path}: {'no' if not matches else len(matches)} {kind} stream named or "
        f"typed {wanted!r}; {kind} streams: {listing}"
    )


def _load_xdf(path: Path) -> list[dict]:
    import gzip

    import pyxdf

    # Check the magic first: pyxdf leaves its file open when it rejects a file.
    opener = gzip.open if path.suffix.lower() == ".xdfz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise DataError(f"{path}: not a readable XDF file ({exc})") from None
    if magic != b"XDF:":
        raise DataError(f"{path}: not a readable XDF file (it does not start with 'XDF:')")
    try:
        # dejittered in stretches broken wherever a step exceeds max(period, 50 ms): at or
        # below the live gap threshold, so a gap is never smoothed away (pyxdf's default
        # breaks only beyond max(1 s, 500 periods))
        streams, _header = pyxdf.load_xdf(
            str(path),
            dejitter_timestamps=True,
            jitter_break_threshold_seconds=_GAP_TOLERANCE_S,
            jitter_break_threshold_samples=1,
        )
    except Exception as exc:
        raise DataError(f"{path}: not a readable XDF file ({exc})") from None
    return streams


def _xdf_info(s: dict, key: str) -> str:
    value = s["info"].get(key, [""])
    return str(value[0] if isinstance(value, list) and value else value)


def _xdf_name(s: dict) -> str:
    return _xdf_info(s, "name")


def _xdf_type(s: dict) -> str:
    return _xdf_info(s, "type")


def _xdf_fs(s: dict) -> float:
    try:
        return float(_xdf_info(s, "nominal_srate") or 0.0)
    except ValueError:
        return 0.0


def _xdf_describe(s: dict) -> str:
    fs = _xdf_fs(s)
    return f"{_xdf_name(s)!r} ({_xdf_type(s) or 'no type'}, " + (
        f"{fs:g} Hz)" if fs else "markers)"
    )


def _xdf_channels(s: dict, n: int) -> tuple[list[str], list[str]]:
    names, units = list(default_channel_labels(n)), [""] * n
    try:
        channels = s["info"]["desc"][0]["channels"][0]["channel"]
        for i, ch in enumerate(channels[:n]):
            if ch.get("label"):
                names[i] = str(ch["label"][0])
            if ch.get("unit"):
                units[i] = str(ch["unit"][0])
    except (KeyError, IndexError, TypeError):
        pass  # no channel description: numbered names
    return names, units


# Formats ----------------------------------------------------------------------------------
RECORDING_FORMATS: dict[str, str] = {
    "edf": "EDF/EDF+ file",
    "bdf": "BDF/BDF+ file",
    "xdf": "XDF file (LabRecorder)",
    "npz": "NumPy .npz file",
    "neuralynx": "Neuralynx session folder of .ncs files (or one .ncs file)",
    "openephys": "Open Ephys binary folder (structure.oebin, continuous.dat)",
    "spikeglx": "SpikeGLX folder (.bin + .meta)",
    "blackrock": "Blackrock .nsX file (.ns1-.ns6)",
    "intan": "Intan .rhd/.rhs file, or an RHX folder (info.rhd + .dat files)",
    "openephys-legacy": "Open Ephys legacy folder (.continuous files)",
    "nwb": "NWB file (an ElectricalSeries)",
}
"""The ``--format`` values: what :func:`open_recording` reads."""

_FILE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"XDF:", "xdf"),
    (b"\xffBIOSEMI", "bdf"),
    (b"0       ", "edf"),
    (b"PK\x03\x04", "npz"),
    (b"PK\x05\x06", "npz"),  # an empty zip
    (b"\x89HDF\r\n\x1a\n", "nwb"),
    (b"######## Neuralynx", "neuralynx"),
    (b"\x02\x27\x91\xc6", "intan"),  # .rhd: 0xC6912702, little-endian
    (b"\xac\x27\x91\xd6", "intan"),  # .rhs: 0xD69127AC
    (b"NEURALCD", "blackrock"),
    (b"NEURALSG", "blackrock"),
    (b"BRSMPGRP", "blackrock"),
    (b"header.format = 'Open Ephys Data Format'", "openephys-legacy"),
)

_SUFFIX_FORMATS = {
    ".edf": "edf",
    ".bdf": "bdf",
    ".xdf": "xdf",
    ".xdfz": "xdf",
    ".npz": "npz",
    ".nwb": "nwb",
    ".ncs": "neuralynx",
    ".rhd": "intan",
    ".rhs": "intan",
    ".continuous": "openephys-legacy",
}


def detect_format(path: str | Path) -> tuple[str, Path]:
    """A recording's format, from its content (a file's first bytes, a folder's files), and
    the path its reader takes.

    Parameters
    ----------
    path : str or Path
        A file, or a rig's session folder.

    Returns
    -------
    format : str
        A key of :data:`RECORDING_FORMATS`.
    path : Path
        Where the reader opens it: an Open Ephys recording's folder for its
        ``structure.oebin`` or ``continuous.dat``, a SpikeGLX or Open Ephys legacy file's
        folder (its session is read), an Intan RHX folder's ``info.rhd``, else ``path``.

    Raises
    ------
    DataError
        Missing or unrecognised.
    """
    p = Path(path)
    if p.is_dir():
        fmt = _folder_format(p)
        if fmt == "intan":
            # neo reads the files of an RHX folder by their header
            return fmt, next(q for q in sorted(p.iterdir()) if q.name.lower() in _INTAN_HEADERS)
    elif p.is_file():
        if p.name == "structure.oebin":
            return "openephys", p.parent
        if p.name == "continuous.dat" and (p.parents[2] / "structure.oebin").is_file():
            return "openephys", p.parents[2]
        if p.suffix.lower() in (".bin", ".meta") and p.with_suffix(".meta").is_file():
            return "spikeglx", p.parent  # neo reads a SpikeGLX run by its folder
        try:
            with open(p, "rb") as f:
                head = f.read(48)
        except OSError as exc:
            raise DataError(f"{p}: cannot be read ({exc.strerror or exc})") from None
        # the file's own first bytes, else its suffix: a damaged file is then refused by the
        # reader of the format its name says, with that reader's reason
        fmt = next((name for magic, name in _FILE_MAGIC if head.startswith(magic)), None)
        fmt = fmt or _SUFFIX_FORMATS.get(p.suffix.lower())
        if fmt is None:
            raise DataError(
                f"{p}: unsupported recording format {p.suffix or '(no suffix)'} (its content is "
                f"none that rtdecode reads); readable: {_readable()}"
            )
        if fmt == "openephys-legacy":
            return fmt, p.parent  # neo reads a legacy session by its folder
    else:
        raise DataError(f"{p}: no such file or folder")
    return fmt, p


def _folder_format(folder: Path) -> str:
    """A session folder's format from the files in it."""
    names = [q.name.lower() for q in folder.iterdir() if q.is_file()]
    if any(n.endswith(".ncs") for n in names):
        return "neuralynx"
    if "structure.oebin" in names or next(folder.glob("**/structure.oebin"), None) is not None:
        return "openephys"
    if any(n.endswith(".continuous") for n in names):
        return "openephys-legacy"
    if any(n.endswith(".meta") for n in names) and any(n.endswith(".bin") for n in names):
        return "spikeglx"
    if any(n in _INTAN_HEADERS for n in names):
        return "intan"  # RHX's one file per signal type (or per channel)
    shown = ", ".join(sorted(names)[:12]) + (" ..." if len(names) > 12 else "")
    raise DataError(
        f"{folder}: a folder holding no recording rtdecode recognises (files: {shown or 'none'}); "
        f"readable: {_readable()}"
    )


# The header file of an Intan RHX folder (one file per signal type or per channel).
_INTAN_HEADERS = ("info.rhd", "info.rhs")


def _readable() -> str:
    return "; ".join(RECORDING_FORMATS.values())


def open_recording(
    path: str | Path,
    *,
    channels: Sequence[str | int] | None = None,
    stream: str | None = None,
    file_format: str | None = None,
) -> Recording:
    """Open a recording, its format recognised from its content (see :func:`detect_format`).

    Parameters
    ----------
    path : str or Path
        A file (EDF, BDF, XDF, ``.npz``, NWB, one ``.ncs``, ``.nsX``, Intan ``.rhd``/``.rhs``)
        or a rig's session folder (Neuralynx, Open Ephys binary or legacy, SpikeGLX).
    channels : sequence of str or int, optional
        Channels to keep, by name or 0-based index (default: all).
    stream : str, optional
        Which signal when the file holds several: XDF, the data stream's name or type; NWB,
        the ElectricalSeries' name; rig folders, neo's signal stream name (default: the only
        one, or the rig's neural one).
    file_format : str, optional
        A key of :data:`RECORDING_FORMATS`, instead of recognising it.

    Raises
    ------
    DataError
        Missing, unreadable or unsupported file, unknown channels, mixed rates.
    """
    p = Path(path)
    if file_format is None:
        file_format, p = detect_format(p)
    elif file_format not in RECORDING_FORMATS:
        raise DataError(
            f"{p}: unknown format {file_format!r}; formats: {', '.join(RECORDING_FORMATS)}"
        )
    elif not p.exists():
        raise DataError(f"{p}: no such file or folder")
    else:
        # where the format's reader opens it (an RHX folder's info.rhd, a legacy or SpikeGLX
        # file's folder), when the content says the same format
        with contextlib.suppress(DataError):
            detected, where = detect_format(p)
            if detected == file_format:
                p = where
    if file_format in ("edf", "bdf", "xdf", "npz") and not p.is_file():
        raise DataError(f"{p}: not a file; a {RECORDING_FORMATS[file_format]} is one file")
    if file_format in ("edf", "bdf"):
        return EdfRecording(p, channels, bdf=file_format == "bdf")
    if file_format == "xdf":
        return XdfRecording(p, channels, stream)
    if file_format == "npz":
        return NpzRecording(p, channels)
    if file_format == "nwb":
        from rtdecode.offline.nwb_recordings import NwbRecording

        return NwbRecording(p, channels, stream)
    from rtdecode.offline.neo_recordings import NEO_FORMATS, NeoRecording

    return NeoRecording(p, NEO_FORMATS[file_format], channels, stream)
