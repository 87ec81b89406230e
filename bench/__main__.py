"""``python -m bench [--quick]``: every section, then ``results.json`` and ``RESULTS.md``.

A section that fails is recorded with its error and the others still run; the
command then exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Figures
from bench.report import markdown
from hub.clock import SystemClock

HERE = Path(__file__).resolve().parent


def _sections() -> list[tuple[str, str]]:
    """(module:function, what it measures); ``exchange`` also yields ``revocation``."""
    return [
        ("bench.exchange:run", "exchange throughput and latency, revocation under load"),
        ("bench.breakdown:run", "where an exchange's CPU goes, in-process, against the proxy"),
        ("bench.decide:run", "decision speed against OPA and pycasbin"),
        ("bench.appends:run", "audit append against a bare insert"),
        ("bench.auditlog:run_verify", "audit verification of a 1M-entry log"),
        ("bench.auditlog:run_officer", "officer queries on a 10M-entry log"),
    ]


def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return found


_KEYS = {
    "bench.exchange:run": ("exchange", "revocation"),
    "bench.breakdown:run": ("exchange_breakdown",),
    "bench.decide:run": ("decide",),
    "bench.appends:run": ("audit_append",),
    "bench.auditlog:run_verify": ("verify",),
    "bench.auditlog:run_officer": ("officer_query",),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--only", action="append", help="run only sections with this key")
    parser.add_argument("--out", type=Path, default=HERE, help="where the results go")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "meta": {
            "quick": args.quick,
            "started": SystemClock().now().isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        }
    }
    failed = False
    run_began = time.perf_counter()
    for target, what in _sections():
        keys = _KEYS[target]
        if args.only and not set(keys) & set(args.only):
            continue
        print(f"-- {what} ...", flush=True)
        began = time.perf_counter()
        try:
            produced = _load(target)(quick=args.quick)
        except Exception as exc:  # noqa: BLE001 - recorded; the other sections still run
            traceback.print_exc()
            failed = True
            for key in keys:
                results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        figures: tuple[Figures, ...] = produced if isinstance(produced, tuple) else (produced,)
        for key, section in zip(keys, figures, strict=True):
            section["seconds"] = round(time.perf_counter() - began, 1)
            results[key] = section
            print(f"   {key}: {json.dumps(section)}", flush=True)
    # The whole run: sections that share a run (exchange, revocation) each show all of it.
    results["meta"]["seconds"] = round(time.perf_counter() - run_began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
