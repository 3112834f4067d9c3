"""Command line for recordings: ``rtdecode train | evaluate | replay | export``.

Registered by :mod:`rtdecode.cli.main`; bad files and arguments raise ``UsageError`` (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from functools import partial
from pathlib import Path

import numpy as np

from rtdecode.cli.common import (
    CHANNEL_MAP_HELP,
    Interrupted,
    _int_at_least,
    _model_path,
    _non_empty,
    _non_negative_float,
    _non_negative_int,
    _positive_float,
    _positive_int,
)
from rtdecode.common.files import (
    commit_files,
    discard_staged,
    file_fingerprint,
    staging_path,
)
from rtdecode.offline.recordings import RECORDING_FORMATS

logger = logging.getLogger("rtdecode")

# What --data and replay's FILE take, for their help.
DATA_KINDS = (
    ".edf .bdf .xdf .npz .nwb .nsX .rhd .rhs, or a Neuralynx, Open Ephys (binary or legacy), "
    "SpikeGLX or Intan RHX folder"
)


def _split_list(text: str) -> list[str]:
    """An argument type: ``"A, B,C"`` -> ``["A", "B", "C"]``, at least one name."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _map_pairs(text: str) -> list[tuple[str, str]]:
    """An argument type: ``"S1=light,S2=light"`` -> ``[("S1", "light"), ("S2", "light")]``."""
    pairs = []
    for pair in _split_list(text):
        old, eq, new = (p.strip() for p in pair.partition("="))
        if not (eq and old and new):
            raise argparse.ArgumentTypeError(
                f"{pair!r} is not OLD=NEW (a label, '=', its new name; e.g. s1=light)"
            )
        pairs.append((old, new))
    return pairs


def _parse_map(items: list[list[tuple[str, str]]] | None) -> dict[str, str]:
    """The ``--map`` flags (each parsed by ``_map_pairs``) as one {old: new} dict."""
    return {old: new for pairs in items or [] for old, new in pairs}


_LABEL_FORMATS = (
    "CSV with onset_s,duration_s,label; a hypnogram with --epoch-s; an EDF+ file (its "
    "annotations); an XDF file (a marker stream); an NWB file (a TimeIntervals table); a "
    "Neuralynx .nev file (event strings)"
)


def _add_label_args(p: argparse.ArgumentParser, command: str) -> None:
    """The label flags of ``command`` (train, evaluate or replay), each help with its default."""
    g = p.add_argument_group("labels")
    if command == "train":
        g.add_argument(
            "--labels",
            nargs="+",
            type=Path,
            metavar="FILE",
            help=f"one label file per --data file, in the same order: {_LABEL_FORMATS} "
            "(default: each data file's own annotations or markers)",
        )
    else:
        g.add_argument(
            "--labels",
            type=Path,
            metavar="FILE",
            help=f"the recording's label file: {_LABEL_FORMATS} "
            + (
                "(default: the data file's own annotations or markers)"
                if command == "evaluate"
                else "(default: none, no NAME-truth stream)"
            ),
        )
    g.add_argument(
        "--epoch-s",
        type=_positive_float,
        metavar="S",
        help="epoch length of a hypnogram, one label per line, seconds (default: none, the "
        "label file is CSV, EDF+ or XDF)",
    )
    g.add_argument(
        "--label-column",
        default="label",
        help="CSV or NWB table column holding the label (default: %(default)s)",
    )
    if command == "train":
        g.add_argument(
            "--group-column",
            help="CSV column whose value groups segments that must stay on one side of every "
            "validation split: an event or annotation id, an animal (default: none; folds by "
            "recording when several are given, else blocks of time)",
        )
    g.add_argument(
        "--marker-stream",
        help="XDF: the marker stream (name or type) holding the labels (default: the only one)",
    )
    g.add_argument(
        "--intervals",
        metavar="NAME",
        help="NWB: the TimeIntervals table holding the labels, e.g. sleep_states (default: the "
        "only one; a file with several is refused, listing them)",
    )
    g.add_argument(
        "--event-prefix",
        metavar="PREFIX",
        help="Neuralynx .nev: the events whose string starts with PREFIX are labels, the rest "
        "of the string the label, e.g. --event-prefix sleep: for 'sleep:nrem' (default: every "
        "event but Cheetah's own Starting/Stopping Recording and TTL lines)",
    )
    g.add_argument(
        "--map",
        action="append",
        type=_map_pairs,
        metavar="OLD=NEW[,OLD=NEW]",
        help="rename labels, e.g. --map s1=light,s2=light,s3=deep,s4=deep; every OLD must be "
        "a label found; repeatable (default: "
        + {
            "train": "none; the model keeps it for evaluate and replay)",
            "evaluate": "the map the model was trained with)",
            "replay": "none, or with --model the map it was trained with)",
        }[command],
    )
    if command != "replay":
        g.add_argument(
            "--windows-within-segments",
            action="store_true",
            help="label only windows inside one segment, even across touching segments of one "
            "label (files made of separate pieces joined end to end); default: touching "
            "segments of one label count as one",
        )


