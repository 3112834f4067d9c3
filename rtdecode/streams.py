"""The names rtdecode publishes under (LSL streams, their source ids, the special states), and
what a timestamp on the LSL clock may be taken to mean.

Every stage and every observer (monitor, tests, benchmarks, other programs) takes these names from
here, so a stream is renamed in one place.
"""

from __future__ import annotations

__all__ = [
    "SCORES_STREAM_NAME",
    "STATE_STREAM_NAME",
    "FEATURES_STREAM_NAME",
    "STATUS_STREAM_NAME",
    "SIGNAL_STREAM_NAME",
    "STIM_STREAM_NAME",
    "CONTROL_STREAM_NAME",
    "QUALITY_CHANNEL",
    "NO_SIGNAL",
    "BAD_SIGNAL",
    "DECODER_STALLED",
    "SPECIAL_STATES",
    "truth_stream_name",
    "output_source_id",
    "OTHER_CLOCK_S",
]

OTHER_CLOCK_S = 60.0
"""Timestamps this far (s) from the LSL clock are a device's own clock, not this machine's: a
sample's age cannot be read from them."""

#: Class probabilities then the quality channel, one sample per decision (type ``Scores``).
SCORES_STREAM_NAME = "rtdecode-scores"
#: The smoothed state's name at each change (type ``Markers``).
STATE_STREAM_NAME = "rtdecode-state"
#: Every decision's feature row (type ``Features``).
FEATURES_STREAM_NAME = "rtdecode-features"
#: A JSON :class:`rtdecode.decoding.status.DecoderStatus` about once a second (type ``Markers``).
STATUS_STREAM_NAME = "rtdecode-status"
#: The analysis-rate samples the features are computed from (type ``Signal``).
SIGNAL_STREAM_NAME = "rtdecode-signal"
#: One marker per trigger, ``rule:action:state``, stamped with the decision's timestamp.
STIM_STREAM_NAME = "rtdecode-stim"
#: Operator commands to a decoder (``arm`` / ``disarm`` stimulation), from the monitor.
CONTROL_STREAM_NAME = "rtdecode-control"
#: Label of the scores stream's last channel: the fraction of usable input channels (0-1).
QUALITY_CHANNEL = "quality"

#: State while the input delivers no samples (not a class of any model).
NO_SIGNAL = "no_signal"
#: State while too few channels are usable (not a class of any model).
BAD_SIGNAL = "bad_signal"
#: Marker while the decode thread makes no progress (see rtdecode.decoding.watchdog).
DECODER_STALLED = "decoder_stalled"
SPECIAL_STATES = (NO_SIGNAL, BAD_SIGNAL, DECODER_STALLED)


def truth_stream_name(source_name: str) -> str:
    """The name of the marker stream that carries a source's true states (simulator, replay)."""
    return f"{source_name}-truth"


def output_source_id(stream_name: str, input_source_id: str) -> str:
    """The source id of a decoder's outlet: its stream name, then the decoded input's source id,
    so a consumer tells decoders apart and finds a restarted one again."""
    return f"{stream_name}:{input_source_id}"
