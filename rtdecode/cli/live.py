"""Live commands: ``rtdecode run | demo | simulate | monitor | info``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rtdecode import __version__
from rtdecode.cli.common import (
    EXIT_OK,
    PACKAGE_PARENT,
    UsageError,
    _parse_channel_map,
    port_open_error,
)

logger = logging.getLogger("rtdecode")

_DEMO_FIRST_STATE_S = 8.0


# Commands -------------------------------------------------------------------------------------
def _hysteresis_override(args: argparse.Namespace, default):
    """The model's hysteresis with any CLI flags applied, or None when no flag is given."""
    from dataclasses import replace

    from rtdecode.config import EventHysteresis

    if isinstance(default, EventHysteresis):
        names = dict(
            on_threshold="on_threshold",
            off_threshold="off_threshold",
            on_dwell="on_dwell_s",
            off_dwell="off_dwell_s",
        )
        wrong = [
            f"--{k.replace('_', '-')}" for k in ("margin", "dwell") if getattr(args, k) is not None
        ]
    else:
        names = dict(margin="margin", dwell="dwell_s")
        wrong = [
            f"--{k.replace('_', '-')}"
            for k in ("on_threshold", "off_threshold", "on_dwell", "off_dwell")
            if getattr(args, k) is not None
        ]
    if wrong:
        raise UsageError(
            f"{', '.join(wrong)} do(es) not apply to this model's {default.kind} task; "
            f"use {', '.join('--' + k.replace('_', '-') for k in names)}"
        )
    changes = {
        field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg) is not None
    }
    if not changes:
        return None
    try:
        return replace(default, **changes)
    except ValueError as exc:
        raise UsageError(f"hysteresis flags: {exc}") from None


def _print_status(status) -> None:
    line = status.line()
    if sys.stdout.isatty():
        sys.stdout.write("\r" + line[: os.get_terminal_size().columns - 1])
    else:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _open_decoder(
    model_path: str,
    selector,
    *,
    resolve_timeout: float,
    log_path: str | None,
    hysteresis_args: argparse.Namespace | None,
    log_rotate_bytes: int | None = None,
    log_fsync_s: float | None = None,
    log_rotate_s: float | None = None,
    stim_protocol=None,
    channel_map=None,
    warn_unlabelled: bool = True,
):
    """Load the model, find and check the stream, create the outputs (and the stimulation stage,
    its device open): a ready Decoder."""
    from rtdecode.acquisition.acquisition import LslAcquisition
    from rtdecode.acquisition.inlet import StreamMismatchError, StreamNotFoundError, resolve_stream
    from rtdecode.common.channel_map import ChannelMapError, route_channels
    from rtdecode.decoding.decoder import Decoder
    from rtdecode.decoding.model import ModelError, OnnxModel
    from rtdecode.outputs.decisions import DecisionOutputs

    try:
        model = OnnxModel(model_path)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    if stim_protocol is not None:
        from rtdecode.stimulation.rules import RulesError

        try:
            stim_protocol.check_states(model.contract.classes, model.contract.task)
        except RulesError as exc:
            raise UsageError(str(exc)) from None
    hysteresis = None
    if hysteresis_args is not None:
        hysteresis = _hysteresis_override(hysteresis_args, model.contract.hysteresis)
    try:
        info = resolve_stream(selector, timeout_s=resolve_timeout)
        acquisition = LslAcquisition(info)  # its inlet brings the header's channel labels
    except (StreamNotFoundError, StreamMismatchError) as exc:
        raise UsageError(str(exc)) from None
    try:
        stream_channels = route_channels(
            model.contract.labels,
            acquisition.channel_labels,
            channel_map,
            model=f"model {Path(model_path).name}",
            source=f"stream {acquisition.name!r}",
            warn_unlabelled=warn_unlabelled,
        )
        model.check_stream(
            n_channels=len(stream_channels) if stream_channels else acquisition.n_channels,
            fs_hz=acquisition.fs_hz,
            stream_name=acquisition.name,
        )
    except (ChannelMapError, ModelError) as exc:
        acquisition.close()
        raise UsageError(str(exc)) from None
    # the features' channels: the stream's, or the model's picked out of it
    picked = stream_channels or range(acquisition.n_channels)
    feature_channels = [acquisition.channel_labels[i] for i in picked]
    if stim_protocol is not None:
        try:
            stim_protocol.check_channels(feature_channels)
        except RulesError as exc:
            acquisition.close()
            raise UsageError(str(exc)) from None
    permuted = stream_channels is not None and len(stream_channels) == acquisition.n_channels
    if log_path is not None and not Path(log_path).resolve().parent.is_dir():
        raise UsageError(
            f"--log {log_path}: directory {Path(log_path).resolve().parent} does not exist"
        )
    outputs = DecisionOutputs(
        model.contract.classes,
        input_source_id=acquisition.source_id,
        input_name=acquisition.name,
        hop_s=model.contract.features.hop_s,
        log_path=log_path,
        model_name=Path(model_path).name,
        log_rotate_bytes=log_rotate_bytes,
        log_fsync_s=log_fsync_s,
        log_rotate_s=log_rotate_s,
    )
    from rtdecode.outputs.telemetry import DecoderTelemetry

    telemetry = DecoderTelemetry(
        model.contract,
        input_source_id=acquisition.source_id,
        input_name=acquisition.name,
        channel_labels=feature_channels,
        channel_order=stream_channels if permuted else None,
    )
    stimulator = None
    if stim_protocol is not None:
        stimulator = _start_stimulator(stim_protocol, model, acquisition, outputs, feature_channels)
    return Decoder(
        model,
        acquisition,
        outputs,
        hysteresis=hysteresis,
        telemetry=telemetry,
        stimulator=stimulator,
        stream_channels=stream_channels,
    )


