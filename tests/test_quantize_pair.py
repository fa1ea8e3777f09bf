"""An INT8 template/search pair is written all-or-nothing and carries one calibration id.

A kill between the two graphs of the old writer paired a new template with an old search graph; now
both graphs are quantized in memory and fsynced before either is renamed, both carry the same
calibration id, and a pair whose ids differ is refused at load (tests/test_export_consistency.py).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from calibration import CalibrationError
from calibration.quantize import pair_is_current, quantize_pair
from runtime.variants import calibration_info, variant_problem
from tests.tiny_graphs import tiny_search_standard, tiny_template


class _Calib:
    """The two things quantize_pair reads from a calibration set: feeds per graph and the set's sha256."""

    set_sha256 = "ab" * 32

    def __init__(self, bad_search=False):
        self.bad_search = bad_search

    def feeds_for(self, path):
        rng = np.random.default_rng(0)
        if "template" in path.name:
            return [{"template": rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
        side = 15 if self.bad_search else 16      # a wrong crop size: the search graph's calibration fails
        return [{"search": rng.uniform(0, 255, (1, 3, side, side)).astype(np.float32),
                 "kernel_cls": rng.standard_normal((1, 4, 4, 4)).astype(np.float32),
                 "kernel_loc": rng.standard_normal((1, 4, 4, 4)).astype(np.float32)} for _ in range(3)]


@pytest.fixture
def fp32(tmp_path):
    t, s = tmp_path / "template.fp32.standard.onnx", tmp_path / "search.fp32.standard.onnx"
    onnx.save(tiny_template(), str(t))
    onnx.save(tiny_search_standard(), str(s))
    return t, s


def test_both_graphs_carry_one_calibration_id_and_the_pair_is_accepted(tmp_path, fp32):
    outs = quantize_pair(*fp32, _Calib(), tmp_path, "standard", method="max")
    ids = {calibration_info(p)["calibration_id"] for p in outs}
    assert len(ids) == 1 and ids != {""}
    assert variant_problem(tmp_path, "int8", "standard", "onnx") is None


def test_a_failure_on_the_second_graph_writes_neither(tmp_path, fp32):
    with pytest.raises(CalibrationError):
        quantize_pair(*fp32, _Calib(bad_search=True), tmp_path, "standard", method="max")
    assert not list(tmp_path.glob("*.int8.*")) and not list(tmp_path.glob(".*tmp*"))


def test_a_pair_is_current_only_for_the_same_graphs_set_and_options(tmp_path, fp32):
    quantize_pair(*fp32, _Calib(), tmp_path, "standard", method="max")
    opts = dict(method="max", keep_fp=[], percentile=99.99, residual=True, bias_correction=True)
    assert pair_is_current(*fp32, _Calib(), tmp_path, "standard", **opts)
    assert not pair_is_current(*fp32, _Calib(), tmp_path, "standard", **dict(opts, method="entropy"))
    onnx.save(tiny_search_standard(seed=7), str(fp32[1]))        # the FP32 search graph changed
    assert not pair_is_current(*fp32, _Calib(), tmp_path, "standard", **opts)
