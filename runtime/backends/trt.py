"""TensorRT backend: two engines (template, search), one stream, buffers allocated once.

A long-term export adds a third engine, ``search_lost`` (the 831 crop), run for crops of that size: it
reads the same device kernel buffers as the search engine and has its own search/cls/loc buffers and
its own CUDA graph (a "lane" per search engine, so switching between the lost and the normal state
replays two captured graphs instead of re-capturing). Without it the spec has no lost size and the base
class refuses the large crop with the export command. Unverified on a GPU (written against the
documented API the two-engine path uses; nothing new is called).

Reads top to bottom like NVIDIA's Python samples: check the sidecars, check the GPU, load the plugin
library, deserialize, bind every tensor to a buffer allocated once for the largest batch, then per
frame copy in, ``execute_async_v3``, copy out, synchronise. The template kernels are written by the
template engine straight into the search engine's input buffers and stay on the device between
frames. The search step (copy in, execute, copy out) is captured into a CUDA graph after one plain
run and replayed while the target count stays the same; where capture fails it runs plainly
(TensorRT-RTX instead replays its own built-in CUDA graphs).

Works with TensorRT 10.x, 11.x and TensorRT-RTX: everything used here (the name-based tensor API,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) is common to all of them; the
product module is the one named in the engine's sidecar. TensorRT is imported only after
``runtime.gpu.gpu_status()`` says a GPU is usable: TensorRT's Runtime without a GPU crashes the process.
"""
from __future__ import annotations

import ctypes
import importlib
import re
from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, Kernels
from runtime.contract import LOST_GRAPH, ModelSpec, TrackerConfig, artifact_name, sha256_file
from runtime.engine_meta import (PRODUCTS, CurrentEnv, EngineSidecar, check_fresh, plugin_library_for, read_sidecar,
                                 stale_message)
from runtime.errors import BackendUnavailable, ContractError, InputError

# TensorRT 10.3 is JetPack 6.1's; older ones (8.6 on JetPack 6.0) have no IPluginV3 in the ONNX parser and
# treat precision as a builder hint, so FP16/INT8 graphs would not build as exported. TensorRT-RTX is a
# separate product with its own 1.x versions.
MIN_VERSION = {"tensorrt": (10, 3), "tensorrt_rtx": (1, 0)}


def version_problem(product: str, version: str) -> str | None:
    """Why ``product`` ``version`` is not supported, or None. Pure."""
    parts = [int(p) for p in re.findall(r"\d+", str(version))[:2]]
    low = MIN_VERSION.get(product)
    if low is None or len(parts) < 2 or tuple(parts) >= low:
        return None
    if product == "tensorrt":
        return (f"TensorRT {version} is older than 10.3, the oldest this project supports (strongly typed "
                "networks and IPluginV3 plugins). On Jetson use JetPack 6.1 or newer (TensorRT 10.3); on a "
                "desktop install TensorRT >= 10.3")
    return f"{product} {version} is older than {'.'.join(map(str, low))}; install a newer release"


def import_product(product: str):
    """The TensorRT Python module for ``product`` ("tensorrt" or "tensorrt_rtx"); refuses unsupported versions."""
    if product not in PRODUCTS:
        raise ContractError(f"unknown TensorRT product {product!r}; expected one of {', '.join(PRODUCTS)}")
    try:
        module = importlib.import_module(product)
    except ImportError as exc:
        hint = ("install TensorRT (JetPack ships it; on a desktop `pip install tensorrt`)" if product == "tensorrt"
                else "pip install tensorrt-rtx-cu12")
        raise BackendUnavailable(f"Python module {product!r} cannot be imported ({exc}); {hint}") from None
    problem = version_problem(product, getattr(module, "__version__", ""))
    if problem:
        raise BackendUnavailable(problem)
    return module


_LOGGERS: dict[str, object] = {}


def product_logger(trt, verbose: bool = False):
    """THE logger of TensorRT product module ``trt``, one per process: TensorRT keeps the first logger's
    pointer for the whole process, so a second Logger that is later freed is a use-after-free. ``verbose``
    only changes its minimum severity."""
    logger = _LOGGERS.get(trt.__name__)
    if logger is None:
        logger = _LOGGERS[trt.__name__] = trt.Logger(trt.Logger.WARNING)
    logger.min_severity = trt.Logger.VERBOSE if verbose else trt.Logger.WARNING
    return logger


