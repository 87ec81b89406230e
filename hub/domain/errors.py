"""The hub's one exception tree.

Every deliberate error is a ``HubError`` carrying its HTTP status and, where the
contract names one, its ``reason`` (CONTRACT.md sections 3 and 5). ``hub.api.problems``
alone turns them into problem+json. The ``detail`` is written for a partner's
integrator: it never holds personal data or the text of a foreign exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


def problem_type(reason: str | None) -> str:
    """The RFC 9457 ``type`` of a problem with this reason (one format for the whole hub)."""
    return f"urn:ketenhub:problem:{reason}" if reason else "about:blank"


class HubError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self, reason: str | None, detail: str, *, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.extra: Mapping[str, Any] = extra or {}

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document; ``extra`` members follow the standard ones."""
        document: dict[str, Any] = {
            "type": problem_type(self.reason),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.reason:
            document["reason"] = self.reason
        document.update(self.extra)
        return document


class InvalidInputError(HubError):
    status = 422
    title = "Invalid request"


class UnauthenticatedError(HubError):
    status = 401
    title = "Not authenticated"


class ForbiddenError(HubError):
    status = 403
    title = "Forbidden"


class NotFoundError(HubError):
    status = 404
    title = "Not found"


class ConflictError(HubError):
    status = 409
    title = "Conflict"


class NothingDisclosedError(HubError):
    """Every requested field was withheld: 403 with the ``withheld`` list."""

    status = 403
    title = "Nothing disclosed"


class UnknownParticipantError(HubError):
    status = 404
    title = "Unknown participant"


class SourceUnavailableError(HubError):
    status = 502
    title = "Source unavailable"


class SourceTimeoutError(SourceUnavailableError):
    status = 504
    title = "Source timed out"


class ServiceUnavailableError(HubError):
    """A dependency of the hub itself (database, keys) failed: nothing was disclosed."""

    status = 503
    title = "Service unavailable"


class PolicyError(Exception):
    """A policy directory is invalid; ``problems`` name file, line and what is wrong."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the policy directory")
        self.problems = problems


class PolicyProblem:
    __slots__ = ("file", "line", "message")

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"PolicyProblem({self!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PolicyProblem) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))
