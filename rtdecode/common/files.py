"""Files written whole or not at all: each is staged under a hidden name beside its target, and
the set is moved into place together (``os.replace``), with Ctrl-C and SIGTERM held meanwhile.

A model and its card are one result: a reader must never find the new card beside the old model,
nor half a model.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = ["staging_path", "commit_files", "discard_staged", "file_fingerprint"]

#: The signals that stop a command (rtdecode.cli.main turns SIGTERM into KeyboardInterrupt).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def staging_path(target: str | Path) -> Path:
    """A hidden temporary name beside ``target`` (the same folder, so moving it is atomic)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.partial")


def commit_files(staged: Mapping[Path, Path]) -> tuple[int, ...]:
    """Move every staged file onto its target, with SIGINT and SIGTERM held until all are moved.

    Parameters
    ----------
    staged : mapping of Path to Path
        ``{target: staged file}``; each staged file is in its target's folder.

    Returns
    -------
    tuple of int
        The signals that arrived while the files moved. They are not delivered again: the
        files are all in place by then, so the work they would have stopped is done; the caller
        decides what they mean.

    Notes
    -----
    Signals are held by Python-level handlers, so only when called from the main thread (the
    only one that receives Python signal handlers); from another thread nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        for target, path in staged.items():
            os.replace(path, target)
        return ()
    held: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in _STOP_SIGNALS
    }
    try:
        for target, path in staged.items():
            os.replace(path, target)
    finally:
        for s, handler in previous.items():
            # None: a handler installed outside Python, which Python cannot put back
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
    return tuple(held)


def discard_staged(staged: Mapping[Path, Path]) -> None:
    """Remove the staged files that are still there (after a failure or an interrupt)."""
    for path in staged.values():
        Path(path).unlink(missing_ok=True)


def file_fingerprint(path: str | Path, *, edge_bytes: int = 1 << 20) -> str | None:
    """A short fingerprint of a file's content: SHA-256 of its size, first and last MiB.

    Tells the same recording under another path or name (a copy) from another recording,
    without reading a file of many GB whole. A folder (a rig's session: one file per channel)
    is fingerprinted by its files' relative paths and fingerprints (first and last 64 kiB
    each). None when the file cannot be read.
    """
    digest = hashlib.sha256()
    folder = Path(path)
    if folder.is_dir():
        try:
            files = sorted(p for p in folder.rglob("*") if p.is_file())
        except OSError:
            return None
        for f in files:
            digest.update(f.relative_to(folder).as_posix().encode())
            digest.update((file_fingerprint(f, edge_bytes=64 << 10) or "unreadable").encode())
        return digest.hexdigest()[:32]
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(str(size).encode())
            digest.update(f.read(edge_bytes))
            if size > edge_bytes:
                f.seek(max(edge_bytes, size - edge_bytes))
                digest.update(f.read(edge_bytes))
    except OSError:
        return None
    return digest.hexdigest()[:32]
