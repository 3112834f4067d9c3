"""Find an LSL stream by name, type or source id, and check that rtdecode can decode it.

Resolution and checks happen before any thread starts, so a missing stream or an unsupported
format is one readable error (:class:`StreamNotFoundError`, :class:`StreamMismatchError`).
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass

import pylsl

from rtdecode.common.channels import labels_or_default

__all__ = [
    "StreamNotFoundError",
    "StreamMismatchError",
    "AmbiguousStreamError",
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


class AmbiguousStreamError(StreamNotFoundError):
    """More than one stream matches the selector: decoding one of them at random is refused."""


# liblsl answers a resolve within a few hundred ms on a LAN; a second hears every stream that
# answers, not only the first.
_LISTEN_S = 1.0


@dataclass(frozen=True)
class StreamSelector:
    """Which stream to decode: every property given must match (name, type, source_id, host)."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    host: str | None = None

    def __post_init__(self) -> None:
        for key, value in (("name", self.name), ("type", self.type), ("source_id", self.source_id)):
            if value is not None and not value.strip():
                raise ValueError(
                    f"the input stream's {key} is empty: give the stream's {key} (liblsl lists "
                    "the streams on the network: leave the flag out to see them)"
                )
        if self.host is not None and not self.host.strip():
            raise ValueError("--host is empty: give the source machine's host name")
        if not (self.name or self.type or self.source_id):
            raise ValueError(
                "give the input stream's name, type or source_id (--source NAME, --source-type "
                "TYPE, --source-id ID); an empty one matches nothing"
            )

    def matches(self, info: pylsl.StreamInfo) -> bool:
        """Whether the stream ``info`` has every property given."""
        return all(
            want is None or got == want
            for want, got in (
                (self.name, info.name()),
                (self.type, info.type()),
                (self.source_id, info.source_id()),
                (self.host, info.hostname()),
            )
        )

    def __str__(self) -> str:
        given = (("name", self.name), ("type", self.type), ("source_id", self.source_id))
        given += (("host", self.host),)
        return ", ".join(f"{key}={value!r}" for key, value in given if value is not None)


def _describe(info: pylsl.StreamInfo) -> str:
    fmt = _FORMAT_NAMES.get(info.channel_format(), str(info.channel_format()))
    return (
        f"{info.name()!r} (type {info.type()!r}, {info.channel_count()} ch, "
        f"{info.nominal_srate():g} Hz, {fmt}, source_id {info.source_id()!r}, host {info.hostname()!r})"
    )


def _pinning_flags(selector: StreamSelector, info: pylsl.StreamInfo, found: list) -> str:
    """The flags that select ``info`` alone among ``found`` ("" when none can)."""
    base = [f"--source {shlex.quote(info.name())}"] if selector.name else []
    if selector.type:
        base.append(f"--source-type {shlex.quote(info.type())}")
    sid = f"--source-id {shlex.quote(info.source_id())}"
    host = f"--host {shlex.quote(info.hostname())}"
    for flags, key in (
        ([sid], lambda s: s.source_id()),
        ([host], lambda s: s.hostname()),
        ([sid, host], lambda s: (s.source_id(), s.hostname())),
    ):
        if (info.source_id() or sid not in flags) and [key(s) for s in found].count(key(info)) == 1:
            return " ".join(base + flags)
    return ""


def resolve_stream(selector: StreamSelector, timeout_s: float = 5.0) -> pylsl.StreamInfo:
    """Find the one stream the selector matches, listening about a second to hear every stream
    that answers; on failure the error lists the streams that are visible, or the matches.

    Raises
    ------
    StreamNotFoundError
        No stream matched within ``timeout_s``.
    AmbiguousStreamError
        Several streams matched (each is listed with the flags that pin it).
    """
    deadline = time.monotonic() + timeout_s
    visible: list = []
    while True:
        listen_s = max(0.1, min(_LISTEN_S, deadline - time.monotonic()))
        visible = pylsl.resolve_streams(wait_time=listen_s)
        found = [s for s in visible if selector.matches(s)]
        if len(found) == 1:
            return found[0]
        if found:
            lines = []
            for info in found:
                pin = _pinning_flags(selector, info, found)
                lines.append(
                    f"  - {_describe(info)}: "
                    + (pin or "cannot be told apart from another (same source_id and host)")
                )
            raise AmbiguousStreamError(
                f"{len(found)} LSL streams match {selector}; rtdecode decodes one, and will not "
                "guess which (anyone on the network may publish under a name):\n"
                + "\n".join(lines)
                + "\nPin the source with the flags shown. Streams that cannot be told apart need "
                "a source_id of their own (set it in the source's software)."
            )
        if time.monotonic() >= deadline:
            break
    listing = "\n".join(f"  - {_describe(s)}" for s in visible) or "  (none)"
    raise StreamNotFoundError(
        f"no LSL stream with {selector} found within {timeout_s:g} s. Visible streams:\n{listing}\n"
        "Check that the source is running and on this network, or select it with "
        "--source NAME / --source-type TYPE / --source-id ID / --host HOST."
    )


def channel_labels(info: pylsl.StreamInfo) -> list[str]:
    """Channel labels from the stream header (``chNNN`` where absent)."""
    labels: list[str] = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return list(labels_or_default(labels, info.channel_count()))
