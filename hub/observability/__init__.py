"""Observability: W3C trace context (``tracecontext``), Prometheus metrics (``metrics``) and
timing of source calls (``sources``).

``prometheus_client`` is imported by ``hub.observability.metrics`` alone (an
import-linter contract): use cases report through the ``Telemetry`` port.
"""
