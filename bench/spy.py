"""Where a served hub's time goes: py-spy samples its workers under the exchange load.

``python -m bench.spy [--seconds 8] [--workers 2] [--out DIR]``; not part of
``make bench``. ``bench.breakdown`` times every Python call (cProfile), which inflates
call-heavy Python against C and cannot see uvicorn; a sampling profiler costs the
workers almost nothing and sees all of it: the server, the event loop, the threads.

It serves the hub as ``bench.exchange`` does (``ketenhub serve --workers N``, a
simulated source, wrk at full speed), lets ``py-spy record`` sample every worker
for ``--seconds``, writes each worker's collapsed stacks to ``DIR/worker-N.txt``
(for flame-graph tools) and prints the share of samples by where the innermost
frame's code lives, and the inclusive share of the busiest functions.

Needs py-spy (``pip install -e '.[bench]'``) and the right to trace the workers
(they are this process's descendants, which the kernel's default ``ptrace_scope``
allows; in a container, ``CAP_SYS_PTRACE``). Threads blocked in a call py-spy does
not know as idle (``flock``, a queue's ``get``) are counted as samples: read the
``concurrent`` and ``threading`` lines with that in mind.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from bench import processes
from bench.exchange import SOURCE, load, participants, prepare, ready, request_bodies

_FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*?):\d+\)$")


_ROOT = f"{Path(__file__).resolve().parent.parent}/"
_STDLIB = re.compile(r"^.*/python3\.\d+/")


def _where(path: str) -> str:
    """A frame's file as a package path: ``hub/db/sql.py``, ``aiohttp/client.py``."""
    path = path.rsplit("site-packages/", maxsplit=1)[-1]
    return _STDLIB.sub("", path.rsplit(_ROOT, maxsplit=1)[-1])


def _area(path: str) -> str:
    """``hub.db``, ``adapters``, ``aiohttp``, ``asyncio``: the first two levels for ours."""
    parts = _where(path).removesuffix(".py").split("/")
    return ".".join(parts[:2]) if parts[0] == "hub" else parts[0]


def summarize(collapsed: Iterable[Path], top: int = 40) -> str:
    """The report for collapsed-stack files (``frame;frame;... count`` per line)."""
    areas: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for path in collapsed:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            named = []
            for frame in stack.split(";"):
                found = _FRAME.match(frame)
                named.append(
                    (found["function"], _where(found["file"])) if found else (frame, frame)
                )
            areas[_area(named[-1][1])] += n
            for function, where in set(named):
                inclusive[f"{function} ({where})"] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "by where the innermost frame's code lives:"]
    lines += [f"  {n / total:6.1%}  {area}" for area, n in areas.most_common(25)]
    lines += ["", "inclusive (the function or anything it called):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def profile(*, seconds: float, workers: int, out: Path) -> list[Path]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    people = participants()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("worker-*.txt"):
        stale.unlink()
    written: list[Path] = []
    with processes.workdir() as tmp, processes.sources([SOURCE], Path(tmp)) as ports:
        work = Path(tmp)
        env, made = prepare(work, ports)
        with processes.hub(env, work, workers) as hub:
            token, _ = ready(hub, made, people)
            bodies = request_bodies(people)
            load(hub, token, bodies, work, seconds=2)  # warm: caches, pools, connections
            samplers = []
            for i, pid in enumerate(processes.children(hub.process.pid)):
                target = out / f"worker-{i}.txt"
                command = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
                command += ["--rate", "250", "--format", "raw", "--nonblocking", "-o", str(target)]
                samplers.append(
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
                written.append(target)
            load(hub, token, bodies, work, seconds=seconds + 2)
            for sampler in samplers:
                sampler.wait()
    # uvicorn's supervisor also starts a resource tracker, which is never on a CPU.
    return [path for path in written if path.exists() and path.stat().st_size]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spy", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("var/bench/spy"))
    args = parser.parse_args()
    files = profile(seconds=args.seconds, workers=args.workers, out=args.out)
    print(f"collapsed stacks: {', '.join(str(f) for f in files)}\n")
    print(summarize(files))


if __name__ == "__main__":
    main()
