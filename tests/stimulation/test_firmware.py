"""The trigger device's firmware (firmware/), run for real in the AVR simulator simavr.

firmware/sim/trigger_sim.c runs the Uno build with its UART0 on a pseudo-terminal and prints
every change of an output pin with the simulated cycle; the tests talk to it with pyserial and
the host side of the protocol (rtdecode.stimulation.protocol). Timing is checked on the
simulated clock (cycles / 16 MHz, and the device's micros() in the acknowledgements), which is
exact whatever the load of the machine; simavr may run slower than real time, never faster.

Skipped where the AVR toolchain or simavr's library is missing (Debian: gcc-avr avr-libc
arduino-core-avr arduino-mk libsimavr-dev).
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

serial = pytest.importorskip("serial", reason="pyserial is needed to talk to the simulator")

from rtdecode.stimulation.protocol import (
    COMMAND_SIZE,
    HOST_SYNC,
    Ack,
    AckParser,
    Command,
    encode_command,
)

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
SKETCH = FIRMWARE / "rtdecode_trigger" / "rtdecode_trigger.ino"
F_CPU = 16_000_000
WAIT_S = 15.0  # wall-clock patience for anything the simulator does (it may be slow)
# Cross-clock comparisons (an edge against the ack of its command): micros() ticks by 4 us, and
# when in the loop a command is read moves its action by some tens of us.
LATENCY_US = 60
OK, BAD_CHECKSUM, UNKNOWN, BAD_ARGUMENT, WATCHDOG = range(5)

pytestmark = pytest.mark.slow


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("make", "cc", "avr-gcc", "avr-g++") if not shutil.which(tool)]
    for path in (
        "/usr/share/arduino/Arduino.mk",
        "/usr/share/arduino/hardware/arduino/avr/cores/arduino/Arduino.h",
        "/usr/include/simavr/sim_avr.h",
    ):
        if not Path(path).exists():
            missing.append(path)
    if not ctypes.util.find_library("simavr"):
        missing.append("libsimavr.so")
    return missing


def _uno_pin(arduino_pin: int) -> str:
    """The ATmega328P port bit behind an Uno's digital pin, as the simulator names it."""
    if 0 <= arduino_pin <= 7:
        return f"D{arduino_pin}"
    if 8 <= arduino_pin <= 13:
        return f"B{arduino_pin - 8}"
    if 14 <= arduino_pin <= 19:
        return f"C{arduino_pin - 14}"
    raise ValueError(f"not an Uno digital pin: {arduino_pin}")


def _output_pins() -> list[str]:
    """Channel -> port bit, from the one pin table in the sketch."""
    table = re.search(r"OUTPUT_PINS\[\]\s*=\s*\{([^}]*)\}", SKETCH.read_text())
    assert table, "OUTPUT_PINS table not found in the sketch"
    return [_uno_pin(int(p)) for p in table.group(1).split(",")]


