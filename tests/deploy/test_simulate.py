"""``ketenhub simulate``: the demo sources as a service of their own (deploy/compose.yaml's
``simulators``, the k8s demo overlay). Serving is exercised by tests/deploy/test_proxy.py;
here, its refusals: a plain one-line message, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from hub.cli.simulate import parse_sources
from hub.demo.simulator import DEFAULT_PORTS


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", "simulate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_source_means_all_five_on_the_demo_ports() -> None:
    assert parse_sources([]) == dict(DEFAULT_PORTS)
    assert parse_sources(["vdab", "levanto=0"]) == {"vdab": 8101, "levanto": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nosuch=8101"], "'nosuch' is not a demo source"),
        (["--source", "vdab=http"], "the port must be a number from 0 to 65535"),
        (["--source", "vdab=70000"], "the port must be a number from 0 to 65535"),
        (["--source", "vdab=1", "--source", "vdab=2"], "vdab is given twice"),
        (["--source", "vdab", "--source", "vdab=2"], "vdab is given twice"),
    ],
)
def test_a_bad_source_is_refused_with_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = simulate(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_refused_with_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = simulate("--source", f"vdab={port}")
    assert done.returncode == 2
    assert done.stderr.startswith("The simulators cannot listen on 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1
