"""A synthetic LFP source with known states: the generator, channel faults and the LSL source."""
