"""The pure domain core: standard library only (enforced by import-linter)."""
