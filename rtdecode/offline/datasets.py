"""Labelled feature tables from recordings: the live feature code, fed chunk by chunk.

Each recording is read in chunks and pushed through :class:`rtdecode.features.streaming.StreamingFeatures`
(the class the live decoder uses), so memory is bounded by the chunk size and the features are
exactly those the decoder will compute. A window gets a label only if one labelled segment
covers it entirely; windows straddling a change (or outside every segment) get ``-1`` and are
left out of training, but are kept so that evaluation can replay every decision in order.

With several recordings, extraction runs in parallel with Dask (a local cluster by default, or a
scheduler address).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtdecode.config import FeatureConfig
from rtdecode.features.quality import QualityConfig
from rtdecode.features.streaming import StreamingFeatures, one_blas_thread
from rtdecode.offline.recordings import DataError, Segment, open_recording

__all__ = [
    "Source",
    "RecordingFeatures",
    "window_labels",
    "windows_per_label",
    "windows_text",
    "whole_sample_hop",
    "recording_features",
    "extract_sources",
]

logger = logging.getLogger("rtdecode")


@dataclass(frozen=True)
class Source:
    """One recording to learn from and where its labels are.

    Attributes
    ----------
    data : Path
    labels : list of Segment
        Already read (and mapped) labels of this recording.
    channels : tuple of str or int, optional
    stream : str, optional
        Which signal when the recording holds several (XDF stream, NWB series, neo stream).
    file_format : str, optional
        The recording's format (default: recognised from its content).
    merge_touching : bool
        See :func:`window_labels`.
    """

    data: Path
    labels: tuple[Segment, ...]
    channels: tuple[str | int, ...] | None = None
    stream: str | None = None
    file_format: str | None = None
    merge_touching: bool = True


@dataclass
class RecordingFeatures:
    """Feature rows of one recording, in time order.

    Attributes
    ----------
    path : Path
    end_s : ndarray (n,), float64
        Time of each window's end (exclusive), seconds from the recording's first sample (by
        the samples' timestamps when the file has them).
    X : ndarray (n, n_features), float32
    y : ndarray (n,), int64
        Class index of the window, -1 when no single labelled segment covers it.
    groups : ndarray (n,), object
        The covering segment's group (or None).
    channel_names : tuple of str
    fs_hz, duration_s, seconds : float
        ``seconds``: wall time the extraction took.
    """

    path: Path
    end_s: np.ndarray
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    channel_names: tuple[str, ...]
    fs_hz: float
    duration_s: float
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


def window_labels(
    end_s: np.ndarray,
    window_s: float,
    segments: Sequence[Segment],
    classes: Sequence[str],
    *,
    merge_touching: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Label of each window ``[end - window_s, end)``: the one segment covering it, else -1.

    With ``merge_touching``, touching segments with the same label and group count as one (a
    hypnogram's consecutive epochs of one stage cover the windows across their borders);
    segments of different groups stay apart. Without it every window must fit inside one segment
    (for files made of separate pieces joined end to end). Segments whose label is not in
    ``classes`` label nothing (their windows get -1).

    Returns
    -------
    y : ndarray (n,), int64
    groups : ndarray (n,), object
    """
    end_s = np.asarray(end_s, dtype=np.float64)
    y = np.full(end_s.shape, -1, dtype=np.int64)
    groups = np.full(end_s.shape, None, dtype=object)
    if not segments or end_s.size == 0:
        return y, groups
    segs = sorted(segments, key=lambda s: s.onset_s)
    if merge_touching:
        segs = _merge_touching(segs)
    onsets = np.array([s.onset_s for s in segs])
    ends = np.array([s.end_s for s in segs])
    index = {c: i for i, c in enumerate(classes)}
    start_s = end_s - window_s
    # the segment that starts at or before each window's start; tolerance for float seconds
    eps = 1e-9
    k = np.searchsorted(onsets, start_s + eps, side="right") - 1
    for i in np.flatnonzero(k >= 0):
        seg = segs[k[i]]
        if ends[k[i]] >= end_s[i] - eps and seg.label in index:
            y[i] = index[seg.label]
            groups[i] = seg.group
    return y, groups


def windows_per_label(
    end_s: np.ndarray,
    window_s: float,
    segments: Sequence[Segment],
    *,
    merge_touching: bool = True,
) -> dict[str, int]:
    """How many windows each label covers entirely (as :func:`window_labels` assigns them).

    Returns
    -------
    dict of str to int
        ``{label: windows}`` in order of the labels' first appearance; labels that cover no
        window are absent.
    """
    labels = tuple(dict.fromkeys(s.label for s in segments))
    y, _ = window_labels(end_s, window_s, segments, labels, merge_touching=merge_touching)
    counts = np.bincount(y[y >= 0], minlength=len(labels))
    return {label: int(n) for label, n in zip(labels, counts) if n}


def windows_text(per_label: dict[str, int]) -> str:
    """``{"s1": 48, "s3": 308}`` -> ``"s1 (48 windows), s3 (308 windows)"``, for messages."""
    return ", ".join(f"{label} ({n} windows)" for label, n in per_label.items())


def whole_sample_hop(
    hop_s: float,
    fs_hz: float,
    features_at: Callable[[float], FeatureConfig],
    *,
    max_change: float = 0.3,
) -> FeatureConfig:
    """The features at a hop of whole samples near ``hop_s`` (0.1 s is 51.2 samples at 512 Hz).

    Decisions come every whole number of samples. Of the whole-sample hops within
    ``max_change`` of ``hop_s``, the nearest one whose window and hop let the channel checks
    find stuck runs (:meth:`QualityConfig.checks_stuck_runs`) is taken: 0.1 s becomes
    0.09375 s (48 samples) at 512 Hz with a 2 s window, not 51 samples, which share 1 sample
    with the window's 1024. Else the nearest whole-sample hop.

    Parameters
    ----------
    hop_s, fs_hz : float
        The hop asked for, seconds, and the input rate, Hz.
    features_at : callable
        ``features_at(hop_s)`` -> FeatureConfig with every other setting; may raise ValueError.

    Raises
    ------
    ValueError
        From ``features_at`` at the nearest whole-sample hop.
    """
    nearest = max(1, round(hop_s * fs_hz))
    quality = QualityConfig()
    reach = int(max_change * hop_s * fs_hz)
    for n in sorted(
        range(max(1, nearest - reach), nearest + reach + 1), key=lambda n: abs(n - hop_s * fs_hz)
    ):
        try:
            config = features_at(n / fs_hz)
        except ValueError:
            continue
        hop_a = config.hop_samples // config.decimation
        if quality.checks_stuck_runs(config.window_samples_analysis, hop_a, config.analysis_fs_hz):
            return config
    return features_at(nearest / fs_hz)


def _merge_touching(segs: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.label == seg.label
            and last.group == seg.group
            and seg.onset_s <= last.end_s + 1e-6
        ):
            merged[-1] = Segment(
                last.onset_s, max(last.end_s, seg.end_s) - last.onset_s, last.label, last.group
            )
        else:
            merged.append(seg)
    return merged


# Samples read at a time for the features: 8192 x 64 ch of float32 (2 MB) is still in the CPU's
# cache when the decimator reads what the reader wrote (65536: 16 MB went out to memory and
# back; 10 interleaved pairs, bench_rigs' sessions: 8192 faster in 8, by ~15 %)
_READ_CHUNK_SAMPLES = 8192


def recording_features(
    source: Source,
    config: FeatureConfig,
    classes: Sequence[str],
    *,
    chunk_samples: int = _READ_CHUNK_SAMPLES,
    progress: bool = False,
) -> RecordingFeatures:
    """Features and window labels of one recording (bounded memory: one chunk at a time).

    ``progress`` shows a bar over the recording's seconds (for one long file in this process).
    """
    t0 = time.perf_counter()
    rec = open_recording(
        source.data, channels=source.channels, stream=source.stream, file_format=source.file_format
    )
    if abs(rec.fs_hz - config.fs_hz) > 1e-6 * config.fs_hz:
        raise DataError(
            f"{rec.path}: sampled at {rec.fs_hz:g} Hz but the features are configured for "
            f"{config.fs_hz:g} Hz; train on recordings of one rate"
        )
    ends, rows = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(rec.n_samples / rec.fs_hz), desc=rec.path.name, unit="s")
    extractor = StreamingFeatures(config, rec.n_channels)
    with one_blas_thread():  # see its notes
        for start, stop in rec.runs():
            # after a gap the windows start afresh, as live: none spans it
            extractor.reset()
            chunks = rec.chunks(chunk_samples, start, stop)
            if bar is not None:
                chunks = _counting(chunks, lambda n: bar.update(n / rec.fs_hz))
            for chunk in chunks:
                for end_sample, row, _ in extractor.push(chunk):
                    ends.append(start + end_sample)
                    rows.append(row)
    if bar is not None:
        bar.close()
    if not rows:
        raise DataError(
            f"{rec.path}: {rec.duration_s:.1f} s is shorter than one {config.window_s:g} s window"
            + (" between its gaps" if rec.discontinuities else "")
        )
    # window ends in the recording's time (with gaps, the timestamps' time, not sample / rate)
    end_s = rec.end_time_s(np.array(ends, dtype=np.int64))
    y, groups = window_labels(
        end_s, config.window_s, source.labels, classes, merge_touching=source.merge_touching
    )
    return RecordingFeatures(
        path=rec.path,
        end_s=end_s,
        X=np.stack(rows),
        y=y,
        groups=groups,
        channel_names=rec.channel_names,
        fs_hz=rec.fs_hz,
        duration_s=rec.duration_s,
        seconds=time.perf_counter() - t0,
        info={"units": list(rec.units)},
    )


