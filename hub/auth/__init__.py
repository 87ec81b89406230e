"""The hub's own identity: keys, access tokens and the OAuth 2.0 token endpoint.

The only package that imports authlib and joserfc (the import-linter contract in
``pyproject.toml``), so the untyped corner stays here.

- ``keys``: the hub's signing keys (RFC 8037 Ed25519, ``kid`` per RFC 7638), the
  pseudonymisation key and the sealing key (CONTRACT.md 3 and 4); ``keyindex``: their
  index ``keys.json``; ``rotation``: ``ketenhub keys init | rotate | prune``;
  ``production``: what ``KETENHUB_ENV=production`` demands of the key directory;
- ``tokens``: JWT access tokens (RFC 9068) issued and verified;
- ``endpoint``: ``POST /oauth/token``, the client credentials grant (RFC 6749 4.4)
  with ``client_secret_basic``, ``client_secret_post`` and ``private_key_jwt``
  (RFC 7523 2.2);
- ``jwks``: validation of a client's public JWK Set (RFC 7517 5).
"""
