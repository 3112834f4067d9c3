"""The decoder against the sources labs write, each cell beside its floor, in one command.

    python benchmarks/bench_sources.py [--seconds 40] [--quick] [--cells NAME,...] [--list]
                                       [--data DIR | --no-real-data] [--record]
                                       [--realtime PRIORITY]

The matrix (``--list`` prints it): 64 ch x 32 kHz noise in chunks of 1, 10 and 32 ms with
timestamps taken at the push (``push_chunk(x, local_clock())``), nominal timestamps
(``t0 + n/fs``) and none (``push_chunk(x)``: liblsl stamps the call; the same stamps as at the
push but for where the clock is read, liblsl's call or the caller's: both give the chunk's last
sample the push time and back-date the others at the nominal rate); a source that stalls 20-50
ms about every second, as a pushing thread that makes (or reads) the next second of data does,
and then catches up; +-2 ms jitter on the push schedule; a stall of 60-200 ms about every 3 s (a
forward jump in pushed-time stamps beyond the decoder's gap tolerance); EEG rates (250 Hz-2 kHz,
8-32 channels, 10-40 ms chunks) playing a real recording, cycled (the rat recording of the shared
recordings: ``--data``, ``$RTDECODE_DATA`` or ``../shared/data``); 1024 ch x 32 kHz; and MNE-LSL's
``PlayerLSL`` playing a FIF file, at EEG and at 32 kHz.

Per cell, four processes side by side on the machine's cores:

- the source, written here as labs write one (a plain pylsl outlet; not rtdecode's simulator,
  whose timing is ours), or ``PlayerLSL``, its code untouched; it notes when it pushed each
  chunk (``local_clock()`` just before the call) and which samples the chunk held;
- the decoder: a real ``rtdecode run --headless --log`` with a model of the cell's channels and
  rate (the bundled ``seizure.onnx`` at 64 ch x 32 kHz; elsewhere a real XGBoost -> ONNX model of
  the bundled one's shape, made once and kept in ``--cache``);
- the floor, ``bench_sources.py relay``: it reads the same stream and computes nothing; after
  every pull it republishes the range of samples it got (first and last index and timestamp) on
  an LSL outlet of its own;
- this process, which receives the decisions (``rtdecode-scores``) and the relay's pulls, each on
  a thread waiting in ``pull_sample``, and notes when each arrived (``local_clock()``).

The source starts pushing only once the relay and the decoder have opened the stream and this
process has opened theirs, so sample n is the n-th sample of every reader. Per decision, with s
its window's last sample (``end_sample - 1`` in the decision log; the decision's timestamp is
checked against the source's stamp of s):

- **latency** = the decision's receipt - the push of the chunk holding s;
- **floor** = the receipt of the relay's pull that held s - the same push;
- **excess** = latency - floor = the decision's receipt - that pull's receipt. Both went through
  the same LSL hand-offs, scheduling and VM stalls in the same seconds (absolute times on the
  shared VM move by 5-30 ms at p99 from one run to the next).

Also: decisions expected (one per hop from the first full window to the last sample pushed)
against those received, split into never decided and decided stale (logged, not published); the
decoder's CPU (user + system over wall, psutil; the source's and relay's beside it); and, after
every forward jump of more than 10 ms in the source's timestamps, the decisions whose window
ends in the stretch of samples it delayed (the jump's length after it, or up to the samples that
settle it): how long after both their window's last sample and the settling samples reached the
relay each came (``held_past_settle``: later than both the cell's p99 target and the p99 of
the run's other decisions). The samples that settle a jump are those whose steps back make up
half of it (docs/failure-policy.md).

Decisions whose window ends in the first ``--warmup`` seconds of the stream are counted, not
timed. ``--record`` appends the run to benchmarks/results/bench_sources.jsonl (see
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pylsl
from _record import record, shared_data  # noqa: E402  (benchmarks/ is the script's folder)
from bench_decoder import machine  # noqa: E402
from bench_scaling import make_model  # noqa: E402

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.common.threads import run_at_realtime_priority
from rtdecode.streams import SCORES_STREAM_NAME, output_source_id

HERE = Path(__file__).resolve().parent
RAT_EDF = Path("rat-seizure") / "rat_seizure_dev.edf"
RT = [sys.executable, "-m", "rtdecode"]
# a forward step in the source's timestamps larger than this is a jump whose settling is timed
# (scheduling alone moves pushed-time stamps by a few ms; the smallest planned stall is 20 ms)
JUMP_S = 0.010
_STOP: list = []  # set by SIGTERM in the source and relay processes


@dataclass(frozen=True)
class Cell:
    """One source of the matrix.

    Attributes
    ----------
    name : str
        The cell's name (``--cells``).
    channels, rate_hz : int, float
        The stream's shape.
    chunk : int
        Samples per push (``PlayerLSL``: its ``chunk_size``).
    stamps : str
        ``push`` (``push_chunk(x, local_clock())``), ``nominal`` (``t0 + n/fs`` for sample n,
        given as the chunk's last sample's), ``none`` (``push_chunk(x)``: liblsl stamps the
        call) or ``player`` (``PlayerLSL``'s own).
    stall_ms : tuple of float, optional
        A stall drawn uniformly in [lo, hi] ms about every ``stall_every_s`` seconds of samples
        (0.75-1.25 times that, drawn: a source's blocks are not in step with the decoder's
        windows, and a fixed period would stall every time at the same place of a hop): the
        pushing thread makes the next second of data (noise sources), then waits out the rest
        of the draw, as a read would; then it pushes what fell due at once.
    jitter_ms : float
        Each push's time is its nominal one + uniform(-jitter, +jitter).
    data : str
        ``noise`` (float32, 20 units rms), or ``rat`` (the rat recording of ../shared/data,
        resampled to the rate, one copy per channel each shifted in time, cycled).
    p50_ms, p99_ms : float or None
        The targets on the excess over the floor.
    """

    name: str
    channels: int
    rate_hz: float
    chunk: int
    stamps: str
    stall_ms: tuple[float, float] | None = None
    stall_every_s: float = 1.0
    jitter_ms: float = 0.0
    data: str = "noise"
    p50_ms: float | None = 0.5
    p99_ms: float = 1.0

    @property
    def chunk_ms(self) -> float:
        return 1e3 * self.chunk / self.rate_hz

    @property
    def player(self) -> bool:
        return self.stamps == "player"

    def describe(self) -> str:
        parts = [
            f"{self.channels} ch x {self.rate_hz / 1000:g} kHz",
            f"{self.chunk_ms:.3g} ms chunks",
            "PlayerLSL" if self.player else f"{self.stamps} stamps",
        ]
        if self.stall_ms:
            parts.append(
                f"stall {self.stall_ms[0]:g}-{self.stall_ms[1]:g} ms/{self.stall_every_s:g} s"
            )
        if self.jitter_ms:
            parts.append(f"jitter +-{self.jitter_ms:g} ms")
        if self.data != "noise":
            parts.append(f"{self.data} recording")
        return ", ".join(parts)


K32 = 32000.0
CELLS = (
    Cell("1ms-push", 64, K32, 32, "push"),
    Cell("10ms-push", 64, K32, 320, "push"),
    Cell("32ms-push", 64, K32, 1024, "push"),
    Cell("1ms-nominal", 64, K32, 32, "nominal"),
    Cell("10ms-nominal", 64, K32, 320, "nominal"),
    Cell("1ms-none", 64, K32, 32, "none"),
    Cell("10ms-none", 64, K32, 320, "none"),
    Cell("stall-push", 64, K32, 32, "push", stall_ms=(20.0, 50.0)),
    Cell("stall-nominal", 64, K32, 32, "nominal", stall_ms=(20.0, 50.0)),
    Cell("longstall-push", 64, K32, 32, "push", stall_ms=(60.0, 200.0), stall_every_s=3.0),
    Cell("jitter-push", 64, K32, 32, "push", jitter_ms=2.0),
    Cell("jitter-nominal", 64, K32, 32, "nominal", jitter_ms=2.0),
    Cell("eeg-250x8", 8, 250.0, 10, "none", data="rat"),
    Cell("eeg-512x16", 16, 512.0, 8, "push", data="rat"),
    Cell("eeg-1kx32", 32, 1000.0, 20, "nominal", data="rat"),
    Cell("eeg-2kx32", 32, 2000.0, 20, "none", data="rat"),
    Cell("player-eeg", 16, 512.0, 10, "player", data="rat"),
    Cell("player-64", 64, K32, 320, "player"),
    Cell("1024-push", 1024, K32, 32, "push", p50_ms=None, p99_ms=5.0),
)
BY_NAME = {c.name: c for c in CELLS}


# -- pairing (pure functions: arrays in, arrays out) ---------------------------------------------
def holding(index: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """For each sample index, the row of the range ``[first, last]`` (inclusive, sorted and not
    overlapping) that holds it, or -1.

    Parameters
    ----------
    index : ndarray of int, shape (n,)
    first, last : ndarray of int, shape (m,)
        The ranges, in increasing order (a source's chunks, a relay's pulls).
    """
    row = np.searchsorted(last, index, side="left")
    inside = row < len(last)
    inside[inside] &= first[row[inside]] <= index[inside]
    return np.where(inside, row, -1)


def pair(
    last_sample: np.ndarray,
    receipt: np.ndarray,
    pulls: np.ndarray,
    chunks: np.ndarray,
) -> dict[str, np.ndarray]:
    """Each decision's latency, floor and excess, in seconds (NaN where it could not be paired).

    Parameters
    ----------
    last_sample : ndarray of int, shape (n,)
        Each decision's window's last sample (``end_sample - 1``).
    receipt : ndarray, shape (n,)
        When each decision arrived (``local_clock``).
    pulls : ndarray, shape (m, 3)
        The relay's pulls: first sample, last sample (inclusive), when its report arrived.
    chunks : ndarray, shape (k, 3)
        The source's pushes: first sample, last sample (inclusive), when it pushed.
    """
    p = holding(last_sample, pulls[:, 0], pulls[:, 1])
    c = holding(last_sample, chunks[:, 0], chunks[:, 1])
    pull_t = np.where(p >= 0, pulls[np.maximum(p, 0), 2], np.nan)
    push_t = np.where(c >= 0, chunks[np.maximum(c, 0), 2], np.nan)
    return {
        "latency": receipt - push_t,
        "floor": pull_t - push_t,
        "excess": receipt - pull_t,
        "pull_receipt": pull_t,
    }


def jump_settles(
    first: np.ndarray, last: np.ndarray, stamp: np.ndarray, fs_hz: float, min_jump_s: float
) -> list[tuple[int, int | None, float]]:
    """The forward jumps in a source's timestamps and the samples that settle each.

    A chunk's samples are stamped ``stamp - (last - i) / fs`` (its last sample's stamp, the
    others back at the nominal rate, as liblsl deduces them), so the step into chunk k is
    ``stamp[k] - stamp[k - 1] - n_k / fs``. A jump is a step above ``min_jump_s``; it is settled
    at the last sample of the first chunk where the steps since it add up to minus half of it
    (the source caught up), or never (None).

    Returns
    -------
    list of (first sample after the jump, settling sample or None, jump in seconds)
    """
    n = last - first + 1
    step = np.diff(stamp) - n[1:] / fs_hz
    out = []
    for k in np.flatnonzero(step > min_jump_s) + 1:
        after = np.cumsum(step[k:])  # step[k] is the step into chunk k + 1
        back = np.flatnonzero(after <= -step[k - 1] / 2)
        settle = int(last[k + 1 + back[0]]) if back.size else None
        out.append((int(first[k]), settle, float(step[k - 1])))
    return out


def _check_pairing() -> None:
    """The pairing on arrays whose answer is known; run before every measurement."""
    chunks = np.array([[0, 9, 1.0], [10, 19, 2.0], [20, 29, 3.0]])
    pulls = np.array([[0, 14, 1.5], [15, 15, 2.5], [16, 29, 3.5]])
    got = pair(np.array([9, 15, 16, 29, 30]), np.array([1.6, 2.6, 3.9, 4.0, 5.0]), pulls, chunks)
    want = {
        "latency": [0.6, 0.6, 1.9, 1.0, np.nan],
        "floor": [0.5, 0.5, 1.5, 0.5, np.nan],
        "excess": [0.1, 0.1, 0.4, 0.5, np.nan],
    }
    for key, values in want.items():
        if not np.allclose(got[key], values, equal_nan=True):
            raise RuntimeError(f"pairing check failed: {key} {got[key]} != {values}")
    # 10-sample chunks at 10 Hz stamped at their push: chunk 2 pushed 1.5 s late, chunk 3 at
    # once after it (its step back settles the jump), chunk 4 on time again
    stamp = np.array([0.9, 1.9, 4.4, 4.41, 4.9, 5.9])
    first = np.arange(6) * 10
    jumps = jump_settles(first, first + 9, stamp, 10.0, 0.01)
    if len(jumps) != 1 or jumps[0][:2] != (20, 39) or abs(jumps[0][2] - 1.5) > 1e-9:
        raise RuntimeError(f"jump check failed: {jumps}")


# -- the sources and the floor (run as processes of their own) -----------------------------------
def _rat(cell: Cell, n: int, data_dir: Path) -> np.ndarray:
    """``n`` samples x the cell's channels of the rat recording at the cell's rate: channel c is
    the recording shifted by c / channels of its length (z-scored by its authors: x 50)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    from rtdecode.offline.recordings import open_recording

    rec = open_recording(data_dir / RAT_EDF)
    x = rec.read(0, rec.n_samples)[:, 0].astype(np.float64)
    ratio = Fraction(cell.rate_hz / rec.fs_hz).limit_denominator(1000)
    if ratio != 1:
        x = resample_poly(x, ratio.numerator, ratio.denominator)
    shift = len(x) // cell.channels
    idx = (np.arange(n)[:, None] + shift * np.arange(cell.channels)[None, :]) % len(x)
    return (50.0 * x[idx]).astype(np.float32)


