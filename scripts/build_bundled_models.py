"""Rebuild the bundled models (``models/sleep.onnx``, ``models/seizure.onnx``) from simulator data.

    python scripts/build_bundled_models.py [--out models] [--minutes 6] [--recordings 4] [--only sleep]

Each model is trained on several simulated recordings (different seeds: different channel gains,
state schedules and noise), with the same feature code as live decoding. Validation is blocked by
recording (one fold per recording, never neighbouring windows on both sides), and the model card
(``NAME.md`` + ``NAME.json``) reports the out-of-fold scores before and after hysteresis.
Deterministic for a given set of arguments.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

from rtdecode import __version__
from rtdecode.common.channels import default_channel_labels
from rtdecode.config import EventHysteresis, FeatureConfig, StateHysteresis
from rtdecode.decoding.model import ModelContract
from rtdecode.features.streaming import StreamingFeatures
from rtdecode.offline.datasets import window_labels
from rtdecode.offline.evaluation import decision_metrics, event_episodes
from rtdecode.offline.recordings import Segment
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.training.boosting import (
    XGBParams,
    cross_validate,
    export_onnx,
    fit_xgboost,
    with_n_estimators,
)
from rtdecode.training.card import write_model_card

logger = logging.getLogger("rtdecode")

TASKS = {
    "sleep": dict(task="state", hysteresis=StateHysteresis(margin=0.2, dwell_s=1.0)),
    "seizure": dict(
        task="event",
        hysteresis=EventHysteresis(
            event_class="seizure",
            on_threshold=0.7,
            off_threshold=0.3,
            on_dwell_s=0.3,
            off_dwell_s=1.0,
        ),
    ),
}


def simulated_features(
    scenario: str, seed: int, seconds: float, config: FeatureConfig, n_channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Segment]]:
    """Feature rows, labels, window ends (s) and true segments of one simulated recording.

    A window is labelled only if one state covers all of it (the same rule as
    :func:`rtdecode.offline.datasets.window_labels`); windows straddling a change are dropped here.
    """
    sim = LfpSimulator(
        SimulatorConfig(scenario=scenario, n_channels=n_channels, fs_hz=config.fs_hz, seed=seed)
    )
    extractor = StreamingFeatures(config, n_channels)
    block = config.hop_samples * 5
    n_total = int(seconds * config.fs_hz)
    ends, rows = [], []
    done = 0
    while done < n_total:
        data, _ = sim.generate(min(block, n_total - done))
        for end, feats, _ in extractor.push(data):
            ends.append(end)
            rows.append(feats)
        done += data.shape[0]
    changes = sim.state_changes() + [(n_total, None)]
    segments = [
        Segment(a / config.fs_hz, (b - a) / config.fs_hz, state)
        for (a, state), (b, _) in zip(changes, changes[1:])
        if b > a
    ]
    end_s = np.array(ends, dtype=np.float64) / config.fs_hz
    y, _ = window_labels(end_s, config.window_s, segments, sim.classes)
    keep = y >= 0
    return np.stack(rows)[keep], y[keep], end_s[keep], segments


def build_model(
    name: str,
    out_dir: Path,
    *,
    minutes: float,
    recordings: int,
    n_channels: int,
    fs_hz: float,
    seed0: int = 100,
) -> dict:
    """Simulate, cross-validate, train and export one bundled model; return its card."""
    spec = TASKS[name]
    config = FeatureConfig(fs_hz=fs_hz)
    classes = SimulatorConfig(scenario=name).classes
    t0 = time.perf_counter()
    parts = []
    for r in range(recordings):
        parts.append(simulated_features(name, seed0 + r, minutes * 60.0, config, n_channels))
        logger.info("%s: recording %d/%d -> %d windows", name, r + 1, recordings, len(parts[-1][1]))
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    feature_s = time.perf_counter() - t0
    params = XGBParams(n_estimators=200, max_depth=4, learning_rate=0.1, seed=seed0)
    gap_rows = int(np.ceil(config.window_s / config.hop_s))
    cv = cross_validate(X, y, classes, params, n_folds=recordings, gap_rows=gap_rows)
    final_params = with_n_estimators(params, cv["best_iteration_median"])
    booster = fit_xgboost(X, y, None, None, len(classes), final_params)
    hysteresis = spec["hysteresis"]
    runs, offset = [], 0
    for _rows, labels, end_s, segments in parts:
        proba = cv["oof_proba"][offset : offset + len(labels)]
        ok = ~np.isnan(proba[:, 0])
        episodes = (
            event_episodes(segments, hysteresis.event_class) if spec["task"] == "event" else []
        )
        runs.append((end_s[ok], proba[ok], labels[ok], episodes, minutes * 60.0))
        offset += len(labels)
    smoothing = decision_metrics(
        runs, classes, hysteresis, hop_s=config.hop_s, window_s=config.window_s
    )
    labels = default_channel_labels(n_channels)
    training = {
        "data": (
            f"{recordings} simulated recordings x {minutes:g} min ({name} scenario, "
            f"seeds {seed0}..{seed0 + recordings - 1}), {n_channels} ch @ {fs_hz:g} Hz"
        ),
        "script": f"python scripts/build_bundled_models.py --only {name} --minutes {minutes:g} "
        f"--recordings {recordings}",
        "rtdecode_version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "class_counts": {c: int(np.sum(y == i)) for i, c in enumerate(classes)},
        "validation": (
            f"{recordings}-fold, blocked by recording (time-contiguous), "
            f"{gap_rows} rows purged at fold edges"
        ),
        "cv": {k: v for k, v in cv.items() if not k.startswith("oof_")},
        "cv_after_hysteresis": smoothing,
        "hysteresis_tuning": "fixed defaults for the demo (not tuned)",
        "xgboost_params": final_params.to_dict(),
        "feature_seconds": round(feature_s, 1),
    }
    contract = ModelContract(
        task=spec["task"],
        classes=tuple(classes),
        n_channels=n_channels,
        channel_labels=None,
        features=config,
        feature_names=tuple(config.feature_names(labels)),
        hysteresis=hysteresis,
        training=training,
    )
    path = export_onnx(booster, contract, out_dir / f"{name}.onnx", X[:: max(1, len(X) // 500)])
    card = {
        "model": path.name,
        "task": contract.task,
        "classes": list(classes),
        "n_channels": n_channels,
        "fs_hz": fs_hz,
        "features": config.to_dict(),
        "n_features": len(contract.feature_names),
        "hysteresis": hysteresis.to_dict(),
        "training": training,
    }
    write_model_card(
        card, path, oof_runs=runs, classes=classes, hysteresis=hysteresis, hop_s=config.hop_s
    )
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models"))
    parser.add_argument("--minutes", type=float, default=6.0, help="per simulated recording")
    parser.add_argument("--recordings", type=int, default=4)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--rate", type=float, default=32000.0)
    parser.add_argument("--only", choices=sorted(TASKS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.platform()}, python {sys.version.split()[0]}")
    for name in [args.only] if args.only else sorted(TASKS):
        card = build_model(
            name,
            out,
            minutes=args.minutes,
            recordings=args.recordings,
            n_channels=args.channels,
            fs_hz=args.rate,
        )
        m = card["training"]["cv"]["metrics"]
        after = card["training"]["cv_after_hysteresis"]
        print(
            f"{name}: accuracy {m['accuracy']:.3f}, kappa {m['kappa']:.3f}; after hysteresis "
            f"accuracy {after['after_hysteresis']['accuracy']:.3f}"
            + (
                f", events {after['events']['events_detected']}/{after['events']['events']}, "
                f"false alarms/h {after['events']['false_alarms_per_hour']:.2f}"
                if "events" in after
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
