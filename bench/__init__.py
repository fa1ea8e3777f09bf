"""Benchmarks: dataset readers, metrics, synthetic sequences, accuracy and latency reports (see README.md)."""
