"""``rtdecode device``: check a trigger board before a session, or emulate one.

``--port PORT`` opens the board as ``run`` would (the heartbeat handshake, the watchdog), sends
a few test pulses and reports their acknowledgements and round trips: whether the firmware is
there and answering, and what latency class the port is in (Teensy ~1 ms, Arduino Uno ~4 ms, an
FTDI adapter 16 ms unless in low-latency mode). ``--emulate`` runs the firmware's protocol on a
pseudo-terminal (:class:`rtdecode.stimulation.emulator.PtyTriggerDevice`) and prints what it
receives and does, so ``run --trigger-port`` can be tried without a board.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import pylsl

from rtdecode.cli.common import (
    EXIT_OK,
    UsageError,
    _int_at_least,
    _non_empty,
    _positive_float,
    port_open_error,
)

__all__ = ["add_device_command", "cmd_device"]

_ANSWER_S = 5.0  # an Arduino Uno resets when its port opens and is deaf for ~2 s
_SLOW_ROUND_TRIP_MS = 8.0  # above this, a USB-serial adapter is likely not in low-latency mode


def add_device_command(sub) -> None:
    """Add ``device`` to the CLI's subparsers."""
    p = sub.add_parser(
        "device",
        help="check a trigger board (test pulses, round trips) or emulate one on a pty",
        description="Check the trigger board on PORT before a session: the handshake, a few "
        "test pulses, their acknowledgements and round trips. Or, with --emulate, run the "
        "firmware's protocol on a pseudo-terminal and print what it receives, so that `rtdecode "
        "run --trigger-port` can be tried without hardware.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--port",
        type=_non_empty,
        metavar="PORT",
        help="the board's serial port (/dev/ttyACM0, /dev/ttyUSB0, COM3, a pty's path)",
    )
    which.add_argument(
        "--emulate", action="store_true", help="a board in software on a pseudo-terminal"
    )
    p.add_argument(
        "--pulses",
        type=_int_at_least(1),
        default=10,
        help="test pulses to send with --port (default 10); they drive the TTL output",
    )
    p.add_argument(
        "--channel", type=_int_at_least(0), default=0, help="the output to pulse (default 0)"
    )
    p.add_argument(
        "--pulse-ms", type=_int_at_least(1), default=1, help="each test pulse's width (default 1)"
    )
    p.add_argument(
        "--baud", type=_int_at_least(300), default=1_000_000, help="default 1000000 (firmware/)"
    )
    p.add_argument(
        "--duration", type=_positive_float, metavar="S", help="with --emulate: stop after S s"
    )


def cmd_device(args: argparse.Namespace) -> int:
    if args.emulate:
        return _emulate(args.duration)
    return _check(args.port, args.baud, args.pulses, args.channel, args.pulse_ms)


def _check(port: str, baud: int, n_pulses: int, channel: int, pulse_ms: int) -> int:
    """Handshake, ``n_pulses`` test pulses, their acknowledgements; exit 2 unless all came."""
    from rtdecode.stimulation.device import CommandResult, TriggerDevice
    from rtdecode.stimulation.emulator import N_CHANNELS
    from rtdecode.stimulation.engine import Trigger
    from rtdecode.stimulation.rules import OutputConfig, RulesError

    if channel >= N_CHANNELS:
        raise UsageError(f"--channel {channel}: the firmware has outputs 0-{N_CHANNELS - 1}")
    try:
        config = OutputConfig(port=port, baud=baud)
    except RulesError as exc:
        raise UsageError(str(exc)) from None
    results: list[CommandResult] = []
    done = threading.Condition()

    def on_result(result: CommandResult) -> None:
        with done:
            results.append(result)
            done.notify_all()

    device = TriggerDevice(config, on_result)
    try:
        device.start()
    except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException, OSError, ValueError
        raise port_open_error(port, exc) from None
    try:
        if not device.wait_ready(_ANSWER_S):
            raise UsageError(
                f"the trigger board on {port} does not answer within {_ANSWER_S:g} s: is the "
                f"firmware in firmware/ flashed on it, at {baud} baud (--baud), and is {port} "
                "the board's port?"
            )
        print(
            f"trigger board on {port}: answering; low-latency mode "
            f"{'on' if device.low_latency else 'not available (a pty, or a driver without it)'}",
            flush=True,
        )
        print(f"sending {n_pulses} test pulse(s) of {pulse_ms} ms on output {channel}", flush=True)
        gap_s = max(0.05, 2 * pulse_ms * 1e-3)
        for k in range(n_pulses):
            device.send(
                Trigger(
                    rule="device-check",
                    action="pulse",
                    state="",
                    end_sample=k,
                    t=pylsl.local_clock(),
                    channel=channel,
                    delay_ms=0,
                    pulse_ms=pulse_ms,
                    pulses=1,
                    period_ms=0,
                    control=None,
                    suppressed=None,
                    reason="rtdecode device check",
                )
            )
            time.sleep(gap_s)
        deadline = time.monotonic() + config.ack_timeout_ms * 1e-3 + 1.0
        with done:
            while len(results) < n_pulses and time.monotonic() < deadline:
                done.wait(0.05)
    finally:
        device.close()
    return _report(port, n_pulses, results, device.low_latency)