def _pool(cell: Cell, data_dir: Path | None, rng: np.random.Generator) -> np.ndarray:
    """The samples the source cycles through: a second (a quarter at 1024 channels) of noise, or
    a minute of the recording; a whole number of chunks, C-contiguous."""
    seconds = 60.0 if cell.data == "rat" else (0.25 if cell.channels > 256 else 1.0)
    n = max(1, int(seconds * cell.rate_hz) // cell.chunk) * cell.chunk
    if cell.data == "rat":
        return _rat(cell, n, data_dir)
    return 20.0 * rng.standard_normal((n, cell.channels), dtype=np.float32)


class _Pushes:
    """The source's notes: per chunk its first and last sample, when it was pushed, the stamp
    it was given (NaN: none); per stall its sample, planned and actual ms. Preallocated."""

    def __init__(self, n_chunks: int) -> None:
        self.table = np.full((n_chunks, 4), np.nan)
        self.k = 0
        self.stalls: list[tuple[int, float, float]] = []

    def note(self, first: int, n: int, pushed: float, stamp: float) -> None:
        self.table[self.k] = (first, first + n - 1, pushed, stamp)
        self.k += 1

    def save(self, path: str) -> None:
        np.savez(path, chunks=self.table[: self.k], stalls=np.array(self.stalls).reshape(-1, 3))


def _ready_then_wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def run_source(cell: Cell, name: str, seconds: float, out: str, data_dir: Path | None) -> None:
    """A lab's source: a plain pylsl outlet pushing ``cell.chunk`` samples at a time on the
    nominal schedule (with the cell's stamps, stalls and jitter) for ``seconds``, from the
    moment a line arrives on stdin; notes every push; saves the notes to ``out``, says ``done``
    and keeps the outlet open until SIGTERM."""
    rng = np.random.default_rng(7)
    pool = _pool(cell, data_dir, rng)
    fs, chunk = cell.rate_hz, cell.chunk
    n_chunks = math.ceil(seconds * fs / chunk)
    notes = _Pushes(n_chunks)
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", cell.channels, fs, "float32", name))
    _ready_then_wait_for_go()
    t0 = pylsl.local_clock()
    next_stall = round(rng.uniform(0.75, 1.25) * cell.stall_every_s * fs) if cell.stall_ms else 0
    for k in range(n_chunks):
        if _STOP:
            break
        first = k * chunk
        if cell.stall_ms and first >= next_stall:
            began = pylsl.local_clock()
            planned = rng.uniform(*cell.stall_ms) / 1e3
            if cell.data == "noise":  # the next second of data, made in the pushing thread
                pool[:] = rng.standard_normal(pool.shape, dtype=np.float32)
                pool *= 20.0
            rest = planned - (pylsl.local_clock() - began)
            if rest > 0:
                time.sleep(rest)  # the rest of the stall: a read from a slow disk
            notes.stalls.append((first, 1e3 * planned, 1e3 * (pylsl.local_clock() - began)))
            next_stall += round(rng.uniform(0.75, 1.25) * cell.stall_every_s * fs)
        due = t0 + (first + chunk) / fs
        if cell.jitter_ms:
            due += rng.uniform(-cell.jitter_ms, cell.jitter_ms) / 1e3
        delay = due - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        at = first % len(pool)
        x = pool[at : at + chunk]
        now = pylsl.local_clock()
        if cell.stamps == "push":
            stamp = now
            outlet.push_chunk(x, stamp)
        elif cell.stamps == "nominal":
            stamp = t0 + (first + chunk - 1) / fs
            outlet.push_chunk(x, stamp)
        else:
            stamp = math.nan  # liblsl stamps the call
            outlet.push_chunk(x)
        notes.note(first, chunk, now, stamp)
    notes.save(out)
    print("done", flush=True)
    while not _STOP:
        time.sleep(0.1)


def _player_file(cell: Cell, cache: Path, data_dir: Path | None) -> Path:
    """A FIF file for ``PlayerLSL`` (made once in ``cache``): a minute of the rat recording at
    EEG rates, 4 s of noise at 32 kHz; in volts, as MNE keeps EEG.

    One sample longer than whole seconds: mne-lsl 1.14's player, when a loop brings its position
    exactly to the file's end (after n loops where n x the length is a whole number of chunks),
    starts the next chunk at ``end % length = 0`` and pushes the whole file again as one chunk,
    back-dated from its stamp (a timestamp reset for any reader). With this length that comes
    after ``chunk`` loops, past any run here."""
    import mne

    path = cache / f"{cell.name}_{cell.channels}x{cell.rate_hz:g}_raw.fif"
    if path.is_file():
        return path
    rng = np.random.default_rng(3)
    if cell.data == "rat":
        x = _rat(cell, int(60 * cell.rate_hz) + 1, data_dir)
    else:
        n = int(4 * cell.rate_hz) + 1
        x = 20.0 * rng.standard_normal((n, cell.channels), dtype=np.float32)
    info = mne.create_info([f"ch{i:03d}" for i in range(cell.channels)], cell.rate_hz, "eeg")
    mne.io.RawArray(x.T.astype(np.float64) * 1e-6, info, verbose="error").save(
        path, fmt="single", overwrite=True, verbose="error"
    )
    return path


class _NotedOutlet:
    """``PlayerLSL``'s outlet, made before the player starts (so every reader is connected when
    its first sample goes out) and noting each push; pushes past ``n_samples`` are dropped."""

    def __init__(self, outlet, notes: _Pushes, n_samples: int) -> None:
        self._outlet = outlet
        self._notes = notes
        self._left = n_samples
        self.sent = 0
        self.finished = threading.Event()

    def push_chunk(self, x, timestamp=None, pushThrough: bool = True) -> None:  # noqa: N803
        if self._left <= 0:
            return
        x = x[: self._left]
        now = pylsl.local_clock()
        self._outlet.push_chunk(x, timestamp=timestamp, pushThrough=pushThrough)
        self._notes.note(self.sent, len(x), now, math.nan if timestamp is None else timestamp)
        self.sent += len(x)
        self._left -= len(x)
        if self._left <= 0:
            self.finished.set()

    def push_sample(self, x, timestamp=None, pushThrough: bool = True) -> None:  # noqa: N803
        self.push_chunk(np.asarray(x)[None, :], timestamp, pushThrough)

    def _del(self) -> None:
        """The player deletes its outlet when stopped; this one stays open until SIGTERM."""


def run_player(cell: Cell, name: str, seconds: float, out: str, fif: Path) -> None:
    """MNE-LSL's ``PlayerLSL`` playing ``fif`` in chunks of ``cell.chunk`` (its own timing and
    stamps), from the moment a line arrives on stdin, for ``seconds``."""
    from mne_lsl.lsl import StreamOutlet
    from mne_lsl.player import PlayerLSL, player_lsl

    player = PlayerLSL(fif, chunk_size=cell.chunk, name=name, source_id=name)
    n = math.ceil(seconds * cell.rate_hz / cell.chunk) * cell.chunk
    notes = _Pushes(n // cell.chunk + 2)
    # the player makes its outlet in start(); it is made here instead, from the player's own
    # StreamInfo, so that the readers connect before the first sample
    noted = _NotedOutlet(StreamOutlet(player._sinfo, cell.chunk), notes, n)
    player_lsl.StreamOutlet = lambda *args, **kwargs: noted
    _ready_then_wait_for_go()
    player.start()
    while not noted.finished.wait(0.1) and not _STOP:
        if not player.running:
            raise SystemExit(f"PlayerLSL stopped after {noted.sent} samples (its log says why)")
    player.stop()
    notes.save(out)
    print("done", flush=True)
    while not _STOP:
        time.sleep(0.1)


def run_wake_probe(core: int, out: str) -> None:
    """How late this machine wakes a thread: pinned to ``core``, ask to sleep 1 ms again and
    again until SIGTERM, and save each wake's lateness (s) to ``out``. Every hand-off on the
    decoder's path (liblsl's receiver -> acquisition -> decode thread -> liblsl's sender) is
    such a wake, the floor's path has one: the lateness the VM adds per wake bounds how close
    the two can be (its cost here: ~6 % of a core each)."""
    os.sched_setaffinity(0, {core})
    late = np.zeros(2_000_000)
    k = 0
    print("ready", flush=True)
    while not _STOP and k < late.size:
        t = time.perf_counter()
        time.sleep(0.001)
        late[k] = time.perf_counter() - t - 0.001
        k += 1
    np.save(out, late[:k])


def run_relay(name: str) -> None:
    """The floor: read the stream, compute nothing; after every pull (it waits for the first
    sample, then takes what has come) publish ``[first index, last index, first timestamp, last
    timestamp]`` of the samples it got on ``NAME-floor``."""
    info = pylsl.resolve_byprop("source_id", name, timeout=30)[0]
    inlet = pylsl.StreamInlet(info, max_buflen=30, processing_flags=0)
    dtype = np.float64 if info.channel_format() == pylsl.cf_double64 else np.float32
    max_samples = 8192 if info.channel_count() <= 64 else 1024
    buf = np.empty((max_samples, info.channel_count()), dtype=dtype)
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(
            f"{name}-floor", "Floor", 4, pylsl.IRREGULAR_RATE, "double64", f"{name}-floor"
        )
    )
    inlet.open_stream(timeout=10)
    print("ready", flush=True)
    got = 0
    while not _STOP:
        _, ts = inlet.pull_chunk(timeout=0.2, max_samples=max_samples, dest_obj=buf, min_samples=1)
        if ts:
            outlet.push_sample([got, got + len(ts) - 1, ts[0], ts[-1]])
            got += len(ts)


# -- the measurement ------------------------------------------------------------------------------
class _Receiver(threading.Thread):
    """Waits in ``pull_sample`` on one inlet and notes ``(receipt, timestamp, *values)``."""

    def __init__(self, inlet: pylsl.StreamInlet) -> None:
        super().__init__(daemon=True)
        self.inlet = inlet
        self.rows: list[tuple] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            x, ts = self.inlet.pull_sample(timeout=0.1)
            if ts is not None:
                self.rows.append((pylsl.local_clock(), ts, *x))


def _line(proc: subprocess.Popen, want: str, timeout_s: float) -> None:
    """Wait for ``want`` on the process's stdout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited ({proc.returncode}) before {want!r}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready and proc.stdout.readline().strip() == want:
            return
    raise RuntimeError(f"{proc.args[:4]}: no {want!r} within {timeout_s:g} s")


def _inlet(source_id: str, timeout_s: float = 30.0) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", source_id, timeout=timeout_s)
    if not found:
        raise RuntimeError(f"no stream with source_id {source_id!r}")
    inlet = pylsl.StreamInlet(found[0], max_buflen=120, processing_flags=0)
    inlet.open_stream(timeout=10)
    return inlet


def _cpu(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for key, p in procs.items():
        try:
            out[key] = sum(p.cpu_times()[:2])
        except psutil.Error:
            out[key] = math.nan
    return out


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def model_for(cell: Cell, cache: Path) -> Path:
    """The bundled seizure model at 64 ch x 32 kHz; else one of its shape for the cell's
    channels and rate (window 2 s, hop 0.1 s, or 0.125 s where 0.1 s is no whole number of
    samples), made once in ``cache``."""
    from rtdecode.models import bundled_model_path

    if cell.channels == 64 and cell.rate_hz == K32:
        return bundled_model_path("seizure")
    hop_s = 0.1 if float(cell.rate_hz * 0.1).is_integer() else 0.125
    path = cache / f"model_{cell.channels}x{cell.rate_hz:g}_hop{hop_s:g}.onnx"
    return make_model(path, n_channels=cell.channels, fs_hz=cell.rate_hz, hop_s=hop_s)


def _pct(x: np.ndarray, q: float) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if x.size else math.nan


def run_cell(
    cell: Cell,
    seconds: float,
    warmup_s: float,
    cache: Path,
    data_dir: Path | None,
    folder: Path,
    realtime: int | None = None,
) -> dict[str, Any]:
    """Run one cell (source, relay, decoder, this process as the consumer) and measure it;
    with ``realtime``, the decoder (``--realtime``) and the relay at that SCHED_FIFO priority."""
    from rtdecode.decoding.model import OnnxModel

    model = model_for(cell, cache)
    contract = OnnxModel(model).contract.features
    window, hop = contract.window_samples, contract.hop_samples
    name = f"src-{cell.name}-{time.monotonic_ns() % 10**9}"
    pushes = folder / f"{cell.name}-pushes.npz"
    log = folder / f"{cell.name}-decisions.jsonl"
    me = [sys.executable, str(Path(__file__).resolve())]
    role = ["player", "--fif", str(_player_file(cell, cache, data_dir))] if cell.player else []
    source = subprocess.Popen(
        me
        + (role or ["source"])
        + ["--cell", cell.name, "--name", name, "--seconds", str(seconds), "--out", str(pushes)]
        + (["--data", str(data_dir)] if data_dir else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    procs: list[subprocess.Popen] = [source]
    receivers: list[_Receiver] = []
    try:
        _line(source, "ready", 120)
        rt = [] if realtime is None else ["--realtime", str(realtime)]
        relay = subprocess.Popen(
            me + ["relay", "--name", name] + rt, stdout=subprocess.PIPE, text=True
        )
        procs.append(relay)
        _line(relay, "ready", 60)
        with open(folder / f"{cell.name}-decoder.out", "w") as out:
            decoder = subprocess.Popen(
                RT
                + ["run", "--model", str(model), "--source", name, "--headless"]
                + ["--status-every", "0", "--log", str(log)]
                + rt,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=PACKAGE_PARENT,
            )
        procs.append(decoder)
        deadline = time.monotonic() + 90
        while not (log.is_file() and '"start"' in log.read_text()):
            if decoder.poll() is not None or time.monotonic() > deadline:
                text = (folder / f"{cell.name}-decoder.out").read_text()
                raise RuntimeError(f"rtdecode run did not start:\n{text[-2000:]}")
            time.sleep(0.05)
        for sid in (output_source_id(SCORES_STREAM_NAME, name), f"{name}-floor"):
            receivers.append(_Receiver(_inlet(sid)))
            receivers[-1].start()
        ps = {
            "decoder": psutil.Process(decoder.pid),
            "source": psutil.Process(source.pid),
            "relay": psutil.Process(relay.pid),
        }
        probes = [
            subprocess.Popen(
                me
                + [
                    "wakeprobe",
                    "--name",
                    str(core),
                    "--out",
                    str(folder / f"{cell.name}-wake{core}.npy"),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for core in sorted(os.sched_getaffinity(0))
        ]
        procs.extend(probes)
        for probe in probes:
            _line(probe, "ready", 60)
        source.stdin.write("go\n")
        source.stdin.flush()
        time.sleep(min(warmup_s, seconds / 2))
        cpu0, w0 = _cpu(ps), time.monotonic()
        _line(source, "done", seconds + 60)
        cpu1, w1 = _cpu(ps), time.monotonic()
        for probe in probes:
            _stop(probe)
        # the last windows' decisions (within 1 s: the decoder says no_signal after 1 s)
        time.sleep(0.7)
    finally:
        for r in receivers:
            r.stop.set()
        for proc in reversed(procs):
            _stop(proc)
    for r in receivers:
        r.join(2)
    cpu = {f"{k}_cpu_cores": (cpu1[k] - cpu0[k]) / (w1 - w0) for k in cpu0}
    scores = np.array([r[:2] for r in receivers[0].rows]).reshape(-1, 2)
    # receipt, the relay's stamp, first and last sample, their timestamps
    floor = np.array(receivers[1].rows).reshape(-1, 6)
    # what was received, kept beside the source's notes and the decision log for a closer look
    np.savez(folder / f"{cell.name}-received.npz", scores=scores, floor=floor)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    figures = analyse(cell, window, hop, np.load(pushes), lines, scores, floor, warmup_s, cpu)
    figures.update(wake_figures(sorted(folder.glob(f"{cell.name}-wake*.npy")), w1 - w0))
    return figures


def wake_figures(files: list[Path], seconds: float) -> dict[str, Any]:
    """The wake probes' lateness per core: p99 and p99.9 (ms), and how many wakes a second came
    more than 1 ms late (each one a moment when any thread on that core was held that long)."""
    late = [1e3 * np.load(f) for f in files]
    return {
        "wake_late_p99_ms": [round(_pct(x, 99), 3) for x in late],
        "wake_late_p999_ms": [round(_pct(x, 99.9), 3) for x in late],
        "wakes_over_1ms_per_s": [round(float((x > 1.0).sum()) / seconds, 2) for x in late],
    }


def analyse(
    cell: Cell,
    window: int,
    hop: int,
    pushes: Any,
    log: list[dict],
    scores: np.ndarray,
    floor_rows: np.ndarray,
    warmup_s: float,
    cpu: dict[str, float],
) -> dict[str, Any]:
    """The cell's figures from what the source, the relay, the decoder's log and the consumer
    noted (see the module's docstring)."""
    chunks = pushes["chunks"]  # first, last, pushed, stamp
    n_pushed = int(chunks[-1, 1]) + 1 if len(chunks) else 0
    decided = [d for d in log if "end_sample" in d]
    published = [d for d in decided if not d.get("stale")]
    # the consumer's decisions, in order, are the published ones: match by timestamp
    matched_end, matched_receipt, matched_ts = [], [], []
    j = 0
    for receipt, ts in scores:
        while j < len(published) and published[j]["t"] != ts:
            j += 1
        if j == len(published):
            break
        matched_end.append(published[j]["end_sample"])
        matched_receipt.append(receipt)
        matched_ts.append(ts)
        j += 1
    end = np.array(matched_end, dtype=np.int64)
    expected = set(range(window, n_pushed + 1, hop))
    received = set(matched_end) & expected
    decided_ends = {d["end_sample"] for d in decided}
    stale_ends = {d["end_sample"] for d in decided if d.get("stale")}
    lost = expected - received
    # the floor's pulls: first, last (inclusive), receipt of its report
    pulls = floor_rows[:, [2, 3, 0]] if len(floor_rows) else np.zeros((0, 3))
    timed = pair(end - 1, np.array(matched_receipt), pulls, chunks[:, [0, 1, 2]])
    keep = (end - 1) >= warmup_s * cell.rate_hz
    ms = {k: 1e3 * v[keep] for k, v in timed.items()}
    # is end_sample - 1 the sample the decision is stamped with? (its timestamp against the
    # source's stamp of it; liblsl's own when the source gave none, its push time here)
    c = holding(end - 1, chunks[:, 0], chunks[:, 1])
    stamp = np.where(np.isnan(chunks[:, 3]), chunks[:, 2], chunks[:, 3])
    ok = c >= 0
    sample_stamp = stamp[c[ok]] - (chunks[c[ok], 1] - (end[ok] - 1)) / cell.rate_hz
    stamp_offset_us = 1e6 * (np.array(matched_ts)[ok] - sample_stamp)
    figures: dict[str, Any] = {
        "describe": cell.describe(),
        "samples_pushed": n_pushed,
        "decisions_expected": len(expected),
        "decisions_received": len(received),
        "lost": len(lost),
        "lost_never_decided": len(lost - decided_ends),
        "lost_stale": len(lost & stale_ends),
        "timed": int(keep.sum()),
        "unpaired": int(np.isnan(ms["excess"]).sum()),
        "floor_p50_ms": _pct(ms["floor"], 50),
        "floor_p99_ms": _pct(ms["floor"], 99),
        "latency_p50_ms": _pct(ms["latency"], 50),
        "latency_p99_ms": _pct(ms["latency"], 99),
        "latency_max_ms": _pct(ms["latency"], 100),
        "excess_p50_ms": _pct(ms["excess"], 50),
        "excess_p99_ms": _pct(ms["excess"], 99),
        "excess_max_ms": _pct(ms["excess"], 100),
        "stamp_offset_p50_us": _pct(stamp_offset_us, 50),
        **cpu,
    }
    events: dict[str, int] = {}
    for d in log:
        if "event" in d and d["event"] not in ("start", "stop"):
            events[d["event"]] = events.get(d["event"], 0) + 1
    last = decided[-1] if decided else {}
    figures.update(
        gaps=last.get("gaps"),
        missing_samples=last.get("missing_samples"),
        overruns=last.get("overruns"),
        events=events,
    )
    stalls = pushes["stalls"]
    if len(stalls):
        figures["stalls"] = len(stalls)
        figures["stall_ms_range"] = [float(stalls[:, 2].min()), float(stalls[:, 2].max())]
    jumps = jump_settles(chunks[:, 0], chunks[:, 1], stamp, cell.rate_hz, JUMP_S)
    if jumps:
        # a decision whose window ends in the stretch of samples a jump delayed (the jump's
        # length after it, or up to the samples settling it) cannot come before those samples
        # have arrived: timed from the arrival at the relay of the later of its own last sample
        # and the settling ones
        due = np.full(len(end), -1)
        for a, settle, jump_s in jumps:
            if settle is None:
                continue
            stretch = (end - 1 >= a) & (end - 1 <= max(settle, a + round(jump_s * cell.rate_hz)))
            due[stretch] = np.maximum(np.maximum(end[stretch] - 1, settle), due[stretch])
        after_jump = (due >= 0) & keep
        p = holding(due[after_jump], pulls[:, 0], pulls[:, 1])
        arrived = np.where(p >= 0, pulls[np.maximum(p, 0), 2], np.nan)
        after = 1e3 * (np.array(matched_receipt)[after_jump] - arrived)
        # held: later than the target and than the other decisions of the run (p99): the VM's
        # own stalls make some decision of any stretch late
        others = _pct(1e3 * timed["excess"][keep & (due < 0)], 99)
        figures.update(
            jumps=len(jumps),
            jump_ms_range=[1e3 * min(j[2] for j in jumps), 1e3 * max(j[2] for j in jumps)],
            jumps_unsettled=sum(j[1] is None for j in jumps),
            decisions_after_jumps=int(after_jump.sum()),
            after_settle_ms=[round(float(x), 3) for x in np.sort(after)],
            excess_p99_outside_jumps_ms=others,
            held_past_settle=int((after > max(cell.p99_ms, others)).sum()),
        )
    figures["meets"], figures["misses"] = _targets(cell, figures)
    return figures


def _targets(cell: Cell, f: dict[str, Any]) -> tuple[bool, list[str]]:
    misses = []
    if cell.p50_ms is not None and not f["excess_p50_ms"] <= cell.p50_ms:
        misses.append(f"excess p50 {f['excess_p50_ms']:.2f} > {cell.p50_ms:g} ms")
    if cell.p99_ms is not None and not f["excess_p99_ms"] <= cell.p99_ms:
        misses.append(f"excess p99 {f['excess_p99_ms']:.2f} > {cell.p99_ms:g} ms")
    if f["lost"]:
        misses.append(f"{f['lost']} decisions lost")
    if f.get("held_past_settle"):
        misses.append(f"{f['held_past_settle']} held past the samples settling a jump")
    if f["unpaired"]:
        misses.append(f"{f['unpaired']} decisions not paired")
    return not misses, misses


def _fmt(x: Any, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| cell | source | floor p50 / p99 ms | latency p50 / p99 ms | excess p50 / p99 / max ms "
        "| received / expected | decoder CPU | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in results.items():
        if "skipped" in f or "error" in f:
            why = f.get("skipped") or f.get("error", "").splitlines()[0]
            lines.append(f"| {name} | {f.get('describe', '')} | | | | | | {why} |")
            continue
        target = "yes" if f["meets"] else "NO: " + "; ".join(f["misses"])
        lines.append(
            f"| {name} | {f['describe']} | {_fmt(f['floor_p50_ms'])} / {_fmt(f['floor_p99_ms'])} "
            f"| {_fmt(f['latency_p50_ms'])} / {_fmt(f['latency_p99_ms'])} "
            f"| {_fmt(f['excess_p50_ms'])} / {_fmt(f['excess_p99_ms'])} / "
            f"{_fmt(f['excess_max_ms'])} | {f['decisions_received']} / "
            f"{f['decisions_expected']} | {_fmt(f['decoder_cpu_cores'], 3)} | {target} |"
        )
    return "\n".join(lines)


def _skip_reason(cell: Cell, data_dir: Path | None) -> str | None:
    if cell.player:
        for module in ("mne_lsl", "mne"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install mne-lsl: the bench extra)"
    if cell.data == "rat" and data_dir is None:
        return "--no-real-data"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "role",
        nargs="?",
        choices=("bench", "source", "player", "relay", "wakeprobe"),
        default="bench",
    )
    ap.add_argument("--seconds", type=float, default=40.0, help="of stream per cell")
    ap.add_argument("--warmup", type=float, default=5.0, help="first seconds not timed")
    ap.add_argument("--quick", action="store_true", help="15 s cells")
    ap.add_argument("--cells", default=None, help="comma-separated cell names (default: all)")
    ap.add_argument("--list", action="store_true", help="print the cells and exit")
    ap.add_argument("--cache", default=None, help="models and files kept between runs")
    ap.add_argument("--data", type=Path, default=None, help="the shared recordings' folder")
    ap.add_argument(
        "--no-real-data", action="store_true", help="leave out the cells that play a recording"
    )
    ap.add_argument("--record", action="store_true", help="append the run to results/")
    ap.add_argument(
        "--realtime",
        type=int,
        default=None,
        metavar="PRIORITY",
        help="the decoder (rtdecode run --realtime) and the relay at this SCHED_FIFO priority",
    )
    # the roles' own
    ap.add_argument("--cell", default=None)
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--fif", default=None)
    a = ap.parse_args()
    if a.role != "bench":
        signal.signal(signal.SIGTERM, lambda *_: _STOP.append(1))
        if a.role == "relay":
            if a.realtime is not None:  # the floor scheduled as the decoder is
                run_at_realtime_priority(a.realtime)
            run_relay(a.name)
        elif a.role == "wakeprobe":
            run_wake_probe(int(a.name), a.out)
        elif a.role == "source":
            run_source(BY_NAME[a.cell], a.name, a.seconds, a.out, a.data)
        else:
            run_player(BY_NAME[a.cell], a.name, a.seconds, a.out, Path(a.fif))
        return
    if a.list:
        for c in CELLS:
            print(f"{c.name:16s} {c.describe()}")
        return
    names = a.cells.split(",") if a.cells else [c.name for c in CELLS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"--cells: unknown {unknown}; the cells are {[c.name for c in CELLS]}")
    seconds = 15.0 if a.quick else a.seconds
    needs_data = any(BY_NAME[n].data == "rat" for n in names) and not a.no_real_data
    data_dir = shared_data(a.data) if needs_data else None
    _check_pairing()
    cache = Path(a.cache) if a.cache else Path(tempfile.gettempdir()) / "rtdecode-bench-sources"
    cache.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench_sources-"))
    print(machine(), flush=True)
    print(
        f"{seconds:g} s of stream per cell, the first {a.warmup:g} s not timed; files in {folder}"
    )
    results: dict[str, dict[str, Any]] = {}
    for n in names:
        cell = BY_NAME[n]
        reason = _skip_reason(cell, data_dir)
        if reason:
            results[n] = {"describe": cell.describe(), "skipped": reason}
            print(f"{n}: skipped: {reason}", flush=True)
            continue
        try:
            results[n] = run_cell(cell, seconds, a.warmup, cache, data_dir, folder, a.realtime)
        except Exception as exc:  # one cell failing is a result; the others still run
            results[n] = {"describe": cell.describe(), "error": f"{type(exc).__name__}: {exc}"}
        f = results[n]
        (folder / "results.json").write_text(json.dumps(results, indent=1))
        print(
            f"{n}: "
            + (
                f["error"]
                if "error" in f
                else f"excess p50 {f['excess_p50_ms']:.2f} p99 {f['excess_p99_ms']:.2f} ms, "
                f"floor p50 {f['floor_p50_ms']:.2f} p99 {f['floor_p99_ms']:.2f} ms, "
                f"{f['decisions_received']}/{f['decisions_expected']} decisions, "
                f"CPU {f['decoder_cpu_cores']:.3f}"
            ),
            flush=True,
        )
    print()
    print(table(results))
    if a.record:
        record(
            "bench_sources",
            results,
            setup={
                "seconds_per_cell": seconds,
                "warmup_s": a.warmup,
                "cells": {n: dataclasses.asdict(BY_NAME[n]) for n in names},
                "floor": "relay: pull_chunk(timeout, min_samples=1), republished per pull",
                "realtime_priority": a.realtime,
            },
        )


if __name__ == "__main__":
    main()
