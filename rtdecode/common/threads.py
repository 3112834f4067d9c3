"""Threads that must never hold up the decoder's: the monitor's drawing, the simulator's
generation.

On a small machine shared with a decoder, any busy thread that runs when the decoder's threads
wake delays them (on a 2-core VM the monitor at normal priority put latency p99 at 7.2 ms).
"""

from __future__ import annotations

import os

__all__ = ["run_below_other_threads"]


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
