"""Small helpers shared by every stage: JSON encoding, channel labels, argument checks,
resident buffers, thread priority.
"""
