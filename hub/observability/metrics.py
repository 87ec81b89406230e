"""Prometheus metrics (``GET /metrics``): the hub's ``Telemetry`` and its HTTP counts.

Each hub gets its own ``CollectorRegistry`` (never the global one), so that tests may
build many hubs in one process. Under ``ketenhub serve --workers N`` every worker
writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode; ``hub.serving`` makes a fresh directory per serve) and a scrape, answered by
any one worker, sums the files of all of them.

Labels are bounded names only: route templates (never raw paths: they can hold ids),
methods, statuses, partner ids, contract reasons and OAuth error codes. The label
children are bound once and kept (``_children``): the exchange path pays a dict look-up
and an increment, no ``labels()`` call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from hub.domain.exchange import Outcome
from hub.domain.ids import PartnerId

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""Read by prometheus_client when it is first imported: set before a worker starts."""
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE: Final = "unmatched"
"""The route label of a request no route matched (its raw path is never a label)."""

_TOKEN_ERRORS: Final = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "slow_down",
        "invalid_token",
        "expired_token",
        "insufficient_scope",
    }
)
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_AUDIT_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
_GROUP_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Up to ``hub.db.database.MAX_BATCH`` transactions a group."""

M = TypeVar("M", Counter, Histogram)


class _Children(Generic[M]):
    """Label children of one metric, bound on first use and kept (a bounded label set)."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._bound: dict[tuple[str, ...], M] = {}
        self._lock = threading.Lock()

    def get(self, *labels: str) -> M:
        found = self._bound.get(labels)
        if found is None:
            with self._lock:
                found = self._bound.setdefault(labels, self._metric.labels(*labels))
        return found


