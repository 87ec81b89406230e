"""STYLE.md habit 9: the redaction processor is under every log line.

Whatever reaches a logger (a national number in any of its written forms, as text, a
number, bytes, a key, nested, inside an exception and its traceback; a JWT; bearer
and basic credentials; a client secret in a form body) leaves it redacted, through
the JSON and the console renderer, from structlog and from the standard library's
loggers (uvicorn, httpx) alike.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import date

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.logging import configure_logging, redact, redact_text

JWT = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJnZW50LWNsaWVudCJ9.c2lnbmF0dXJlLWJ5dGVz"
SECRET = "s3cr3t-Zq8vR2xK"


def insz(born: date, serial: int, bis_offset: int = 0) -> str:
    body = f"{born.year % 100:02d}{born.month + bis_offset:02d}{born.day:02d}{serial:03d}"
    prefix = "2" if born.year >= 2000 else ""
    return f"{body}{97 - int(prefix + body) % 97:02d}"


def written_forms(digits: str) -> list[str]:
    d = digits
    return [
        d,
        f"{d[0:2]}.{d[2:4]}.{d[4:6]}-{d[6:9]}.{d[9:11]}",
        f"{d[0:6]}-{d[6:9]}-{d[9:11]}",
        f"{d[0:6]}-{d[6:9]}.{d[9:11]}",
        f"{d[0:2]} {d[2:4]} {d[4:6]} {d[6:9]} {d[9:11]}",
        f"{d[0:2]}/{d[2:4]}/{d[4:6]} {d[6:9]} {d[9:11]}",
    ]


NUMBERS = st.builds(
    insz,
    st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    st.integers(min_value=1, max_value=998),
    st.sampled_from([0, 20, 40]),
)


class Captured:
    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def start(self, *, json: bool) -> None:
        self.buffer.seek(0)
        self.buffer.truncate()
        configure_logging("debug", json=json, stream=self.buffer)

    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def captured() -> Iterator[Captured]:
    found = Captured()
    yield found
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "ketenhub"]:
        root.removeHandler(handler)


def log_everywhere(digits: str) -> None:
    """Every way a value can reach a log line, each form of the number once."""
    log = structlog.get_logger("hub.test")
    for form in written_forms(digits):
        log.info("text", note=f"participant {form} asked", url=f"/v1/consents?participant={form}")
        log.info("nested", found={form: [{"deeper": (form, {form})}]}, raw=form.encode())
        log.info("key", **{f"k{form}": 1})
        try:
            int(f"cannot parse {form}")
        except ValueError:
            log.exception("exception", value=ValueError(form))
        logging.getLogger("uvicorn.error").error("stdlib %s", form, exc_info=False)
        logging.getLogger("httpx").info("HTTP Request: GET /x?participant=%s", form)
    log.info("number", participant=int(digits), as_float=float(digits))
    log.info(
        "credentials",
        header=f"Authorization: Bearer {JWT}",
        basic="Authorization: Basic Z2VudDpzM2NyM3Q=",
        body=f"grant_type=client_credentials&client_secret={SECRET}&client_id=gent",
        posted={"client_secret": SECRET},
        assertion=f"client_assertion={JWT}",
    )
    try:
        {}[f"token {JWT} for {digits}"]
    except KeyError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")


@pytest.mark.parametrize("json", [True, False], ids=["json", "console"])
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(digits=NUMBERS)
def test_no_insz_token_or_secret_reaches_a_line(
    captured: Captured, json: bool, digits: str
) -> None:
    captured.start(json=json)
    log_everywhere(digits)
    output = captured.text()
    assert output.count("\n") >= 6 * 6 + 3  # every call above wrote its line
    for form in written_forms(digits):
        assert form not in output
    assert JWT not in output
    assert JWT.split(".")[1] not in output
    assert SECRET not in output
    assert "Z2VudDpzM2NyM3Q=" not in output
    assert "<redacted-insz>" in output
    assert "Traceback" in output  # the traceback is kept, redacted


def test_a_number_written_without_its_leading_zero_is_redacted() -> None:
    born_2001 = insz(date(2001, 1, 1), 1)
    assert born_2001.startswith("0")
    assert redact(int(born_2001)) == "<redacted-insz>"
    assert redact(85073003328) == "<redacted-insz>"
    assert redact(-85073003328) == "<redacted-insz>"
    assert redact(4711) == 4711
    assert redact(123456789012) == 123456789012  # twelve digits are no INSZ


def test_audit_hashes_in_checkpoint_lines_stay_exact(captured: Captured) -> None:
    """The head hash is logged as an anchor outside the database: never mangled."""
    head = "ab" + "12345678901" + "c" * 51
    captured.start(json=True)
    structlog.get_logger("hub.audit").info("audit_checkpoint", seq=100, head=head)
    assert head in captured.text()
    assert redact_text(f"note {head}") != f"note {head}"  # elsewhere it is redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seq 123456789012 is a long number", "seq 123456789012 is a long number"),
        ("at 2026-06-15T10:00:00.123456Z", "at 2026-06-15T10:00:00.123456Z"),
        ("Authorization: bearer abc.def-ghi", "Authorization: bearer <redacted>"),
        ("password=hunter2&x=1", "password=<redacted>&x=1"),
        ('{"client_secret": "abc"}', '{"client_secret": "<redacted>"}'),
    ],
)
def test_what_is_kept_and_what_is_not(text: str, expected: str) -> None:
    assert redact_text(text) == expected
