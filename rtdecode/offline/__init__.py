"""Recordings from files: readers, labels, labelled feature tables, evaluation through the live
decoding path, and replay over LSL.
"""
