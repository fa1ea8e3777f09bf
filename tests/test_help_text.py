"""Every command's --help: its usage line names the `siamtrack` subcommand (not `python -m module`), and
its examples use folders the project really writes (build.sh writes artifacts/lite0, never
artifacts/default)."""
from __future__ import annotations

import contextlib
import importlib
import io

import pytest

from siamtrack.cli import COMMANDS


def _help(name: str) -> str:
    module, func = COMMANDS[name][0].split(":")
    entry = getattr(importlib.import_module(module), func)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        entry(["--help"])
    assert done.value.code in (0, None)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_usage_names_the_siamtrack_subcommand_and_examples_use_real_folders(name):
    text = _help(name)
    assert text.startswith(f"usage: siamtrack {name}"), text.splitlines()[0]
    assert "artifacts/default" not in text
    assert "python -m engines" not in text
