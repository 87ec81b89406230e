"""``ketenhub simulate``: the demo network's source systems on their own, without a hub.

``ketenhub demo`` starts the simulators beside one hub in one process. A deployment
(deploy/compose.yaml, the k8s demo overlay) runs the hubs as separate containers and
needs the sources as a service of their own that the hubs reach by name: this command
is that service. It serves CONTRACT.md section 2 (``GET /participants/{insz}?fields=``)
for each source from the same seeded synthetic population as ``ketenhub demo``, so a
seed names the same people in both; and ``GET /healthz`` for a container's probe.

Access logging stays off (hub.demo.simulator): the INSZ is in every request path.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from hub.cli.base import app, fail

SEED_HELP = "Seed of the synthetic population (ketenhub demo uses 2026)."


def parse_sources(specs: list[str]) -> dict[str, int]:
    """``["vdab=8101", ...]`` to ``{"vdab": 8101}``; ``ValueError`` names the bad item.

    No item means every demo source on its ``ketenhub demo`` port (8101-8105).
    """
    from hub.demo.simulator import DEFAULT_PORTS  # noqa: PLC0415 - aiohttp only for this command

    if not specs:
        return dict(DEFAULT_PORTS)
    ports: dict[str, int] = {}
    for spec in specs:
        source, sep, port_text = spec.partition("=")
        if source not in DEFAULT_PORTS:
            known = ", ".join(DEFAULT_PORTS)
            raise ValueError(f"--source {spec!r}: {source!r} is not a demo source ({known})")
        if source in ports:
            raise ValueError(f"--source {spec!r}: {source} is given twice")
        if not sep:
            ports[source] = DEFAULT_PORTS[source]
            continue
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:  # noqa: PLR2004
            raise ValueError(f"--source {spec!r}: the port must be a number from 0 to 65535")
        ports[source] = int(port_text)
    return ports


@app.command()
def simulate(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 inside a container).")
    ] = "127.0.0.1",
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="SOURCE or SOURCE=PORT; may be repeated. Default: all five on 8101-8105."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help=SEED_HELP)] = 2026,
) -> None:
    """Run the demo network's simulated source systems until stopped (SIGTERM or Ctrl-C)."""
    try:
        ports = parse_sources(source or [])
    except ValueError as exc:
        raise fail(str(exc)) from None
    from hub.demo.population import make_population  # noqa: PLC0415
    from hub.demo.simulator import SimulatorThread  # noqa: PLC0415

    stop = threading.Event()
    # A container stops with SIGTERM: leave as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    simulators = SimulatorThread(make_population(seed), ports=ports, host=host)
    try:
        simulators.start()
    except OSError as exc:
        raise fail(f"The simulators cannot listen on {host}: {exc.strerror or exc}") from None
    try:
        for name in ports:
            typer.echo(f"{name}: {simulators.url(name)}")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulators.stop()
