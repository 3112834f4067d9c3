"""Stage 5a, phase: the phase of an ongoing rhythm, estimated causally for phase-targeted
stimulation (``estimators``: endpoint-corrected Hilbert transform and autoregressive forward
prediction; ``tracker``: the streaming stage fed the decoder's analysis-rate samples, which
predicts when the target phase comes next), and the non-causal reference and circular
statistics that score where pulses landed (``reference``).
"""
