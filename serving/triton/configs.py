"""config.pbtxt texts of the three models, for a CPU server and a GPU server.

Tensor names are the export contract's (``runtime.contract``): ``template`` -> ``kernel_*`` and
``search`` + ``kernel_*`` -> ``cls``, ``loc``. Dims leave out the batch axis (``max_batch_size > 0``).

CPU (``config.pbtxt``): every model runs in Triton's python backend; the nets run the exported ONNX
with the project's ONNX Runtime backend. GPU (``configs/gpu.pbtxt``, chosen with tritonserver's
``--model-config-name=gpu``): the nets are ``tensorrt_plan`` engines, the tracker stays a python model
on the CPU and calls them the same way. The GPU variant is written and documented but has not run here
(no GPU): see the README's "Serving with Triton" section.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.contract import CLS_OUTPUT, LOC_OUTPUT, SEARCH_INPUT, TEMPLATE_INPUT, ModelSpec, TrackerConfig

TEMPLATE_MODEL = "template_net"
SEARCH_MODEL = "search_net"
TRACKER_MODEL = "tracker"
MODELS = (TEMPLATE_MODEL, SEARCH_MODEL, TRACKER_MODEL)

# tracker model tensors (upper case: they are the serving protocol, not the graph contract)
FRAME = "FRAME"          # UINT8 [H, W, 3] raw BGR frame
IMAGE = "IMAGE"          # BYTES [1] JPEG/PNG-encoded frame (decoded to BGR on the server)
INIT_BOX = "INIT_BOX"    # FP64 [4] x, y, w, h (0-based pixels), with START only
BOX = "BOX"              # FP64 [4] x, y, w, h, pysot's output convention (as runtime.tracker)
SCORE = "SCORE"          # FP32 [1]
STATE = "STATE"          # FP64 [7] centre x, y, width, height, channel average B, G, R
STREAMS = "STREAMS"      # INT32 [1] streams the tracker model holds after this batch
START, END, CORRID = "START", "END", "CORRID"


@dataclass(frozen=True)
class ServingOptions:
    """What a repository is generated with.

    max_batch: largest batch of each model (streams served in one tracker step). idle_timeout_s: a
    stream that sends nothing for this long is forgotten (Triton's sequence slot and the tracker's
    kernels). max_frame_pixels: larger frames are refused. max_streams: STARTs beyond it are refused.
    threads: ONNX Runtime intra-op threads per net (0: ONNX Runtime's default).
    """

    max_batch: int = 32
    idle_timeout_s: float = 30.0
    max_frame_pixels: int = 4096 * 4096
    max_streams: int = 1024
    threads: int = 0
    queue_delay_us: int = 500


def _params(values: dict[str, str]) -> str:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    return "\n".join(f'parameters {{ key: "{k}" value: {{ string_value: "{esc(v)}" }} }}'
                     for k, v in sorted(values.items()))


def _tensor(name: str, dtype: str, dims, extra: str = "") -> str:
    dims_text = ", ".join(str(d) for d in dims)
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {dims_text} ]{extra} }}'


def _io(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]"


def template_io(spec: ModelSpec) -> str:
    e = spec.exemplar_size
    return "\n".join([
        _io("input", [_tensor(TEMPLATE_INPUT, "TYPE_FP32", (3, e, e))]),
        _io("output", [_tensor(name, "TYPE_FP32", spec.kernel_shape(1, name)[1:]) for name in spec.kernel_names]),
    ])


def search_io(spec: ModelSpec) -> str:
    x, a, s = spec.instance_size, spec.anchor_num, spec.score_size
    return "\n".join([
        _io("input", [_tensor(SEARCH_INPUT, "TYPE_FP32", (3, x, x))]
            + [_tensor(name, "TYPE_FP32", spec.kernel_shape(1, name)[1:]) for name in spec.kernel_names]),
        _io("output", [_tensor(CLS_OUTPUT, "TYPE_FP32", (2 * a, s, s)),
                       _tensor(LOC_OUTPUT, "TYPE_FP32", (4 * a, s, s))]),
    ])


def net_cpu_config(name: str, spec: ModelSpec, opts: ServingOptions, params: dict[str, str]) -> str:
    io = template_io(spec) if name == TEMPLATE_MODEL else search_io(spec)
    return f"""# {name}: the exported {'template' if name == TEMPLATE_MODEL else 'search'} graph, stateless; CPU
# variant: Triton's python backend running the ONNX with the project's ONNX Runtime backend.
name: "{name}"
backend: "python"
max_batch_size: {opts.max_batch}
{io}
dynamic_batching {{ max_queue_delay_microseconds: {opts.queue_delay_us} }}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
{_params(params)}
"""


def net_gpu_config(name: str, spec: ModelSpec, opts: ServingOptions, engine_file: str,
                   params: dict[str, str]) -> str:
    io = template_io(spec) if name == TEMPLATE_MODEL else search_io(spec)
    return f"""# {name}, GPU variant (tritonserver --model-config-name=gpu): a TensorRT engine built ON THE SERVER
# with the server's TensorRT version (engines are tied to the TensorRT version and the GPU). A plugin
# flavour engine needs the DepthwiseXCorr plugin library built with that same TensorRT, loaded with
# --backend-config=tensorrt,plugins=/path/libsiamrpn_xcorr_plugin.so (or LD_PRELOAD).
# NOT VERIFIED on a GPU by this project yet.
name: "{name}"
platform: "tensorrt_plan"
default_model_filename: "{engine_file}"
max_batch_size: {opts.max_batch}
{io}
dynamic_batching {{ max_queue_delay_microseconds: {opts.queue_delay_us} }}
instance_group [ {{ kind: KIND_GPU count: 1 }} ]
{_params(params)}
"""


def tracker_config_text(spec: ModelSpec, opts: ServingOptions, params: dict[str, str], gpu: bool = False) -> str:
    idle_us = int(round(opts.idle_timeout_s * 1e6))
    return f"""# tracker: one SiamRPN++ stream per correlation id. START (with INIT_BOX and a frame) makes the
# stream's template kernels and keeps them here; each later request (FRAME raw BGR, or IMAGE JPEG/PNG)
# crops on the server, sends every stream of the batch to {SEARCH_MODEL} in one call, and answers BOX,
# SCORE, STATE. END drops the stream; so does {opts.idle_timeout_s:g} s without a request (Triton frees
# the sequence slot without telling the model, so the model keeps its own clock).{' GPU variant: the nets are TensorRT engines; this model still runs on the CPU.' if gpu else ''}
name: "{TRACKER_MODEL}"
backend: "python"
max_batch_size: {opts.max_batch}
{_io("input", [
        _tensor(FRAME, "TYPE_UINT8", (-1, -1, 3), " optional: true allow_ragged_batch: true"),
        _tensor(IMAGE, "TYPE_STRING", (1,), " optional: true"),
        _tensor(INIT_BOX, "TYPE_FP64", (4,), " optional: true"),
    ])}
{_io("output", [
        _tensor(BOX, "TYPE_FP64", (4,)),
        _tensor(SCORE, "TYPE_FP32", (1,)),
        _tensor(STATE, "TYPE_FP64", (7,)),
        _tensor(STREAMS, "TYPE_INT32", (1,)),
    ])}
sequence_batching {{
  max_sequence_idle_microseconds: {idle_us}
  control_input [
    {{ name: "{START}" control [ {{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "{END}" control [ {{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "{CORRID}" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 }} ] }}
  ]
  direct {{ }}
}}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
{_params(params)}
"""


def tracker_params(spec: ModelSpec, tracker: TrackerConfig, opts: ServingOptions) -> dict[str, str]:
    return {
        "model_spec": spec.to_json(),
        "tracker_config": tracker.to_json(),
        "idle_timeout_s": repr(float(opts.idle_timeout_s)),
        "max_frame_pixels": str(int(opts.max_frame_pixels)),
        "max_streams": str(int(opts.max_streams)),
        "max_batch": str(int(opts.max_batch)),
        "template_model": TEMPLATE_MODEL,
        "search_model": SEARCH_MODEL,
    }
