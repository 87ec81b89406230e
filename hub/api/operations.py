"""Operations: ``GET /healthz``, ``GET /readyz`` and ``GET /metrics``.

All three are unauthenticated, cheap, not rate limited and not audited: a load
balancer, an orchestrator and a Prometheus server call them every few seconds.

- ``/healthz``: the process is up and its event loop answers. No database call, so
  that a database outage does not make an orchestrator restart every hub at once.
- ``/readyz``: the hub can serve: the database answers a trivial query within
  ``READY_TIMEOUT_S``, the policy set is loaded, and the active signing key signs
  (a probe JWS signed and verified). Otherwise ``503`` problem+json (reason
  ``not-ready``) naming the checks that failed: names only, never an error's text
  (it can hold SQL or a path).
- ``/metrics``: Prometheus text format (``hub.observability.metrics``). Who may read
  it: whoever reaches the hub's own port. The hub listens on an internal network
  behind the reverse proxy, which does not pass ``/metrics`` on (deploy/); the
  metrics hold no personal data (no INSZ, pseudonym, consent id, client id or
  secret in any label), only partner ids, reasons and volumes
  (docs/threat-model.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.api.openapi import problems
from hub.api.problems import generic_problem, problem_response
from hub.bootstrap import Container
from hub.domain.errors import HubError
from hub.observability.metrics import CONTENT_TYPE

READY_TIMEOUT_S: Final = 2.0
"""How long ``/readyz`` waits for the database: below a probe's usual timeout."""
PROBE_TYP: Final = "ketenhub-readiness-probe"
"""The ``typ`` of the JWS ``/readyz`` signs and verifies; it is never sent anywhere."""
CHECKS: Final = ("database", "policy", "signing-key")

log = structlog.get_logger("hub.api")
router = APIRouter(tags=["operations"])

_CHECK_SCHEMA: Final = {
    "type": "object",
    "properties": {name: {"enum": ["ok", "failed"]} for name in CHECKS},
}


@router.get(
    "/healthz",
    summary="The process is up (liveness; no dependency is checked)",
    responses={
        200: {
            "description": "The process answers",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    }
                }
            },
        }
    },
)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="The hub can serve: database reachable, policy loaded, signing key usable",
    responses={
        200: {
            "description": "Every check passed",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {"status": {"const": "ready"}, "checks": _CHECK_SCHEMA},
                    }
                }
            },
        },
        **problems(
            503,
            s503="Not ready (reason not-ready); checks names each check as ok or failed",
        ),
    },
)
async def readyz(request: Request) -> JSONResponse:
    hub: Container | None = getattr(request.app.state, "container", None)
    if hub is None:
        results = dict.fromkeys(CHECKS, "failed")
    else:
        results = {
            "database": await _database(hub),
            "policy": _policy(hub),
            "signing-key": _signing_key(hub),
        }
    failed = [name for name, result in results.items() if result != "ok"]
    if not failed:
        return JSONResponse({"status": "ready", "checks": results})
    log.warning("not_ready", failed=failed)
    document: dict[str, Any] = generic_problem(
        503, "not-ready", f"The hub cannot serve: {', '.join(failed)} failed."
    )
    document["checks"] = results
    return problem_response(503, document)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    responses={
        200: {
            "description": "Requests, decisions by reason, source and audit append "
            "latency, token errors; of every worker of this serve",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problems(503, s503="The hub is starting or stopping"),
    },
)
async def metrics(request: Request) -> Response:
    hub: Container | None = getattr(request.app.state, "container", None)
    if hub is None:
        return problem_response(
            503, generic_problem(503, "not-ready", "The hub is starting or stopping.")
        )
    # Off the event loop: in multiprocess mode a scrape reads every worker's file.
    body = await run_in_threadpool(hub.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)


async def _database(hub: Container) -> str:
    if hub.db.file_replaced():
        return "failed"
    try:
        await asyncio.wait_for(hub.db.read(lambda uow: uow.audit.head()), READY_TIMEOUT_S)
    except (HubError, TimeoutError):
        return "failed"
    return "ok"


def _policy(hub: Container) -> str:
    policies = hub.policies
    return "ok" if policies.partners and policies.agreements else "failed"


def _signing_key(hub: Container) -> str:
    try:
        probe = hub.keys.sign({"probe": "readiness"}, typ=PROBE_TYP)
        usable = hub.keys.verify(probe, typ=PROBE_TYP) is not None
    except Exception:  # noqa: BLE001 - a probe reports a failure, it does not raise one
        usable = False
    return "ok" if usable else "failed"
