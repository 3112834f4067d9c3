"""Stage 4, outputs: what the decoder publishes (LSL outlets, the decision log) and what it
offers observers (features, status, analysis-rate signal).
"""
