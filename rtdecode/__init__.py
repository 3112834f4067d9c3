"""rtdecode: real-time decoding of electrophysiology streams over Lab Streaming Layer.

Pipeline (one module per stage, data flows one way): ``inlet`` (LSL -> Cython ring buffer) ->
``features`` (decimated sliding-window band power) -> ``model`` (ONNX via onnxruntime) ->
``smoother`` (hysteresis) -> ``outputs`` (LSL outlets, decision log). ``decoder`` runs the
stages on their threads; ``simulator`` is a synthetic LFP source; ``training`` builds models.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rtdecode")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
