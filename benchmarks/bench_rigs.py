"""Rigs' readers at scale (issue 22 item 5): offline features from a long 64 ch x 32 kHz session.

1. A Neuralynx session of ``--minutes`` (default 60: ~15 GB of ``.ncs``, with a few dropped
   records so neo takes its gap-scanning path) is written to ``--dir``; the features that
   ``rtdecode train`` computes are extracted from it through the reader, in a fresh process
   whose CPU time and peak resident memory (``ru_maxrss``) are reported: x real time per
   CPU-second, reading included (opening the files too; the readers' libraries are imported
   before the clock starts: a process's start-up, reported apart).
2. The same for ``--short-minutes`` (default 5) of each reader (Neuralynx, Open Ephys binary,
   NWB, Intan ``.rhd``, Open Ephys legacy ``.continuous``; each with one gap), and reading
   alone, so the reader's share shows; and the floor: the same features from samples already
   in memory, no reader.
3. The naive baseline: neo's own chunked reading (one ``NeuralynxRawIO`` for the folder,
   ``get_analogsignal_chunk`` + ``rescale_signal_raw_to_float``) of the short Neuralynx session,
   in a fresh process: its resident memory is the session's size (neo's parser reads every
   record's count through its maps of the files, and keeps them), where rtdecode's reader
   releases the pages.

Each measurement runs in its own process (``--child``), so the writer's memory is not counted.
``--repeats N`` runs N whole rounds and shows each figure's median and range.
``--memory-limit-mb M`` (root, cgroup-v1) runs each child in a memory group of M MB from a
cold page cache: the file pages neo maps while parsing (the whole of an Intan or legacy Open
Ephys session) are charged to it and reclaimed at the limit, as on a machine with that much
memory; the group's peak is shown beside the peak RSS.
The figures go in ``benchmarks/RESULTS.md``; ``--record`` appends the run to
``benchmarks/results/bench_rigs.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _record import machine_info, record  # benchmarks/ is the script's folder

from rtdecode.config import FeatureConfig
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.simulator.rig_files import (
    NcsSessionWriter,
    write_intan,
    write_nwb,
    write_open_ephys_binary,
    write_open_ephys_legacy,
)

UV_PER_COUNT = 0.1  # +-3.3 mV in int16: the simulator's LFP fits
BLOCK_S = 10  # the simulated signal is generated in 10 s blocks


def _blocks(fs: float, n_ch: int, seconds: int, seed: int = 1):
    """``seconds`` of simulated sleep LFP as int16 counts, one block at a time; a few distinct
    blocks, each repeated with a shift (generating an hour at 32 kHz would take minutes)."""
    sim = LfpSimulator(SimulatorConfig(scenario="sleep", n_channels=n_ch, fs_hz=fs, seed=seed))
    bases = []
    for _ in range(3):
        data, _ = sim.generate(int(BLOCK_S * fs))
        bases.append(np.clip(np.round(data / UV_PER_COUNT), -32767, 32767).astype(np.int16))
    for k in range(seconds // BLOCK_S):
        yield np.roll(bases[k % 3], 97 * k, axis=0)


def write_sessions(
    folder: Path, minutes: float, short_minutes: float, n_ch: int, fs: float, drops: int
) -> dict:
    """The long Neuralynx session and the short one of each format; skips what exists."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"CSC{i + 1}" for i in range(n_ch)]
    out = {}
    for label, mins in (("long", minutes), ("short", short_minutes)):
        path = folder / f"neuralynx_{label}_{mins:g}min"
        records = int(mins * 60 * fs) // 512
        # dropped records spread over the session: neo scans every timestamp then
        dropped = [int(records * (k + 1) / (drops + 1)) for k in range(drops)]
        if not path.exists():
            t0 = time.perf_counter()
            tmp = path.with_name(path.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            with NcsSessionWriter(
                tmp, names, fs, bit_volts=UV_PER_COUNT * 1e-6, dropped_records=dropped
            ) as w:
                for block in _blocks(fs, n_ch, int(mins * 60)):
                    w.write(block)
            tmp.rename(path)
            print(f"wrote {path} in {time.perf_counter() - t0:.0f} s", flush=True)
        out[f"neuralynx_{label}"] = path
    seconds = int(short_minutes * 60)
    oe = folder / f"openephys_{short_minutes:g}min"
    if not oe.exists():
        counts = np.concatenate(list(_blocks(fs, n_ch, seconds)))
        write_open_ephys_binary(
            oe, counts, fs, bit_volts=UV_PER_COUNT, missing=[(counts.shape[0] // 2, 300)]
        )
        del counts
    out["openephys_short"] = oe
    nwb = folder / f"nwb_{short_minutes:g}min.nwb"
    if not nwb.exists():
        counts = np.concatenate(list(_blocks(fs, n_ch, seconds)))
        write_nwb(nwb, counts, {"raw": {"rate": fs, "conversion": UV_PER_COUNT * 1e-6}})
    out["nwb_short"] = nwb

    def whole_records(uv_per_count: float = UV_PER_COUNT) -> np.ndarray:
        """The short signal in whole 1024-sample records (legacy), whole 128-sample data
        blocks (Intan RHX, version 3.0), in counts of ``uv_per_count`` (rescaled a 10 s block
        at a time: 5 min of 64 ch at once would be 5 GB of float64)."""
        scale = UV_PER_COUNT / uv_per_count
        counts = np.concatenate(
            [np.round(b * scale).astype(np.int16) for b in _blocks(fs, n_ch, seconds)]
        )
        return counts[: counts.shape[0] // 1024 * 1024]

    intan = folder / f"intan_{short_minutes:g}min.rhd"
    if not intan.exists():
        counts = whole_records(0.195)  # the amplifiers' step; one jump of 300 samples
        gap = [(counts.shape[0] // 2048 * 1024, 300)]
        write_intan(intan, counts, fs, version=(3, 0), missing=gap)
    out["intan_short"] = intan
    legacy = folder / f"openephys_legacy_{short_minutes:g}min"
    if not legacy.exists():
        counts = whole_records()
        # one gap: neo then reads every record one by one (its gap mode)
        gap = [(counts.shape[0] // 2048 * 1024, 300)]
        write_open_ephys_legacy(legacy, counts, fs, bit_volts=UV_PER_COUNT, missing=gap)
    out["openephys-legacy_short"] = legacy
    return out


# The measurements, each in a fresh process -------------------------------------------------
def child(mode: str, path: Path, fs_hz: float) -> dict:
    i0 = os.times()
    # the libraries the readers import when first used: a process's start-up, paid once per
    # `rtdecode train` whatever the data's size (~1 s here, as much as 2 min of features),
    # reported apart; opening the files (headers, maps) stays in the reading
    import neo.rawio  # noqa: F401
    import pynwb  # noqa: F401

    from rtdecode.offline.datasets import _READ_CHUNK_SAMPLES as CHUNK
    from rtdecode.offline.datasets import Source, recording_features
    from rtdecode.offline.recordings import open_recording

    i1 = os.times()
    startup_cpu_s = (i1.user - i0.user) + (i1.system - i0.system)
    c0, t0 = os.times(), time.perf_counter()
    if mode == "features":
        # what rtdecode train does per recording: open, read in chunks, features per run
        feats = recording_features(Source(path, ()), FeatureConfig(fs_hz=fs_hz), ("a",))
        seconds, extra = feats.duration_s, {"windows": int(feats.end_s.size)}
    elif mode == "features_only":
        # the floor: the same features from samples already in memory (10 s, cycled), no reader
        from rtdecode.features.streaming import StreamingFeatures, one_blas_thread

        block = next(_blocks(fs_hz, 64, BLOCK_S)).astype(np.float32) * np.float32(UV_PER_COUNT)
        c0, t0 = os.times(), time.perf_counter()
        extractor = StreamingFeatures(FeatureConfig(fs_hz=fs_hz), block.shape[1])
        n_chunks = int(float(path.name) * fs_hz) // CHUNK
        rows = []
        with one_blas_thread():  # as recording_features
            for k in range(n_chunks):
                at = k * CHUNK % (block.shape[0] - CHUNK)
                rows += [row for _, row, _ in extractor.push(block[at : at + CHUNK])]
        np.stack(rows)
        seconds, extra = n_chunks * CHUNK / fs_hz, {"windows": len(rows)}
    elif mode == "read":
        rec = open_recording(path)
        for start, stop in rec.runs():
            for _ in rec.chunks(CHUNK, start, stop):  # the chunks the features read
                pass
        seconds, extra = rec.duration_s, {"runs": len(rec.runs())}
    elif mode == "neo":
        import neo.rawio

        reader = neo.rawio.NeuralynxRawIO(dirname=str(path), gap_tolerance_ms=0.01)
        reader.parse_header()
        fs = reader.get_signal_sampling_rate(0)
        done = 0
        for seg in range(reader.segment_count(0)):
            size = reader.get_signal_size(0, seg, 0)
            for i in range(0, size, 65536):
                raw = reader.get_analogsignal_chunk(0, seg, i, min(i + 65536, size), 0)
                reader.rescale_signal_raw_to_float(raw, dtype="float32", stream_index=0)
                done += raw.shape[0]
        seconds, extra = done / fs, {}
    else:
        raise SystemExit(f"unknown mode {mode}")
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "mode": mode,
        "seconds_of_data": seconds,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu,
        "x_realtime_per_cpu_s": seconds / cpu,
        "x_realtime_wall": seconds / (time.perf_counter() - t0),
        "peak_rss_mb": _peak_rss_mb(),
        "startup_cpu_s": startup_cpu_s,
        **extra,
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss
    keeps the parent's peak across fork and exec on Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_run(runs: list[dict]) -> dict:
    """The run of median speed per CPU-second (all its figures, as measured), with every
    run's speeds beside it."""
    speeds = sorted(r["x_realtime_per_cpu_s"] for r in runs)
    median = min(runs, key=lambda r: abs(r["x_realtime_per_cpu_s"] - speeds[len(speeds) // 2]))
    return {
        **median,
        "x_realtime_per_cpu_s_range": (speeds[0], speeds[-1]),
        "x_realtime_per_cpu_s_all": [r["x_realtime_per_cpu_s"] for r in runs],
    }


_CGROUP = Path("/sys/fs/cgroup/memory/rtdecode-bench-rigs")


def memory_cgroup(limit_mb: int) -> Path:
    """A cgroup-v1 memory group limited to ``limit_mb`` (file pages the children read are
    charged to it and reclaimed at the limit, as on a machine with that much memory)."""
    try:
        _CGROUP.mkdir(exist_ok=True)
        (_CGROUP / "memory.limit_in_bytes").write_text(str(limit_mb << 20))
    except OSError as exc:
        raise SystemExit(
            f"--memory-limit-mb: cannot make a memory cgroup at {_CGROUP} ({exc}); it needs "
            "root and the cgroup-v1 memory controller"
        ) from None
    return _CGROUP


def measure(mode: str, path: Path, fs_hz: float, cgroup: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), "--rate", str(fs_hz)]
    enter = None
    if cgroup is not None:
        # the files' pages must be read by the child to be charged to its group: none cached
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1")
        (cgroup / "memory.max_usage_in_bytes").write_text("0")

        def enter() -> None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    out = subprocess.run(cmd, capture_output=True, text=True, check=False, preexec_fn=enter)
    if out.returncode != 0:
        raise SystemExit(f"{mode} {path}: failed\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if cgroup is not None:
        result["cgroup_peak_mb"] = int((cgroup / "memory.max_usage_in_bytes").read_text()) / 2**20
        result["cgroup_limit_hits"] = int((cgroup / "memory.failcnt").read_text())
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="the long session (default 60)")
    ap.add_argument("--short-minutes", type=float, default=5.0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=32000.0)
    ap.add_argument("--drops", type=int, default=3, help="dropped records in each session")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/rtdecode-bench-rigs"))
    ap.add_argument("--keep", action="store_true", help="keep the sessions for another run")
    ap.add_argument(
        "--repeats", type=int, default=1, help="rounds of every measurement; the median is shown"
    )
    ap.add_argument(
        "--memory-limit-mb",
        type=int,
        help="run each measurement in a memory cgroup of this limit, from a cold page cache "
        "(root; drops the machine's page cache before each)",
    )
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], Path(a.child[1]), a.rate)))
        return 0

    need_gb = (a.minutes + 3 * a.short_minutes) * 60 * a.rate * a.channels * 2 * 1.03 / 1e9
    free_gb = shutil.disk_usage(a.dir.parent if not a.dir.exists() else a.dir).free / 1e9
    if need_gb > free_gb - 5:
        fit = max(1.0, (free_gb - 5) / need_gb * a.minutes)
        print(f"{need_gb:.0f} GB needed, {free_gb:.0f} GB free: the long session is {fit:.0f} min")
        a.minutes = float(int(fit))
    print(json.dumps(machine_info()))
    t0 = time.perf_counter()
    paths = write_sessions(a.dir, a.minutes, a.short_minutes, a.channels, a.rate, a.drops)
    print(f"sessions ready in {time.perf_counter() - t0:.0f} s", flush=True)
    plan = {
        "neuralynx_long_features": ("features", paths["neuralynx_long"]),
        "neuralynx_long_read": ("read", paths["neuralynx_long"]),
    }
    for fmt in ("neuralynx", "openephys", "nwb", "intan", "openephys-legacy"):
        plan[f"{fmt}_short_features"] = ("features", paths[f"{fmt}_short"])
        plan[f"{fmt}_short_read"] = ("read", paths[f"{fmt}_short"])
    plan["neo_naive_short_read"] = ("neo", paths["neuralynx_short"])
    # seconds of data, passed as the path's name
    plan["features_only_short"] = ("features_only", Path(str(a.short_minutes * 60)))
    rounds: dict[str, list[dict]] = {name: [] for name in plan}
    cgroup = memory_cgroup(a.memory_limit_mb) if a.memory_limit_mb else None
    try:
        # whole rounds one after the other: a slow spell of the VM (its speed moves by up to
        # 1.8x within minutes) then touches every measurement of a round, not one reader
        for _ in range(a.repeats):
            for name, (mode, path) in plan.items():
                rounds[name].append(measure(mode, path, a.rate, cgroup))
    finally:
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
    size_gb = a.minutes * 60 * a.rate * a.channels * 2 * (1044 / 1024) / 1e9
    print(
        f"\n{a.channels} ch x {a.rate / 1000:g} kHz; long: Neuralynx {a.minutes:g} min "
        f"(~{size_gb:.1f} GB), {a.drops} dropped records; short: {a.short_minutes:g} min\n"
    )
    runs = {name: _median_run(rs) for name, rs in rounds.items()}
    print(
        f"| what | data | x real time per CPU-second (median of {a.repeats}: range) "
        "| x real time (wall) | peak RSS | start-up (imports, not included) |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in runs.items():
        lo, hi = r["x_realtime_per_cpu_s_range"]
        print(
            f"| {name} | {r['seconds_of_data'] / 60:.1f} min | {r['x_realtime_per_cpu_s']:.0f}x "
            f"({lo:.0f}-{hi:.0f}x) | {r['x_realtime_wall']:.0f}x | {r['peak_rss_mb']:.0f} MB"
            + (f" (group: {r['cgroup_peak_mb']:.0f} MB)" if "cgroup_peak_mb" in r else "")
            + " "
            f"| {r['startup_cpu_s']:.2f} s |"
        )
    if a.record:
        record(
            "bench_rigs",
            runs,
            setup={
                "channels": a.channels,
                "rate_hz": a.rate,
                "long_minutes": a.minutes,
                "short_minutes": a.short_minutes,
                "dropped_records": a.drops,
                "repeats": a.repeats,
                "memory_limit_mb": a.memory_limit_mb,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
