"""Serving with the real Triton Inference Server (the tritonserver bundled in the nvidia-pytriton wheel,
python backend, CPU) on a repository generated from a tiny random-weight export.

Every box served must equal the local ONNX Runtime tracker's on the same frames within 1e-3 px
(same ONNX, same numpy tracker math; batching several streams in one ONNX Runtime call may change
float rounding in the last bits, nothing more). Bad requests get clear errors and never stop the
server or disturb other streams. The server listens on 127.0.0.1 only and is stopped by its PID.
"""
from __future__ import annotations

import importlib.util
import itertools
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("pytriton") is None:  # installed --no-deps: find it, do not import it
    pytest.skip("nvidia-pytriton (the bundled tritonserver) is not installed: bash setup.sh --dev",
                allow_module_level=True)
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed: bash setup.sh --dev")

from runtime.errors import InputError  # noqa: E402

BOX_TOL_PX = 1e-3
STREAMS, FRAMES = 8, 30
IDLE_S = 3.0
MAX_PIXELS = 640 * 480


def _frames(seed: int, n: int = FRAMES):
    from bench.synth import SynthConfig, iter_frames

    items = list(itertools.islice(iter_frames(seed, SynthConfig(frames=n)), n))
    return [i.frame for i in items], items[0].box_xywh


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    from export.to_onnx import main

    out = tmp_path_factory.mktemp("triton-export")
    assert main(["--config", "lite0", "--random-seed", "0", "--out", str(out), "--flavour", "standard",
                 "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def repo(export_dir, tmp_path_factory) -> Path:
    from serving.triton.configs import ServingOptions
    from serving.triton.repo import write_repository

    out = tmp_path_factory.mktemp("triton") / "repo"
    write_repository(export_dir, out, options=ServingOptions(max_batch=16, idle_timeout_s=IDLE_S,
                                                              max_frame_pixels=MAX_PIXELS))
    return out


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    from serving.triton.server import start_server

    srv = start_server(repo, log_path=tmp_path_factory.mktemp("triton-log") / "server.log", exit_timeout_s=1)
    yield srv
    srv.stop()


def _local_boxes(export_dir, frames, box):
    from runtime.backends.onnxrt import OrtBackend
    from runtime.tracker import SiamRPNTracker

    tracker = SiamRPNTracker(OrtBackend.from_dir(export_dir, threads=1))
    tracker.init(frames[0], box)
    return np.array([tracker.track(f).box_xywh for f in frames[1:]])


def test_repository_records_the_export_id_in_every_model(repo, export_dir):
    import json

    from runtime.contract import GraphMeta
    from runtime.onnx_meta import read_onnx_summary

    export_id = GraphMeta.from_props(read_onnx_summary(export_dir / "search.fp32.standard.onnx").metadata).export_id
    assert json.loads((repo / "siamtrack_repository.json").read_text())["export_id"] == export_id
    for model in ("template_net", "search_net", "tracker"):
        for cfg in [repo / model / "config.pbtxt", repo / model / "configs" / "gpu.pbtxt"]:
            assert f'key: "export_id" value: {{ string_value: "{export_id}" }}' in cfg.read_text(), cfg


def test_eight_concurrent_streams_match_the_local_onnxruntime_tracker(server, export_dir):
    """8 streams x 30 frames at once, while two other clients send bad requests into the same batches."""
    from serving.triton.client import TritonTracker

    sequences = [_frames(seed) for seed in range(STREAMS)]
    served: dict[int, np.ndarray] = {}
    errors: list[str] = []
    stop_bad = threading.Event()

    def stream(i):
        frames, box = sequences[i]
        with TritonTracker(server.grpc_url) as tracker:
            tracker.init(frames[0], box)
            served[i] = np.array([tracker.track(f).box_xywh for f in frames[1:]])

    def bad_client(kind):
        from serving.triton.client import TritonTracker

        frames, box = sequences[0]
        for _ in range(200):  # bounded; stops when the good streams are done
            if stop_bad.is_set():
                return
            t = TritonTracker(server.grpc_url)
            try:
                if kind == "outside":
                    t.init(frames[0], [1000.0, 1000.0, 20.0, 20.0])
                else:
                    t.sequence_id = 12345
                    t.track(frames[1])
            except InputError as err:
                errors.append(str(err))
            stop_bad.wait(0.1)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(STREAMS)]
    bad = [threading.Thread(target=bad_client, args=(k,)) for k in ("outside", "unknown")]
    for t in threads + bad:
        t.start()
    for t in threads:
        t.join(120)
    stop_bad.set()
    for t in bad:
        t.join(30)
    assert sorted(served) == list(range(STREAMS)), "a stream did not finish"
    assert errors, "the bad clients' requests were not refused"
    assert server.alive()
    for i, (frames, box) in enumerate(sequences):
        local = _local_boxes(export_dir, frames, box)
        assert served[i].shape == (FRAMES - 1, 4)
        np.testing.assert_allclose(served[i], local, atol=BOX_TOL_PX, rtol=0, err_msg=f"stream {i}")


def test_frame_without_start_is_refused_and_the_server_goes_on(server):
    from serving.triton.client import TritonTracker

    frames, box = _frames(3, 3)
    orphan = TritonTracker(server.grpc_url)
    orphan.sequence_id = 987654321       # never STARTed
    with pytest.raises(InputError, match="START"):
        orphan.track(frames[1])
    with TritonTracker(server.grpc_url) as good:
        good.init(frames[0], box)
        assert np.all(np.isfinite(good.track(frames[1]).box_xywh))


def test_end_twice_is_refused(server):
    from serving.triton.client import TritonTracker

    frames, box = _frames(4, 2)
    tracker = TritonTracker(server.grpc_url)
    tracker.init(frames[0], box)
    tracker._request(frames[1], end=True)
    with pytest.raises(InputError, match="START"):
        tracker._request(None, end=True)


def test_stream_idle_past_the_timeout_is_forgotten(server):
    import time

    from serving.triton.client import TritonTracker

    frames, box = _frames(5, 3)
    idle = TritonTracker(server.grpc_url)
    idle.init(frames[0], box)
    held = idle.last_streams
    time.sleep(IDLE_S + 0.7)
    with pytest.raises(InputError, match="START|unknown"):
        idle.track(frames[1])
    with TritonTracker(server.grpc_url) as fresh:
        fresh.init(frames[0], box)
        assert fresh.last_streams <= held, "the idle stream's kernels are still held"


def test_undecodable_image_is_refused(server):
    from serving.triton.client import TritonTracker, _call, _tensor

    tracker = TritonTracker(server.grpc_url)
    garbage = np.array([[b"\xff\xd8 this is not a jpeg"]], dtype=np.object_)
    box = _tensor("INIT_BOX", np.array([[10.0, 10.0, 20.0, 20.0]]), "FP64")
    with pytest.raises(InputError, match="not a decodable JPEG or PNG"):
        _call(tracker.client, tracker.url, "tracker", [_tensor("IMAGE", garbage, "BYTES"), box],
              ["BOX"], 10.0, sequence_id=55, sequence_start=True)


def test_frame_with_four_channels_is_refused(server):
    from serving.triton.client import TritonTracker, _call, _tensor

    tracker = TritonTracker(server.grpc_url)
    rgba = np.zeros((1, 48, 64, 4), np.uint8)
    box = _tensor("INIT_BOX", np.array([[10.0, 10.0, 20.0, 20.0]]), "FP64")
    with pytest.raises(InputError, match="FRAME"):
        _call(tracker.client, tracker.url, "tracker", [_tensor("FRAME", rgba, "UINT8"), box], ["BOX"], 10.0,
              sequence_id=56, sequence_start=True)


def test_oversized_frame_is_refused(server):
    from serving.triton.client import TritonTracker

    big = np.zeros((700, 700, 3), np.uint8)
    with pytest.raises(InputError, match="more than the"):
        TritonTracker(server.grpc_url).init(big, [10, 10, 50, 50])


def test_box_outside_the_frame_is_refused(server):
    from serving.triton.client import TritonTracker

    frames, _ = _frames(6, 1)
    with pytest.raises(InputError, match="outside"):
        TritonTracker(server.grpc_url).init(frames[0], [500.0, 400.0, 30.0, 30.0])


def test_jpeg_frames_track_like_the_decoded_frames_locally(server, export_dir):
    import cv2

    from serving.triton.client import TritonTracker

    frames, box = _frames(7, 6)
    decoded = [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)
               for f in frames]
    with TritonTracker(server.grpc_url, encoding="jpeg", jpeg_quality=90) as tracker:
        tracker.init(frames[0], box)
        served = np.array([tracker.track(f).box_xywh for f in frames[1:]])
    np.testing.assert_allclose(served, _local_boxes(export_dir, decoded, box), atol=BOX_TOL_PX, rtol=0)


