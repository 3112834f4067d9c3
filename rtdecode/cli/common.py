"""What every command shares: exit codes, the usage error, argument types.

Exit codes: 0 done (``--duration`` reached, or stopped with Ctrl-C), 2 bad input (model, stream,
arguments), 1 a failure while running, 128 + the signal's number (130 Ctrl-C, 143 SIGTERM) for a
command stopped before its result was written (``train``, ``evaluate``).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import signal
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("rtdecode")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

# `python -m rtdecode` puts the working directory first on sys.path: started from a source
# checkout it would import the uncompiled source folder. Child processes start here instead.

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


def port_open_error(port: str, exc: BaseException, hint: str = "") -> UsageError:
    """The exit-2 message for a trigger port that cannot be opened (pyserial's reason kept)."""
    return UsageError(
        f"trigger port {port!r} cannot be opened ({exc}); check the device is plugged in and "
        f"the path (ls /dev/ttyACM* /dev/ttyUSB*){hint}"
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C (a supervisor stopping us)."""


class Interrupted(Exception):
    """A command stopped by Ctrl-C or SIGTERM before its result was written.

    Printed as "interrupted, <what>" with the exit code a shell gives a process killed by that
    signal (130, 143), so that ``rtdecode train ... && rtdecode evaluate ...`` stops.

    Parameters
    ----------
    what : str
        What the stop means for the result, e.g. "no model written".
    interrupt : KeyboardInterrupt
        The interrupt: a :class:`Terminated` for SIGTERM, else Ctrl-C.
    """

    def __init__(self, what: str, interrupt: KeyboardInterrupt) -> None:
        super().__init__(what)
        stop_signal = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
        self.exit_code = 128 + int(stop_signal)


# Argument parsing -----------------------------------------------------------------------------
# Types for ``add_argument(type=...)``: argparse prints "argument --flag: <message>" and exits 2,
# so a bad value is refused before anything starts. NaN compares false with everything and
# infinity is no duration, period or rate: every number must be finite.
def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argument type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty, got {text!r}")
    return text


def _model_path(text: str) -> Path:
    """A model file, or the name of a bundled model (``seizure``, ``sleep``: ``rtdecode
    models`` lists them)."""
    path = Path(text)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path  # a file: the loader says what is wrong with it
    from rtdecode.models import bundled_model_names, bundled_model_path

    if text in bundled_model_names():
        return bundled_model_path(text)
    raise argparse.ArgumentTypeError(
        f"no file {text!r}, and no bundled model of that name (bundled: "
        f"{', '.join(bundled_model_names())}; rtdecode models lists them)"
    )


# liblsl's console ------------------------------------------------------------------------------
# liblsl's own config files, in the order it looks for them (after LSLAPICFG).
_LSL_CONFIG_FILES = ("lsl_api.cfg", "~/lsl_api/lsl_api.cfg", "/etc/lsl_api/lsl_api.cfg")


def quiet_liblsl() -> None:
    """Hide liblsl's console lines (INFO at start, "Stream transmission broke off" when a peer
    exits): rtdecode reports what matters of them itself (gaps, no_signal, reconnections).

    Must run before any LSL call. The lab's own liblsl config (``LSLAPICFG`` or liblsl's
    config files) is kept, with only the log level added, and one that sets the level wins.
    """
    import configparser
    import os

    import pylsl

    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # liblsl's keys are case-sensitive
    paths = [os.environ.get("LSLAPICFG", ""), *_LSL_CONFIG_FILES]
    for path in filter(None, paths):
        path = os.path.expanduser(path)
        if os.path.isfile(path):
            try:
                config.read(path, encoding="utf-8")
            except (configparser.Error, OSError, UnicodeDecodeError):
                return  # a file we cannot read as liblsl does: let liblsl read it as it is
            break
    if config.has_option("log", "level"):
        return
    if not config.has_section("log"):
        config.add_section("log")
    config.set("log", "level", "-3")  # fatal only
    text = io.StringIO()
    config.write(text)
    pylsl.set_config_content(text.getvalue())


def _parse_channel_map(text: str | None):
    """``--channel-map``'s value as a ChannelMap (None when not given); exit 2 on a bad map."""
    if text is None:
        return None
    from rtdecode.common.channel_map import ChannelMap, ChannelMapError

    try:
        return ChannelMap.parse(text)
    except ChannelMapError as exc:
        raise UsageError(str(exc)) from None


CHANNEL_MAP_HELP = (
    "which stream channel feeds each model channel: MODEL=STREAM,... (channel labels), a "
    ".csv/.tsv/.json/.toml file of such pairs, or by-label (each model channel from the stream "
    "channel of the same label); the stream may have more channels than the model"
)
