"""Rebuild the bundled models (``models/sleep.onnx``, ``models/seizure.onnx``) from simulator data.

    python -m rtdecode.bundled [--out models] [--minutes 6] [--recordings 4] [--only sleep]

Each model is trained on several simulated recordings (different seeds: different channel gains,
state schedules and noise), with the same feature code as live decoding. Validation is blocked by
recording (one fold per recording, never neighbouring windows on both sides), and the model card
(``NAME.md`` + ``NAME.json``) reports the out-of-fold scores before and after hysteresis.
Deterministic for a given set of arguments.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

from rtdecode import __version__
from rtdecode.config import EventHysteresis, FeatureConfig, StateHysteresis
from rtdecode.features import StreamingFeatures
from rtdecode.model import ModelContract, default_channel_labels
from rtdecode.simulator import LfpSimulator, SimulatorConfig
from rtdecode.smoother import make_smoother
from rtdecode.training import XGBParams, cross_validate, export_onnx, fit_xgboost, with_n_estimators

logger = logging.getLogger("rtdecode")

TASKS = {
    "sleep": dict(task="state", hysteresis=StateHysteresis(margin=0.2, dwell_s=1.0)),
    "seizure": dict(
        task="event",
        hysteresis=EventHysteresis(
            event_class="seizure", on_threshold=0.7, off_threshold=0.3, on_dwell_s=0.3, off_dwell_s=1.0
        ),
    ),
}


def simulated_features(
    scenario: str, seed: int, seconds: float, config: FeatureConfig, n_channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and labels of one simulated recording.

    A window is labelled only if one state covers all of it; windows straddling a change are
    left out (their label is -1 and they are dropped here).
    """
    sim = LfpSimulator(SimulatorConfig(scenario=scenario, n_channels=n_channels,
                                       fs_hz=config.fs_hz, seed=seed))
    extractor = StreamingFeatures(config, n_channels)
    block = config.hop_samples * 5
    n_total = int(seconds * config.fs_hz)
    # Labels of the last window's worth of samples, to label each row by what it covers.
    label_hist = np.zeros(0, dtype=np.int8)
    rows, labels = [], []
    done = 0
    while done < n_total:
        data, lab = sim.generate(min(block, n_total - done))
        label_hist = np.concatenate([label_hist, lab])[-(config.window_samples + block):]
        hist_end = done + lab.size
        for end, feats in extractor.push(data):
            window = label_hist[end - config.window_samples - (hist_end - label_hist.size):
                                end - (hist_end - label_hist.size)]
            if window.size == config.window_samples and (window == window[0]).all():
                rows.append(feats)
                labels.append(int(window[0]))
        done = hist_end
    return np.stack(rows), np.array(labels, dtype=np.int64)


def smoothed_agreement(proba: np.ndarray, y: np.ndarray, contract: ModelContract,
                       recording: np.ndarray) -> dict:
    """Accuracy of the hysteresis-smoothed states, replaying each recording separately."""
    classes = list(contract.classes)
    states = np.empty(len(y), dtype=np.int64)
    for rec in np.unique(recording):
        smoother = make_smoother(contract.hysteresis, classes, contract.features.hop_s)
        for i in np.flatnonzero(recording == rec):
            state, _ = smoother.update(proba[i])
            states[i] = classes.index(state)
    result = {"smoothed_accuracy": float(np.mean(states == y))}
    if contract.task == "event":
        event = classes.index(contract.hysteresis.event_class)
        # event-level: runs of true event rows, detected if the smoothed state is on in any row
        true_on = y == event
        starts = np.flatnonzero(true_on & ~np.r_[False, true_on[:-1]])
        stops = np.flatnonzero(true_on & ~np.r_[true_on[1:], False]) + 1
        detected = sum(bool((states[a:b] == event).any()) for a, b in zip(starts, stops))
        delays = []
        for a, b in zip(starts, stops):
            on = np.flatnonzero(states[a:b] == event)
            if on.size:
                delays.append(on[0] * contract.features.hop_s)
        # a false alarm is an alarm episode (run of smoothed event rows) with no true event row:
        # the off-dwell tail after a real seizure belongs to that seizure's episode
        on = states == event
        a_starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
        a_stops = np.flatnonzero(on & ~np.r_[on[1:], False]) + 1
        false_onsets = int(sum(not true_on[a:b].any() for a, b in zip(a_starts, a_stops)))
        hours = len(y) * contract.features.hop_s / 3600.0
        result.update(
            events=len(starts),
            events_detected=int(detected),
            detection_delay_median_s=float(np.median(delays)) if delays else None,
            detection_delay_p90_s=float(np.percentile(delays, 90)) if delays else None,
            false_alarms_per_hour=false_onsets / hours if hours else None,
        )
    return result


