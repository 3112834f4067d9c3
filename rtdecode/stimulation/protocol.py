"""The byte protocol between rtdecode and its trigger device (firmware in ``firmware/``).

Every frame is fixed-size, little-endian, and ends with the XOR of the bytes between the sync
byte and the checksum, so a device that starts listening mid-stream resynchronises on the next
sync byte whose checksum holds.

Host -> device, 12 bytes::

    0      0xA5 sync
    1      command: b"P" pulse train, b"H" output on (gate), b"L" output off,
           b"B" heartbeat, b"W" set the watchdog timeout, b"X" all outputs off
    2      sequence number (0-255, wraps; echoed in the acknowledgement)
    3      output channel (0-7)
    4-5    delay_ms    u16  P/H: wait this long before acting (device clock)
    6-7    duration_ms u16  P: each pulse's width; H: the longest the output may stay on
                            (0: until L); W: the watchdog timeout
    8-9    period_ms   u16  P: pulse onset to onset (>= duration_ms when pulses > 1)
    10     pulses      u8   P: number of pulses (>= 1)
    11     XOR of bytes 1-10

Device -> host, 8 bytes::

    0      0x5A sync
    1      sequence number of the command acknowledged (0 for unsolicited frames)
    2      status: 0 ok, 1 bad checksum, 2 unknown command, 3 bad argument,
           4 watchdog fired (unsolicited: every output was turned off)
    3-6    the device's clock when the command was read, microseconds, u32 (wraps)
    7      XOR of bytes 1-6

Every valid frame resets the device's watchdog; when none arrives for the watchdog timeout
(500 ms until set by ``W``) the device turns every output off by itself, so a crashed or
unplugged decoder never leaves a laser on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "HOST_SYNC",
    "DEVICE_SYNC",
    "COMMAND_SIZE",
    "ACK_SIZE",
    "Command",
    "Ack",
    "STATUS_TEXT",
    "encode_command",
    "with_seq",
    "decode_command",
    "encode_ack",
    "AckParser",
]

HOST_SYNC = 0xA5
DEVICE_SYNC = 0x5A
COMMAND_SIZE = 12
ACK_SIZE = 8
COMMANDS = frozenset(b"PHLBWX")
STATUS_OK, STATUS_BAD_CHECKSUM, STATUS_UNKNOWN, STATUS_BAD_ARGUMENT, STATUS_WATCHDOG = range(5)
STATUS_TEXT = {
    STATUS_OK: "ok",
    STATUS_BAD_CHECKSUM: "bad checksum",
    STATUS_UNKNOWN: "unknown command",
    STATUS_BAD_ARGUMENT: "bad argument",
    STATUS_WATCHDOG: "watchdog fired: outputs off",
}
_BODY = struct.Struct("<cBBHHHB")  # command .. pulses (bytes 1-10)
_ACK_BODY = struct.Struct("<BBI")  # seq, status, device_us (bytes 1-6)


def _xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


@dataclass(frozen=True)
class Command:
    """One host -> device command (see the module's table for each field's meaning)."""

    command: bytes
    seq: int
    channel: int = 0
    delay_ms: int = 0
    duration_ms: int = 0
    period_ms: int = 0
    pulses: int = 0

    def __post_init__(self) -> None:
        if self.command not in {bytes([c]) for c in COMMANDS}:
            raise ValueError(f"command must be one of {sorted(bytes([c]) for c in COMMANDS)}")
        for name, top in (
            ("seq", 255),
            ("channel", 7),
            ("delay_ms", 65535),
            ("duration_ms", 65535),
            ("period_ms", 65535),
            ("pulses", 255),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError(f"{name} must be an int in 0..{top}, got {value!r}")


@dataclass(frozen=True)
class Ack:
    """One device -> host frame."""

    seq: int
    status: int
    device_us: int

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def text(self) -> str:
        return STATUS_TEXT.get(self.status, f"status {self.status}")


def encode_command(cmd: Command) -> bytes:
    """The 12 bytes of ``cmd``."""
    body = _BODY.pack(
        cmd.command,
        cmd.seq,
        cmd.channel,
        cmd.delay_ms,
        cmd.duration_ms,
        cmd.period_ms,
        cmd.pulses,
    )
    return bytes([HOST_SYNC]) + body + bytes([_xor(body)])


def with_seq(frame: bytes, seq: int) -> bytes:
    """An encoded command with its sequence number replaced by ``seq`` (0-255), the checksum
    kept right: a trigger's frame is encoded once and only its number changes per send."""
    out = bytearray(frame)
    out[11] ^= out[2] ^ seq
    out[2] = seq
    return bytes(out)


def decode_command(frame: bytes) -> Command | None:
    """Parse 12 bytes; None when the sync byte or the checksum is wrong."""
    if len(frame) != COMMAND_SIZE or frame[0] != HOST_SYNC or _xor(frame[1:11]) != frame[11]:
        return None
    command, seq, channel, delay, duration, period, pulses = _BODY.unpack(frame[1:11])
    try:
        return Command(command, seq, channel, delay, duration, period, pulses)
    except ValueError:
        return None


def encode_ack(ack: Ack) -> bytes:
    """The 8 bytes of ``ack`` (what the firmware sends; used by device emulators in tests)."""
    body = _ACK_BODY.pack(ack.seq, ack.status, ack.device_us & 0xFFFFFFFF)
    return bytes([DEVICE_SYNC]) + body + bytes([_xor(body)])


class AckParser:
    """Acknowledgements out of a byte stream, resynchronising after noise.

    ``feed(data)`` returns the complete, valid frames found so far; bytes that cannot start one
    are counted in :attr:`discarded`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded = 0

    def feed(self, data: bytes) -> list[Ack]:
        self._buf += data
        out = []
        while True:
            start = self._buf.find(DEVICE_SYNC)
            if start < 0:
                self.discarded += len(self._buf)
                self._buf.clear()
                return out
            if start:
                self.discarded += start
                del self._buf[:start]
            if len(self._buf) < ACK_SIZE:
                return out
            frame = bytes(self._buf[:ACK_SIZE])
            if _xor(frame[1:7]) != frame[7]:
                self.discarded += 1
                del self._buf[:1]
                continue
            seq, status, device_us = _ACK_BODY.unpack(frame[1:7])
            out.append(Ack(seq, status, device_us))
            del self._buf[:ACK_SIZE]
