"""The recording abstraction every reader implements: :class:`Recording`, its errors
(:class:`DataError`), labelled :class:`Segment` s and channel selection.

Readers: :mod:`rtdecode.offline.recordings` (EDF/BDF, XDF, ``.npz``, and
:func:`~rtdecode.offline.recordings.open_recording`, which picks the reader),
:mod:`rtdecode.offline.neo_recordings` (rigs' folders through neo),
:mod:`rtdecode.offline.nwb_recordings` (NWB through pynwb).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Segment", "Recording", "select_channels"]


class DataError(ValueError):
    """A recording or label file that cannot be used; the message names the file and the place."""


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of a recording.

    Attributes
    ----------
    onset_s, duration_s : float
        Seconds from the recording's first sample.
    label : str
    group : str or None
        What the segment belongs to for validation (an event or annotation id, an animal):
        segments of one group stay on the same side of every train/validation split.
    """

    onset_s: float
    duration_s: float
    label: str
    group: str | None = None

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s


# Channel selection ------------------------------------------------------------------------
def select_channels(
    available: Sequence[str], wanted: Sequence[str | int] | None, *, where: str
) -> list[int]:
    """Indices of the wanted channels, by name or by 0-based index.

    Parameters
    ----------
    available : sequence of str
        The recording's channel names, in file order.
    wanted : sequence of str or int, or None
        Names (exact match first, then case-insensitive) or indices; strings of digits are
        indices. None selects every channel.
    where : str
        The file, for messages.
    """
    if wanted is None:
        return list(range(len(available)))
    lower = {name.lower(): i for i, name in enumerate(available)}
    picked: list[int] = []
    for item in wanted:
        if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
            idx = int(item)
            if not 0 <= idx < len(available):
                raise DataError(
                    f"{where}: channel index {idx} is out of range; the file has "
                    f"{len(available)} channels (0..{len(available) - 1})"
                )
        elif item in available:
            idx = list(available).index(item)
        elif item.lower() in lower:
            idx = lower[item.lower()]
        else:
            raise DataError(
                f"{where}: no channel named {item!r}; channels in the file: "
                f"{', '.join(available[:40])}{' ...' if len(available) > 40 else ''}"
            )
        if idx in picked:
            raise DataError(f"{where}: channel {item!r} is selected twice")
        picked.append(idx)
    if not picked:
        raise DataError(f"{where}: the channel selection is empty")
    return picked


