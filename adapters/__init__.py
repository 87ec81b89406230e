"""Source adapters: how the hub reaches a partner's system, chosen by name in partners.yaml.

Only ``hub.bootstrap`` knows the concrete adapters; the use cases see the
``hub.ports.SourceAdapter`` protocol.
"""
