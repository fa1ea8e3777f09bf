"""Calibration recording and feeds: crops as the tracker sees them, shards + manifest, refusals.

Runs the real FP32 ONNX Runtime backend on the micro export of test_precision_report (contract names
and metadata, 15/31 px crops) over short synthetic sequences.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from calibration import CalibrationError
from calibration.collect import JitterConfig, collect, model_identity, record_sequence
from calibration.feeds import load_calibration
from runtime.contract import META_EXPORT_ID, META_SOURCE_SHA, artifact_name
from test_precision_report import micro_sequences, write_micro_export


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return write_micro_export(tmp_path_factory.mktemp("export"))


@pytest.fixture
def fp32(export_dir):
    from runtime.backends.onnxrt import OrtBackend

    with OrtBackend.from_dir(export_dir, flavour="plugin") as backend:
        yield backend


@pytest.fixture(scope="module")
def calib_dir(export_dir, tmp_path_factory):
    from runtime.backends.onnxrt import OrtBackend

    out = tmp_path_factory.mktemp("calib") / "set"
    with OrtBackend.from_dir(export_dir, flavour="plugin") as backend:
        collect(micro_sequences(2, 10), backend, out, model_identity=model_identity(export_dir, "plugin"),
                jitter=JitterConfig(templates=2, searches=1), min_samples=8)
    return out


def test_template_crop_is_the_pysot_crop_of_the_init_box(fp32):
    # Independent geometry: pysot's init crop side round(sqrt((w+p)(h+p))), p = (w+h)/2, centred at
    # x+(w-1)/2, frame mean as padding; runtime.crop implements get_subwindow (tested elsewhere).
    from runtime.crop import crop_targets, to_blob

    seq = micro_sequences(1, 3)[0]
    rec = record_sequence(seq, fp32, JitterConfig(templates=0, searches=0), np.random.default_rng(0), 1, 10, 3)
    x, y, w, h = seq.init_box_xywh
    p = (w + h) / 2
    side = int(np.round(np.sqrt((w + p) * (h + p))))
    frame0 = seq.frames[0]
    expect = to_blob(crop_targets(frame0, np.array([[x + (w - 1) / 2, y + (h - 1) / 2]]), 15, np.array([side]),
                                  frame0.mean(axis=(0, 1))[None]))[0]
    np.testing.assert_array_equal(rec.templates[0], expect)


def test_kernels_recorded_are_the_template_graph_outputs(fp32):
    seq = micro_sequences(1, 3)[0]
    rec = record_sequence(seq, fp32, JitterConfig(templates=1, searches=0), np.random.default_rng(0), 1, 10, 3)
    assert len(rec.templates) == 2                       # the tracker's template + one jittered
    for crop, kernels in zip(rec.templates, rec.kernels):
        again = fp32.run_template(crop[None]).arrays
        for stored, fresh in zip(kernels, again):
            np.testing.assert_array_equal(stored, fresh[0])


def test_search_crops_pair_with_the_init_template(fp32):
    seq = micro_sequences(1, 6)[0]
    rec = record_sequence(seq, fp32, JitterConfig(templates=2, searches=1), np.random.default_rng(0), 1, 10, 6)
    assert len(rec.searches) == 2 * 5                    # frames 1..5: tracked + jittered each
    assert set(rec.search_template) == {0}               # jittered templates never feed the search
    assert sum(rec.search_jittered) == 5


def test_shards_and_manifest_agree(calib_dir):
    import hashlib

    manifest = json.loads((calib_dir / "manifest.json").read_text())
    assert manifest["searches"] == sum(s["searches"] for s in manifest["shards"]) >= 8
    for shard in manifest["shards"]:
        path = calib_dir / shard["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        with np.load(path) as z:
            assert z["template"].dtype == np.uint8 and z["template"].shape[1:] == (3, 15, 15)
            assert z["search"].shape == (shard["searches"], 3, 31, 31)
            assert z["kernel_cls"].shape == (shard["templates"], 4, 5, 5)
            assert z["search_template"].max() < shard["templates"]


def test_feeds_match_graph_inputs(calib_dir, export_dir):
    calib = load_calibration(calib_dir)
    t_feeds = list(calib.feeds_for(export_dir / artifact_name("template", "fp32", "plugin", "onnx"), batch=3))
    assert sum(f["template"].shape[0] for f in t_feeds) == calib.manifest["templates"]
    s_feeds = list(calib.feeds_for(export_dir / artifact_name("search", "fp32", "plugin", "onnx"), batch=3))
    assert sum(f["search"].shape[0] for f in s_feeds) == calib.manifest["searches"]
    for f in s_feeds:
        assert set(f) == {"search", "kernel_cls", "kernel_loc"}
        assert all(a.dtype == np.float32 and a.shape[0] == f["search"].shape[0] for a in f.values())


def test_same_sequences_and_seed_give_the_same_set(calib_dir, export_dir, fp32, tmp_path):
    again = collect(micro_sequences(2, 10), fp32, tmp_path / "again", model_identity=model_identity(export_dir, "plugin"),
                    jitter=JitterConfig(templates=2, searches=1), min_samples=8)
    assert again["set_sha256"] == load_calibration(calib_dir).set_sha256


def test_too_few_samples_is_refused_and_nothing_written(export_dir, fp32, tmp_path):
    with pytest.raises(CalibrationError, match="at least 50"):
        collect(micro_sequences(1, 4), fp32, tmp_path / "few", model_identity=model_identity(export_dir, "plugin"),
                min_samples=50)
    assert list(tmp_path.iterdir()) == []


def test_changed_shard_is_refused(calib_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(calib_dir, copy)
    shard = sorted(copy.glob("shard_*.npz"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(CalibrationError, match="sha256"):
        load_calibration(copy)


def test_missing_or_empty_set_is_refused(calib_dir, tmp_path):
    with pytest.raises(CalibrationError, match="manifest.json"):
        load_calibration(tmp_path)
    manifest = json.loads((calib_dir / "manifest.json").read_text())
    manifest.update(shards=[], searches=0)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CalibrationError, match="empty"):
        load_calibration(tmp_path)


def test_search_graph_of_another_export_is_refused(calib_dir, export_dir, tmp_path):
    path = tmp_path / "search.fp32.plugin.onnx"
    model = onnx.load(str(export_dir / artifact_name("search", "fp32", "plugin", "onnx")))
    for p in model.metadata_props:
        if p.key in (META_EXPORT_ID, META_SOURCE_SHA):
            p.value = "other"
    onnx.save(model, str(path))
    with pytest.raises(CalibrationError, match="another model's kernels"):
        load_calibration(calib_dir).feeds_for(path)


def test_cli_records_a_folder_dataset(export_dir, tmp_path):
    from bench.synth import TEST_SEEDS, SynthConfig, write_sequence
    from calibration.collect import main

    write_sequence(TEST_SEEDS[0], tmp_path / "seqs" / "a", SynthConfig(width=96, height=72, frames=8))
    out = tmp_path / "calib"
    assert main([str(export_dir), "--dataset", f"folder:{tmp_path / 'seqs'}", "--out", str(out),
                 "--min-samples", "4", "--quiet", "--json"]) == 0
    assert load_calibration(out).manifest["sources"] == ["a"]
