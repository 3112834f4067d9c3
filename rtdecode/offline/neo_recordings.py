"""Recordings of acquisition rigs read through python-neo's ``neo.rawio``: Neuralynx, Open Ephys
(binary and legacy), SpikeGLX, Blackrock, Intan.

neo parses each format's header and serves samples by index (``get_analogsignal_chunk``), so a
:class:`NeoRecording` reads one chunk at a time whatever the session's size. What neo leaves to
its caller is handled here:

- **which signals**: a rig writes several signal streams (amplifier, ADC, sync, LFP band); the
  recording reads the neural one (the fastest non-auxiliary stream, see :class:`NeoFormat`), or
  the one named by ``stream``. Neuralynx channels of one rate that neo puts in separate streams
  (they differ in input range or filter) are read together, as the rig sends them.
- **channel order and names**: from the header; Neuralynx channels in their names' natural
  order (CSC1, CSC2, ..., CSC10; neo lists them in file-name order, CSC1, CSC10, CSC2, ...).
- **units**: raw values times the header's gain plus its offset (as neo's
  ``rescale_signal_raw_to_float``; Neuralynx's ``-InputInverted`` is a negative gain), volts
  and millivolts in microvolts.
- **gaps**: neo splits a session into segments where the rig's timestamps jump (Neuralynx:
  dropped records; Blackrock: a packet after a pause); where neo does not, the rig's sample
  numbers split it here: Open Ephys binary's ``sample_numbers.npy`` (neo does not look at
  them), Intan's timestamps (neo reads a file whose timestamps jump as one stretch, only
  flagging it), Open Ephys legacy records' timestamps (neo fills the missing records with
  zeros). Each piece is a run of :meth:`Recording.runs`, placed at its own time, so no window
  spans a gap and labels stay at their times after it.
- **memory**: neo keeps some files memory-mapped whole (Neuralynx); the pages read stay
  resident in this process until unmapped, so they are released as reading goes on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import mmap
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtdecode.offline._records import ChannelRecords
from rtdecode.offline.recording_base import DataError, Recording, select_channels

__all__ = ["NeoFormat", "NEO_FORMATS", "NeoRecording", "to_microvolts"]

logger = logging.getLogger("rtdecode")

# Microvolts per unit for the units neo's headers give; other units are left as they are.
_MICROVOLTS_PER_UNIT = {"v": 1e6, "mv": 1e3, "uv": 1.0, "µv": 1.0, "μv": 1.0, "nv": 1e-3}

# Release the pages of neo's whole-file maps after about this many bytes read: bounded
# residency (RSS) for little work (the advice walks page tables that are mostly empty).
_RELEASE_EVERY_BYTES = 64 << 20

# Samples per block when the columns of several streams are put side by side (see _assemble).
_ASSEMBLY_SAMPLES = 2048

# Samples per record of an Open Ephys legacy .continuous file (the format's constant).
_OE_LEGACY_RECORD_SAMPLES = 1024


@dataclass(frozen=True)
class NeoFormat:
    """How one rig's files are opened with neo and which of their streams holds the signal.

    Attributes
    ----------
    name : str
        The ``--format`` value.
    title : str
        The format's name in messages.
    rawio : str
        The ``neo.rawio`` class.
    opens_folder : bool
        Whether neo takes the session's folder (``dirname``) or one file (``filename``).
    auxiliary : tuple of str
        Substrings (lower case) of the names of streams that carry no neural signal (ADC
        inputs, sync lines, the LFP band copy): left out when choosing the default stream.
    reads_rate_group : bool
        Read every default stream of the chosen rate together (Neuralynx: neo splits channels
        of one rate into streams by input range and filter).
    natural_channel_order : bool
        Order channels by their names' natural order (CSC2 before CSC10).
    apart_advice : str
        What the refusal of a session whose clock goes back (recordings made apart) says.
    """

    name: str
    title: str
    rawio: str
    opens_folder: bool
    auxiliary: tuple[str, ...] = ()
    reads_rate_group: bool = False
    natural_channel_order: bool = False
    apart_advice: str = (
        "the folder holds sessions recorded apart (the rig's clock started over); give one "
        "session's folder"
    )


NEO_FORMATS: dict[str, NeoFormat] = {
    f.name: f
    for f in (
        NeoFormat(
            "neuralynx",
            "Neuralynx",
            "NeuralynxRawIO",
            opens_folder=True,
            reads_rate_group=True,
            natural_channel_order=True,
        ),
        NeoFormat(
            "openephys",
            "Open Ephys (binary)",
            "OpenEphysBinaryRawIO",
            opens_folder=True,
            auxiliary=("adc", "sync"),
            apart_advice="the folder holds sessions recorded apart (the rig's clock started "
            "over); give one session's folder (one experiment folder)",
        ),
        # before GUI 0.6: one .continuous file per channel, CH (neural), AUX, ADC
        NeoFormat(
            "openephys-legacy",
            "Open Ephys (legacy .continuous)",
            "OpenEphysRawIO",
            opens_folder=True,
            auxiliary=("aux", "adc"),
            apart_advice="the folder holds sessions recorded apart (files ending _2, _3: the "
            "acquisition restarted, its sample numbers too); move each session's files to a "
            "folder of their own",
        ),
        # the fastest nsX (ns5/ns6 at 30 kHz) by default; another by --stream nsx2...
        NeoFormat("blackrock", "Blackrock", "BlackrockRawIO", opens_folder=False),
        # imec<k>.ap (30 kHz) by default; imec<k>.lf, the 2.5 kHz band, by --stream
        NeoFormat(
            "spikeglx",
            "SpikeGLX",
            "SpikeGLXRawIO",
            opens_folder=True,
            auxiliary=("sync", "nidq", "obx"),
        ),
        # the amplifier channels by default; the board's ADC inputs, the headstages' auxiliary
        # inputs, supply voltages, digital lines, (rhs) DC amplifier and stimulation by --stream
        NeoFormat(
            "intan",
            "Intan",
            "IntanRawIO",
            opens_folder=False,
            auxiliary=("adc", "auxiliary", "supply", "digital", "dc amplifier", "stim"),
            apart_advice="the file holds data recorded apart (its timestamps start over: files "
            "joined?); give each recording's own file",
        ),
    )
}


def to_microvolts(unit: str) -> float | None:
    """Microvolts per ``unit`` (``V``, ``mV``, ``uV``, ``µV``, ``nV``); None for another unit."""
    return _MICROVOLTS_PER_UNIT.get(unit.strip().lower())


@dataclass(frozen=True)
class _Piece:
    """Samples ``seg_start..seg_stop-1`` of one neo segment, at ``first`` in the recording."""

    block: int
    segment: int
    seg_start: int
    seg_stop: int
    first: int
    t0_s: float  # time of its first sample, seconds from the session's first sample

    @property
    def stop(self) -> int:
        return self.first + self.seg_stop - self.seg_start


@dataclass(frozen=True)
class _StreamRead:
    """The selected channels of one neo stream and where they go in the output."""

    reader: int  # in NeoRecording._readers
    stream_index: int
    # in the stream; a slice when consecutive and in order: neo then checks nothing (an array
    # costs a check per call, 70 us: 2 ms per second of 64 Neuralynx files at 32 kHz)
    channel_indexes: np.ndarray | slice
    columns: np.ndarray | slice  # in the output; a slice when consecutive and in order
    gains: np.ndarray  # float32, microvolts (or the channel's unit) per raw count
    offsets: np.ndarray | None  # float32, the same unit; None when all 0
    # uint16 words offset by 32768 counts (Intan): read as the signed counts they hold
    offset_binary: bool = False


class NeoRecording(Recording):
    """A rig's session read through ``neo.rawio``, one chunk at a time.

    Parameters
    ----------
    path : Path
        The session's folder (Neuralynx, Open Ephys) or file, as ``fmt`` takes it.
    fmt : NeoFormat
    channels : sequence of str or int, optional
        By name or 0-based index in the recording's channel order (default: all).
    stream : str, optional
        The neo signal stream's name or id (default: the neural one, see :class:`NeoFormat`).

    Notes
    -----
    Values are float32 microvolts (channels whose header gives no voltage unit keep theirs,
    in ``units``). A gap splits the session into runs; ``times_s`` gives each sample its run's
    time.
    """

    def __init__(
        self,
        path: Path,
        fmt: NeoFormat,
        channels: Sequence[str | int] | None,
        stream: str | None,
    ) -> None:
        self.format = fmt
        self._readers = _open_readers(path, fmt)
        chosen = _choose_streams(self._readers, fmt, stream, path)
        self.stream_names = tuple(dict.fromkeys(_stream_name(self._readers, c) for c in chosen))
        first_reader, first_stream = chosen[0]
        fs_hz = float(self._readers[first_reader].get_signal_sampling_rate(first_stream))

        # every channel of the chosen streams: (name, unit, (reader, stream), index in stream,
        # gain, offset, raw dtype)
        found = []
        for ri, si in chosen:
            header = self._readers[ri].header
            stream_id = header["signal_streams"][si]["id"]
            in_stream = header["signal_channels"][
                header["signal_channels"]["stream_id"] == stream_id
            ]
            found += [
                (
                    str(ch["name"]),
                    str(ch["units"]),
                    (ri, si),
                    k,
                    float(ch["gain"]),
                    float(ch["offset"]),
                    str(ch["dtype"]),
                )
                for k, ch in enumerate(in_stream)
            ]
        if fmt.natural_channel_order:
            found.sort(key=lambda c: _natural_key(c[0]))
        names = [c[0] for c in found]
        picked = [found[i] for i in select_channels(names, channels, where=str(path))]
        # Intan's amplifier words (and rhs ADC's) are offset by 32768 counts: with the sign bit
        # flipped they are the signed counts, scaled exactly in one pass with no offset to add
        # (64 ch x 32 kHz: 1.7 ms per second of data against 2.3, and 5e-4 uV of rounding)
        offset_binary = {
            key
            for key in {c[2] for c in picked}
            if all(_is_offset_binary(c[4], c[5], c[6]) for c in picked if c[2] == key)
        }
        picked = [(*c[:5], 0.0, "int16") if c[2] in offset_binary else c for c in picked]

        factors = [to_microvolts(c[1]) for c in picked]
        units = ["uV" if f is not None else c[1] for f, c in zip(factors, picked)]
        self._streams = []
        for ri, si in chosen:
            columns = [j for j, c in enumerate(picked) if c[2] == (ri, si)]
            if not columns:
                continue
            # the header's gain and offset (neo's rescale_signal_raw_to_float: Neuralynx's
            # -InputInverted is a negative gain), times the unit's microvolts
            per_unit = [factors[j] or 1.0 for j in columns]
            offsets = np.array([picked[j][5] * f for j, f in zip(columns, per_unit)])
            self._streams.append(
                _StreamRead(
                    ri,
                    si,
                    _as_slice([picked[j][3] for j in columns]),
                    _as_slice(columns),
                    np.array([picked[j][4] * f for j, f in zip(columns, per_unit)], np.float32),
                    offsets.astype(np.float32) if np.any(offsets != 0.0) else None,
                    offset_binary=(ri, si) in offset_binary,
                )
            )
        # every column's raw type, gain and offset, to scale all streams' raw values in one pass
        raw_types = {c[6] for c in picked}
        self._raw_dtype = np.dtype(raw_types.pop()) if len(raw_types) == 1 else None
        self._gains = np.array([c[4] * (f or 1.0) for c, f in zip(picked, factors)], np.float32)
        offsets_all = np.array([c[5] * (f or 1.0) for c, f in zip(picked, factors)], np.float32)
        self._offsets = offsets_all if np.any(offsets_all != 0.0) else None
        self._pieces = _pieces(self._readers, fmt, self._streams, fs_hz, path)
        self._piece_firsts = np.array([p.first for p in self._pieces], dtype=np.int64)
        # formats of one file or field per channel (Neuralynx, Intan, legacy Open Ephys):
        # each channel's records where neo mapped them, read in one compiled pass
        self._records = (
            _channel_records(self._readers, fmt, self._streams, self._pieces)
            if self._offsets is None
            else None
        )
        self._mappings = [m for reader in self._readers for m in _file_mappings(reader)]
        _release(self._mappings)  # the pages looking for gaps touched (Intan, legacy)
        self._read_since_release = 0
        n_samples = self._pieces[-1].stop if self._pieces else 0
        # a new run wherever samples are missing between two pieces
        period = 1.0 / fs_hz
        runs = [
            p
            for k, p in enumerate(self._pieces)
            if k == 0 or _is_gap(self._pieces[k - 1], p, period)
        ]
        super().__init__(
            path,
            fs_hz,
            [c[0] for c in picked],
            units,
            n_samples,
            discontinuities=[p.first for p in runs[1:]],
            run_times_s=[p.t0_s for p in runs],
        )
        if self._records is not None and not self._records_read_as_neo():
            logger.info(
                "%s: neo's maps of the records are not as expected; reading through neo", path
            )
            self._records = None

    @property
    def n_runs(self) -> int:
        return len(self.discontinuities) + 1

    def _read(self, start: int, stop: int) -> np.ndarray:
        self._read_since_release += (stop - start) * self.n_channels * 4
        if self._read_since_release >= _RELEASE_EVERY_BYTES:
            self._release_pages()
        piece = self._pieces[self._piece_at(start)]
        if self._records is None and len(self._streams) == 1 and stop <= piece.stop:
            # the common case, one stream and no gap inside: neo's array, scaled
            s = self._streams[0]
            i0 = piece.seg_start + start - piece.first
            return _scaled(self._raw(piece, s, i0, i0 + stop - start), s.gains, s.offsets)
        out = np.empty((stop - start, self.n_channels), dtype=np.float32)
        for piece, a, b in self._spans(start, stop):
            i0 = piece.seg_start + a - piece.first
            if self._records is not None:
                self._gather(piece, i0, out[a - start : b - start])
            elif self._raw_dtype is None:
                for s in self._streams:
                    raw = self._raw(piece, s, i0, i0 + b - a)
                    out[a - start : b - start, s.columns] = _scaled(raw, s.gains, s.offsets)
            else:
                # streams of one raw type (Neuralynx files when neo does not hold their records
                # as _channel_records expects): the raw columns side by side, then one scaling
                # pass, a block of samples at a time
                raws = [(s.columns, self._raw(piece, s, i0, i0 + b - a)) for s in self._streams]
                self._assemble(raws, out[a - start : b - start])
        return out

    def _records_read_as_neo(self) -> bool:
        """Whether the records give what neo's own reading gives, at both ends of the first
        and the last piece: a guard on neo's private maps, which a later neo may hold
        otherwise (a few ms at open)."""
        spans = []
        for piece in (self._pieces[0], self._pieces[-1]):
            spans += [
                (piece.first, min(piece.stop, piece.first + 1100)),
                (max(piece.first, piece.stop - 600), piece.stop),
            ]
        records, self._records = self._records, None
        try:
            want = [self._read(a, b) for a, b in spans]
        except DataError:
            return False  # reading will say so
        finally:
            self._records = records
        try:
            return all(np.array_equal(self._read(a, b), w) for (a, b), w in zip(spans, want))
        except DataError:
            return False

    def _spans(self, start: int, stop: int) -> Iterator[tuple[_Piece, int, int]]:
        """The pieces holding samples ``start..stop-1``, each with its part ``a..b-1``."""
        for piece in self._pieces[self._piece_at(start) :]:
            if piece.first >= stop:
                break
            yield piece, max(start, piece.first), min(stop, piece.stop)

    def _gather(self, piece: _Piece, i0: int, out: np.ndarray) -> None:
        """A piece's samples from ``i0`` of its segment into ``out``, from the channels'
        records (``_channel_records``)."""
        try:
            records, begin = self._records[piece]
            records.gather(self._gains, i0 - begin, out)
        except ValueError as exc:
            raise DataError(
                f"{self.path}: samples {i0}..{i0 + len(out)} of segment {piece.segment} could "
                f"not be read ({exc}); the files may be truncated"
            ) from None

    def _assemble(self, raws: list[tuple[np.ndarray | slice, np.ndarray]], out: np.ndarray) -> None:
        """Raw columns (each stream's ``(columns, raw)``) scaled into ``out`` (n, n_channels),
        ``_ASSEMBLY_SAMPLES`` samples at a time: the raw block stays in the CPU's cache between
        its columns' writes and its scaling (64 ch x 32 kHz: 3.6 ms per second of data against
        5.5 for the whole chunk at once, whose 8 MB do not stay)."""
        block = np.empty((min(_ASSEMBLY_SAMPLES, out.shape[0]), self.n_channels), self._raw_dtype)
        for k in range(0, out.shape[0], _ASSEMBLY_SAMPLES):
            m = min(_ASSEMBLY_SAMPLES, out.shape[0] - k)
            for columns, raw in raws:
                block[:m, columns] = raw[k : k + m]
            _scaled(block[:m], self._gains, self._offsets, out=out[k : k + m])

    def _piece_at(self, sample: int) -> int:
        return int(np.searchsorted(self._piece_firsts, sample, side="right")) - 1

    def _raw(self, piece: _Piece, s: _StreamRead, i0: int, i1: int) -> np.ndarray:
        """Raw samples ``i0..i1-1`` of a piece's segment, of one stream's selected channels."""
        try:
            raw = self._readers[s.reader].get_analogsignal_chunk(
                block_index=piece.block,
                seg_index=piece.segment,
                i_start=i0,
                i_stop=i1,
                stream_index=s.stream_index,
                channel_indexes=s.channel_indexes,
                # a slice (consecutive channels) reads a view of the file's rows, not a copy
                prefer_slice=True,
            )
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{self.path}: samples {i0}..{i1} of segment {piece.segment} could not be read "
                f"({exc}); the files may be truncated"
            ) from None
        if raw.shape[0] != i1 - i0:
            raise DataError(
                f"{self.path}: segment {piece.segment} gave {raw.shape[0]} samples for "
                f"{i0}..{i1}; the files may be truncated"
            )
        if s.offset_binary:
            return np.bitwise_xor(raw, np.uint16(0x8000)).view(np.int16)
        return raw

    def close(self) -> None:
        """Close the files neo keeps open (idempotent); reading afterwards reopens some."""
        for reader in self._readers:
            for f in _attributes_of_type(reader, io.IOBase):
                f.close()

    def __del__(self) -> None:
        # neo's Blackrock reader opens its .nsX on demand and never closes it
        with contextlib.suppress(Exception):
            self.close()

    def _release_pages(self) -> None:
        # neo's whole-file maps keep every page read resident (counted in this process's
        # memory) until unmapped: 15 GB after an hour of 64 ch at 32 kHz
        self._read_since_release = 0
        _release(self._mappings)


def _open_readers(path: Path, fmt: NeoFormat) -> list:
    """The parsed ``neo.rawio`` readers of ``path``: one, or one per ``.ncs`` file of a
    Neuralynx folder, each with its pages released once parsed.

    neo's Neuralynx parser sums every record's valid-sample count through its maps of the
    files, which leaves them all resident: 15 GB at once for an hour of 64 ch at 32 kHz. One
    reader per file holds one file's pages at a time.
    """
    try:
        import neo.rawio
    except ImportError:
        raise DataError(
            f"{path}: reading {fmt.title} needs python-neo (pip install 'neo>=0.14', or "
            "rtdecode's 'files' extra)"
        ) from None
    cls = getattr(neo.rawio, fmt.rawio)
    if fmt.name == "openephys-legacy":
        # neo says a legacy session with missing records "will be slow" to read: its own
        # reading is; rtdecode reads each run of records directly (_channel_records)
        logging.getLogger(f"{cls.__module__}.{cls.__name__}").addFilter(_not_slow_gap_note)
    targets = [path]
    if fmt.name == "neuralynx" and path.is_dir():
        targets = sorted(
            (f for f in path.iterdir() if f.suffix.lower() == ".ncs" and f.stat().st_size > 16384),
            key=lambda f: _natural_key(f.name),
        ) or [path]
    readers = []
    for target in targets:
        try:
            with warnings.catch_warnings():
                # neo warns about things it then handles (missing optional files, old versions)
                warnings.simplefilter("ignore")
                reader = cls(**_reader_options(target, fmt))
                reader.parse_header()
        except DataError:
            raise
        except Exception as exc:  # neo raises ValueError, OSError, KeyError, AssertionError...
            raise DataError(
                f"{target}: not a readable {fmt.title} recording ({type(exc).__name__}: "
                f"{_first_line(exc)})"
            ) from None
        if reader.header["signal_streams"].size == 0:
            raise DataError(f"{target}: the {fmt.title} recording holds no continuous signals")
        _release(_file_mappings(reader))
        readers.append(reader)
    return readers


def _not_slow_gap_note(record: logging.LogRecord) -> bool:
    return "the read will be slow" not in record.getMessage()


def _channel_records(
    readers: list, fmt: NeoFormat, streams: list[_StreamRead], pieces: list[_Piece]
) -> dict[_Piece, tuple[ChannelRecords, int]] | None:
    """Each piece's records of every output column, in column order, for ``ChannelRecords``,
    with the segment's sample at which they begin; None when the format stores no records per
    channel, or neo does not hold them as this expects (then ``get_analogsignal_chunk`` reads
    them, copied, three times slower).

    The records are neo's own maps of the files, read as neo reads them (sample ``i`` of a
    segment is ``records.flatten()[i]``): Neuralynx ``_sigs_memmaps[segment][(name, id)]``
    (records of 512 int16), Intan ``_raw_data[id]`` (data blocks of 60 or 128 uint16 words,
    offset binary), legacy Open Ephys ``_sigs_memmap[segment][channel]`` (records of 1024
    big-endian int16). Where legacy records are missing, neo fills them in its own reading, so
    sample ``i`` of a segment is in the record stamped ``i`` after the first: each piece (a run
    of records with none missing) then reads its own records.
    """
    raw = {"neuralynx": "int16", "intan": "offset_binary", "openephys-legacy": "int16_be"}.get(
        fmt.name
    )
    if raw is None or (raw == "offset_binary") != all(s.offset_binary for s in streams):
        return None
    if any(p.block != 0 for p in pieces):  # records are kept per segment of block 0
        return None
    by_column: dict[int, tuple[object, int, tuple[str, str, int]]] = {}
    for s in streams:
        header = readers[s.reader].header
        stream_id = header["signal_streams"][s.stream_index]["id"]
        (in_stream,) = np.nonzero(header["signal_channels"]["stream_id"] == stream_id)
        picked = in_stream[s.channel_indexes]
        if isinstance(s.columns, slice):
            columns = range(s.columns.start, s.columns.stop)
        else:
            columns = [int(c) for c in s.columns]
        if len(columns) != len(picked):
            return None
        for column, index in zip(columns, picked):
            channel = header["signal_channels"][index]
            key = (str(channel["name"]), str(channel["id"]), int(index))
            by_column[column] = (readers[s.reader], s.stream_index, key)
    if sorted(by_column) != list(range(len(by_column))):
        return None
    records: dict[_Piece, tuple[ChannelRecords, int]] = {}
    for segment in sorted({p.segment for p in pieces}):
        arrays = [
            _records_of(reader, fmt.name, segment, key)
            for reader, _, key in (by_column[c] for c in range(len(by_column)))
        ]
        if any(a is None for a in arrays):
            return None
        in_segment = [p for p in pieces if p.segment == segment]
        stamps = _legacy_gap_stamps(fmt, segment, by_column[0])
        try:
            if stamps is None:
                whole = ChannelRecords(arrays, raw=raw)
                records.update((p, (whole, 0)) for p in in_segment)
                continue
            for p in in_segment:
                span = _record_span(stamps, p.seg_start, p.seg_stop, _OE_LEGACY_RECORD_SAMPLES)
                if span is None:  # neo's gap note is filtered: say it here, where it holds
                    logger.info(
                        "%s: records not where their timestamps say; reading through neo, "
                        "record by record (slower)",
                        by_column[0][0].source_name(),
                    )
                    return None
                a, b = span
                records[p] = (ChannelRecords([x[a:b] for x in arrays], raw=raw), p.seg_start)
        except ValueError:
            return None
    return records


def _legacy_gap_stamps(fmt: NeoFormat, segment: int, first_column) -> np.ndarray | None:
    """The records' timestamps of a legacy Open Ephys segment read in neo's gap mode (the
    first column's: ``_oe_legacy_splits`` refused channels that lost different records);
    None for every other case."""
    reader, _, (_, _, index) = first_column
    if fmt.name != "openephys-legacy" or not getattr(reader, "_gap_mode", False):
        return None
    return np.asarray(reader._sigs_memmap[segment][index]["timestamp"], dtype=np.int64)


def _record_span(
    stamps: np.ndarray, seg_start: int, seg_stop: int, record_samples: int
) -> tuple[int, int] | None:
    """Records ``a..b-1`` holding samples ``seg_start..seg_stop-1`` of a segment whose sample
    ``i`` is stamped ``stamps[0] + i``; None unless a record begins at ``seg_start`` and the
    records up to ``seg_stop`` follow one another with none missing."""
    offsets = stamps - stamps[0]
    a = int(np.searchsorted(offsets, seg_start))
    b = a + -(-(seg_stop - seg_start) // record_samples)
    if a >= offsets.size or offsets[a] != seg_start or b > offsets.size:
        return None
    if not np.all(np.diff(offsets[a:b]) == record_samples):
        return None
    return a, b


def _records_of(reader, fmt_name: str, segment: int, key: tuple[str, str, int]):
    """One channel's records in neo's maps (see ``_channel_records``), or None."""
    name, channel_id, index = key
    try:
        if fmt_name == "neuralynx":
            array = reader._sigs_memmaps[segment][(name, channel_id)]["samples"]
        elif fmt_name == "intan":
            if reader.file_format != "header-attached" or segment != 0:
                return None
            array = reader._raw_data[channel_id]
        else:
            array = reader._sigs_memmap[segment][index]["samples"]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.strides[1] != 2:
        return None
    expected = {"neuralynx": "<i2", "intan": "<u2", "openephys-legacy": ">i2"}[fmt_name]
    return array if array.dtype == np.dtype(expected) else None


def _release(mappings: list[mmap.mmap]) -> None:
    """Drop the pages of memory maps from this process (the page cache keeps them; a later
    read maps them again)."""
    for mapping in mappings:
        with contextlib.suppress(ValueError, OSError):  # closed, or no madvise (not Linux)
            mapping.madvise(mmap.MADV_DONTNEED)


def _reader_options(path: Path, fmt: NeoFormat) -> dict:
    if fmt.name == "neuralynx":
        folder = path if path.is_dir() else path.parent
        # Any record that starts later than its predecessor's samples account for is a gap (a
        # record dropped): the rig's clock counts samples, so half a period is no jitter.
        # neo's default refuses a session with gaps.
        options = {"dirname": str(folder), "gap_tolerance_ms": 0.5e3 / _ncs_rate(path)}
        if path.is_file():
            options["include_filenames"] = [path.name]
        else:
            # only the continuous signals: spikes and events are no input to the decoder
            options["exclude_filenames"] = [
                p.name for p in folder.iterdir() if p.suffix.lower() in (".nev", ".nse", ".ntt")
            ]
        return options
    if fmt.name == "blackrock":
        # the continuous .nsX files beside it; the .nev (spikes, events) is no decoder input
        return {"filename": str(path), "load_nev": False}
    if fmt.name == "intan":
        _check_intan_suffix(path)
        # a file whose timestamps jump is read, its gaps found here (neo refuses it otherwise)
        return {"filename": str(path), "ignore_integrity_checks": True}
    return {"dirname": str(path)} if fmt.opens_folder else {"filename": str(path)}


def _check_intan_suffix(path: Path) -> None:
    """neo reads an Intan file as the kind its suffix says: refuse one whose magic number says
    the other kind, or that has neither suffix."""
    with open(path, "rb") as f:
        magic = f.read(4)
    kind = {0xC6912702: ".rhd", 0xD69127AC: ".rhs"}.get(int.from_bytes(magic, "little"))
    if path.suffix.lower() != kind or path.suffix != path.suffix.lower():
        said = f"its first bytes say {kind}" if kind else "its first bytes are no Intan header"
        raise DataError(
            f"{path}: neo reads an Intan file by its suffix (.rhd or .rhs, lower case) and "
            f"{said}; rename it"
        )


def _ncs_rate(path: Path) -> float:
    """The sampling rate in the header of a session's first ``.ncs`` file (32000 if none)."""
    files = [path] if path.is_file() else sorted(path.glob("*.[nN][cC][sS]"))
    for f in files:
        if f.stat().st_size <= 16384:
            continue  # header only: neo skips it too
        with open(f, "rb") as fh:
            text = fh.read(16384).decode("latin-1", "replace")
        match = re.search(r"-SamplingFrequency\s+([0-9.eE+-]+)", text)
        if match:
            with contextlib.suppress(ValueError):
                rate = float(match.group(1))
                if rate > 0:
                    return rate
    return 32000.0


def _stream_name(readers: list, chosen: tuple[int, int]) -> str:
    reader, stream = chosen
    return str(readers[reader].header["signal_streams"][stream]["name"])


def _choose_streams(
    readers: list, fmt: NeoFormat, wanted: str | None, path: Path
) -> list[tuple[int, int]]:
    """``(reader, stream)`` of the neo streams to read: ``wanted`` (by name or id), else the
    neural ones."""
    candidates = []  # (reader, stream, name, id, rate, channels)
    for ri, reader in enumerate(readers):
        streams = reader.header["signal_streams"]
        for si in range(streams.size):
            rate = float(reader.get_signal_sampling_rate(si))
            n_ch = reader.signal_channels_count(si)
            candidates.append(
                (ri, si, str(streams[si]["name"]), str(streams[si]["id"]), rate, n_ch)
            )
    totals: dict[tuple[str, float], int] = {}
    for c in candidates:
        totals[(c[2], c[4])] = totals.get((c[2], c[4]), 0) + c[5]
    listing = ", ".join(f"{name!r} ({n} ch, {rate:g} Hz)" for (name, rate), n in totals.items())
    if wanted is not None:
        matches = [
            c for c in candidates if wanted == c[2] or (len(readers) == 1 and wanted == c[3])
        ]
        if not matches or (len(matches) > 1 and not fmt.reads_rate_group):
            raise DataError(
                f"{path}: {len(matches) or 'no'} signal stream{'s' * (len(matches) > 1)} "
                f"named {wanted!r}; the "
                f"{fmt.title} recording's streams: {listing}"
            )
        return [(c[0], c[1]) for c in matches]
    neural = [c for c in candidates if not any(a in c[2].lower() for a in fmt.auxiliary)]
    neural = neural or candidates
    top = max(c[4] for c in neural)
    fastest = [c for c in neural if c[4] == top]
    if len(fastest) == 1 or fmt.reads_rate_group:
        return [(c[0], c[1]) for c in fastest]
    raise DataError(
        f"{path}: {len(fastest)} signal streams at {top:g} Hz ({listing}); pick one with --stream"
    )


def _pieces(
    readers: list, fmt: NeoFormat, streams: list[_StreamRead], fs_hz: float, path: Path
) -> list[_Piece]:
    """The session's stretches of consecutive samples, in time order, with their times; every
    stream read must have the first one's segments."""
    chosen = [(s.reader, s.stream_index) for s in streams]
    reader, stream = readers[chosen[0][0]], chosen[0][1]
    structure = _segment_sizes(reader, stream)
    for ri, si in chosen[1:]:
        other = _segment_sizes(readers[ri], si)
        if other != structure:
            raise DataError(
                f"{path}: the signals read together are not recorded alike: "
                f"{_stream_source(readers, chosen[0])} has segments of {_sizes_text(structure)}"
                f" samples, {_stream_source(readers, (ri, si))} {_sizes_text(other)} (records "
                "missing from some files only?); pick one with --channels or --stream"
            )
    pieces: list[_Piece] = []
    first = 0
    origin = None
    for (block, segment), size in structure.items():
        if size == 0:
            continue
        t_start = float(reader.get_signal_t_start(block, segment, stream))
        for seg_start, seg_stop, offset_s in _splits(
            reader, fmt, block, segment, streams[0], size, fs_hz
        ):
            if origin is None:
                origin = t_start + offset_s
            piece = _Piece(block, segment, seg_start, seg_stop, first, t_start + offset_s - origin)
            if pieces:
                previous = pieces[-1]
                end = previous.t0_s + (previous.stop - previous.first) / fs_hz
                if piece.t0_s < end - 0.5 / fs_hz:
                    raise DataError(
                        f"{path}: time goes back {end - piece.t0_s:.6f} s at sample {first} "
                        f"(block {block}, segment {segment}): {fmt.apart_advice}"
                    )
            pieces.append(piece)
            first = piece.stop
    if not pieces:
        raise DataError(f"{path}: the {fmt.title} recording holds no samples")
    return pieces


def _segment_sizes(reader, stream: int) -> dict[tuple[int, int], int]:
    """Samples of a stream in each (block, segment)."""
    return {
        (block, segment): int(reader.get_signal_size(block, segment, stream))
        for block in range(reader.block_count())
        for segment in range(reader.segment_count(block))
    }


def _sizes_text(sizes: dict) -> str:
    values = list(sizes.values())
    return ", ".join(map(str, values[:6])) + (" ..." if len(values) > 6 else "")


def _stream_source(readers: list, chosen: tuple[int, int]) -> str:
    reader = readers[chosen[0]]
    source = getattr(reader, "include_filenames", None) or [reader.source_name()]
    return f"{Path(str(source[0])).name} ({_stream_name(readers, chosen)})"


def _splits(
    reader, fmt: NeoFormat, block: int, segment: int, read: _StreamRead, size: int, fs_hz: float
) -> list[tuple[int, int, float]]:
    """``(start, stop, seconds from the segment's start)`` of each stretch of a segment with
    no sample missing, from the rig's sample numbers where neo does not split at a gap."""
    stream_index = read.stream_index
    if fmt.name == "openephys":
        numbers_path = _oe_sample_numbers_path(reader, block, segment, stream_index)
        if numbers_path is not None:
            return _sample_number_splits(numbers_path, size, fs_hz)
    elif fmt.name == "intan":
        return _intan_splits(reader, stream_index, size, fs_hz)
    elif fmt.name == "openephys-legacy":
        return _oe_legacy_splits(reader, segment, read, size, fs_hz)
    return [(0, size, 0.0)]


def _oe_sample_numbers_path(reader, block: int, segment: int, stream_index: int) -> Path | None:
    """The ``sample_numbers.npy`` (``timestamps.npy`` before Open Ephys 0.6, which held
    sample numbers) beside a stream's ``continuous.dat``."""
    buffer_id = str(reader.header["signal_streams"][stream_index]["buffer_id"])
    try:
        description = reader.get_analogsignal_buffer_description(block, segment, buffer_id)
    except Exception:  # a neo without the buffer API: no gap check
        return None
    folder = Path(description["file_path"]).parent
    for name in ("sample_numbers.npy", "timestamps.npy"):
        if (folder / name).is_file():
            return folder / name
    return None


def _sample_number_splits(
    path: Path, size: int, fs_hz: float, *, block: int = 1 << 20
) -> list[tuple[int, int, float]]:
    """Stretches of consecutive sample numbers in an ``.npy`` of integers, with the time of
    each one's first sample from the first one's; read in blocks (an hour at 30 kHz is 0.9 GB
    of int64)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.kind not in "iu" or len(shape) != 1 or shape[0] == 0:
                return [(0, size, 0.0)]  # 0.6's timestamps.npy holds seconds, not numbers
            n = min(shape[0], size)
            if shape[0] != size:
                logger.warning(
                    "%s holds %d sample numbers for %d samples; gaps are looked for in the "
                    "first %d",
                    path,
                    shape[0],
                    size,
                    n,
                )
            starts, numbers = _runs_of_numbers(
                np.fromfile(f, dtype=dtype, count=min(block, n - offset))
                for offset in range(0, n, block)
            )
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable array of sample numbers ({exc})") from None
    return _run_splits(starts, numbers, size, fs_hz)


def _intan_splits(
    reader, stream_index: int, size: int, fs_hz: float, *, block: int = 1 << 20
) -> list[tuple[int, int, float]]:
    """Stretches of an Intan file's consecutive timestamps (the controller's sample counter:
    a jump is data the board lost), in the samples of one stream."""
    if not getattr(reader, "discontinuous_timestamps", False):
        return [(0, size, 0.0)]  # neo found them consecutive while parsing
    # neo's copy of every timestamp (int32: 0.43 GB for an hour at 30 kHz), as its own check
    stamps = reader.get_intan_timestamps()
    starts, numbers = _runs_of_numbers(stamps[i : i + block] for i in range(0, stamps.size, block))
    # slower streams (auxiliary inputs, supply voltages) have a sample every `per_sample`
    # timestamps; gaps fall between data blocks, where both counts are whole
    per_sample = max(1, round(stamps.size / size))
    return _run_splits([a // per_sample for a in starts], numbers, size, fs_hz * per_sample)


def _oe_legacy_splits(
    reader, segment: int, read: _StreamRead, size: int, fs_hz: float
) -> list[tuple[int, int, float]]:
    """Stretches of an Open Ephys legacy segment holding recorded samples: neo fills the
    records missing between two (a record's timestamp beyond its predecessor's end) with zeros
    and counts them in the segment's samples."""
    # neo keeps the records (and whether any is missing) to itself: its attributes of 0.14
    records_by_channel = getattr(reader, "_sigs_memmap", {}).get(segment)
    if records_by_channel is None or not hasattr(reader, "_gap_mode"):
        logger.warning(
            "%s: this neo version does not show the records' timestamps; samples missing "
            "between records, if any, are read as the zeros neo fills them with",
            reader.source_name(),
        )
        return [(0, size, 0.0)]
    if not reader._gap_mode:
        return [(0, size, 0.0)]  # neo found every record where its predecessor ends
    channels = reader.header["signal_channels"]
    stream_id = reader.header["signal_streams"][read.stream_index]["id"]
    # neo's channel indexes (its records' keys) of the channels read
    selected = np.flatnonzero(channels["stream_id"] == stream_id)[read.channel_indexes]
    stamps = np.asarray(records_by_channel[int(selected[0])]["timestamp"])
    for k in selected[1:]:
        if not np.array_equal(records_by_channel[int(k)]["timestamp"], stamps):
            raise DataError(
                f"{reader.source_name()}: {channels['name'][selected[0]]} and "
                f"{channels['name'][k]} lost different records (their records' timestamps "
                "differ); pick channels recorded alike with --channels"
            )
    starts, numbers = _runs_of_numbers([stamps], step=_OE_LEGACY_RECORD_SAMPLES)
    stops = [*starts[1:], stamps.size]
    # the segment's sample 0 is its first record's timestamp
    first = round(reader.get_signal_t_start(0, segment, read.stream_index) * fs_hz)
    splits = []
    for a, b, number in zip(starts, stops, numbers):
        start, stop = (
            max(0, number - first),
            min(size, number - first + (b - a) * _OE_LEGACY_RECORD_SAMPLES),
        )
        if stop > start:
            splits.append((start, stop, start / fs_hz))
    return splits


