"""Benchmark programs of the saga engine (see benchmarks/README.md)."""
