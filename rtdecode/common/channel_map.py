"""Channel identity: does a stream (or recording) carry a model's channels, in its order, and
which of its channels feeds which model channel (``--channel-map``).

A model's contract names its channels (the recordings' labels at training); a stream's header
names its own. When both carry labels they must be the same, in the same order, or a channel map
must say which stream channel feeds each model channel: a rig rewired, a headstage with auxiliary
channels, a recording system that numbers from 1. Labels that are rtdecode's own defaults
(``ch000``, ... from :func:`~rtdecode.common.channels.labels_or_default`, given to streams and
files that carry none) say nothing of identity: then only the count can be checked.

A map is ``MODEL=STREAM`` pairs, inline (``"CSC1=CH01,CSC2=CH02"``) or in a file:

- ``.csv`` / ``.tsv``: two columns, model label then stream label, one pair per line (a first
  line ``model,stream`` is a header; blank lines and ``#`` comments are skipped);
- ``.json``: an object ``{"CSC1": "CH01", ...}``;
- ``.toml``: ``CSC1 = "CH01"`` lines (quote labels TOML does not allow bare: ``"Fp1-A1" = ...``).

``by-label`` takes each model channel from the stream channel of the same label (a stream with
extra channels, or the same channels in another order).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtdecode.common.channels import default_channel_labels

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "BY_LABEL",
    "MAP_SUFFIXES",
    "ChannelMap",
    "ChannelMapError",
    "known_labels",
    "label_difference",
    "route_channels",
]

logger = logging.getLogger("rtdecode")

#: The map that takes each model channel from the stream channel of the same label.
BY_LABEL = "by-label"
#: File suffixes read as channel-map files.
MAP_SUFFIXES = (".csv", ".tsv", ".json", ".toml")
# Labels listed in a message, at most: enough to recognise the pattern, short enough to read.
_SHOWN = 5


class ChannelMapError(ValueError):
    """Channels that do not match, or a channel map that cannot be used; the message says what
    differs, where, and what to do."""


def known_labels(labels: Sequence[str] | None, n_channels: int) -> tuple[str, ...] | None:
    """``labels`` as a tuple, or None when they say nothing of the channels' identity.

    Parameters
    ----------
    labels : sequence of str or None
        A stream's or model's channel labels.
    n_channels : int
        Its channel count.

    Returns
    -------
    tuple of str or None
        None when ``labels`` is None, does not give one non-empty label per channel, or is
        :func:`~rtdecode.common.channels.default_channel_labels` (what a stream or file without
        labels is given, so a header that says ``ch000, ch001, ...`` is no identity either).
    """
    if labels is None:
        return None
    labels = tuple(str(x) for x in labels)
    if len(labels) != n_channels or not all(labels):
        return None
    if n_channels >= 1 and labels == default_channel_labels(n_channels):
        return None
    return labels


def _few(items: Sequence[str]) -> str:
    """The first few of ``items``, and how many more."""
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def label_difference(
    expected: Sequence[str], found: Sequence[str], *, expected_name: str, found_name: str
) -> str:
    """How ``found`` differs from ``expected``: missing, extra, duplicated and reordered labels.

    Parameters
    ----------
    expected, found : sequence of str
        Channel labels in channel order (e.g. the model's and the stream's).
    expected_name, found_name : str
        What each is, for the text (``"the model"``, ``"the stream"``).

    Returns
    -------
    str
        One line, e.g. ``"2 channels of the model missing from the stream (C7, C8); 1 channel
        of the stream not in the model (AUX1); the channels in common in another order: C2 is
        channel 1 of the model, 0 of the stream; ..."``; empty when they are the same.
    """
    expected, found = list(expected), list(found)
    if expected == found:
        return ""
    expected_set, found_set = set(expected), set(found)
    parts = []
    missing = [x for x in expected if x not in found_set]
    if missing:
        parts.append(
            f"{len(missing)} channel(s) of {expected_name} missing from {found_name} "
            f"({_few(missing)})"
        )
    extra = [x for x in found if x not in expected_set]
    if extra:
        parts.append(
            f"{len(extra)} channel(s) of {found_name} not in {expected_name} ({_few(extra)})"
        )
    duplicated = sorted({x for x in found if found.count(x) > 1})
    if duplicated:
        parts.append(f"label(s) used twice in {found_name} ({_few(duplicated)})")
    # the channels both have, compared in each one's order
    common_expected = [x for x in expected if x in found_set]
    common_found = list(dict.fromkeys(x for x in found if x in expected_set))
    moved = [a for a, b in zip(common_expected, common_found) if a != b]
    if moved:
        where = [
            f"{x} is channel {expected.index(x)} of {expected_name}, "
            f"{found.index(x)} of {found_name}"
            for x in moved[:_SHOWN]
        ]
        more = f" ... ({len(moved) - _SHOWN} more)" if len(moved) > _SHOWN else ""
        parts.append(
            f"{len(moved)} channel(s) in common in another order: " + "; ".join(where) + more
        )
    if not parts:  # same labels, counts differ only through duplicates (already said)
        parts.append(f"{len(expected)} vs {len(found)} channels")
    return "; ".join(parts)


@dataclass(frozen=True)
class ChannelMap:
    """Which stream channel feeds each model channel, by label.

    Parameters
    ----------
    pairs : tuple of (str, str)
        ``(model label, stream label)`` pairs; each label at most once on each side. Empty with
        ``by_label``.
    by_label : bool
        Take each model channel from the stream channel of the same label (``by-label``).
    origin : str
        Where the map came from, for messages (the file, or the inline text).

    Raises
    ------
    ChannelMapError
        If a label is empty or used twice on one side, or there is no pair (without
        ``by_label``).
    """

    pairs: tuple[tuple[str, str], ...]
    by_label: bool = False
    origin: str = "--channel-map"

    def __post_init__(self) -> None:
        pairs = tuple((str(m).strip(), str(s).strip()) for m, s in self.pairs)
        object.__setattr__(self, "pairs", pairs)
        if self.by_label:
            if pairs:
                raise ChannelMapError(f"{self.origin}: {BY_LABEL} takes no pairs")
            return
        if not pairs:
            raise ChannelMapError(f"{self.origin}: the channel map holds no MODEL=STREAM pair")
        empty = [f"{m}={s}" for m, s in pairs if not (m and s)]
        if empty:
            raise ChannelMapError(f"{self.origin}: {empty[0]!r} has an empty label")
        for side, labels in (("model", [m for m, _ in pairs]), ("stream", [s for _, s in pairs])):
            twice = sorted({x for x in labels if labels.count(x) > 1})
            if twice:
                raise ChannelMapError(
                    f"{self.origin}: {side} channel(s) {_few(twice)} mapped more than once; "
                    "each model channel takes exactly one stream channel, and each stream "
                    "channel feeds at most one model channel"
                )

    @classmethod
    def parse(cls, text: str) -> ChannelMap:
        """A map from ``--channel-map``'s value: ``by-label``, a file, or inline pairs.

        Parameters
        ----------
        text : str
            ``"by-label"``; a path ending in one of :data:`MAP_SUFFIXES` (or any existing
            file); else ``"MODEL=STREAM,MODEL=STREAM,..."``.

        Raises
        ------
        ChannelMapError
            A missing or malformed file, an inline pair that is not ``MODEL=STREAM``, a label
            used twice on one side.
        """
        text = text.strip()
        if text == BY_LABEL:
            return cls((), by_label=True, origin=BY_LABEL)
        path = Path(text)
        if path.suffix.lower() in MAP_SUFFIXES or ("=" not in text and path.is_file()):
            return cls.read(path)
        if "=" not in text:
            raise ChannelMapError(
                f"--channel-map {text!r} is neither a file (no such file) nor MODEL=STREAM pairs; "
                f"give e.g. CSC1=CH01,CSC2=CH02, a {'/'.join(MAP_SUFFIXES)} file, or {BY_LABEL}"
            )
        pairs = []
        for item in text.split(","):
            model, eq, stream = (part.strip() for part in item.partition("="))
            if not (eq and model and stream):
                raise ChannelMapError(
                    f"--channel-map: {item.strip()!r} is not MODEL=STREAM (the model's channel "
                    "label, '=', the label of the stream channel that feeds it)"
                )
            pairs.append((model, stream))
        return cls(tuple(pairs), origin="--channel-map")

    @classmethod
    def read(cls, path: str | Path) -> ChannelMap:
        """A map from a ``.csv``/``.tsv``, ``.json`` or ``.toml`` file (see the module's doc).

        Raises
        ------
        ChannelMapError
            The file is missing, unreadable or malformed (the message names the line or key).
        """
        path = Path(path)
        where = f"channel map {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ChannelMapError(f"{where} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ChannelMapError(f"{where} cannot be read: {exc}") from None
        suffix = path.suffix.lower()
        if suffix == ".json":
            pairs = _json_pairs(text, where)
        elif suffix == ".toml":
            pairs = _toml_pairs(text, where)
        else:
            pairs = _csv_pairs(text, where, tab=suffix == ".tsv")
        return cls(tuple(pairs), origin=where)

    def resolve(
        self, model_labels: Sequence[str], labels: Sequence[str], *, model: str, source: str
    ) -> tuple[int, ...]:
        """For each model channel, in the model's order, the index of the channel feeding it.

        Parameters
        ----------
        model_labels : sequence of str
            The model's channel labels (unique).
        labels : sequence of str
            The stream's (or recording's) channel labels, in its order.
        model, source : str
            What the model and the stream are, for messages (``"model M.onnx"``,
            ``"stream 'rig'"``).

        Returns
        -------
        tuple of int, length len(model_labels)
            Distinct indices into ``labels``.

        Raises
        ------
        ChannelMapError
            If a model label of the map is not the model's, a model channel is not mapped, or
            a stream label of the map is not one channel of the stream.
        """
        model_labels, labels = list(model_labels), list(labels)
        pairs = [(m, m) for m in model_labels] if self.by_label else list(self.pairs)
        mapped = dict(pairs)
        unknown = [m for m, _ in pairs if m not in set(model_labels)]
        if unknown:
            raise ChannelMapError(
                f"{self.origin}: {model} has no channel labelled {_few(unknown)}; its channels are "
                f"{_few(model_labels)} (a pair is MODEL=STREAM, the model's label first)"
            )
        unmapped = [m for m in model_labels if m not in mapped]
        if unmapped:
            raise ChannelMapError(
                f"{self.origin} gives no channel of {source} for {len(unmapped)} of the "
                f"{len(model_labels)} channels of {model} ({_few(unmapped)}); map every one"
            )
        position: dict[str, int] = {}
        twice = set()
        for i, label in enumerate(labels):
            if label in position:
                twice.add(label)
            position.setdefault(label, i)
        absent = [s for _, s in pairs if s not in position]
        if absent:
            how = " (by-label looks the model's labels up in it)" if self.by_label else ""
            raise ChannelMapError(
                f"{self.origin}: {source} has no channel labelled {_few(absent)}{how}; its "
                f"channels are {_few(labels)}"
            )
        ambiguous = [s for _, s in pairs if s in twice]
        if ambiguous:
            raise ChannelMapError(
                f"{self.origin}: {source} has several channels labelled {_few(ambiguous)}, so the "
                "map cannot tell which one feeds the model; relabel them at the source"
            )
        return tuple(position[mapped[m]] for m in model_labels)

    def __str__(self) -> str:
        if self.by_label:
            return BY_LABEL
        return ",".join(f"{m}={s}" for m, s in self.pairs)


def _csv_pairs(text: str, where: str, *, tab: bool) -> list[tuple[str, str]]:
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    delimiter = "\t" if tab or (lines and "\t" in lines[0][1]) else ","
    pairs = []
    for k, (number, line) in enumerate(lines):
        row = [cell.strip() for cell in next(csv.reader(io.StringIO(line), delimiter=delimiter))]
        if k == 0 and [c.lower() for c in row] == ["model", "stream"]:
            continue  # the header
        if len(row) != 2 or not all(row):
            raise ChannelMapError(
                f"{where} line {number}: {line.strip()!r} is not two labels (model, stream); "
                "each line maps a model channel to the stream channel that feeds it"
            )
        pairs.append((row[0], row[1]))
    return pairs


def _json_pairs(text: str, where: str) -> list[tuple[str, str]]:
    try:
        # as pairs: a key given twice is an error here, not silently the last one
        pairs = json.loads(text, object_pairs_hook=list)
    except json.JSONDecodeError as exc:
        raise ChannelMapError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        raise ChannelMapError(
            f'{where} must hold one JSON object {{"MODEL": "STREAM", ...}}, got '
            f"{type(pairs).__name__ if not isinstance(pairs, list) else 'an array'}"
        )
    return _string_pairs(pairs, where)


def _toml_pairs(text: str, where: str) -> list[tuple[str, str]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChannelMapError(f"{where} is not valid TOML: {exc}") from None
    return _string_pairs(list(doc.items()), where)


def _string_pairs(pairs: list, where: str) -> list[tuple[str, str]]:
    bad = [k for k, v in pairs if not isinstance(v, str)]
    if bad:
        raise ChannelMapError(
            f'{where}: the value of {bad[0]!r} is not a string; each entry is MODEL = "STREAM" '
            "(the label of the stream channel that feeds that model channel)"
        )
    return [(str(k), v) for k, v in pairs]


def route_channels(
    model_labels: Sequence[str],
    labels: Sequence[str],
    channel_map: ChannelMap | None = None,
    *,
    model: str,
    source: str,
    kind: str = "stream",
) -> tuple[int, ...] | None:
    """Check that a stream carries a model's channels; with a map, which channel feeds which.

    Parameters
    ----------
    model_labels : sequence of str
        The model's channel labels (``ModelContract.labels``: the defaults when it has none).
    labels : sequence of str
        The stream's (or recording's) channel labels, the defaults when it has none.
    channel_map : ChannelMap, optional
        Which stream channel feeds each model channel.
    model, source : str
        What the model and the stream are, for messages (``"model M.onnx"``, ``"stream 'rig'"``).
    kind : str
        What the source is in the fix's words: ``"stream"``, ``"recording"``.

    Returns
    -------
    tuple of int or None
        For each model channel, the index of the stream channel that feeds it; None when the
        stream's channels feed the model as they come (the same labels in the same order, a map
        that says so, or labels missing on either side: then only the counts can be compared,
        which is the caller's check, and a warning says identity was not checked).

    Raises
    ------
    ChannelMapError
        Both carry labels and they differ (the message shows how and gives the fix), or the map
        cannot be used with this model and stream.
    """
    if channel_map is not None:
        index = channel_map.resolve(model_labels, labels, model=model, source=source)
        return None if index == tuple(range(len(labels))) else index
    model_known = known_labels(model_labels, len(model_labels))
    known = known_labels(labels, len(labels))
    if model_known is None or known is None:
        if len(model_labels) == len(labels):  # another count is refused by the caller
            lacking = " and ".join(
                name for name, have in ((model, model_known), (source, known)) if have is None
            )
            logger.warning(
                "channel identity cannot be checked: no channel labels on %s; only the "
                "count (%d) is checked, so make sure the channels come in the model's order",
                lacking,
                len(labels),
            )
        return None
    if model_known == known:
        return None
    difference = label_difference(
        model_known, known, expected_name="the model", found_name=f"the {kind}"
    )
    fix = (
        f"; the {kind} has every channel the model needs: --channel-map {BY_LABEL} takes them "
        "by their labels"
        if set(model_known) <= set(known)
        else ""
    )
    raise ChannelMapError(
        f"{source} does not carry the channels of {model} in its order: {difference}. Say which "
        f"{kind} channel feeds each model channel with --channel-map MODEL={kind.upper()},... or "
        f"a {'/'.join(MAP_SUFFIXES)} file{fix}"
    )
