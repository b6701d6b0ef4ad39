"""Benchmarks run by `make bench` (`python -m bench`): figures as ratios measured in one run; nothing asserted."""
