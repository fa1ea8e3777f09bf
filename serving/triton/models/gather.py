"""A backend that gathers the calls of many per-stream trackers into one batched call per net.

The tracker model keeps one unchanged ``runtime.tracker.SiamRPNTracker`` per stream, so the tracker
math stays the project's one numpy implementation. To send all streams of a Triton batch to
``search_net`` in ONE call, each stream's ``track(frame)`` runs on its own worker thread with this
backend: ``run_search`` parks the stream's crops in the current round and waits; when every worker
has either parked or finished (an error before reaching the backend, e.g. a box outside the frame),
the model's thread runs one call per net for everything parked (``dispatch``) and wakes the workers,
which finish their own post-processing. ``run_template`` works the same way for STARTs.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from runtime.backends.base import Backend, Kernels
from runtime.contract import ModelSpec, TrackerConfig


class _Parked:
    __slots__ = ("kind", "crops", "kernels", "result", "error", "done")

    def __init__(self, kind: str, crops: np.ndarray, kernels: Kernels | None):
        self.kind, self.crops, self.kernels = kind, crops, kernels
        self.result = self.error = None
        self.done = False


class GatheringBackend(Backend):
    """Backend for the per-stream trackers of one tracker-model instance.

    run_template_batch(crops (N,3,E,E)) -> tuple of kernel arrays (N,C,k,k); run_search_batch(crops
    (N,3,X,X), kernels tuple) -> (cls, loc): the real calls (BLS to the nets), made once per round.
    """

    name = "triton-bls"

    def __init__(self, spec: ModelSpec, tracker_config: TrackerConfig,
                 run_template_batch: Callable, run_search_batch: Callable):
        self.spec, self.tracker_config = spec, tracker_config
        self._run_template_batch, self._run_search_batch = run_template_batch, run_search_batch
        self._cond = threading.Condition()
        self._waiting = 0            # workers of this round that have neither parked nor finished
        self._parked: list[_Parked] = []
        self._local = threading.local()

    # -- called on the model's thread --------------------------------------------------------------
    def run_round(self, jobs: list[Callable], pool) -> list:
        """Run ``jobs`` (each makes at most one backend call) concurrently with one batched call per net.
        Returns each job's result or the exception it raised."""
        with self._cond:
            self._waiting, self._parked = len(jobs), []
        futures = [pool.submit(self._worker, job) for job in jobs]
        with self._cond:
            self._cond.wait_for(lambda: self._waiting == 0)
            parked = list(self._parked)
        self._dispatch(parked)
        return [f.result() for f in futures]

    def _dispatch(self, parked: list[_Parked]) -> None:
        for kind in ("template", "search"):
            group = [p for p in parked if p.kind == kind]
            if not group:
                continue
            try:
                crops = np.concatenate([p.crops for p in group])               # (N, 3, S, S)
                if kind == "template":
                    arrays = self._run_template_batch(crops)
                    for i, p in enumerate(group):                             # each stream keeps its own copy
                        p.result = Kernels(1, tuple(np.array(a[i:i + 1]) for a in arrays))
                else:
                    kernels = tuple(np.concatenate([p.kernels.arrays[j] for p in group])
                                    for j in range(len(self.spec.kernel_names)))
                    cls, loc = self._run_search_batch(crops, kernels)
                    for i, p in enumerate(group):
                        p.result = (np.array(cls[i:i + 1]), np.array(loc[i:i + 1]))
            except Exception as err:  # every stream of the failed call gets the reason
                for p in group:
                    p.error = err
        with self._cond:
            for p in parked:
                p.done = True
            self._cond.notify_all()

    # -- called on worker threads ------------------------------------------------------------------
    def _worker(self, job: Callable):
        self._local.parked = False
        try:
            return job()
        except Exception as err:
            return err
        finally:
            if not self._local.parked:
                with self._cond:
                    self._waiting -= 1
                    self._cond.notify_all()

    def _park(self, kind: str, crops: np.ndarray, kernels: Kernels | None):
        if getattr(self._local, "parked", True):
            raise RuntimeError("GatheringBackend: one backend call per job and round (a bug in the caller)")
        slot = _Parked(kind, crops, kernels)
        with self._cond:
            self._parked.append(slot)
            self._local.parked = True
            self._waiting -= 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: slot.done)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _template_impl(self, crops: np.ndarray) -> Kernels:
        return self._park("template", crops, None)

    def _search_impl(self, crops: np.ndarray, kernels: Kernels):
        return self._park("search", crops, kernels)