@pytest.fixture(scope="module")
def build() -> Path:
    """The firmware ELF and the simulator, built once per version of their sources."""
    missing = _missing_tools()
    if missing:
        pytest.skip(
            "AVR toolchain or simavr missing (Debian: gcc-avr avr-libc arduino-core-avr "
            f"arduino-mk libsimavr-dev): {', '.join(missing)}"
        )
    sources = [FIRMWARE / "Makefile", SKETCH, FIRMWARE / "sim" / "trigger_sim.c"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"rtdecode-firmware-{digest}"
    if (cache / "trigger_sim").exists() and (cache / "rtdecode_trigger.elf").exists():
        return cache
    work = Path(tempfile.mkdtemp(prefix="rtdecode-firmware-build-"))
    result = subprocess.run(
        ["make", "-C", str(FIRMWARE), f"OBJDIR={work}", "all", "sim"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"firmware build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    try:
        os.rename(work, cache)  # atomic: a concurrent run sees all of it or none
    except OSError:  # another run got there first
        shutil.rmtree(work, ignore_errors=True)
    return cache


class Device:
    """The simulated trigger device: its serial port, its acknowledgements, its pins."""

    def __init__(self, build: Path) -> None:
        self.pins = _output_pins()
        self._edges: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()
        self._parser = AckParser()
        self.acks: list[Ack] = []  # received and not consumed by a wait
        self._seq = 0
        self.port = self._reader = None
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file: a full pipe would block it
        self.proc = subprocess.Popen(
            [str(build / "trigger_sim"), "-t", "120", str(build / "rtdecode_trigger.elf")],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        try:
            first = self.proc.stdout.readline().split()
            if first[:1] != ["pty"]:
                self.proc.wait(timeout=10)
                self.stderr.seek(0)
                raise AssertionError(f"simulator did not start: {first} {self.stderr.read()}")
            self._reader = threading.Thread(target=self._read_pins, daemon=True)
            self._reader.start()
            # No set_low_latency_mode: a pty does not have it.
            self.port = serial.Serial(first[1], 1_000_000, timeout=0.02)
            self._handshake()
            self.epoch_us = self._calibrate()
        except BaseException:
            self.close()
            raise

    def _read_pins(self) -> None:
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "pin":
                with self._lock:
                    self._edges.append((parts[1], int(parts[2]), int(parts[3])))

    def _handshake(self) -> None:
        """Heartbeats until one is acknowledged: bytes sent before the firmware has set up its
        UART are lost, as on a board that has just been reset by the opening of its port."""
        deadline = time.monotonic() + WAIT_S
        while not self.acks:
            assert time.monotonic() < deadline, "the firmware never answered a heartbeat"
            self.write(encode_command(Command(b"B", 200)))
            self._pump(0.2)
        time.sleep(0.05)
        self._pump(0.05)
        self.acks.clear()

    def _calibrate(self) -> float:
        """Where the device's clock stands on the simulated one.

        micros() starts when the firmware starts timer 0, ~0.15 ms after the simulated reset,
        and an output changes some tens of us after its command was read: a pulse sent with no
        delay measures both at once, and every later edge is compared to acknowledgements through
        it (device_time).
        """
        ack = self.command(b"P", channel=7, duration_ms=1, pulses=1)
        (_, rise), _ = self.wait_edges(7, 2)
        with self._lock:
            self._edges.clear()
        epoch = rise - ack.device_us
        assert 0 < epoch < 400, f"the device clock is {epoch} us behind the simulated one"
        return epoch

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)
        self.proc.stdout.close()
        self.stderr.close()

    # -- serial -------------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        self.port.write(frame)
        self.port.flush()

    def _pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            data = self.port.read(max(1, self.port.in_waiting))
            self.acks += self._parser.feed(data)
            if time.monotonic() >= end:
                return

    def wait_ack(self, *, seq: int | None = None, status: int | None = None) -> Ack:
        """The first frame received (now or within WAIT_S) with this seq and status."""
        deadline = time.monotonic() + WAIT_S
        while True:
            for i, ack in enumerate(self.acks):
                if (seq is None or ack.seq == seq) and (status is None or ack.status == status):
                    return self.acks.pop(i)
            if time.monotonic() > deadline:
                raise AssertionError(f"no frame with seq={seq} status={status}: {self.acks}")
            self._pump(0)

    def next_seq(self) -> int:
        self._seq = self._seq % 199 + 1  # 0 is for unsolicited frames, 200 for the handshake
        return self._seq

    def command(self, command: bytes, status: int = OK, **fields: int) -> Ack:
        """Send one command; its acknowledgement, checked to carry ``status``."""
        seq = self.next_seq()
        self.write(encode_command(Command(command, seq, **fields)))
        ack = self.wait_ack(seq=seq)
        assert ack.status == status, f"{command!r} {fields}: {ack.text}"
        return ack

    def run_for(self, ms: float) -> Ack:
        """Heartbeats every ~50 ms of wall time until the device's clock has moved ``ms``."""
        start = self.command(b"B").device_us
        while True:
            time.sleep(0.05)
            ack = self.command(b"B")
            if (ack.device_us - start) & 0xFFFFFFFF >= ms * 1000:
                return ack

    # -- pins ---------------------------------------------------------------------------------

    def edges(self, channel: int) -> list[tuple[int, float]]:
        """(level, time) of every change of the channel's pin so far: the simulated time, in us
        on the device's clock (micros(); see _calibrate)."""
        pin = self.pins[channel]
        epoch = getattr(self, "epoch_us", 0.0)
        with self._lock:
            return [
                (level, cycle * 1e6 / F_CPU - epoch) for p, level, cycle in self._edges if p == pin
            ]

    def level(self, channel: int) -> int:
        edges = self.edges(channel)
        return edges[-1][0] if edges else 0

    def wait_edges(self, channel: int, n: int) -> list[tuple[int, float]]:
        deadline = time.monotonic() + WAIT_S
        while len(edges := self.edges(channel)) < n:
            assert time.monotonic() < deadline, f"channel {channel}: {edges}, wanted {n} edges"
            time.sleep(0.01)
        return edges


@pytest.fixture
def device(build):
    dev = Device(build)
    try:
        yield dev
    finally:
        dev.close()


def raw_frame(command: bytes, seq: int, channel: int = 0, *fields: int, checksum=None) -> bytes:
    """A host frame that Command would refuse to build (unknown command, channel 8, ...)."""
    delay, duration, period, pulses = (list(fields) + [0, 0, 0, 0])[:4]
    body = struct.pack("<cBBHHHB", command, seq, channel, delay, duration, period, pulses)
    xor = 0
    for b in body:
        xor ^= b
    return bytes([HOST_SYNC]) + body + bytes([xor if checksum is None else checksum])


def test_raw_frame_matches_the_protocol_encoder():
    cmd = Command(b"P", 7, channel=3, delay_ms=513, duration_ms=5, period_ms=300, pulses=9)
    assert raw_frame(b"P", 7, 3, 513, 5, 300, 9) == encode_command(cmd)
    assert len(raw_frame(b"B", 1)) == COMMAND_SIZE


def test_every_command_is_acknowledged_with_its_seq_and_a_rising_clock(device):
    acks = [
        device.command(b"B"),
        device.command(b"W", duration_ms=500),
        device.command(b"L", channel=7),
        device.command(b"H", channel=0, duration_ms=1),
        device.command(b"P", channel=1, duration_ms=1, pulses=1),
        device.command(b"X"),
        device.command(b"B"),
    ]
    first = acks[0].seq
    assert [a.seq for a in acks] == list(range(first, first + 7))
    clocks = [a.device_us for a in acks]
    assert clocks == sorted(clocks) and len(set(clocks)) == len(clocks)


def test_bad_frames_get_their_status_and_the_next_frame_still_works(device):
    assert device.command(b"B").ok
    frame = bytearray(encode_command(Command(b"H", 42, channel=2)))
    frame[-1] ^= 0xFF
    device.write(bytes(frame))
    assert device.wait_ack(seq=42).status == BAD_CHECKSUM
    device.write(raw_frame(b"Q", 43, 0))
    assert device.wait_ack(seq=43).status == UNKNOWN
    device.write(raw_frame(b"H", 44, 8))  # channels are 0-7
    assert device.wait_ack(seq=44).status == BAD_ARGUMENT
    device.write(raw_frame(b"P", 45, 8, 0, 5, 10, 1))
    assert device.wait_ack(seq=45).status == BAD_ARGUMENT
    device.command(b"P", BAD_ARGUMENT, channel=0, duration_ms=5, pulses=0)
    device.command(b"P", BAD_ARGUMENT, channel=0, duration_ms=5, period_ms=4, pulses=2)
    device.command(b"W", BAD_ARGUMENT, duration_ms=0)
    assert device.command(b"B").ok
    # Nothing was driven by the refused commands.
    assert all(device.edges(c) == [] for c in range(8))


def test_noise_and_a_truncated_frame_do_not_hide_the_next_command(device):
    device.write(b"\x00\x01garbage\xff")
    device.write(encode_command(Command(b"H", 150, channel=4))[:6])  # the host died mid-frame
    time.sleep(0.5)  # the firmware drops a partial frame 20 ms (device clock) after its sync
    assert device.command(b"B").ok
    assert not [a for a in device.acks if a.status == BAD_CHECKSUM]
    assert device.edges(4) == []


def test_pulse_trains_run_on_the_device_clock(device):
    train = device.command(b"P", channel=0, delay_ms=20, duration_ms=5, period_ms=15, pulses=4)
    # Back to back (period == width): one 30 ms pulse, on another channel at the same time.
    joined = device.command(b"P", channel=2, delay_ms=3, duration_ms=10, period_ms=10, pulses=3)
    edges = device.wait_edges(0, 8)
    assert [level for level, _ in edges] == [1, 0] * 4
    onsets = [t for level, t in edges if level]
    offsets = [t for level, t in edges if not level]
    # The first onset is delay_ms after the command was read (the ack's clock); micros() has a
    # 4 us resolution and the loop takes tens of us.
    assert onsets[0] - train.device_us == pytest.approx(20_000, abs=LATENCY_US)
    assert [off - on for on, off in zip(onsets, offsets)] == pytest.approx([5000] * 4, abs=50)
    assert [b - a for a, b in zip(onsets, onsets[1:])] == pytest.approx([15_000] * 3, abs=50)
    joined_edges = device.wait_edges(2, 2)
    device.run_for(20)
    assert device.edges(2) == joined_edges  # no dip between the pulses
    (_, rise), (_, fall) = joined_edges
    assert rise - joined.device_us == pytest.approx(3000, abs=LATENCY_US)
    assert fall - rise == pytest.approx(30_000, abs=50)
    assert len(device.edges(0)) == 8


def test_a_pulse_with_no_delay_goes_out_at_once(device):
    ack = device.command(b"P", channel=6, duration_ms=2, pulses=1)
    (_, rise), (_, fall) = device.wait_edges(6, 2)
    assert rise - ack.device_us == pytest.approx(0, abs=LATENCY_US)
    assert fall - rise == pytest.approx(2000, abs=50)


def test_h_turns_an_output_on_and_l_off(device):
    on = device.command(b"H", channel=3)
    device.wait_edges(3, 1)
    device.run_for(200)
    assert device.level(3) == 1 and len(device.edges(3)) == 1
    off = device.command(b"L", channel=3)
    (_, rise), (_, fall) = device.wait_edges(3, 2)
    assert rise - on.device_us == pytest.approx(0, abs=LATENCY_US)
    assert fall - off.device_us == pytest.approx(0, abs=LATENCY_US)


def test_h_with_a_maximum_on_time_turns_off_by_itself(device):
    ack = device.command(b"H", channel=5, delay_ms=10, duration_ms=30)
    (_, rise), (_, fall) = device.wait_edges(5, 2)
    assert rise - ack.device_us == pytest.approx(10_000, abs=LATENCY_US)
    assert fall - rise == pytest.approx(30_000, abs=50)


def test_x_turns_everything_off_and_cancels_pending_trains(device):
    device.command(b"H", channel=7)
    device.command(b"P", channel=1, delay_ms=50, duration_ms=10, period_ms=20, pulses=3)
    device.wait_edges(7, 1)
    x = device.command(b"X")
    (_, _), (_, fall) = device.wait_edges(7, 2)
    assert fall - x.device_us == pytest.approx(0, abs=LATENCY_US)
    device.run_for(150)
    assert device.edges(1) == []


def test_heartbeats_keep_an_output_on_and_the_watchdog_turns_it_off_when_they_stop(device):
    device.command(b"H", channel=1)  # on until L
    device.wait_edges(1, 1)
    beats = [device.command(b"B")]
    while beats[-1].device_us - beats[0].device_us < 1_200_000:  # over two timeouts
        time.sleep(0.1)
        beats.append(device.command(b"B"))
    gaps = [b.device_us - a.device_us for a, b in zip(beats, beats[1:])]
    assert max(gaps) < 500_000  # each heartbeat came in time, on the device's clock
    assert device.level(1) == 1 and len(device.edges(1)) == 1
    assert not [a for a in device.acks if a.status == WATCHDOG]

    fired = device.wait_ack(status=WATCHDOG)  # heartbeats stopped
    assert fired.seq == 0
    assert fired.device_us - beats[-1].device_us == pytest.approx(500_000, abs=500)
    level, fall = device.wait_edges(1, 2)[-1]
    assert level == 0 and fall - fired.device_us == pytest.approx(0, abs=LATENCY_US)


def test_w_sets_the_watchdog_timeout(device):
    device.command(b"W", duration_ms=150)
    device.command(b"P", channel=0, duration_ms=1000, pulses=1)  # would stay on for 1 s
    last = device.command(b"B")
    fired = device.wait_ack(status=WATCHDOG)
    assert fired.device_us - last.device_us == pytest.approx(150_000, abs=500)
    (_, rise), (_, fall) = device.wait_edges(0, 2)
    assert fall - fired.device_us == pytest.approx(0, abs=LATENCY_US)
    assert fall - rise < 200_000
    # It fires once per silence; the next frame re-arms it.
    assert device.command(b"B").ok
    assert device.wait_ack(status=WATCHDOG).device_us > fired.device_us