def _add_data_args(p: argparse.ArgumentParser, many: bool) -> None:
    p.add_argument(
        "--data",
        nargs="+" if many else None,
        type=Path,
        required=True,
        metavar="FILE",
        help=f"recordings ({DATA_KINDS}); several make one model, validated by recording"
        if many
        else f"one recording ({DATA_KINDS}; evaluate scores one; run it once per recording)",
    )
    _add_channel_args(p)


def _add_channel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--channels",
        type=_split_list,
        metavar="A,B,...",
        help="channels by name or 0-based index (default: all)",
    )
    p.add_argument(
        "--stream",
        help="which signal when there are several: XDF, the data stream's name or type; NWB, "
        "the ElectricalSeries' name; a rig's folder, neo's stream name (default: the only one, "
        "or the rig's neural stream)",
    )
    p.add_argument(
        "--format",
        choices=list(RECORDING_FORMATS),
        help="the recordings' format (default: recognised from their content)",
    )


def add_offline_commands(sub) -> None:
    """Add ``train``, ``evaluate`` and ``replay`` to the CLI's subparsers."""
    p = sub.add_parser(
        "train",
        help="train a model from labelled recordings",
        description="Train an ONNX model from labelled recordings, with validation that keeps "
        "overlapping windows apart, and write its model card.",
    )
    _add_data_args(p, many=True)
    _add_label_args(p, "train")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="MODEL.onnx",
        help="the model to write; its card (.md, .json, .png) goes beside it",
    )
    p.add_argument(
        "--task",
        choices=("sleep", "seizure", "custom"),
        default="custom",
        help="sleep: a state model of wake, nrem, rem; seizure: an event model of normal, "
        "seizure that alarms on seizure; custom: classes from the labels, a state model "
        "unless --event-class (default: %(default)s)",
    )
    p.add_argument(
        "--classes",
        type=_split_list,
        metavar="A,B,...",
        help="classes in output order (default: the task's, or every label found); "
        "for event tasks the event class is --event-class or the last one",
    )
    p.add_argument(
        "--event-class",
        metavar="CLASS",
        help="custom tasks: the class that raises an alarm, making it an event model "
        "(default: none, a state model)",
    )
    p.add_argument(
        "--window-s",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="analysis window, seconds, whole samples (default: %(default)g)",
    )
    p.add_argument(
        "--hop-s",
        type=_positive_float,
        default=0.1,
        metavar="S",
        help="time between decisions, seconds; a hop that is not whole samples at the "
        "recording's rate becomes a whole-sample one near it, and train says so "
        "(default: %(default)g)",
    )
    p.add_argument(
        "--bands",
        type=_split_list,
        metavar="NAME,...",
        help="a subset of the bands (default: all below the Nyquist frequency: delta theta "
        "sigma beta gamma high_gamma ripple fast_ripple)",
    )
    p.add_argument(
        "--normalisation",
        choices=("relative", "baseline", "none"),
        default="relative",
        help="per-recording feature normalisation, causal so it runs live: relative, band "
        "power over the channel's total; baseline, minus a running mean; none (default: "
        "%(default)s; measured across recordings with different electrode gains in "
        "benchmarks/RESULTS.md)",
    )
    p.add_argument(
        "--baseline-s",
        type=_positive_float,
        default=300.0,
        metavar="S",
        help="time constant of the running mean for --normalisation baseline, seconds "
        "(default: %(default)g)",
    )
    # cross-validation needs one fold to fit on and another to validate
    p.add_argument(
        "--folds",
        type=_int_at_least(2),
        default=5,
        metavar="N",
        help="validation folds, at most one per recording or group (default: %(default)s)",
    )
    p.add_argument(
        "--max-false-alarms-per-hour",
        type=_non_negative_float,
        default=1.0,
        metavar="N",
        help="event tasks: the hysteresis is tuned for the most events detected with at most "
        "this many false alarms per hour, out of fold (default: %(default)g)",
    )
    p.add_argument(
        "--trees",
        type=_positive_int,
        default=300,
        metavar="N",
        help="most boosting rounds; early stopping may use fewer (default: %(default)s)",
    )
    p.add_argument(
        "--max-depth",
        type=_positive_int,
        default=4,
        metavar="N",
        help="depth of each tree (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="random seed of XGBoost's sampling (default: %(default)s)",
    )
    p.add_argument(
        "--dask",
        default="local",
        help="local: a local Dask cluster when several files are given; none: this process; "
        "or a scheduler address tcp://HOST:PORT (default: %(default)s)",
    )
    p.add_argument(
        "--channel-map",
        nargs="+",
        metavar="MAP",
        help="which channel of each recording is which model channel: MODEL=FILE,... (the "
        "model's label, the file's), a .csv/.tsv/.json/.toml file of such pairs, one for all "
        "--data files or one per file in the same order; or by-label (the first file's channels, "
        "found by label in the others); instead of --channels (default: none)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (default: shown)",
    )

    p = sub.add_parser(
        "evaluate",
        help="score a model on a labelled recording (live code path)",
        description="Run one recording through the live decoding path (ring buffer, features, "
        "model, hysteresis) as fast as possible and report the model card's metrics.",
    )
    p.add_argument(
        "--model",
        type=_model_path,
        required=True,
        metavar="MODEL.onnx",
        help="the model to score: a file from rtdecode train, or a bundled model's name "
        "(seizure, sleep)",
    )
    _add_data_args(p, many=False)
    _add_label_args(p, "evaluate")
    p.add_argument(
        "--decisions",
        type=Path,
        metavar="JSONL",
        help="also write every decision (end_s, probabilities, state) as JSON lines "
        "(default: none)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the metrics as JSON (default: as text)"
    )
    p.add_argument(
        "--channel-map",
        metavar="MAP",
        help=CHANNEL_MAP_HELP.replace("stream", "recording")
        + " (instead of --channels; default: none)",
    )
    p.add_argument(
        "--stim",
        type=Path,
        metavar="RULES.toml",
        help="dry-run a stimulation protocol on the recording: what it would have triggered "
        "(the rules file's output port is not opened; default: none); phase rules also report "
        "the phase at which each pulse would have landed",
    )
    p.add_argument(
        "--rose-plot",
        type=Path,
        metavar="PNG",
        help="with --stim: a rose plot of the phase rules' errors (needs matplotlib, the train "
        "extra; default: none)",
    )

    p = sub.add_parser(
        "replay",
        help="stream a recording over LSL",
        description="Stream a recording over LSL at real-time pace (or --speed "
        "times faster), with its labels as a NAME-truth marker stream.",
    )
    p.add_argument("file", type=Path, help=f"the recording to stream ({DATA_KINDS})")
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="times real time (default: %(default)g, real time)",
    )
    p.add_argument("--name", type=_non_empty, help="LSL stream name (default: the file's stem)")
    _add_label_args(p, "replay")
    p.add_argument(
        "--model",
        type=_model_path,
        metavar="MODEL.onnx",
        help="rename the labels as this model's training did (its stored --map), so "
        "NAME-truth carries its class names (default: none)",
    )
    _add_channel_args(p)
    p.add_argument(
        "--chunk",
        type=_positive_int,
        metavar="SAMPLES",
        help="samples per push (default: about 1 ms of samples)",
    )
    p.add_argument(
        "--wait-for-consumer",
        type=_non_negative_float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for an inlet before streaming (default: %(default)g, "
        "start at once)",
    )
    p.add_argument(
        "--loop", action="store_true", help="start over at the end (default: stop there)"
    )
    _add_export_command(sub)


def _add_export_command(sub) -> None:
    """``rtdecode export``: a decision log into an NWB file."""
    from rtdecode.cli.common import _finite_float

    p = sub.add_parser(
        "export",
        help="write a decision log's states and triggers into an NWB file",
        description="Write a decision log's smoothed states (intervals/decoded_states), "
        "triggers (events/stimulation) and no_signal/stall stretches (intervals/decoder_health) "
        "into an NWB file, on the recording's time base (docs/training.md, Export to NWB).",
    )
    p.add_argument(
        "log",
        nargs="+",
        type=Path,
        metavar="LOG.jsonl",
        help="the decision log of rtdecode run --log (a rotated log's files oldest first, the "
        "current one last), or rtdecode evaluate --decisions",
    )
    p.add_argument("--nwb", type=Path, required=True, metavar="OUT.nwb", help="the file to write")
    p.add_argument(
        "--recording",
        type=Path,
        metavar="REC.nwb",
        help="the NWB recording that was decoded: OUT.nwb takes its session start and time "
        "base, the decoded stream's first sample placed at its ElectricalSeries' first sample "
        "(default: none; the session starts at the decoded stream's first sample)",
    )
    p.add_argument(
        "--series",
        metavar="NAME",
        help="the ElectricalSeries of --recording that was decoded (default: the earliest "
        "starting one)",
    )
    p.add_argument(
        "--align",
        choices=("auto", "samples", "lsl"),
        default="auto",
        help="how a decision gets its time: samples, by the decoded stream's sample count "
        "(exact; right for a replay at any speed; one run only); lsl, by the LSL timestamps "
        "after the first decision; auto, samples for a log of one run, else lsl (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--offset-s",
        type=_finite_float,
        default=0.0,
        metavar="S",
        help="seconds from the recording's first sample to the decoded stream's first sample, "
        "for a live decoder started after the recording (default: %(default)g: a replay or "
        "evaluate of the recording)",
    )


def _read_labels(args, data_path: Path, label_path: Path | None, recording) -> list:
    """The labelled segments of one recording, as its label file names them (before --map)."""
    from rtdecode.offline.labels import read_labels

    return read_labels(
        label_path or data_path,
        recording=recording,
        epoch_s=getattr(args, "epoch_s", None),
        label_column=args.label_column,
        group_column=getattr(args, "group_column", None),
        marker_stream=getattr(args, "marker_stream", None),
        intervals=getattr(args, "intervals", None),
        event_prefix=getattr(args, "event_prefix", None),
    )


def _label_map(args, labels_found, contract=None) -> dict[str, str]:
    """How to rename labels: ``--map`` when given (each key must be a label found), else the
    map ``contract``'s model was trained with (keys absent from this recording are fine)."""
    from rtdecode.offline.labels import check_label_map

    if args.map:
        mapping = _parse_map(args.map)
        check_label_map(mapping, labels_found)
        return mapping
    stored = (contract.training or {}).get("label_map") if contract is not None else None
    if not stored:
        return {}
    if not isinstance(stored, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in stored.items()
    ):
        logger.warning("the model's label_map is not a map of names (%r); not used", stored)
        return {}
    logger.info("labels renamed as in training: %s", _map_text(stored))
    return stored


def _map_text(mapping: dict[str, str]) -> str:
    return ", ".join(f"{old}={new}" for old, new in mapping.items())


def _mapped_sources(maps, recs, sources):
    """The model's channel labels and each source reading its file's channels in their order,
    as the ``--channel-map`` maps say (one for all files, or one per file)."""
    from dataclasses import replace

    first = maps[0]
    if first.by_label:
        model_labels = tuple(recs[0].channel_names)
    else:
        model_labels = tuple(m for m, _ in first.pairs)
    mapped = []
    for i, (rec, source) in enumerate(zip(recs, sources)):
        channel_map = maps[i] if len(maps) > 1 else first
        index = channel_map.resolve(
            model_labels, rec.channel_names, model="the model", source=str(rec.path)
        )
        mapped.append(replace(source, channels=index))
    return model_labels, mapped


def cmd_train(args: argparse.Namespace) -> int:
    try:
        card = _train(args)
    except KeyboardInterrupt as exc:  # the model and its card are moved into place last
        raise Interrupted("no model written", exc) from None
    _print_train_summary(args, card)
    return 0


def _train(args: argparse.Namespace) -> dict:
    """Check the arguments, train, write the model and its card; the card."""
    from rtdecode.cli.common import UsageError, _parse_channel_map
    from rtdecode.common.channel_map import ChannelMapError
    from rtdecode.config import DEFAULT_BANDS, DEFAULT_RATIOS
    from rtdecode.offline.datasets import Source
    from rtdecode.offline.labels import map_labels
    from rtdecode.offline.recordings import DataError, open_recording
    from rtdecode.training.trainer import (
        TASK_DEFAULTS,
        TrainSpec,
        check_same_channels,
        train_model,
    )

    try:
        if args.labels is not None and len(args.labels) != len(args.data):
            raise UsageError(
                f"--labels: {len(args.labels)} file(s) for {len(args.data)} --data "
                "file(s); give one label file per recording, in the same order"
            )
        if not args.out.parent.resolve().is_dir():
            raise UsageError(f"--out {args.out}: directory {args.out.parent} does not exist")
        maps = [_parse_channel_map(text) for text in args.channel_map or []]
        if maps and args.channels:
            raise UsageError("--channels and --channel-map both select channels: give one")
        if len(maps) not in (0, 1, len(args.data)):
            raise UsageError(
                f"--channel-map: {len(maps)} maps for {len(args.data)} --data files; give one "
                "map for every file, or one per file in the same order"
            )
        fs_rates, files_labels, recs = set(), [], []
        for i, data in enumerate(args.data):
            rec = open_recording(
                data, channels=args.channels, stream=args.stream, file_format=args.format
            )
            files_labels.append(
                _read_labels(args, data, args.labels[i] if args.labels else None, rec)
            )
            fs_rates.add(rec.fs_hz)
            recs.append(rec)
        label_map = _label_map(args, [s.label for labels in files_labels for s in labels])
        sources, found = [], []
        for data, labels in zip(args.data, files_labels):
            labels = map_labels(labels, label_map)
            found += [s.label for s in labels]
            sources.append(
                Source(
                    data=Path(data),
                    labels=tuple(labels),
                    channels=tuple(args.channels) if args.channels else None,
                    stream=args.stream,
                    file_format=args.format,
                    merge_touching=not args.windows_within_segments,
                )
            )
        model_labels = None
        if maps:
            model_labels, sources = _mapped_sources(maps, recs, sources)
        else:
            # before the features are computed, which takes minutes on long recordings
            check_same_channels(
                [(r.path, r.channel_names) for r in recs],
                ignore_case=bool(args.channels),
                warn=False,
            )
        if len(fs_rates) != 1:
            raise UsageError(
                f"recordings at different rates {sorted(fs_rates)} Hz; train on one rate"
            )
        fs_hz = fs_rates.pop()
        defaults = TASK_DEFAULTS.get(args.task)
        if args.classes:
            classes = tuple(args.classes)
        elif defaults:
            classes = defaults["classes"]
        else:
            classes = tuple(dict.fromkeys(found))  # order of first appearance
        unknown = [c for c in classes if c not in set(found)]
        if unknown:
            raise UsageError(
                f"class(es) {unknown} appear in no label file (labels found: "
                f"{sorted(set(found))}); use --classes or --map"
            )
        if len(classes) < 2:
            raise UsageError(
                f"need at least two classes, got {list(classes)} (labels found: "
                f"{sorted(set(found))})"
            )
        if args.event_class is not None:
            if args.event_class not in classes:
                raise UsageError(
                    f"--event-class {args.event_class!r} is not one of {list(classes)}"
                )
            kind, event_class = "event", args.event_class
        elif defaults:
            kind = defaults["kind"]
            event_class = classes[-1] if kind == "event" else None
        else:
            kind, event_class = "state", None
        print(_task_text(args, kind, classes, event_class), flush=True)
        bands = DEFAULT_BANDS
        if args.bands:
            by_name = {b.name: b for b in DEFAULT_BANDS}
            bad = [b for b in args.bands if b not in by_name]
            if bad:
                raise UsageError(f"--bands: unknown band(s) {bad}; known: {list(by_name)}")
            bands = tuple(by_name[b] for b in args.bands)
        nyquist = fs_hz / 2
        bands = tuple(b for b in bands if b.lo_hz < nyquist)
        names = {b.name for b in bands}
        ratios = tuple(r for r in DEFAULT_RATIOS if r.numerator in names and r.denominator in names)
        config = _feature_config(
            args,
            fs_hz,
            bands=bands,
            ratios=ratios,
            normalisation=args.normalisation,
            baseline_s=args.baseline_s,
        )
        spec = TrainSpec(
            sources=tuple(sources),
            out=args.out,
            task=args.task,
            kind=kind,
            classes=classes,
            event_class=event_class,
            features=config,
            n_folds=args.folds,
            group_by_label_group=args.group_column is not None,
            max_false_alarms_per_hour=args.max_false_alarms_per_hour,
            seed=args.seed,
            n_estimators=args.trees,
            max_depth=args.max_depth,
            dask=args.dask,
            label_map=tuple(label_map.items()),
            channel_labels=model_labels,
        )
        return train_model(spec, progress=not args.no_progress)
    except (DataError, ChannelMapError) as exc:
        raise UsageError(str(exc)) from None


def _task_text(args: argparse.Namespace, kind: str, classes, event_class: str | None) -> str:
    """Which task ``train`` chose and why: a state model raises no alarm, which a user who
    labelled seizures may not expect."""
    text = f"task: {kind} model, classes {', '.join(classes)}"
    if args.event_class is not None:
        return f"{text}; alarms on {event_class} (--event-class)"
    if args.task != "custom":
        alarm = f"; alarms on {event_class}" if kind == "event" else ""
        return f"{text} (--task {args.task}){alarm}"
    example = "seizure" if "seizure" in classes else classes[-1]
    return (
        f"{text} (--task custom, the default, without --event-class): it tells the states "
        f"apart and raises no alarm; for an alarm on one class give --event-class {example}"
        + (" or --task seizure" if set(classes) == {"normal", "seizure"} else "")
    )


#: Windows tried, shortest first, when a --window-s is refused (a suggestion to give).
_SUGGESTED_WINDOWS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 8.0, 10.0, 16.0, 30.0)


