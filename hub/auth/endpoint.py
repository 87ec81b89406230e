"""``POST /oauth/token``: the client credentials grant (RFC 6749 4.4), CONTRACT.md 3.

Clients authenticate with ``client_secret_basic`` (RFC 6749 2.3.1, the
``Authorization`` header), ``client_secret_post`` (the same, in the body) or
``private_key_jwt`` (RFC 7523, ``hub.auth.assertion``): a JWT signed with the
client's registered key, with a ``jti`` that the hub refuses to see twice.

authlib's generic ``AuthorizationServer`` does the protocol; it is synchronous and
the database is not, so :meth:`TokenEndpoint.handle` reads what authlib will need
first (the one client the request names), runs authlib on it, and afterwards
records a ``private_key_jwt`` assertion's ``jti`` in its own write transaction: the
token is answered only when that ``jti`` was new.

Errors follow RFC 6749 5.2 (``error``, ``error_description``) and carry the RFC 9457
problem members as well. ``invalid_client`` is ``401`` with a ``Basic`` challenge
when the client tried the ``Authorization`` header or sent no credentials at all
(RFC 6749 5.2), ``400`` otherwise. Too many requests for one client id (or, naming
none, from one address) are ``429`` with ``Retry-After`` and ``error: slow_down`` (the
code registered for token error responses by RFC 8628 3.5), answered before the
database is read. Until the client is authenticated, the
description says no more than that authentication failed: which of unknown client,
wrong secret or bad signature it was is nobody's business but the hub's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientCredentialsGrant,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from joserfc.errors import (
    JoseError,
)
from joserfc.jws import extract_compact

from hub.auth.assertion import (
    AUTHENTICATION_FAILED,
    AssertionRejectedError,
    PrivateKeyJwt,
    UsedAssertion,
)
from hub.auth.tokens import TokenIssuer, format_scope
from hub.domain.clients import CLIENT_SECRET_BASIC_OR_POST, PRIVATE_KEY_JWT, secret_matches
from hub.domain.errors import problem_type
from hub.domain.ids import PartnerId
from hub.domain.principal import Scope
from hub.ports import ClientRecord, SilentTelemetry, Telemetry
from hub.ratelimit import RATE_LIMITED, RateLimiter

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hub.ports import Clock, Database

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105  # a path, not a password
FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
GRANT_TYPE: Final = "client_credentials"
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_CLIENT_ID_LENGTH: Final = 128
MAX_FORM_FIELDS: Final = 20
BASIC_CHALLENGE: Final = 'Basic realm="ketenhub"'

_METHODS_OF: Final = {
    CLIENT_SECRET_BASIC_OR_POST: frozenset({"client_secret_basic", "client_secret_post"}),
    PRIVATE_KEY_JWT: frozenset({PRIVATE_KEY_JWT}),
}
_JSON_HEADERS: Final = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
_TITLES: Final = {
    "invalid_request": "Invalid token request",
    "invalid_client": "Client authentication failed",
    "invalid_grant": "Invalid grant",
    "unauthorized_client": "Unauthorized client",
    "unsupported_grant_type": "Unsupported grant type",
    "invalid_scope": "Invalid scope",
}
_UNSUPPORTED_GRANT: Final = f"Only grant_type={GRANT_TYPE} is supported."
_AUTHLIB_URI: Final = "https://ketenhub.invalid/oauth/token"
"""What authlib is told the request URI is.

