"""Serving many camera streams with NVIDIA Triton Inference Server.

repo.py      ``siamtrack triton-repo``: an export folder -> a Triton model repository (template_net,
             search_net: the exported graphs, batched; tracker: per-stream state, sequence batcher)
configs.py   the config.pbtxt texts (CPU: python backend + ONNX Runtime; GPU: tensorrt_plan)
models/      the python-backend models the repository's model.py files load (code lives here, not in
             the repository)
server.py    ``siamtrack triton-serve`` / ``python -m serving.triton.server``: start the tritonserver
             that the nvidia-pytriton wheel bundles, on 127.0.0.1, and stop it by PID
client.py    ``TritonTracker`` (server-side state) and ``RemoteBackend`` (client-held kernels)
camera.py    ``siamtrack camera --server URL``: the live loop of runtime.camera_cli with a TritonTracker
load.py      ``siamtrack triton-load``: N concurrent synthetic streams, frames/s and latency percentiles
"""
