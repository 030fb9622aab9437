"""Benchmarks comparing lensify with its peers; run with ``python -m benchmarks``."""