authlib only uses it to refuse plain HTTP, judged from a URL built from the Host
header the client sent: no control at all. TLS is terminated in front of the hub
(``deploy/``), and the URL that matters, the assertion ``aud``, is checked in full.
"""


@dataclass(frozen=True, slots=True)
class TokenResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class TokenEndpoint:
    """The token endpoint, free of any web framework: the API layer adapts it."""

    def __init__(
        self,
        issuer: TokenIssuer,
        clock: Clock,
        public_url: str | None,
        *,
        limiter: RateLimiter | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        self._public_url = public_url.rstrip("/") if public_url else None
        self._limiter = limiter
        self._telemetry = telemetry or SilentTelemetry()

    async def handle(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        db: Database,
        remote: str | None = None,
    ) -> TokenResponse:
        """``_answer``, with each error answer counted by its RFC 6749 5.2 ``error`` code."""
        response = await self._answer(url=url, headers=headers, body=body, db=db, remote=remote)
        error = response.body.get("error")
        if isinstance(error, str):
            self._telemetry.token_refused("token", error)
        return response

    async def _answer(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        db: Database,
        remote: str | None = None,
    ) -> TokenResponse:
        """Answer one token request; ``url`` is the URL it came to, ``remote`` the caller's address.

        Raises only what ``db`` raises (``ServiceUnavailableError``): no token is
        issued when the replay check cannot be written.
        """
        now = self._clock.now()
        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization")
        try:
            form = _parse_form(lowered.get("content-type"), body)
            _check_grant_type(form)
            presented = _presented_credentials(authorization, form)
        except OAuth2Error as error:
            # A Basic header that names no client is a failed authentication (401).
            return self._throttled(None, remote) or _error_response(
                error, challenge=isinstance(error, InvalidClientError)
            )
        throttled = self._throttled(presented.client_id, remote)
        if throttled is not None:
            return throttled

        record = None
        if presented.client_id is not None:
            client_id = presented.client_id
            record = await db.read(lambda uow: uow.clients.get(client_id))

        token_url = f"{self._public_url}{TOKEN_PATH}" if self._public_url else _without_query(url)
        outcome = _run_authlib(
            form=form,
            authorization=authorization,
            client=None if record is None else _Client(record),
            token_url=token_url,
            issuer=self._issuer,
            now=now,
        )
        if isinstance(outcome, OAuth2Error):
            return _error_response(outcome, challenge=presented.challenge)

        if outcome.assertion is not None:
            used = outcome.assertion
            fresh = await db.write(
                lambda uow: uow.assertions.remember(used.client_id, used.jti, used.expires_at, now)
            )
            if not fresh:
                rejected = AssertionRejectedError("The client assertion was used before.")
                return _error_response(rejected, challenge=False)
        return TokenResponse(status=200, body=dict(outcome.body), headers=dict(_JSON_HEADERS))

    def _throttled(self, client_id: str | None, remote: str | None) -> TokenResponse | None:
        """Count the request against its client id, or its address when it names none."""
        if self._limiter is None:
            return None
        key = f"client:{client_id}" if client_id is not None else f"address:{remote}"
        wait = self._limiter.retry_after(key)
        return None if wait is None else _rate_limited_response(wait)


# -- before authlib: the form and who the client says it is --------------------------


@dataclass(frozen=True, slots=True)
class _Presented:
    client_id: str | None
    challenge: bool
    """Answer a failed authentication with 401 and ``WWW-Authenticate``."""


def _parse_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """The request body (RFC 6749 3.2: form-encoded, UTF-8, no repeated parameter)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequestError(f"The token request body must be {FORM_MEDIA_TYPE}.")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("The token request body is not a valid form.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequestError("A parameter of the token request is repeated.")
        form[name] = value
    return form


def _check_grant_type(form: Mapping[str, str]) -> None:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequestError("The grant_type parameter is required.")
    if grant_type != GRANT_TYPE:
        raise OAuth2Error(error="unsupported_grant_type", description=_UNSUPPORTED_GRANT)


def _presented_credentials(authorization: str | None, form: Mapping[str, str]) -> _Presented:
    """The client id the request names, so that it can be loaded before authlib runs.

    RFC 6749 2.3: a client uses one authentication method per request.
    """
    basic = authorization is not None and authorization.split(" ", 1)[0].lower() == "basic"
    posted_secret = bool(form.get("client_secret"))
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    if basic + posted_secret + bool(assertion or assertion_type) > 1:
        raise InvalidRequestError("Use exactly one client authentication method.")
    form_client_id = form.get("client_id") or None

    client_id: str | None = form_client_id
    if basic:
        try:
            client_id = extract_basic_authorization({"Authorization": authorization})[0]
        except (UnicodeError, ValueError):
            # RFC 7617: user-id and password are UTF-8; anything else names no client.
            raise InvalidClientError(status_code=401, description=AUTHENTICATION_FAILED) from None
    elif assertion or assertion_type:
        if assertion_type != ASSERTION_TYPE or not assertion:
            raise InvalidRequestError(
                f"A client assertion needs client_assertion_type={ASSERTION_TYPE}."
            )
        client_id = _unverified_subject(assertion)
    if form_client_id is not None and client_id is not None and form_client_id != client_id:
        raise InvalidRequestError("The client_id parameter names another client.")
    if client_id is not None and (
        not client_id or len(client_id) > MAX_CLIENT_ID_LENGTH or not client_id.isprintable()
    ):
        # Names no client the hub could have made; a NUL byte would not even reach
        # PostgreSQL's text comparison (a 503 for the client's own mistake).
        client_id = None
    return _Presented(client_id=client_id, challenge=basic or not (posted_secret or assertion))


def _without_query(url: str) -> str:
    """The endpoint's URL as an assertion's ``aud`` names it: no query, no fragment."""
    return urlsplit(url)._replace(query="", fragment="").geturl()


def _unverified_subject(assertion: str) -> str | None:
    """The ``sub`` of an assertion, read only to find its client's keys."""
    try:
        payload = json.loads(extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError, TypeError):
        return None
    subject = payload.get("sub") if isinstance(payload, dict) else None
    return subject if isinstance(subject, str) else None


# -- authlib ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Issued:
    body: Mapping[str, Any]
    assertion: UsedAssertion | None


def _run_authlib(
    *,
    form: dict[str, str],
    authorization: str | None,
    client: _Client | None,
    token_url: str,
    issuer: TokenIssuer,
    now: datetime,
) -> _Issued | OAuth2Error:
    assertions = PrivateKeyJwt(token_url=token_url, now=now)
    server = _Server(client=client, issuer=issuer, now=now)
    server.register_grant(_ClientCredentials)
    server.register_client_auth_method(PRIVATE_KEY_JWT, assertions)
    request = _Request(form=form, authorization=authorization)
    result = server.create_token_response(request)
    if isinstance(result, OAuth2Error):
        return result
    used = assertions.used if request.auth_method == PRIVATE_KEY_JWT else None
    return _Issued(body=result, assertion=used)


class _Client(ClientMixin):  # type: ignore[misc]  # authlib is untyped
    """A ``ClientRecord`` as authlib sees a client (RFC 6749 2)."""

    def __init__(self, record: ClientRecord) -> None:
        self.record = record

    @property
    def client_id(self) -> str:
        return self.record.client_id

    def get_client_id(self) -> str:
        return self.record.client_id

    def check_client_secret(self, client_secret: object) -> bool:
        """One hash and one constant-time comparison, whoever the client is.

        An unknown client (``_unknown_client``), or one without a secret, is compared
        with a hash that no secret has, so that the time taken does not tell which.
        """
        stored = self.record.secret_hash
        presented = client_secret if isinstance(client_secret, str) else ""
        matches = secret_matches(presented, stored or _NO_SECRET_HASH)
        return (
            matches
            and stored is not None
            and isinstance(client_secret, str)
            and self.record.auth_method == CLIENT_SECRET_BASIC_OR_POST
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in _METHODS_OF.get(self.record.auth_method, ())

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def get_allowed_scope(self, scope: str | None) -> str:
        return format_scope(self.granted_scopes(scope))

    def granted_scopes(self, requested: str | None) -> frozenset[Scope]:
        """RFC 6749 3.3: what is asked and allowed; without ``scope``, all that is allowed.

        A scope the hub does not know is ``invalid_scope``; one the client may not
        have is left out, and the response's ``scope`` says what was granted.
        """
        allowed = frozenset(scope for scope in Scope if scope.value in self.record.scopes)
        names = (requested or "").split()
        if names:
            known = {scope.value: scope for scope in Scope}
            if any(name not in known for name in names):
                raise InvalidScopeError(
                    "Unknown scope; the scopes are exchange, consent:write and audit:read."
                )
            allowed &= frozenset(known[name] for name in names)
        if not allowed:
            raise InvalidScopeError("The client may not have any of the requested scopes.")
        return allowed

    def __repr__(self) -> str:
        return f"_Client({self.record.client_id!r})"


_NO_SECRET_HASH: Final = "sha256:" + "0" * 64
"""What a secret is compared with when there is none to compare with: no known input
hashes to it, and ``stored is not None`` is checked after the comparison anyway."""


def _unknown_client(client_id: str, now: datetime) -> _Client:
    """A stand-in for a client id the hub does not know (no scopes, no secret, no keys).

    authlib would refuse an unknown client before comparing any secret; answering with
    this one instead makes it do the same work as for a known client with a wrong secret.
    """
    record = ClientRecord(
        client_id=client_id,
        partner=PartnerId(""),
        scopes=frozenset(),
        auth_method=CLIENT_SECRET_BASIC_OR_POST,
        secret_hash=None,
        jwks=None,
        created_at=now,
    )
    return _Client(record)


class _TokenBody(dict[str, Any]):
    """The token response; authlib logs it at debug level, so it shows no token."""

    def __repr__(self) -> str:
        return "<token response>"


class _Server(AuthorizationServer):  # type: ignore[misc]  # authlib is untyped
    """One request's authorization server: it knows one client, preloaded."""

    def __init__(self, *, client: _Client | None, issuer: TokenIssuer, now: datetime) -> None:
        super().__init__()
        self._client = client
        self._issuer = issuer
        self._now = now

    def query_client(self, client_id: object) -> _Client:
        """The preloaded client, or one that goes the same way and never authenticates."""
        if self._client is not None and client_id == self._client.client_id:
            return self._client
        return _unknown_client(str(client_id), self._now)

    def generate_token(
        self, *, client: _Client, scope: str | None = None, **_unused: object
    ) -> _TokenBody:
        # RFC 6749 4.4.3: no refresh token; the access token is an RFC 9068 JWT (authlib
        # passes grant_type, user, expires_in and include_refresh_token, unused here).
        scopes = client.granted_scopes(scope)
        token, lifetime = self._issuer.issue(client.record, scopes, self._now)
        return _TokenBody(
            access_token=token,
            token_type="Bearer",  # noqa: S106  # RFC 6750 token type, not a password
            expires_in=lifetime,
            scope=format_scope(scopes),
        )

    def save_token(self, token: object, request: object) -> None:
        """Nothing to keep: the token is self-contained and checked by signature."""

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """No signal system here."""

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def handle_response(self, _status: int, body: _TokenBody, _headers: object) -> _TokenBody:
        return body

    def handle_error_response(self, _request: object, error: OAuth2Error) -> OAuth2Error:
        return error


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]  # authlib is untyped
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        PRIVATE_KEY_JWT,
    ]

    def validate_requested_scope(self) -> None:
        # Checked against the client here, before a token is made.
        self.request.client.granted_scopes(self.request.payload.scope)


