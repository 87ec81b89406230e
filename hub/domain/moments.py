"""How the hub writes moments: always UTC, always the same way."""

from __future__ import annotations

from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Stored form: fixed-width UTC, so that timestamps sort as text and round-trip exactly."""


def format_timestamp(moment: datetime) -> str:
    # Not strftime("%Y"): glibc does not pad years before 1000, and these must sort as text.
    u = moment.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def iso_utc(moment: datetime | None) -> str | None:
    """API form: ISO 8601 in UTC with ``Z``, e.g. ``2026-06-15T22:00:00Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
