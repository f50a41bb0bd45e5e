"""Benchmark suite: each bench_<name>.py module measures a target beside an in-run baseline."""