def _runs_of_numbers(blocks, step: int = 1) -> tuple[list[int], list[int]]:
    """Index and value of the first number of each run of numbers going up by ``step``, in an
    array of integers given as consecutive blocks."""
    starts: list[int] = []
    first_numbers: list[int] = []
    offset, previous = 0, None
    for numbers in blocks:
        numbers = np.asarray(numbers).astype(np.int64)
        if numbers.size == 0:
            continue
        if previous is None:
            starts.append(0)
            first_numbers.append(int(numbers[0]))
            previous = int(numbers[0]) - step
        steps = np.diff(numbers, prepend=previous)
        for k in np.flatnonzero(steps != step):
            starts.append(offset + int(k))
            first_numbers.append(int(numbers[k]))
        previous = int(numbers[-1])
        offset += numbers.size
    return starts, first_numbers


def _run_splits(
    starts: list[int], numbers: list[int], size: int, numbers_per_s: float
) -> list[tuple[int, int, float]]:
    """Splits from each run's first sample and first number; the last run ends at ``size``."""
    if not numbers:
        return [(0, size, 0.0)]
    stops = [*starts[1:], size]
    return [
        (a, b, (number - numbers[0]) / numbers_per_s)
        for a, b, number in zip(starts, stops, numbers)
    ]


def _is_gap(before: _Piece, after: _Piece, period_s: float) -> bool:
    """Whether samples are missing between two consecutive pieces (more than half a period
    between the first's last sample and the second's first, beyond one period)."""
    last_s = before.t0_s + (before.stop - before.first - 1) * period_s
    return after.t0_s - last_s > 1.5 * period_s


