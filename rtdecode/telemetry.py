"""What the decoder publishes for observers beside its decisions: features and status over LSL.

Two outlets, created with the decision outlets and tied to the same input stream:

- ``rtdecode-features`` (type ``Features``, float32, one channel per feature, labels = the
  model's feature names): the feature row of every decision, stamped like the scores;
- ``rtdecode-status`` (type ``Markers``, string): a JSON status about once per second of stream
  time (decisions, state, latency p50/p99, counters, input rate, clock offset, the decoder
  process's CPU). Its stream description holds the model's contract as JSON, so an observer in
  another process (``rtdecode monitor``) knows the classes, bands and hysteresis.

Their source_ids are ``rtdecode-features:<input source_id>`` and ``rtdecode-status:<input
source_id>``. Pushing costs microseconds; liblsl sends nothing when nobody listens.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np
import psutil
import pylsl

__all__ = ["FEATURES_STREAM_NAME", "STATUS_STREAM_NAME", "DecoderTelemetry"]

FEATURES_STREAM_NAME = "rtdecode-features"
STATUS_STREAM_NAME = "rtdecode-status"


class DecoderTelemetry:
    """The features and status outlets of one decoder.

    Parameters
    ----------
    contract : ModelContract
    input_source_id, input_name : str
        The decoded stream's, for the source_ids and descriptions.
    status_every_s : float
        Stream seconds between status samples.
    """

    def __init__(self, contract, *, input_source_id: str, input_name: str,
                 status_every_s: float = 1.0) -> None:
        self.status_every_s = float(status_every_s)
        names = list(contract.feature_names)
        info = pylsl.StreamInfo(FEATURES_STREAM_NAME, "Features", len(names),
                                1.0 / contract.features.hop_s, pylsl.cf_float32,
                                f"{FEATURES_STREAM_NAME}:{input_source_id}")
        info.set_channel_labels(names)
        info.desc().append_child_value("input_name", input_name)
        self._features = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=10)
        sinfo = pylsl.StreamInfo(STATUS_STREAM_NAME, "Markers", 1, pylsl.IRREGULAR_RATE,
                                 pylsl.cf_string, f"{STATUS_STREAM_NAME}:{input_source_id}")
        desc = sinfo.desc()
        desc.append_child_value("input_name", input_name)
        desc.append_child_value("input_source_id", input_source_id)
        desc.append_child_value("contract", contract.to_json())
        self._status = pylsl.StreamOutlet(sinfo, chunk_size=1, max_buffered=60)
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)
        self._next_status_t: float | None = None

    def publish(self, features: np.ndarray, timestamp: float, status_fn) -> None:
        """Push a decision's feature row; every ``status_every_s`` also ``status_fn()``'s JSON."""
        self._features.push_chunk(features, timestamp)
        if self._next_status_t is None or timestamp >= self._next_status_t:
            self._next_status_t = timestamp + self.status_every_s
            status = asdict(status_fn())
            status["decoder_cpu_cores"] = self._process.cpu_percent(None) / 100.0
            self._status.push_sample([json.dumps(status)], timestamp)

    def close(self) -> None:
        self._features = None
        self._status = None