# Recordings -------------------------------------------------------------------------------
class Recording:
    """A recording read from a file: rate, channels, units and its samples in chunks.

    Time is the recording's: seconds from its first sample. Samples are evenly spaced at
    ``fs_hz`` unless the file gives each one's timestamp (XDF) or each run's start (rigs that
    record in sections: Neuralynx, Open Ephys): then a sample's time is its timestamp's, or its
    run's start plus its place in the run, and a jump in time is a gap, as it is live (the
    windows start afresh at each sample of ``discontinuities``).

    Use :func:`open_recording`. Subclasses implement ``_read(start, stop)`` returning float32
    (stop - start, n_channels) for the selected channels.
    """

    def __init__(
        self,
        path: Path,
        fs_hz: float,
        channel_names: Sequence[str],
        units: Sequence[str],
        n_samples: int,
        *,
        times_s: np.ndarray | None = None,
        discontinuities: Sequence[int] = (),
        run_times_s: Sequence[float] | None = None,
    ) -> None:
        if not (fs_hz > 0 and math.isfinite(fs_hz)):
            raise DataError(f"{path}: sampling rate {fs_hz!r} Hz is not a positive number")
        if n_samples < 1:
            raise DataError(f"{path}: the recording holds no samples")
        if not channel_names:
            raise DataError(f"{path}: the recording holds no channels: nothing to decode")
        self.path = Path(path)
        self.fs_hz = float(fs_hz)
        self.channel_names = tuple(channel_names)
        self.units = tuple(units)
        self.n_samples = int(n_samples)
        self._times_s = times_s
        self.discontinuities = tuple(int(i) for i in discontinuities)
        # Each run's first sample and its time: a session of hours at 32 kHz has ~10^8 samples,
        # too many to hold one timestamp each (0.9 GB), and within a run the rig's clock is
        # the sample count.
        self._run_first = np.array([0, *self.discontinuities], dtype=np.int64)
        self._run_t0_s = None
        if run_times_s is not None:
            if times_s is not None or len(run_times_s) != len(self._run_first):
                raise ValueError(
                    f"run_times_s must give one time per run ({len(self._run_first)}) and "
                    "exclude times_s"
                )
            self._run_t0_s = np.asarray(run_times_s, dtype=np.float64)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def duration_s(self) -> float:
        """Seconds from the first sample to the end of the last (gaps included)."""
        return float(self.end_time_s(np.array([self.n_samples]))[0])

    def end_time_s(self, end_samples: np.ndarray) -> np.ndarray:
        """Time (s from the first sample) at which windows ending before ``end_samples`` end:
        one period after their last sample's time.

        Parameters
        ----------
        end_samples : ndarray (n,), int
            Sample counts at the windows' ends (exclusive), 1..n_samples.

        Returns
        -------
        ndarray (n,), float64
        """
        end_samples = np.asarray(end_samples, dtype=np.int64)
        if self._run_t0_s is not None:
            return self._run_times(end_samples - 1) + 1.0 / self.fs_hz
        if self._times_s is None:
            return end_samples / self.fs_hz
        return self._times_s[end_samples - 1] + 1.0 / self.fs_hz

    def times_s(self, start: int, stop: int) -> np.ndarray:
        """Time of samples ``start..stop-1``, seconds from the first sample, float64."""
        if self._run_t0_s is not None:
            return self._run_times(np.arange(start, stop, dtype=np.int64))
        if self._times_s is None:
            return np.arange(start, stop, dtype=np.float64) / self.fs_hz
        return self._times_s[start:stop].copy()

    def sample_at(self, seconds: float) -> int:
        """The first sample at or after ``seconds`` from the first sample (to the nearest
        sample; ``n_samples`` when none is)."""
        if self._run_t0_s is not None:
            run_stop = [*self._run_first[1:], self.n_samples]
            for first, stop, t0 in zip(self._run_first, run_stop, self._run_t0_s):
                # within half a period of the run's last sample: in this run (or at its end)
                offset = int(round((seconds - t0) * self.fs_hz))
                if offset < stop - first:
                    return int(first) + max(0, offset)
            return self.n_samples
        if self._times_s is None:
            return min(self.n_samples, max(0, int(round(seconds * self.fs_hz))))
        return int(np.searchsorted(self._times_s, seconds - 0.5 / self.fs_hz, side="left"))

    def _run_times(self, samples: np.ndarray) -> np.ndarray:
        """Times of the given sample indices, from their run's start."""
        run = np.searchsorted(self._run_first, samples, side="right") - 1
        return self._run_t0_s[run] + (samples - self._run_first[run]) / self.fs_hz

    def runs(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each stretch of samples with no gap inside, in order."""
        edges = [0, *self.discontinuities, self.n_samples]
        return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start..stop-1`` of the selected channels, float32 (n, n_channels)."""
        start, stop = max(0, int(start)), min(self.n_samples, int(stop))
        if stop <= start:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        return self._read(start, stop)

    def chunks(
        self, chunk_samples: int = 65536, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """Samples ``start..stop-1`` (default: all) as consecutive float32 (n, n_channels)
        chunks."""
        stop = self.n_samples if stop is None else min(stop, self.n_samples)
        for first in range(start, stop, chunk_samples):
            yield self.read(first, min(first + chunk_samples, stop))

    def annotations(self) -> list[Segment]:
        """Labels stored in the file itself (EDF+ annotations, XDF markers); empty if none."""
        return []

    def _read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, {self.n_channels} ch @ "
            f"{self.fs_hz:g} Hz, {self.duration_s:.1f} s)"
        )
