"""Processes under test: the sources, the hub, the proxy, and wrk as load generator."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
_TICKS = os.sysconf("SC_CLK_TCK")
_STARTUP_S = 30.0


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds of the process and every process below it (uvicorn workers)."""
        return tree_cpu_s(self.process.pid)


def _process_table() -> tuple[dict[int, int], dict[int, float]]:
    """Every process's parent and CPU seconds (user + system), from ``/proc``."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return parents, times


def tree_cpu_s(root: int) -> float:
    parents, times = _process_table()
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (uvicorn's workers, under its supervisor)."""
    parents, _ = _process_table()
    return sorted(child for child, parent in parents.items() if parent == pid)


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not start in {_STARTUP_S} s")


@contextlib.contextmanager
def spawned(
    argv: list[str], *, port: int, env: Mapping[str, str], log: Path, ready_path: str
) -> Iterator[Running]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}{ready_path}", process, log)
        yield Running(process, port, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def sources(names: list[str], workdir: Path) -> Iterator[dict[str, int]]:
    log = workdir / "sources.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.sources", json.dumps(dict.fromkeys(names, 0))],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"sources did not start: {log.read_text()[-2000:]}")
        yield {k: int(v) for k, v in json.loads(line).items()}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def policies_for(ports: Mapping[str, int], target: Path) -> Path:
    """The demo policies, with each simulated source at its bench port."""
    shutil.copytree(ROOT / "policies", target)
    partners = target / "partners.yaml"
    text = partners.read_text()
    for source, port in ports.items():
        pattern = rf"(- id: {re.escape(source)}\n(?:.*\n)*?\s*base_url: http://127\.0\.0\.1:)\d+"
        text, count = re.subn(pattern, rf"\g<1>{port}", text, count=1)
        if count != 1:
            raise RuntimeError(f"no base_url for {source} in partners.yaml")
    partners.write_text(text)
    return target


def ketenhub(env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "ketenhub"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def hub_env(workdir: Path, policy_dir: Path) -> dict[str, str]:
    return {
        "KETENHUB_POLICY_DIR": str(policy_dir),
        "KETENHUB_DATABASE_URL": f"sqlite:///{workdir / 'hub.db'}",
        "KETENHUB_KEY_DIR": str(workdir / "keys"),
        # As in production: one JSON event per exchange (to the log file).
        "KETENHUB_LOG_LEVEL": "info",
        "KETENHUB_LOG_FORMAT": "json",
        # The benchmark measures the hub, not its per-client limits (per process anyway).
        "KETENHUB_RATE_LIMIT": "off",
        "KETENHUB_TOKEN_RATE_LIMIT": "off",
    }


@contextlib.contextmanager
def hub(env: Mapping[str, str], workdir: Path, workers: int) -> Iterator[Running]:
    port = free_port()
    argv = [str(BIN / "ketenhub"), "serve", "--port", str(port), "--workers", str(workers)]
    with spawned(
        argv, port=port, env=env, log=workdir / "hub.log", ready_path="/openapi.json"
    ) as running:
        yield running


@contextlib.contextmanager
def proxy(upstream: str, workdir: Path, workers: int) -> Iterator[Running]:
    """The baseline, served by uvicorn with the options ``hub.serving`` uses."""
    port = free_port()
    argv = [
        str(BIN / "uvicorn"),
        "bench.proxy:app",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
        "--lifespan",
        "on",
    ]
    with spawned(
        argv,
        port=port,
        env={"BENCH_UPSTREAM": upstream},
        log=workdir / "proxy.log",
        ready_path="/",
    ) as running:
        yield running


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="ketenhub-bench-")


_WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
    .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%f}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def wrk_script(path: Path, token: str | None, bodies: list[str], delay_ms: float | None) -> Path:
    """A wrk script that POSTs ``bodies`` round-robin to ``/v1/exchange``."""
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    if token is not None:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    quoted = ",\n".join("[[" + body + "]]" for body in bodies)
    lines += [
        f"local bodies = {{\n{quoted}\n}}",
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        '  return wrk.format(nil, "/v1/exchange", nil, bodies[(i % #bodies) + 1])',
        "end",
    ]
    if delay_ms is not None:
        # Exponential gaps (a Poisson arrival process per connection): equal gaps would
        # send every connection's request at the same moment, a burst each round.
        lines += [
            "math.randomseed(os.time())",
            f"delay = function() return -{delay_ms:.3f} * math.log(1 - math.random()) end",
        ]
    path.write_text("\n".join(lines) + _WRK_DONE)
    return path


def wrk(base: str, script: Path, *, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run (one thread: the load generator takes as little CPU as it can)."""
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("{"))
    figures: dict[str, float] = json.loads(line)
    return figures
