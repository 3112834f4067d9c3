"""Stage 4, outputs: what the decoder publishes (``decisions``: the rtdecode-scores and
rtdecode-state outlets; ``log``: the JSON-lines decision log) and what it offers observers
(``telemetry``: features, status, analysis-rate signal).
"""
