"""Fault-injection suite: short versions run by default, `-m faults` runs the long ones."""
