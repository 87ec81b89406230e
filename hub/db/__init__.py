"""Storage: the only package that imports SQLAlchemy (enforced by import-linter)."""
