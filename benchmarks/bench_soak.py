"""Soak: hours of simulated 32 kHz x 64 ch data pushed faster than real time through the decoder.

    python benchmarks/bench_soak.py [--hours 24] [--speed 20] [--channels 64] [--rate 32000]
                                    [--record]

This script is the LSL source: it pushes a pool of simulated seizure-scenario LFP (generated
once, then looped) at ``--speed`` x real time, with exact timestamps ``t0 + i / fs``. The decoder
under test is a separate `rtdecode run --headless --log ... --log-rotate-mb 64` process with the
bundled seizure model; a decision is never stale here (``--max-age-s`` is huge: the stream runs
ahead of the wall clock by design). Reported, from outside the decoder:

* lost samples: samples pushed minus samples the decoder decided on, and every gap, skip or
  timestamp reset in its log (must all be 0, or accounted for by a logged event);
* decisions: how many, and whether each follows the previous one by exactly one hop;
* RSS of the decoder process after warm-up (first 10 % of the run) and its growth since;
* timestamp drift: the largest difference between a decision's timestamp and
  ``t0 + (end_sample - 1) / fs``, the source's stamp of the window's last sample.

``--record`` appends the run to benchmarks/results/bench_soak.jsonl (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pylsl
from _record import record  # noqa: E402  (benchmarks/ is the script's folder)
from bench_decoder import machine  # noqa: E402

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.models import bundled_model_path
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig

MODEL = bundled_model_path("seizure")  # the installed package's, wherever it is installed


def _read_logs(folder: Path) -> tuple[list[dict], list[dict]]:
    decisions, events = [], []
    for path in sorted(folder.glob("decisions*.jsonl")):
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                (events if "event" in d else decisions).append(d)
    decisions.sort(key=lambda d: d["end_sample"])
    return decisions, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--speed", type=float, default=20.0, help="x real time")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=32000.0)
    ap.add_argument("--pool-s", type=float, default=20.0, help="seconds simulated, then looped")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    fs, n_ch = args.rate, args.channels
    print(machine(), flush=True)

    sim = LfpSimulator(SimulatorConfig(scenario="seizure", n_channels=n_ch, fs_hz=fs, seed=1))
    pool, _ = sim.generate(int(args.pool_s * fs))
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    chunk = int(fs * 0.05)
    total = int(args.hours * 3600 * fs) // chunk * chunk
    name = f"soak-{time.monotonic_ns()}"
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(name, "EEG", n_ch, fs, "float32", name), chunk_size=chunk, max_buffered=60
    )

    folder = Path(tempfile.mkdtemp(prefix="rtdecode-soak-"))
    log = folder / "decisions.jsonl"
    decoder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "run",
            "--model",
            str(MODEL),
            "--source",
            name,
            "--headless",
            "--log",
            str(log),
            "--log-rotate-mb",
            "64",
            "--max-age-s",
            "1e9",
            "--stall-s",
            "30",
            "--status-every",
            "60",
        ],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if not outlet.wait_for_consumers(60):
        decoder.kill()
        raise SystemExit(f"the decoder never connected:\n{decoder.stdout.read()[-2000:]}")
    proc = psutil.Process(decoder.pid)
    t0 = pylsl.local_clock()
    wall0 = time.monotonic()
    pushed = 0
    rss_warm = None
    rss_samples = []
    next_report = wall0
    warm = int(10 * fs)  # the first 10 s at real time: the decoder's first windows (FFT plans,
    # first inferences) take longer, and 20x faster that is seconds of stream behind
    while pushed < total:
        due = pushed / fs if pushed < warm else warm / fs + (pushed - warm) / fs / args.speed
        delay = wall0 + due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        at = pushed % pool.shape[0]
        n = min(chunk, pool.shape[0] - at)
        outlet.push_chunk(pool[at : at + n], t0 + (pushed + n - 1) / fs)
        pushed += n
        if time.monotonic() >= next_report:
            next_report += 30.0
            rss = proc.memory_info().rss
            rss_samples.append(rss)
            if rss_warm is None and pushed >= 0.1 * total:
                rss_warm = rss
            behind = -delay
            print(
                f"  {pushed / fs / 3600:6.2f} h pushed in {(time.monotonic() - wall0) / 60:5.1f}"
                f" min, decoder RSS {rss / 2**20:6.1f} MB, source behind pace {behind:+.1f} s",
                flush=True,
            )
            if decoder.poll() is not None:
                raise SystemExit(f"decoder exited:\n{decoder.stdout.read()[-3000:]}")
    wall_push = time.monotonic() - wall0
    # wait for the decoder to decide on the last window
    hop = int(0.1 * fs)
    deadline = time.monotonic() + 120
    last_end = 0
    while time.monotonic() < deadline and last_end < total - hop:
        time.sleep(1.0)
        with open(log) as f:
            tail = f.readlines()[-5:]
        ends = [json.loads(x)["end_sample"] for x in tail if '"end_sample"' in x]
        last_end = max(ends, default=last_end)
    rss_end = proc.memory_info().rss
    cpu = proc.cpu_times()
    wall = time.monotonic() - wall0
    decoder.terminate()
    out, _ = decoder.communicate(timeout=30)
    del outlet

    decisions, events = _read_logs(folder)
    ends = np.array([d["end_sample"] for d in decisions], dtype=np.int64)
    stamps = np.array([d["t"] for d in decisions])
    steps = np.diff(ends)
    kinds = {}
    for e in events:
        kinds[e["event"]] = kinds.get(e["event"], 0) + 1
    drift = np.abs(stamps - (t0 + (ends - 1) / fs))
    missing = int(decisions[-1]["missing_samples"]) if decisions else -1
    unaccounted = int(total - ends[-1]) if ends.size else total
    result = {
        "hours": pushed / fs / 3600,
        "wall_min": wall / 60,
        "speed": (pushed - warm) / fs / (wall_push - warm / fs),
        "decisions": int(ends.size),
        "expected": int((total - 2 * fs) // hop + 1),
        "irregular_steps": int(np.count_nonzero(steps != hop)),
        "gaps_or_skips": {k: v for k, v in kinds.items() if k not in ("start", "stop")},
        "missing_samples": missing,
        "not_decided_at_end": unaccounted,
        "rss_warm_mb": (rss_warm or rss_samples[0]) / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "rss_max_after_warm_mb": max(rss_samples[len(rss_samples) // 10 :] + [rss_end]) / 2**20,
        "drift_max_us": float(drift.max() * 1e6) if drift.size else float("nan"),
        "cpu_cores": (cpu.user + cpu.system) / wall,
        "log_files": len(list(folder.glob("decisions*.jsonl"))),
        # the simulated signal is clean: any window with a bad channel is a false alarm
        "windows_with_bad_channels": sum(d.get("quality", 1.0) < 1.0 for d in decisions),
    }
    growth = result["rss_max_after_warm_mb"] - result["rss_warm_mb"]
    print(json.dumps(result, indent=2))
    said = [x for x in out.splitlines() if "INFO|" not in x]
    print(
        "decoder said (warnings and last status):",
        *[x for x in said if "WARN" in x or "behind" in x or "overrun" in x][:20],
        *said[-1:],
        sep="\n  ",
    )
    where = np.flatnonzero(steps != hop)
    if where.size:
        print("irregular steps at end_sample:", [(int(ends[i]), int(steps[i])) for i in where[:10]])
    table = (
        "\n### Soak: `python benchmarks/bench_soak.py "
        f"--hours {args.hours:g} --speed {args.speed:g}`\n\n"
        f"Machine: {machine()}\n\n"
        "| simulated | wall | decisions (expected) | irregular steps | missing samples | "
        "gaps/skips/resets | RSS after warm-up -> max (growth) | timestamp drift max | "
        "decoder CPU |\n|---|---|---|---|---|---|---|---|---|\n"
        f"| {result['hours']:.2f} h of {n_ch} ch x {fs / 1000:g} kHz | "
        f"{result['wall_min']:.1f} min ({result['speed']:.1f}x) | {result['decisions']} "
        f"({result['expected']}) | {result['irregular_steps']} | {missing} | "
        f"{result['gaps_or_skips'] or 'none'} | {result['rss_warm_mb']:.1f} -> "
        f"{result['rss_max_after_warm_mb']:.1f} MB ({growth:+.1f}) | "
        f"{result['drift_max_us']:.2f} us | {result['cpu_cores']:.2f} cores at "
        f"{result['speed']:.0f}x |\n"
    )
    print(table)
    if args.record:
        record(
            "bench_soak",
            {
                "simulated_h": result["hours"],
                "wall_min": result["wall_min"],
                "speed_x": result["speed"],
                "decisions": result["decisions"],
                "decisions_expected": result["expected"],
                "irregular_steps": result["irregular_steps"],
                "missing_samples": missing,
                "not_decided_at_end_samples": result["not_decided_at_end"],
                "log_events": result["gaps_or_skips"],  # gaps, skips, resets... by kind
                "rss_after_warmup_mb": result["rss_warm_mb"],
                "rss_max_after_warmup_mb": result["rss_max_after_warm_mb"],
                "rss_growth_mb": growth,
                "rss_end_mb": result["rss_end_mb"],
                "timestamp_drift_max_us": result["drift_max_us"],
                "decoder_cpu_cores": result["cpu_cores"],
                "log_files": result["log_files"],
                "windows_with_bad_channels": result["windows_with_bad_channels"],
            },
            setup={
                "channels": n_ch,
                "rate_hz": fs,
                "hours": args.hours,
                "speed_x": args.speed,
                "pool_s": args.pool_s,
                "scenario": "seizure",
            },
        )


if __name__ == "__main__":
    main()
