"""``RESULTS.md`` from ``results.json``: the targets of issue #4 first, then every figure."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

_AT_LEAST: Callable[[float, float], bool] = operator.ge
_AT_MOST: Callable[[float, float], bool] = operator.le

TARGETS: list[tuple[str, str, str, Callable[[float, float], bool], float]] = [
    ("Exchange throughput vs bare proxy", "exchange", "ratio", _AT_LEAST, 0.60),
    ("Exchanges per second", "exchange", "hub_rps", _AT_LEAST, 3000),
    ("Hub-added latency p50 at half of peak (ms)", "exchange", "hub_added_p50_ms", _AT_MOST, 1),
    ("Hub-added latency p99 at half of peak (ms)", "exchange", "hub_added_p99_ms", _AT_MOST, 5),
    ("Decisions vs OPA in-process (x)", "decide", "vs_opa", _AT_LEAST, 10),
    ("Decisions vs pycasbin (x)", "decide", "vs_casbin", _AT_LEAST, 10),
    ("Audit append vs bare insert, same durability", "audit_append", "ratio", _AT_LEAST, 0.8),
    ("Verification entries/s (floor 300,000)", "verify", "entries_per_s", _AT_LEAST, 1_000_000),
    (
        "Participant history p99 at 10M, SQLite (ms)",
        "officer_query",
        "participant_history_p99_ms",
        _AT_MOST,
        5,
    ),
    (
        "Participant history p99 at 10M, PostgreSQL (ms)",
        "officer_query",
        "pg_participant_history_p99_ms",
        _AT_MOST,
        5,
    ),
    ("Stale disclosures after a revoke returned", "revocation", "stale_disclosures", _AT_MOST, 0),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    lines = [
        "# Benchmark results",
        "",
        (
            f"`make bench{'-quick' if meta.get('quick') else ''}` on {meta.get('cpus')} CPUs "
            f"({meta.get('machine')}, Python {meta.get('python')}), started {meta.get('started')}, "
            f"{meta.get('seconds')} s of measuring. Every ratio is against a baseline measured in "
            "the same run. Written by `python -m bench`; see `bench/README.md` for method."
        ),
        "",
        "## Targets (issue #4)",
        "",
        "| target | measured | wanted | met |",
        "|---|---:|---:|:---:|",
    ]
    for title, section, key, compare, wanted in TARGETS:
        value = results.get(section, {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            met = "yes" if compare(value, wanted) else "**no**"
            shown = _fmt(value)
        else:
            met, shown = "n/a", "not measured"
        sign = ">=" if compare is _AT_LEAST else "<="
        lines.append(f"| {title} | {shown} | {sign} {_fmt(wanted)} | {met} |")
    for section, figures in results.items():
        if section == "meta" or not isinstance(figures, dict):
            continue
        lines += ["", f"## {section}", "", "| figure | value |", "|---|---:|"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in figures.items()]
    return "\n".join(lines) + "\n"
