"""The model card: a trained model's provenance, validation scores and plots, as Markdown, JSON
and PNG beside the ONNX file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from rtdecode.common.files import commit_files, discard_staged, staging_path
from rtdecode.common.jsonable import json_default
from rtdecode.config import FeatureConfig, hysteresis_from_dict
from rtdecode.decoding.model import describe_hysteresis

__all__ = ["write_model_card", "stage_model_card", "model_card_markdown"]

logger = logging.getLogger("rtdecode")


# Model card -------------------------------------------------------------------------------


def _short_windows(features: dict) -> str:
    """What the card says of the bands taken from hop-long pieces (nothing when none are)."""
    try:
        config = FeatureConfig.from_dict(dict(features))
    except (TypeError, ValueError):
        return ""
    short = [config.bands[j].name for j in config.short_window_bands]
    if not short:
        return ""
    return f"; {', '.join(short)} from {config.hop_s:g} s pieces"


def write_model_card(card: dict, model_path: Path, **plot_options) -> None:
    """Write ``<model>.json``, ``<model>.md`` and (with matplotlib) ``<model>.png`` beside it,
    all or none; ``plot_options`` as :func:`stage_model_card` takes them."""
    staged = stage_model_card(card, model_path, **plot_options)
    try:
        commit_files(staged)
    finally:
        discard_staged(staged)


def stage_model_card(
    card: dict,
    model_path: Path,
    *,
    oof_runs=None,
    classes=None,
    hysteresis=None,
    hop_s: float | None = None,
) -> dict[Path, Path]:
    """Write the card's files under staging names beside ``model_path``, for
    :func:`rtdecode.common.files.commit_files` to move into place with the model.

    Returns
    -------
    dict of Path to Path
        ``{card file: its staged file}`` for ``<model>.json``, ``.md`` and, with matplotlib and
        ``oof_runs``, ``.png``. On an error (or an interrupt) nothing stays staged.
    """
    stem = Path(model_path).with_suffix("")
    staged: dict[Path, Path] = {}
    try:
        if oof_runs is not None:
            png = stem.with_suffix(".png")
            staged[png] = staging_path(png)
            if _plot_card(staged[png], card, oof_runs, classes, hysteresis, hop_s) is None:
                del staged[png]
            else:
                card["plot"] = png.name
        texts = {
            ".json": json.dumps(card, indent=2, default=json_default) + "\n",
            ".md": model_card_markdown(card),
        }
        for suffix, text in texts.items():
            target = stem.with_suffix(suffix)
            staged[target] = staging_path(target)
            staged[target].write_text(text)
    except BaseException:
        discard_staged(staged)
        raise
    return staged


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _counts(mapping: dict) -> str:
    """``{"wake": 268, "s1": 48}`` -> ``"wake 268, s1 48"`` (no dict reprs in the card)."""
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in mapping.items()
    )


def model_card_markdown(card: dict) -> str:
    """The Markdown model card of a trained model (data, validation, scores, hysteresis)."""
    t = card["training"]
    cv = t["cv"]["metrics"]
    lines = [
        f"# Model card: `{card['model']}`",
        "",
        f"- task: **{card['task']}**, classes: {', '.join(card['classes'])}",
        f"- input: {card['n_channels']} channel(s) at {card['fs_hz']:g} Hz"
        + (
            f" ({', '.join(card.get('channel_labels') or [])[:200]})"
            if card.get("channel_labels")
            else ""
        ),
        f"- features: {card['n_features']} (window {card['features']['window_s']:g} s, hop "
        f"{card['features']['hop_s']:g} s, bands "
        f"{', '.join(b['name'] for b in card['features']['bands'])}; normalisation "
        f"{card['features'].get('normalisation', 'none')}" + _short_windows(card["features"]) + ")",
        f"- hysteresis: {describe_hysteresis(hysteresis_from_dict(card['hysteresis']))}",
        f"- trained {t.get('date', '')} with rtdecode {t.get('rtdecode_version', '')}"
        + (f"; rebuild: `{t['script']}`" if t.get("script") else ""),
        "",
        "## Data",
        "",
    ]
    data = t["data"]
    if isinstance(data, str):
        lines.append(f"- {data}")
    else:
        lines += ["| file | duration s | windows | labelled |", "|---|---|---|---|"]
        lines += [
            f"| {d['file']} | {d['duration_s']:g} | {d['windows']} | {d['labelled_windows']} |"
            for d in data
        ]
    lines += [
        "",
        f"Windows per class: {_counts(t['class_counts'])}"
        + (
            f"; left out (straddling a change or unlabelled): {t['windows_left_out']}"
            if "windows_left_out" in t
            else ""
        )
        + (
            f"; of which of labels that are no class: {_counts(t['windows_left_out_by_label'])}"
            if t.get("windows_left_out_by_label")
            else ""
        )
        + (
            "; labels renamed: " + ", ".join(f"{k} -> {v}" for k, v in t["label_map"].items())
            if t.get("label_map")
            else ""
        ),
        "",
        "## Validation",
        "",
        f"{t['validation']}.",
        "",
        "| | accuracy | Cohen's kappa |",
        "|---|---|---|",
        f"| windows (out of fold) | {cv['accuracy']:.3f} | {cv['kappa']:.3f} |",
    ]
    after = t.get("cv_after_hysteresis") or {}
    if "after_hysteresis" in after:
        a = after["after_hysteresis"]
        lines.append(f"| after hysteresis | {a['accuracy']:.3f} | {a['kappa']:.3f} |")
    lines += ["", "| class | precision | recall | F1 | windows |", "|---|---|---|---|---|"]
    for c, m in cv["per_class"].items():
        lines.append(
            f"| {c} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | "
            f"{m['support']} |"
        )
    lines += [
        "",
        "Confusion matrix (rows: true, columns: predicted):",
        "",
        "| | " + " | ".join(card["classes"]) + " |",
        "|---" * (len(card["classes"]) + 1) + "|",
    ]
    for c, row in zip(card["classes"], cv["confusion"]):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    if "events" in after:
        e = after["events"]
        lines += [
            "",
            "## Events after hysteresis (out of fold)",
            "",
            f"- detected {e['events_detected']} of {e['events']} events "
            f"(sensitivity {_fmt(e['event_sensitivity'])})",
            f"- detection delay median {_fmt(e['detection_delay_median_s'], 2)} s, "
            f"p90 {_fmt(e['detection_delay_p90_s'], 2)} s",
            f"- false alarms: {e['false_alarms']} in {e['hours']:.2f} h "
            f"({_fmt(e['false_alarms_per_hour'], 2)} per hour)",
        ]
    if "hysteresis_tuning" in t:
        lines += ["", f"Hysteresis tuned for: {t['hysteresis_tuning']}."]
    if card.get("plot"):
        lines += ["", f"![confusion matrix and states over time]({card['plot']})"]
    lines += [
        "",
        "## Training",
        "",
        f"XGBoost: {_counts(t['xgboost_params'])}.",
        f"Feature extraction took {t.get('feature_seconds', '-')} s.",
        "",
    ]
    return "\n".join(lines)


def _plot_card(path: Path, card: dict, runs, classes, hysteresis, hop_s) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the train extra brings matplotlib; without it the card has no plot
        return None
    from rtdecode.offline.evaluation import smooth

    cm = np.array(card["training"]["cv"]["metrics"]["confusion"], dtype=float)
    fig, (ax_cm, ax_t) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2.5]})
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax_cm.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax_cm.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax_cm.set_xticks(range(len(classes)), classes)
    ax_cm.set_yticks(range(len(classes)), classes)
    ax_cm.set_xlabel("predicted (out of fold)")
    ax_cm.set_ylabel("true")
    ax_cm.set_title("confusion matrix")
    end_s, proba, y = runs[0][0], runs[0][1], runs[0][2]
    states = smooth(proba, classes, hysteresis, hop_s)
    ax_t.step(end_s / 60, y, where="post", lw=2.5, alpha=0.5, label="true")
    ax_t.step(end_s / 60, states, where="post", lw=1, label="predicted (after hysteresis)")
    ax_t.set_yticks(range(len(classes)), classes)
    ax_t.set_xlabel("time (min), first recording")
    ax_t.set_title("state over time (out-of-fold decisions)")
    ax_t.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")  # the staging name has no .png suffix
    plt.close(fig)
    return path
