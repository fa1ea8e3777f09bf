"""One command, ``siamtrack``, in front of every stage's entry point; and the public Python API.

``from siamtrack import Tracker`` (see ``siamtrack.api``). The API is imported on first use, so
``import siamtrack`` and ``siamtrack --help`` stay instant.
"""
from __future__ import annotations

_API = ("Tracker", "TrackResult", "TargetState", "one_pass_init_box", "vot_region_to_box", "vot_init_box",
        "box_to_vot_polygon")
__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        from siamtrack import api

        return getattr(api, name)
    raise AttributeError(f"module 'siamtrack' has no attribute {name!r}")
