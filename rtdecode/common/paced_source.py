"""An LSL source paced by its sample clock, with a marker stream of the true states.

The simulator (:mod:`rtdecode.simulator.source`) and the replay of a recording
(:mod:`rtdecode.offline.replay`) both push through :class:`PacedSource`, so every synthetic or
replayed stream rtdecode makes has the same timing: chunk by chunk, each pushed when its last
sample is due and stamped with the time of its push (what pylsl assigns by default).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from rtdecode.streams import truth_stream_name

__all__ = ["PacedSource", "ChannelInfo"]

# Keep the outlets open this long after the last push while someone listens: liblsl sends from
# its own threads and has no flush, so closing at once cut off the final chunk on loopback.
_LINGER_S = 0.5

ChannelInfo = tuple[str, str, str]  # (label, unit, type)


class PacedSource:
    """A float32 data outlet and, optionally, its ``NAME-truth`` marker outlet.

    Parameters
    ----------
    name : str
        Data stream name (type ``EEG``); the truth stream is ``truth_stream_name(name)``.
    fs_hz : float
        Nominal rate, Hz.
    channels : sequence of (label, unit, type)
        One entry per channel, written to the stream header.
    source_id : str
        LSL source id; the truth outlet's is ``source_id + "-truth"``.
    chunk_samples : int
        Samples per push (the outlet's chunk size).
    max_buffered_s : float
        Seconds the data outlet buffers for a slow consumer.
    speed : float
        1 = real time; the nominal rate stays ``fs_hz`` (a decoder clocks by samples).
    description : dict of str
        Extra header values (``manufacturer``, ``file``, ...).
    truth_classes : sequence of str, optional
        The states the truth stream may carry; no truth outlet when None.

    Notes
    -----
    Blocking: :meth:`push` waits for the chunk's due time, so run it on a thread of its own.
    Chunk ending at sample ``n`` (counted from :meth:`start_clock`) is pushed at
    ``t0 + n / (fs_hz * speed)`` on the LSL clock; a late chunk goes at once (never dropped), so
    the stream catches up.
    """

    def __init__(
        self,
        name: str,
        *,
        fs_hz: float,
        channels: Sequence[ChannelInfo],
        source_id: str,
        chunk_samples: int,
        max_buffered_s: float,
        speed: float = 1.0,
        description: dict[str, str] | None = None,
        truth_classes: Sequence[str] | None = None,
    ) -> None:
        import pylsl  # here, not at import time: generating training data needs no liblsl

        self._clock = pylsl.local_clock
        self.fs_hz = float(fs_hz)
        self._rate = self.fs_hz * float(speed)
        info = pylsl.StreamInfo(name, "EEG", len(channels), fs_hz, "float32", source_id)
        desc = info.desc()
        for key, value in (description or {}).items():
            desc.append_child_value(key, value)
        xml_channels = desc.append_child("channels")
        for label, unit, kind in channels:
            ch = xml_channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit or "unknown")
            ch.append_child_value("type", kind)
        self._outlet = pylsl.StreamOutlet(
            info, chunk_size=chunk_samples, max_buffered=int(max_buffered_s)
        )
        self._truth = None
        if truth_classes is not None:
            truth_info = pylsl.StreamInfo(
                truth_stream_name(name),
                "Markers",
                1,
                pylsl.IRREGULAR_RATE,
                "string",
                f"{source_id}-truth",
            )
            truth_info.desc().append_child_value("classes", ",".join(truth_classes))
            self._truth = pylsl.StreamOutlet(truth_info)
        self.pushed = 0  # samples pushed since start_clock
        self.max_late_s = 0.0  # the latest a chunk went out after its due time
        self._t0 = self._clock()

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for an inlet on the data outlet; whether one came."""
        return bool(self._outlet.wait_for_consumers(timeout_s))

    def start_clock(self) -> None:
        """Start the pace now: the next chunk's samples are due from this moment."""
        self._t0 = self._clock()
        self.pushed = 0

    def skip(self, seconds: float) -> None:
        """Leave a gap of ``seconds`` (of the stream's time) before the next chunk: it is due,
        and stamped, that much later, as after samples a rig did not record."""
        self._t0 += seconds * self.fs_hz / self._rate

    def stop_truth(self) -> None:
        """Send no more truth markers (a looping replay sends its labels once)."""
        self._truth = None

    def push(
        self,
        chunk: np.ndarray,
        changes: Sequence[tuple[int, str]] = (),
        stop_event: threading.Event | None = None,
    ) -> list[tuple[int, str, float]] | None:
        """Wait for ``chunk``'s due time, push it, then the truth markers of the states it starts.

        Parameters
        ----------
        chunk : ndarray, shape (n, n_channels), float32, C-contiguous
        changes : sequence of (sample, state)
            State changes whose first sample (counted like :attr:`pushed`) lies in this chunk.
        stop_event : threading.Event, optional
            Wakes the wait; when set, nothing is pushed.

        Returns
        -------
        list of (sample, state, timestamp), or None when stopped
            The markers pushed, each stamped with its first sample's time.
        """
        end = self.pushed + len(chunk)
        delay = self._t0 + end / self._rate - self._clock()
        if delay > 0:
            if stop_event is not None:
                if stop_event.wait(delay):
                    return None
            else:
                time.sleep(delay)
        elif -delay > self.max_late_s:
            self.max_late_s = -delay
        now = self._clock()
        self._outlet.push_chunk(chunk, now)
        sent = []
        for sample, state in changes:
            stamp = now - (end - 1 - sample) / self._rate
            if self._truth is not None:
                self._truth.push_sample([state], stamp)
            sent.append((sample, state, stamp))
        self.pushed = end
        return sent

    def close(self) -> None:
        """Close the outlets, after letting the last chunk reach the inlets that listen."""
        if self._outlet is None:
            return
        if self._outlet.have_consumers() or (
            self._truth is not None and self._truth.have_consumers()
        ):
            time.sleep(_LINGER_S)
        self._outlet = None
        self._truth = None
