"""The composition root: settings in, a wired ``Container`` out.

The only module that knows the concrete adapters, the database and the key store.
Nothing here runs at import time; ``build`` runs inside the event loop that will
serve, because the source connections and the database engine belong to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from adapters.httpclient import HttpClient
from adapters.registry import ADAPTERS, adapter_names
from adapters.rest import MAX_BODY_BYTES
from hub.auth.datakeys import MasterKeyRing
from hub.auth.endpoint import TokenEndpoint
from hub.auth.jwks import validate_client_jwks
from hub.auth.keys import FileKeyRing
from hub.auth.tokens import TokenIssuer, TokenVerifier
from hub.clock import SystemClock
from hub.db.database import SqlDatabase, create_engine
from hub.domain.agreements import PolicySet
from hub.domain.errors import ServiceUnavailableError
from hub.domain.ids import PartnerId
from hub.observability.metrics import PrometheusTelemetry
from hub.observability.sources import TimedSource
from hub.policy.loader import load_policy_dir
from hub.ports import Clock, SourceAdapter
from hub.ratelimit import RateLimiter
from hub.services.audit import AuditService, AuditTrail
from hub.services.clients import ClientService
from hub.services.consents import ConsentService
from hub.services.datakeys import ParticipantSealer
from hub.services.erasure import ErasureService
from hub.services.exchange import ExchangeService
from hub.settings import Settings

log = structlog.get_logger("hub")

# Partners' systems are few; keep connections to them warm, bounded per host.
_CONNECTIONS_PER_SOURCE = 64


def load_policies(settings: Settings) -> PolicySet:
    """Raises ``PolicyError`` naming file, line and problem; the hub does not start then."""
    return load_policy_dir(settings.policy_dir, adapters=adapter_names())


@dataclass
class Container:
    settings: Settings
    policies: PolicySet
    db: SqlDatabase
    keys: FileKeyRing
    masters: MasterKeyRing
    """The master keys that wrap the participants' data keys (``hub.auth.datakeys``)."""
    clock: Clock
    http: HttpClient
    """The connections to every source (``adapters.httpclient``), shared by the adapters."""
    sources: Mapping[PartnerId, SourceAdapter]
    exchange: ExchangeService
    consents: ConsentService
    audit: AuditService
    clients: ClientService
    erasure: ErasureService
    tokens: TokenIssuer
    verifier: TokenVerifier
    token_endpoint: TokenEndpoint
    rate_limiter: RateLimiter
    """Partner API calls per OAuth client (``KETENHUB_RATE_LIMIT``)."""
    metrics: PrometheusTelemetry
    """What ``GET /metrics`` shows; the use cases report to it as their ``Telemetry``."""
    _closed: bool = field(default=False, repr=False)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.audit.checkpoint()  # the hub signs the head when it stops (CONTRACT.md 4)
        except ServiceUnavailableError:
            log.warning("audit_checkpoint_not_signed_at_stop")
        for adapter in self.sources.values():
            await adapter.aclose()
        await self.http.close()
        await self.db.dispose()


async def build(
    settings: Settings,
    *,
    policies: PolicySet | None = None,
    clock: Clock | None = None,
    sources: Mapping[PartnerId, SourceAdapter] | None = None,
    keys: FileKeyRing | None = None,
    masters: MasterKeyRing | None = None,
) -> Container:
    """Wire the hub. ``sources`` and ``keys`` replace the configured ones (tests with fakes).

    Raises ``KeyRingError`` when the key directory is unusable, or missing while the
    database holds data; ``ServiceUnavailableError`` when the database cannot be read.
    """
    policies = policies if policies is not None else load_policies(settings)
    clock = clock or SystemClock()
    http = HttpClient(max_body=MAX_BODY_BYTES, per_origin=_CONNECTIONS_PER_SOURCE)
    if sources is None:
        sources = {
            partner.id: ADAPTERS[partner.source.adapter](partner.source, http)
            for partner in policies.partners.values()
            if partner.source is not None
        }
    metrics = PrometheusTelemetry(sources)
    db = SqlDatabase(create_engine(settings.database_url), telemetry=metrics)
    try:
        if keys is None:
            # New keys only for a database without data: see FileKeyRing.load_or_create.
            fresh = not await db.holds_data()
            keys = FileKeyRing.open(
                settings.key_dir, production=settings.production, may_create=fresh, clock=clock
            )
        if masters is None:
            # A new master key only while no data key is wrapped under one, and never in
            # production, where `ketenhub keys init` makes it with the other keys.
            wrapped = await db.read(lambda uow: uow.participant_keys.count_by_master())
            masters = MasterKeyRing.load_or_create(
                settings.key_dir, may_create=not wrapped and not settings.production
            )
    except BaseException:
        await db.dispose()
        raise
    sources = {source: TimedSource(source, inner, metrics) for source, inner in sources.items()}
    issuer = TokenIssuer(keys, settings.issuer, settings.issuer)
    trail = AuditTrail(keys=keys, clock=clock)
    sealer = ParticipantSealer(masters=masters, keys=keys, clock=clock)
    return Container(
        settings=settings,
        policies=policies,
        db=db,
        keys=keys,
        masters=masters,
        clock=clock,
        http=http,
        sources=sources,
        exchange=ExchangeService(
            policies=policies,
            db=db,
            sources=sources,
            keys=keys,
            clock=clock,
            trail=trail,
            sealer=sealer,
            telemetry=metrics,
        ),
        consents=ConsentService(
            policies=policies,
            db=db,
            keys=keys,
            clock=clock,
            issuer=settings.issuer,
            sealer=sealer,
        ),
        erasure=ErasureService(db=db, keys=keys, clock=clock),
        audit=AuditService(db=db, keys=keys, trail=trail),
        clients=ClientService(
            policies=policies, db=db, clock=clock, validate_jwks=validate_client_jwks
        ),
        tokens=issuer,
        verifier=TokenVerifier(keys, settings.issuer, settings.issuer, telemetry=metrics),
        token_endpoint=TokenEndpoint(
            issuer,
            clock,
            settings.public_url,
            limiter=RateLimiter.from_setting(
                settings.token_rate_limit, name="KETENHUB_TOKEN_RATE_LIMIT", namespace="token"
            ),
            telemetry=metrics,
        ),
        rate_limiter=RateLimiter.from_setting(
            settings.rate_limit, name="KETENHUB_RATE_LIMIT", namespace="api"
        ),
        metrics=metrics,
    )
