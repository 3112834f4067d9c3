"""NWB recordings read through pynwb: one ``ElectricalSeries``, one chunk at a time.

pynwb opens the HDF5 file lazily: ``series.data[start:stop]`` reads only those rows, so memory is
bounded by the chunk whatever the file's size. neo's own NWB reader could not read an
ElectricalSeries that pynwb 4.2 writes, hence pynwb here.

NWB stores raw values with ``conversion`` (volts per unit), an optional ``channel_conversion``
per channel and an ``offset`` (volts): volts = data x channel_conversion x conversion + offset;
rtdecode gives microvolts. Channel names come from the electrodes table's ``channel_name`` or
``label`` column (NeuroConv and SpikeInterface write the first), else ``ch000``, ``ch001``...
A series with ``timestamps`` instead of a ``rate`` has its rate from them, and a jump in them
is a gap (no window spans it).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rtdecode.common.channels import default_channel_labels
from rtdecode.offline.recording_base import DataError, Recording, select_channels

__all__ = ["NwbRecording", "NAME_COLUMNS"]

NAME_COLUMNS = ("channel_name", "label")
"""Electrodes-table columns holding channel names, in order of preference."""

# Timestamps read per block when looking for gaps (8 MB of float64).
_TIMESTAMP_BLOCK = 1 << 20


class NwbRecording(Recording):
    """One ``ElectricalSeries`` of an NWB file, read in chunks through pynwb.

    Parameters
    ----------
    path : Path
    channels : sequence of str or int, optional
        By name or 0-based index among the series' channels (default: all).
    series : str, optional
        The series' name, needed when the file holds several (acquisition or processing).
    """

    def __init__(
        self, path: Path, channels: Sequence[str | int] | None, series: str | None
    ) -> None:
        self._io, nwbfile = _open(path)
        chosen = _choose_series(path, nwbfile, series)
        self.series_name = chosen.name
        data = chosen.data
        if data.ndim not in (1, 2) or data.shape[0] == 0:
            raise DataError(
                f"{path}: ElectricalSeries {chosen.name!r} has data of shape {data.shape}; "
                "rtdecode reads (samples, channels) with at least one sample"
            )
        n_all = 1 if data.ndim == 1 else data.shape[1]
        names = _channel_names(chosen, n_all)
        picked = select_channels(names, channels, where=f"{path} series {chosen.name!r}")
        self._data = data
        self._columns = np.array(picked, dtype=np.int64)
        # every picked channel's microvolts per stored unit, and the offset in microvolts
        per_channel = np.ones(n_all)
        if chosen.channel_conversion is not None:
            per_channel = np.asarray(chosen.channel_conversion[:], dtype=np.float64)
        self._scale = (per_channel[picked] * float(chosen.conversion) * 1e6).astype(np.float32)
        self._offset = np.float32(float(getattr(chosen, "offset", 0.0) or 0.0) * 1e6)
        where = f"{path} series {chosen.name!r}"
        if chosen.timestamps is not None:
            fs_hz, starts, times = _timestamp_runs(chosen.timestamps, where)
        else:
            fs_hz, starts, times = float(chosen.rate), [0], [0.0]
        super().__init__(
            path,
            fs_hz,
            [names[i] for i in picked],
            ["uV"] * len(picked),
            int(data.shape[0]),
            discontinuities=starts[1:],
            run_times_s=times,
        )

    def _read(self, start: int, stop: int) -> np.ndarray:
        try:
            raw = self._data[start:stop]
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{self.path}: samples {start}..{stop} of {self.series_name!r} could not be read "
                f"({exc}); the file may be truncated"
            ) from None
        if raw.ndim == 1:
            raw = raw[:, None]
        if self._columns.size != raw.shape[1] or np.any(self._columns != np.arange(raw.shape[1])):
            raw = raw[:, self._columns]
        out = raw.astype(np.float32)
        out *= self._scale
        if self._offset:
            out += self._offset
        return out


def _open(path: Path):
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise DataError(
            f"{path}: reading NWB needs pynwb (pip install 'pynwb>=2.8', or rtdecode's 'files' "
            "extra)"
        ) from None
    try:
        with warnings.catch_warnings():
            # pynwb warns about namespace versions and optional fields it then handles
            warnings.simplefilter("ignore")
            io = NWBHDF5IO(str(path), "r", load_namespaces=True)
            return io, io.read()
    except Exception as exc:  # h5py OSError, hdmf's construct errors, ...
        first = str(exc).strip().splitlines()
        raise DataError(
            f"{path}: not a readable NWB file ({type(exc).__name__}: "
            f"{first[0] if first else 'no detail'})"
        ) from None


def _choose_series(path: Path, nwbfile, wanted: str | None):
    from pynwb.ecephys import ElectricalSeries

    found = [o for o in nwbfile.objects.values() if isinstance(o, ElectricalSeries)]
    found.sort(key=lambda s: (s.parent is not nwbfile, s.name))  # acquisition first

    def describe(s) -> str:
        where = "acquisition" if s.parent is nwbfile else f"in {s.parent.name!r}"
        shape = s.data.shape
        return f"{s.name!r} ({where}, {shape[1] if len(shape) > 1 else 1} ch)"

    if not found:
        raise DataError(f"{path}: the NWB file holds no ElectricalSeries: no signal to decode")
    matches = found if wanted is None else [s for s in found if s.name == wanted]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(describe(s) for s in found)
    if wanted is None:
        raise DataError(
            f"{path}: {len(found)} ElectricalSeries ({listing}); pick one with --stream NAME"
        )
    raise DataError(
        f"{path}: {'no' if not matches else len(matches)} ElectricalSeries named {wanted!r}; "
        f"the file's: {listing}"
    )


def _channel_names(series, n: int) -> list[str]:
    table = series.electrodes.table
    rows = np.asarray(series.electrodes.data[:], dtype=np.int64)
    for column in NAME_COLUMNS:
        if column in table.colnames and rows.size == n:
            values = table[column].data[:]
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in values[rows]]
            if all(names):
                return names
    return list(default_channel_labels(n))


def _timestamp_runs(timestamps, where: str) -> tuple[float, list[int], list[float]]:
    """Rate, each run's first sample and its time (s from the first sample), from a series'
    timestamps read in blocks: a step beyond 1.5 periods is a gap."""
    n = timestamps.shape[0]
    head = np.asarray(timestamps[: min(n, 10001)], dtype=np.float64)
    steps = np.diff(head)
    if steps.size == 0 or not np.median(steps) > 0:
        raise DataError(f"{where}: its timestamps give no sampling rate")
    period = float(np.median(steps))
    t0 = float(head[0])
    starts, times = [0], [0.0]
    previous = t0 - period
    for offset in range(0, n, _TIMESTAMP_BLOCK):
        block = np.asarray(timestamps[offset : offset + _TIMESTAMP_BLOCK], dtype=np.float64)
        steps = np.diff(block, prepend=previous)
        back = np.flatnonzero(steps <= 0)
        if back.size:
            k = offset + int(back[0])
            raise DataError(
                f"{where}: the timestamps go back at sample {k}; times after it cannot be "
                "matched with labels"
            )
        for k in np.flatnonzero(steps > 1.5 * period):
            starts.append(offset + int(k))
            times.append(float(block[k]) - t0)
        previous = float(block[-1])
    return 1.0 / period, starts, times
