"""What every bench section shares: percentiles, CPU accounting, free ports, results."""

from __future__ import annotations

import math
import resource
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

Figures = dict[str, float | int | str | bool | None]
"""One section's results: flat, JSON-ready; numbers unless a key says otherwise."""


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (``p`` in 0..100) of ``samples``; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Stopwatch:
    """Wall and CPU time of a block: this process's and its waited-for children's."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    children_cpu_s: float = 0.0
    _marks: list[float] = field(default_factory=list)


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    watch = Stopwatch()
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.wall_s = time.perf_counter() - start
        own2 = resource.getrusage(resource.RUSAGE_SELF)
        kids2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        watch.cpu_s = (own2.ru_utime + own2.ru_stime) - (own.ru_utime + own.ru_stime)
        watch.children_cpu_s = (kids2.ru_utime + kids2.ru_stime) - (kids.ru_utime + kids.ru_stime)


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits) if math.isfinite(value) else value
