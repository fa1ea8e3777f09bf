"""Clients of a Triton server running a ``siamtrack triton-repo`` repository (gRPC).

``TritonTracker``: the tracker's state and template kernels live on the server (the ``tracker``
model); the client sends frames (raw BGR, or JPEG) and gets boxes. Same calls and result types as
``runtime.tracker.SiamRPNTracker`` (``init(frame, box) -> TargetState``, ``track(frame) ->
TrackResult``), for one target per stream.

``RemoteBackend``: a ``runtime.backends.base.Backend`` over the stateless ``template_net`` and
``search_net``; ``SiamRPNTracker(RemoteBackend(url))`` crops on the client and holds the kernels there,
sending them with every search (the "client-held kernels" design the load script compares against).

Failures: a refused request raises ``InputError`` with the server's reason; a server that does not
answer raises ``ServerUnavailable`` (or, with ``reconnect=True``, the tracker waits for it to come back
and restarts its stream from the last box on the current frame).
"""
from __future__ import annotations

import secrets
import time

import numpy as np

from runtime.backends.base import Backend, Kernels
from runtime.contract import (CLS_OUTPUT, LOC_OUTPUT, SEARCH_INPUT, TEMPLATE_INPUT, ModelSpec, TrackerConfig)
from runtime.errors import BackendUnavailable, InputError
from runtime.frames import as_bgr_frame
from runtime.tracker import TargetState, TrackResult
from serving.triton.configs import (BOX, FRAME, IMAGE, INIT_BOX, SCORE, SEARCH_MODEL, STATE, STREAMS,
                                    TEMPLATE_MODEL, TRACKER_MODEL)

ENCODINGS = ("raw", "jpeg")


class ServerUnavailable(BackendUnavailable):
    """The Triton server did not answer (stopped, restarting, unreachable)."""


class StreamLost(InputError):
    """The server does not know this stream (restarted, idle timeout, never started, ended)."""


# How Triton's sequence batcher and the tracker model say they do not know a stream.
_LOST_MARKERS = ("must specify the START flag", "is unknown here")


def _grpc():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError as err:
        raise BackendUnavailable(f"tritonclient is not installed ({err}); pip install 'tritonclient[grpc]' "
                                 "(or bash setup.sh --dev)") from None
    return grpcclient, InferenceServerException


def _unavailable(err) -> bool:
    status = str(getattr(err, "status", lambda: "")() or "")
    text = str(err)
    return ("UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status or "failed to connect" in text.lower()
            or "Socket closed" in text or "Connection refused" in text)


def _call(client, url: str, model: str, inputs, outputs, timeout_s: float, **seq):
    grpcclient, InferenceServerException = _grpc()
    try:
        return client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(n) for n in outputs],
                            client_timeout=timeout_s, **seq)
    except InferenceServerException as err:
        if _unavailable(err):
            raise ServerUnavailable(f"Triton server {url} did not answer ({err.message() or err}); is it "
                                    "running? (siamtrack triton-serve --repo REPO)") from None
        text = err.message() or str(err)
        kind = StreamLost if any(m in text for m in _LOST_MARKERS) else InputError
        raise kind(f"Triton server {url}, model {model}: {text}") from None


def _tensor(name: str, array: np.ndarray, dtype: str):
    grpcclient, _ = _grpc()
    t = grpcclient.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def model_contract(client, url: str) -> tuple[ModelSpec, TrackerConfig, str]:
    """(ModelSpec, TrackerConfig, export id) from the tracker model's config on the server."""
    _, InferenceServerException = _grpc()
    try:
        cfg = client.get_model_config(TRACKER_MODEL, as_json=True)["config"]
    except InferenceServerException as err:
        if _unavailable(err):
            raise ServerUnavailable(f"Triton server {url} did not answer ({err.message() or err})") from None
        raise InputError(f"Triton server {url} has no usable {TRACKER_MODEL} model ({err.message() or err}); "
                         "serve a repository written by `siamtrack triton-repo`") from None
    params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
    return (ModelSpec.from_json(params["model_spec"]), TrackerConfig.from_json(params["tracker_config"]),
            params.get("export_id", ""))