class PrometheusTelemetry:
    """The ``Telemetry`` port over prometheus_client, plus the HTTP request metrics."""

    def __init__(
        self,
        sources: Iterable[PartnerId] = (),
        *,
        multiprocess_dir: str | None = None,
    ) -> None:
        """``multiprocess_dir``: where the workers of one serve write their samples
        (default: ``PROMETHEUS_MULTIPROC_DIR`` when set, else this process alone)."""
        self._dir = multiprocess_dir or os.environ.get(MULTIPROCESS_ENV) or None
        registry = CollectorRegistry(auto_describe=False)
        self._registry = registry
        self._requests = _Children(
            Counter(
                "ketenhub_http_requests",
                "HTTP requests answered, by route template, method and status.",
                ["route", "method", "status"],
                registry=registry,
            )
        )
        self._request_seconds = _Children(
            Histogram(
                "ketenhub_http_request_duration_seconds",
                "Time from a request's start to its answer's last byte, by route template.",
                ["route", "method"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self._decisions = _Children(
            Counter(
                "ketenhub_exchange_decisions",
                "Exchange decisions audited, by source, decision and the request's reason.",
                ["source", "decision", "reason"],
                registry=registry,
            )
        )
        self._fields = _Children(
            Counter(
                "ketenhub_exchange_fields",
                "Requested fields by outcome: disclosed, or the reason it was not.",
                ["source", "outcome"],
                registry=registry,
            )
        )
        self._replays = _Children(
            Counter(
                "ketenhub_exchange_replays",
                "Idempotency-Key answers sent again, by source.",
                ["source"],
                registry=registry,
            )
        )
        self._source_seconds = _Children(
            Histogram(
                "ketenhub_source_request_duration_seconds",
                "Calls to a source partner, by source and outcome.",
                ["source", "outcome"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self._audit_seconds = Histogram(
            "ketenhub_audit_append_duration_seconds",
            "Audit appends: from the write being queued to its commit being durable.",
            buckets=_AUDIT_BUCKETS,
            registry=registry,
        )
        self._group_transactions = Histogram(
            "ketenhub_db_group_transactions",
            "Write transactions per group commit: how many requests shared one commit.",
            buckets=_GROUP_BUCKETS,
            registry=registry,
        )
        self._write_turn_seconds = Histogram(
            "ketenhub_db_write_turn_wait_seconds",
            "Group commits: waiting for the database's write turn (another process's group).",
            buckets=_AUDIT_BUCKETS,
            registry=registry,
        )
        self._commit_seconds = Histogram(
            "ketenhub_db_commit_duration_seconds",
            "Group commits: the commit until it returned durable (the disk's fsync, and on "
            "SQLite the hop to the thread that waits for it and back).",
            buckets=_AUDIT_BUCKETS,
            registry=registry,
        )
        self._token_errors = _Children(
            Counter(
                "ketenhub_token_errors",
                "Token errors: token endpoint answers (RFC 6749 5.2) and refused access "
                "tokens (RFC 6750 3.1), by error code.",
                ["endpoint", "error"],
                registry=registry,
            )
        )
        self._http: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        """Both children of one (route, method, status), found with one look-up."""
        for source in sources:
            # Present from the first scrape, at zero: a rate over a series that
            # appears later misses its first increments.
            self._source_seconds.get(source, "ok")
            for outcome in Outcome:
                self._decisions.get(source, str(outcome), "none")

    # -- the Telemetry port ---------------------------------------------------------

    def exchange_decided(
        self, source: PartnerId, decision: Outcome, reason: str | None, fields: Sequence[str]
    ) -> None:
        self._decisions.get(source, decision.value, reason or "none").inc()
        per_field = self._fields
        if len(fields) == 1:
            per_field.get(source, fields[0]).inc()
            return
        # One increment per outcome, not per field: each takes the metric's lock. Counted
        # in a plain dict: collections.Counter costs 0.6 us more for a few fields.
        counts: dict[str, int] = {}
        for outcome in fields:
            counts[outcome] = counts.get(outcome, 0) + 1
        for outcome, count in counts.items():
            per_field.get(source, outcome).inc(count)

    def exchange_replayed(self, source: PartnerId) -> None:
        self._replays.get(source).inc()

    def source_called(self, source: PartnerId, outcome: str, seconds: float) -> None:
        self._source_seconds.get(source, outcome).observe(seconds)

    def audit_appended(self, seconds: float) -> None:
        self._audit_seconds.observe(seconds)

    def write_group_committed(
        self, transactions: int, turn_seconds: float, commit_seconds: float
    ) -> None:
        self._group_transactions.observe(transactions)
        self._write_turn_seconds.observe(turn_seconds)
        self._commit_seconds.observe(commit_seconds)

    def token_refused(self, endpoint: str, error: str) -> None:
        # The code comes from a client's request path through authlib: bound it.
        self._token_errors.get(endpoint, error if error in _TOKEN_ERRORS else "other").inc()

    # -- HTTP ------------------------------------------------------------------------

    def request_served(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the matched route's template."""
        key = (route, method, status)
        bound = self._http.get(key)
        if bound is None:
            verb = method if method in _METHODS else "other"
            bound = self._http.setdefault(
                key,
                (
                    self._requests.get(route, verb, str(status)),
                    self._request_seconds.get(route, verb),
                ),
            )
        count, timing = bound
        count.inc()
        timing.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this process, or of every
        worker of this serve in multiprocess mode."""
        if self._dir is None:
            return generate_latest(self._registry)
        combined = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(combined, path=self._dir)  # type: ignore[no-untyped-call]
        return generate_latest(combined)


def prepare_multiprocess_dir(parent: str | None = None) -> Path:
    """A fresh, empty directory for one serve's workers (``PROMETHEUS_MULTIPROC_DIR``).

    Fresh per serve: samples a previous serve left behind would be summed with this
    one's (prometheus_client reads every file in the directory). Its name holds the
    serving process's id, so that the directories of serves that were killed before
    they could remove theirs (SIGKILL) are removed here, at the next start.
    """
    where = Path(parent or tempfile.gettempdir())
    for stale in where.glob(f"{_DIR_PREFIX}*-*"):
        pid = stale.name.removeprefix(_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=where))


_DIR_PREFIX: Final = "ketenhub-metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, and its directory is not ours
    return True
