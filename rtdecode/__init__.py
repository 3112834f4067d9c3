"""rtdecode: real-time decoding of electrophysiology streams over Lab Streaming Layer.

One subpackage per pipeline stage; data flow one way:
``acquisition`` (LSL inlet -> Cython ring buffer) -> ``features`` (decimated sliding-window band
power, channel quality) -> ``decoding`` (ONNX model, hysteresis, the decode thread) ->
``outputs`` (LSL outlets, decision log). ``offline`` reads recordings and evaluates through the
same code, ``training`` builds models, ``simulator`` is a synthetic LFP source, ``monitor``
observes a running decoder, ``cli`` is the ``rtdecode`` command.
"""

import os
from importlib.metadata import PackageNotFoundError, version

# onnxruntime (1.32 on Linux) records usage events in ~/.cache/Microsoft/DeveloperTools and
# tries to send them to Microsoft, from threads of the decoding process: SQLite writes and
# DNS lookups beside the real-time threads, and data leaving a recording rig that its lab did
# not ask to send. It reads this variable once, when it is first imported (so before any
# rtdecode module imports it); set ORT_DISABLE_TELEMETRY=0 in the environment to keep them.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

try:
    __version__ = version("rtdecode")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
