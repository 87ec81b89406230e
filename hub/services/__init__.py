"""Use cases: no FastAPI, no SQL; they speak to the world through ``hub.ports``."""