_LOADED_PLUGINS: dict[tuple[str, str], object] = {}


def load_plugin_library(trt, path: str | Path):
    """Register the creators of a plugin shared library with TensorRT's plugin registry, once per process
    (the registry refuses a second registration of the same creators).

    The path is made absolute first: a bare name such as ``libx.so`` would go to dlopen's library
    search (LD_LIBRARY_PATH, system folders), not to the file the caller meant."""
    path = Path(path).absolute()
    if not path.is_file():
        raise ContractError(f"plugin library {path} does not exist; build it (engines/plugin, see README) "
                            "or use the standard-op engines (--flavour standard)")
    key = (trt.__name__, str(path.resolve()))
    if key in _LOADED_PLUGINS:
        return _LOADED_PLUGINS[key]
    registry = trt.get_plugin_registry()
    if hasattr(registry, "load_library"):  # TensorRT >= 10.0 and TensorRT-RTX
        handle = registry.load_library(str(path))
        if handle is None:
            raise ContractError(f"TensorRT could not load plugin library {path}: it registers no plugin, or "
                                "its plugins are already registered from another file (see TensorRT's log above)")
    else:
        try:
            handle = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise ContractError(f"plugin library {path} cannot be loaded: {exc}") from None
    _LOADED_PLUGINS[key] = handle
    return handle


def require_gpu(what: str) -> None:
    """Raise BackendUnavailable unless a GPU is usable; constructs no TensorRT object."""
    from runtime.gpu import gpu_status

    available, reason = gpu_status()
    if not available:
        raise BackendUnavailable(f"{what} needs an NVIDIA GPU: {reason}. Use --backend onnxruntime here.")


class EngineSession:
    """One deserialized engine and its execution context, addressed by tensor name."""

    def __init__(self, trt, runtime, path: Path, builtin_cuda_graph: bool = False):
        self.path = path
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ContractError(f"{path}: TensorRT could not deserialize this engine (see its log above); "
                                "rebuild it on this machine with `python -m engines.build`")
        # TensorRT-RTX captures and replays CUDA graphs itself (IRuntimeConfig.cuda_graph_strategy); its
        # manual stream capture would need engines built with REQUIRE_USER_ALLOCATION.
        self.builtin_cuda_graph = (builtin_cuda_graph and hasattr(trt, "CudaGraphStrategy")
                                   and hasattr(self.engine, "create_runtime_config"))
        if self.builtin_cuda_graph:
            config = self.engine.create_runtime_config()
            config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
            self.context = self.engine.create_execution_context(config)
        else:
            self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendUnavailable(f"{path}: TensorRT could not create an execution context (GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.max_batch = min(int(self.engine.get_tensor_profile_shape(n, 0)[2][0]) for n in self.inputs)

    def set_input_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        for name, shape in shapes.items():
            if not self.context.set_input_shape(name, tuple(shape)):
                raise InputError(f"{self.path.name}: input {name} shape {tuple(shape)} is outside the "
                                 "engine's optimisation profile; rebuild with a larger --max-batch")

    def output_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.context.get_tensor_shape(name))

    def check_output_shapes(self, expected: dict[str, tuple[int, ...]]) -> None:
        """After set_input_shapes: every output's shape as TensorRT resolved it must be the one the host
        buffers were sized for, or the copy-out would read past them (ContractError otherwise)."""
        check_output_shapes(self.path.name, {n: self.output_shape(n) for n in expected}, expected)

    def bind(self, name: str, ptr: int) -> None:
        if not self.context.set_tensor_address(name, ptr):
            raise BackendUnavailable(f"{self.path.name}: set_tensor_address({name}) was refused")

    def enqueue(self, stream) -> None:
        if not self.context.execute_async_v3(stream.ptr):
            raise BackendUnavailable(f"{self.path.name}: execute_async_v3 failed (see TensorRT's log above)")

    def close(self) -> None:
        self.context = None
        self.engine = None


