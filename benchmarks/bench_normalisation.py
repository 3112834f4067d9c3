"""Does per-recording feature normalisation help across recordings? Measured, not assumed.

    python benchmarks/bench_normalisation.py [--recordings 4] [--minutes 6] [--record]

Simulated sleep recordings (wake / nrem / rem; different seeds = different state schedules and
channel gains), 8 channels at 2 kHz. Each recording then gets its own electrode gains (every
channel scaled by a factor drawn log-uniformly in 0.2..5, as between animals and electrodes).
Validation leaves one recording out (grouped folds by recording), so a model is always scored on
a recording whose gains it never saw. Compared: ``none`` (absolute log band power),
``relative`` (log band power relative to the channel's total) and ``baseline`` (every feature
minus its running mean over the recording so far, 300 s time constant). The same runs without
the extra gains show what each costs when gains already match. ``--record`` appends the run to
benchmarks/results/bench_normalisation.jsonl (see benchmarks/RESULTS.md).
"""

import argparse
import platform
import sys
import time

import numpy as np
import psutil
from _record import record  # benchmarks/ is the script's folder

from rtdecode.config import FeatureConfig
from rtdecode.features.streaming import StreamingFeatures
from rtdecode.offline.datasets import window_labels
from rtdecode.offline.recordings import Segment
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.training.boosting import XGBParams, cross_validate, grouped_folds

FS, N_CH = 2000.0, 8
CLASSES = ("wake", "nrem", "rem")


def recording(seed: int, minutes: float, gains: np.ndarray | None):
    sim = LfpSimulator(SimulatorConfig(scenario="sleep", n_channels=N_CH, fs_hz=FS, seed=seed))
    data, _ = sim.generate(int(minutes * 60 * FS))
    if gains is not None:
        data = data * gains[None, :].astype(np.float32)
    changes = sim.state_changes() + [(data.shape[0], None)]
    segs = [Segment(a / FS, (b - a) / FS, s) for (a, s), (b, _) in zip(changes, changes[1:])]
    return data, segs


def features(data, segs, normalisation):
    config = FeatureConfig(fs_hz=FS, normalisation=normalisation)
    ext = StreamingFeatures(config, N_CH)
    rows = ext.push(np.ascontiguousarray(data))
    end_s = np.array([r.end_sample for r in rows]) / FS
    y, _ = window_labels(end_s, config.window_s, segs, CLASSES)
    X = np.stack([r.features for r in rows])
    return X[y >= 0], y[y >= 0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recordings", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    machine = (
        f"{platform.node()} {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )
    print(f"machine: {machine}")
    rng = np.random.default_rng(7)
    rows = [
        "| electrode gains | normalisation | accuracy | kappa | per-class recall |",
        "|---|---|---|---|---|",
    ]
    figures = {}  # for --record: {gains: {normalisation: metrics}}
    t0 = time.perf_counter()
    for gain_mode in ("differ per recording (0.2-5x)", "as simulated"):
        recs = []
        for r in range(a.recordings):
            gains = (
                np.exp(rng.uniform(np.log(0.2), np.log(5.0), N_CH))
                if gain_mode.startswith("differ")
                else None
            )
            recs.append(recording(200 + r, a.minutes, gains))
        for norm in ("none", "relative", "baseline"):
            parts = [features(d, s, norm) for d, s in recs]
            X = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            group = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
            cv = cross_validate(
                X,
                y,
                CLASSES,
                XGBParams(n_estimators=200, seed=0),
                folds=grouped_folds(group, a.recordings),
                gap_rows=19,
            )
            m = cv["metrics"]
            key = "gains_differ" if gain_mode.startswith("differ") else "gains_as_simulated"
            figures.setdefault(key, {})[norm] = {
                "accuracy": m["accuracy"],
                "kappa": m["kappa"],
                "recall": {c: m["per_class"][c]["recall"] for c in CLASSES},
            }
            recall = ", ".join(f"{c} {m['per_class'][c]['recall']:.2f}" for c in CLASSES)
            rows.append(
                f"| {gain_mode} | {norm} | {m['accuracy']:.3f} | {m['kappa']:.3f} | {recall} |"
            )
            print(rows[-1], flush=True)
    took = time.perf_counter() - t0
    if a.record:
        record(
            "bench_normalisation",
            {**figures, "took_s": took},
            setup={
                "recordings": a.recordings,
                "minutes": a.minutes,
                "channels": N_CH,
                "rate_hz": FS,
                "gains_differ": "every channel x log-uniform 0.2..5, per recording",
                "validation": "leave one recording out",
            },
        )


if __name__ == "__main__":
    sys.exit(main())