def test_client_held_kernels_through_the_stateless_nets_match_local(server, export_dir):
    from runtime.tracker import SiamRPNTracker
    from serving.triton.client import RemoteBackend

    frames, box = _frames(8, 5)
    tracker = SiamRPNTracker(RemoteBackend(server.grpc_url))
    tracker.init(frames[0], box)
    served = np.array([tracker.track(f).box_xywh for f in frames[1:]])
    np.testing.assert_allclose(served, _local_boxes(export_dir, frames, box), atol=BOX_TOL_PX, rtol=0)


def test_repository_mixing_two_exports_is_refused_at_load(repo, export_dir, tmp_path):
    import onnx

    from runtime.contract import META_EXPORT_ID, merge_metadata_props
    from runtime.errors import BackendUnavailable
    from serving.triton.repo import write_repository
    from serving.triton.server import start_server

    other = tmp_path / "other-export"
    other.mkdir()
    for name in ("template.fp32.standard.onnx", "search.fp32.standard.onnx"):
        model = onnx.load(str(export_dir / name))
        merge_metadata_props(model, {META_EXPORT_ID: "another-export"})
        onnx.save(model, str(other / name))
    write_repository(other, tmp_path / "other-repo")
    mixed = tmp_path / "mixed"
    shutil.copytree(repo, mixed)
    shutil.rmtree(mixed / "search_net")
    shutil.copytree(tmp_path / "other-repo" / "search_net", mixed / "search_net")
    with pytest.raises(BackendUnavailable, match="mixes exports"):
        start_server(mixed, ready_timeout_s=60).stop()


