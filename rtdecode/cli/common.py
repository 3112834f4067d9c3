"""What every command shares: exit codes, the usage error, argument types.

Exit codes: 0 done (``--duration`` reached, or stopped with Ctrl-C), 2 bad input (model, stream,
arguments), 1 a failure while running.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger("rtdecode")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

# `python -m rtdecode` puts the working directory first on sys.path: started from a source
# checkout it would import the uncompiled source folder. Child processes start here instead.

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


# Argument parsing -----------------------------------------------------------------------------
def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value
