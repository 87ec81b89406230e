"""Dependencies: the container and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Depends, Request

from hub.api.ratelimit import count
from hub.bootstrap import Container
from hub.domain.errors import ForbiddenError, InvalidInputError, UnauthenticatedError
from hub.domain.ids import has_insz_shape
from hub.domain.principal import Principal, Scope
from hub.policy.decide import BRUSSELS


async def container(request: Request) -> Container:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    found: Container = request.app.state.container
    return found


ContainerDep = Annotated[Container, Depends(container)]


def require(scope: Scope | None) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: a valid access token (RFC 6750), carrying ``scope`` when one is named.

    Every authenticated call counts against its OAuth client's rate limit (429).
    """

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        hub: Container = request.app.state.container
        if kind.lower() != "bearer" or not token.strip():
            # RFC 6750 3.1: a request without a token is refused as invalid_request.
            hub.metrics.token_refused("bearer", "invalid_request")
            raise UnauthenticatedError("invalid-token", "A Bearer access token is required.")
        found = hub.verifier.verify(token.strip(), hub.clock.now())
        # Before the scope and before any work: a refused call changes nothing.
        count(hub.rate_limiter, found)
        if scope is not None and scope not in found.scopes:
            hub.metrics.token_refused("bearer", "insufficient_scope")
            raise ForbiddenError("insufficient-scope", f"This needs the '{scope}' scope.")
        return found

    return principal


def parse_moment(value: str, *, name: str, end_of_day: bool = False) -> datetime:
    """ISO 8601 date-time (Europe/Brussels when it has no offset), or a date; in UTC.

    A date means its start, or with ``end_of_day`` the end of that day (CONTRACT.md 3).
    """
    try:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=BRUSSELS)
        else:
            moment = datetime.combine(day, time(), tzinfo=BRUSSELS)
            if end_of_day:
                moment = datetime.combine(day + timedelta(days=1), time(), tzinfo=BRUSSELS)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInputError(
            "invalid-datetime", f"{name} must be an ISO 8601 date-time or date from 0002 to 9998."
        ) from None


def check_identifiers(fields: list[str], **identifiers: str) -> None:
    """Fields named once each; no identifier a client chooses may carry a national number.

    Such identifiers are stored and shown to privacy officers: people are named only
    as ``participant``.
    """
    if len(set(fields)) != len(fields):
        raise InvalidInputError("duplicate-field", "Each field may be named once.")
    named = {**identifiers, **{f"fields[{i}]": f for i, f in enumerate(fields)}}
    for name, value in named.items():
        if has_insz_shape(value):
            raise InvalidInputError(
                "personal-data-in-identifier",
                f"{name} looks like a national number; identify people only as participant.",
            )
