"""Ketenhub's benchmarks: ``make bench`` (under 10 minutes), ``make bench-quick`` (under 1).

Every figure is measured in the same run as the baseline it is compared with, on
loopback only, bounded in count and time. ``python -m bench`` writes
``bench/results.json`` and ``bench/RESULTS.md``.
"""