class _Payload(OAuth2Payload):  # type: ignore[misc]  # authlib is untyped
    def __init__(self, form: dict[str, str]) -> None:
        self._form = form
        self._datalist = {name: [value] for name, value in form.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]  # authlib is untyped
    def __init__(self, *, form: dict[str, str], authorization: str | None) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        super().__init__("POST", _AUTHLIB_URI, headers=headers)
        self.payload = _Payload(form)
        self._form = form

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


# -- answers ------------------------------------------------------------------------


def _rate_limited_response(retry_after: int) -> TokenResponse:
    """RFC 6585 4 and RFC 6749 5.2 with the problem members of the API's 429."""
    description = f"Too many token requests; retry in {retry_after} seconds."
    body = {
        "error": "slow_down",
        "error_description": description,
        "type": problem_type(RATE_LIMITED),
        "title": "Too many requests",
        "status": 429,
        "detail": description,
        "reason": RATE_LIMITED,
    }
    headers = {**_JSON_HEADERS, "Retry-After": str(retry_after)}
    return TokenResponse(status=429, body=body, headers=headers)


def _error_response(error: OAuth2Error, *, challenge: bool) -> TokenResponse:
    """RFC 6749 5.2, with the RFC 9457 members beside; never a secret or a trace."""
    code = str(error.error)
    if code == "invalid_client" and not isinstance(error, AssertionRejectedError):
        description = AUTHENTICATION_FAILED
    elif code == "unsupported_grant_type":
        description = _UNSUPPORTED_GRANT
    else:
        description = str(error.get_error_description() or _TITLES.get(code, "Invalid request"))
    status = 401 if code == "invalid_client" and challenge else 400
    headers = dict(_JSON_HEADERS)
    if status == 401:  # noqa: PLR2004
        headers["WWW-Authenticate"] = BASIC_CHALLENGE
    body = {
        "error": code,
        "error_description": description,
        "type": problem_type(code),
        "title": _TITLES.get(code, "Invalid request"),
        "status": status,
        "detail": description,
    }
    return TokenResponse(status=status, body=body, headers=headers)
