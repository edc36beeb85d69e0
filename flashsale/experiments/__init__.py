"""Experiments: sweeps over strategies and concurrency, the context every result row carries, tidy data files."""