def _counting(chunks, on_chunk):
    for chunk in chunks:
        yield chunk
        on_chunk(chunk.shape[0])


def extract_sources(
    sources: Sequence[Source],
    config: FeatureConfig,
    classes: Sequence[str],
    *,
    dask: str | None = "local",
    worker_memory: str = "2GiB",
    progress: bool = True,
) -> list[RecordingFeatures]:
    """Features of every source, in the order given.

    Parameters
    ----------
    dask : {"local", "none"} or scheduler address, optional
        ``"local"`` starts a local Dask cluster (one single-threaded worker process per core,
        each limited to ``worker_memory``) when there are several sources; ``"none"`` or None
        runs in this process; ``"tcp://host:port"`` uses that scheduler's workers (each worker
        must be able to read the files at the same paths).
    """
    if not sources:
        raise DataError("no recordings given")
    mode = (dask or "none").strip()
    if mode == "none" or (mode == "local" and len(sources) == 1):
        return _extract_serial(sources, config, classes, progress)
    return _extract_dask(sources, config, classes, mode, worker_memory, progress)


def _extract_serial(sources, config, classes, progress) -> list[RecordingFeatures]:
    from tqdm import tqdm

    out = []
    for source in tqdm(
        sources, desc="features", unit="file", disable=not progress or len(sources) < 2
    ):
        out.append(recording_features(source, config, classes, progress=progress))
        logger.info("%s: %d windows in %.1f s", source.data.name, len(out[-1].y), out[-1].seconds)
    return out


def _extract_dask(
    sources, config, classes, mode, worker_memory, progress
) -> list[RecordingFeatures]:
    import os

    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    if mode == "local":
        n_workers = max(1, min(len(sources), os.cpu_count() or 1))
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=worker_memory,
            dashboard_address=None,
        )
        client = Client(cluster)
    elif mode.startswith(("tcp://", "tls://", "ucx://")):
        cluster = None
        try:
            client = Client(mode, timeout=10)
        except Exception as exc:
            raise DataError(f"--dask {mode}: cannot reach the Dask scheduler ({exc})") from None
    else:
        raise DataError(
            f"--dask {mode!r}: use 'local', 'none' or a scheduler address tcp://HOST:PORT"
        )
    try:
        futures = {
            client.submit(recording_features, s, config, tuple(classes), pure=False): i
            for i, s in enumerate(sources)
        }
        results: list[RecordingFeatures | None] = [None] * len(sources)
        bar = tqdm(total=len(sources), desc="features", unit="file", disable=not progress)
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()  # re-raises a worker's DataError here
            bar.update(1)
        bar.close()
        return [r for r in results if r is not None]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
