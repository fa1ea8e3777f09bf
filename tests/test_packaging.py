"""Our top-level package names (runtime, export, engines, ...) must not shadow anything installed.

The user's folders are importable top-level packages because the project is used as a cloned repo. That
is only safe while no other installed distribution provides a module of the same name.
"""
from __future__ import annotations

import importlib.metadata as md

OUR_PACKAGES = {"runtime", "export", "engines", "calibration", "bench", "train", "siamtrack"}


def test_no_installed_distribution_provides_our_top_level_names():
    clashes = []
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name == "siamtrack":
            continue
        top = (dist.read_text("top_level.txt") or "").split()
        if not top and dist.files:
            top = {str(f).split("/")[0].removesuffix(".py") for f in dist.files if "/" in str(f) or str(f).endswith(".py")}
        clashes += [(name, t) for t in set(top) & OUR_PACKAGES]
    assert not clashes, f"installed distributions shadow or are shadowed by our packages: {clashes}"
