"""``rtdecode train``: labelled recordings -> validated, hysteresis-tuned ONNX model + model card.

Steps (each reported in the model card):

1. features of every recording through the live feature code (:mod:`rtdecode.offline.datasets`), in
   parallel over files with Dask;
2. windows labelled by the one segment that covers them; the others are left out of training;
3. validation that never puts overlapping windows on both sides of a split: folds by recording
   when there are several, by label group (``--group-column``: an event, an animal) when given,
   else contiguous blocks of time with the overlapping rows purged at the edges;
4. XGBoost with class weights and early stopping in each fold; out-of-fold probabilities tune the
   hysteresis (event tasks: best event sensitivity within a false-alarm budget per hour; state
   tasks: best agreement after smoothing);
5. the final model on all labelled windows, exported to ONNX with its contract after a parity
   check against XGBoost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtdecode import __version__
from rtdecode.common.channel_map import BY_LABEL, known_labels, label_difference
from rtdecode.common.files import (
    commit_files,
    discard_staged,
    file_fingerprint,
    staging_path,
)
from rtdecode.config import FeatureConfig
from rtdecode.decoding.model import ModelContract
from rtdecode.offline.datasets import (
    RecordingFeatures,
    Source,
    extract_sources,
    windows_per_label,
    windows_text,
)
from rtdecode.offline.evaluation import event_episodes, tune_hysteresis
from rtdecode.offline.recordings import DataError
from rtdecode.training.card import stage_model_card

__all__ = ["TrainSpec", "train_model", "check_same_channels", "TASK_DEFAULTS"]

logger = logging.getLogger("rtdecode")

#: Class lists of the named tasks; the event class of an event task comes last.
TASK_DEFAULTS = {
    "sleep": {"kind": "state", "classes": ("wake", "nrem", "rem")},
    "seizure": {"kind": "event", "classes": ("normal", "seizure")},
}


@dataclass(frozen=True)
class TrainSpec:
    """What ``rtdecode train`` was asked to do.

    Attributes
    ----------
    sources : tuple of Source
    out : Path
        The ``.onnx`` to write; the model card goes beside it (``.md``, ``.json``, ``.png``).
    task : {"sleep", "seizure", "custom"}
    kind : {"state", "event"}
        Hysteresis family; for ``custom`` it is "event" when ``event_class`` is given.
    classes : tuple of str
        In model output order. Windows of other labels are left out.
    event_class : str or None
    features : FeatureConfig
    n_folds : int
    group_by_label_group : bool
        Keep segments of one label group (``Segment.group``) on one side of every split.
    max_false_alarms_per_hour : float
    seed : int
    n_estimators, max_depth : int
    learning_rate : float
    dask : str
    label_map : tuple of (str, str)
        The ``--map`` renaming already applied to the sources' labels, ``(label, new name)``
        pairs; stored in the model so that ``evaluate`` and ``replay`` rename the same way.
    channel_labels : tuple of str, optional
        The model's channel labels when a channel map gave each recording's channels in the
        model's order under labels of its own (``train --channel-map``); default: the first
        recording's.
    """

    sources: tuple[Source, ...]
    out: Path
    task: str
    kind: str
    classes: tuple[str, ...]
    event_class: str | None
    features: FeatureConfig
    n_folds: int = 5
    group_by_label_group: bool = False
    max_false_alarms_per_hour: float = 1.0
    seed: int = 0
    n_estimators: int = 300
    max_depth: int = 4
    learning_rate: float = 0.1
    dask: str = "local"
    label_map: tuple[tuple[str, str], ...] = ()
    channel_labels: tuple[str, ...] | None = None


def train_model(spec: TrainSpec, *, progress: bool = True) -> dict:
    """Run the whole training; write the model and its card; return the card as a dict.

    With ``spec.dask`` a scheduler address, features are extracted and XGBoost trains
    (``xgboost.dask``) on that cluster's workers.
    """
    client = _training_client(spec.dask)
    try:
        return _train(spec, client, progress)
    finally:
        if client is not None:
            client.close()


def _training_client(dask: str | None):
    """A Dask client when a scheduler address is given: XGBoost then trains with xgboost.dask."""
    if not dask or not dask.startswith(("tcp://", "tls://", "ucx://")):
        return None
    from dask.distributed import Client

    try:
        return Client(dask, timeout=10)
    except Exception as exc:
        raise DataError(f"--dask {dask}: cannot reach the Dask scheduler ({exc})") from None


def _train(spec: TrainSpec, client, progress: bool) -> dict:
    from rtdecode.training.boosting import (
        XGBParams,
        cross_validate,
        export_onnx,
        fit_xgboost,
        grouped_folds,
        with_n_estimators,
    )

    t0 = time.perf_counter()
    config = spec.features
    recs = extract_sources(spec.sources, config, spec.classes, dask=spec.dask, progress=progress)
    # a map or a selection (--channels) already says which channel of each file is which
    # a map gives each file's channels under the file's own names: only their count is compared
    check_same_channels(
        [(r.path, r.channel_names) for r in recs],
        by_name=spec.channel_labels is None,
        ignore_case=any(s.channels is not None for s in spec.sources),
    )
    feature_s = time.perf_counter() - t0
    labelled = [r.y >= 0 for r in recs]
    X = np.concatenate([r.X[m] for r, m in zip(recs, labelled)])
    y = np.concatenate([r.y[m] for r, m in zip(recs, labelled)])
    if X.shape[0] == 0:
        raise DataError(
            "no window is covered by a single labelled segment of the classes "
            f"{list(spec.classes)}; check the labels, --classes or --map, or shorten --window-s"
        )
    counts = {c: int(np.sum(y == i)) for i, c in enumerate(spec.classes)}
    missing = [c for c, n in counts.items() if n == 0]
    if missing:
        raise DataError(
            f"no labelled window of class(es) {missing} (windows per class: {counts}); every "
            "class needs examples: check the label names (--map) or --classes"
        )
    left_out_by_label = _windows_of_other_labels(recs, spec)
    if left_out_by_label:
        logger.warning(
            "labels that are no class (%s) left out of training: %s; --classes or --map "
            "makes them one",
            ", ".join(spec.classes),
            windows_text(left_out_by_label),
        )
    rec_index = np.concatenate([np.full(int(m.sum()), i) for i, m in enumerate(labelled)])
    gap_rows = max(0, math.ceil(config.window_s / config.hop_s) - 1)

    # Validation scheme ------------------------------------------------------------------
    if len(recs) >= 2:
        n_folds = min(spec.n_folds, len(recs))
        folds = grouped_folds(rec_index, n_folds)
        scheme = f"{len(folds)}-fold, grouped by recording ({len(recs)} recordings)"
    elif spec.group_by_label_group:
        groups = np.concatenate([r.groups[m] for r, m in zip(recs, labelled)])
        if any(g is None for g in groups):
            raise DataError("--group-column: some labelled windows have no group value")
        folds = grouped_folds(groups, spec.n_folds)
        scheme = (
            f"{len(folds)}-fold, grouped by label group ({len(set(groups))} groups); "
            "windows straddling segments left out"
        )
    else:
        folds = None
        scheme = (
            f"{spec.n_folds}-fold, contiguous blocks of time, {gap_rows} overlapping "
            "rows purged at each fold edge"
        )
    params = XGBParams(
        n_estimators=spec.n_estimators,
        max_depth=spec.max_depth,
        learning_rate=spec.learning_rate,
        seed=spec.seed,
    )
    cv = cross_validate(
        X,
        y,
        spec.classes,
        params,
        n_folds=spec.n_folds,
        gap_rows=gap_rows,
        folds=folds,
        client=client,
    )
    oof = cv["oof_proba"]

    # Hysteresis tuned on out-of-fold decisions, recording by recording -------------------
    runs = []
    offset = 0
    for r, m in zip(recs, labelled):
        n = int(m.sum())
        proba = oof[offset : offset + n]
        ok = ~np.isnan(proba[:, 0])
        segs = _sources_by_path(spec.sources)[r.path].labels
        episodes = event_episodes(segs, spec.event_class) if spec.kind == "event" else []
        runs.append((r.end_s[m][ok], proba[ok], y[offset : offset + n][ok], episodes, r.duration_s))
        offset += n
    hysteresis, smoothed = tune_hysteresis(
        runs,
        spec.classes,
        spec.kind,
        hop_s=config.hop_s,
        window_s=config.window_s,
        event_class=spec.event_class,
        max_false_alarms_per_hour=spec.max_false_alarms_per_hour,
    )

    # Final model, contract, export ----------------------------------------------------------
    final_params = with_n_estimators(params, cv["best_iteration_median"])
    booster = fit_xgboost(X, y, None, None, len(spec.classes), final_params, client=client)
    channel_names = spec.channel_labels or recs[0].channel_names
    training = {
        "data": [
            {
                "file": str(r.path),
                "duration_s": round(r.duration_s, 3),
                "fs_hz": r.fs_hz,
                "windows": int(r.y.size),
                "labelled_windows": int(m.sum()),
                "label_file_segments": len(_sources_by_path(spec.sources)[r.path].labels),
                # evaluate tells its scores are in-sample on this file, copied or renamed
                "fingerprint": file_fingerprint(r.path),
                # which channel of the file fed each model channel, when a map said so
                **({"channels": list(r.channel_names)} if spec.channel_labels else {}),
            }
            for r, m in zip(recs, labelled)
        ],
        "task": spec.task,
        "class_counts": counts,
        "windows_left_out": int(sum(r.y.size for r in recs) - X.shape[0]),
        "windows_left_out_by_label": left_out_by_label,
        "label_map": dict(spec.label_map),
        "validation": scheme,
        "cv": {k: v for k, v in cv.items() if not k.startswith("oof_")},
        "cv_after_hysteresis": smoothed,
        "hysteresis_tuning": (
            f"best event sensitivity with <= {spec.max_false_alarms_per_hour:g} false alarms/h "
            "on out-of-fold decisions"
            if spec.kind == "event"
            else "best Cohen's kappa after smoothing on out-of-fold decisions"
        ),
        "xgboost_params": final_params.to_dict(),
        "feature_seconds": round(feature_s, 2),
        "rtdecode_version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": "rtdecode train",
        "trained_on": ("xgboost.dask on " + spec.dask) if client is not None else "this machine",
    }
    contract = ModelContract(
        task=spec.kind,
        classes=spec.classes,
        n_channels=len(channel_names),
        channel_labels=tuple(channel_names),
        features=config,
        feature_names=tuple(config.feature_names(channel_names)),
        hysteresis=hysteresis,
        training=training,
    )
    out = Path(spec.out)
    card = {
        "model": out.name,
        "task": spec.kind,
        "classes": list(spec.classes),
        "n_channels": len(channel_names),
        "channel_labels": list(channel_names),
        "fs_hz": config.fs_hz,
        "features": config.to_dict(),
        "n_features": X.shape[1],
        "hysteresis": hysteresis.to_dict(),
        "training": training,
    }
    # the model and its card are staged, then moved into place together: an interrupt or a
    # failure before that leaves whatever was there before, never half a result
    staged = {out: staging_path(out)}
    try:
        export_onnx(booster, contract, staged[out], X[:: max(1, X.shape[0] // 500)])
        staged |= stage_model_card(
            card,
            out,
            oof_runs=runs,
            classes=spec.classes,
            hysteresis=hysteresis,
            hop_s=config.hop_s,
        )
        held = commit_files(staged)
    finally:
        discard_staged(staged)
    if held:
        logger.warning("interrupted while the model was moved into place: it is written whole")
    logger.info("wrote %s (+ .md/.json/.png) in %.1f s", out, time.perf_counter() - t0)
    return card


def _sources_by_path(sources: Sequence[Source]) -> dict[Path, Source]:
    return {Path(s.data).resolve(): s for s in sources} | {Path(s.data): s for s in sources}


def _windows_of_other_labels(recs: Sequence[RecordingFeatures], spec: TrainSpec) -> dict[str, int]:
    """Windows covered by a label that is no class, by label, over all recordings."""
    sources = _sources_by_path(spec.sources)
    counts: dict[str, int] = {}
    for r in recs:
        source = sources[r.path]
        per_label = windows_per_label(
            r.end_s, spec.features.window_s, source.labels, merge_touching=source.merge_touching
        )
        for label, n in per_label.items():
            if label not in spec.classes:
                counts[label] = counts.get(label, 0) + n
    return counts


def check_same_channels(
    recordings: Sequence[tuple[str | Path, Sequence[str]]],
    *,
    by_name: bool = True,
    ignore_case: bool = False,
    warn: bool = True,
) -> None:
    """Refuse recordings whose channels are not the same ones, in the same order.

    Parameters
    ----------
    recordings : sequence of (path, channel names)
        Each recording's channels, as read (after any ``--channels`` selection or map).
    by_name : bool
        Compare the names too (where both files carry names other than the defaults); False
        when a channel map said which channel of each file is which, under the file's names:
        then only the counts are compared.
    ignore_case : bool
        Compare the names regardless of case (``--channels`` selects by name that way).
    warn : bool
        Log a warning when names cannot be compared (a file without names).

    Raises
    ------
    DataError
        The first recording whose channels differ from the first one's, with the difference and
        the fix.
    """
    first_path, first = recordings[0]
    for path, names in recordings[1:]:
        if len(names) != len(first):
            raise DataError(
                f"{path}: {len(names)} channels but {first_path} has {len(first)}; select the "
                "same channels in every file (--channels A,B,... by name) or map them "
                "(--channel-map)"
            )
        if not by_name:
            continue
        known_first, known = known_labels(first, len(first)), known_labels(names, len(names))
        if known_first is None or known is None:
            if warn and tuple(names) != tuple(first):
                logger.warning(
                    "channel identity across recordings cannot be checked: %s or %s has no "
                    "channel names; only the count (%d) is checked",
                    first_path,
                    path,
                    len(first),
                )
        elif known != known_first and not (
            ignore_case and [x.casefold() for x in known] == [x.casefold() for x in known_first]
        ):
            difference = label_difference(
                known_first,
                known,
                expected_name=f"the first recording ({Path(first_path).name})",
                found_name="this one",
            )
            raise DataError(
                f"{path}: its channels are not those of {first_path} in the same order: "
                f"{difference}. A model takes the same channels from every recording: select "
                "them by name with --channels A,B,... (read from every file in the order given), "
                f"or say which channel is which with --channel-map ({BY_LABEL}, or one map "
                "MODEL=FILE,... per --data file)"
            )
