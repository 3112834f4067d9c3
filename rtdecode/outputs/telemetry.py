"""What the decoder publishes for observers beside its decisions: features, status and its
analysis-rate signal over LSL.

Three outlets, created with the decision outlets and tied to the same input stream:

- ``rtdecode-features`` (type ``Features``, float32, one channel per feature, labels = the
  model's feature names): the feature row of every decision, stamped like the scores;
- ``rtdecode-status`` (type ``Markers``, string): a JSON status about once per second of stream
  time (decisions, state, latency p50/p99, counters, input rate, clock offset, the decoder
  process's CPU). Its stream description holds the model's contract as JSON, so an observer in
  another process (``rtdecode monitor``) knows the classes, bands and hysteresis;
- ``rtdecode-signal`` (type ``Signal``, float32, the input's channels and labels, at the analysis
  rate): the anti-aliased, decimated samples the features are computed from, pushed as they are
  made (twice per hop). A monitor draws its traces from this stream instead of opening the raw one:
  1/16 of the data, in ten packets a second instead of a thousand, so the source sends the raw
  stream once and the monitor's process wakes a hundred times less.

Their source_ids are ``<name>:<input source_id>``. Pushing costs microseconds, and the signal is
not even copied while nobody listens.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import psutil
import pylsl

from rtdecode.streams import (
    FEATURES_STREAM_NAME,
    SIGNAL_STREAM_NAME,
    STATUS_STREAM_NAME,
    output_source_id,
)

__all__ = ["DecoderTelemetry"]


class DecoderTelemetry:
    """The features and status outlets of one decoder.

    Parameters
    ----------
    contract : ModelContract
    input_source_id, input_name : str
        The decoded stream's, for the source_ids and descriptions.
    status_every_s : float
        Stream seconds between status samples.
    channel_labels : sequence of str, optional
        The labels of the signal outlet's channels, in its order (default: the contract's).
    channel_order : sequence of int, optional
        The signal outlet's channels as indices of the samples ``publish_signal`` gets (the
        features' channels, in the stream's order when a channel map permutes them), so that
        they come in the model's order, like the features; default: as they come.
    """

    def __init__(
        self,
        contract,
        *,
        input_source_id: str,
        input_name: str,
        status_every_s: float = 1.0,
        channel_labels=None,
        channel_order=None,
    ) -> None:
        self.status_every_s = float(status_every_s)
        names = list(contract.feature_names)
        info = pylsl.StreamInfo(
            FEATURES_STREAM_NAME,
            "Features",
            len(names),
            1.0 / contract.features.hop_s,
            pylsl.cf_float32,
            output_source_id(FEATURES_STREAM_NAME, input_source_id),
        )
        info.set_channel_labels(names)
        info.desc().append_child_value("input_name", input_name)
        self._features = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=10)
        sinfo = pylsl.StreamInfo(
            STATUS_STREAM_NAME,
            "Markers",
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            output_source_id(STATUS_STREAM_NAME, input_source_id),
        )
        desc = sinfo.desc()
        desc.append_child_value("input_name", input_name)
        desc.append_child_value("input_source_id", input_source_id)
        desc.append_child_value("contract", contract.to_json())
        self._status = pylsl.StreamOutlet(sinfo, chunk_size=1, max_buffered=60)
        labels = list(channel_labels or contract.labels)
        fs_a = contract.features.analysis_fs_hz
        ginfo = pylsl.StreamInfo(
            SIGNAL_STREAM_NAME,
            "Signal",
            len(labels),
            fs_a,
            pylsl.cf_float32,
            output_source_id(SIGNAL_STREAM_NAME, input_source_id),
        )
        ginfo.set_channel_labels(labels)
        gdesc = ginfo.desc()
        gdesc.append_child_value("input_name", input_name)
        gdesc.append_child_value("filter", f"anti-aliasing FIR, low-pass at {fs_a / 2:g} Hz")
        self._signal = pylsl.StreamOutlet(ginfo, chunk_size=0, max_buffered=12)
        # sample-major copy of the channel-major analysis samples (LSL's layout)
        self._signal_buf = np.empty((0, len(labels)), dtype=np.float32)
        self._channel_order = None if channel_order is None else np.asarray(channel_order, np.intp)
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)
        self._next_status_t: float | None = None

    def publish(self, features: np.ndarray, timestamp: float, status_fn) -> None:
        """Push a decision's feature row; every ``status_every_s`` also ``status_fn()``'s JSON
        (each only while someone listens)."""
        if self._features.have_consumers():
            self._features.push_chunk(features, timestamp)
        if (
            self._next_status_t is None or timestamp >= self._next_status_t
        ) and self._status.have_consumers():
            self._next_status_t = timestamp + self.status_every_s
            self.publish_status(status_fn(), timestamp)

    def publish_status(self, status, timestamp: float) -> None:
        """Push ``status`` (a DecoderStatus) now, with this process's CPU, if anyone listens
        (also from the decode watchdog, when the decode thread is stuck)."""
        outlet = self._status
        if outlet is not None and outlet.have_consumers():
            status = replace(status, decoder_cpu_cores=self._process.cpu_percent(None) / 100.0)
            outlet.push_sample([status.to_json()], timestamp)

    def publish_signal(self, samples: np.ndarray, timestamp: float) -> None:
        """Push analysis-rate samples, channel-major ``(n_channels, n)``, the newest stamped
        ``timestamp``; nothing is copied while no one listens."""
        if samples.shape[1] == 0 or not self._signal.have_consumers():
            return
        n = samples.shape[1]
        if self._signal_buf.shape[0] < n:
            self._signal_buf = np.empty((n, samples.shape[0]), dtype=np.float32)
        buf = self._signal_buf[:n]
        if self._channel_order is not None:
            samples = samples[self._channel_order]  # a copy, only while someone listens
        np.copyto(buf, samples.T)
        self._signal.push_chunk(buf, timestamp)

    def close(self) -> None:
        self._features = None
        self._status = None
        self._signal = None
