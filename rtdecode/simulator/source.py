"""The simulator as a real LSL source: generated ahead on a thread of its own, pushed at the
stream's pace (:class:`rtdecode.common.paced_source.PacedSource`), with the true state on
``NAME-truth``.
"""

from __future__ import annotations

import logging
import math
import numbers
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from rtdecode.common.paced_source import PacedSource
from rtdecode.common.threads import run_below_other_threads
from rtdecode.simulator.faults import ChannelFault
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig

__all__ = ["run_lsl_source"]

logger = logging.getLogger("rtdecode")

# ------------------------------------------------------------------------------------------
# LSL source
# ------------------------------------------------------------------------------------------
_MAX_BUFFERED_S = 30

# Seconds of signal generated at a time: short blocks keep each burst of CPU short (~0.7 ms at
# 64 ch x 32 kHz), so it cannot hold up a decoder sharing a small machine for long.
_BLOCK_S = 0.02

_FAULT_SCALE_S = 0.5

_BLOCKS_AHEAD = 3  # blocks generated ahead of the pushes

_GENERATE_NICE = 10  # the generating thread's nice value where SCHED_IDLE is not available


def _produce_blocks(
    sim: LfpSimulator,
    block: int,
    total: int | None,
    faults: tuple[ChannelFault, ...],
    blocks: queue.Queue,
    producing: threading.Event,
) -> None:
    """Generate the stream's blocks in order onto ``blocks``: ``(data, state changes begun in
    it)``, then ``None`` after ``total`` samples; an exception is put there instead (the
    pushing thread raises it). Returns when ``producing`` is cleared."""
    generated = 0
    n_changes = 0
    scale = None  # channels' standard deviations, from the first block, for the faults
    # its bursts (~0.7 ms per 20 ms block at 64 ch) must not hold up the pushes or a
    # decoder's threads on the same machine; 3 blocks ahead leave 40 ms to catch up
    run_below_other_threads(_GENERATE_NICE)
    try:
        while producing.is_set() and (total is None or generated < total):
            n = block
            if faults and scale is None:
                # the faults' scale (each channel's standard deviation) from a first stretch
                # long enough to hold the slow rhythms
                n = block * max(1, round(_FAULT_SCALE_S / _BLOCK_S))
            if total is not None:
                n = min(n, total - generated)
            data, _ = sim.generate(n)
            if faults and scale is None:
                scale = np.std(data, axis=0)
            for fault in faults:
                fault.apply(data, generated, sim.config.fs_hz, scale)
            changes = sim.state_changes()[n_changes:]
            n_changes += len(changes)
            generated += n
            _put_while(blocks, (data, changes), producing)
        _put_while(blocks, None, producing)
    except BaseException as exc:  # handed to the pushing thread, which raises it
        _put_while(blocks, exc, producing)


def _put_while(blocks: queue.Queue, item: Any, producing: threading.Event) -> None:
    while producing.is_set():
        try:
            blocks.put(item, timeout=0.1)
            return
        except queue.Full:
            pass