def test_server_stopped_mid_stream_fails_clearly_or_reconnects(repo, tmp_path):
    from serving.triton.client import ServerUnavailable, TritonTracker
    from serving.triton.server import start_server

    frames, box = _frames(9, 6)
    srv = start_server(repo, log_path=tmp_path / "a.log", exit_timeout_s=1)
    try:
        plain = TritonTracker(srv.grpc_url, timeout_s=5)
        patient = TritonTracker(srv.grpc_url, timeout_s=5, reconnect=True, reconnect_wait_s=60)
        for t in (plain, patient):
            t.init(frames[0], box)
            t.track(frames[1])
        port = srv.grpc_port
        srv.stop()
        with pytest.raises(ServerUnavailable, match="did not answer"):
            plain.track(frames[2])
        results = []
        waiting = threading.Thread(target=lambda: results.append(patient.track(frames[2])))
        waiting.start()                            # retries while the server is down
        srv = start_server(repo, grpc_port=port, log_path=tmp_path / "b.log", exit_timeout_s=1)
        waiting.join(60)
        assert results and patient.reconnects == 1, "the client did not restart its stream"
        np.testing.assert_array_equal(results[0].box_xywh, patient._box)
        assert np.all(np.isfinite(patient.track(frames[3]).box_xywh))
    finally:
        srv.stop()


def test_camera_with_server_writes_the_json_lines_of_local_tracking(server, export_dir, tmp_path):
    import json

    import cv2

    from siamtrack.cli import main

    frames, box = _frames(10, 8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), f)          # lossless: both runs see the same pixels
    common = ["--source", str(folder), "--box", ",".join(f"{v:.6f}" for v in box), "--headless",
              "--pace", "every-frame"]
    assert main(["camera", "--server", server.grpc_url, *common, "--json-out", str(tmp_path / "remote.jsonl")]) == 0
    assert main(["camera", "--model", str(export_dir), "--backend", "onnxruntime", *common,
                 "--json-out", str(tmp_path / "local.jsonl")]) == 0
    remote = [json.loads(line) for line in (tmp_path / "remote.jsonl").read_text().splitlines()]
    local = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert len(remote) == len(local) == len(frames)
    for r, l in zip(remote, local):
        assert r["state"] == l["state"] and set(r) == set(l)
        if l["box"] is not None:
            np.testing.assert_allclose(r["box"], l["box"], atol=BOX_TOL_PX, rtol=0)
        if l["score"] is not None:
            assert abs(r["score"] - l["score"]) < 1e-3


def test_gpu_config_variant_parses_and_needs_only_the_tensorrt_backend(repo):
    """The bundled server has no TensorRT backend: loading --model-config-name=gpu must fail for that
    reason alone (the configs parse, the tracker model loads). Running the engines needs a GPU server."""
    from runtime.errors import BackendUnavailable
    from serving.triton.server import start_server

    with pytest.raises(BackendUnavailable) as info:
        start_server(repo, config_name="gpu", ready_timeout_s=60, exit_timeout_s=1).stop()
    errors = [line for line in str(info.value).splitlines() if "failed to load '" in line]
    assert sorted(line.split("failed to load '")[1].split("'")[0] for line in errors) == ["search_net", "template_net"]
    assert all("unable to find backend library for backend 'tensorrt'" in line for line in errors)


def test_load_script_reports_every_mode_and_stream_count(server, tmp_path):
    import json

    from serving.triton.load import MODES, main

    out = tmp_path / "load.json"
    assert main(["--server", server.grpc_url, "--streams", "1,2", "--frames", "3", "--out", str(out), "--json"]) == 0
    rows = json.loads(out.read_text())["results"]
    assert sorted((r["mode"], r["streams"]) for r in rows) == sorted((m, n) for m in MODES for n in (1, 2))
    for r in rows:
        assert r["errors"] == [] and r["frames"] == 2 * r["streams"] and r["fps"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
