"""Stage 1, acquisition: find and check an LSL stream, and acquire it on its own thread into
the ring buffer (Cython kernels ``_acquire`` and ``_ringbuffer``).
"""