class TritonTracker:
    """One target tracked by the server's ``tracker`` model (one Triton sequence).

    url: "host:port" of Triton's gRPC endpoint. encoding: "raw" (HxWx3 uint8, exact) or "jpeg"
    (smaller on the wire, lossy: boxes then follow the decoded frame). timeout_s: per request.
    reconnect: when the server stops answering or has forgotten the stream (restart, idle timeout),
    wait up to ``reconnect_wait_s`` for it and restart the stream from the last box on the current
    frame (counted in ``reconnects``; that frame's result has score 0) instead of raising
    ServerUnavailable / StreamLost.
    """

    name = "triton"      # what the live loop reports as its backend

    def __init__(self, url: str, *, encoding: str = "raw", jpeg_quality: int = 90, timeout_s: float = 30.0,
                 reconnect: bool = False, reconnect_wait_s: float = 30.0, client=None):
        if encoding not in ENCODINGS:
            raise InputError(f"encoding {encoding!r}: expected one of {', '.join(ENCODINGS)}")
        grpcclient, _ = _grpc()
        self.url, self.encoding, self.jpeg_quality = url, encoding, int(jpeg_quality)
        self.timeout_s, self.reconnect, self.reconnect_wait_s = timeout_s, reconnect, reconnect_wait_s
        self.client = client or grpcclient.InferenceServerClient(url)
        self.sequence_id = 0
        self.reconnects = 0
        self.last_request_bytes = 0      # payload bytes of the last request's tensors
        self.last_streams = 0            # streams the server held after the last request
        self._box: np.ndarray | None = None
        self._restarting = False

    # -- wire ---------------------------------------------------------------------------------------
    def _frame_input(self, frame: np.ndarray):
        if self.encoding == "raw":
            return _tensor(FRAME, frame[None], "UINT8"), frame.nbytes
        import cv2

        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise InputError("could not JPEG-encode the frame")
        data = np.array([[buf.tobytes()]], dtype=np.object_)
        return _tensor(IMAGE, data, "BYTES"), len(buf)

    def _request(self, frame: np.ndarray | None, *, box=None, start=False, end=False):
        inputs, size = [], 0
        if frame is not None:
            t, size = self._frame_input(frame)
            inputs.append(t)
        if box is not None:
            inputs.append(_tensor(INIT_BOX, np.asarray(box, np.float64).reshape(1, 4), "FP64"))
            size += 32
        self.last_request_bytes = size
        result = _call(self.client, self.url, TRACKER_MODEL, inputs, [BOX, SCORE, STATE, STREAMS], self.timeout_s,
                       sequence_id=self.sequence_id, sequence_start=start, sequence_end=end)
        self.last_streams = int(result.as_numpy(STREAMS).reshape(-1)[0])
        state = result.as_numpy(STATE).reshape(7)
        return (result.as_numpy(BOX).reshape(4).astype(np.float64), float(result.as_numpy(SCORE).reshape(-1)[0]),
                TargetState(state[0:2], state[2:4], state[4:7]))

    # -- the tracker API ----------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box_xywh) -> TargetState:
        """Start a new stream (a new correlation id) on ``frame`` (HxWx3 uint8 BGR) at ``box_xywh``."""
        frame = as_bgr_frame(frame)
        if self.sequence_id and not self._restarting:
            self.close()                     # a re-selected target: free the old stream's kernels now
        self.sequence_id = secrets.randbits(63) or 1
        _, _, state = self._request(frame, box=box_xywh, start=True)
        self._box = np.asarray(box_xywh, np.float64).reshape(4)
        return state

    def track(self, frame: np.ndarray) -> TrackResult:
        if not self.sequence_id:
            raise InputError("the stream has no target yet; call init(frame, box) first")
        frame = as_bgr_frame(frame)
        try:
            box, score, state = self._request(frame)
        except (ServerUnavailable, StreamLost):
            if not self.reconnect:
                raise
            return self._restart(frame)
        self._box = box
        return TrackResult(box, score, state)

    def _restart(self, frame: np.ndarray) -> TrackResult:
        """Wait for the server, then START a new stream from the last box on this frame."""
        deadline = time.monotonic() + self.reconnect_wait_s
        self._restarting = True              # the old stream is gone with the server: no END for it
        while True:
            try:
                state = self.init(frame, self._box)
                self.reconnects += 1
                self._restarting = False
                return TrackResult(self._box.copy(), 0.0, state)
            except ServerUnavailable:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"Triton server {self.url} did not come back within "
                                            f"{self.reconnect_wait_s:g} s; stream lost at box "
                                            f"{self._box.round(1).tolist()}") from None
                time.sleep(0.25)

    def close(self) -> None:
        """End the stream on the server (its kernels are dropped); safe to call twice."""
        if self.sequence_id:
            try:
                self._request(None, end=True)
            except (ServerUnavailable, InputError):
                pass  # the server forgot the stream already (restart, idle timeout)
            self.sequence_id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RemoteBackend(Backend):
    """The stateless nets on a Triton server as a Backend: the client crops and holds the kernels."""

    name = "triton"

    def __init__(self, url: str, *, timeout_s: float = 30.0, client=None):
        grpcclient, _ = _grpc()
        self.url, self.timeout_s = url, timeout_s
        self.client = client or grpcclient.InferenceServerClient(url)
        self.spec, self.tracker_config, self.export_id = model_contract(self.client, url)
        self.last_request_bytes = 0

    def _template_impl(self, crops: np.ndarray) -> Kernels:
        self.last_request_bytes = crops.nbytes
        result = _call(self.client, self.url, TEMPLATE_MODEL, [_tensor(TEMPLATE_INPUT, crops, "FP32")],
                       list(self.spec.kernel_names), self.timeout_s)
        return Kernels(crops.shape[0], tuple(result.as_numpy(n) for n in self.spec.kernel_names))

    def _search_impl(self, crops: np.ndarray, kernels: Kernels):
        self.check_kernels(kernels.arrays)
        inputs = [_tensor(SEARCH_INPUT, crops, "FP32")]
        inputs += [_tensor(n, np.ascontiguousarray(k), "FP32") for n, k in zip(self.spec.kernel_names, kernels.arrays)]
        self.last_request_bytes = crops.nbytes + sum(k.nbytes for k in kernels.arrays)
        result = _call(self.client, self.url, SEARCH_MODEL, inputs, [CLS_OUTPUT, LOC_OUTPUT], self.timeout_s)
        return result.as_numpy(CLS_OUTPUT), result.as_numpy(LOC_OUTPUT)

    def close(self) -> None:
        self.client.close()
