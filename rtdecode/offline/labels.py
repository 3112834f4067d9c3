"""Labels of recordings, read from files: lists of :class:`~rtdecode.offline.recordings.Segment`.

:func:`read_labels` reads a CSV of ``onset_s,duration_s,label`` (extra columns ignored), a
per-epoch hypnogram (one label per line), EDF+ annotations (a recording's own, or a file of
annotations only, such as Sleep-EDF's ``*-Hypnogram.edf``), an XDF marker stream, an NWB
``TimeIntervals`` table or Neuralynx event strings (``.nev``); :func:`map_labels` renames labels
(``--map``). Every problem with a file is a
:class:`~rtdecode.offline.recordings.DataError` whose message names the file and the line or
field, and says what to do.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from rtdecode.offline.recordings import (
    DataError,
    Recording,
    Segment,
    XdfRecording,
    read_edf_annotations,
)

__all__ = ["read_labels", "map_labels", "check_label_map", "NEV_RECORD"]

logger = logging.getLogger("rtdecode")


# Labels -----------------------------------------------------------------------------------
def read_labels(
    path: str | Path,
    *,
    recording: Recording | None = None,
    epoch_s: float | None = None,
    label_column: str = "label",
    group_column: str | None = None,
    marker_stream: str | None = None,
    intervals: str | None = None,
    event_prefix: str | None = None,
) -> list[Segment]:
    """Read labelled segments.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.tsv``/``.txt`` with a header holding ``onset_s``, ``duration_s`` and the
        label column; a hypnogram (one label per line, no header) when ``epoch_s`` is given;
        ``.edf``/``.bdf`` for EDF+ annotations, the recording's own or those of a file with or
        without signals (onsets count from the recording's start when both files give their
        start date and time); ``.xdf`` for a marker stream; ``.nwb`` for a ``TimeIntervals``
        table (times count from the recording's first sample: see Notes); ``.nev`` for
        Neuralynx event strings (see Notes).
    recording : Recording, optional
        When given, segments must lie within it (a label beyond its end is an error).
    epoch_s : float, optional
        Epoch length of a hypnogram file.
    label_column, group_column : str
        CSV (or NWB table) columns holding the label and, optionally, the validation group.
    marker_stream : str, optional
        XDF only: the marker stream's name or type.
    intervals : str, optional
        NWB only: the ``TimeIntervals`` table (default: the only one in the file; a file with
        several is refused, listing them).
    event_prefix : str, optional
        ``.nev`` only: use the events whose string starts with this (``sleep:``), the rest of
        the string being the label (default: every event but Cheetah's own, see Notes).

    Returns
    -------
    list of Segment
        Sorted by onset; they must not overlap.

    Notes
    -----
    **NWB.** A table's ``start_time``/``stop_time`` count from the file's
    ``timestamps_reference_time``; a label's onset counts from the recording's first sample,
    which is the ``starting_time`` (or first timestamp) of the recording's ``ElectricalSeries``
    (the earliest when there are several). The recording is ``recording`` when it is an NWB file
    (a labels file with another reference time is moved by the difference), else the labels
    file itself when it holds an ElectricalSeries; a file of intervals alone counts from its
    reference time. A label that starts before the first sample is cut there.

    **Neuralynx events.** Each chosen event starts a label that lasts until the next chosen
    event, a ``Stopping Recording`` event, or the end: the recording's (``recording``) or that
    of the ``.ncs`` files beside the ``.nev``. Times count from the session's first sample: the
    earliest first record of those ``.ncs`` files (as neo's ``NeuralynxRawIO`` does), or, with
    none beside it, the first event of the file (Cheetah's ``Starting Recording``). Without
    ``event_prefix`` every event is a label except Cheetah's own (``Starting``/``Stopping
    Recording``/``Acquisition``, ``TTL Input ...``) and empty strings.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(
            f"{p}: a folder holds no labels of its own; give the recording's label file with "
            "--labels"
        )
    if not p.is_file():
        raise DataError(f"{p}: no such label file")
    if p.suffix.lower() in (".ncs", ".oebin", ".dat"):
        raise DataError(
            f"{p}: a recording, whose labels (if any) rtdecode does not read; give its label "
            "file with --labels"
        )
    suffix = p.suffix.lower()
    if suffix in (".edf", ".bdf"):
        # the recording's own annotations, or a file of annotations (with signals or none)
        segments = (
            recording.annotations()
            if recording is not None and recording.path == p
            else read_edf_annotations(p, recording=recording)
        )
        if not segments:
            raise DataError(
                f"{p}: the file holds no EDF+ annotations to use as labels; give the label "
                "file with --labels"
            )
    elif suffix in (".xdf", ".xdfz"):
        rec = recording if isinstance(recording, XdfRecording) and recording.path == p else None
        if rec is None:
            rec = XdfRecording(p, None, None) if recording is None else None
        if rec is None:
            raise DataError(f"{p}: XDF markers label only the recording in the same file")
        segments = rec.marker_segments(marker_stream)
    elif suffix == ".nwb":
        segments = _read_nwb_intervals(p, intervals, label_column, group_column, recording)
    elif suffix == ".nev":
        segments = _read_nev(p, event_prefix, recording)
    elif epoch_s is not None:
        segments = _read_hypnogram(p, epoch_s)
    else:
        segments = _read_label_csv(p, label_column, group_column)
    segments.sort(key=lambda s: s.onset_s)
    for a, b in zip(segments, segments[1:]):
        if b.onset_s < a.end_s - 1e-9:
            raise DataError(
                f"{p}: segments overlap: {a.label!r} {a.onset_s:g}-{a.end_s:g} s and "
                f"{b.label!r} from {b.onset_s:g} s; each instant needs one label"
            )
    if recording is not None and segments:
        slack = 1.0 / recording.fs_hz
        late = [s for s in segments if s.onset_s >= recording.duration_s]
        if late:
            raise DataError(
                f"{p}: {len(late)} label(s) start after the end of {recording.path.name} "
                f"({recording.duration_s:.3f} s), first at {late[0].onset_s:g} s: are these the "
                "labels of another recording?"
            )
        overhang = segments[-1].end_s - recording.duration_s
        if overhang > max(slack, 0.01 * recording.duration_s):
            raise DataError(
                f"{p}: the last label ends at {segments[-1].end_s:g} s but "
                f"{recording.path.name} lasts {recording.duration_s:.3f} s: are these the labels "
                "of another recording?"
            )
    return segments


def _read_label_csv(p: Path, label_column: str, group_column: str | None) -> list[Segment]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the label file ({exc})") from None
    first_line = text.split("\n", 1)[0]
    if not text.strip():
        raise DataError(f"{p}: the label file is empty")
    dialect = "excel-tab" if p.suffix.lower() == ".tsv" or "\t" in first_line else "excel"
    # strict: an unterminated quote is an error, not the rest of the file read as one label
    rows = _csv_rows(p, csv.reader(io.StringIO(text, newline=""), dialect=dialect, strict=True))
    _, header = next(rows)
    header = [h.strip() for h in header]
    needed = ["onset_s", "duration_s", label_column] + ([group_column] if group_column else [])
    missing = [c for c in needed if c not in header]
    if missing:
        hint = " (a hypnogram with one label per line needs --epoch-s)" if len(header) == 1 else ""
        raise DataError(
            f"{p}: line 1: missing column(s) {missing}; the header has {header}{hint}. Label "
            f"CSVs need onset_s,duration_s,{label_column}"
            + ("" if label_column != "label" else " (another label column: --label-column)")
        )
    i_on, i_dur, i_lab = (header.index(c) for c in ("onset_s", "duration_s", label_column))
    i_grp = header.index(group_column) if group_column else None
    segments = []
    for line_no, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise DataError(
                f"{p}: line {line_no}: {len(row)} fields, the header has {len(header)} "
                f"({','.join(header)}); give every column a value"
            )
        if any(c.strip() for c in row[len(header) :]):
            # more values than columns: most often a label holding the delimiter, unquoted
            raise DataError(
                f"{p}: line {line_no}: {len(row)} fields, the header has {len(header)} "
                f"({','.join(header)}); quote a value that holds the delimiter "
                '(e.g. "stage 2, light")'
            )
        try:
            onset, duration = float(row[i_on]), float(row[i_dur])
        except ValueError:
            raise DataError(
                f"{p}: line {line_no}: onset_s={row[i_on]!r} and duration_s={row[i_dur]!r} must "
                "be numbers (seconds)"
            ) from None
        if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration <= 0:
            raise DataError(
                f"{p}: line {line_no}: onset_s must be >= 0 and duration_s > 0 (finite seconds), "
                f"got {onset:g} and {duration:g}; fix or remove the row"
            )
        label = row[i_lab].strip()
        if not label:
            raise DataError(f"{p}: line {line_no}: empty {label_column!r}")
        group = row[i_grp].strip() if i_grp is not None else None
        segments.append(Segment(onset, duration, label, group))
    if not segments:
        raise DataError(f"{p}: the label file has a header but no rows")
    return segments


def _csv_rows(p: Path, reader) -> Iterator[tuple[int, list[str]]]:
    """Each row of ``reader`` with the line it starts on; the csv module's errors and fields
    running over several lines (a quote left open) as DataErrors naming that line."""
    while True:
        line_no = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = str(exc)
            if "field larger than field limit" in reason:
                reason = (
                    f"a field longer than {csv.field_size_limit()} characters; label fields "
                    "are short: is a closing quote missing, or is this not a label file?"
                )
            elif "unexpected end of data" in reason:
                reason = "a quote opened on this line is never closed; close or remove it"
            else:
                reason = f"not valid CSV ({reason}); check the quotes on this line"
            raise DataError(f"{p}: line {line_no}: {reason}") from None
        if reader.line_num > line_no and any("\n" in f or "\r" in f for f in row):
            raise DataError(
                f"{p}: line {line_no}: a quoted field runs on to line {reader.line_num}; a label "
                "fits on one line: is a closing quote missing?"
            )
        yield line_no, row


def _read_hypnogram(p: Path, epoch_s: float) -> list[Segment]:
    if not (epoch_s > 0 and math.isfinite(epoch_s)):
        raise DataError(f"{p}: --epoch-s must be a positive number of seconds, got {epoch_s!r}")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the hypnogram ({exc})") from None
    segments = []
    for line_no, line in enumerate(lines, start=1):
        label = line.strip()
        if not label:
            raise DataError(
                f"{p}: line {line_no}: empty epoch; a hypnogram has one label per {epoch_s:g} s "
                "epoch and every line counts (use a label such as 'unscored' for gaps)"
            )
        if "," in label or "\t" in label:
            raise DataError(
                f"{p}: line {line_no}: {label!r} holds several fields; a hypnogram has one label "
                "per line (for onset_s,duration_s,label files leave out --epoch-s)"
            )
        segments.append(Segment((line_no - 1) * epoch_s, epoch_s, label))
    if not segments:
        raise DataError(f"{p}: the hypnogram is empty")
    return segments


# NWB --------------------------------------------------------------------------------------
def _read_nwb_intervals(
    p: Path,
    intervals: str | None,
    label_column: str,
    group_column: str | None,
    recording: Recording | None,
) -> list[Segment]:
    """The rows of one TimeIntervals table, in seconds from the recording's first sample."""
    from rtdecode.offline.nwb_time import nwb_time_base, open_nwb

    with open_nwb(p) as nwbfile:
        tables = dict(nwbfile.intervals or {})
        listing = "; ".join(_describe_table(n, t) for n, t in tables.items()) or "none"
        if intervals is not None:
            if intervals not in tables:
                raise DataError(
                    f"{p}: no TimeIntervals table named {intervals!r}; the file's tables: "
                    f"{listing}; pick one with --intervals NAME"
                )
            name = intervals
        elif len(tables) == 1:
            name = next(iter(tables))
        elif not tables:
            raise DataError(
                f"{p}: the file holds no TimeIntervals table to use as labels; give the label "
                "file with --labels"
            )
        else:
            raise DataError(
                f"{p}: {len(tables)} TimeIntervals tables ({listing}); pick the one holding the "
                "labels with --intervals NAME"
            )
        table = tables[name]
        columns = [label_column] + ([group_column] if group_column else [])
        for column in columns:
            if column not in table.colnames:
                raise DataError(
                    f"{p}: table {name!r} has no column {column!r}; its columns: "
                    f"{', '.join(table.colnames)}"
                    + (
                        "; pick the label column with --label-column NAME"
                        if column == label_column
                        else ""
                    )
                )
        start = np.asarray(table["start_time"].data[:], dtype=np.float64).tolist()
        stop = np.asarray(table["stop_time"].data[:], dtype=np.float64).tolist()
        labels = _nwb_text_column(p, name, table, label_column)
        groups = _nwb_text_column(p, name, table, group_column) if group_column else None
        origin = _nwb_origin_s(p, nwb_time_base(nwbfile, p), recording)
    if not labels:
        raise DataError(f"{p}: table {name!r} has no rows")
    segments, cut = [], 0
    for i, (a, b, label) in enumerate(zip(start, stop, labels)):
        if not (math.isfinite(a) and math.isfinite(b) and b > a):
            raise DataError(
                f"{p}: table {name!r} row {i}: start_time {a:g} and stop_time {b:g} must be finite "
                "seconds with stop_time > start_time"
            )
        if not label:
            raise DataError(f"{p}: table {name!r} row {i}: empty {label_column!r}")
        onset, end = a - origin, b - origin
        if end <= 0:
            cut += 1
            continue
        cut += onset < 0
        onset = max(onset, 0.0)
        segments.append(Segment(onset, end - onset, label, groups[i] if groups else None))
    if cut:
        logger.info(
            "%s: %d label(s) of table %r start before the recording's first sample; cut there",
            p,
            cut,
            name,
        )
    if not segments:
        raise DataError(f"{p}: every label of table {name!r} ends before the recording starts")
    return segments


def _describe_table(name: str, table) -> str:
    columns = [c for c in table.colnames if c not in ("start_time", "stop_time")]
    return f"{name} ({len(table)} rows; columns {', '.join(columns) or 'none'})"


def _nwb_text_column(p: Path, table_name: str, table, column: str) -> list[str]:
    """A column's values as stripped strings; a ragged column (several values a row) refused."""
    from hdmf.common import VectorIndex

    if isinstance(table[column], VectorIndex):
        raise DataError(
            f"{p}: column {column!r} of table {table_name!r} holds several values per row (a "
            "ragged column such as tags); name a column of one value per row"
        )
    values = table[column].data[:]
    return [(v.decode("utf-8") if isinstance(v, bytes) else str(v)).strip() for v in values]


def _nwb_origin_s(p: Path, labels_base, recording: Recording | None) -> float:
    """Seconds to subtract from the labels file's times to count from the recording's first
    sample (see read_labels' Notes)."""
    from rtdecode.offline.nwb_time import nwb_time_base, open_nwb

    if (
        recording is not None
        and recording.path.suffix.lower() == ".nwb"
        and recording.path.resolve() != p.resolve()
    ):
        with open_nwb(recording.path) as recfile:
            rec_base = nwb_time_base(recfile, recording.path)
        shift = (labels_base.reference_time - rec_base.reference_time).total_seconds()
        return (rec_base.first_sample_s or 0.0) - shift
    return labels_base.first_sample_s or 0.0


# Neuralynx events -------------------------------------------------------------------------
#: A Neuralynx ``.nev`` record after the 16 kB text header, 184 bytes (as neo's NeuralynxRawIO
#: reads it: ``nev_dtype`` in ``neo/rawio/neuralynxrawio/neuralynxrawio.py``); the timestamp is
#: in microseconds of the acquisition system's clock, shared with the ``.ncs`` records.
NEV_RECORD = np.dtype(
    [
        ("nstx", "<i2"),
        ("npkt_id", "<i2"),
        ("npkt_data_size", "<i2"),
        ("timestamp", "<u8"),
        ("event_id", "<i2"),
        ("ttl", "<i2"),
        ("crc", "<i2"),
        ("dummy1", "<i2"),
        ("dummy2", "<i2"),
        ("extra", "<i4", (8,)),
        ("event_string", "S128"),
    ]
)
_NLX_HEADER_BYTES = 16384
# an .ncs record: uint64 timestamp (us, of its first sample), uint32 channel, uint32 rate,
# uint32 valid samples, int16 samples[512]
_NCS_RECORD = np.dtype(
    [
        ("timestamp", "<u8"),
        ("channel", "<u4"),
        ("fs", "<u4"),
        ("n_valid", "<u4"),
        ("samples", "<i2", (512,)),
    ]
)
# what Cheetah writes of its own accord: not labels
_CHEETAH_EVENT = re.compile(r"^((starting|stopping) (recording|acquisition)\b|ttl input)", re.I)
_CHEETAH_STOP = re.compile(r"^stopping (recording|acquisition)\b", re.I)


def _read_nev(p: Path, event_prefix: str | None, recording: Recording | None) -> list[Segment]:
    """Labels from Neuralynx event strings (see read_labels' Notes)."""
    records = _nev_records(p)
    stamps = records["timestamp"].astype(np.int64).tolist()
    texts = [raw.split(b"\0", 1)[0].decode("latin-1").strip() for raw in records["event_string"]]
    origin_us, ncs_end_us, where = _nlx_session(p, recording, stamps)
    if recording is not None:
        end_s: float | None = recording.duration_s
    elif ncs_end_us is not None:
        end_s = (ncs_end_us - origin_us) / 1e6
    else:
        end_s = None
    # (time s, label or None for a stop) of each event that starts or ends a label, in order
    marks: list[tuple[float, str | None]] = []
    for i in sorted(range(len(stamps)), key=stamps.__getitem__):
        text, t = texts[i], (stamps[i] - origin_us) / 1e6
        if _CHEETAH_STOP.match(text):
            marks.append((t, None))
        elif event_prefix is not None:
            if text.startswith(event_prefix):
                label = text[len(event_prefix) :].strip()
                if not label:
                    raise DataError(
                        f"{p}: event {i} at {t:g} s is {text!r}: no label after the prefix "
                        f"{event_prefix!r}"
                    )
                marks.append((t, label))
        elif text and not _CHEETAH_EVENT.match(text):
            marks.append((t, text))
    if not any(label is not None for _, label in marks):
        found = sorted(set(texts))
        raise DataError(
            f"{p}: no event "
            + (f"starts with {event_prefix!r}" if event_prefix is not None else "holds a label")
            + f"; the event strings: {', '.join(map(repr, found[:10]))}"
            + (" ..." if len(found) > 10 else "")
            + (
                "; pick the labels' events with --event-prefix PREFIX"
                if event_prefix is None
                else ""
            )
        )
    segments = []
    for (t, label), (t_next, _) in zip(marks, marks[1:] + [(end_s, None)]):
        if label is None:
            continue
        if t_next is None:
            logger.warning(
                "%s: the last label %r (from %g s) has no end: no stop event, no recording and no "
                ".ncs files beside it; left out",
                p,
                label,
                t,
            )
            continue
        onset = max(t, 0.0)
        if t_next > onset:
            segments.append(Segment(onset, t_next - onset, label))
    logger.info("%s: event times count from %s", p, where)
    return segments


def _nev_records(p: Path) -> np.ndarray:
    """The records of a ``.nev`` file, its header checked."""
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            magic = f.read(8)
    except OSError as exc:
        raise DataError(f"{p}: cannot read the event file ({exc})") from None
    if magic != b"########":
        raise DataError(
            f"{p}: not a Neuralynx file (its 16 kB header does not start with '########')"
        )
    body = size - _NLX_HEADER_BYTES
    if body < 0 or body % NEV_RECORD.itemsize:
        raise DataError(
            f"{p}: {size} bytes is not a 16384-byte header plus whole {NEV_RECORD.itemsize}-byte "
            "event records; the file may be truncated"
        )
    if body == 0:
        raise DataError(f"{p}: the event file holds no events")
    return np.fromfile(p, dtype=NEV_RECORD, offset=_NLX_HEADER_BYTES)


def _nlx_session(
    p: Path, recording: Recording | None, stamps: list[int]
) -> tuple[int, int | None, str]:
    """(first sample us, end of the data us or None, what they came from) of the session."""
    if recording is not None and recording.path.suffix.lower() == ".ncs":
        ncs = [recording.path]
    elif recording is not None and recording.path.is_dir():
        ncs = sorted(recording.path.glob("*.ncs"))
    else:
        ncs = sorted(p.parent.glob("*.[nN][cC][sS]"))
    spans = [span for f in ncs if (span := _ncs_span(f)) is not None]
    if not spans:
        return min(stamps), None, "the file's first event (no .ncs file beside it)"
    return (
        min(a for a, _ in spans),
        max(b for _, b in spans),
        f"the first sample of {len(spans)} .ncs file(s) in {ncs[0].parent}",
    )


def _ncs_span(path: Path) -> tuple[int, int] | None:
    """(first sample, end of the last sample) of an ``.ncs`` file in microseconds; None when
    it holds no record."""
    size = _NCS_RECORD.itemsize
    n = (path.stat().st_size - _NLX_HEADER_BYTES) // size
    if n < 1:
        return None
    first, last = (
        np.fromfile(path, dtype=_NCS_RECORD, count=1, offset=_NLX_HEADER_BYTES + k * size)[0]
        for k in (0, n - 1)
    )
    end = int(last["timestamp"])
    if last["fs"] > 0:
        end += round(1e6 * int(last["n_valid"]) / int(last["fs"]))
    return int(first["timestamp"]), end


def map_labels(segments: Sequence[Segment], mapping: dict[str, str]) -> list[Segment]:
    """Rename labels (e.g. ``{"S1": "light", "S2": "light"}``); unmapped labels stay as they are."""
    return [
        Segment(s.onset_s, s.duration_s, mapping.get(s.label, s.label), s.group) for s in segments
    ]


def check_label_map(mapping: Mapping[str, str], labels: Iterable[str]) -> None:
    """Refuse a renaming (``--map``) with a key that is no label: most often a typo (``S4`` for
    ``s4``, ``sezure``), whose windows would silently drop out of training or scoring.

    Parameters
    ----------
    mapping : mapping of str to str
        ``{label: new name}``.
    labels : iterable of str
        Every label found in the label files, before renaming.

    Raises
    ------
    DataError
        Naming each key that matches no label, the nearest label when one is close (labels
        are case-sensitive), and the labels found.
    """
    found = sorted(set(labels))
    unmatched = [key for key in mapping if key not in found]
    if not unmatched:
        return
    named = []
    for key in unmatched:
        near = [f for f in found if f.casefold() == key.casefold()]
        near = near or difflib.get_close_matches(key, found, n=1, cutoff=0.6)
        named.append(f"{key} (did you mean {near[0]}?)" if near else key)
    raise DataError(
        f"--map: no label is {', '.join(named)}; labels are case-sensitive. Labels found: "
        f"{', '.join(found)}; map only those"
    )