def check_output_shapes(engine: str, resolved: dict[str, tuple[int, ...]],
                        expected: dict[str, tuple[int, ...]]) -> None:
    """Raise ContractError naming each output whose resolved shape differs from the expected one."""
    bad = {n: (tuple(int(d) for d in resolved[n]), tuple(expected[n])) for n in expected
           if tuple(int(d) for d in resolved[n]) != tuple(expected[n])}
    if bad:
        detail = "; ".join(f"{n}: engine gives {got}, the model spec says {want}" for n, (got, want) in bad.items())
        raise ContractError(f"{engine}: output shapes do not match the model spec ({detail}). The engine was "
                            "not built from this export's graph; rebuild it with `python -m engines.build`.")


class _DeviceKernels:
    """Kernels.device of this backend: which template run filled the device buffers, and a host copy
    used to put them back if another template run has overwritten them since."""

    __slots__ = ("owner", "generation", "host")

    def __init__(self, owner, generation: int, host: tuple[np.ndarray, ...]):
        self.owner, self.generation, self.host = owner, generation, host


class _Lane:
    """One search engine with its own crop/cls/loc buffers, batch and CUDA graph (search, search_lost)."""

    def __init__(self, session: EngineSession, size: int, use_graph: bool):
        self.session, self.size = session, size
        self.dev: dict = {}
        self.host: dict = {}
        self.n = 0
        self.graph = None
        self.use_graph = use_graph and not session.builtin_cuda_graph


