"""The `siamtrack` dispatcher: help is instant and every registered entry point exists."""
from __future__ import annotations

import importlib
import subprocess
import sys

from siamtrack.cli import COMMANDS, main

from tests.conftest import ROOT


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_exits_2_with_usage(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_every_entry_point_resolves_to_a_callable():
    for name, (target, _) in COMMANDS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from siamtrack.cli import main; main(['--help']); "
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'cv2') if m in sys.modules]; "
            "print('HEAVY=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "HEAVY="


def test_every_subcommand_help_works():
    for name in COMMANDS:
        proc = subprocess.run([sys.executable, "-m", "siamtrack", name, "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        assert "usage" in proc.stdout.lower(), name
