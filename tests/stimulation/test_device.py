"""The serial trigger device over a pseudo-terminal: commands, acknowledgements, heartbeats,
a silent device, an unplugged port, and the byte protocol itself."""

import os
import threading
import time
from dataclasses import replace

import pytest

from rtdecode.stimulation.device import TriggerDevice
from rtdecode.stimulation.emulator import PtyTriggerDevice
from rtdecode.stimulation.engine import Trigger
from rtdecode.stimulation.protocol import (
    Ack,
    AckParser,
    Command,
    decode_command,
    encode_ack,
    encode_command,
    with_seq,
)
from rtdecode.stimulation.rules import OutputConfig

pytestmark = pytest.mark.timeout(60)


def trigger(action="pulse", *, pulses=1, pulse_ms=10, period_ms=0, delay_ms=0, channel=0, t=None):
    import pylsl

    return Trigger(
        rule="r",
        action=action,
        state="rem",
        end_sample=1000,
        t=pylsl.local_clock() if t is None else t,
        channel=channel,
        delay_ms=delay_ms,
        pulse_ms=pulse_ms,
        pulses=pulses,
        period_ms=period_ms,
        control=None,
        suppressed=None,
        reason="enter:rem",
    )


class Results:
    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, result):
        with self.cond:
            self.items.append(result)
            self.cond.notify_all()

    def wait(self, n, timeout=5.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), self.items
        return self.items


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return False


def test_frames_round_trip_and_noise_is_skipped():
    cmd = Command(b"P", 7, channel=2, delay_ms=300, duration_ms=10, period_ms=50, pulses=4)
    frame = encode_command(cmd)
    assert len(frame) == 12 and decode_command(frame) == cmd
    assert decode_command(frame[:-1] + bytes([frame[-1] ^ 1])) is None  # checksum
    # a frame encoded once, renumbered per send, is the frame of the renumbered command
    for seq in range(256):
        assert with_seq(frame, seq) == encode_command(replace(cmd, seq=seq))
    parser = AckParser()
    acks = parser.feed(
        b"\x5a\x00garbage" + encode_ack(Ack(7, 0, 2**32 + 5)) + encode_ack(Ack(8, 3, 9))[:4]
    )
    assert acks == [Ack(7, 0, 5)] and parser.feed(encode_ack(Ack(8, 3, 9))[4:]) == [Ack(8, 3, 9)]
    with pytest.raises(ValueError, match="channel must be an int in 0..7"):
        Command(b"P", 1, channel=8)


def test_pulses_are_written_acknowledged_and_delivered():
    results = Results()
    with PtyTriggerDevice() as dev:
        device = TriggerDevice(OutputConfig(port=dev.port, baud=115200), results).start()
        try:
            device.send(trigger(pulses=3, pulse_ms=10, period_ms=40))
            (res,) = results.wait(1)
            assert res.error is None and res.ack.ok
            assert res.written_t >= res.trigger.t and res.ack_t >= res.written_t
            assert wait_until(lambda: len(dev.pulses(0)) == 3)
            widths = [off - on for on, off in dev.pulses(0)]
            assert all(0.008 < w < 0.05 for w in widths), widths
            kinds = [r.command.command for r in dev.received]
            # a heartbeat until the device answers, then the watchdog, then the pulse
            assert kinds[:2] == [b"B", b"W"] and b"P" in kinds
            assert dev.received[1].command.duration_ms == 500
        finally:
            device.close()
        # closing turns every output off
        assert wait_until(lambda: dev.received[-1].command.command == b"X")


def test_a_gate_stays_on_with_heartbeats_and_goes_off_on_close():
    results = Results()
    with PtyTriggerDevice() as dev:
        # a tenfold margin: on a loaded 2-core machine a heartbeat can come 100+ ms late
        cfg = OutputConfig(port=dev.port, watchdog_ms=500, heartbeat_ms=50)
        device = TriggerDevice(cfg, results).start()
        device.send(trigger("on", pulse_ms=0))
        results.wait(1)
        assert wait_until(lambda: dev.levels[0])
        time.sleep(1.2)  # over two watchdog periods: the heartbeats keep it on
        assert dev.levels[0] and dev.watchdog_fired == 0
        assert sum(r.command.command == b"B" for r in dev.received) >= 12
        device.send(trigger("off"))  # the decoder stopping: the last edge, then close at once
        device.close()
        off = results.wait(2)[1]
        assert off.trigger.action == "off" and off.error is None and off.ack.ok
        assert wait_until(lambda: not dev.levels[0])