class TrtBackend(Backend):
    """TensorRT inference over ``template.<p>.<f>.engine`` and ``search.<p>.<f>.engine`` (and
    ``search_lost.<p>.<f>.engine`` for the long-term tracker's large crop, when given).

    BUFFERS ARE ALLOCATED ONCE for the engines' largest batch and REUSED every frame; ``run_search``
    returns copies, so callers own their arrays.
    """

    name = "tensorrt"

    def __init__(self, template_engine: str | Path, search_engine: str | Path, *, check_onnx: bool = True,
                 cuda_graph: bool = True, plugin_library: str | Path | None = None,
                 lost_engine: str | Path | None = None):
        """plugin_library: the DepthwiseXCorr library for plugin engines, when it is neither in the engines'
        folder nor in the project's plugin build output (the sidecar only names it; see
        ``runtime.engine_meta.plugin_library_for``). lost_engine: the export's search_lost engine."""
        import dataclasses

        self.template_path, self.search_path = Path(template_engine), Path(search_engine)
        self.lost_path = Path(lost_engine) if lost_engine else None
        self._explicit_plugin = plugin_library
        self._closed, self._buffers, self._lanes = False, [], []
        meta_t, meta_s, meta_l = self._read_checked_sidecars(check_onnx)
        self.spec = ModelSpec.from_json(meta_s.model_spec)
        if meta_l is None:  # no large engine: the lost crop gets base.py's re-export error
            self.spec = dataclasses.replace(self.spec, lost_instance_size=0, lost_score_size=0)
        self.tracker_config = TrackerConfig.from_json(meta_s.tracker_config)
        self.precision, self.flavour = meta_s.precision, meta_s.flavour
        require_gpu(f"TensorRT engine {self.search_path}")
        self._trt = import_product(meta_s.product)
        for meta in (meta_t, meta_s, meta_l):
            if meta is not None:
                self._check_machine(meta)
        if meta_s.plugin_library:
            self._plugin = load_plugin_library(self._trt, self._plugin_path(meta_s))
        self._runtime = self._trt.Runtime(product_logger(self._trt))
        self._template = EngineSession(self._trt, self._runtime, self.template_path)
        self._search = EngineSession(self._trt, self._runtime, self.search_path, builtin_cuda_graph=cuda_graph)
        self._lost = (EngineSession(self._trt, self._runtime, self.lost_path, builtin_cuda_graph=cuda_graph)
                      if meta_l is not None else None)
        self._check_io()
        self.max_batch = min(s.max_batch for s in (self._template, self._search, self._lost) if s is not None)
        self._lanes = [_Lane(self._search, self.spec.instance_size, cuda_graph)]
        if self._lost is not None:
            self._lanes.append(_Lane(self._lost, self.spec.lost_instance_size, cuda_graph))
        self._allocate_and_bind()
        # True while frames are replayed from a CUDA graph (ours, or TensorRT-RTX's built-in one)
        self.graph_active = self._search.builtin_cuda_graph
        self._generation = 0
        self._loaded_generation = 0

    @classmethod
    def from_dir(cls, folder: str | Path, *, precision: str = "fp32", flavour: str | None = None,
                 lost: bool = True, **kwargs) -> "TrtBackend":
        """Open ``template/search.<precision>.<flavour>.engine`` in ``folder`` (flavour None: plugin if
        both its engines exist, else standard), and its ``search_lost`` engine when present and ``lost``."""
        folder = Path(folder)
        flavours = [flavour] if flavour else ["plugin", "standard"]
        for flav in flavours:
            paths = [folder / artifact_name(g, precision, flav, "engine") for g in ("template", "search")]
            if all(p.is_file() for p in paths):
                from runtime.variants import lost_problem

                lost_path = folder / artifact_name(LOST_GRAPH, precision, flav, "engine")
                unusable = lost_problem(folder, precision, flav, "engine") if lost else None
                backend = cls(*paths, lost_engine=lost_path if lost and lost_path.is_file() and not unusable else None,
                              **kwargs)
                backend.lost_unavailable = (f"left unused: {unusable}; rebuild the engines from one export "
                                            f"with `python -m engines.build {folder}`") if unusable else ""
                return backend
        wanted = ", ".join(artifact_name("search", precision, f, "engine") for f in flavours)
        raise InputError(f"{folder}: no TensorRT engine pair for precision {precision} ({wanted} and its "
                         f"template); build them with `python -m engines.build {folder} --precision {precision}`")

    # --- loading -------------------------------------------------------------------------------
    def _read_checked_sidecars(self, check_onnx: bool) -> tuple[EngineSidecar, EngineSidecar, EngineSidecar | None]:
        """The pure checks: sidecars readable, a matching pair (and long-term engine), plugin library and
        ONNX unchanged. Returns the template, search and search_lost (or None) sidecars."""
        for path in (self.template_path, self.search_path) + ((self.lost_path,) if self.lost_path else ()):
            if not path.is_file():
                raise InputError(f"{path}: engine file not found; build it with `python -m engines.build "
                                 f"{path.parent}`")
        meta_t, meta_s = read_sidecar(self.template_path), read_sidecar(self.search_path)
        for path, meta in ((self.template_path, meta_t), (self.search_path, meta_s)):
            problem = version_problem(meta.product, meta.product_version)
            if problem:
                built = f"built with {meta.product} {meta.product_version}"
                raise ContractError(stale_message(path, [f"{built}: {problem}"]))
        if (meta_t.graph, meta_s.graph) != ("template", "search"):
            raise ContractError(f"{self.template_path.name} / {self.search_path.name}: the sidecars say graphs "
                                f"{meta_t.graph!r} / {meta_s.graph!r}; pass the template engine first, then the search one")
        if meta_t.export_id != meta_s.export_id:
            raise ContractError(f"{self.template_path.name} and {self.search_path.name} come from different "
                                f"exports ({meta_t.export_id} vs {meta_s.export_id}); their kernels do not fit. "
                                "Rebuild both from one export with `python -m engines.build`.")
        checked = [(self.template_path, meta_t), (self.search_path, meta_s)]
        meta_l = None
        if self.lost_path is not None:
            meta_l = read_sidecar(self.lost_path)
            problem = version_problem(meta_l.product, meta_l.product_version)
            if problem:
                raise ContractError(stale_message(self.lost_path, [f"built with {meta_l.product} "
                                                                   f"{meta_l.product_version}: {problem}"]))
            if meta_l.graph != LOST_GRAPH or meta_l.export_id != meta_s.export_id or (
                    meta_l.precision, meta_l.flavour, meta_l.product) != (meta_s.precision, meta_s.flavour, meta_s.product):
                raise ContractError(
                    f"{self.lost_path.name}: is a {meta_l.graph} engine ({meta_l.precision}/{meta_l.flavour}, export "
                    f"{meta_l.export_id}, {meta_l.product}) but must be the search_lost engine of "
                    f"{self.search_path.name} ({meta_s.precision}/{meta_s.flavour}, export {meta_s.export_id}, "
                    f"{meta_s.product}); rebuild the engines from one export with `python -m engines.build`")
            checked.append((self.lost_path, meta_l))
        for path, meta in checked:
            env = CurrentEnv(meta.product, meta.product_version,
                             onnx_sha256=self._onnx_sha(path, meta) if check_onnx else None,
                             plugin_sha256=self._plugin_sha(meta))
            reasons = check_fresh(meta, env)
            if reasons:
                raise ContractError(stale_message(path, reasons))
        return meta_t, meta_s, meta_l

    def _plugin_path(self, meta: EngineSidecar) -> Path:
        engine = self.template_path if meta.graph == "template" else self.search_path
        return plugin_library_for(engine, meta, self._explicit_plugin)

    def _plugin_sha(self, meta: EngineSidecar) -> str | None:
        if not meta.plugin_library:
            return None
        path = self._plugin_path(meta)
        if not path.is_file():
            raise ContractError(f"{self.search_path}: the engine needs plugin library {path}, which is missing. "
                                "Build the plugin (engines/plugin) or use the standard-op engines (--flavour standard).")
        return sha256_file(path)

    @staticmethod
    def _onnx_sha(engine: Path, meta: EngineSidecar) -> str | None:
        onnx = engine.parent / meta.onnx_file
        return sha256_file(onnx) if onnx.is_file() else None

    def _check_machine(self, meta: EngineSidecar) -> None:
        from runtime.backends.cuda_mem import device_identity

        gpu_name, cc = device_identity()
        env = CurrentEnv(product=self._trt.__name__.split(".")[0], product_version=self._trt.__version__, gpu_name=gpu_name,
                         compute_capability=cc)
        reasons = check_fresh(meta, env)
        if reasons:
            path = self.template_path if meta.graph == "template" else self.search_path
            raise ContractError(stale_message(path, reasons))

    def _check_io(self) -> None:
        spec, t, s = self.spec, self._template, self._search
        expect = {"template inputs": (t.inputs, ["template"]), "template outputs": (t.outputs, list(spec.kernel_names)),
                  "search inputs": (s.inputs, ["search", *spec.kernel_names]), "search outputs": (s.outputs, ["cls", "loc"])}
        if self._lost is not None:
            expect.update({"search_lost inputs": (self._lost.inputs, ["search", *spec.kernel_names]),
                           "search_lost outputs": (self._lost.outputs, ["cls", "loc"])})
        for what, (got, want) in expect.items():
            if sorted(got) != sorted(want):
                raise ContractError(f"engine {what} are {got}, the model expects {want}; rebuild from this export")
        for sess in (t, s) + ((self._lost,) if self._lost is not None else ()):
            bad = {n: str(d) for n, d in sess.dtypes.items() if d != np.float32}
            if bad:
                raise ContractError(f"{sess.path.name}: I/O tensors {bad} are not float32; the contract keeps "
                                    "graph inputs/outputs float32 (re-export the precision variant with float32 I/O)")

    def _allocate_and_bind(self) -> None:
        """Template and kernel buffers shared by every engine (the search engines read the kernels the
        template engine wrote); search, cls and loc buffers per lane, at that lane's crop size."""
        from runtime.backends import cuda_mem as cm

        spec, b = self.spec, self.max_batch
        self._stream = cm.Stream()
        shapes = {"template": spec.template_shape(b)}
        shapes.update({k: spec.kernel_shape(b, k) for k in spec.kernel_names})
        self._dev = {n: cm.DeviceBuffer(int(np.prod(s)) * 4) for n, s in shapes.items()}
        self._host = {n: cm.PinnedArray(s) for n, s in shapes.items()}
        self._buffers = [*self._dev.values(), *self._host.values()]
        for name in self._template.inputs + self._template.outputs:
            self._template.bind(name, self._dev[name].ptr)
        for lane in self._lanes:
            size = None if lane.size == spec.instance_size else lane.size
            own = {"search": spec.search_shape(b, size), "cls": spec.cls_shape(b, size), "loc": spec.loc_shape(b, size)}
            lane.dev = {n: cm.DeviceBuffer(int(np.prod(s)) * 4) for n, s in own.items()}
            lane.host = {n: cm.PinnedArray(s) for n, s in own.items()}
            self._buffers += [*lane.dev.values(), *lane.host.values()]
            for name in lane.session.inputs + lane.session.outputs:
                lane.session.bind(name, (lane.dev[name] if name in lane.dev else self._dev[name]).ptr)

    # --- inference -----------------------------------------------------------------------------
    def _rows(self, name: str, n: int, lane: _Lane | None = None) -> int:
        """Bytes of the first n rows of buffer ``name`` (a lane's own buffer when ``lane`` is given)."""
        host = lane.host[name] if lane is not None else self._host[name]
        return int(np.prod(host.array.shape[1:])) * 4 * n

    def _template_impl(self, crops: np.ndarray) -> Kernels:
        from runtime.backends import cuda_mem as cm

        n, names = crops.shape[0], self.spec.kernel_names
        self._host["template"].array[:n] = crops
        self._template.set_input_shapes({"template": crops.shape})
        self._template.check_output_shapes({k: self.spec.kernel_shape(n, k) for k in names})
        cm.copy_htod(self._dev["template"], self._host["template"], self._rows("template", n), self._stream)
        self._template.enqueue(self._stream)
        for k in names:  # a host copy, only to restore these kernels if another template run replaces them
            cm.copy_dtoh(self._host[k], self._dev[k], self._rows(k, n), self._stream)
        self._stream.synchronize()
        self._generation += 1
        self._loaded_generation = self._generation
        host = tuple(self._host[k].array[:n].copy() for k in names)
        return Kernels(n, arrays=None, device=_DeviceKernels(self, self._generation, host))

    def _search_impl(self, crops: np.ndarray, kernels: Kernels) -> tuple[np.ndarray, np.ndarray]:
        n = crops.shape[0]
        lane = next((ln for ln in self._lanes if ln.size == crops.shape[-1]), self._lanes[0])
        self._load_kernels(kernels)
        lane.host["search"].array[:n] = crops
        if n != lane.n:
            self._set_search_batch(lane, n)
            self._enqueue_search(lane, n)  # TensorRT wants one plain run after a shape change before capture
        elif lane.graph is not None:
            lane.graph.launch(self._stream)
        else:
            self._enqueue_search(lane, n)
            self._try_capture(lane, n)
        self.graph_active = lane.graph is not None or lane.session.builtin_cuda_graph
        self._stream.synchronize()
        return lane.host["cls"].array[:n].copy(), lane.host["loc"].array[:n].copy()

    def _load_kernels(self, kernels: Kernels) -> None:
        from runtime.backends import cuda_mem as cm

        dk = kernels.device
        if not isinstance(dk, _DeviceKernels) or dk.owner is not self:
            raise InputError("tensorrt: these kernels were not made by this backend's run_template")
        if dk.generation == self._loaded_generation:
            return
        for name, arr in zip(self.spec.kernel_names, dk.host):
            self._host[name].array[:kernels.n] = arr
            cm.copy_htod(self._dev[name], self._host[name], self._rows(name, kernels.n), self._stream)
        self._loaded_generation = dk.generation

    def _set_search_batch(self, lane: _Lane, n: int) -> None:
        self._drop_graph(lane)
        size = None if lane.size == self.spec.instance_size else lane.size
        shapes = {"search": self.spec.search_shape(n, size)}
        shapes.update({k: self.spec.kernel_shape(n, k) for k in self.spec.kernel_names})
        lane.session.set_input_shapes(shapes)
        lane.session.check_output_shapes({"cls": self.spec.cls_shape(n, size), "loc": self.spec.loc_shape(n, size)})
        lane.n = n

    def _enqueue_search(self, lane: _Lane, n: int) -> None:
        from runtime.backends import cuda_mem as cm

        cm.copy_htod(lane.dev["search"], lane.host["search"], self._rows("search", n, lane), self._stream)
        lane.session.enqueue(self._stream)
        for name in ("cls", "loc"):
            cm.copy_dtoh(lane.host[name], lane.dev[name], self._rows(name, n, lane), self._stream)

    def _try_capture(self, lane: _Lane, n: int) -> None:
        from runtime.backends import cuda_mem as cm

        ctx = lane.session.context
        if not lane.use_graph or (hasattr(ctx, "is_stream_capturable") and not ctx.is_stream_capturable(self._stream.ptr)):
            return
        self._stream.synchronize()
        try:
            lane.graph = cm.CudaGraph.capture(self._stream, lambda: self._enqueue_search(lane, n))
        except BackendUnavailable:
            lane.use_graph = False  # this engine cannot be captured; plain execution from now on

    def _drop_graph(self, lane: _Lane) -> None:
        if lane.graph is not None:
            lane.graph.close()
        lane.graph = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_stream", None) is not None:
            self._stream.synchronize()
        for lane in self._lanes:
            self._drop_graph(lane)
        for buf in self._buffers:
            buf.close()
        self._buffers = []
        for sess in (getattr(self, "_template", None), getattr(self, "_search", None), getattr(self, "_lost", None)):
            if sess is not None:
                sess.close()
        if getattr(self, "_stream", None) is not None:
            self._stream.close()
        self._runtime = None


