"""Stage 5, stimulation: rules that act on the smoothed decisions (``rules``, ``engine``), the
serial trigger device and its byte protocol (``device``, ``protocol``, ``emulator`` for a
device in software on a pseudo-terminal), and the live stage that ties them to the decoder's
log and the ``rtdecode-stim`` marker stream (``stimulator``).
"""
