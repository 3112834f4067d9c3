"""Append one benchmark run to ``benchmarks/results/<benchmark>.jsonl``, the history of runs.

Each benchmark's ``--record`` calls :func:`record` once per run. A record is one JSON object on
one line::

    {"date": "2026-12-01 09:14", "commit": "e689aba", "dirty": false,
     "command": "python benchmarks/bench_decoder.py --duration 300",
     "machine": {"cpu": "AMD EPYC", "cores": 2, ...}, "setup": {...}, "figures": {...}}

``date`` is UTC. ``commit`` is ``git rev-parse --short HEAD`` (None outside a git checkout) and
``dirty`` says whether tracked files differed from it. Figures carry their unit in their key
(``cpu_cores``, ``latency_p99_ms``); non-finite numbers are written as null. The current figure of
each benchmark is in ``benchmarks/RESULTS.md``, updated by hand from the record of a run worth
quoting.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "command_line", "machine_info", "record", "shared_data"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_REPO = RESULTS_DIR.parent.parent


def shared_data(flag: Path | None) -> Path:
    """The shared real recordings: ``flag`` (a benchmark's ``--data``), else ``$RTDECODE_DATA``,
    else ``shared/data`` beside the checkout. Exits 2 with a message when the folder is absent:
    a benchmark that was asked for real data never reports without it."""
    path = Path(flag or os.environ.get("RTDECODE_DATA") or _REPO.parent / "shared" / "data")
    if not path.is_dir():
        print(
            f"{Path(sys.argv[0]).name}: the shared recordings are not at {path}: give --data DIR "
            "or set RTDECODE_DATA (or --no-real-data to leave them out)",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


def command_line() -> str:
    """The running benchmark's command as typed from the repository root, without ``--record``."""
    args = [a for a in sys.argv[1:] if a != "--record"]
    return shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *args])


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine a run measured: host, CPU model, cores, memory, OS, Python, pylsl/liblsl."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30)
    except ImportError:
        pass
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    try:
        import pylsl

        info["pylsl"] = pylsl.__version__
        info["liblsl"] = str(pylsl.library_version())
    except Exception:  # no pylsl, or no liblsl beside it: the record goes on without them
        pass
    return info


def _clean(value: Any) -> Any:
    """JSON-ready: numpy arrays and tuples to lists, numpy scalars to Python numbers, floats to 6
    significant digits, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if getattr(value, "ndim", 0) > 0:
        value = value.tolist()  # numpy array
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()  # numpy scalar
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def record(
    benchmark: str,
    figures: dict[str, Any],
    command: str | None = None,
    *,
    setup: dict[str, Any] | None = None,
    note: str = "",
) -> Path:
    """Append one run to ``benchmarks/results/<benchmark>.jsonl`` and return that path.

    Parameters
    ----------
    benchmark : str
        The file's stem, the script's name without ``.py`` (``"bench_decoder"``).
    figures : dict
        What the run measured, numbers with their unit in the key (``"latency_p99_ms"``);
        nested dicts and lists are fine.
    command : str, optional
        The command that produced the figures; default :func:`command_line`.
    setup : dict, optional
        The conditions that are not figures (channels, rate, durations, scenario).
    note : str
        One or two sentences a reader needs beside the numbers.
    """
    head = _git("rev-parse", "--short", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no") if head else None
    rec: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "commit": head or None,
        "dirty": bool(changes) if head else None,
        "command": command or command_line(),
        "machine": machine_info(),
        "setup": setup or {},
        "figures": figures,
    }
    if note:
        rec["note"] = note
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps(_clean(rec), allow_nan=False) + "\n")
    print(f"recorded in {path}", flush=True)
    return path
