"""Rough edges a newcomer hit in the benchmark commands: each gives a clear error or a consistent output.

No tracking runs here: result files are written by hand and only scored, so every test takes well under
a second.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import accuracy, latency, report
from bench.sequences import read_dataset
from runtime.errors import BackendUnavailable, InputError

BOX = "30,30,20,20\n"


def _folder_dataset(root: Path, names=("alpha", "beta", "gamma"), frames: int = 3) -> Path:
    import cv2

    for name in names:
        (root / name / "img").mkdir(parents=True)
        for i in range(1, frames + 1):
            cv2.imwrite(str(root / name / "img" / f"{i:08d}.jpg"), np.zeros((64, 64, 3), np.uint8))
        (root / name / "groundtruth.txt").write_text(BOX * frames)
    return root


def _results(out: Path, run: str, names, frames: int = 3) -> None:
    folder = out / "results" / run
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.txt").write_text(BOX * frames)


# ------------------------------------------------------------------ accuracy

def test_an_unknown_sequence_name_says_so_and_lists_available_ones(tmp_path):
    data = _folder_dataset(tmp_path / "data")
    with pytest.raises(InputError) as err:
        accuracy.main(["--dataset", str(data), "--run", "torch:alex", "--out", str(tmp_path / "o"),
                       "--sequences", "nope", "--evaluate-only"])
    message = str(err.value)
    assert "'nope' is not a sequence of" in message and "alpha, beta, gamma" in message
    assert "expected ROOT" not in message                       # not the dataset-layout complaint


def test_a_known_and_an_unknown_sequence_name_is_still_an_error(tmp_path):
    data = _folder_dataset(tmp_path / "data")
    with pytest.raises(InputError, match="'typo' is not a sequence"):
        read_dataset("folder", data, names=["alpha", "typo"])
    assert [s.name for s in read_dataset("folder", data, names=["beta"]).sequences] == ["beta"]


def test_evaluate_only_without_any_result_file_fails_clearly(tmp_path):
    data = _folder_dataset(tmp_path / "data")
    with pytest.raises(InputError, match=r"--evaluate-only: no result file for run 'r'.*results/r"):
        accuracy.main(["--dataset", str(data), "--run", "torch:alex,label=r", "--out", str(tmp_path / "o"),
                       "--evaluate-only", "--no-plots"])


def test_evaluate_only_lists_every_plot_it_wrote(tmp_path, capsys):
    data = _folder_dataset(tmp_path / "data")
    out = tmp_path / "o"
    _results(out, "r", ["alpha", "beta", "gamma"])
    assert accuracy.main(["--dataset", str(data), "--run", "torch:alex,label=r", "--out", str(out),
                          "--evaluate-only"]) == 0
    written = capsys.readouterr().out.split("written: ")[1]
    for name in ("summary.md", "summary.json", "success.png", "precision.png", "norm_precision.png"):
        assert str(out / name) in written and (out / name).is_file()


@pytest.mark.parametrize("entry", ["/etc", "../outside", "a/../../b", ".."])
def test_a_vot_list_entry_outside_the_dataset_is_refused(tmp_path, entry):
    root = tmp_path / "vot"
    root.mkdir()
    (root / "list.txt").write_text(f"good\n{entry}\n")
    with pytest.raises(InputError, match=r"list\.txt: entry 2 .* not a sequence folder name"):
        read_dataset("vot", root)


def test_a_sequence_name_that_is_a_path_never_writes_outside_out(tmp_path):
    from bench.runs import Run
    from bench.sequences import Sequence

    seq = Sequence("../escaped", [np.zeros((64, 64, 3), np.uint8)] * 2, np.array([[30, 30, 20, 20.]] * 2),
                   np.zeros(2, bool))
    outcome = accuracy.run_task(accuracy.Task(Run("torch", "alex"), seq, "ope", str(tmp_path / "out")))
    assert "not a plain file name" in outcome.error
    assert not (tmp_path / "out" / "results" / "escaped.txt").exists()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_accuracy_threads_and_workers_must_be_positive(tmp_path, value, capsys):
    for flag in ("--threads", "--workers"):
        with pytest.raises(SystemExit):
            accuracy.main(["--synth", "1", "--run", "torch:alex", "--out", str(tmp_path), flag, value])
        assert "whole number >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------ latency

@pytest.mark.parametrize("value", ["-1", "0"])
def test_latency_threads_below_one_is_refused(value, capsys):
    with pytest.raises(SystemExit):
        latency.main(["--run", "torch:alex", "--threads", value])
    assert "--threads" in capsys.readouterr().err


# ------------------------------------------------------------------ plots

def test_each_run_keeps_its_colour_and_line_style_in_every_plot(tmp_path, monkeypatch):
    """Run A leads on success, run B on precision: legend order differs per plot, styles must not."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    calls = []
    original = Axes.plot

    def record(self, *args, **kwargs):
        lines = original(self, *args, **kwargs)
        calls.append((self.figure, kwargs.get("label", "").split(" [")[0], lines[0].get_color(),
                      lines[0].get_linestyle()))
        return lines

    monkeypatch.setattr(Axes, "plot", record)

    def run(auc, prec):
        return {"run": {}, "overall": {"auc": auc, "prec20": prec, "norm_prec_pysot": prec},
                "curves": {"success": [auc] * 21, "precision": [prec] * 51, "norm_precision": [prec] * 51}}

    summary = {"protocol": "ope", "runs": {"A": run(0.7, 0.2), "B": run(0.3, 0.9), "C": run(0.5, 0.5)}}
    written = report.plot_accuracy(summary, tmp_path)
    assert [p.name for p in written] == ["success.png", "precision.png", "norm_precision.png"]
    styles: dict = {}
    for _, name, colour, linestyle in [c for c in calls if c[1]]:
        styles.setdefault(name, set()).add((colour, linestyle))
    assert set(styles) == {"A", "B", "C"}
    assert all(len(s) == 1 for s in styles.values()), styles
    assert len({next(iter(s)) for s in styles.values()}) == 3     # and the runs differ from each other


# ------------------------------------------------------------------ model folders

def test_a_folder_with_only_the_template_onnx_says_what_is_present_and_what_is_missing(tmp_path):
    from runtime.backends import open_backend

    (tmp_path / "template.fp32.standard.onnx").write_bytes(b"")     # the choice looks at names only
    with pytest.raises(BackendUnavailable) as err:
        open_backend(str(tmp_path), backend="onnxruntime")
    assert "template.fp32.standard.onnx is present but search.fp32.standard.onnx is missing" in str(err.value)