def engine_plugin(engine_path: str | Path, meta: EngineSidecar, explicit: str | Path | None = None) -> Path | None:
    """The plugin library ``engine_path`` needs, checked against its sidecar's sha256 (None: none needed).
    Where it is loaded from never comes from the sidecar (``runtime.engine_meta.plugin_library_for``)."""
    path = plugin_library_for(engine_path, meta, explicit)
    if path is None:
        return None
    reasons = check_fresh(meta, CurrentEnv(meta.product, meta.product_version, plugin_sha256=sha256_file(path)))
    if reasons:
        raise ContractError(stale_message(engine_path, [f"{r} ({path})" for r in reasons]))
    return path


def run_engine(engine_path: str | Path, feeds: dict[str, np.ndarray],
               plugin_library: str | Path | None = None) -> dict[str, np.ndarray]:
    """Run one engine once on host arrays (self-check and tests; allocates per call).

    feeds: input name -> float32 array with the batch first. Returns output name -> float32 array.
    plugin_library: an explicit plugin path (else the engine's folder or the project's plugin build).
    """
    from runtime.backends import cuda_mem as cm

    engine_path = Path(engine_path)
    meta = read_sidecar(engine_path)
    problem = version_problem(meta.product, meta.product_version)
    if problem:
        built = f"built with {meta.product} {meta.product_version}"
        raise ContractError(stale_message(engine_path, [f"{built}: {problem}"]))
    plugin = engine_plugin(engine_path, meta, plugin_library)
    require_gpu(f"running {engine_path.name}")
    trt = import_product(meta.product)
    if plugin is not None:
        load_plugin_library(trt, plugin)
    runtime = trt.Runtime(product_logger(trt))
    sess = EngineSession(trt, runtime, engine_path)
    stream, bufs = cm.Stream(), []
    try:
        sess.set_input_shapes({n: feeds[n].shape for n in sess.inputs})
        host = {n: cm.PinnedArray(feeds[n].shape, sess.dtypes[n]) for n in sess.inputs}
        host.update({n: cm.PinnedArray(sess.output_shape(n), sess.dtypes[n]) for n in sess.outputs})
        dev = {n: cm.DeviceBuffer(h.nbytes) for n, h in host.items()}
        bufs = [*host.values(), *dev.values()]
        for n in sess.inputs:
            host[n].array[...] = feeds[n]
            cm.copy_htod(dev[n], host[n], host[n].nbytes, stream)
        for n, d in dev.items():
            sess.bind(n, d.ptr)
        sess.enqueue(stream)
        for n in sess.outputs:
            cm.copy_dtoh(host[n], dev[n], host[n].nbytes, stream)
        stream.synchronize()
        return {n: host[n].array.astype(np.float32) for n in sess.outputs}
    finally:
        for b in bufs:
            b.close()
        stream.close()
        sess.close()
