"""Speed of the synthetic LFP generator and CPU share of the real-time LSL source.

Prints the machine, then:

1. the generator at 32 kHz x 64 channels: times faster than real time and CPU ms per simulated
   second, for 0.1 s blocks (what the LSL source uses) and 1 s blocks, both scenarios;
2. the naive baseline in the same run: every channel's sources filtered per channel instead of
   latent sources mixed into channels;
3. the channel mix on the real shapes: BLAS matmul against einsum (CPU time vs wall time shows
   BLAS worker threads spinning);
4. the LSL source pushing 32-sample chunks at real-time pace for ``--seconds`` (default 10 s)
   with one consumer in a separate process: CPU share of the source process (all of its
   threads, liblsl's included), the consumer's sample count and delivery latency, and the
   median latency at the best and worst chunk position within the source's generation block
   (a chunk held up by the generating would show at one position).

Run: ``PYTHONPATH=. python benchmarks/bench_simulator.py [--seconds 10] [--no-consumer]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np
import scipy
from scipy import signal

from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.simulator.source import _BLOCK_S, run_lsl_source

FS = 32000.0
N_CH = 64


def machine_info() -> None:
    import pylsl

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    print("== machine")
    print(f"platform      {platform.platform()}")
    print(f"processor     {platform.processor() or platform.machine()}")
    print(f"cpu count     {os.cpu_count()} (usable by this process: {affinity})")
    try:
        print(f"load average  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass
    print(f"python        {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"numpy         {np.__version__}")
    print(f"scipy         {scipy.__version__}")
    print(f"pylsl         {pylsl.__version__} (liblsl {pylsl.library_version()})")


def time_generator(scenario: str, block_s: float, total_s: float) -> tuple[float, float]:
    """Return (times faster than real time by wall clock, CPU ms per simulated second)."""
    sim = LfpSimulator(SimulatorConfig(scenario, n_channels=N_CH, fs_hz=FS, seed=0))
    block = round(block_s * FS)
    sim.generate(block)  # warm caches and allocator
    n_blocks = max(1, round(total_s / block_s))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n_blocks):
        sim.generate(block)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    simulated = n_blocks * block / FS
    return simulated / wall, 1e3 * cpu / simulated


def naive_generate(rng: np.random.Generator, filters: list[np.ndarray], n: int) -> np.ndarray:
    """Baseline: each channel gets its own noise through every source filter."""
    out = np.zeros((N_CH, n))
    for sos in filters:
        out += signal.sosfilt(sos, rng.standard_normal((N_CH, n)), axis=-1)
    out += rng.standard_normal((N_CH, n))
    return np.ascontiguousarray(out.T, dtype=np.float32)


def time_naive(total_s: float) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    filters = [
        np.array([[1.0, 0.0, 0.0, 1.0, -np.exp(-2 * np.pi / FS), 0.0]]),
        np.array([[1.0, 0.0, 0.0, 1.0, -np.exp(-2 * np.pi / FS), 0.0]]),
        np.array([[1.0, 0.0, 0.0, 1.0, -np.exp(-2 * np.pi * 40 / FS), 0.0]]),
        signal.butter(3, [1, 4], btype="bandpass", fs=FS, output="sos"),
        signal.butter(3, [6.5, 8.5], btype="bandpass", fs=FS, output="sos"),
        signal.butter(2, [100, 1000], btype="bandpass", fs=FS, output="sos"),
    ]
    block = round(0.1 * FS)
    naive_generate(rng, filters, block)
    n_blocks = round(total_s / 0.1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n_blocks):
        naive_generate(rng, filters, block)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    simulated = n_blocks * block / FS
    return simulated / wall, 1e3 * cpu / simulated


def time_mix() -> None:
    n, k = round(0.1 * FS), 10
    rng = np.random.default_rng(0)
    sources = rng.standard_normal((n, k)).astype(np.float32)
    gains = rng.random((k, N_CH)).astype(np.float32)
    # einsum first: an OpenBLAS worker left spinning by the matmul run would bill its CPU to
    # whatever runs next.
    for label, fn in [
        ("einsum", lambda: np.einsum("nk,kc->nc", sources, gains)),
        ("matmul (BLAS)", lambda: sources @ gains),
    ]:
        fn()
        reps = 200
        # Interleave a little numpy work as generate() does, so a spinning BLAS worker
        # shows up as CPU time without wall time.
        filler = np.empty((n, N_CH), np.float32)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(reps):
            fn()
            rng.standard_normal(filler.shape, dtype=np.float32, out=filler)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(
            f"  {label:14s} + noise fill: CPU {1e3 * cpu / reps:6.3f} ms, "
            f"wall {1e3 * wall / reps:6.3f} ms per 0.1 s block"
        )


CONSUMER = r"""
import json, sys, time
import numpy as np
import pylsl
name, n_ch, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
found = pylsl.resolve_byprop("name", name, 1, 20.0)
inlet = pylsl.StreamInlet(found[0], max_chunklen=32)
inlet.open_stream(20.0)
buf = np.empty((4096, n_ch), np.float32)
n = 0
lat = []
stamps = []
# Stop 2 s after the last data (allow 30 s for the first).
last = time.monotonic() + 28.0
while time.monotonic() - last < 2.0:
    # Non-blocking pull + short sleep: a blocking pull waits to fill the whole buffer, which
    # would measure the buffer length, not the delivery latency.
    _, ts = inlet.pull_chunk(timeout=0.0, max_samples=len(buf), dest_obj=buf)
    if ts:
        now = pylsl.local_clock()
        lat.append(now - ts[-1])
        stamps.append(ts[-1])
        n += len(ts)
        last = time.monotonic()
    else:
        time.sleep(0.0005)
