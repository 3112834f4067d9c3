"""Find an LSL stream by name, type or source id, and check that rtdecode can decode it.

Resolution and checks happen before any thread starts, so a missing stream or an unsupported
format is one readable error (:class:`StreamNotFoundError`, :class:`StreamMismatchError`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pylsl

from rtdecode.common.channels import labels_or_default

__all__ = [
    "StreamNotFoundError",
    "StreamMismatchError",
    "StreamSelector",
    "resolve_stream",
    "channel_labels",
]

logger = logging.getLogger("rtdecode")

_FORMAT_NAMES = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_string: "string",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}

_SUPPORTED_FORMATS = (pylsl.cf_float32, pylsl.cf_double64, pylsl.cf_int32, pylsl.cf_int16)


class StreamNotFoundError(RuntimeError):
    """No LSL stream matched the selector within the timeout."""


class StreamMismatchError(RuntimeError):
    """The stream cannot be decoded (format, channel count or rate)."""


@dataclass(frozen=True)
class StreamSelector:
    """Which stream to decode: by name, type or source_id (the first one given is used)."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None

    def __post_init__(self) -> None:
        if not (self.name or self.type or self.source_id):
            raise ValueError("give a stream name, type or source_id to select the source")

    @property
    def prop(self) -> tuple[str, str]:
        if self.source_id:
            return "source_id", self.source_id
        if self.name:
            return "name", self.name
        return "type", str(self.type)

    def __str__(self) -> str:
        key, value = self.prop
        return f"{key}={value!r}"


def _describe(info: pylsl.StreamInfo) -> str:
    fmt = _FORMAT_NAMES.get(info.channel_format(), str(info.channel_format()))
    return (
        f"{info.name()!r} (type {info.type()!r}, {info.channel_count()} ch, "
        f"{info.nominal_srate():g} Hz, {fmt}, source_id {info.source_id()!r}, host {info.hostname()!r})"
    )


def resolve_stream(selector: StreamSelector, timeout_s: float = 5.0) -> pylsl.StreamInfo:
    """Find the stream; on failure the error lists the streams that are visible.

    Raises
    ------
    StreamNotFoundError
    """
    key, value = selector.prop
    found = pylsl.resolve_byprop(key, value, minimum=1, timeout=timeout_s)
    if found:
        if len(found) > 1:
            logger.warning(
                "%d streams match %s; using %s", len(found), selector, _describe(found[0])
            )
        return found[0]
    visible = pylsl.resolve_streams(wait_time=1.0)
    listing = "\n".join(f"  - {_describe(s)}" for s in visible) or "  (none)"
    raise StreamNotFoundError(
        f"no LSL stream with {selector} found within {timeout_s:g} s. Visible streams:\n{listing}\n"
        "Check that the source is running and on this network, or select it with "
        "--source NAME / --source-type TYPE / --source-id ID."
    )


def channel_labels(info: pylsl.StreamInfo) -> list[str]:
    """Channel labels from the stream header (``chNNN`` where absent)."""
    labels: list[str] = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return list(labels_or_default(labels, info.channel_count()))
