"""structlog set-up: JSON events, and a processor that removes personal data.

Log calls name events and counts, never values (STYLE.md habit 9); the redaction
processor is the safety net under that habit: any 11-digit run (an INSZ shape) and
anything that looks like a bearer token or JWT is replaced before a line is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from hub.domain.ids import INSZ_SHAPE

_INSZ_SHAPE = re.compile(
    r"(?<![0-9])[0-9]{2}[.]?[0-9]{2}[.]?[0-9]{2}[-.]?[0-9]{3}[.]?[0-9]{2}(?![0-9])"
)
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact_text(text: str) -> str:
    text = _JWT_SHAPE.sub("<redacted-token>", text)
    text = _BEARER.sub(r"\1 <redacted>", text)
    return INSZ_SHAPE.sub("<redacted-insz>", text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact(value)
    return event_dict


def configure_logging(
    level: str = "info", *, json: bool = True, stream: TextIO | None = None
) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