lat = np.array(lat) * 1e3
# the position of each pull's newest chunk within the source's generation block (chunks_per_block
# pushes): a chunk held up by the generation of the next block shows at one position
per_block = int(sys.argv[4])
pos = np.round((np.array(stamps) - stamps[0]) * float(sys.argv[5]) / int(sys.argv[6])).astype(int) % per_block
by_pos = [float(np.median(lat[pos == k])) for k in range(per_block) if (pos == k).any()]
print(json.dumps({"samples": n, "pulls": len(lat), "latency_ms_median": float(np.median(lat)),
                  "latency_ms_p99": float(np.percentile(lat, 99)),
                  "latency_ms_max": float(lat.max()),
                  "median_by_position_ms": [min(by_pos), max(by_pos)]}))
"""


def lsl_cpu_share(seconds: float, with_consumer: bool, chunk: int) -> None:
    name = f"rtdecode-bench-{os.getpid()}"
    cfg = SimulatorConfig("seizure", n_channels=N_CH, fs_hz=FS, seed=0)
    consumer = None
    if with_consumer:
        consumer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONSUMER,
                name,
                str(N_CH),
                str(seconds),
                str(max(1, round(_BLOCK_S * FS / chunk))),
                str(FS),
                str(chunk),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
    started = threading.Event()
    stop = threading.Event()
    marks: dict[str, float] = {}
    result: dict[str, int] = {}

    def on_state(state: str, ts: float) -> None:
        if not started.is_set():
            marks["cpu0"], marks["wall0"] = time.process_time(), time.perf_counter()
            started.set()

    def source() -> None:
        result["pushed"] = run_lsl_source(
            cfg,
            name,
            chunk_samples=chunk,
            stop_event=stop,
            on_state_change=on_state,
            wait_for_consumers_s=20.0 if with_consumer else 0.0,
        )

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Capture(level=logging.INFO)
    log = logging.getLogger("rtdecode")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    thread = threading.Thread(target=source, daemon=True)
    thread.start()
    if not started.wait(30.0):
        raise RuntimeError("LSL source did not start")
    time.sleep(seconds)
    cpu, wall = time.process_time() - marks["cpu0"], time.perf_counter() - marks["wall0"]
    stop.set()
    thread.join(10.0)
    log.removeHandler(handler)
    print(
        f"  {'with' if with_consumer else 'without'} a consumer, chunks of {chunk} samples, "
        f"{wall:.1f} s:"
    )
    print(
        f"  source process CPU {1e3 * cpu / wall:.0f} ms per second = {100 * cpu / wall:.1f} % "
        f"of one core; pushed {result['pushed']} samples "
        f"({result['pushed'] / FS:.2f} s of signal)"
    )
    print("  " + next((ln for ln in lines if "stopped:" in ln), "(no summary logged)"))
    if consumer is not None:
        out, _ = consumer.communicate(timeout=30.0)
        stats = json.loads(out.strip().splitlines()[-1])
        print(
            f"  consumer (polls every 0.5 ms): {stats['samples']} samples in {stats['pulls']} "
            f"pulls; latency from timestamp of a chunk's last sample: "
            f"median {stats['latency_ms_median']:.2f} ms, "
            f"p99 {stats['latency_ms_p99']:.2f} ms, max {stats['latency_ms_max']:.2f} ms"
        )
        lo, hi = stats["median_by_position_ms"]
        print(
            f"  median latency by the chunk's position in the source's {_BLOCK_S * 1e3:g} ms "
            f"generation block: {lo:.2f} ms at best, {hi:.2f} ms at worst"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="LSL run length, s")
    parser.add_argument("--chunk", type=int, default=32, help="samples per push")
    parser.add_argument("--no-consumer", action="store_true", help="push with nobody listening")
    args = parser.parse_args()

    machine_info()
    print(
        f"\n== generator, {FS / 1000:g} kHz x {N_CH} channels (target: < 60 ms CPU per "
        "simulated second)"
    )
    for scenario in ("sleep", "seizure"):
        for block_s, total_s in ((0.1, 3.0), (1.0, 3.0)):
            speed, cpu_ms = time_generator(scenario, block_s, total_s)
            print(
                f"  {scenario:8s} blocks of {block_s:>3g} s: {speed:5.1f}x real time, "
                f"CPU {cpu_ms:5.1f} ms per simulated second"
            )
    speed, cpu_ms = time_naive(1.0)
    print(
        f"  naive baseline (per-channel filtering, 0.1 s blocks): {speed:5.1f}x real time, "
        f"CPU {cpu_ms:5.1f} ms per simulated second"
    )
    print("\n== channel mix, (3200, 10) x (10, 64) float32")
    time_mix()
    print(f"\n== LSL source at real-time pace, seizure scenario, {FS / 1000:g} kHz x {N_CH} ch")
    lsl_cpu_share(args.seconds, not args.no_consumer, args.chunk)


if __name__ == "__main__":
    main()
