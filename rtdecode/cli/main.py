"""Command line: ``rtdecode run | demo | simulate | monitor | info | models | train | evaluate |
replay | export``.

Parses the arguments, dispatches to :mod:`rtdecode.cli.live` or :mod:`rtdecode.cli.offline` and
turns errors into exit codes (:mod:`rtdecode.cli.common`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from rtdecode import __version__
from rtdecode.cli.common import (
    CHANNEL_MAP_HELP,
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    Interrupted,
    Terminated,
    UsageError,
    _fraction,
    _model_path,
    _non_empty,
    _non_negative_float,
    _non_negative_int,
    _positive_float,
    _positive_int,
    quiet_liblsl,
)
from rtdecode.cli.device import add_device_command, cmd_device
from rtdecode.cli.live import (
    cmd_demo,
    cmd_info,
    cmd_models,
    cmd_monitor,
    cmd_run,
    cmd_simulate,
)
from rtdecode.cli.offline import OFFLINE_COMMANDS, add_offline_commands

logger = logging.getLogger("rtdecode")


def _add_hysteresis_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hysteresis (defaults come from the model)")
    g.add_argument("--on-threshold", type=_fraction, help="event tasks: enter when p >= this")
    g.add_argument("--off-threshold", type=_fraction, help="event tasks: leave when p <= this")
    g.add_argument(
        "--on-dwell", type=_non_negative_float, metavar="S", help="event tasks: seconds above on"
    )
    g.add_argument(
        "--off-dwell", type=_non_negative_float, metavar="S", help="event tasks: seconds below off"
    )
    g.add_argument("--margin", type=_fraction, help="state tasks: lead needed to switch state")
    g.add_argument(
        "--dwell", type=_non_negative_float, metavar="S", help="state tasks: seconds the lead holds"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtdecode",
        description="Real-time decoder for electrophysiology over Lab Streaming Layer.",
    )
    parser.add_argument("--version", action="version", version=f"rtdecode {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="decode a live LSL stream with a model")
    run.add_argument(
        "--model",
        type=_model_path,
        required=True,
        help="ONNX model with an rtdecode contract, or a bundled model's name (seizure, sleep)",
    )
    src = run.add_argument_group(
        "input stream (at least one of name, type, source_id; every one given must match, and "
        "run refuses when several streams do)"
    )
    src.add_argument("--source", type=_non_empty, metavar="NAME", help="input stream name")
    src.add_argument(
        "--source-type", type=_non_empty, metavar="TYPE", help="input stream type (e.g. EEG)"
    )
    src.add_argument("--source-id", type=_non_empty, metavar="ID", help="input stream source_id")
    src.add_argument(
        "--host", type=_non_empty, metavar="HOST", help="the host name of the source's machine"
    )
    run.add_argument(
        "--resolve-timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="wait this long for the input stream to appear (default 10)",
    )
    run.add_argument(
        "--channel-map", metavar="MAP", help=CHANNEL_MAP_HELP + " (docs/failure-policy.md)"
    )
    run.add_argument("--headless", action="store_true", help="no monitor window (status line only)")
    run.add_argument("--monitor", action="store_true", help="open the operator monitor window")
    run.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a PNG of the monitor when --duration ends (works offscreen)",
    )
    run.add_argument(
        "--log", type=_non_empty, metavar="PATH", help="append one JSON line per decision here"
    )
    run.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    run.add_argument(
        "--log-rotate-mb",
        type=_positive_float,
        metavar="MB",
        help="start a new log file (the full one renamed with the UTC time) at MB",
    )
    run.add_argument(
        "--log-rotate-hours",
        type=_non_negative_float,
        default=24.0,
        metavar="H",
        help="also start a new log file at every H hours of UTC time (default 24: a file per "
        "UTC day; 0: never)",
    )
    run.add_argument(
        "--log-fsync-s",
        type=_positive_float,
        metavar="S",
        help="also fsync the log at most every S seconds (power-cut safety)",
    )
    run.add_argument(
        "--realtime",
        type=int,
        nargs="?",
        const=50,
        default=None,
        metavar="PRIORITY",
        help="run the decoder's threads at real-time priority (Linux SCHED_FIFO, 1-99, "
        "default 50): they run as soon as they wake, ahead of the machine's other programs; "
        "needs root, CAP_SYS_NICE or an rtprio limit",
    )
    run.add_argument(
        "--max-age-s",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="a decision whose window ended more than S ago is logged as stale but "
        "not published (default 1; raise it for sources that push in chunks "
        "longer than that)",
    )
    run.add_argument(
        "--stall-s",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="no sample for S seconds publishes no_signal; a decode thread that makes no "
        "progress for S seconds (a hung log write) publishes decoder_stalled, and after "
        "max(10, 10 S) seconds run exits with code 1 (default 1)",
    )
    run.add_argument(
        "--status-every",
        type=_non_negative_float,
        default=1.0,
        metavar="S",
        help="status line period (default 1; 0 = no status line)",
    )
    _add_hysteresis_args(run)
    stim = run.add_argument_group("stimulation (see docs/closed-loop.md)")
    stim.add_argument(
        "--stim", metavar="RULES.toml", help="stimulation rules and their output (a TOML file)"
    )
    stim.add_argument(
        "--trigger-on",
        metavar="STATE",
        help="a pulse when the smoothed state becomes STATE (or KIND:STATE, KIND enter, exit, in, "
        "onset)",
    )
    stim.add_argument(
        "--trigger-port",
        metavar="PORT",
        help="the trigger device's serial port (firmware/); without it a dry run: triggers are "
        "logged and sent as rtdecode-stim markers only",
    )
    stim.add_argument(
        "--trigger-phase",
        metavar="CH:LO-HI:DEG[:MIN]",
        help="with --trigger-on STATE: while STATE holds, a pulse at phase DEG of the LO-HI Hz "
        "rhythm on channel CH at every cycle (CH001:6-9:0: theta peaks; channels joined by + "
        "are averaged, 'all' averages every one; 0 peak, 180 trough, -90 rise); MIN: no pulse "
        "while the rhythm's envelope is below it, input units (C3:0.5-2:0:37.5: up-states of "
        "slow waves as the AASM scores them, 75 uV peak to peak)",
    )
    stim.add_argument(
        "--pulse-ms", type=_positive_float, metavar="MS", help="pulse width (default 10 ms)"
    )
    stim.add_argument(
        "--refractory-s",
        type=_non_negative_float,
        metavar="S",
        help="no trigger sooner than S seconds after the previous one (default 0)",
    )

    demo = sub.add_parser("demo", help="simulator + decoder with a bundled model, in one command")
    demo.add_argument(
        "--scenario",
        choices=("sleep", "seizure"),
        default="seizure",
        help="what the simulator plays and which bundled model decodes it (default seizure)",
    )
    demo.add_argument(
        "--headless",
        action="store_true",
        help="no monitor window (the default when there is no display)",
    )
    demo.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a PNG of the monitor when --duration ends (works offscreen)",
    )
    demo.add_argument(
        "--duration",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="stop after S seconds (default 60)",
    )
    demo.add_argument(
        "--seed", type=_non_negative_int, default=1, help="the simulator's seed (default 1)"
    )
    demo.add_argument(
        "--log", type=_non_empty, metavar="PATH", help="append one JSON line per decision here"
    )
    demo.add_argument(
        "--trigger-on",
        type=_non_empty,
        metavar="STATE",
        help="a pulse each time the decoded state becomes STATE, to a trigger board emulated on "
        "a pseudo-terminal (the closed loop without hardware; docs/closed-loop.md)",
    )
    demo.add_argument(
        "--pulse-ms",
        type=_positive_float,
        default=10.0,
        metavar="MS",
        help="with --trigger-on: the pulse's width (default 10)",
    )

    sim = sub.add_parser(
        "simulate", help="stream synthetic LFP over LSL (with a NAME-truth stream)"
    )
    sim.add_argument(
        "--scenario",
        choices=("sleep", "seizure"),
        default="sleep",
        help="sleep (wake, nrem, rem) or seizure (normal, seizure) (default sleep)",
    )
    sim.add_argument(
        "--channels", type=_positive_int, default=64, help="channel count (default 64)"
    )
    sim.add_argument(
        "--rate",
        type=_positive_float,
        default=32000.0,
        metavar="HZ",
        help="sampling rate (default 32000)",
    )
    sim.add_argument(
        "--name",
        type=_non_empty,
        default="rtdecode-sim",
        help="LSL stream name (default rtdecode-sim; the truth markers go on NAME-truth)",
    )
    sim.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of signal and schedule (default 0)"
    )
    sim.add_argument(
        "--phase-rhythms",
        action="store_true",
        help="sleep: theta and slow oscillations of known phase (regenerated from --seed), for "
        "phase-targeted stimulation (docs/closed-loop.md)",
    )
    sim.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds (default: never)",
    )
    sim.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="CH:KIND[@START[-END]]",
        help="inject a bad channel: KIND nan, flat, rail or artefact, from START to "
        "END seconds (e.g. 3:nan@5-8); repeatable",
    )
    sim.add_argument(
        "--chunk",
        type=_positive_int,
        default=32,
        metavar="SAMPLES",
        help="samples per pushed chunk (default 32 = 1 ms at 32 kHz)",
    )
    sim.add_argument(
        "--first-state-s",
        type=_positive_float,
        metavar="S",
        help="the first state lasts S seconds (default: a random duration like the others)",
    )
    sim.add_argument(
        "--wait-for-consumer",
        type=_non_negative_float,
        default=0.0,
        metavar="S",
        help="hold the first sample until a consumer connects (up to S seconds)",
    )

    mon = sub.add_parser(
        "monitor",
        help="operator window over a running decoder (via LSL)",
        description="Open the operator monitor for a stream that `rtdecode run` "
        "decodes, from this or another machine on the network.",
    )
    msrc = mon.add_mutually_exclusive_group(required=True)
    msrc.add_argument(
        "--source", type=_non_empty, metavar="NAME", help="the decoded input stream's name"
    )
    msrc.add_argument(
        "--source-type", type=_non_empty, metavar="TYPE", help="the decoded input stream's type"
    )
    msrc.add_argument(
        "--source-id", type=_non_empty, metavar="ID", help="the decoded input stream's source_id"
    )
    mon.add_argument(
        "--resolve-timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="wait this long for the decoder's outlets (default 10)",
    )
    mon.add_argument("--duration", type=_positive_float, metavar="S", help="close after S seconds")
    mon.add_argument("--screenshot", metavar="PNG", help="save a PNG when --duration ends")
    mon.add_argument("--log", metavar="PATH", help="append alarm acknowledgements here")
    mon.add_argument(
        "--channels-per-page",
        type=_positive_int,
        default=16,
        help="traces shown at once (default 16)",
    )
    mon.add_argument(
        "--fps", type=_positive_float, default=25.0, help="redraws per second (default 25)"
    )
    mon.add_argument(
        "--nice",
        type=_non_negative_int,
        default=10,
        help="lower the monitor's CPU priority by this much (default 10, 0 = no)",
    )

    info = sub.add_parser("info", help="print a model's contract")
    info.add_argument(
        "model",
        type=_model_path,
        help="a model file with an rtdecode contract, or a bundled model's name (seizure, sleep)",
    )

    sub.add_parser("models", help="list the bundled models (usable by name: --model seizure)")
    add_offline_commands(sub)
    add_device_command(sub)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise Terminated


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
    "info": cmd_info,
    "models": cmd_models,
    "monitor": cmd_monitor,
    **OFFLINE_COMMANDS,
    "device": cmd_device,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if not args.verbose:
        quiet_liblsl()
    # SIGTERM (a supervisor stopping us) ends as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"rtdecode {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        print(f"rtdecode {args.command}: interrupted, {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # run, demo, replay...: a stop is their normal end
        return EXIT_OK
    except Exception as exc:  # one readable line; the traceback only with -v
        logger.debug("failure", exc_info=True)
        print(f"rtdecode {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
