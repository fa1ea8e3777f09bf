"""The tracker model's GatheringBackend: many per-stream SiamRPNTrackers, one batched call per net.

No server here: the batched calls are plain numpy functions (a deterministic stand-in network, per
sample), so the test checks the batching logic itself; tests/test_triton_serving.py runs it for real
inside Triton.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from runtime.backends.base import Backend, Kernels
from runtime.contract import ModelSpec, TrackerConfig
from runtime.errors import InputError
from runtime.tracker import SiamRPNTracker
from serving.triton.models.gather import GatheringBackend

CFG = TrackerConfig()
SPEC = ModelSpec(variant="toy", exemplar_size=CFG.exemplar_size, instance_size=CFG.instance_size,
                 score_size=CFG.score_size, anchor_num=CFG.anchor_num, levels=("",), kernel_channels=2,
                 kernel_size=1)


def toy_template(crops):
    """(N,3,E,E) -> kernels (N,2,1,1): per-sample channel means, a function of that sample only."""
    m = crops.mean(axis=(2, 3))                                    # (N, 3)
    return (m[:, :2, None, None].astype(np.float32), m[:, 1:, None, None].astype(np.float32))


def toy_search(crops, kernels):
    """(N,3,X,X) + kernels -> cls (N,2A,S,S), loc (N,4A,S,S), per sample."""
    n, s, a = crops.shape[0], SPEC.score_size, SPEC.anchor_num
    small = crops[:, :, ::10, ::10][:, :, :s, :s].mean(axis=1)     # (N, S, S)
    k = kernels[0][:, 0, 0, 0][:, None, None] / 255.0
    cls = np.concatenate([np.zeros((n, a, s, s)), np.repeat((small / 255.0 * k)[:, None], a, axis=1)], axis=1)
    loc = np.repeat((small / 2550.0)[:, None], 4 * a, axis=1)
    return cls.astype(np.float32), loc.astype(np.float32)


class ToyBackend(Backend):
    """The same toy network, one stream at a time (what a local tracker would call)."""

    name = "toy"
    spec, tracker_config = SPEC, CFG

    def _template_impl(self, crops):
        return Kernels(len(crops), toy_template(crops))

    def _search_impl(self, crops, kernels):
        return toy_search(crops, kernels.arrays)


def _frames(seed, n=4):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(n)]


def test_streams_tracked_together_equal_streams_tracked_alone_with_one_call_per_round():
    calls = {"template": 0, "search": 0}

    def template(crops):
        calls["template"] += 1
        return toy_template(crops)

    def search(crops, kernels):
        calls["search"] += 1
        return toy_search(crops, kernels)

    gathering = GatheringBackend(SPEC, CFG, template, search)
    pool = ThreadPoolExecutor(4)
    boxes = [np.array([40.0 + 5 * i, 30.0, 30.0, 25.0]) for i in range(3)]
    frames = [_frames(i) for i in range(3)]
    served = [SiamRPNTracker(gathering, CFG) for _ in range(3)]
    gathering.run_round([lambda t=t, f=f, b=b: t.init(f[0], b) for t, f, b in zip(served, frames, boxes)], pool)
    got = [[] for _ in range(3)]
    for step in range(1, 4):
        results = gathering.run_round([lambda t=t, f=f: t.track(f[step]) for t, f in zip(served, frames)], pool)
        for i, r in enumerate(results):
            got[i].append(r.box_xywh)
    assert calls == {"template": 1, "search": 3}
    for i in range(3):
        alone = SiamRPNTracker(ToyBackend(), CFG)
        alone.init(frames[i][0], boxes[i])
        want = [alone.track(frames[i][step]).box_xywh for step in range(1, 4)]
        np.testing.assert_array_equal(np.array(got[i]), np.array(want))


def test_a_failing_stream_does_not_hold_up_the_round():
    gathering = GatheringBackend(SPEC, CFG, toy_template, toy_search)
    pool = ThreadPoolExecutor(2)
    frame = _frames(0, 1)[0]
    good, bad = SiamRPNTracker(gathering, CFG), SiamRPNTracker(gathering, CFG)
    results = gathering.run_round([lambda: good.init(frame, [10, 10, 30, 30]),
                                   lambda: bad.init(frame, [500, 500, 30, 30])], pool)
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], InputError) and "outside" in str(results[1])


def test_a_failed_batched_call_reaches_every_stream_of_it():
    def broken(crops, kernels):
        raise RuntimeError("search_net failed: out of memory")

    gathering = GatheringBackend(SPEC, CFG, toy_template, broken)
    pool = ThreadPoolExecutor(2)
    frame = _frames(1, 1)[0]
    trackers = [SiamRPNTracker(gathering, CFG) for _ in range(2)]
    gathering.run_round([lambda t=t: t.init(frame, [10, 10, 30, 30]) for t in trackers], pool)
    results = gathering.run_round([lambda t=t: t.track(frame) for t in trackers], pool)
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)


def test_a_backend_call_outside_a_round_is_a_bug_not_a_hang():
    gathering = GatheringBackend(SPEC, CFG, toy_template, toy_search)
    with pytest.raises(RuntimeError, match="one backend call per job"):
        SiamRPNTracker(gathering, CFG).init(_frames(2, 1)[0], [10, 10, 30, 30])
