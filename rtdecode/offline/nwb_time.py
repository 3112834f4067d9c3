"""The time base of NWB files, for labels read from them and decisions written into them.

Every time in an NWB file counts in seconds from the file's ``timestamps_reference_time``
(by default its ``session_start_time``). rtdecode counts from a recording's first sample, which
in an NWB recording is its ``ElectricalSeries``' ``starting_time`` (or first timestamp): so a
time ``x`` of the file is ``x - first_sample_s`` in rtdecode's terms, and the other way round.

pynwb is imported only here and in the modules that read or write NWB files, so the rest of
rtdecode works without it (it comes with the ``files`` extra).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rtdecode.offline.recordings import DataError

__all__ = ["NwbTimeBase", "open_nwb", "nwb_time_base", "electrical_series"]


@dataclass(frozen=True)
class NwbTimeBase:
    """Where an NWB file's times count from, and where its recording's first sample is.

    Attributes
    ----------
    reference_time : datetime.datetime
        The file's ``timestamps_reference_time`` (timezone-aware): its time 0.
    session_start_time : datetime.datetime
    first_sample_s : float or None
        Seconds from ``reference_time`` to the first sample of the file's ``ElectricalSeries``
        (the earliest when it holds several); None when it holds none.
    series : str or None
        The name of that series.
    fs_hz : float or None
        Its sampling rate (None when it gives timestamps only).
    duration_s : float or None
        From its first sample to the end of its last.
    """

    reference_time: datetime.datetime
    session_start_time: datetime.datetime
    first_sample_s: float | None
    series: str | None
    fs_hz: float | None
    duration_s: float | None


@contextlib.contextmanager
def open_nwb(path: str | Path) -> Iterator[object]:
    """The ``NWBFile`` of ``path``, read lazily, closed on exit.

    Raises
    ------
    DataError
        pynwb is missing, or the file is missing or no readable NWB file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise DataError(
            f"{p}: reading NWB files needs pynwb (pip install 'rtdecode[files]')"
        ) from None
    try:
        io = NWBHDF5IO(str(p), mode="r")
        nwbfile = io.read()
    except Exception as exc:  # h5py's OSError, hdmf's construction errors: not a usable file
        raise DataError(f"{p}: not a readable NWB file ({type(exc).__name__}: {exc})") from None
    try:
        yield nwbfile
    finally:
        io.close()


def electrical_series(nwbfile) -> dict[str, object]:
    """Every ``ElectricalSeries`` of the file by name: acquisition first, then processing
    modules (where LFP usually is)."""
    from pynwb.ecephys import ElectricalSeries

    found: dict[str, object] = {}
    for name, obj in nwbfile.acquisition.items():
        found.update(_series_in(name, obj, ElectricalSeries))
    for module in nwbfile.processing.values():
        for name, obj in module.data_interfaces.items():
            for key, series in _series_in(name, obj, ElectricalSeries).items():
                found.setdefault(key, series)
    return found


def _series_in(name: str, obj, kind) -> dict[str, object]:
    if isinstance(obj, kind):
        return {name: obj}
    # containers such as LFP or FilteredEphys hold their series by name
    inner = getattr(obj, "electrical_series", None)
    if isinstance(inner, dict):
        return {n: s for n, s in inner.items() if isinstance(s, kind)}
    return {}


def nwb_time_base(nwbfile, path: Path, series: str | None = None) -> NwbTimeBase:
    """The time base of an open NWB file (see :class:`NwbTimeBase`).

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
    path : Path
        For messages.
    series : str, optional
        The ``ElectricalSeries`` whose first sample is time 0 of the recording (default: the
        earliest starting one: a rig's series start together, and the session's first sample is
        the one before any other).

    Raises
    ------
    DataError
        ``series`` names no ElectricalSeries of the file.
    """
    found = electrical_series(nwbfile)
    if series is not None and series not in found:
        raise DataError(
            f"{path}: no ElectricalSeries named {series!r}; the file has "
            f"{', '.join(map(repr, found)) or 'none'}"
        )
    starts = {name: _series_span(s) for name, s in found.items()}
    if series is None and starts:
        series = min(starts, key=lambda name: starts[name][0])
    first, fs_hz, duration = starts[series] if series is not None else (None, None, None)
    reference = nwbfile.timestamps_reference_time or nwbfile.session_start_time
    return NwbTimeBase(reference, nwbfile.session_start_time, first, series, fs_hz, duration)


def _series_span(series) -> tuple[float, float | None, float | None]:
    """(first sample s, rate Hz or None, duration s or None) of a TimeSeries, read lazily."""
    n = len(series.data) if series.data is not None else 0
    if series.timestamps is not None and len(series.timestamps):
        stamps = series.timestamps
        first, last = float(stamps[0]), float(stamps[len(stamps) - 1])
        # one period after the last sample, as rtdecode's recordings end
        period = (last - first) / (len(stamps) - 1) if len(stamps) > 1 else 0.0
        return first, None, last - first + period
    rate = float(series.rate) if series.rate else None
    first = float(series.starting_time or 0.0)
    return first, rate, (n / rate if rate else None)