def _feature_config(args: argparse.Namespace, fs_hz: float, **options):
    """The feature configuration of ``--window-s`` and ``--hop-s`` at the recordings' rate.

    Decisions come every whole number of samples: a hop that is not one (0.1 s at 512 Hz is
    51.2 samples) becomes a whole-sample hop near it
    (:func:`rtdecode.offline.datasets.whole_sample_hop`), and a window whole analysis samples;
    each change is said on stdout. A refused value is a UsageError suggesting one that works.
    """
    from rtdecode.cli.common import UsageError
    from rtdecode.config import FeatureConfig
    from rtdecode.offline.datasets import whole_sample_hop

    if args.hop_s > args.window_s:
        raise UsageError(
            f"--hop-s {args.hop_s:g} is longer than --window-s {args.window_s:g}: windows would "
            f"skip samples; give --hop-s {args.window_s:g} or less, or a longer --window-s"
        )

    def config(window_s: float, hop_s: float) -> FeatureConfig:
        return FeatureConfig(fs_hz=fs_hz, window_s=window_s, hop_s=hop_s, **options)

    hop_samples = args.hop_s * fs_hz
    try:
        if abs(hop_samples - round(hop_samples)) <= 1e-6 * hop_samples:
            features = config(args.window_s, args.hop_s)
        else:
            features = whole_sample_hop(args.hop_s, fs_hz, partial(config, args.window_s))
            print(
                f"hop: --hop-s {args.hop_s:g} is {hop_samples:.6g} samples at {fs_hz:g} Hz; "
                f"using {features.hop_samples} samples, {features.hop_s:.6g} s (decisions come "
                "every whole number of samples)"
            )
    except ValueError as exc:
        suggestion = ""
        for window_s in (w for w in _SUGGESTED_WINDOWS_S if w > args.window_s):
            try:
                whole_sample_hop(min(args.hop_s, window_s), fs_hz, partial(config, window_s))
            except ValueError:
                continue
            suggestion = f"; --window-s {window_s:g} works"
            break
        raise UsageError(f"features: {exc}{suggestion}") from None
    window_s = features.window_samples_analysis / features.analysis_fs_hz
    if abs(window_s - args.window_s) > 1e-9 * args.window_s:
        print(
            f"window: --window-s {args.window_s:g} is "
            f"{args.window_s * features.analysis_fs_hz:.6g} samples at the analysis rate "
            f"{features.analysis_fs_hz:g} Hz; using {features.window_samples_analysis}, "
            f"{window_s:.6g} s"
        )
        features = config(window_s, features.hop_s)
    return features


