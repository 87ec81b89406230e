"""STYLE.md habit 9, end to end: no INSZ, token or client secret in any log line.

The running app (real SQLite file, real simulated sources) is driven through client
authentication, consents, exchanges (disclosed, denied, unknown participant, a failing
source), refusals, and a ``500``, with every log line captured, the hub's own and the
libraries' (httpx logs each request with its URL), through the JSON and the console
renderer. The participants' numbers are sent in every form a client might use.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from hub.api.app import create_app
from hub.domain.ids import PartnerId
from hub.logging import configure_logging
from tests.api.conftest import Hub
from tests.unit.test_logging_redaction import written_forms


@pytest.fixture(params=[True, False], ids=["json", "console"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("debug", json=request.param, stream=buffer)
    yield buffer
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "ketenhub"]:
        root.removeHandler(handler)


async def drive(hub: Hub, http: httpx.AsyncClient, person: str, stranger: str) -> list[str]:
    """Everything a partner and the hub do that could log; returns the secrets used."""
    made = await hub.container.clients.create(PartnerId("gtb"), frozenset({"exchange"}))
    secret = made.client_secret
    assert secret is not None
    basic = base64.b64encode(f"{made.client_id}:{secret}".encode()).decode()
    form = {"grant_type": "client_credentials"}
    issued = await http.post("/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    posted = await http.post(
        "/oauth/token", data={**form, "client_id": made.client_id, "client_secret": secret}
    )
    assert posted.status_code == 200
    wrong = await http.post(
        "/oauth/token", data={**form, "client_id": made.client_id, "client_secret": secret[::-1]}
    )
    assert wrong.status_code in (400, 401)

    for shown in written_forms(person)[1:]:
        bad = await hub.exchange(
            "gtb", participant=shown, source="vdab", fields=["trajectory.status"]
        )
        assert bad.status_code == 422
        listed = await http.get(f"/v1/consents?participant={shown}", headers=hub.auth("gtb"))
        assert listed.status_code == 422
    granted = await hub.consent(
        "gtb", person, ["icf.assessment"], evidence=f"signed by {written_forms(person)[1]}"
    )
    assert granted.status_code == 201
    assert (
        await http.get(f"/v1/consents?participant={person}", headers=hub.auth("gtb"))
    ).status_code == 200
    exchange = {
        "participant": person,
        "source": "vdab",
        "purpose": "trajectory-coordination",
        "fields": ["trajectory.status", "icf.assessment"],
        "actor": {"role": "casemanager-work", "id": "u-1"},
    }
    disclosed = await http.post(
        "/v1/exchange", json=exchange, headers={"Authorization": f"Bearer {token}"}
    )
    assert disclosed.status_code == 200
    revoked = await http.post(
        f"/v1/consents/{granted.json()['id']}/revoke", headers=hub.auth("gtb")
    )
    assert revoked.status_code == 200
    assert (
        await hub.exchange("gtb", participant=stranger, source="vdab", fields=["trajectory.status"])
    ).status_code == 404
    assert (
        await hub.exchange("gtb", participant=person, source="vdab", fields=["trajectory.colour"])
    ).status_code == 403
    hub.simulators.faults["ocmw-gent"].status = 500
    assert (
        await hub.exchange(
            "gtb", participant=person, source="ocmw-gent", fields=["social_assistance.leefloon"]
        )
    ).status_code == 502
    forged = await http.get("/v1/catalogue", headers={"Authorization": f"Bearer {token}x"})
    assert forged.status_code == 401
    crashed = await http.get(f"/crash/{person}")
    assert crashed.status_code == 500
    return [secret, token, basic]


async def test_no_insz_token_or_secret_reaches_any_log_line(
    hub: Hub, log_output: io.StringIO
) -> None:
    app = create_app(hub.container.settings, container=hub.container)

    @app.get("/crash/{participant}", include_in_schema=False)
    async def crash(participant: str) -> None:
        raise RuntimeError(f"a bug that names {participant}")

    person = hub.person("vdab", "ocmw-gent")
    stranger = hub.stranger()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        secrets_used = await drive(hub, http, person, stranger)

    output = log_output.getvalue()
    events = {"exchange_decided", "consent_granted", "unexpected_error"}
    assert {event for event in events if event not in output} == set()
    assert "HTTP Request" in output  # the library lines are in it too
    for digits in (person, stranger):
        for form in written_forms(digits):
            assert form not in output, form
    for secret in secrets_used:
        assert secret not in output
    assert hub.token("gtb").split(".")[2] not in output
    assert "<redacted-insz>" in output
