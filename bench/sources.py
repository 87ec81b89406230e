"""The demo sources as a process of their own: ``python -m bench.sources '{"vdab": 0}'``.

Prints one JSON line with the bound ports, then serves until SIGTERM. In its own
process so that the simulators' CPU is not charged to the hub or the proxy.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from hub.demo.population import make_population
from hub.demo.simulator import start_simulators


async def _serve(ports: dict[str, int]) -> None:
    population = make_population()
    simulators = await start_simulators(population, ports)
    print(json.dumps(simulators.ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await simulators.stop()


def main() -> None:
    try:
        import uvloop  # noqa: PLC0415 - the same event loop as the servers under test

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
