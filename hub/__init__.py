"""Ketenhub: a privacy-controlled data exchange hub for work-care trajectories."""