def run_lsl_source(
    config: SimulatorConfig,
    name: str = "rtdecode-sim",
    *,
    duration_s: float | None = None,
    chunk_samples: int = 32,
    source_id: str | None = None,
    stop_event: threading.Event | None = None,
    on_state_change: Callable[[str, float], None] | None = None,
    wait_for_consumers_s: float = 0.0,
    faults: tuple[ChannelFault, ...] = (),
) -> int:
    """Stream simulated LFP over LSL at real-time pace, with a marker stream of the true state.

    Parameters
    ----------
    config : SimulatorConfig
        What to simulate.
    name : str
        LSL stream name of the data outlet (type ``"EEG"``, float32, ``config.n_channels``
        channels at ``config.fs_hz``). The truth outlet is ``f"{name}-truth"`` (type
        ``"Markers"``, one string channel, irregular rate).
    duration_s : float or None
        Stop after this many seconds of samples; ``None`` streams until ``stop_event`` is set.
    chunk_samples : int
        Samples per push (and the outlet's chunk size), >= 1.
    source_id : str or None
        LSL source id; default ``f"rtdecode-sim:{name}"``. The truth outlet uses
        ``f"{source_id}-truth"``.
    stop_event : threading.Event or None
        Set it to stop streaming (checked before every chunk, and wakes the pacing sleep).
    on_state_change : callable or None
        Called as ``on_state_change(state_name, lsl_timestamp)`` for the initial state and at
        each change, from the streaming thread; the timestamp is that of the first sample of
        the new state. Exceptions propagate and stop the source.
    wait_for_consumers_s : float
        Wait up to this long for an inlet on the data outlet before starting the clock
        (default 0, no waiting). LSL does not replay samples to late inlets: a consumer that
        wants the first samples and the initial truth marker opens the truth inlet first, then
        the data inlet.
    faults : tuple of ChannelFault
        Bad channels injected into the stream (the truth markers are unchanged).

    Returns
    -------
    int
        Number of samples pushed.

    Notes
    -----
    Blocking: call it from a thread of its own. Samples are generated in blocks of 20 ms, up to
    three blocks ahead, on a second thread (below every other thread of the machine: see
    rtdecode.common.threads), and pushed one chunk at a time, chunk ``k`` at
    ``t0 + (k + 1) * chunk_samples / fs`` on the LSL clock; a late chunk is pushed at once (never dropped), so the stream catches up. Each
    chunk carries the LSL timestamp read just before its push (what pylsl would assign by
    default: the time of the chunk's last sample; earlier samples are spaced back by 1/fs).
    Each truth marker is pushed right after the chunk that holds the first sample of the
    new state, with that sample's timestamp. If inlets are connected when streaming ends,
    the outlets stay open for another 0.5 s so the last chunk reaches them.
    """

    if not isinstance(config, SimulatorConfig):
        raise TypeError(f"config must be a SimulatorConfig, got {type(config).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, numbers.Integral):
        raise TypeError(f"chunk_samples must be an int, got {type(chunk_samples).__name__}")
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be None or a finite number >= 0, got {duration_s!r}")
    if not (math.isfinite(wait_for_consumers_s) and wait_for_consumers_s >= 0):
        raise ValueError(f"wait_for_consumers_s must be >= 0, got {wait_for_consumers_s!r}")
    if source_id is None:
        source_id = f"rtdecode-sim:{name}"
    chunk_samples = int(chunk_samples)
    fs = config.fs_hz

    sim = LfpSimulator(config)
    source = PacedSource(
        name,
        fs_hz=fs,
        channels=[(label, "microvolts", "LFP") for label in sim.channel_labels],
        source_id=source_id,
        chunk_samples=chunk_samples,
        max_buffered_s=_MAX_BUFFERED_S,
        description={"manufacturer": "rtdecode simulator", "scenario": config.scenario},
        truth_classes=sim.classes,
    )

    if wait_for_consumers_s > 0 and not source.wait_for_consumers(wait_for_consumers_s):
        logger.info("no consumer after %g s; streaming anyway", wait_for_consumers_s)

    block = chunk_samples * max(1, round(_BLOCK_S * fs / chunk_samples))
    total = None if duration_s is None else round(duration_s * fs)
    logger.info(
        "LSL source %r (%s): %d ch at %g Hz, %s",
        name,
        config.scenario,
        config.n_channels,
        fs,
        "until stopped" if total is None else f"{duration_s:g} s",
    )
    # Blocks are generated on a thread of their own, ahead of the pushes: generated between
    # two pushes, a block's burst of CPU delays liblsl's sending of the chunk pushed before it.
    blocks: queue.Queue = queue.Queue(maxsize=_BLOCKS_AHEAD)
    producing = threading.Event()  # cleared: the producer must stop
    producing.set()
    producer = threading.Thread(
        target=_produce_blocks,
        args=(sim, block, total, faults, blocks, producing),
        name="rtdecode-sim-generate",
        daemon=True,
    )
    producer.start()
    source.start_clock()
    try:
        while True:
            if stop_event is not None and stop_event.is_set():
                break
            item = blocks.get()
            if item is None:
                break  # all of duration_s generated and pushed
            if isinstance(item, BaseException):
                raise item
            data, changes = item
            k = 0
            for off in range(0, len(data), chunk_samples):
                chunk = data[off : off + chunk_samples]  # row slice: still C-contiguous
                end = source.pushed + len(chunk)
                first = k
                while k < len(changes) and changes[k][0] < end:
                    k += 1
                sent = source.push(chunk, changes[first:k], stop_event)
                if sent is None:
                    return source.pushed
                for start, state, marker_ts in sent:
                    logger.info("true state: %s (sample %d, t=%.3f s)", state, start, start / fs)
                    if on_state_change is not None:
                        on_state_change(state, marker_ts)
    finally:
        producing.clear()
        producer.join()  # within its current block, or 0.1 s when waiting on a full queue
        logger.info(
            "LSL source %r stopped: %d samples (%.1f s), worst lateness %.1f ms",
            name,
            source.pushed,
            source.pushed / fs,
            1e3 * source.max_late_s,
        )
        source.close()
    return source.pushed
