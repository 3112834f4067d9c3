"""Synthetic multichannel LFP with known brain states, and a real LSL source that streams it.

The generator is used to demo the decoder without hardware, to train the bundled models and as a
test fixture. It mixes a few latent sources (1/f background, delta, theta, spindles, EMG-like
broadband activity, spike-wave discharges, fast ripples, mains interference) into channels with
fixed per-channel gains, adds independent per-channel noise, and switches the source amplitudes
according to a random schedule of states. The true state of every sample is known, so decoders
can be scored exactly.

Signal model (amplitudes are typical per-channel values; per-channel gains vary about 1)
----------------------------------------------------------------------------------------
=============  ========================================================================
source         model
=============  ========================================================================
background     two leaky integrators of white noise (corner 1 Hz, ~1/f^2 above it) plus
               a faster one (corner 40 Hz); together a 1/f-like spectrum, tens of uV
delta          white noise band-passed 1-4 Hz; ~170 uV rms in NREM, 30-40 uV otherwise
theta          white noise band-passed 6.5-8.5 Hz; ~110 uV rms in REM, ~55 in wake
spindles       11-14 Hz waxing-waning bursts of 0.5-2 s every few seconds, NREM only
EMG            white noise band-passed 100-1000 Hz; ~25 uV rms in wake, a few uV asleep
spike-wave     7-9 Hz spike + slow wave; frequency drifts down and amplitude ramps up over
               each seizure (spike peak ~450 uV)
fast ripples   250-500 Hz noise bursts locked to the spikes of the spike-wave discharge
line           ``line_hz`` and its 3rd harmonic, common to all channels
noise          independent white noise per channel (``noise_uv`` rms per sample)
=============  ========================================================================

The amplitudes of delta, theta, fast background and EMG also drift slowly (log-normal, about
+-25 % over tens of seconds) so that no state has a constant band power.
"""

from __future__ import annotations

import logging
import math
import numbers
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rtdecode.common.threads import run_below_other_threads
from rtdecode.simulator.faults import ChannelFault
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig

__all__ = ["run_lsl_source"]

logger = logging.getLogger("rtdecode")

# ------------------------------------------------------------------------------------------
# LSL source
# ------------------------------------------------------------------------------------------
_MAX_BUFFERED_S = 30

# Seconds of signal generated at a time, on a thread of its own (see run_lsl_source). Generating
# is a burst of CPU (3.2 ms per 0.1 s at 64 ch x 32 kHz); on a small machine shared with a
# decoder, bursts that long and that rare land on the decoder's window ends in some runs and
# not others. 20 ms blocks cost ~25 % more in all but each burst is ~0.7 ms.
_BLOCK_S = 0.02

_FAULT_SCALE_S = 0.5

_BLOCKS_AHEAD = 3  # blocks generated ahead of the pushes

_GENERATE_NICE = 10  # the generating thread's nice value where SCHED_IDLE is not available

_LINGER_S = 0.5  # keep outlets open this long after the last push when someone listens

def _produce_blocks(sim: LfpSimulator, block: int, total: int | None,
                    faults: tuple[ChannelFault, ...], blocks: queue.Queue,
                    producing: threading.Event) -> None:
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
    import pylsl  # here, not at import time: generating training data needs no liblsl

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
    info = pylsl.StreamInfo(name, "EEG", config.n_channels, fs, "float32", source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", "rtdecode simulator")
    desc.append_child_value("scenario", config.scenario)
    channels = desc.append_child("channels")
    for label in sim.channel_labels:
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "LFP")
    outlet = pylsl.StreamOutlet(info, chunk_size=chunk_samples, max_buffered=_MAX_BUFFERED_S)
    truth_info = pylsl.StreamInfo(
        f"{name}-truth", "Markers", 1, pylsl.IRREGULAR_RATE, "string", f"{source_id}-truth"
    )
    truth_info.desc().append_child_value("classes", ",".join(sim.classes))
    truth = pylsl.StreamOutlet(truth_info)

    if wait_for_consumers_s > 0 and not outlet.wait_for_consumers(wait_for_consumers_s):
        logger.info("no consumer after %g s; streaming anyway", wait_for_consumers_s)

    block = chunk_samples * max(1, round(_BLOCK_S * fs / chunk_samples))
    total = None if duration_s is None else round(duration_s * fs)
    logger.info(
        "LSL source %r (%s): %d ch at %g Hz, %s",
        name, config.scenario, config.n_channels, fs,
        "until stopped" if total is None else f"{duration_s:g} s",
    )
    # Blocks are generated on a thread of their own, ahead of the pushes. Generated between
    # two pushes, each block's burst of CPU (~0.7 ms per 20 ms at 64 ch) held up liblsl's
    # sending of the chunk pushed just before it: that chunk, one in every 20, reached an
    # inlet ~1.2 ms late instead of ~0.1 ms. A decoder whose window ends fell on that chunk
    # was 1 ms later at every decision, for a whole run (1 run in ~4 at 64 ch, 2 cores).
    blocks: queue.Queue = queue.Queue(maxsize=_BLOCKS_AHEAD)
    producing = threading.Event()   # cleared: the producer must stop
    producing.set()
    producer = threading.Thread(
        target=_produce_blocks, args=(sim, block, total, faults, blocks, producing),
        name="rtdecode-sim-generate", daemon=True)
    producer.start()
    pushed = 0
    max_late = 0.0
    stopped = False
    t0 = pylsl.local_clock()
    try:
        while not stopped:
            if stop_event is not None and stop_event.is_set():
                break
            item = blocks.get()
            if item is None:
                break   # all of duration_s generated and pushed
            if isinstance(item, BaseException):
                raise item
            data, changes = item
            n = len(data)
            k = 0
            for off in range(0, n, chunk_samples):
                chunk = data[off:off + chunk_samples]  # row slice: still C-contiguous
                end = pushed + len(chunk)
                delay = t0 + end / fs - pylsl.local_clock()
                if delay > 0:
                    if stop_event is not None:
                        if stop_event.wait(delay):
                            stopped = True
                            break
                    else:
                        time.sleep(delay)
                elif -delay > max_late:
                    max_late = -delay
                ts = pylsl.local_clock()
                outlet.push_chunk(chunk, ts)
                while k < len(changes) and changes[k][0] < end:
                    start, state = changes[k]
                    marker_ts = ts - (end - 1 - start) / fs
                    truth.push_sample([state], marker_ts)
                    logger.info("true state: %s (sample %d, t=%.3f s)", state, start, start / fs)
                    if on_state_change is not None:
                        on_state_change(state, marker_ts)
                    k += 1
                pushed = end
    finally:
        producing.clear()
        producer.join()   # within its current block, or 0.1 s when waiting on a full queue
        logger.info(
            "LSL source %r stopped: %d samples (%.1f s), worst lateness %.1f ms",
            name, pushed, pushed / fs, 1e3 * max_late,
        )
        # liblsl sends from its own threads and has no flush: destroying the outlet right
        # after the last push cut off the final chunk on loopback (3968 of 4000 samples).
        if outlet.have_consumers() or truth.have_consumers():
            time.sleep(_LINGER_S)
        del outlet, truth
    return pushed
