"""Partner API clients: ``ketenhub client create`` (CONTRACT.md section 6)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.domain.agreements import HUB_PARTNER, PolicySet
from hub.domain.clients import (
    CLIENT_SECRET_BASIC_OR_POST,
    PRIVATE_KEY_JWT,
    hash_client_secret,
    new_client_id,
    new_client_secret,
)
from hub.domain.errors import InvalidInputError
from hub.domain.ids import PartnerId
from hub.domain.principal import ALL_SCOPES
from hub.ports import ClientRecord, Clock, Database

JwksValidator = Callable[[object], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class NewClient:
    client_id: str
    client_secret: str | None


class ClientService:
    def __init__(
        self, *, policies: PolicySet, db: Database, clock: Clock, validate_jwks: JwksValidator
    ) -> None:
        self._policies = policies
        self._db = db
        self._clock = clock
        self._validate_jwks = validate_jwks

    async def create(
        self, partner: PartnerId, scopes: frozenset[str], jwks: object | None = None
    ) -> NewClient:
        if partner != HUB_PARTNER and partner not in self._policies.partners:
            raise InvalidInputError("unknown-partner", f"No partner '{partner}' in partners.yaml.")
        unknown = scopes - ALL_SCOPES
        if unknown or not scopes:
            raise InvalidInputError(
                "invalid-scope",
                f"Scopes must be a non-empty subset of {', '.join(sorted(ALL_SCOPES))}.",
            )
        client_id = new_client_id(partner)
        secret = None if jwks is not None else new_client_secret()
        record = ClientRecord(
            client_id=client_id,
            partner=partner,
            scopes=frozenset(scopes),
            auth_method=PRIVATE_KEY_JWT if jwks is not None else CLIENT_SECRET_BASIC_OR_POST,
            secret_hash=None if secret is None else hash_client_secret(secret),
            jwks=None if jwks is None else self._validate_jwks(jwks),
            created_at=self._clock.now(),
        )
        await self._db.write(lambda uow: uow.clients.add(record))
        return NewClient(client_id, secret)
