"""Capacity and cost growth: the decoder's CPU and latency as the problem grows.

    python benchmarks/bench_scaling.py capacity [--channels 64,128,256,384,768,1024]
    python benchmarks/bench_scaling.py growth   [--channels 64]
    (both: [--rate 32000] [--seconds 30] [--record])

Each point runs a real `rtdecode run --headless` process on a model made for it (an XGBoost
booster fitted to random rows of the right width, exported to ONNX with its contract: only its
size matters here), fed by a source process (``bench_scaling.py source``) pushing a looped pool
of noise in 1 ms chunks (``--chunk-ms``; each window ends at a chunk's end, so the window's last
sample is pushed, and stamped, at the chunk's push); this process is the consumer of the
decisions. Measured over ``--seconds`` after 5 s of
warm-up: the decoder process's CPU (user + system over wall, in cores), decision latency
(receipt minus the window's last sample's timestamp) p50 / p99, decisions per second, and lost
samples, gaps, overruns and skips from its log. A point is real time when it made one decision
per hop with none of those.

``capacity`` steps the channel count at 32 kHz. ``growth`` varies one thing at a time around the
default (64 ch, 2 s window, 0.1 s hop, 8 bands, 200 trees): window, hop, bands, trees; it writes
``benchmarks/scaling.png``. ``--record`` appends the run to benchmarks/results/bench_scaling.jsonl
(see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pylsl
from _record import record  # noqa: E402  (benchmarks/ is the script's folder)
from bench_decoder import machine, measure  # noqa: E402

from rtdecode.common.channels import default_channel_labels
from rtdecode.config import DEFAULT_BANDS, DEFAULT_RATIOS, EventHysteresis, FeatureConfig
from rtdecode.decoding.model import ModelContract
from rtdecode.streams import SCORES_STREAM_NAME

HERE = Path(__file__).resolve().parent
_STOP: list = []  # set by SIGTERM in the source process


def model_is_current(path: Path, config: FeatureConfig) -> bool:
    """Whether the model cached at ``path`` computes the features ``config`` asks for today (a
    file made before a default changed would measure the old feature code)."""
    from rtdecode.decoding.model import OnnxModel

    if not path.is_file():
        return False
    try:
        return OnnxModel(path).contract.features == config
    except Exception:  # an unreadable cache is made again
        return False


def make_model(
    path: Path,
    *,
    n_channels: int,
    fs_hz: float,
    window_s: float = 2.0,
    hop_s: float = 0.1,
    n_bands: int = len(DEFAULT_BANDS),
    n_trees: int = 200,
) -> Path:
    """A normal/seizure model of the bundled model's shape (depth 4) for these settings (the
    file at ``path`` is reused when it holds these features)."""
    from rtdecode.training.boosting import XGBParams, export_onnx, fit_xgboost

    bands = tuple(DEFAULT_BANDS[:n_bands])
    names = {b.name for b in bands}
    config = FeatureConfig(
        fs_hz=fs_hz,
        window_s=window_s,
        hop_s=hop_s,
        bands=bands,
        ratios=tuple(r for r in DEFAULT_RATIOS if {r.numerator, r.denominator} <= names),
    )
    if model_is_current(path, config):
        return path
    n_features = n_channels * config.features_per_channel
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, n_features)).astype(np.float32)
    y = (X[:, :8].sum(axis=1) > 0).astype(int)
    booster = fit_xgboost(
        X,
        y,
        None,
        None,
        2,
        XGBParams(n_estimators=n_trees, max_depth=4, seed=0, colsample_bytree=0.3),
    )
    contract = ModelContract(
        task="event",
        classes=("normal", "seizure"),
        n_channels=n_channels,
        channel_labels=None,
        features=config,
        feature_names=tuple(config.feature_names(default_channel_labels(n_channels))),
        hysteresis=EventHysteresis(event_class="seizure"),
        training={"data": "random rows (benchmark model: only its size matters)"},
    )
    return export_onnx(booster, contract, path, X[:20])


def push_noise(name: str, n_channels: int, fs_hz: float, chunk: int, seconds: float) -> None:
    """The source: push a looped pool of noise in ``chunk``-sample chunks at the nominal rate,
    each stamped at its push, for ``seconds``; print the worst push lateness (ms) at the end.
    Runs in its own process, as a lab's source does (sharing the consumer's interpreter, its
    pushes and the consumer's receipts delayed each other: p99 13.9 ms vs 6.0 ms at 1024 ch)."""
    n_pool = max(50, int(0.5 * fs_hz / chunk))  # half a second of noise, looped
    pool = np.random.default_rng(1).standard_normal((chunk * n_pool, n_channels)).astype(np.float32)
    pool *= 20.0
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(name, "EEG", n_channels, fs_hz, "float32", name),
        chunk_size=chunk,
        max_buffered=30,
    )
    late = 0.0
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < seconds and not _STOP:
        due = t0 + (k + 1) * chunk / fs_hz
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late = max(late, -delay)
        outlet.push_chunk(
            pool[(k % n_pool) * chunk : (k % n_pool + 1) * chunk], pylsl.local_clock()
        )
        k += 1
    print(f"late_max_ms {1e3 * late:.3f}", flush=True)


