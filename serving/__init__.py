"""Serving stage: the tracker behind other programs' protocols (a TraX server for the VOT toolkit,
Triton models). Imports ``runtime`` and the public API; nothing imports this package."""
