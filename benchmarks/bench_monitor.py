"""Monitor redraw rate and what it costs the decoder, at 32 kHz x 64 channels.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_monitor.py [--duration 30] [--record]

The simulator runs as its own process; the decoder (bundled seizure model) runs here, first
alone, then with `rtdecode monitor` (offscreen) as its own process over the decoder's LSL
outlets, as `rtdecode run --monitor` starts it. Printed: the frames per second the window
achieved, its refresh cost and CPU, and the decoder's own latency p50/p99 (window end -> decision
published) and CPU in both runs. ``--record`` appends the run to
benchmarks/results/bench_monitor.jsonl (see benchmarks/RESULTS.md).
"""

import argparse
import os
import platform
import subprocess
import sys
import time

import psutil
from _record import command_line, record  # benchmarks/ is the script's folder

from rtdecode.acquisition.acquisition import LslAcquisition
from rtdecode.acquisition.inlet import StreamSelector, resolve_stream
from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.decoding.decoder import Decoder
from rtdecode.decoding.model import OnnxModel
from rtdecode.models import bundled_model_path
from rtdecode.outputs.decisions import DecisionOutputs


def decoder_for(name: str) -> Decoder:
    model = OnnxModel(bundled_model_path("seizure"))
    acq = LslAcquisition(resolve_stream(StreamSelector(name=name), timeout_s=20))
    out = DecisionOutputs(
        model.contract.classes,
        input_source_id=acq.source_id,
        input_name=name,
        hop_s=model.contract.features.hop_s,
    )
    return Decoder(model, acq, out)


def measure(name: str, duration: float, monitor: bool) -> dict:
    import re

    from rtdecode.outputs.telemetry import DecoderTelemetry

    decoder = decoder_for(name)
    decoder._telemetry = DecoderTelemetry(
        decoder.model.contract,
        input_source_id=decoder.acquisition.source_id,
        input_name=name,
        channel_labels=decoder.acquisition.channel_labels,
    )
    proc = psutil.Process()
    decoder.start()
    child = None
    if monitor:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtdecode",
                "monitor",
                "--source",
                name,
                "--duration",
                str(duration + 6),
            ],
            cwd=PACKAGE_PARENT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    time.sleep(5)
    c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    time.sleep(duration)
    wall = time.monotonic() - t0
    cpu = (sum(proc.cpu_times()[:2]) - c0) / wall
    status = decoder.status()
    fps = frame_ms = mon_cpu = float("nan")
    if child is not None:
        out, _ = child.communicate(timeout=60)
        m = re.search(r"\(([\d.]+) fps\), refresh median ([\d.]+) ms, ([\d.]+) cores", out)
        if m:
            fps, frame_ms, mon_cpu = (float(g) for g in m.groups())
        else:
            print(out[-2000:])
    decoder.close()
    return {
        "fps": fps,
        "frame_ms": frame_ms,
        "mon_cpu": mon_cpu,
        "cpu": cpu,
        "p50": status.latency_p50_ms,
        "p99": status.latency_p99_ms,
        "overruns": status.overruns,
        "lost": status.missing_samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    machine = (
        f"{platform.node()} {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )
    print(f"machine: {machine}")
    name = f"bench-monitor-{os.getpid()}"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "simulate",
            "--scenario",
            "seizure",
            "--name",
            name,
            "--duration",
            str(3 * a.duration + 60),
        ],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        rows = [
            "| run | monitor fps | monitor refresh ms (median) | monitor CPU (cores) | "
            "decoder CPU (cores) | decision latency p50 ms | p99 ms | overruns | lost |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        measured = {}  # for --record
        for label, monitor in (
            ("decoder alone", False),
            ("decoder + `rtdecode monitor` process", True),
        ):
            r = measure(name, a.duration, monitor)
            measured["with_monitor" if monitor else "decoder_alone"] = r
            rows.append(
                f"| {label} | {r['fps']:.1f} | {r['frame_ms']:.1f} | {r['mon_cpu']:.2f} | "
                f"{r['cpu']:.3f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['overruns']} | "
                f"{r['lost']} |"
            )
            print(rows[-1], flush=True)
    finally:
        sim.terminate()
        sim.wait(10)
    if a.record:
        figures = {}
        for run, r in measured.items():
            figures[run] = {
                "decoder_cpu_cores": r["cpu"],
                "latency_p50_ms": r["p50"],
                "latency_p99_ms": r["p99"],
                "overruns": r["overruns"],
                "lost_samples": r["lost"],
            }
            if run == "with_monitor":
                figures[run].update(
                    monitor_fps=r["fps"],
                    monitor_refresh_median_ms=r["frame_ms"],
                    monitor_cpu_cores=r["mon_cpu"],
                )
        record(
            "bench_monitor",
            figures,
            f"QT_QPA_PLATFORM=offscreen {command_line()}",
            setup={
                "channels": 64,
                "rate_hz": 32000,
                "duration_s": a.duration,
                "scenario": "seizure",
            },
        )


if __name__ == "__main__":
    sys.exit(main())
