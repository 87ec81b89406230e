"""Timing of source calls: a ``SourceAdapter`` around another, reporting to ``Telemetry``.

Put around every source by the composition root, so that the exchange use case and
the adapters stay free of metrics. The duration is measured on a monotonic clock
(``time.perf_counter``): a length of time, never the time of day, which the hub takes
from its ``Clock``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from hub.domain.errors import SourceTimeoutError, UnknownParticipantError
from hub.domain.ids import FieldName, Insz, PartnerId
from hub.ports import SourceAdapter, Telemetry


class TimedSource:
    """``inner``'s answers and errors unchanged; each call's duration and outcome
    (``ok``, ``unknown-participant``, ``timeout``, ``failed``) reported."""

    def __init__(self, source: PartnerId, inner: SourceAdapter, telemetry: Telemetry) -> None:
        self.source = source
        self.inner = inner
        self._telemetry = telemetry

    async def fetch(
        self, participant: Insz, fields: frozenset[FieldName]
    ) -> Mapping[FieldName, object]:
        outcome = "failed"
        started = time.perf_counter()
        try:
            values = await self.inner.fetch(participant, fields)
        except UnknownParticipantError:
            outcome = "unknown-participant"
            raise
        except SourceTimeoutError:
            outcome = "timeout"
            raise
        else:
            outcome = "ok"
            return values
        finally:
            self._telemetry.source_called(self.source, outcome, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.inner.aclose()
