"""Which tracker runs on a backend: pysot's short-term ``SiamRPNTracker`` or its long-term
``SiamRPNLTTracker`` (``--tracker`` of track / camera / accuracy, ``Tracker.open(tracker=...)``).

- ``short-term``: the SiamRPN++ step; the search crop follows the target and never grows.
- ``long-term``: when the target's score falls below ``confidence_low`` (0.85 in pysot's LT config) the
  tracker enters its lost state: it searches a ``lost_instance_size`` (831 px) crop around the last
  position with almost no cosine window and no size update, until a score above ``confidence_high``
  (0.998) brings it back. It needs an export with the large (lost) search graph.
- ``auto``: what the model's config says (pysot ``TRACK.TYPE``: ``SiamRPNLTTracker`` is long-term).

The choice is checked when the tracker is opened, not on the first lost frame minutes into a run.
"""
from __future__ import annotations

import dataclasses

from runtime.contract import TrackerConfig
from runtime.errors import ContractError, InputError

TRACKER_CHOICES = ("auto", "short-term", "long-term")
LOST_SEARCH_EXPORT = "siamtrack export ... --lost-search"


def tracker_config_for(backend, choice: str = "auto") -> TrackerConfig:
    """The backend's tracker config with ``long_term`` set by ``choice``; ContractError when long-term
    is asked of an export that has no large search graph (naming the export command)."""
    if choice not in TRACKER_CHOICES:
        raise InputError(f"tracker {choice!r}: choose one of {', '.join(TRACKER_CHOICES)}")
    base: TrackerConfig = backend.tracker_config
    long_term = base.long_term if choice == "auto" else choice == "long-term"
    config = dataclasses.replace(base, long_term=long_term)
    if long_term:
        check_lost_search(backend, config, asked=choice)
    return config


def check_lost_search(backend, config: TrackerConfig, asked: str = "long-term") -> None:
    """The export must have a large (lost-state) search graph; checked here, at open time, because the
    tracker itself only meets its absence on the first lost frame. A graph of another size is refused by
    ``SiamRPNTracker`` when it is made (``open_tracker``)."""
    have = getattr(backend.spec, "lost_instance_size", 0)
    why = "the model's config asks for the long-term tracker" if asked == "auto" else "--tracker long-term"
    unavailable = getattr(backend, "lost_unavailable", "")
    if not have and unavailable:    # the export has one, but not usable for this variant: say which and why
        raise ContractError(
            f"{backend.name}: {why}, whose lost-state search runs a {config.lost_instance_size} px crop, but "
            f"this variant's large search graph cannot be used: {unavailable}; or use --tracker short-term, "
            "or another --precision")
    if not have:
        raise ContractError(
            f"{backend.name}: {why}, whose lost-state search runs a {config.lost_instance_size} px crop, but "
            f"this export has only the {backend.spec.instance_size} px search graph; re-export with "
            f"`{LOST_SEARCH_EXPORT}` (automatic for a long-term config), or use --tracker short-term")


def open_tracker(backend, choice: str = "auto", timer=None):
    """A ``runtime.tracker.SiamRPNTracker`` on ``backend`` running the chosen tracker."""
    from runtime.tracker import SiamRPNTracker

    return SiamRPNTracker(backend, tracker_config_for(backend, choice), timer=timer)


def tracker_name(config: TrackerConfig) -> str:
    return "long-term" if config.long_term else "short-term"
