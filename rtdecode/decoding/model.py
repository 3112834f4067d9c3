"""Runtime side of a trained model: the ONNX file, the contract it carries, and inference.

An rtdecode model is an ONNX file whose metadata entry ``"rtdecode_contract"`` holds a JSON
description of what the model expects (channels, sampling rate, feature configuration, feature
order, classes) and how its output is smoothed (hysteresis). The live decoder rebuilds its feature
extractor from that contract, so the features it computes provably match the ones the model was
trained on.

This module is imported by live decoding, which installs only ``numpy`` and ``onnxruntime``: it
must not import ``onnx``, ``xgboost`` or any other training dependency.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from rtdecode.common.channels import default_channel_labels
from rtdecode.common.checks import check_classes
from rtdecode.common.jsonable import json_default
from rtdecode.config import (
    DEFAULT_BANDS,
    Band,
    EventHysteresis,
    FeatureConfig,
    StateHysteresis,
    hysteresis_from_dict,
)
from rtdecode.features.streaming import feature_memory_bytes

__all__ = [
    "CONTRACT_KEY",
    "FORMAT_VERSION",
    "MAX_FEATURE_BYTES",
    "MAX_FS_HZ",
    "TASKS",
    "ModelError",
    "ModelContract",
    "OnnxModel",
    "describe",
    "describe_hysteresis",
]

logger = logging.getLogger("rtdecode")

#: ONNX ``metadata_props`` key under which the contract JSON is stored.
CONTRACT_KEY = "rtdecode_contract"
#: Contract layout version written by this rtdecode; readers refuse any other.
FORMAT_VERSION = 1
#: Allowed values of ``ModelContract.task``.
TASKS = ("event", "state")
#: Highest stream rate a model may expect, Hz: above every electrophysiology amplifier's, and
#: low enough that a rate off by orders of magnitude is refused, not allocated.
MAX_FS_HZ = 1e6
#: Most memory a model's feature stage may need (``feature_memory_bytes``), bytes.
MAX_FEATURE_BYTES = 4 * 2**30

_CONTRACT_KEYS = (
    "format_version",
    "task",
    "classes",
    "n_channels",
    "channel_labels",
    "feature_config",
    "feature_names",
    "hysteresis",
    "training",
)


class ModelError(Exception):
    """A model file that cannot be used.

    The message says what is wrong, which file (path) and what to do about it; it is meant to be
    shown to the user as is.
    """


def _fmt_num(x: float) -> str:
    """Short, exact-enough rendering of a number for messages (``32000``, ``0.1``, ``30000.5``)."""
    return f"{float(x):.10g}"


@dataclass(frozen=True)
class ModelContract:
    """What a model expects as input and how its output is used.

    Parameters
    ----------
    task : {"event", "state"}
        ``"event"``: one event class (e.g. seizure) against the rest, smoothed with
        :class:`~rtdecode.config.EventHysteresis`. ``"state"``: mutually exclusive states (e.g.
        wake / NREM / REM), smoothed with :class:`~rtdecode.config.StateHysteresis`.
    classes : tuple of str
        Class names in the order of the model's probability columns (at least two, unique).
    n_channels : int
        Number of channels of the stream the model was trained on.
    channel_labels : tuple of str or None
        Labels of those channels, or None when the stream had none (features are then named with
        :func:`default_channel_labels`).
    features : FeatureConfig
        How features are computed; its ``fs_hz`` is the stream's sampling rate.
    feature_names : tuple of str
        Model input columns, ``features.feature_names(channel_labels)``: channel-major,
        ``n_channels * features.features_per_channel`` of them.
    hysteresis : EventHysteresis or StateHysteresis
        Default smoothing of the decisions; its kind must match ``task``.
    training : dict
        Free-form, JSON-serialisable description of how the model was made (data, seed, date,
        versions, cross-validation scores, booster parameters). Not compared by ``==``.

    Raises
    ------
    TypeError, ValueError
        If a field has the wrong type or the fields are inconsistent with each other, the rate is
        above :data:`MAX_FS_HZ` or the features would need more than :data:`MAX_FEATURE_BYTES`.
    """

    task: str
    classes: tuple[str, ...]
    n_channels: int
    channel_labels: tuple[str, ...] | None
    features: FeatureConfig
    feature_names: tuple[str, ...]
    hysteresis: EventHysteresis | StateHysteresis
    training: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

        object.__setattr__(self, "classes", check_classes(_str_tuple("classes", self.classes)))

        n = self.n_channels
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n_channels must be an int, got {type(n).__name__}")
        if n < 1:
            raise ValueError(f"n_channels must be >= 1, got {n}")
        object.__setattr__(self, "n_channels", int(n))

        if self.channel_labels is not None:
            labels = _str_tuple("channel_labels", self.channel_labels)
            if len(labels) != n or len(set(labels)) != len(labels):
                raise ValueError(
                    f"channel_labels must be {n} unique names (one per channel), got "
                    f"{len(labels)} with {len(labels) - len(set(labels))} duplicate(s)"
                )
            object.__setattr__(self, "channel_labels", labels)

        if not isinstance(self.features, FeatureConfig):
            raise TypeError(f"features must be a FeatureConfig, got {type(self.features).__name__}")
        _check_feature_limits(self.features, n)

        names = _str_tuple("feature_names", self.feature_names)
        per_channel = self.features.features_per_channel
        if len(names) != n * per_channel:
            raise ValueError(
                f"feature_names has {len(names)} entries but {n} channels x {per_channel} "
                f"features per channel = {n * per_channel} are expected"
            )
        expected = tuple(self.features.feature_names(self.labels))
        if names != expected:
            i = next(k for k, (a, b) in enumerate(zip(names, expected)) if a != b)
            raise ValueError(
                f"feature_names do not match the feature config: entry {i} is {names[i]!r}, "
                f"expected {expected[i]!r}"
            )
        object.__setattr__(self, "feature_names", names)

        h = self.hysteresis
        if self.task == "event":
            if not isinstance(h, EventHysteresis):
                raise TypeError(f"task 'event' needs an EventHysteresis, got {type(h).__name__}")
            if h.event_class not in self.classes:
                raise ValueError(
                    f"hysteresis event_class {h.event_class!r} is not one of the classes "
                    f"{list(self.classes)}"
                )
        elif not isinstance(h, StateHysteresis):
            raise TypeError(f"task 'state' needs a StateHysteresis, got {type(h).__name__}")

        if not isinstance(self.training, dict):
            raise TypeError(f"training must be a dict, got {type(self.training).__name__}")

    # Derived --------------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """Channel labels, or :func:`default_channel_labels` when the stream had none."""
        return self.channel_labels or default_channel_labels(self.n_channels)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    # Serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON-types form (the layout stored in the ONNX metadata)."""
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "classes": list(self.classes),
            "n_channels": self.n_channels,
            "channel_labels": None if self.channel_labels is None else list(self.channel_labels),
            "feature_config": self.features.to_dict(),
            "feature_names": list(self.feature_names),
            "hysteresis": self.hysteresis.to_dict(),
            "training": dict(self.training),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelContract:
        """Rebuild and validate a contract from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``d`` is not a contract of format version 1, has missing or unknown keys, or any
            field is invalid (the message names the field).
        """
        if not isinstance(d, dict):
            raise ValueError(f"contract must be a JSON object, got {type(d).__name__}")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"contract format_version is {version!r}; this rtdecode reads version "
                f"{FORMAT_VERSION} only (a newer rtdecode may have written it)"
            )
        missing = [k for k in _CONTRACT_KEYS if k not in d]
        unknown = sorted(set(d) - set(_CONTRACT_KEYS))
        if missing or unknown:
            raise ValueError(
                f"contract keys: missing {missing}, unknown {unknown}; "
                f"expected {list(_CONTRACT_KEYS)}"
            )
        try:
            features = _features_from_dict(d["feature_config"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"contract 'feature_config' is invalid: {exc}") from exc
        try:
            hysteresis = hysteresis_from_dict(d["hysteresis"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"contract 'hysteresis' is invalid: {exc}") from exc
        try:
            return cls(
                task=d["task"],
                classes=d["classes"],
                n_channels=d["n_channels"],
                channel_labels=d["channel_labels"],
                features=features,
                feature_names=d["feature_names"],
                hysteresis=hysteresis,
                training=d["training"],
            )
        except TypeError as exc:
            # A wrongly typed field in a file is a bad value of that file, not a programming error.
            raise ValueError(str(exc)) from exc

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict` (numpy scalars/arrays in ``training`` are converted)."""
        return json.dumps(self.to_dict(), default=json_default, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        """Inverse of :meth:`to_json`; ``json.JSONDecodeError`` (a ``ValueError``) on bad JSON."""
        return cls.from_dict(json.loads(text))


def _features_from_dict(d: Any) -> FeatureConfig:
    """A contract's feature config: as ``FeatureConfig.from_dict``, and as exported.

    An exported config holds the decimation it was trained with and only bands below the
    analysis Nyquist frequency; what ``FeatureConfig`` would choose or clip is refused here.
    """
    if isinstance(d, dict):
        decimation = d.get("decimation", 0)
        # 0 asks FeatureConfig to choose a factor: a model must say the one it was trained
        # with, not leave it to a search this version may make differently
        if not isinstance(decimation, bool) and decimation == 0:
            raise ValueError(
                "decimation must be the factor the model was trained with (>= 1), got "
                f"{decimation!r}"
            )
    features = FeatureConfig.from_dict(d)
    kept = {b.name: b for b in features.bands}
    nyquist = features.analysis_fs_hz / 2
    for band in d.get("bands", DEFAULT_BANDS):
        band = band if isinstance(band, Band) else Band(**band)
        if kept.get(band.name) != band:
            raise ValueError(
                f"band {band.name!r} ({_fmt_num(band.lo_hz)}-{_fmt_num(band.hi_hz)} Hz) reaches "
                f"above the analysis Nyquist frequency, {_fmt_num(nyquist)} Hz "
                f"({_fmt_num(features.fs_hz)} Hz decimated by {features.decimation}); a "
                "model's bands lie below it"
            )
    return features


def _check_feature_limits(features: FeatureConfig, n_channels: int) -> None:
    """Refuse a rate above ``MAX_FS_HZ`` and features that need more than ``MAX_FEATURE_BYTES``."""
    if features.fs_hz > MAX_FS_HZ:
        raise ValueError(
            f"feature_config fs_hz is {_fmt_num(features.fs_hz)} Hz; rtdecode decodes streams "
            f"up to {_fmt_num(MAX_FS_HZ)} Hz"
        )
    need = feature_memory_bytes(features, n_channels)
    if need > MAX_FEATURE_BYTES:
        raise ValueError(
            f"feature_config would need {need / 2**30:.3g} GiB of memory for {n_channels} "
            f"channels (a {_fmt_num(features.window_s)} s window at "
            f"{_fmt_num(features.analysis_fs_hz)} Hz, decimation {features.decimation} with "
            f"{features.fir_taps_per_phase} filter taps per phase); at most "
            f"{MAX_FEATURE_BYTES / 2**30:g} GiB is allowed"
        )


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple or list of str, got {type(value).__name__}")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must contain only str, got {bad[0]!r} ({type(bad[0]).__name__})")
    return tuple(value)


class OnnxModel:
    """A validated rtdecode ONNX model ready for inference.

    Parameters
    ----------
    path : str or Path
        ONNX file written by :func:`rtdecode.training.boosting.export_onnx` (``rtdecode train``).
    intra_op_threads : int
        Threads onnxruntime may use inside one ``run``. The default 1 is the fastest for the
        single-row calls of live decoding and leaves the other cores to acquisition and the GUI.

    Attributes
    ----------
    path : Path
        The file, as given.
    contract : ModelContract
        What the model expects and how its output is smoothed.

    Raises
    ------
    ModelError
        If the file is missing, is not a loadable ONNX model, carries no or an invalid contract,
        or its input/output widths disagree with the contract. The message names the path.

    Notes
    -----
    ``predict_proba`` may be called from any thread (onnxruntime sessions are thread-safe); live
    decoding calls it from the decode thread only.
    """

    def __init__(self, path: str | Path, *, intra_op_threads: int = 1) -> None:
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
        if isinstance(intra_op_threads, bool) or not isinstance(intra_op_threads, int):
            raise TypeError(
                f"intra_op_threads must be an int, got {type(intra_op_threads).__name__}"
            )
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        self.path = Path(path)
        p = self.path
        if not p.exists():
            raise ModelError(
                f"model file {p} does not exist. Check the path, or train a model with "
                "`rtdecode train`."
            )
        if not p.is_file():
            raise ModelError(f"model path {p} is not a file; give the path of an .onnx file.")

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Errors reach us as exceptions; onnxruntime's own console log would only duplicate them.
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            # onnxruntime raises pybind-generated classes (InvalidProtobuf, Fail, InvalidGraph,
            # ...) that are not part of its public API, so catch broadly and rewrap.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"cannot load model {p}: not a valid ONNX model (onnxruntime: {reason}). "
                "The file may be truncated or corrupt, or not an ONNX file; copy it again or "
                "re-export it with `rtdecode train`."
            ) from exc

        meta = session.get_modelmeta().custom_metadata_map
        raw = meta.get(CONTRACT_KEY)
        if raw is None:
            raise ModelError(
                f"model {p} was not exported by rtdecode: its ONNX metadata has no "
                f"'{CONTRACT_KEY}' entry, so the channels, feature configuration and classes it "
                "expects are unknown. Retrain with `rtdecode train`, or export the booster with "
                "rtdecode.training.boosting.export_onnx."
            )
        try:
            contract_dict = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ModelError(
                f"model {p} has a corrupt rtdecode contract (metadata '{CONTRACT_KEY}' is not "
                f"valid JSON: {exc}). Re-export the model with `rtdecode train`."
            ) from exc
        try:
            contract = ModelContract.from_dict(contract_dict)
        except (TypeError, ValueError) as exc:
            raise ModelError(
                f"model {p} has an invalid rtdecode contract: {exc}. Re-export the model with "
                "`rtdecode train` (using this rtdecode version)."
            ) from exc

        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(
                f"model {p} has {len(inputs)} inputs ({[i.name for i in inputs]}); an rtdecode "
                "model has exactly one (the feature matrix). Re-export it with `rtdecode train`."
            )
        inp = inputs[0]
        width = inp.shape[-1] if len(inp.shape) == 2 else None
        if inp.type != "tensor(float)" or width != contract.n_features:
            raise ModelError(
                f"model {p} takes input {inp.name!r} of type {inp.type} and shape {inp.shape}, "
                f"but its contract lists {contract.n_features} features; expected "
                f"tensor(float) of shape [N, {contract.n_features}]. The file was altered or "
                "exported incorrectly; re-export it with `rtdecode train`."
            )

        prob = _probability_output(session.get_outputs())
        if prob is None or prob.shape[-1] != contract.n_classes:
            found = [(o.name, o.type, o.shape) for o in session.get_outputs()]
            raise ModelError(
                f"model {p} has no float probability output with {contract.n_classes} columns "
                f"(one per class {list(contract.classes)}); outputs are {found}. Re-export it "
                "with `rtdecode train`."
            )

        self.contract = contract
        self._session = session
        self._input_name = inp.name
        # Asking for the probabilities only spares onnxruntime copying the label output out
        # (about 15 % of a single-row call, measured 14.5 vs 17.0 us for 200 trees x 3 classes).
        self._output_names = [prob.name]
        self._n_features = contract.n_features
        logger.debug(
            "loaded model %s: task %s, classes %s, %d features",
            p,
            contract.task,
            list(contract.classes),
            contract.n_features,
        )

    def __repr__(self) -> str:
        c = self.contract
        return (
            f"OnnxModel({str(self.path)!r}, task={c.task!r}, classes={list(c.classes)}, "
            f"n_channels={c.n_channels}, fs_hz={_fmt_num(c.features.fs_hz)})"
        )

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities for one or more feature rows.

        Parameters
        ----------
        features : ndarray, shape (n_features,) or (n_rows, n_features), float32
            Feature rows in ``contract.feature_names`` order. Other dtypes or non-contiguous
            arrays are converted, which costs a copy per call.

        Returns
        -------
        ndarray, shape (n_rows, n_classes), float32
            Probabilities in ``contract.classes`` order; each row sums to 1.

        Notes
        -----
        Called once per hop by the decode thread; a single row takes on the order of 10 us, almost
        all of it inside onnxruntime.
        """
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self._n_features:
            raise ValueError(
                f"features must have shape (n_features,) or (n_rows, n_features) with "
                f"n_features={self._n_features}, got shape {np.shape(features)}"
            )
        return self._session.run(self._output_names, {self._input_name: x})[0]

    def check_stream(self, *, n_channels: int, fs_hz: float, stream_name: str) -> None:
        """Refuse a stream whose channel count differs or whose rate the model cannot use.

        A stream at another rate is accepted when the model's features can be computed from it
        (see :meth:`stream_features`).

        Parameters
        ----------
        n_channels : int
            Channel count of the stream.
        fs_hz : float
            Nominal sampling rate of the stream, Hz.
        stream_name : str
            Name of the stream, for the message.

        Raises
        ------
        ModelError
            If the stream does not match; the message says both configurations and what to do.
        """
        c = self.contract
        reason = None
        try:
            # an absurd rate (1e15 Hz, a multiple of the model's) is refused before anything
            # is allocated for it
            _check_feature_limits(c.features.at_rate(fs_hz), n_channels)
        except ValueError as exc:
            reason = str(exc)
        if n_channels == c.n_channels and reason is None:
            return
        raise ModelError(
            f"model {self.path} expects {c.n_channels} channels at {_fmt_num(c.features.fs_hz)} Hz; "
            f"stream {stream_name!r} has {n_channels} channels at {_fmt_num(fs_hz)} Hz"
            + (f" ({reason})" if reason else "")
            + ". Use a model trained for this rig (rtdecode train ...) or select the matching "
            "stream"
            + (
                "; if the stream carries the model's channels among others, pick them with "
                "--channel-map"
                if n_channels > c.n_channels and reason is None
                else ""
            )
            + "."
        )

    def stream_features(self, fs_hz: float) -> FeatureConfig:
        """The model's feature config for a stream at ``fs_hz`` (decimation adapted to the rate).

        Raises
        ------
        ModelError
            If the model's features cannot be computed at that rate.
        """
        try:
            return self.contract.features.at_rate(fs_hz)
        except ValueError as exc:
            raise ModelError(
                f"model {self.path} cannot decode a {_fmt_num(fs_hz)} Hz stream: {exc}"
            ) from None


def _probability_output(outputs: list[Any]) -> Any:
    """Pick the class-probability output: named "probabilities", else the only 2-D float one."""
    floats = [o for o in outputs if o.type == "tensor(float)" and len(o.shape) == 2]
    named = [o for o in floats if o.name == "probabilities"]
    if named:
        return named[0]
    return floats[0] if len(floats) == 1 else None


def _short_list(items: tuple[str, ...] | list[str], head: int = 3) -> str:
    if len(items) <= 2 * head:
        return ", ".join(items)
    return ", ".join(list(items[:head]) + ["..."] + list(items[-1:]))


def _readable(value: Any, limit: int = 160) -> str:
    """A training record's value as text: numbers rounded, mappings as ``key value, ...``,
    lists joined by ``; `` (not JSON or Python reprs)."""
    if isinstance(value, (dict, list, tuple)) and not value:
        text = "none"
    elif isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, dict):
        text = ", ".join(
            f"{k} ({_readable(v, limit)})" if isinstance(v, dict) else f"{k} {_readable(v, limit)}"
            for k, v in value.items()
        )
    elif isinstance(value, (list, tuple)):
        text = "; ".join(_readable(v, limit) for v in value)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scores(metrics: dict[str, Any]) -> str:
    """``accuracy 0.950, kappa 0.900, ...`` of the scores present in ``metrics``."""
    names = {"balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1"}
    keys = ("accuracy", "balanced_accuracy", "kappa", "macro_f1")
    return ", ".join(
        f"{names.get(k, k)} {metrics[k]:.3f}"
        for k in keys
        if isinstance(metrics.get(k), (int, float))
    )


def _describe_training(training: dict[str, Any]) -> list[str]:
    """The ``training:`` lines of :func:`describe`: how it was validated first, in words."""
    lines = []
    done = {"cv", "validation", "cv_after_hysteresis", "data", "label_map"}
    cv = training.get("cv") if isinstance(training.get("cv"), dict) else {}
    scheme = training.get("validation")
    if not isinstance(scheme, str):  # a contract that does not say: only what the cv holds
        folds, gap = cv.get("n_folds"), cv.get("gap_rows")
        scheme = f"{folds} folds" + (f", gap {gap} rows" if gap else "") if folds else None
    if scheme:
        lines.append(f"  validation: {scheme}")
    metrics = cv.get("metrics", cv)
    if isinstance(metrics, dict) and _scores(metrics):
        lines.append(f"  out-of-fold windows: {_scores(metrics)}")
        per_class = metrics.get("per_class")
        for name, m in (per_class if isinstance(per_class, dict) else {}).items():
            if isinstance(m, dict):
                parts = [
                    f"{k} {m[k]:.3f}"
                    for k in ("precision", "recall", "f1")
                    if isinstance(m.get(k), (int, float))
                ]
                if "support" in m:
                    parts.append(f"n={m['support']}")
                lines.append(f"    {name}: " + ", ".join(parts))
    after = training.get("cv_after_hysteresis")
    if isinstance(after, dict):
        smoothed = after.get("after_hysteresis")
        text = _scores(smoothed) if isinstance(smoothed, dict) else ""
        events = after.get("events")
        if isinstance(events, dict) and "events" in events:
            text += f"; events detected {events.get('events_detected')}/{events['events']}"
            if isinstance(events.get("detection_delay_median_s"), (int, float)):
                text += f", delay median {events['detection_delay_median_s']:.2f} s"
            if isinstance(events.get("false_alarms_per_hour"), (int, float)):
                text += f", false alarms {events['false_alarms_per_hour']:.2f}/h"
        if text:
            lines.append(f"  out of fold after hysteresis: {text}")
    data = training.get("data")
    if isinstance(data, list):
        for entry in data:
            if isinstance(entry, dict) and "file" in entry:
                parts = [
                    f"{_readable(entry[k])}{unit}"
                    for k, unit in (("duration_s", " s"), ("fs_hz", " Hz"), ("windows", " windows"))
                    if k in entry
                ]
                if "labelled_windows" in entry:
                    parts.append(f"{_readable(entry['labelled_windows'])} labelled")
                lines.append(f"  data: {entry['file']} ({', '.join(parts)})")
    elif data is not None:
        lines.append(f"  data: {_readable(data)}")
    label_map = training.get("label_map")
    if isinstance(label_map, dict) and label_map:
        lines.append("  labels renamed: " + ", ".join(f"{k} -> {v}" for k, v in label_map.items()))
    for key, value in training.items():
        if key not in done:
            lines.append(f"  {str(key).replace('_', ' ')}: {_readable(value)}")
    return lines


def describe_hysteresis(hysteresis: EventHysteresis | StateHysteresis) -> str:
    """The smoothing rule in words, e.g. "event 'seizure': on when p >= 0.5 for 0 s, ..."."""
    h = hysteresis
    if isinstance(h, EventHysteresis):
        return (
            f"event {h.event_class!r}: on when p >= {_fmt_num(h.on_threshold)} for "
            f"{_fmt_num(h.on_dwell_s)} s, off when p <= {_fmt_num(h.off_threshold)} for "
            f"{_fmt_num(h.off_dwell_s)} s"
        )
    if isinstance(h, StateHysteresis):
        return (
            f"state, margin {_fmt_num(h.margin)}, dwell {_fmt_num(h.dwell_s)} s "
            "(switch when p(new) - p(current) >= margin for the dwell time)"
        )
    raise TypeError(
        f"hysteresis must be an EventHysteresis or StateHysteresis, got {type(h).__name__}"
    )


def describe(contract: ModelContract, path: str | Path | None = None) -> str:
    """Human-readable multi-line summary of a model contract (``rtdecode info MODEL``).

    Parameters
    ----------
    contract : ModelContract
        The contract to describe.
    path : str or Path, optional
        The model file, shown in the first line.

    Returns
    -------
    str
        Several lines, no trailing newline.
    """
    if not isinstance(contract, ModelContract):
        raise TypeError(f"contract must be a ModelContract, got {type(contract).__name__}")
    c = contract
    f = c.features
    lines = []
    if path is not None:
        lines.append(f"model: {path}")
    lines.append(f"task: {c.task} ({c.n_classes} classes: {', '.join(c.classes)})")
    labels = "unlabelled, named " if c.channel_labels is None else ""
    lines.append(
        f"channels: {c.n_channels} at {_fmt_num(f.fs_hz)} Hz ({labels}{_short_list(c.labels)})"
    )
    lines.append(
        f"window: {_fmt_num(f.window_s)} s ({f.window_samples} samples), hop "
        f"{_fmt_num(f.hop_s)} s ({f.hop_samples} samples, {_fmt_num(f.fs_hz / f.hop_samples)} "
        "decisions/s)"
    )
    if f.decimation > 1:
        lines.append(
            f"analysis: decimation x{f.decimation} -> {_fmt_num(f.analysis_fs_hz)} Hz "
            f"(FIR {f.decimation * f.fir_taps_per_phase} taps), "
            f"{f.window_samples_analysis}-sample FFT window"
        )
    else:
        lines.append(
            f"analysis: no decimation, {_fmt_num(f.analysis_fs_hz)} Hz, "
            f"{f.window_samples_analysis}-sample FFT window"
        )
    bands = (f"{b.name} {_fmt_num(b.lo_hz)}-{_fmt_num(b.hi_hz)} Hz" for b in f.bands)
    lines.append("bands: " + ", ".join(bands))
    lines.append(
        "normalisation: "
        + {
            "none": "none (absolute log10 band power)",
            "relative": "relative (log10 band power over the channel's total)",
            "baseline": f"baseline (minus the running mean, {_fmt_num(f.baseline_s)} s time constant)",
        }[f.normalisation]
    )
    lines.append(
        "ratios: "
        + (", ".join(f"{r.name} = {r.numerator}/{r.denominator}" for r in f.ratios) or "none")
    )
    names = c.feature_names
    lines.append(
        f"features: {c.n_features} ({f.features_per_channel} per channel): "
        f"{names[0]} ... {names[-1]}"
    )
    lines.append(f"hysteresis: {describe_hysteresis(c.hysteresis)}")
    if c.training:
        lines.append("training:")
        lines.extend(_describe_training(c.training))
    else:
        lines.append("training: (no information)")
    return "\n".join(lines)
