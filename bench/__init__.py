"""Benchmarks: each prints its figures and the ratio to its reference in one run."""
