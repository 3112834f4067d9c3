"""Where the decoder's CPU goes, per thread, on a live simulator stream.

    python benchmarks/bench_threads.py [--channels 64] [--seconds 20] [--record]

Measured twice in one run, alternating: with the acquisition's receive low-water mark on
liblsl's data socket (the default) and without it (``unmark_socket``).

The simulator (`rtdecode simulate`) runs as its own process; the decoder runs in this process
(as `rtdecode run` builds it), so its threads can be read from /proc (Linux): the decode and
acquisition threads, liblsl's receiving thread, and the rest. CPU = user + system time of each
thread over ``--seconds``, after 8 s of warm-up, in cores. ``--record`` appends the run to
benchmarks/results/bench_threads.jsonl (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

from _record import record  # noqa: E402  (benchmarks/ is the script's folder)
from bench_decoder import machine  # noqa: E402

from rtdecode.acquisition.inlet import StreamSelector
from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.cli.live import _open_decoder
from rtdecode.models import bundled_model_path


def thread_ticks() -> dict[str, int]:
    """User + system clock ticks of each thread of this process, by thread id."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


def measure(n_channels: int, seconds: float, marked: bool, rnd: int):
    """CPU per thread (cores, by thread name) of a decoder on a simulator stream, and its
    status at the end."""
    name = f"threads-{os.getpid()}-{rnd}-{int(marked)}"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtdecode",
            "simulate",
            "--scenario",
            "seizure",
            "--channels",
            str(n_channels),
            "--name",
            name,
            "--duration",
            str(seconds + 60),
        ],
        cwd=PACKAGE_PARENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        decoder = _open_decoder(
            str(bundled_model_path("seizure")),
            StreamSelector(name=name),
            resolve_timeout=20,
            log_path=None,
            hysteresis_args=None,
        )
        if not marked:
            decoder.acquisition.unmark_socket()
        with decoder:
            decoder.wait(8.0)
            t0, w0 = thread_ticks(), time.monotonic()
            decoder.wait(seconds)
            t1, wall = thread_ticks(), time.monotonic() - w0
            names = {str(t.native_id): t.name for t in threading.enumerate()}
            status = decoder.status()
    finally:
        sim.terminate()
        sim.wait(10)
    hz = os.sysconf("SC_CLK_TCK")
    by_name: dict[str, float] = {}
    for tid, ticks in t1.items():
        label = names.get(tid, "other")  # liblsl's, onnxruntime's and BLAS's threads
        by_name[label] = by_name.get(label, 0.0) + (ticks - t0.get(tid, 0)) / hz / wall
    return by_name, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    print(machine(), flush=True)
    results = []
    for rnd in range(2):
        for marked in (True, False):
            results.append((marked, measure(a.channels, a.seconds, marked, rnd)))
    lines = [
        "| socket mark | decode | acquire | liblsl receiver and others | total | "
        "latency p50 / p99 ms (in process) | lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for marked, (by_name, status) in results:
        other = sum(
            c for k, c in by_name.items() if k not in ("rtdecode-decode", "rtdecode-acquire")
        )
        lines.append(
            f"| {'yes' if marked else 'no'} | {by_name.get('rtdecode-decode', 0):.4f} | "
            f"{by_name.get('rtdecode-acquire', 0):.4f} | {other:.4f} | "
            f"{sum(by_name.values()):.4f} | {status.latency_p50_ms:.2f} / "
            f"{status.latency_p99_ms:.2f} | {status.missing_samples} |"
        )
    table = "\n".join(lines)
    print(table)
    if a.record:
        runs = []
        for marked, (by_name, status) in results:
            decode = by_name.get("rtdecode-decode", 0.0)
            acquire = by_name.get("rtdecode-acquire", 0.0)
            total = sum(by_name.values())
            runs.append(
                {
                    "socket_mark": marked,
                    "decode_cores": decode,
                    "acquire_cores": acquire,
                    "liblsl_and_other_cores": total - decode - acquire,
                    "total_cores": total,
                    "latency_p50_ms": status.latency_p50_ms,
                    "latency_p99_ms": status.latency_p99_ms,
                    "lost_samples": status.missing_samples,
                }
            )
        record(
            "bench_threads",
            {"runs": runs},
            setup={"channels": a.channels, "rate_hz": 32000, "seconds": a.seconds},
        )


if __name__ == "__main__":
    main()
