"""The adapters by the name ``partners.yaml`` uses for them (``source.adapter``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.httpclient import HttpClient
from adapters.rest import RestSourceAdapter
from hub.domain.agreements import SourceConfig
from hub.ports import SourceAdapter

AdapterFactory = Callable[[SourceConfig, HttpClient], SourceAdapter]

ADAPTERS: Mapping[str, AdapterFactory] = {
    "rest": RestSourceAdapter.from_config,
}


def adapter_names() -> frozenset[str]:
    return frozenset(ADAPTERS)