def _start_stimulator(protocol, model, acquisition, outputs, feature_channels):
    """The stimulation stage with its device open; a port that cannot be opened is exit 2."""
    from rtdecode.stimulation.stimulator import Stimulator

    config = model.stream_features(acquisition.fs_hz)
    stimulator = Stimulator(
        protocol,
        outputs,
        fs_hz=acquisition.fs_hz,
        window_samples=config.window_samples,
        input_source_id=acquisition.source_id,
        features=config,
        channel_labels=feature_channels,
    )
    try:
        stimulator.start()
    except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException, OSError, ValueError
        stimulator.close()
        outputs.close()
        acquisition.close()
        raise port_open_error(
            protocol.output.port, exc, ", or leave the port out for a dry run"
        ) from None
    rules = ", ".join(f"{r.name} ({r.when})" for r in protocol.rules)
    where = protocol.output.port or "no device (dry run: log and rtdecode-stim markers only)"
    print(
        f"stimulation: {rules} -> {where}; {'armed' if protocol.armed else 'DISARMED'}", flush=True
    )
    if outputs.log_path is None:
        logger.warning("stimulation without --log: the triggers are not recorded in a file")
    return stimulator


def _stim_protocol(args: argparse.Namespace):
    """The protocol from --stim or the --trigger-* flags (None without either)."""
    from rtdecode.stimulation.rules import RulesError, load_protocol, protocol_from_flags

    flags = [
        f
        for f in ("trigger_port", "trigger_phase", "pulse_ms", "refractory_s")
        if getattr(args, f) is not None
    ]
    try:
        if args.stim is not None:
            if args.trigger_on or flags:
                raise UsageError(
                    "--stim takes the rules from the file: leave out --trigger-* flags"
                )
            return load_protocol(args.stim)
        if args.trigger_on is None:
            if flags:
                raise UsageError(
                    f"--{flags[0].replace('_', '-')} needs --trigger-on STATE (or --stim RULES.toml)"
                )
            return None
        return protocol_from_flags(
            trigger_on=args.trigger_on,
            port=args.trigger_port,
            pulse_ms=10.0 if args.pulse_ms is None else args.pulse_ms,
            refractory_s=0.0 if args.refractory_s is None else args.refractory_s,
            phase=args.trigger_phase,
        )
    except RulesError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from rtdecode.acquisition.inlet import StreamSelector

    try:
        selector = StreamSelector(
            name=args.source, type=args.source_type, source_id=args.source_id, host=args.host
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.realtime is not None:
        # before any thread starts: liblsl's and the decoder's inherit the policy
        from rtdecode.common.threads import RealtimeError, run_at_realtime_priority

        try:
            run_at_realtime_priority(args.realtime)
        except RealtimeError as exc:
            raise UsageError(str(exc)) from None
    decoder = _open_decoder(
        args.model,
        selector,
        resolve_timeout=args.resolve_timeout,
        log_path=args.log,
        hysteresis_args=args,
        log_rotate_bytes=int(args.log_rotate_mb * 2**20) if args.log_rotate_mb else None,
        log_fsync_s=args.log_fsync_s,
        log_rotate_s=args.log_rotate_hours * 3600 if args.log_rotate_hours else None,
        stim_protocol=_stim_protocol(args),
        channel_map=_parse_channel_map(args.channel_map),
    )
    decoder.stall_s = args.stall_s
    decoder.max_age_s = args.max_age_s
    print(
        f"rtdecode {__version__}: decoding {decoder.acquisition.name!r} "
        f"({decoder.acquisition.n_channels} ch @ {decoder.acquisition.fs_hz:g} Hz) with "
        f"{Path(args.model).name}; outlets rtdecode-scores / rtdecode-state"
        + (f"; real-time priority {args.realtime}" if args.realtime is not None else ""),
        flush=True,
    )
    monitor = _want_monitor(args, default=False)
    with decoder:
        try:
            if monitor:
                _wait_with_monitor(
                    decoder, args, status_every_s=args.status_every or None, on_status=_print_status
                )
            else:
                decoder.wait(
                    args.duration, status_every_s=args.status_every or None, on_status=_print_status
                )
        except KeyboardInterrupt:
            print("\nstopped (Ctrl-C)", flush=True)
    status = decoder.status()
    latency = (
        f"latency p50 {status.latency_p50_ms:.2f} ms p99 {status.latency_p99_ms:.2f} ms"
        if status.decisions
        else "no latency (no decision)"
    )
    print(
        f"\n{status.decisions} decisions; {latency}; gaps {status.gaps}, "
        f"lost {status.missing_samples}, overruns {status.overruns}",
        flush=True,
    )
    return EXIT_OK


def _display_available() -> bool:
    return bool(
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or sys.platform in ("win32", "darwin")
    )


def _want_monitor(args: argparse.Namespace, *, default: bool) -> bool:
    """Whether to open the monitor: --monitor or --screenshot ask for it, --headless refuses."""
    asked = bool(getattr(args, "monitor", False) or args.screenshot)
    if args.headless and asked:
        raise UsageError("--headless cannot be combined with --monitor or --screenshot")
    if args.screenshot and args.duration is None:
        raise UsageError("--screenshot is taken when --duration ends: give --duration")
    if args.headless:
        return False
    if asked or default:
        # looked up, not imported: Qt is imported only by the monitor's own process
        if not all(importlib.util.find_spec(m) for m in ("pyqtgraph", "PySide6")):
            if asked:
                raise UsageError("the monitor needs the gui extra: pip install 'rtdecode[gui]'")
            return False
        return True
    return False


def _wait_with_monitor(decoder, args, *, status_every_s, on_status) -> None:
    """Decode here while the monitor runs as its own process over the decoder's LSL outlets,
    so drawing never competes with decoding for this interpreter's lock."""
    cmd = [
        sys.executable,
        "-m",
        "rtdecode",
        "monitor",
        "--source-id",
        decoder.acquisition.source_id,
        "--resolve-timeout",
        "20",
    ]
    if args.duration is not None:
        cmd += ["--duration", str(args.duration)]
    if args.screenshot:
        cmd += ["--screenshot", str(Path(args.screenshot).resolve())]
    monitor = subprocess.Popen(cmd, cwd=PACKAGE_PARENT)
    finished = False
    try:
        decoder.wait(args.duration, status_every_s=status_every_s, on_status=on_status)
        finished = args.duration is not None
    finally:
        # a monitor with a --duration closes by itself (after its screenshot); otherwise the
        # decoder failed, stalled or was stopped, and the monitor has nothing more to show
        try:
            if not finished:
                monitor.terminate()
            monitor.wait(timeout=30)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            monitor.kill()
    if args.screenshot:
        if monitor.returncode == 0 and Path(args.screenshot).is_file():
            print(f"monitor screenshot saved to {args.screenshot}", flush=True)
        else:
            print(
                f"the monitor exited with code {monitor.returncode}; no screenshot",
                file=sys.stderr,
                flush=True,
            )


def cmd_monitor(args: argparse.Namespace) -> int:
    from rtdecode.acquisition.inlet import StreamNotFoundError, StreamSelector

    try:
        from rtdecode.monitor.feeds import LslFeed, TruthInlet
        from rtdecode.monitor.window import MonitorConfig, run_monitor
    except ImportError as exc:
        raise UsageError(
            f"the monitor needs the gui extra ({exc}): pip install 'rtdecode[gui]'"
        ) from None
    if args.screenshot and args.duration is None:
        raise UsageError("--screenshot is taken when --duration ends: give --duration")
    from rtdecode.common.threads import leave_realtime_priority, run_below_other_threads

    leave_realtime_priority()  # started by run --realtime: never at the decoder's priority
    # Drawing yields to decoding: on a small machine the decoder's threads must win the CPU
    # whenever they wake (threads started later, liblsl's and Qt's, inherit it)
    if args.nice:
        run_below_other_threads(args.nice)
    try:
        selector = StreamSelector(name=args.source, type=args.source_type, source_id=args.source_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        feed = LslFeed(selector, resolve_timeout_s=args.resolve_timeout, log_path=args.log)
    except StreamNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    try:
        run_monitor(
            feed,
            duration_s=args.duration,
            screenshot=args.screenshot,
            truth=TruthInlet(feed.name, timeout_s=1.0),
            config=MonitorConfig(channels_per_page=args.channels_per_page, fps=args.fps),
        )
    finally:
        feed.close()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from rtdecode.acquisition.inlet import StreamSelector
    from rtdecode.decoding.model import ModelError, OnnxModel
    from rtdecode.models import bundled_model_path
    from rtdecode.monitor.feeds import TruthInlet

    model_path = bundled_model_path(args.scenario)
    try:
        contract = OnnxModel(model_path).contract
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    name = f"rtdecode-demo-{os.getpid()}"
    sim_cmd = [
        sys.executable,
        "-m",
        "rtdecode",
        "simulate",
        "--scenario",
        args.scenario,
        "--channels",
        str(contract.n_channels),
        "--rate",
        str(contract.features.fs_hz),
        "--name",
        name,
        "--seed",
        str(args.seed),
        "--duration",
        str(args.duration + 30),
        # start the clock when the decoder connects, so the truth listener (connected first)
        # also gets the initial state
        "--wait-for-consumer",
        "30",
        # a first change a newcomer sees within the first 20 s, then the usual random schedule
        "--first-state-s",
        str(_DEMO_FIRST_STATE_S),
    ]
    protocol = board = None
    if args.trigger_on is not None:
        from rtdecode.stimulation.emulator import PtyTriggerDevice
        from rtdecode.stimulation.rules import RulesError, protocol_from_flags

        board = PtyTriggerDevice()
        try:
            protocol = protocol_from_flags(
                trigger_on=args.trigger_on,
                port=board.port,
                pulse_ms=args.pulse_ms,
                refractory_s=0.0,
            )
            protocol.check_states(contract.classes, contract.task)
        except RulesError as exc:
            board.close()
            raise UsageError(str(exc)) from None
    print(
        f"demo: simulating {args.scenario} ({contract.n_channels} ch @ "
        f"{contract.features.fs_hz:g} Hz) as {name!r}; decoding with {model_path.name} for "
        f"{args.duration:g} s (--duration; Ctrl-C stops it). The first state change comes "
        f"after {_DEMO_FIRST_STATE_S:g} s.",
        flush=True,
    )
    sim = subprocess.Popen(
        sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=PACKAGE_PARENT
    )
    try:
        # connected before the decoder, so it gets the initial state (see --wait-for-consumer)
        truth = TruthInlet(name, timeout_s=10.0)
        decoder = _open_decoder(
            str(model_path),
            StreamSelector(name=name),
            resolve_timeout=20.0,
            log_path=args.log,
            hysteresis_args=None,
            warn_unlabelled=False,  # the simulator and the bundled model: the same channels
            stim_protocol=protocol,
        )
        agree = total = 0
        last_state = None
        pulses_seen = 0

        def on_status(status) -> None:
            nonlocal agree, total, last_state, pulses_seen
            if board is not None:
                for r in board.received[pulses_seen:]:
                    pulses_seen += 1
                    if r.command.command == b"P":
                        print(
                            f"[{time.strftime('%H:%M:%S')}] trigger board: pulse "
                            f"{r.command.duration_ms} ms on output {r.command.channel}",
                            flush=True,
                        )
            if status.state is None:
                return
            t_end = status.last_timestamp
            true_state = truth.state_at(t_end - contract.features.window_s / 2) if t_end else None
            if status.state != last_state:
                print(
                    f"[{time.strftime('%H:%M:%S')}] decoded {status.state:<8} truth "
                    f"{true_state or '-':<8} (p={max(status.probabilities):.2f}, latency p99 "
                    f"{status.latency_p99_ms:.2f} ms)",
                    flush=True,
                )
                last_state = status.state
            if true_state is not None:
                total += 1
                agree += status.state == true_state

        monitor = _want_monitor(args, default=_display_available())
        with decoder:
            try:
                if monitor:
                    _wait_with_monitor(decoder, args, status_every_s=0.1, on_status=on_status)
                else:
                    decoder.wait(args.duration, status_every_s=0.1, on_status=on_status)
            except KeyboardInterrupt:
                print("stopped (Ctrl-C)", flush=True)
            status = decoder.status()
        truth.close()
        print(
            f"demo done: {status.decisions} decisions, state agreed with the simulator's truth "
            f"{100.0 * agree / max(total, 1):.1f}% of the time; latency p50 "
            f"{status.latency_p50_ms:.2f} ms p99 {status.latency_p99_ms:.2f} ms; lost samples "
            f"{status.missing_samples}, overruns {status.overruns}",
            flush=True,
        )
        if board is not None:
            pulses = sum(r.command.command == b"P" for r in board.received)
            print(
                f"stimulation: {status.stim.get('sent', 0)} trigger(s) on entering "
                f"{args.trigger_on}, {pulses} pulse(s) at the emulated board"
                + ("" if args.log else " (--log PATH keeps each with its latency)"),
                flush=True,
            )
    finally:
        if board is not None:
            board.close()
        sim.terminate()
        try:
            _, err = sim.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            sim.kill()
            err = ""
        if sim.returncode not in (0, -signal.SIGTERM) and err:
            print(f"simulator said:\n{err[-2000:]}", file=sys.stderr)
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from rtdecode.simulator.faults import ChannelFault
    from rtdecode.simulator.generator import SimulatorConfig
    from rtdecode.simulator.source import run_lsl_source

    try:
        config = SimulatorConfig(
            scenario=args.scenario,
            n_channels=args.channels,
            fs_hz=args.rate,
            seed=args.seed,
            first_state_s=args.first_state_s,
            phase_rhythms=args.phase_rhythms,
        )
        faults = tuple(ChannelFault.parse(text) for text in args.fault)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"simulating {args.scenario}: {args.channels} ch @ {args.rate:g} Hz as {args.name!r} "
        f"(truth markers on {args.name + '-truth'!r})",
        flush=True,
    )
    try:
        run_lsl_source(
            config,
            args.name,
            duration_s=args.duration,
            chunk_samples=args.chunk,
            wait_for_consumers_s=args.wait_for_consumer,
            faults=faults,
        )
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from rtdecode.decoding.model import ModelError, OnnxModel, describe

    try:
        model = OnnxModel(args.model)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    print(describe(model.contract, args.model))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from rtdecode.decoding.model import ModelError, OnnxModel
    from rtdecode.models import bundled_model_names, bundled_model_path

    print("bundled models (use the name as --model NAME, or the path):")
    for name in bundled_model_names():
        path = bundled_model_path(name)
        try:
            c = OnnxModel(path).contract
        except ModelError as exc:
            print(f"  {name:<9} {path}  (unreadable: {exc})")
            continue
        print(
            f"  {name:<9} {c.task}: {', '.join(c.classes)}; {c.n_channels} ch at "
            f"{c.features.fs_hz:g} Hz\n  {'':<9} {path}"
        )
    return EXIT_OK