def _report(port: str, n_pulses: int, results: list, low_latency: bool) -> int:
    trips = [
        (r.ack_t - r.written_t) * 1e3
        for r in results
        if r.error is None and r.ack_t is not None and r.written_t is not None
    ]
    if trips:
        print(
            f"{len(trips)} of {n_pulses} acknowledged; round trip (write -> acknowledgement "
            f"read) median {statistics.median(trips):.2f} ms, max {max(trips):.2f} ms",
            flush=True,
        )
    if trips and statistics.median(trips) > _SLOW_ROUND_TRIP_MS and not low_latency:
        print(
            f"the round trip is slow for USB serial: an FTDI adapter not in low-latency mode "
            f"answers in ~16 ms (setserial {port} low_latency, or a board with native USB)",
            flush=True,
        )
    if len(trips) == n_pulses:
        return EXIT_OK
    errors = sorted({r.error for r in results if r.error is not None})
    missing = n_pulses - len(results)
    why = "; ".join(errors + ([f"{missing} with no result"] if missing else []))
    raise UsageError(
        f"{n_pulses - len(trips)} of {n_pulses} test pulses on {port} were not acknowledged "
        f"({why}); check the firmware's version (firmware/README.md) and the cable"
    )


def _emulate(duration_s: float | None) -> int:
    """A board on a pseudo-terminal: print its path, then what it receives and does."""
    from rtdecode.stimulation.emulator import N_CHANNELS, PtyTriggerDevice
    from rtdecode.stimulation.protocol import STATUS_TEXT

    with PtyTriggerDevice() as device:
        print(f"emulated trigger board on {device.port} (Ctrl-C to stop)", flush=True)
        print(f"  rtdecode run ... --trigger-port {device.port}", flush=True)
        t0 = pylsl.local_clock()
        seen_cmd = seen_edge = heartbeats = watchdog = 0
        connected = False  # a host heard since the start, the last all-off or watchdog
        level = [False] * N_CHANNELS
        end = None if duration_s is None else time.monotonic() + duration_s
        try:
            while end is None or time.monotonic() < end:
                time.sleep(0.02)
                for r in device.received[seen_cmd:]:
                    seen_cmd += 1
                    cmd = r.command
                    if cmd.command == b"B":
                        heartbeats += 1
                        if not connected:
                            connected = True
                            print(f"{r.first_byte_t - t0:9.3f} s  host connected (heartbeats)")
                        continue
                    connected = connected and cmd.command != b"X"  # a host's last word
                    print(
                        f"{r.first_byte_t - t0:9.3f} s  {_describe(cmd)}"
                        f"{'' if r.status == 0 else ' -> ' + STATUS_TEXT.get(r.status, '?')}",
                        flush=True,
                    )
                for e in device.edges[seen_edge:]:
                    seen_edge += 1
                    if level[e.channel] != e.level:
                        level[e.channel] = e.level
                        print(
                            f"{e.t - t0:9.3f} s  output {e.channel} {'HIGH' if e.level else 'low'}",
                            flush=True,
                        )
                if device.watchdog_fired > watchdog:
                    watchdog = device.watchdog_fired
                    connected = False
                    print(
                        f"{pylsl.local_clock() - t0:9.3f} s  watchdog: no frame from the host "
                        "in time, every output off",
                        flush=True,
                    )
        except KeyboardInterrupt:
            pass
        commands = seen_cmd - heartbeats
        print(f"stopped: {commands} command(s), {heartbeats} heartbeat(s)", flush=True)
    return EXIT_OK


def _describe(cmd) -> str:
    """One command in words."""
    kind = cmd.command
    if kind == b"P":
        train = f" x{cmd.pulses} every {cmd.period_ms} ms" if cmd.pulses > 1 else ""
        delay = f" after {cmd.delay_ms} ms" if cmd.delay_ms else ""
        return f"pulse {cmd.duration_ms} ms on output {cmd.channel}{train}{delay} (seq {cmd.seq})"
    if kind == b"H":
        limit = f", at most {cmd.duration_ms} ms" if cmd.duration_ms else ""
        return f"gate on, output {cmd.channel}{limit} (seq {cmd.seq})"
    if kind == b"L":
        return f"gate off, output {cmd.channel} (seq {cmd.seq})"
    if kind == b"W":
        return f"watchdog set to {cmd.duration_ms} ms"
    if kind == b"X":
        return "all outputs off"
    return f"command {kind!r}"
