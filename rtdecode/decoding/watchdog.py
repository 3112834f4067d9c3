"""A watchdog for the decode thread: it notices a thread that makes no progress.

The decode thread beats (a time stamp) at every turn of its loop, and waits at most 0.25 s for
samples, so it beats several times a second even when no sample comes. A thread that has not
beaten for ``stall_s`` is stuck: a log write hung on a network mount, a model that does not
return. The watchdog, on a thread of its own, then reports ``decoder_stalled`` on the state
outlet, the log, the status stream and stderr, and turns stimulation gates off; it reports the
recovery when the beats come back, and gives up after ``give_up_s`` (the owner's ``wait``
raises :class:`DecoderStalledError`, so ``rtdecode run`` exits non-zero and a supervisor can
restart it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pylsl

from rtdecode.streams import DECODER_STALLED

__all__ = ["DecodeWatchdog", "DecoderStalledError"]

logger = logging.getLogger("rtdecode")


class DecoderStalledError(RuntimeError):
    """The decode thread made no progress for longer than the watchdog allows."""


class DecodeWatchdog:
    """Watch a decode thread's beat from a thread of its own.

    Parameters
    ----------
    beat : callable
        Returns the ``time.monotonic()`` of the decode thread's last beat.
    backlog : callable
        Returns the samples that arrived and wait to be decoded (for the report).
    stream_name : str
        The decoded stream, for the messages.
    outputs : DecisionOutputs
        Gets the ``decoder_stalled`` marker and the log events.
    stall_s : float
        No beat for this long is a stall.
    give_up_s : float
        A stall that lasts this long is final (``gave_up``).
    on_stall : callable, optional
        Called with the LSL time of the stall when it is noticed (stimulation gates off).
    publish_status : callable, optional
        Called with the LSL time after each report, to push the status (the decode thread that
        usually pushes it is the one stuck).
    """

    def __init__(
        self,
        *,
        beat: Callable[[], float],
        backlog: Callable[[], int],
        stream_name: str,
        outputs,
        stall_s: float,
        give_up_s: float,
        on_stall: Callable[[float], None] | None = None,
        publish_status: Callable[[float], None] | None = None,
    ) -> None:
        self._beat = beat
        self._backlog = backlog
        self._stream_name = stream_name
        self._outputs = outputs
        self.stall_s = float(stall_s)
        self.give_up_s = float(give_up_s)
        self._on_stall = on_stall
        self._publish_status = publish_status
        self._period_s = min(0.25, self.stall_s / 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stalled = False
        self.gave_up = False
        self.stalls = 0  # stalls noticed so far
        self._stalled_since = 0.0

    def start(self) -> DecodeWatchdog:
        self._thread = threading.Thread(target=self._run, name="rtdecode-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self) -> None:
        last_wake = time.monotonic()
        while not self._stop.wait(self._period_s):
            now = time.monotonic()
            # a wake this late means the whole process (or VM) did not run: the decode thread
            # did not either, so its missing beats say nothing this round
            frozen = now - last_wake > self._period_s + 0.5 * self.stall_s
            last_wake = now
            if frozen:
                continue
            try:
                self._check(now)
            except Exception:  # noqa: BLE001 - a report that fails must not end the watching
                logger.exception("the decode watchdog's report failed")

    def _check(self, now: float) -> None:
        since_beat = now - self._beat()
        if not self.stalled and since_beat > self.stall_s:
            self.stalled = True
            self.stalls += 1
            self._stalled_since = now - since_beat
            t = pylsl.local_clock()
            waiting = int(self._backlog())
            logger.error(
                "the decode thread has made no progress for %.1f s while %d samples of %r wait "
                "(a log write hung on a network mount? a model that does not return?): "
                "decoder_stalled; stimulation gates off",
                since_beat,
                waiting,
                self._stream_name,
            )
            if self._on_stall is not None:
                self._on_stall(t)
            self._outputs.publish_marker(DECODER_STALLED, t)
            self._outputs.log_event("decoder_stall", since_s=round(since_beat, 3), backlog=waiting)
            if self._publish_status is not None:
                self._publish_status(t)
        elif self.stalled and since_beat < self.stall_s:
            self.stalled = False
            lasted = now - self._stalled_since
            logger.warning("the decode thread made progress again after %.1f s", lasted)
            self._outputs.log_event("decoder_recovered", stalled_s=round(lasted, 3))
            if self._publish_status is not None:
                self._publish_status(pylsl.local_clock())
        elif self.stalled and now - self._stalled_since > self.give_up_s and not self.gave_up:
            self.gave_up = True
            logger.error(
                "the decode thread has been stuck for %.0f s: giving up", now - self._stalled_since
            )
            self._outputs.log_event(
                "decoder_gave_up", stalled_s=round(now - self._stalled_since, 3)
            )
            self._stop.set()
