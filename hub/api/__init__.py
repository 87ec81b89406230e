"""HTTP: the only package that imports FastAPI (enforced by import-linter)."""
