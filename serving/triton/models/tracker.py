"""The ``tracker`` model: one SiamRPN++ stream per Triton sequence (correlation id), state held here.

Protocol (tensor names in ``serving.triton.configs``; controls from Triton's sequence batcher):
- START=1 with INIT_BOX and a frame (FRAME: HxWx3 uint8 BGR, or IMAGE: JPEG/PNG bytes): crop the
  template, make the stream's kernels (one ``template_net`` call for all STARTs of the batch), keep them
  under the correlation id. Answers BOX = INIT_BOX, SCORE = 1.
- a later request with a frame: crop on the server, one ``search_net`` call for all streams of the
  batch, pysot's post-processing; answers BOX, SCORE, STATE.
- END=1: drop the stream after answering (a frame with END is tracked first; END without a frame
  answers the last box).
- no request for ``idle_timeout_s``: the stream is dropped at the next batch (Triton frees its sequence
  slot on the same timeout without telling the model).

Per stream this is ``runtime.tracker.SiamRPNTracker`` unchanged; ``gather.GatheringBackend`` batches
the streams' backend calls. Any bad request (unknown stream, missing START, undecodable or oversized
image, box outside the frame) gets an error response naming the problem; the other requests of the
batch and the other streams go on.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serving.triton.configs import (BOX, CORRID, END, FRAME, IMAGE, INIT_BOX, MODELS, SCORE, START, STATE,
                                    STREAMS)
from serving.triton.models.common import check_repository, error_response, model_parameters


class RequestError(Exception):
    """A request this model refuses (answered as an error response; the model carries on)."""


@dataclass
class Stream:
    tracker: object               # runtime.tracker.SiamRPNTracker
    last_seen: float              # time.monotonic() of the last request
    box: np.ndarray               # (4,) last box answered
    score: float


def _state_vector(state) -> np.ndarray:
    """(7,) float64: centre x, y, width, height, channel average B, G, R."""
    return np.concatenate([state.center_xy, state.size_wh, state.channel_average]).astype(np.float64)


class TrackerModel:
    def initialize(self, args):
        from runtime.contract import ModelSpec, TrackerConfig
        from serving.triton.models.gather import GatheringBackend

        params = model_parameters(args)
        check_repository(args, params.get("export_id", ""), MODELS)
        self.spec = ModelSpec.from_json(params["model_spec"])
        self.config = TrackerConfig.from_json(params["tracker_config"])
        self.idle_timeout_s = float(params["idle_timeout_s"])
        self.max_frame_pixels = int(params["max_frame_pixels"])
        self.max_streams = int(params["max_streams"])
        self.max_batch = int(params["max_batch"])
        self.template_model, self.search_model = params["template_model"], params["search_model"]
        self.backend = GatheringBackend(self.spec, self.config, self._bls_template, self._bls_search)
        self.pool = ThreadPoolExecutor(max_workers=self.max_batch, thread_name_prefix="stream")
        self.streams: dict[int, Stream] = {}

    def finalize(self):
        self.pool.shutdown(wait=False)
        self.streams.clear()

    # -- BLS: one call per net and batch ------------------------------------------------------------
    def _bls(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        import triton_python_backend_utils as pb_utils

        n = len(next(iter(inputs.values())))
        results: list[list[np.ndarray]] = []
        for start in range(0, n, self.max_batch):  # a batch is never above max_batch; kept for safety
            request = pb_utils.InferenceRequest(
                model_name=model, requested_output_names=outputs,
                inputs=[pb_utils.Tensor(name, np.ascontiguousarray(arr[start:start + self.max_batch]))
                        for name, arr in inputs.items()])
            response = request.exec()
            if response.has_error():
                raise RuntimeError(f"{model} failed: {response.error().message()}")
            results.append([np.array(pb_utils.get_output_tensor_by_name(response, name).as_numpy())
                            for name in outputs])
        return [np.concatenate(parts) for parts in zip(*results)]

    def _bls_template(self, crops):
        from runtime.contract import TEMPLATE_INPUT

        return tuple(self._bls(self.template_model, {TEMPLATE_INPUT: crops}, list(self.spec.kernel_names)))

    def _bls_search(self, crops, kernels):
        from runtime.contract import CLS_OUTPUT, LOC_OUTPUT, SEARCH_INPUT

        inputs = {SEARCH_INPUT: crops, **dict(zip(self.spec.kernel_names, kernels))}
        cls, loc = self._bls(self.search_model, inputs, [CLS_OUTPUT, LOC_OUTPUT])
        return cls, loc

    # -- requests ---------------------------------------------------------------------------------
    def _frame(self, request) -> np.ndarray | None:
        import triton_python_backend_utils as pb_utils

        raw = pb_utils.get_input_tensor_by_name(request, FRAME)
        encoded = pb_utils.get_input_tensor_by_name(request, IMAGE)
        if raw is not None and encoded is not None:
            raise RequestError(f"send the frame as {FRAME} (raw BGR) or {IMAGE} (JPEG/PNG), not both")
        if raw is not None:
            frame = raw.as_numpy()
            frame = frame[0] if frame.ndim == 4 and frame.shape[0] == 1 else frame
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
                raise RequestError(f"{FRAME} has shape {frame.shape}; expected [1, H, W, 3] uint8 BGR")
            self._check_size(frame.shape[0], frame.shape[1])
            return np.ascontiguousarray(frame)
        if encoded is not None:
            import cv2

            data = encoded.as_numpy().reshape(-1)
            blob = data[0] if len(data) else b""
            blob = blob if isinstance(blob, bytes) else bytes(blob)
            if len(blob) > 3 * self.max_frame_pixels + 1024:
                raise RequestError(f"{IMAGE} is {len(blob)} bytes, above what a frame of at most "
                                   f"{self.max_frame_pixels} pixels needs; send a smaller image")
            frame = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR) if blob else None
            if frame is None:
                raise RequestError(f"{IMAGE} ({len(blob)} bytes) is not a decodable JPEG or PNG image")
            self._check_size(frame.shape[0], frame.shape[1])
            return frame
        return None

    def _check_size(self, height: int, width: int) -> None:
        if height * width > self.max_frame_pixels:
            raise RequestError(f"frame {width}x{height} has more than the {self.max_frame_pixels} pixels this "
                               "server accepts (triton-repo --max-frame-pixels); scale it down")

    @staticmethod
    def _control(request, name: str) -> int:
        import triton_python_backend_utils as pb_utils

        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return 0 if tensor is None else int(np.asarray(tensor.as_numpy()).reshape(-1)[0])

    def _plan(self, request, now: float):
        """-> (corrid, end, job): job() runs on a worker thread and returns (box, score, state)."""
        import triton_python_backend_utils as pb_utils

        from runtime.tracker import SiamRPNTracker

        corrid = self._control(request, CORRID)
        start, end = bool(self._control(request, START)), bool(self._control(request, END))
        frame = self._frame(request)
        if start:
            box_tensor = pb_utils.get_input_tensor_by_name(request, INIT_BOX)
            if box_tensor is None or frame is None:
                raise RequestError(f"START needs {INIT_BOX} [x, y, w, h] and the first frame ({FRAME} or {IMAGE})")
            if corrid not in self.streams and len(self.streams) >= self.max_streams:
                raise RequestError(f"this server already holds {self.max_streams} streams "
                                   "(triton-repo --max-streams); end a stream or use another server")
            box = np.asarray(box_tensor.as_numpy(), dtype=np.float64).reshape(-1)
            tracker = SiamRPNTracker(self.backend, self.config)

            def init():
                state = tracker.init(frame, box)
                self.streams[corrid] = Stream(tracker, now, box.copy(), 1.0)
                return box.copy(), 1.0, _state_vector(state)
            return corrid, end, init
        stream = self.streams.get(corrid)
        if stream is None:
            raise RequestError(f"stream {corrid} is unknown here (never started, ended, or dropped after "
                               f"{self.idle_timeout_s:g} s idle); send START with a box and a frame")
        stream.last_seen = now
        if frame is None:
            if not end:
                raise RequestError(f"request for stream {corrid} holds no frame; send {FRAME} or {IMAGE}")
            return corrid, end, lambda: (stream.box, stream.score, _state_vector(stream.tracker.state))

        def track():
            result = stream.tracker.track(frame)
            stream.box, stream.score = np.array(result.box_xywh), float(result.score)
            return stream.box, stream.score, _state_vector(result.state)
        return corrid, end, track

    def _expire(self, now: float) -> None:
        for corrid in [c for c, s in self.streams.items() if now - s.last_seen > self.idle_timeout_s]:
            del self.streams[corrid]

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        now = time.monotonic()
        self._expire(now)
        plans, jobs = [], []
        for request in requests:
            try:
                corrid, end, job = self._plan(request, now)
                plans.append((corrid, end, len(jobs)))
                jobs.append(job)
            except RequestError as err:
                plans.append((None, False, str(err)))
            except Exception as err:  # a bug or an unexpected input: answer it, keep serving
                plans.append((None, False, f"{type(err).__name__}: {err}"))
        results = self.backend.run_round(jobs, self.pool) if jobs else []
        responses = []
        for corrid, end, slot in plans:
            if isinstance(slot, str):
                responses.append(error_response(f"tracker: {slot}"))
                continue
            result = results[slot]
            if end:
                self.streams.pop(corrid, None)
            if isinstance(result, Exception):
                responses.append(error_response(f"tracker: stream {corrid}: {result}"))
                continue
            box, score, state = result
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor(BOX, np.asarray(box, np.float64).reshape(1, 4)),
                pb_utils.Tensor(SCORE, np.array([[score]], np.float32)),
                pb_utils.Tensor(STATE, state.reshape(1, 7)),
                pb_utils.Tensor(STREAMS, np.array([[len(self.streams)]], np.int32)),
            ]))
        return responses
