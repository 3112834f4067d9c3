"""Decoder CPU and end-to-end latency, beside the naive baseline, in one run.

    python benchmarks/bench_decoder.py [--channels 64] [--rate 32000] [--duration 60]
                                       [--no-baseline] [--record]

Three kinds of process, as in a lab: `rtdecode simulate` (the source), the decoder under test
(`rtdecode run --headless`, then the naive baseline `benchmarks/naive_baseline.py`), and this
script as the consumer (a stimulator would be). Latency = consumer's receipt time minus the
decision's timestamp (= the source's push time of the window's last sample). CPU = the decoder
process's user+system time over wall time (psutil), in cores. Lost samples, gaps and overruns come
from rtdecode's decision log. `--record` appends the run to
benchmarks/results/bench_decoder.jsonl (see benchmarks/RESULTS.md).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pylsl
from _record import record  # benchmarks/ is the script's folder

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.streams import SCORES_STREAM_NAME

HERE = Path(__file__).resolve().parent
RT = [sys.executable, "-m", "rtdecode"]


def machine() -> str:
    freq = psutil.cpu_freq()
    return (
        f"{platform.node()} {platform.machine()}, {psutil.cpu_count()} cores"
        f"{f' @ {freq.max:.0f} MHz' if freq and freq.max else ''}, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}, pylsl {pylsl.__version__} "
        f"(liblsl {pylsl.library_version()})"
    )


def _figures(rows: list) -> dict:
    """The record's figures: one dict per decoder (``rtdecode``, ``naive``, ``mne_lsl``); each
    baseline's also holds its CPU per decision and latency over rtdecode's (``*_ratio_x``)."""
    keys = {"rtdecode": "rtdecode", "naive": "naive", "MNE-LSL": "mne_lsl"}
    figures = {}
    for label, r in rows:
        f = figures[keys.get(label.split()[0], label)] = {
            "decisions_per_s": r["decisions_per_s"],
            "cpu_cores": r["cpu_cores"],
            "cpu_ms_per_decision": r["cpu_ms_per_decision"],
            "latency_p50_ms": r["p50_ms"],
            "latency_p99_ms": r["p99_ms"],
            "latency_max_ms": r["max_ms"],
        }
        if r["gaps"] != "-":  # from rtdecode's decision log; the baselines have none
            f.update(gaps=r["gaps"], lost_samples=r["lost"], overruns=r["overruns"])
    o = figures["rtdecode"]
    for key, b in figures.items():
        if key != "rtdecode":
            b["cpu_per_decision_ratio_x"] = b["cpu_ms_per_decision"] / o["cpu_ms_per_decision"]
            b["latency_p50_ratio_x"] = b["latency_p50_ms"] / o["latency_p50_ms"]
            b["latency_p99_ratio_x"] = b["latency_p99_ms"] / o["latency_p99_ms"]
    return figures


def measure(cmd, scores_name, source_id_part, duration, warmup=5.0):
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PACKAGE_PARENT
    )
    inlet = None
    deadline = time.monotonic() + 40
    while inlet is None and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd} exited early:\n{proc.stdout.read()[-2000:]}")
        for s in pylsl.resolve_byprop("name", scores_name, timeout=1.0):
            if source_id_part in s.source_id():
                inlet = pylsl.StreamInlet(s, max_buflen=60, processing_flags=0)
    if inlet is None:
        proc.kill()
        raise SystemExit(f"no {scores_name} stream from {cmd}")
    inlet.open_stream(10)
    t_warm = time.monotonic() + warmup
    while time.monotonic() < t_warm:
        inlet.pull_sample(timeout=0.1)
    ps = psutil.Process(proc.pid)
    cpu0, w0 = sum(ps.cpu_times()[:2]), time.monotonic()
    lat = []
    while time.monotonic() - w0 < duration:
        x, ts = inlet.pull_sample(timeout=0.5)
        if x is not None:
            lat.append(pylsl.local_clock() - ts)
    wall = time.monotonic() - w0
    cpu = (sum(ps.cpu_times()[:2]) - cpu0) / wall
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    lat_ms = np.array(lat) * 1e3
    return {
        "decisions": len(lat),
        "decisions_per_s": len(lat) / wall,
        "cpu_cores": cpu,
        "p50_ms": float(np.percentile(lat_ms, 50)) if lat else float("nan"),
        "p99_ms": float(np.percentile(lat_ms, 99)) if lat else float("nan"),
        "max_ms": float(lat_ms.max()) if lat else float("nan"),
        "cpu_ms_per_decision": 1e3 * cpu * wall / max(len(lat), 1),
        "output": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=32000.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument(
        "--baseline-duration",
        type=float,
        default=None,
        help="seconds for the naive baseline (default: --duration)",
    )
    ap.add_argument("--scenario", default="seizure")
    ap.add_argument("--model", default=None)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-mne-lsl", action="store_true", help="skip the MNE-LSL StreamLSL baseline")
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    from rtdecode.models import bundled_model_path

    model = a.model or str(bundled_model_path(a.scenario))
    name = f"bench{os.getpid()}"
    print(f"machine: {machine()}")
    print(
        f"stream: {a.channels} ch x {a.rate:g} Hz float32, 1 ms chunks; window 2 s, hop 0.1 s; "
        f"{a.duration:g} s measured for rtdecode, {a.baseline_duration or a.duration:g} s for the baseline"
    )
    sim = subprocess.Popen(
        RT
        + [
            "simulate",
            "--scenario",
            a.scenario,
            "--channels",
            str(a.channels),
            "--rate",
            str(a.rate),
            "--name",
            name,
            "--duration",
            str(a.duration + (a.baseline_duration or a.duration) + 200),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PACKAGE_PARENT,
    )
    time.sleep(2.0)
    rows = []
    try:
        log = Path(tempfile.mkdtemp()) / "decisions.jsonl"
        ours = measure(
            RT
            + [
                "run",
                "--model",
                model,
                "--source",
                name,
                "--headless",
                "--log",
                str(log),
                "--status-every",
                "0",
            ],
            SCORES_STREAM_NAME,
            name,
            a.duration,
        )
        last = [json.loads(x) for x in log.read_text().splitlines() if '"end_sample"' in x][-1]
        ours.update(gaps=last["gaps"], lost=last["missing_samples"], overruns=last["overruns"])
        rows.append(("rtdecode", ours))
        if not a.no_baseline:
            base = measure(
                [sys.executable, str(HERE / "naive_baseline.py"), "--source", name],
                "naive-scores",
                name,
                a.baseline_duration or a.duration,
            )
            base.update(gaps="-", lost="-", overruns="-")
            rows.append(("naive baseline (pylsl + welch + xgboost)", base))
        if not a.no_mne_lsl:
            mne = measure(
                [sys.executable, str(HERE / "mne_lsl_baseline.py"), "--source", name],
                "mnelsl-scores",
                name,
                a.baseline_duration or a.duration,
            )
            mne.update(gaps="-", lost="-", overruns="-")
            rows.append(("MNE-LSL StreamLSL buffer + welch + xgboost", mne))
    finally:
        sim.kill()
    header = (
        "| decoder | decisions/s | CPU (cores) | CPU ms/decision | latency p50 ms | p99 ms | "
        "max ms | gaps | lost samples | overruns |"
    )
    lines = [header, "|" + "---|" * 10]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['decisions_per_s']:.2f} | {r['cpu_cores']:.3f} | "
            f"{r['cpu_ms_per_decision']:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['max_ms']:.2f} | {r['gaps']} | {r['lost']} | {r['overruns']} |"
        )
    o = rows[0][1]
    for label, b in rows[1:]:
        lines.append("")
        lines.append(
            f"Ratios {label.split(' (')[0]} / rtdecode: CPU per decision "
            f"x{b['cpu_ms_per_decision'] / o['cpu_ms_per_decision']:.1f}, "
            f"latency p50 x{b['p50_ms'] / o['p50_ms']:.0f}, "
            f"p99 x{b['p99_ms'] / o['p99_ms']:.0f}"
        )
    table = "\n".join(lines)
    print(table)
    if a.record:
        record(
            "bench_decoder",
            _figures(rows),
            setup={
                "channels": a.channels,
                "rate_hz": a.rate,
                "chunk_ms": 1,
                "window_s": 2,
                "hop_s": 0.1,
                "duration_s": a.duration,
                "baseline_duration_s": a.baseline_duration or a.duration,
                "scenario": a.scenario,
                "model": Path(model).name,
            },
        )


if __name__ == "__main__":
    main()