def build_model(name: str, out_dir: Path, *, minutes: float, recordings: int, n_channels: int,
                fs_hz: float, seed0: int = 100) -> dict:
    """Simulate, cross-validate, train and export one bundled model; return its card."""
    spec = TASKS[name]
    config = FeatureConfig(fs_hz=fs_hz)
    classes = SimulatorConfig(scenario=name).classes
    t0 = time.perf_counter()
    X_parts, y_parts, rec_parts = [], [], []
    for r in range(recordings):
        X, y = simulated_features(name, seed0 + r, minutes * 60.0, config, n_channels)
        X_parts.append(X)
        y_parts.append(y)
        rec_parts.append(np.full(len(y), r))
        logger.info("%s: recording %d/%d -> %d windows", name, r + 1, recordings, len(y))
    X, y, rec = np.concatenate(X_parts), np.concatenate(y_parts), np.concatenate(rec_parts)
    feature_s = time.perf_counter() - t0
    params = XGBParams(n_estimators=200, max_depth=4, learning_rate=0.1, seed=seed0)
    gap_rows = int(np.ceil(config.window_s / config.hop_s))
    cv = cross_validate(X, y, classes, params, n_folds=recordings, gap_rows=gap_rows)
    final_params = with_n_estimators(params, cv["best_iteration_median"])
    booster = fit_xgboost(X, y, None, None, len(classes), final_params)
    labels = default_channel_labels(n_channels)
    contract = ModelContract(
        task=spec["task"], classes=tuple(classes), n_channels=n_channels, channel_labels=None,
        features=config, feature_names=tuple(config.feature_names(labels)),
        hysteresis=spec["hysteresis"], training={},
    )
    validated = ~np.isnan(cv["oof_proba"][:, 0])
    smoothing = smoothed_agreement(cv["oof_proba"][validated], y[validated], contract, rec[validated])
    counts = {c: int(np.sum(y == i)) for i, c in enumerate(classes)}
    training = {
        "data": (f"{recordings} simulated recordings x {minutes:g} min ({name} scenario, "
                 f"seeds {seed0}..{seed0 + recordings - 1}), {n_channels} ch @ {fs_hz:g} Hz"),
        "script": f"python -m rtdecode.bundled --only {name} --minutes {minutes:g} "
                  f"--recordings {recordings}",
        "rtdecode_version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "class_counts": counts,
        "validation": (f"{recordings}-fold, blocked by recording (time-contiguous), "
                       f"{gap_rows} rows purged at fold edges"),
        "cv": {k: v for k, v in cv.items() if not k.startswith("oof_")},
        "cv_after_hysteresis": smoothing,
        "xgboost_params": final_params.to_dict(),
        "feature_seconds": round(feature_s, 1),
    }
    contract = ModelContract(**{**contract.__dict__, "training": training})
    path = export_onnx(booster, contract, out_dir / f"{name}.onnx", X[:: max(1, len(X) // 500)])
    card = {"model": path.name, "task": contract.task, "classes": list(classes),
            "n_channels": n_channels, "fs_hz": fs_hz, "features": config.to_dict(),
            "n_features": len(contract.feature_names), "hysteresis": contract.hysteresis.to_dict(),
            "training": training}
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(model_card_markdown(card))
    return card


def model_card_markdown(card: dict) -> str:
    """The human-readable model card."""
    t = card["training"]
    m = t["cv"]["metrics"]
    lines = [
        f"# Model card: `{card['model']}`",
        "",
        f"- **Task**: {card['task']} ({', '.join(card['classes'])})",
        f"- **Input**: {card['n_channels']} channels at {card['fs_hz']:g} Hz",
        f"- **Data**: {t['data']}",
        f"- **Class counts (windows)**: " + ", ".join(f"{k} {v}" for k, v in t["class_counts"].items()),
        f"- **Features**: {card['n_features']} = per channel log10 band power in "
        + ", ".join(f"{b['name']} {b['lo_hz']:g}-{b['hi_hz']:g} Hz" for b in card["features"]["bands"])
        + " and log ratios " + ", ".join(r["name"] for r in card["features"]["ratios"])
        + f"; window {card['features']['window_s']} s, hop {card['features']['hop_s']} s, "
        f"decimated x{card['features']['decimation']} before the FFT",
        f"- **Validation**: {t['validation']}",
        f"- **Model**: XGBoost, {t['xgboost_params']['n_estimators']} rounds, depth "
        f"{t['xgboost_params']['max_depth']}, class-balanced weights; exported to ONNX "
        "(probabilities checked against XGBoost to 1e-5)",
        f"- **Rebuild**: `{t['script']}` (rtdecode {t['rtdecode_version']}, {t['date']})",
        "",
        "## Cross-validated scores (out-of-fold windows)",
        "",
        f"Accuracy {m['accuracy']:.3f}, Cohen's kappa {m['kappa']:.3f}.",
        "",
        "| class | precision | recall | F1 | windows |",
        "|---|---|---|---|---|",
    ]
    for c in card["classes"]:
        pc = m["per_class"][c]
        lines.append(f"| {c} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
    lines += ["", "Confusion matrix (rows true, columns predicted): "
              + ", ".join(card["classes"]), ""]
    lines += ["    " + " ".join(f"{v:6d}" for v in row) for row in m["confusion"]]
    s = t["cv_after_hysteresis"]
    h = card["hysteresis"]
    lines += ["", "## Hysteresis defaults", "",
              "`" + ", ".join(f"{k}={v}" for k, v in h.items() if k != "kind") + "`", "",
              f"After hysteresis (out-of-fold): state accuracy {s['smoothed_accuracy']:.3f}."]
    if card["task"] == "event":
        lines.append(
            f"Events detected {s['events_detected']}/{s['events']}; detection delay after the "
            f"first fully-ictal window median {s['detection_delay_median_s']:.1f} s, p90 "
            f"{s['detection_delay_p90_s']:.1f} s; false alarms {s['false_alarms_per_hour']:.2f} per hour."
        )
    lines += ["", "Simulated data only: retrain on your own labelled recordings before trusting it "
              "on an animal or a patient.", ""]
    return "\n".join(lines)


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
        card = build_model(name, out, minutes=args.minutes, recordings=args.recordings,
                           n_channels=args.channels, fs_hz=args.rate)
        m = card["training"]["cv"]["metrics"]
        print(f"{name}: accuracy {m['accuracy']:.3f}, kappa {m['kappa']:.3f}, after hysteresis "
              f"{card['training']['cv_after_hysteresis']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
