"""VOT expected average overlap (EAO) as pysot's ``eao_benchmark`` computes it: hand-computed pieces, the
report, and (dev only, with ``PYSOT_ROOT`` pointing at a pysot checkout) pysot's own toolkit code on the
same trajectories. pysot's compiled ``region`` extension is replaced there by ``bench.metrics.vot_overlap``,
which tests/test_metrics.py checks against that extension's recorded outputs; everything else
(fragments, weights, the expected-overlap curve, the length range) is pysot's code.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bench import metrics as m

NAN = float("nan")


def test_a_run_without_failures_is_one_fragment_and_the_curve_averages_frames_1_to_i():
    run = m.VotTrajectory(np.array([NAN, 0.5, 0.7, 0.9]), (), 4)
    fragments, weights = m.eao_fragments([run])
    np.testing.assert_array_equal(fragments, [[NAN, 0.5, 0.7, 0.9]])
    np.testing.assert_array_equal(weights, [1.0])
    curve = m.expected_overlap_curve(fragments, weights)
    assert curve.dtype == np.float32
    np.testing.assert_allclose(curve, [1.0, 0.5, 0.6, 0.7], rtol=1e-6)         # init frame 0 excluded
    assert m.expected_average_overlap([run], low_high=(2, 4)) == pytest.approx(0.6, rel=1e-6)


def test_a_failure_splits_the_run_at_the_reinit_frame_and_pads_the_failed_fragment_with_zeros():
    # records 1, box, 2, 0, 0, 0, 0, 1, box, box: failure at 2, re-init at 2 + 5 = 7
    run = m.VotTrajectory(np.array([NAN, 0.8, NAN, NAN, NAN, NAN, NAN, NAN, 0.6, 0.4]), (2,), 10)
    fragments, weights = m.eao_fragments([run])
    np.testing.assert_array_equal(fragments[0], [0, 0.8, 0, 0, 0, 0, 0, 0, 0, 0])   # frames 0..7, then 0
    np.testing.assert_array_equal(fragments[1][:3], [0, 0.6, 0.4])                   # frames 7..9
    assert np.isnan(fragments[1][3:]).all()                                           # then unknown
    np.testing.assert_allclose(weights, [1.0, 1.0])
    curve = m.expected_overlap_curve(fragments, weights)
    np.testing.assert_allclose(curve[:4], [1.0, (0.8 + 0.6) / 2, (0.4 + 0.5) / 2, 0.8 / 3], rtol=1e-6)
    np.testing.assert_allclose(curve[9], 0.8 / 9, rtol=1e-6)


def test_a_failure_too_late_to_reinit_leaves_one_fragment_padded_with_unknown():
    run = m.VotTrajectory(np.array([NAN, 0.5, 0.5, NAN, NAN]), (3,), 5)       # 3 + 5 > 5: no restart
    fragments, weights = m.eao_fragments([run])
    np.testing.assert_array_equal(fragments, [[0, 0.5, 0.5, 0, 0]])
    np.testing.assert_allclose(weights, [1.0])


def test_eao_is_nan_when_every_sequence_is_shorter_than_the_range():
    run = m.VotTrajectory(np.array([NAN, 0.5, 0.7]), (), 3)
    assert np.isnan(m.expected_average_overlap([run], "VOT2018"))


def test_eao_uses_vot_edition_ranges_named_in_the_dataset_folder():
    assert m.eao_edition("/data/VOT2016") == "VOT2016" and m.EAO_RANGES["VOT2016"] == (108, 371)
    assert m.eao_edition("/data/vot2019/") == "VOT2019"
    assert m.eao_edition("/data/my-set") == "VOT2018" and m.EAO_RANGES["VOT2018"] == (100, 356)


def test_eao_overlaps_cut_regions_to_w_minus_1_h_minus_1_unlike_accuracy():
    gt = [m.xywh_to_poly([80, 10, 20, 20])]
    records = [[90.0, 10.0, 30.0, 20.0]]                        # crosses the right edge of a 100 px image
    traj = m.vot_eao_trajectory(records, gt, (100, 100))
    assert traj.overlaps[0] == pytest.approx(m.vot_overlap(records[0], gt[0], (99, 99)), abs=0)
    assert traj.overlaps[0] != m.vot_overlap(records[0], gt[0], (100, 100))


# ------------------------------------------------------------------ pysot's toolkit, dev only

def pysot_toolkit_module(module: str):
    """pysot's ``toolkit.evaluation.<module>`` loaded from ``PYSOT_ROOT`` (skips when it is not set),
    with ``bench.metrics.vot_overlap`` standing in for the compiled region extension."""
    root = os.environ.get("PYSOT_ROOT")
    if not root or not (Path(root) / "toolkit" / "evaluation" / f"{module}.py").is_file():
        pytest.skip("set PYSOT_ROOT to a pysot checkout (STVIR/pysot) to compare with its toolkit")
    region = types.ModuleType("toolkit.utils.region")
    region.vot_overlap_traj = lambda a, b, bounds=None: [m.vot_overlap(x, y, bounds) for x, y in zip(a, b)]
    saved = {k: v for k, v in sys.modules.items() if k == "toolkit" or k.startswith("toolkit.")}
    for name, path in (("toolkit", "toolkit"), ("toolkit.utils", "toolkit/utils"),
                       ("toolkit.evaluation", "toolkit/evaluation")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(Path(root) / path)]
        sys.modules[name] = pkg
    sys.modules["toolkit.utils.region"] = region
    if importlib.util.find_spec("colorama") is None:          # only used by pysot's pretty-printers
        sys.modules["colorama"] = types.SimpleNamespace(Style=None, Fore=None)
    try:
        stats = _load("toolkit.utils.statistics", Path(root) / "toolkit/utils/statistics.py")
        for key in dir(stats):
            if not key.startswith("_"):
                setattr(sys.modules["toolkit.utils"], key, getattr(stats, key))
        return _load(f"toolkit.evaluation.{module}", Path(root) / f"toolkit/evaluation/{module}.py")
    finally:
        for k in [k for k in sys.modules if k == "toolkit" or k.startswith("toolkit.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Video:
    def __init__(self, name, gt, traj, wh):
        self.name, self.gt_traj, self.width, self.height = name, gt, wh[0], wh[1]
        self.pred_trajs = {"ours": [traj]}
        self.tags = {"all": [1] * len(gt)}

    def select_tag(self, tag, start=0, end=0):
        return self.tags[tag][start:end]


class _Dataset(list):
    def __init__(self, name, videos):
        super().__init__(videos)
        self.name = name

    def __getitem__(self, key):
        if isinstance(key, str):
            return next(v for v in self if v.name == key)
        return super().__getitem__(key)


def _random_reset_run(rng, n: int, wh) -> tuple[list, list]:
    """A ground-truth polygon track and a reset-protocol record list with random failures."""
    gt, records, restart = [], [], 0
    x, y = 40.0, 40.0
    for i in range(n):
        x, y = np.clip([x + rng.normal(0, 3), y + rng.normal(0, 3)], 5, [wh[0] - 45, wh[1] - 45])
        gt.append(m.xywh_to_poly([x, y, 30 + rng.uniform(-2, 2), 25 + rng.uniform(-2, 2)]).tolist())
        if i < restart:
            records.append([0])
        elif i == restart:
            records.append([1])
        elif rng.random() < 0.02:
            records.append([2])
            restart = i + 5
        else:
            records.append([x + rng.normal(0, 4), y + rng.normal(0, 4), 30 + rng.normal(0, 3), 25 + rng.normal(0, 3)])
    return gt, records


@pytest.mark.parametrize("edition", ["VOT2018", "VOT2019"])
def test_eao_equals_pysot_eao_benchmark_on_the_same_trajectories(edition):
    eao_benchmark = pysot_toolkit_module("eao_benchmark")
    rng = np.random.default_rng(11)
    wh = (320, 240)
    videos, ours = [], []
    for k, n in enumerate((420, 150, 300, 60, 380)):
        gt, records = _random_reset_run(rng, n, wh)
        videos.append(_Video(f"v{k}", gt, records, wh))
        ours.append(m.vot_eao_trajectory([r if len(r) > 1 else r[0] for r in records], gt, wh))
    bench = eao_benchmark.EAOBenchmark(_Dataset(edition, videos))
    theirs = bench.eval("ours")["ours"]["all"]
    assert sum(len(t.failure_frames) for t in ours) >= 5
    assert m.expected_average_overlap(ours, edition) == pytest.approx(theirs, abs=1e-6)
