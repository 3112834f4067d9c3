"""The JSON-lines decision log: one line per decision or event, flushed as written, rotated.

Opened for appending, so a restarted decoder adds to the previous run's log. For 24/7 runs it
rotates by size or by UTC period (renamed with the UTC time, nothing deleted) and can ``fsync``
at most every so often, so a flushed line survives a crash of the process and an fsync'd one a
power cut.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from rtdecode.common.jsonable import finite_or_none, json_default

__all__ = ["JsonLinesLog", "encode_line"]

logger = logging.getLogger("rtdecode")

_RETRY_S = 1.0  # a log that cannot be written is tried again this often
_WARN_EVERY_S = 30.0  # ... and reported on stderr this often while it fails
_CHECK_S = 1.0  # how often the file is checked for having been moved or deleted
_MAX_HELD = 100_000  # lines held in memory while the file cannot be written (tens of MB)
# A write holds the lock for microseconds; one that holds it longer is hung in the file (a network
# mount, a pipe nobody reads): other threads leave their line to it instead of hanging too.
_LOCK_WAIT_S = 0.05
_CLOSE_WAIT_S = 2.0

# One encoder for the process: json.dumps would build a new one per call because of `default`.
_ENCODER = json.JSONEncoder(allow_nan=False, default=json_default, separators=(",", ":"))


def encode_line(record: Mapping[str, Any]) -> str:
    """One record as strict JSON (non-finite numbers as null), without the newline."""
    try:
        return _ENCODER.encode(record)
    except ValueError:
        # A NaN latency or similar must not stop the decoder, and must not make the log
        # unreadable by strict JSON parsers: write it as null.
        return _ENCODER.encode(finite_or_none(record))


class JsonLinesLog:
    """An append-only JSON-lines file, safe to write from several threads.

    Parameters
    ----------
    path : str or Path
        The log file; its directory must exist.
    rotate_bytes : int, optional
        When the file reaches this size it is renamed with the UTC time
        (``decisions.20261123T140102Z.jsonl``) and a new one is started.
    rotate_s : float, optional
        Also start a new file at every multiple of this many seconds of UTC time (86400: a
        file per UTC day); a restarted decoder keeps appending to the current period's file.
    fsync_s : float, optional
        ``os.fsync`` the file at most this often.

    Notes
    -----
    A write never raises for the file's sake: a full disk, an I/O error, a permission change or
    a file moved away is reported (:attr:`error`, a warning every 30 s) and the lines are held
    in memory (up to 100,000, then the oldest are dropped and counted) until the file can be
    written again (tried every second; a moved or deleted file is started afresh at ``path``).
    A write that hangs in the file (a network mount, a pipe nobody reads) hangs only its own
    thread: the others' lines are held and written by that thread when its write returns, and
    ``close`` gives up on them after a few seconds (reported).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        rotate_bytes: int | None = None,
        rotate_s: float | None = None,
        fsync_s: float | None = None,
    ) -> None:
        if not isinstance(path, str | Path):
            raise TypeError(f"log_path must be a str or Path, got {type(path).__name__}")
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(
                f"log_path={str(path)!r}: directory {str(path.parent)!r} does not exist"
            )
        self.path = path
        self._rotate_bytes = int(rotate_bytes) if rotate_bytes else None
        self._rotate_s = float(rotate_s) if rotate_s else None
        self._fsync_s = float(fsync_s) if fsync_s else None
        self._next_fsync = 0.0
        self._lock = threading.Lock()
        self._held: deque[str] = deque()  # lines not written yet (the file failing)
        self.error: str | None = None  # why the file cannot be written now
        self.errors = 0  # failed attempts so far
        self.dropped = 0  # lines dropped because too many were held
        self._retry_at = 0.0
        self._last_warned = -_WARN_EVERY_S
        self._next_check = time.monotonic() + _CHECK_S
        self._closed = False
        # Append, never truncate: a restart must keep the previous run's decisions.
        # buffering=1 flushes at every newline, i.e. once per line written.
        self._file: IO[str] | None = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._bytes = path.stat().st_size
        # an existing file belongs to the period it was last written in
        self._period = (
            int(path.stat().st_mtime // self._rotate_s)
            if self._rotate_s and self._bytes
            else self._period_now()
        )

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a line; rotate first or after as configured.

        Raises only when the log was closed; a file that cannot be written is reported and its
        lines held (see the class notes).
        """
        line = encode_line(record) + "\n"
        if not self._lock.acquire(timeout=_LOCK_WAIT_S):
            # another thread is hung in a write: it writes this line after its own (deque
            # appends and its poplefts are thread-safe)
            if self._closed:
                raise RuntimeError(f"the log {str(self.path)!r} is closed")
            self._hold(line)
            return
        try:
            if self._closed:
                raise RuntimeError(f"the log {str(self.path)!r} is closed")
            self._hold(line)
            now = time.monotonic()
            if self.error is not None and now < self._retry_at:
                return  # failing: held until the next attempt
            try:
                self._write_held(now)
            except OSError as exc:
                self._failed(exc, now)
                return
            if self.error is not None:
                logger.warning("the log %s is written again (%s before)", self.path, self.error)
                self.error = None
        finally:
            self._lock.release()

    def _hold(self, line: str) -> None:
        if len(self._held) >= _MAX_HELD:
            self._held.popleft()
            self.dropped += 1
        self._held.append(line)

    def _write_held(self, now: float) -> None:
        """Write the held lines (under the lock); OSError when the file cannot take them."""
        if self._file is not None and now >= self._next_check:
            self._next_check = now + _CHECK_S
            try:
                moved = os.stat(self.path).st_ino != os.fstat(self._file.fileno()).st_ino
            except FileNotFoundError:
                moved = True
            if moved:  # moved or deleted: go on in a new file at the path
                self._file.close()
                self._file = None
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._bytes = self.path.stat().st_size
        while self._held:
            if self._rotate_s is not None and time.time() // self._rotate_s > self._period:
                # a new UTC period: the file is renamed with the start of its own period, and
                # this line opens the next one
                self._rotate(self._period * self._rotate_s)
            line = self._held[0]
            self._file.write(line)
            self._held.popleft()
            self._bytes += len(line)
            if self._rotate_bytes is not None and self._bytes >= self._rotate_bytes:
                self._rotate(time.time())
        if self._fsync_s is not None and now >= self._next_fsync:
            self._next_fsync = now + self._fsync_s
            os.fsync(self._file.fileno())

    def _failed(self, exc: OSError, now: float) -> None:
        """The file could not be written (under the lock): report, hold, try again later."""
        self.error = f"{type(exc).__name__}: {exc}"
        self.errors += 1
        self._retry_at = now + _RETRY_S
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        if now - self._last_warned >= _WARN_EVERY_S:
            self._last_warned = now
            logger.warning(
                "cannot write the log %s (%s): decoding goes on, %d line(s) held, retrying every "
                "%g s",
                self.path,
                self.error,
                len(self._held),
                _RETRY_S,
            )

    def _rotate(self, stamp_time: float) -> None:
        """Rename the file with the UTC time ``stamp_time`` and start a new one (under the
        lock)."""
        path = self.path
        file, self._file = self._file, None  # a failure below leaves no closed file in use
        file.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(stamp_time))
        target = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
        k = 1
        while target.exists():  # several rotations within one second
            target = path.with_name(f"{path.stem}.{stamp}-{k}{path.suffix}")
            k += 1
        os.replace(path, target)
        self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._bytes = 0
        self._period = self._period_now()

    def _period_now(self) -> int:
        return int(time.time() // self._rotate_s) if self._rotate_s else 0

    @property
    def held(self) -> int:
        """Lines waiting for the file to be writable."""
        return len(self._held)

    def close(self) -> None:
        """Write what is held if the file takes it, then close the file. Idempotent.

        A write hung in the file (see the class notes) is given a few seconds; then the file is
        left to it and the lines still held are reported lost.
        """
        if not self._lock.acquire(timeout=_CLOSE_WAIT_S):
            self._closed = True
            logger.error(
                "the log %s hangs in a write (a network mount or a pipe that is not read?): "
                "closed without it, %d line(s) not written",
                self.path,
                len(self._held),
            )
            return
        try:
            if self._closed:
                return
            self._closed = True
            if self._held:
                try:
                    self._write_held(time.monotonic())
                except OSError as exc:
                    logger.error(
                        "the log %s could not be written (%s): %d line(s) lost",
                        self.path,
                        exc,
                        len(self._held),
                    )
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as exc:
                    logger.error("closing the log %s failed: %s", self.path, exc)
                finally:
                    self._file = None
        finally:
            self._lock.release()
