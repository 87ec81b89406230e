"""CPU cost of one exchange's log line and of its metrics (issue #4), alone.

- ``line``: one ``exchange_decided`` line through the hub's structlog chain as
  ``ketenhub serve`` sets it up (JSON to stderr, cached logger, a request's trace
  current), written to ``/dev/null``;
- ``redaction``: the redaction processor alone on that line's event;
- ``metrics``: the ``Telemetry`` calls one exchange makes (source call, audit append,
  decision with three fields, the HTTP request), on a single-process registry and on a
  multiprocess one (``serve --workers N``, mmap files).

CPU time (``time.process_time``), the minimum of several repeats: the machine is shared.

    .venv/bin/python -m bench.loglines [repeats=7]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable

import structlog

from hub.domain.exchange import Outcome
from hub.domain.ids import PartnerId
from hub.logging import configure_logging, redact_personal_data
from hub.observability import tracecontext
from hub.observability.metrics import PrometheusTelemetry

CALLS = 20_000
SOURCE = PartnerId("vdab")
FIELDS = ["disclosed", "disclosed", "no-consent"]


def per_call_us(work: Callable[[], object], repeats: int, calls: int = CALLS) -> float:
    timer = timeit.Timer(work, timer=time.process_time)
    return min(timer.repeat(repeat=repeats, number=calls)) / calls * 1e6


def one_line(log: structlog.typing.FilteringBoundLogger) -> Callable[[], object]:
    def line() -> object:
        return log.info(
            "exchange_decided",
            requester="gtb",
            source="vdab",
            purpose="trajectory-coordination",
            decision="disclosed",
            reason=None,
            disclosed=2,
            withheld=1,
            audit_seq=4711,
        )

    return line


def an_event() -> dict[str, object]:
    return {
        "requester": "gtb",
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "decision": "disclosed",
        "reason": None,
        "disclosed": 2,
        "withheld": 1,
        "audit_seq": 4711,
        "event": "exchange_decided",
        "correlation_id": tracecontext.new_trace_id(),
        "level": "info",
        "timestamp": "2026-06-15T10:00:00.123456Z",
    }


def one_exchange(metrics: PrometheusTelemetry) -> Callable[[], None]:
    def exchange() -> None:
        metrics.source_called(SOURCE, "ok", 0.004)
        metrics.audit_appended(0.002)
        metrics.exchange_decided(SOURCE, Outcome.DISCLOSED, None, FIELDS)
        metrics.request_served("/v1/exchange", "POST", 200, 0.01)

    return exchange


def main(repeats: int) -> dict[str, float]:
    found: dict[str, float] = {}
    real_stderr = sys.stderr
    with open(os.devnull, "w") as sink:  # noqa: PTH123
        sys.stderr = sink
        try:
            configure_logging("info", json=True)  # as serve does: stderr, cached loggers
            token = tracecontext.CURRENT.set(tracecontext.Trace(tracecontext.new_trace_id()))
            try:
                log = structlog.get_logger("hub.exchange")
                found["line_us"] = per_call_us(one_line(log), repeats)
            finally:
                tracecontext.CURRENT.reset(token)
        finally:
            sys.stderr = real_stderr
            structlog.reset_defaults()
            root = logging.getLogger()
            for handler in [h for h in root.handlers if h.get_name() == "ketenhub"]:
                root.removeHandler(handler)
    event = an_event()
    found["redaction_us"] = per_call_us(
        lambda: redact_personal_data(None, "info", dict(event)), repeats
    )
    found["metrics_us"] = per_call_us(one_exchange(PrometheusTelemetry([SOURCE])), repeats)
    with tempfile.TemporaryDirectory() as where:
        # prometheus_client picks its value class when first imported: a child process.
        found["metrics_multiprocess_us"] = _multiprocess(where, repeats)
    return found


def _multiprocess(where: str, repeats: int) -> float:
    import subprocess  # noqa: PLC0415 - only for this variant

    code = (
        "from bench.loglines import _multiprocess_here; "
        f"print(_multiprocess_here({where!r}, {repeats}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": where},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def _multiprocess_here(where: str, repeats: int) -> float:
    return per_call_us(one_exchange(PrometheusTelemetry([SOURCE], multiprocess_dir=where)), repeats)


if __name__ == "__main__":
    results = main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    print(json.dumps({k: round(v, 2) for k, v in results.items()}))