def _file_mappings(reader) -> list[mmap.mmap]:
    """The memory maps of the files a neo reader holds open (np.memmap's ``_mmap``), found in
    its attributes, so their pages can be released."""
    found = {}
    for array in _attributes_of_type(reader, np.memmap):
        mapping = getattr(array, "_mmap", None)
        if isinstance(mapping, mmap.mmap):
            found[id(mapping)] = mapping
    return list(found.values())


def _attributes_of_type(obj, kind: type, depth: int = 5) -> list:
    """Objects of ``kind`` among an object's attributes, in dicts, lists and tuples, ``depth``
    levels down."""
    found = []

    def visit(value, level: int) -> None:
        if isinstance(value, kind):
            found.append(value)
        elif level < depth and isinstance(value, dict):
            for item in value.values():
                visit(item, level + 1)
        elif level < depth and isinstance(value, (list, tuple)):
            for item in value:
                visit(item, level + 1)

    visit(vars(obj), 0)
    return found


def _scaled(
    raw: np.ndarray, gains: np.ndarray, offsets: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    """Raw values in microvolts: what neo's rescale_signal_raw_to_float does, in one float32
    pass (neo casts, then multiplies by float64 gains: 3.5 ms per second of 64 ch x 32 kHz,
    against 1.1 here)."""
    values = np.multiply(raw, gains, out=out, dtype=np.float32)
    if offsets is not None:
        values += offsets
    return values


def _is_offset_binary(gain: float, offset: float, raw_dtype: str) -> bool:
    """Whether a channel's raw values are uint16 words offset by 32768 counts."""
    return raw_dtype == "uint16" and gain != 0.0 and math.isclose(offset, -32768 * gain)


def _as_slice(columns: list[int]) -> np.ndarray | slice:
    """Column indexes as a slice when consecutive and in order (a view), else an array."""
    if columns == list(range(columns[0], columns[0] + len(columns))):
        return slice(columns[0], columns[0] + len(columns))
    return np.array(columns, dtype=np.int64)


def _natural_key(name: str) -> list:
    """Sort key putting CSC2 before CSC10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no detail"
