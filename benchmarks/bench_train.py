"""Training from real recordings, beside the naive baseline, and offline feature throughput.

    python benchmarks/bench_train.py [--data DIR | --no-real-data] [--record]

1. On each real labelled recording in ``--data`` (default ``$RTDECODE_DATA``, else
   ``../shared/data``; the DREAMS sleep excerpt and the rat seizure
   set, see that folder's README), runs ``rtdecode train`` (time-blocked or grouped validation,
   out-of-fold scores) and the naive baseline a user would write first: ``scipy.signal.welch``
   band powers of the same windows + XGBoost with the same folds (never a random split).
2. Offline feature extraction at 32 kHz x 64 channels on simulated data: x real time on one core
   (``extract_features``), and over several files in parallel with Dask's local cluster.

Prints the machine and Markdown tables; ``--record`` appends the run to
benchmarks/results/bench_train.jsonl (see benchmarks/RESULTS.md).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import scipy.signal
from _record import record, shared_data  # benchmarks/ is the script's folder

from rtdecode.cli.main import main as rtdecode_main
from rtdecode.config import DEFAULT_BANDS, FeatureConfig
from rtdecode.features.streaming import extract_features
from rtdecode.offline.datasets import Source, extract_sources, window_labels
from rtdecode.offline.labels import map_labels, read_labels
from rtdecode.offline.recordings import open_recording
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.training.boosting import XGBParams, cross_validate, grouped_folds

HERE = Path(__file__).resolve().parent

DATASETS = {
    "rat seizure (normal/seizure)": dict(
        data="rat-seizure/rat_seizure_dev.edf",
        labels="rat-seizure/rat_seizure_dev_labels.csv",
        args=[
            "--task",
            "seizure",
            "--group-column",
            "annotation",
            "--windows-within-segments",
            "--window-s",
            "2",
            "--hop-s",
            "0.5",
            "--max-false-alarms-per-hour",
            "4",
        ],
        classes=("normal", "seizure"),
        window_s=2.0,
        hop_s=0.5,
        group_column="annotation",
        label_column="label",
        mapping={},
    ),
    "DREAMS excerpt 1 (wake/light/deep)": dict(
        data="dreams/excerpt1.edf",
        labels="dreams/excerpt1_hypnogram.csv",
        args=[
            "--label-column",
            "stage",
            "--map",
            "s1=light,s2=light,s3=deep,s4=deep",
            "--classes",
            "wake,light,deep",
            "--window-s",
            "4",
            "--hop-s",
            "1",
        ],
        classes=("wake", "light", "deep"),
        window_s=4.0,
        hop_s=1.0,
        group_column=None,
        label_column="stage",
        mapping={"s1": "light", "s2": "light", "s3": "deep", "s4": "deep"},
    ),
    "DREAMS excerpt 1 (wake/sleep)": dict(
        data="dreams/excerpt1.edf",
        labels="dreams/excerpt1_hypnogram.csv",
        args=[
            "--label-column",
            "stage",
            "--map",
            "s1=sleep,s2=sleep,s3=sleep,s4=sleep",
            "--classes",
            "wake,sleep",
            "--window-s",
            "4",
            "--hop-s",
            "1",
        ],
        classes=("wake", "sleep"),
        window_s=4.0,
        hop_s=1.0,
        group_column=None,
        label_column="stage",
        mapping={f"s{i}": "sleep" for i in range(1, 5)},
    ),
}


def machine() -> str:
    return (
        f"{platform.node()} {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def naive_baseline(root: Path, spec: dict) -> dict:
    """welch band powers per window + XGBoost, the same windows, labels and folds."""
    rec = open_recording(root / spec["data"])
    segs = map_labels(
        read_labels(
            root / spec["labels"],
            recording=rec,
            label_column=spec["label_column"],
            group_column=spec["group_column"],
        ),
        spec["mapping"],
    )
    fs = rec.fs_hz
    x = rec.read(0, rec.n_samples)[:, 0].astype(np.float64)
    n_win, n_hop = int(spec["window_s"] * fs), int(spec["hop_s"] * fs)
    ends = np.arange(n_win, x.size + 1, n_hop)
    bands = [(b.lo_hz, b.hi_hz) for b in DEFAULT_BANDS if b.lo_hz < fs / 2]
    rows = []
    for e in ends:
        f, pxx = scipy.signal.welch(x[e - n_win : e], fs=fs, nperseg=min(n_win, int(fs)))
        rows.append([np.log10(pxx[(f >= lo) & (f < hi)].sum() + 1e-20) for lo, hi in bands])
    y, groups = window_labels(
        ends / fs,
        spec["window_s"],
        segs,
        spec["classes"],
        merge_touching="--windows-within-segments" not in spec["args"],
    )
    keep = y >= 0
    X, y, groups = np.array(rows, dtype=np.float32)[keep], y[keep], groups[keep]
    params = XGBParams(n_estimators=300, max_depth=4, learning_rate=0.1, seed=0)
    gap = int(np.ceil(spec["window_s"] / spec["hop_s"])) - 1
    folds = grouped_folds(groups, 5) if spec["group_column"] else None
    cv = cross_validate(X, y, spec["classes"], params, n_folds=5, gap_rows=gap, folds=folds)
    return cv["metrics"]


def real_data(root: Path, figures: dict | None = None) -> list[str]:
    rows = [
        "| recording | method | validation | windows | accuracy | kappa | after hysteresis "
        "(acc / kappa) | events detected | false alarms/h |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, spec in DATASETS.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.onnx"
            t0 = time.perf_counter()
            code = rtdecode_main(
                [
                    "train",
                    "--data",
                    str(root / spec["data"]),
                    "--labels",
                    str(root / spec["labels"]),
                    "--out",
                    str(out),
                    "--dask",
                    "none",
                    "--no-progress",
                    *spec["args"],
                ]
            )
            assert code == 0, f"rtdecode train failed on {name}"
            card = json.loads(out.with_suffix(".json").read_text())
            took = time.perf_counter() - t0
        t = card["training"]
        m, a = t["cv"]["metrics"], t["cv_after_hysteresis"]
        ev = a.get("events")
        rows.append(
            f"| {name} | rtdecode train ({took:.1f} s) | {t['validation']} | "
            f"{sum(t['class_counts'].values())} | {m['accuracy']:.3f} | {m['kappa']:.3f} | "
            f"{a['after_hysteresis']['accuracy']:.3f} / {a['after_hysteresis']['kappa']:.3f} | "
            + (
                f"{ev['events_detected']}/{ev['events']} | {ev['false_alarms_per_hour']:.1f} |"
                if ev
                else "- | - |"
            )
        )
        b = naive_baseline(root, spec)
        rows.append(
            f"| {name} | naive: welch + XGBoost | same folds | {b['n']}"
            f" | {b['accuracy']:.3f} | {b['kappa']:.3f} | - | - | - |"
        )
        print(rows[-2], rows[-1], sep="\n", flush=True)
        if figures is not None:
            ours = {
                "train_s": took,
                "validation": t["validation"],
                "windows": sum(t["class_counts"].values()),
                "accuracy": m["accuracy"],
                "kappa": m["kappa"],
                "accuracy_after_hysteresis": a["after_hysteresis"]["accuracy"],
                "kappa_after_hysteresis": a["after_hysteresis"]["kappa"],
            }
            if ev:
                ours.update(
                    events=ev["events"],
                    events_detected=ev["events_detected"],
                    false_alarms_per_h=ev["false_alarms_per_hour"],
                )
            naive = {"windows": b["n"], "accuracy": b["accuracy"], "kappa": b["kappa"]}
            figures.setdefault("recordings", {})[name] = {"rtdecode_train": ours, "naive": naive}
    return rows


def throughput(seconds: float, n_files: int, figures: dict | None = None) -> list[str]:
    config = FeatureConfig(fs_hz=32000.0)
    sim = LfpSimulator(SimulatorConfig(scenario="sleep", n_channels=64, fs_hz=32000.0, seed=1))
    data, _ = sim.generate(int(seconds * 32000))
    proc = psutil.Process()
    # the default features, and every band from the whole window (models saved before
    # short_windows_from_hz) as the baseline: alternated, the best of two runs each
    whole_config = replace(config, short_windows_from_hz=None)
    best: dict[str, tuple[float, float]] = {}
    for name, cfg in [("short", config), ("whole", whole_config)] * 2:
        c0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        extract_features(data, cfg)
        wall, cpu = time.perf_counter() - t0, sum(proc.cpu_times()[:2]) - c0
        if name not in best or cpu < best[name][1]:
            best[name] = (wall, cpu)
    wall, cpu = best["short"]
    whole_wall, whole_cpu = best["whole"]
    recorded = {
        "extract_features_x_realtime_wall": seconds / wall,
        "extract_features_x_realtime_per_cpu_s": seconds / cpu,
        "whole_window_x_realtime_wall": seconds / whole_wall,
        "whole_window_x_realtime_per_cpu_s": seconds / whole_cpu,
    }
    rows = [
        f"| extract_features, one process | {seconds:g} s | {seconds / wall:.0f}x | "
        f"{seconds / cpu:.0f}x |",
        f"| the same, every band from the whole window (`short_windows_from_hz=None`, models "
        f"saved before it) | {seconds:g} s | {seconds / whole_wall:.0f}x | "
        f"{seconds / whole_cpu:.0f}x |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        # One EDF (read in chunks, as a lab's files are), given n_files times: the files are
        # independent tasks for the workers either way.
        from edfio import Edf, EdfSignal

        edf = Path(tmp) / "r.edf"
        lim = float(np.abs(data).max()) * 1.01
        Edf(
            [
                EdfSignal(
                    data[:, c].astype(np.float64),
                    32000.0,
                    label=f"ch{c:03d}",
                    physical_range=(-lim, lim),
                )
                for c in range(data.shape[1])
            ]
        ).write(edf)
        del data
        paths = [edf] * n_files
        sources = [Source(data=p, labels=()) for p in paths]
        t0 = time.perf_counter()
        extract_sources(sources[:1], config, ("a", "b"), dask="none", progress=False)
        one = time.perf_counter() - t0
        rows.append(
            f"| one EDF file, in this process (reading included) | {seconds:g} s | "
            f"{seconds / one:.0f}x | - |"
        )
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        with (
            LocalCluster(
                n_workers=os.cpu_count(),
                threads_per_worker=1,
                processes=True,
                memory_limit="2GiB",
                dashboard_address=None,
            ) as cluster,
            Client(cluster),
        ):
            startup = time.perf_counter() - t0
            t0 = time.perf_counter()
            extract_sources(
                sources, config, ("a", "b"), dask=cluster.scheduler_address, progress=False
            )
            wall = time.perf_counter() - t0
    rows.append(
        f"| {n_files} files in parallel, Dask local cluster ({os.cpu_count()} workers; "
        f"start-up {startup:.1f} s not included; EDF read in chunks) | {n_files * seconds:g} s "
        f"| {n_files * seconds / wall:.0f}x | - |"
    )
    if figures is not None:
        figures["throughput"] = {
            **recorded,
            "one_edf_x_realtime_wall": seconds / one,
            "dask_x_realtime_wall": n_files * seconds / wall,
            "dask_files": n_files,
            "dask_workers": os.cpu_count(),
            "dask_startup_s": startup,
        }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, help="the shared recordings (default $RTDECODE_DATA or ../shared/data)"
    )
    ap.add_argument("--no-real-data", action="store_true", help="throughput only")
    ap.add_argument("--seconds", type=float, default=60.0, help="simulated seconds per file")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    figures = {}  # for --record
    data = None if a.no_real_data else shared_data(a.data)
    if data is not None:
        real_data(data, figures)
    tp = [
        "| offline features, 64 ch x 32 kHz | data | x real time (wall) | x real time per "
        "CPU-second |",
        "|---|---|---|---|",
    ] + throughput(a.seconds, a.files, figures)
    print("\n".join(tp))
    if a.record:
        record(
            "bench_train",
            figures,
            setup={
                "data": str(data) if data is not None else None,
                "throughput": f"64 ch x 32 kHz simulated, {a.seconds:g} s per file",
            },
        )


if __name__ == "__main__":
    sys.exit(main())
