"""HTTP glue of the per-client request limit (``hub.ratelimit``): counting and the 429.

``count`` runs inside ``hub.api.deps.require`` right after the access token is
verified, so that a refused request reaches no route: no source is asked, nothing
is audited or written.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hub.api.problems import problem_response
from hub.domain.principal import Principal
from hub.ratelimit import RateLimitedError, RateLimiter


def count(limiter: RateLimiter, principal: Principal) -> None:
    """One call of the token's OAuth client; ``RateLimitedError`` when it is one too many."""
    limiter.check(principal.client_id)


async def _rate_limited(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)
    # RFC 9110 10.2.3: delay-seconds, a whole number.
    return problem_response(exc.status, exc.to_problem(), {"Retry-After": str(exc.retry_after)})


def install(app: FastAPI) -> None:
    """More specific than the ``HubError`` handler, so Starlette picks this one."""
    app.add_exception_handler(RateLimitedError, _rate_limited)
