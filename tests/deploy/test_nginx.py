"""deploy/nginx: the proxy's configuration parsed by the real nginx (``nginx -t`` loads
the certificates too) in both mutual-TLS modes, and the rules it must keep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy import nginx
from tests.deploy.tools import DEPLOY

CONF = (DEPLOY / "nginx" / "nginx.conf").read_text()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nginx.make_secrets(tmp_path_factory.mktemp("secrets"))


@pytest.mark.parametrize("mtls", ["off", "on"])
def test_nginx_accepts_the_configuration_with_its_certificates(
    mtls: str, secrets: Path, tmp_path: Path
) -> None:
    conf = nginx.render(
        tmp_path,
        secrets=secrets,
        mtls=mtls,
        upstreams=("127.0.0.1:1", "127.0.0.1:2"),
        port=nginx.free_port(),
    )
    done = nginx.check(conf)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_nginx_refuses_to_start_without_the_partner_ca_when_mtls_is_on(
    secrets: Path, tmp_path: Path
) -> None:
    conf = nginx.render(
        tmp_path,
        secrets=secrets,
        mtls="on",
        upstreams=("127.0.0.1:1", "127.0.0.1:2"),
        port=nginx.free_port(),
    )
    mtls = tmp_path / "mtls.conf"
    mtls.write_text(mtls.read_text().replace(str(secrets / "partner-ca.crt"), "/nonexistent.crt"))
    done = nginx.check(conf)
    assert done.returncode != 0
    assert "/nonexistent.crt" in done.stderr


def test_tls_is_1_2_or_1_3_with_forward_secret_aead_ciphers_and_hsts() -> None:
    protocols = re.search(r"^\s*ssl_protocols ([^;]+);", CONF, re.MULTILINE)
    assert protocols is not None
    assert protocols[1].split() == ["TLSv1.2", "TLSv1.3"]
    ciphers = re.search(r"^\s*ssl_ciphers ([^;]+);", CONF, re.MULTILINE)
    assert ciphers is not None
    for cipher in ciphers[1].split(":"):
        assert cipher.startswith("ECDHE-"), cipher
        assert cipher.endswith(("GCM-SHA256", "GCM-SHA384", "CHACHA20-POLY1305")), cipher
    hsts = re.findall(r'Strict-Transport-Security "max-age=(\d+)"', CONF)
    assert hsts
    assert all(int(age) >= 31_536_000 for age in hsts)
    assert "listen 80" not in CONF  # no plain HTTP in which a client secret could travel


def test_forwarded_headers_are_set_by_the_proxy_not_passed_from_the_client() -> None:
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in CONF
    assert "$proxy_add_x_forwarded_for" not in CONF  # it would keep a forged client value
    assert "proxy_set_header X-Forwarded-Proto https;" in CONF
    assert "proxy_set_header traceparent $http_traceparent;" in CONF


def test_the_access_log_leaves_query_strings_out() -> None:
    """GET /v1/consents?participant= and /v1/audit/events?participant= carry an INSZ."""
    log_format = CONF[CONF.index("log_format") : CONF.index("access_log")]
    assert "$uri" in log_format
    for variable in ("$request_uri", "$args", "$query_string", '$request"', "$request "):
        assert variable not in log_format, variable