def _print_train_summary(args: argparse.Namespace, card: dict) -> None:
    from rtdecode.config import hysteresis_from_dict
    from rtdecode.decoding.model import describe_hysteresis

    t = card["training"]
    cv = t["cv"]["metrics"]
    print(
        f"wrote {args.out} ({len(card['classes'])} classes, {card['n_features']} features) and "
        f"its card {args.out.with_suffix('.md')}"
    )
    print(f"validation: {t['validation']}")
    print(f"out-of-fold windows: accuracy {cv['accuracy']:.3f}, kappa {cv['kappa']:.3f}")
    after = t["cv_after_hysteresis"]
    a = after["after_hysteresis"]
    print(f"hysteresis: {describe_hysteresis(hysteresis_from_dict(card['hysteresis']))}")
    print(f"after hysteresis: accuracy {a['accuracy']:.3f}, kappa {a['kappa']:.3f}")
    if "events" in after:
        print(f"events (out of fold): {_events_text(after['events'])}")


def _num(value: float | None, digits: int = 3) -> str:
    """A score rounded for reading; "-" for none (no event, no class support)."""
    return "-" if value is None else f"{value:.{digits}f}"


def _events_text(e: dict) -> str:
    """Event metrics in words: detected, delays, false alarms (2 decimals: seconds, per hour)."""
    return (
        f"detected {e['events_detected']}/{e['events']}, delay median "
        f"{_num(e['detection_delay_median_s'], 2)} s p90 {_num(e['detection_delay_p90_s'], 2)} "
        f"s, false alarms {e['false_alarms']} ({_num(e['false_alarms_per_hour'], 2)}/h)"
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        return _evaluate(args)
    except KeyboardInterrupt as exc:
        raise Interrupted("no report", exc) from None


def _evaluate(args: argparse.Namespace) -> int:
    from rtdecode.cli.common import UsageError, _parse_channel_map
    from rtdecode.common.channel_map import ChannelMapError, route_channels
    from rtdecode.decoding.model import ModelError, OnnxModel
    from rtdecode.offline.datasets import window_labels, windows_per_label, windows_text
    from rtdecode.offline.evaluation import (
        decision_metrics,
        decode_recording,
        event_episodes,
        phase_report,
        stim_report,
    )
    from rtdecode.offline.labels import map_labels
    from rtdecode.offline.recordings import DataError, open_recording
    from rtdecode.stimulation.rules import RulesError, load_protocol
    from rtdecode.streams import BAD_SIGNAL

    channel_map = _parse_channel_map(args.channel_map)
    if channel_map is not None and args.channels:
        raise UsageError("--channels and --channel-map both select channels: give one")
    try:
        model = OnnxModel(args.model)
        rec = open_recording(
            args.data, channels=args.channels, stream=args.stream, file_format=args.format
        )
        segments = _read_labels(args, args.data, args.labels, rec)
        contract = model.contract
        segments = map_labels(segments, _label_map(args, [s.label for s in segments], contract))
        _check_labels_name_classes(segments, contract.classes)
        picked = route_channels(
            contract.labels,
            rec.channel_names,
            channel_map,
            model=f"model {args.model.name}",
            source=str(rec.path),
            kind="recording",
        )
        if picked is not None:
            # the model's channels, in its order, read from the file (offline: no cost to speak of)
            rec = open_recording(
                args.data, channels=list(picked), stream=args.stream, file_format=args.format
            )
        model.check_stream(n_channels=rec.n_channels, fs_hz=rec.fs_hz, stream_name=str(rec.path))
        protocol = None
        if args.rose_plot is not None and args.stim is None:
            raise UsageError("--rose-plot needs --stim RULES.toml (a protocol with phase rules)")
        if args.stim is not None:
            protocol = load_protocol(args.stim)
            protocol.check_states(contract.classes, contract.task)
            protocol.check_channels(rec.channel_names)
            if args.rose_plot is not None and not protocol.phase_rules:
                raise UsageError(f"--rose-plot: {args.stim} has no phase rule")
    except (ModelError, DataError, RulesError, ChannelMapError) as exc:
        raise UsageError(str(exc)) from None
    training_file = _training_file(contract, rec.path)
    if training_file is not None:
        logger.warning(
            "in-sample: %s is one of this model's training recordings (%s); its scores are no "
            "estimate for new recordings (the model card's out-of-fold scores are)",
            rec.path.name,
            training_file,
        )
    t0 = time.perf_counter()
    decoded = decode_recording(model, rec, stim=protocol)
    wall = time.perf_counter() - t0
    config = contract.features
    y, _ = window_labels(
        decoded.end_s,
        config.window_s,
        segments,
        contract.classes,
        merge_touching=not args.windows_within_segments,
    )
    episodes = (
        event_episodes(segments, contract.hysteresis.event_class)
        if contract.task == "event"
        else []
    )
    metrics = decision_metrics(
        [(decoded.end_s, decoded.proba, y, episodes, rec.duration_s)],
        contract.classes,
        contract.hysteresis,
        hop_s=config.hop_s,
        window_s=config.window_s,
    )
    metrics["in_sample"] = training_file is not None
    metrics["decisions"] = int(decoded.end_s.size)
    metrics["labelled_windows"] = int(np.count_nonzero(y >= 0))
    per_label = windows_per_label(
        decoded.end_s, config.window_s, segments, merge_touching=not args.windows_within_segments
    )
    left_out = {label: n for label, n in per_label.items() if label not in contract.classes}
    metrics["windows_left_out_by_label"] = left_out
    if left_out:
        logger.warning(
            "labels that are no class of the model (%s) left out of the scores: %s; --map "
            "OLD=NEW renames them",
            ", ".join(contract.classes),
            windows_text(left_out),
        )
    # channel checks (rtdecode.features.quality): windows with a bad channel, and bad_signal decisions
    metrics["windows_with_bad_channels"] = int(np.count_nonzero(decoded.quality < 1.0))
    metrics["bad_signal_decisions"] = sum(s == BAD_SIGNAL for s in decoded.states)
    metrics["bad_model_outputs"] = decoded.bad_model_outputs
    metrics["speed_x_real_time"] = rec.duration_s / wall if wall > 0 else None
    if protocol is not None:
        metrics["stimulation"] = stim_report(decoded.triggers, protocol, segments, rec.duration_s)
        metrics["stimulation_blanked_windows"] = decoded.blanked
        if protocol.phase_rules:
            metrics["stimulation_phase"] = phase_report(
                decoded.triggers,
                protocol,
                rec,
                segments,
                rose_plot=None if args.rose_plot is None else str(args.rose_plot),
            )
    if args.decisions is not None:
        if args.decisions.exists() and not args.decisions.is_file():  # /dev/stdout, a pipe
            _write_decisions(args.decisions, decoded, contract.classes)
        else:
            # staged and moved into place: an interrupted evaluate leaves no half-written file
            staged = {args.decisions: staging_path(args.decisions)}
            try:
                _write_decisions(staged[args.decisions], decoded, contract.classes)
                commit_files(staged)
            finally:
                discard_staged(staged)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    w, a = metrics["windows"], metrics["after_hysteresis"]
    print(
        f"{rec.path.name}: {metrics['decisions']} decisions, {metrics['labelled_windows']} "
        f"labelled windows, decoded at {metrics['speed_x_real_time']:.0f}x real time; "
        f"{metrics['windows_with_bad_channels']} windows with bad channels, "
        f"{metrics['bad_signal_decisions']} bad_signal"
    )
    if metrics["in_sample"]:
        print(
            f"IN-SAMPLE: {rec.path.name} is a training recording of this model; these scores "
            "are no estimate for new recordings"
        )
    if metrics["windows_left_out_by_label"]:
        print(f"left out, labels that are no class: {windows_text(left_out)}")
    if decoded.bad_model_outputs:
        print(f"{decoded.bad_model_outputs} windows not decided: the model gave no probabilities")
    print(f"windows:          accuracy {w['accuracy']:.3f}  kappa {w['kappa']:.3f}")
    print(f"after hysteresis: accuracy {a['accuracy']:.3f}  kappa {a['kappa']:.3f}")
    for c, m in w["per_class"].items():
        print(
            f"  {c:<10} precision {_num(m['precision'])} recall {_num(m['recall'])} "
            f"F1 {_num(m['f1'])} (n={m['support']})"
        )
    if "events" in metrics:
        print(f"events: {_events_text(metrics['events'])}")
    if protocol is not None:
        _print_stim_report(metrics["stimulation"], metrics["stimulation_blanked_windows"])
        if "stimulation_phase" in metrics:
            _print_phase_report(metrics["stimulation_phase"], args.rose_plot)
    return 0


def _training_file(contract, path: Path) -> str | None:
    """The training recording (as the model lists it) that ``path`` is, by content, else None.

    Models without fingerprints are matched by path only.
    """
    data = (contract.training or {}).get("data")
    if not isinstance(data, list):
        return None
    fingerprint = file_fingerprint(path)
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        stored = entry.get("fingerprint")
        if stored is not None:
            if stored == fingerprint:
                return entry["file"]
        elif Path(entry["file"]).resolve() == Path(path).resolve():
            return entry["file"]
    return None


def _check_labels_name_classes(segments, classes) -> None:
    """Refuse labels none of which is a class of the model: there would be nothing to score."""
    from rtdecode.cli.common import UsageError

    found = sorted({s.label for s in segments})
    if found and not set(found) & set(classes):
        raise UsageError(
            f"no label is a class of the model: labels {', '.join(found)}; classes "
            f"{', '.join(classes)}; rename them with --map OLD=NEW as in training"
        )


def _write_decisions(path: Path, decoded, classes) -> None:
    """Every decision of ``decoded`` as a JSON line (end_s, probs, state, quality)."""
    with open(path, "w") as f:
        for end_s, p, state, q in zip(
            decoded.end_s, decoded.proba, decoded.states, decoded.quality
        ):
            f.write(
                json.dumps(
                    {
                        "end_s": round(float(end_s), 6),
                        "probs": dict(zip(classes, map(float, p))),
                        "state": state,
                        "quality": round(float(q), 4),
                    }
                )
                + "\n"
            )


def _print_stim_report(report: dict, blanked: int) -> None:
    print(f"stimulation dry run ({blanked} windows held back by artefacts):")
    for name, r in report.items():
        line = f"  {name} ({r['when']}): {r['triggers']} triggers, {r['per_hour']:.1f}/h"
        if r.get("inside_target_share") is not None:
            line += (
                f"; {100 * r['inside_target_share']:.1f}% inside the target state, "
                f"{r['outside_per_hour']:.1f}/h outside"
            )
        if "episodes" in r:
            line += f"; episodes triggered {r['episodes_triggered']}/{r['episodes']}"
            if r["onset_delay_median_s"] is not None:
                line += (
                    f", onset to trigger median {r['onset_delay_median_s']:.2f} s "
                    f"p90 {r['onset_delay_p90_s']:.2f} s"
                )
        if r["suppressed"]:
            line += "; suppressed " + ", ".join(f"{k} {v}" for k, v in r["suppressed"].items())
        print(line)


def cmd_replay(args: argparse.Namespace) -> int:
    from rtdecode.cli.common import UsageError
    from rtdecode.decoding.model import ModelError, OnnxModel
    from rtdecode.offline.labels import map_labels
    from rtdecode.offline.recordings import DataError, open_recording
    from rtdecode.offline.replay import replay_recording

    try:
        contract = OnnxModel(args.model).contract if args.model is not None else None
        rec = open_recording(
            args.file, channels=args.channels, stream=args.stream, file_format=args.format
        )
        segments = None
        if args.labels is not None:
            segments = _read_labels(args, args.file, args.labels, rec)
            label_map = _label_map(args, [s.label for s in segments], contract)
            segments = map_labels(segments, label_map)
        elif args.model is not None:
            raise UsageError("--model renames the labels of --labels; give --labels too")
    except (DataError, ModelError) as exc:
        raise UsageError(str(exc)) from None
    name = args.name or rec.path.stem
    chunk = args.chunk or max(1, round(rec.fs_hz / 1000))
    print(
        f"replaying {rec.path.name}: {rec.n_channels} ch @ {rec.fs_hz:g} Hz, "
        f"{rec.duration_s:.1f} s at {args.speed:g}x as {name!r}"
        + (f" (labels on {name + '-truth'!r})" if segments else ""),
        flush=True,
    )
    try:
        replay_recording(
            rec,
            name,
            speed=args.speed,
            chunk_samples=chunk,
            segments=segments,
            wait_for_consumers_s=args.wait_for_consumer,
            loop=args.loop,
        )
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rtdecode.cli.common import UsageError
    from rtdecode.offline.decision_log import read_decision_log
    from rtdecode.offline.recordings import DataError

    out = args.nwb
    if not out.parent.resolve().is_dir():
        raise UsageError(f"--nwb {out}: directory {out.parent} does not exist")
    for source in [*args.log, *([args.recording] if args.recording else [])]:
        # writing over an input would destroy it (the recording above all)
        if out.exists() and source.exists() and out.resolve() == source.resolve():
            raise UsageError(f"--nwb {out} is also an input; write another file")
    try:
        from rtdecode.offline.nwb_export import write_decisions_nwb

        timeline = read_decision_log(args.log, align=args.align)
        summary = write_decisions_nwb(
            timeline,
            out,
            recording=args.recording,
            series=args.series,
            offset_s=args.offset_s,
            logs=args.log,
        )
    except DataError as exc:
        raise UsageError(str(exc)) from None
    except ImportError as exc:  # pynwb is in the files extra
        raise UsageError(f"export needs pynwb ({exc}); pip install 'rtdecode[files]'") from None
    print(
        f"wrote {out}: {summary.states} state intervals from {summary.decisions} decisions"
        + (f" ({summary.stale} stale)" if summary.stale else "")
        + f", {summary.triggers} triggers ({summary.sent} sent), {summary.health} "
        f"no_signal/stall intervals; times by {summary.alignment}: {summary.placed}"
    )
    return 0


OFFLINE_COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "replay": cmd_replay,
    "export": cmd_export,
}
__all__ = [
    "add_offline_commands",
    "OFFLINE_COMMANDS",
    "cmd_train",
    "cmd_evaluate",
    "cmd_replay",
    "cmd_export",
]


def _print_phase_report(report: dict, rose_plot: Path | None) -> None:
    print("phase (reference: zero-phase band-pass + Hilbert of the whole recording):")
    for name, r in report.items():
        band = "-".join(f"{b:g}" for b in r["band_hz"])
        line = f"  {name} ({band} Hz, target {r['target_deg']:g} deg): {r['pulses']} pulses"
        if r["pulses"]:
            line += (
                f", mean error {r['mean_error_deg']:+.1f} deg, vector length "
                f"{r['vector_length']:.2f}, {100 * r['within_45']:.1f}% within +-45 deg"
            )
        if r.get("landed_outside_label"):
            line += f"; {r['landed_outside_label']} landed outside a labelled {r['state']} episode"
            inside = r["inside_label"]
            if inside["pulses"]:
                line += (
                    f" (the {inside['pulses']} inside: mean error "
                    f"{inside['mean_error_deg']:+.1f} deg, {100 * inside['within_45']:.1f}% "
                    "within +-45 deg)"
                )
        print(line)
    if rose_plot is not None:
        print(f"rose plot: {rose_plot}")
