"""Request limits per client (issue #3), free of any web framework.

A limit such as ``50/second;1000/minute`` is counted in a moving window (the
``limits`` library, in memory) under one key per caller: the OAuth client id of
the access token on the partner API, the presented client id (or the remote
address) at the token endpoint. The window is wall-clock time, not the hub's
``Clock``: it throttles load, it decides nothing about data.

In memory means per process: with ``ketenhub serve --workers N`` each worker
counts on its own, and so does each hub instance. A client is refused once it passes
the limit at the process its request reaches, so it gets at least the limit and at
most P times it, P being the hub processes behind the load balancer (workers times
instances); one keep-alive connection stays with one worker, so a single-connection
client meets the limit itself. A fleet-wide cap is the reverse proxy's (nginx
``limit_req``) or the limit set to limit / P. Why the count is not shared through the
database, with the measured cost: docs/scale-out.md, "Rate limits".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Final

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from hub.domain.errors import HubError

OFF: Final = "off"
RATE_LIMITED: Final = "rate-limited"


class RateLimitedError(HubError):
    """Too many requests from one client: refused before any work (RFC 6585 4)."""

    status = 429
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            RATE_LIMITED, f"Too many requests from this client; retry in {retry_after} seconds."
        )
        self.retry_after = retry_after


def parse_limits(value: str, *, name: str) -> tuple[RateLimitItem, ...]:
    """``off`` (no limit) or ``N/unit`` items separated by ``;``; ``ValueError`` naming ``name``."""
    text = value.strip()
    if text.lower() == OFF:
        return ()
    try:
        items = tuple(parse_many(text))
    except ValueError:
        items = ()
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(
            f"{name}={value!r} is not a rate limit: write '{OFF}' or items like "
            "'50/second;1000/minute' (a positive number per second, minute, hour or day)."
        )
    return items


class RateLimiter:
    """Admits or refuses one request of a caller; refusing costs the caller nothing.

    A refused request is not counted, so a client that backs off as ``Retry-After``
    says is admitted again when the window has moved on.
    """

    def __init__(self, items: Sequence[RateLimitItem], namespace: str) -> None:
        self._items = tuple(items)
        self._namespace = namespace
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self._items else None

    @classmethod
    def from_setting(cls, value: str, *, name: str, namespace: str) -> RateLimiter:
        return cls(parse_limits(value, name=name), namespace)

    @property
    def enabled(self) -> bool:
        return self._limiter is not None

    def retry_after(self, key: str) -> int | None:
        """Count one request of ``key``: None when admitted, else seconds to wait (>= 1).

        Synchronous and without an ``await``: within one event loop, the test and the
        hit cannot be interleaved with another request's.
        """
        limiter = self._limiter
        if limiter is None:
            return None
        full = [item for item in self._items if not limiter.test(item, self._namespace, key)]
        if full:
            now = time.time()
            wait = max(limiter.get_window_stats(i, self._namespace, key).reset_time for i in full)
            return max(1, math.ceil(wait - now))
        for item in self._items:
            limiter.hit(item, self._namespace, key)
        return None

    def check(self, key: str) -> None:
        """Count one request of ``key``; ``RateLimitedError`` when it is over the limit."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimitedError(wait)
