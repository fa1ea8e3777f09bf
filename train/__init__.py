"""Training stage: pair sampling, augmentation (with spatial-aware sampling), anchor targets, loss, loop.

Imports ``export.model`` for the network; never imported by ``runtime``.
"""