def test_the_device_turns_off_by_itself_when_the_decoder_dies():
    """The watchdog: a decoder killed mid-gate (no close, no heartbeats) leaves no laser on."""
    with PtyTriggerDevice() as dev:
        import serial

        port = serial.Serial(dev.port, 115200, timeout=0.1)
        port.write(encode_command(Command(b"W", 1, duration_ms=150)))
        port.write(encode_command(Command(b"H", 2, channel=1)))
        assert wait_until(lambda: dev.levels[1])
        t_on = time.monotonic()
        # ... and nothing more: the host is gone
        assert wait_until(lambda: not dev.levels[1], timeout=2.0)
        assert 0.1 < time.monotonic() - t_on < 0.5
        assert dev.watchdog_fired == 1
        acks = AckParser().feed(port.read(100))
        assert [a.seq for a in acks][-1] == 0 and acks[-1].status == 4
        port.close()


def test_a_silent_device_is_logged_as_unacknowledged_not_waited_for():
    results = Results()
    with PtyTriggerDevice(silent=True) as dev:
        device = TriggerDevice(OutputConfig(port=dev.port, ack_timeout_ms=50), results).start()
        t0 = time.monotonic()
        device.send(trigger())
        assert time.monotonic() - t0 < 0.01  # send never blocks
        (res,) = results.wait(1)
        assert res.written_t is not None and res.ack is None
        assert "no acknowledgement within 50 ms" in res.error
        device.close()


def test_a_bad_argument_comes_back_as_an_error():
    results = Results()
    with PtyTriggerDevice() as dev:
        device = TriggerDevice(OutputConfig(port=dev.port), results).start()
        device.send(trigger(pulses=3, pulse_ms=20, period_ms=10))  # period shorter than a pulse
        (res,) = results.wait(1)
        assert res.error == "device: bad argument"
        device.close()


def test_an_unplugged_port_is_reported_retried_and_nothing_is_lost(tmp_path):
    """The port disappears under the writer (the pseudo-terminal closes) and comes back under
    the same path (a symlink, as udev gives a board): every trigger is accounted for."""
    results = Results()
    link = tmp_path / "ttyTRIG"
    dev = PtyTriggerDevice()
    os.symlink(dev.port, link)
    device = TriggerDevice(OutputConfig(port=str(link), ack_timeout_ms=100), results).start()
    try:
        device.send(trigger())
        results.wait(1)
        dev.close()  # unplugged
        os.unlink(link)
        for _ in range(3):
            device.send(trigger())
            time.sleep(0.05)
        results.wait(4)
        assert all(r.error for r in results.items[1:]), results.items
        dev2 = PtyTriggerDevice()  # plugged back in
        os.symlink(dev2.port, link)
        assert wait_until(lambda: device.connected, timeout=3.0)
        device.send(trigger())
        last = results.wait(5)[-1]
        assert last.error is None and last.ack.ok
        assert device.counts["reopened"] >= 1
        dev2.close()
    finally:
        device.close()
    assert len(results.items) == 5


def test_a_missing_port_fails_at_start_with_the_path():
    import serial

    with pytest.raises(serial.SerialException, match="/dev/nonexistent-trigger"):
        TriggerDevice(OutputConfig(port="/dev/nonexistent-trigger"), Results()).start()


def test_a_board_that_resets_when_opened_gets_heartbeats_until_it_answers():
    """An Arduino Uno reboots when its port opens and hears nothing for a while: the host sends
    heartbeats until one is answered, then the watchdog setting, then what was queued."""
    results = Results()
    with PtyTriggerDevice(silent=True) as dev:
        device = TriggerDevice(OutputConfig(port=dev.port), results).start()
        device.send(trigger())
        time.sleep(0.35)
        assert [r.command.command for r in dev.received] == [b"B"] * len(dev.received)
        assert len(dev.received) >= 3 and not results.items  # the trigger waits
        dev.silent = False  # the sketch has started
        (res,) = results.wait(1)
        assert res.error is None and res.ack.ok
        kinds = [r.command.command for r in dev.received]
        w = kinds.index(b"W")
        assert set(kinds[:w]) == {b"B"} and kinds.index(b"P") == w + 1
        device.close()
