"""deploy/nginx/nginx.conf made runnable on this machine, changing only what must change.

The container paths (``/run/secrets/...``), the upstream host names (``hub-1:8000``)
and the listening port are the compose stack's; here they become files made by
deploy/make-dev-secrets.sh, the loopback ports of the hubs under test and a free
loopback port. Each replaced text is asserted present first, so a change to the
configuration that these replacements no longer fit fails loudly.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.deploy.tools import DEPLOY, tool

SECRET_FILES: Mapping[str, str] = {
    "/run/secrets/tls_cert": "tls.crt",
    "/run/secrets/tls_key": "tls.key",
    "/run/secrets/partner_ca": "partner-ca.crt",
}


def make_secrets(directory: Path) -> Path:
    """Run deploy/make-dev-secrets.sh (openssl) into ``directory``."""
    tool("openssl")
    done = subprocess.run(
        ["/bin/sh", str(DEPLOY / "make-dev-secrets.sh"), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy/nginx no longer has {old!r}"
    return text.replace(old, new)


def render(
    directory: Path, *, secrets: Path, mtls: str, upstreams: tuple[str, str], port: int
) -> Path:
    """nginx.conf and mtls.conf in ``directory``; returns the main file."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    mtls_conf = (DEPLOY / "nginx" / "mtls" / f"{mtls}.conf").read_text()
    for container_path, name in SECRET_FILES.items():
        if container_path in mtls_conf:
            mtls_conf = mtls_conf.replace(container_path, str(secrets / name))
        if container_path in conf:
            conf = conf.replace(container_path, str(secrets / name))
    conf = _replace(conf, "server hub-1:8000", f"server {upstreams[0]}")
    conf = _replace(conf, "server hub-2:8000", f"server {upstreams[1]}")
    conf = _replace(conf, "listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    conf = _replace(conf, "listen [::]:443 ssl;", "")
    conf = _replace(conf, "access_log /dev/stdout", f"access_log {directory / 'access.log'}")
    (directory / "mtls.conf").write_text(mtls_conf)
    main = directory / "nginx.conf"
    main.write_text(conf)
    return main


def nginx_command(conf: Path, *extra: str) -> list[str]:
    directory = conf.parent
    return [
        tool("nginx"),
        "-p",
        str(directory),
        "-c",
        str(conf),
        "-g",
        f"pid {directory / 'nginx.pid'};{''.join(extra)}",
    ]


def check(conf: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t``: parse the configuration, load its certificates, then exit."""
    return subprocess.run(
        [*nginx_command(conf), "-t"], capture_output=True, text=True, timeout=60, check=False
    )


@contextlib.contextmanager
def running(conf: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """nginx in the foreground until the block ends (SIGQUIT: a graceful stop)."""
    log = (conf.parent / "nginx.out").open("wb")
    process = subprocess.Popen(
        nginx_command(conf, " daemon off;"), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (conf.parent / "nginx.out").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        log.close()
