"""Labels of recordings, read from files: lists of :class:`~rtdecode.offline.recordings.Segment`.

:func:`read_labels` reads a CSV of ``onset_s,duration_s,label`` (extra columns ignored), a
per-epoch hypnogram (one label per line), EDF+ annotations (a recording's own, or a file of
annotations only, such as Sleep-EDF's ``*-Hypnogram.edf``) or an XDF marker stream;
:func:`map_labels` renames labels (``--map``). Every problem with a file is a
:class:`~rtdecode.offline.recordings.DataError` whose message names the file and the line or
field, and says what to do.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from rtdecode.offline.recordings import (
    DataError,
    Recording,
    Segment,
    XdfRecording,
    read_edf_annotations,
)

__all__ = ["read_labels", "map_labels", "check_label_map"]


# Labels -----------------------------------------------------------------------------------
def read_labels(
    path: str | Path,
    *,
    recording: Recording | None = None,
    epoch_s: float | None = None,
    label_column: str = "label",
    group_column: str | None = None,
    marker_stream: str | None = None,
) -> list[Segment]:
    """Read labelled segments.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.tsv``/``.txt`` with a header holding ``onset_s``, ``duration_s`` and the
        label column; a hypnogram (one label per line, no header) when ``epoch_s`` is given;
        ``.edf``/``.bdf`` for EDF+ annotations, the recording's own or those of a file with or
        without signals (onsets count from the recording's start when both files give their
        start date and time); ``.xdf`` for a marker stream.
    recording : Recording, optional
        When given, segments must lie within it (a label beyond its end is an error).
    epoch_s : float, optional
        Epoch length of a hypnogram file.
    label_column, group_column : str
        CSV columns holding the label and, optionally, the validation group.
    marker_stream : str, optional
        XDF only: the marker stream's name or type.

    Returns
    -------
    list of Segment
        Sorted by onset; they must not overlap.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(
            f"{p}: a folder holds no labels of its own; give the recording's label file with "
            "--labels"
        )
    if not p.is_file():
        raise DataError(f"{p}: no such label file")
    if p.suffix.lower() in (".nwb", ".ncs", ".oebin", ".dat"):
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
