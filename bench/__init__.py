"""Docket benchmarks: run on demand (``python -m bench --help``); results in RESULTS.md."""
