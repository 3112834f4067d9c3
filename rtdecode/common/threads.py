"""Scheduling: threads that must never hold up the decoder's (the monitor's drawing, the
simulator's generation), and the decoder's own threads at real-time priority.

On a small machine shared with a decoder, any busy thread that runs when the decoder's threads
wake delays them (on a 2-core VM the monitor at normal priority put latency p99 at 7.2 ms).
"""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "RealtimeError",
    "leave_realtime_priority",
    "realtime_record",
    "run_at_realtime_priority",
    "run_below_other_threads",
]


def run_below_other_threads(fallback_nice: int) -> None:
    """Put the calling thread (and the threads it starts afterwards, which inherit it) below
    every normal thread of the machine.

    ``SCHED_IDLE`` (Linux; no privileges needed): a normal thread that wakes preempts it at
    once, and the kernel counts a CPU that runs only such threads as idle when it places a
    woken thread. Where that is not available, nice ``fallback_nice``; where neither is,
    nothing.

    Parameters
    ----------
    fallback_nice : int
        The nice value (0-19) to use without ``SCHED_IDLE``.
    """
    # pid 0 = the calling thread: Linux keeps the policy and nice value per thread
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, fallback_nice)
    except (OSError, AttributeError):
        pass


class RealtimeError(RuntimeError):
    """Real-time priority was asked for and cannot be had; the message says what to do."""


def run_at_realtime_priority(priority: int) -> None:
    """Put every thread of the process, and every thread started afterwards, at real-time
    priority (``SCHED_FIFO``, Linux).

    Called before the decoder opens its stream, so that the acquisition and decode threads,
    liblsl's receiving and sending threads and the trigger device's threads all inherit it:
    each then runs as soon as it wakes, ahead of every normal thread of the machine (the
    source's, another program's). All of them block between samples; the kernel's
    real-time throttling (``/proc/sys/kernel/sched_rt_runtime_us``, by default 95 % of each
    second) keeps the machine usable should one not. Child processes inherit it too: the
    monitor leaves it as it starts (:func:`leave_realtime_priority`). (``SCHED_RESET_ON_FORK``
    would also reset the threads: Linux applies it to every clone.)

    Parameters
    ----------
    priority : int
        1-99 (``chrt``'s scale; 50 is the kernel's threaded interrupt handlers').

    Raises
    ------
    RealtimeError
        Not Linux, or this user may not use real-time priority.
    """
    if not 1 <= priority <= 99:
        raise RealtimeError(f"--realtime priority must be 1-99, got {priority}")
    policy = getattr(os, "SCHED_FIFO", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        raise RealtimeError("--realtime needs Linux (SCHED_FIFO); leave it out here")
    try:
        # this thread and those libraries started as they were imported (OpenBLAS's workers)
        for task in _threads():
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.sched_setscheduler(task, policy, os.sched_param(priority))
    except PermissionError:
        raise RealtimeError(
            f"--realtime {priority}: this user may not use real-time priority. Run as root, "
            "give the user an rtprio limit (a line such as '@realtime - rtprio 90' in "
            "/etc/security/limits.conf, then log in again), or give the interpreter "
            "CAP_SYS_NICE (setcap cap_sys_nice+ep on the python binary); or leave out "
            "--realtime"
        ) from None
    except OSError as exc:
        raise RealtimeError(f"--realtime {priority}: {exc.strerror}") from None


def realtime_record() -> dict:
    """``{"realtime_priority": P}`` when the calling thread runs at ``SCHED_FIFO`` priority P
    (for the decision log's start line), else ``{}``."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_FIFO:
            return {"realtime_priority": os.sched_getparam(0).sched_priority}
    except (OSError, AttributeError):
        pass
    return {}


def leave_realtime_priority() -> None:
    """Back to normal scheduling if the calling thread inherited a real-time policy (the
    monitor started by ``rtdecode run --realtime --monitor``): drawing must never run ahead
    of the decoder."""
    try:
        if os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass


def _threads() -> list[int]:
    """Native ids of this process's threads (Linux ``/proc``), else ``[0]``: the calling one."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]
