"""Stage 3, decoding: the model and its contract, the smoother, one decode step (features row
-> probabilities -> quality gate -> smoother -> decision) and the decode thread.
"""
