"""Stage 2, features: decimation, sliding-window band power and per-window channel quality
(Cython kernels ``_decimate``, ``_bandpower``, ``_quality``); the one implementation used
live and offline.
"""