def run_point(
    model: Path, n_channels: int, fs_hz: float, seconds: float, chunk_s: float = 0.001
) -> dict:
    """One decoder process on a stream pushed by a source process; what a consumer (this
    process) and the OS see of it."""
    name = f"scale-{time.monotonic_ns()}"
    chunk = max(1, int(round(fs_hz * chunk_s)))
    source = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "source",
            "--name",
            name,
            "--channels",
            str(n_channels),
            "--rate",
            str(fs_hz),
            "--chunk-samples",
            str(chunk),
            "--seconds",
            str(seconds + 120),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="rtdecode-scale-"))
    log = folder / "decisions.jsonl"
    try:
        r = measure(
            [
                sys.executable,
                "-m",
                "rtdecode",
                "run",
                "--model",
                str(model),
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
            seconds,
        )
    finally:
        source.terminate()
        out, _ = source.communicate(timeout=10)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    last = [d for d in lines if "end_sample" in d][-1]
    skips = sum(d.get("event") in ("skipped", "gap", "timestamp_reset") for d in lines)
    stale = sum(bool(d.get("stale")) for d in lines)
    r.pop("output")
    r.update(
        channels=n_channels,
        lost=int(last["missing_samples"]),
        gaps=int(last["gaps"]),
        overruns=int(last["overruns"]),
        skips=skips,
        stale=stale,
        source_late_max_ms=float(out.split()[-1]) if out.strip() else float("nan"),
    )
    return r


def _row(label: str, r: dict, hop_s: float) -> str:
    real_time = (
        abs(r["decisions_per_s"] * hop_s - 1.0) < 0.05
        and not r["lost"]
        and not r["gaps"]
        and not r["overruns"]
        and not r["skips"]
    )
    return (
        f"| {label} | {'yes' if real_time else 'NO'} | {r['decisions_per_s']:.1f} | "
        f"{r['cpu_cores']:.3f} | {r['cpu_ms_per_decision']:.2f} | {r['p50_ms']:.2f} | "
        f"{r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['lost']}/{r['gaps']}/{r['overruns']}/"
        f"{r['skips']} |"
    )


HEADER = (
    "| {} | real time | decisions/s | CPU cores | CPU ms/decision | latency p50 ms | "
    "p99 ms | max ms | lost/gaps/overruns/skips |\n|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "mode",
        choices=("capacity", "growth", "source"),
        help="source: the benchmark's LSL source alone (run by the other modes)",
    )
    ap.add_argument("--name", default="rtdecode-bench-noise")
    ap.add_argument("--chunk-samples", type=int, default=32)
    ap.add_argument("--channels", default=None)
    ap.add_argument("--rate", type=float, default=32000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument(
        "--chunk-ms",
        type=float,
        default=1.0,
        help="the source pushes chunks this long (the simulator's: 1 ms)",
    )
    ap.add_argument("--record", action="store_true")
    ap.add_argument(
        "--models", default=None, help="folder to keep the generated models in and reuse them from"
    )
    a = ap.parse_args()
    if a.mode == "source":
        # stop cleanly on terminate, so the lateness line is printed
        signal.signal(signal.SIGTERM, lambda *_: _STOP.append(True))
        push_noise(a.name, int(a.channels or 64), a.rate, a.chunk_samples, a.seconds)
        return
    print(machine(), flush=True)
    models = Path(a.models) if a.models else Path(tempfile.mkdtemp(prefix="rtdecode-scale-"))
    models.mkdir(parents=True, exist_ok=True)
    tables = []
    recorded = []  # the points, for --record
    if a.mode == "capacity":
        counts = [int(c) for c in (a.channels or "64,128,256,384,768,1024").split(",")]
        lines = [HEADER.format("channels")]
        for n in counts:
            model = make_model(models / f"c{n}-{a.rate:g}.onnx", n_channels=n, fs_hz=a.rate)
            r = run_point(model, n, a.rate, a.seconds, a.chunk_ms / 1e3)
            recorded.append(_point(r, channels=n))
            lines.append(_row(f"{n} x {a.rate / 1000:g} kHz", r, 0.1))
            print(lines[-1], flush=True)
        tables.append("\n".join(lines))
    else:
        n = int(a.channels or 64)
        base = dict(n_channels=n, fs_hz=a.rate)
        axes = {
            "window s": [("window_s", v) for v in (0.5, 1.0, 2.0, 4.0)],
            "hop s": [("hop_s", v) for v in (0.05, 0.1, 0.2)],
            "bands": [("n_bands", v) for v in (2, 4, 8)],
            "trees": [("n_trees", v) for v in (50, 200, 800)],
        }
        results = {}
        for axis, points in axes.items():
            lines = [HEADER.format(axis)]
            for key, value in points:
                model = make_model(
                    models / f"{key}{value}-{n}-{a.rate:g}.onnx", **base, **{key: value}
                )
                r = run_point(model, n, a.rate, a.seconds, a.chunk_ms / 1e3)
                results.setdefault(axis, []).append((value, r))
                recorded.append(_point(r, channels=n, **{key: value}))
                hop = value if key == "hop_s" else 0.1
                lines.append(_row(f"{value:g}", r, hop))
                print(lines[-1], flush=True)
            tables.append("\n".join(lines))
        _plot(results, HERE / "scaling.png", n, a.rate)
    text = "\n\n".join(tables)
    print(text)
    if a.record:
        record(
            "bench_scaling",
            {"points": recorded},
            setup={
                "mode": a.mode,
                "rate_hz": a.rate,
                "seconds": a.seconds,
                "chunk_ms": a.chunk_ms,
                "defaults": "window 2 s, hop 0.1 s, 8 bands, 200 trees",
            },
        )


def _point(r: dict, **settings) -> dict:
    """One point's record: what was varied (``channels``, ``window_s``...), then the figures."""
    return {
        **settings,
        "decisions_per_s": r["decisions_per_s"],
        "cpu_cores": r["cpu_cores"],
        "cpu_ms_per_decision": r["cpu_ms_per_decision"],
        "latency_p50_ms": r["p50_ms"],
        "latency_p99_ms": r["p99_ms"],
        "latency_max_ms": r["max_ms"],
        "lost_samples": r["lost"],
        "gaps": r["gaps"],
        "overruns": r["overruns"],
        "skips": r["skips"],
        "stale_decisions": r["stale"],
        "source_late_max_ms": r["source_late_max_ms"],
    }


def _plot(results: dict, path: Path, n: int, fs: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.0))
    for ax, (axis, points) in zip(axes, results.items()):
        x = [v for v, _ in points]
        ax.plot(x, [r["cpu_cores"] for _, r in points], "o-", label="CPU (cores)")
        ax.set_xlabel(axis)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("decoder CPU (cores)")
    fig.suptitle(f"rtdecode decoder CPU, {n} ch x {fs / 1000:g} kHz, one thing varied at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
