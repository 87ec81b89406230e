"""Request bodies as the API accepts them: strict, closed (no mass assignment), bounded."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")]
FieldNameStr = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=80)
]
ActorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@-]{1,200}$")]
InszStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32),
    Field(
        json_schema_extra={"pattern": "^[0-9]{11}$"},
        description="INSZ: national register or BIS number, 11 digits with a mod-97 check",
    ),
]
"""Enforced by ``Insz.parse`` in the route, so that the error names the INSZ rule."""
CONSENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""A consent id as the hub makes them (a UUID) and a little wider; anything else, a NUL
byte above all (PostgreSQL refuses it in a text comparison), never reaches the database."""


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ActorBody(Closed):
    role: Slug
    id: ActorId


class ExchangeBody(Closed):
    participant: InszStr
    source: Slug
    purpose: Slug
    fields: Annotated[list[FieldNameStr], Field(min_length=1, max_length=100)]
    actor: ActorBody


class ConsentBody(Closed):
    participant: InszStr
    recipient: Slug
    purpose: Slug
    fields: Annotated[list[FieldNameStr], Field(min_length=1, max_length=100)]
    valid_until: Annotated[str, StringConstraints(max_length=40)] | None = None
    """ISO 8601 date-time, or a date meaning the end of that day (Europe/Brussels)."""
    evidence: Annotated[str, StringConstraints(max_length=4000)] | None = None
