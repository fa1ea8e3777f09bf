"""ONNX Runtime backend: runs an exported template/search pair of either xcorr flavour, without torch.

Everything the backend needs comes from the two files: the ``siamrpn.*`` metadata (ModelSpec,
TrackerConfig, provenance) is read with ``runtime.onnx_meta`` before any session exists; the pair must
come from one export (same export id and source checkpoint sha256); the graphs' inputs and outputs
must match the ModelSpec. A long-term export's third graph (``search_lost.*.onnx``, the 831 crop) opens
as a third session when given; without it the backend's spec has no lost size, so asking for the large
crop is the base class's ContractError naming the export command. The ``siamrpn::DepthwiseXCorr`` op
(``*.plugin.onnx``) runs as an onnxruntime-extensions Python op (``runtime.backends.onnxrt_ops``),
registered only for graphs that hold it; the standard-op twin needs nothing extra.

Execution providers: CPU by default; CUDA first when the installed onnxruntime has it. TensorRT's EP
builds engines when a session opens (minutes on a Jetson), so it is used only when asked for
(``providers=["TensorrtExecutionProvider", ...]``); the TensorRT backend is the intended route there.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, Kernels
from runtime.contract import (CLS_OUTPUT, LOC_OUTPUT, LOST_GRAPH, META_RANDOM, SEARCH_INPUT, TEMPLATE_INPUT, XCORR_DOMAIN,
                              ARTIFACT_FLAVOURS, CPU_INT8_FLAVOUR, XCORR_OP, GraphMeta, artifact_name)
from runtime.errors import BackendUnavailable, ContractError, InputError
from runtime.onnx_meta import OnnxSummary, read_onnx_summary

_AUTO_PROVIDERS = ("CUDAExecutionProvider",)


class OrtBackend(Backend):
    """Inference with onnxruntime. providers: list of EP names (default: CUDA if available, then CPU);
    threads: intra-op threads (default: the CPUs this process may use); lost_path: the export's
    search_lost graph (long-term tracker), or None. share_weights: on the CPU provider, open graphs
    optimised once per machine with the weights they share mapped once (``runtime.backends.onnxrt_shared``;
    r50: 883 -> ~340 MiB peak); None reads ``SIAMTRACK_SHARE_WEIGHTS`` ("0" turns it off), default on.
    ``weights_sharing`` says what happened ("shared ..." or "off: <reason>")."""

    name = "onnxruntime"

    def __init__(self, template_path: str | Path, search_path: str | Path, providers=None,
                 threads: int | None = None, lost_path: str | Path | None = None,
                 share_weights: bool | None = None):
        import dataclasses

        self.template_path, self.search_path = Path(template_path), Path(search_path)
        self.lost_path = Path(lost_path) if lost_path else None
        t_sum, t_meta = _read_graph(self.template_path, "template")
        s_sum, s_meta = _read_graph(self.search_path, "search")
        _check_pair(t_meta, s_meta, self.template_path, self.search_path)
        self.meta = s_meta
        self.template_meta = t_meta
        self.spec = s_meta.spec
        if self.lost_path is None:  # no large graph here: the lost crop gets base.py's re-export error
            self.spec = dataclasses.replace(self.spec, lost_instance_size=0, lost_score_size=0)
        elif not self.spec.lost_instance_size:
            raise ContractError(f"{self.lost_path}: given as the long-term search graph, but {self.search_path} "
                                "comes from an export without a lost search size; use the files of one export")
        self.tracker_config = s_meta.tracker
        self.flavour = s_meta.xcorr
        self.random_weights = s_meta.extra.get(META_RANDOM) == "true"
        ort = _import_ort()
        self.providers = _choose_providers(ort, providers)
        # Which INT8 kernels ORT runs on this CPU (runtime.cpu_features); None for FP32/FP16 graphs and
        # when another execution provider (CUDA) comes first.
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        self.int8_kernels = int8_kernel_description() if s_meta.precision == "int8" and on_cpu else None
        self.threads = threads or _usable_cpus()
        summaries = {"template": t_sum, "search": s_sum}
        if self.lost_path is not None:
            # checked before any graph is prepared or opened (a mismatched file costs nothing then)
            l_sum, l_meta = _read_graph(self.lost_path, LOST_GRAPH)
            _check_pair(t_meta, l_meta, self.template_path, self.lost_path)
            if (l_meta.xcorr, l_meta.precision) != (s_meta.xcorr, s_meta.precision):
                raise ContractError(f"{self.lost_path} is {l_meta.precision}/{l_meta.xcorr} but {self.search_path} "
                                    f"is {s_meta.precision}/{s_meta.xcorr}; pass the same variant of both")
            summaries[LOST_GRAPH] = l_sum
        self._shared = _prepare_shared(self, share_weights, summaries)
        self._template = _open_session(ort, self.template_path, t_sum, self.providers, self.threads,
                                       self._shared, "template")
        self._search = _open_session(ort, self.search_path, s_sum, self.providers, self.threads,
                                     self._shared, "search")
        self.max_batch = _check_io(self._template, self._search, self.spec, self.template_path,
                                   self.search_path)
        self._lost = None
        if self.lost_path is not None:
            # eager, not on the first lost frame: opening an r50 session takes ~1 s, a live loop's stall
            self._lost = _open_session(ort, self.lost_path, l_sum, self.providers, self.threads,
                                       self._shared, LOST_GRAPH)
            lost_batch = _check_io(self._template, self._lost, self.spec, self.template_path, self.lost_path,
                                   size=self.spec.lost_instance_size)
            limits = [b for b in (self.max_batch, lost_batch) if b]
            self.max_batch = min(limits) if limits else None
        self._kernel_names = list(self.spec.kernel_names)
        self._head_names = [CLS_OUTPUT, LOC_OUTPUT]
        self._uses_custom_op = (XCORR_DOMAIN, XCORR_OP) in s_sum.custom_ops

    @classmethod
    def from_dir(cls, folder: str | Path, precision: str = "fp32", flavour: str | None = "standard",
                 providers=None, threads: int | None = None, lost: bool = True,
                 share_weights: bool | None = None) -> "OrtBackend":
        """Open ``folder/template.<precision>.<flavour>.onnx`` and its search twin, and the
        ``search_lost`` twin when present and ``lost``. flavour None picks "standard" when present,
        else "plugin"."""
        folder = Path(folder)
        flavours = (flavour,) if flavour else ("standard", "plugin")
        for fl in flavours:
            if fl not in ARTIFACT_FLAVOURS:
                raise InputError(f"flavour {fl!r}: expected one of {', '.join(ARTIFACT_FLAVOURS)}")
            t = folder / artifact_name("template", precision, fl, "onnx")
            s = folder / artifact_name("search", precision, fl, "onnx")
            if t.is_file() and s.is_file():
                from runtime.variants import lost_problem

                lost_path = folder / artifact_name(LOST_GRAPH, precision, fl, "onnx")
                unusable = lost_problem(folder, precision, fl, "onnx") if lost else None
                backend = cls(t, s, providers=providers, threads=threads,
                              lost_path=lost_path if lost and lost_path.is_file() and not unusable else None,
                              share_weights=share_weights)
                backend.lost_unavailable = (f"left unused: {unusable}; re-export with `siamtrack export ... "
                                            "--lost-search` (or rerun build.sh)") if unusable else ""
                if lost and not lost_path.is_file() and backend.meta.spec.lost_instance_size:
                    # the export has a lost size but this variant's large graph was never made
                    how = ("export again into this folder (`siamtrack export ... --lost-search`, or rerun build.sh)"
                           if precision == "fp32" else
                           f"make the CPU INT8 graphs again (`siamtrack quantize-cpu {folder} --calib ...`, or "
                           "rerun build.sh; older versions made no long-term graph for them)"
                           if fl == CPU_INT8_FLAVOUR else
                           f"make the {precision} variants again (build.sh, or siamtrack fp16/quantize)")
                    backend.lost_unavailable = f"{lost_path.name} is missing beside {s.name}; {how}"
                return backend
        present = sorted(p.name for p in folder.glob("*.onnx")) if folder.is_dir() else []
        wanted = " or ".join(f"template/search.{precision}.{fl}.onnx" for fl in flavours)
        raise ContractError(f"{folder}: no {wanted} pair (found: {', '.join(present) or 'no .onnx files'}); "
                            "export the model into this folder (siamtrack export --out ...) or pick another "
                            "--precision/--flavour")

    def _template_impl(self, crops: np.ndarray) -> Kernels:
        arrays = self._run(self._template, self._kernel_names, {TEMPLATE_INPUT: crops}, "template")
        return Kernels(crops.shape[0], tuple(arrays))

    def _search_impl(self, crops: np.ndarray, kernels: Kernels) -> tuple[np.ndarray, np.ndarray]:
        if kernels.arrays is None:
            raise InputError(f"{self.name}: these kernels live on another backend's device; run the "
                             "template with this backend")
        self.check_kernels(kernels.arrays)
        feed = {SEARCH_INPUT: crops}
        feed.update(zip(self._kernel_names, kernels.arrays))
        lost = self._lost is not None and crops.shape[-1] == self.spec.lost_instance_size
        cls, loc = self._run(self._lost if lost else self._search, self._head_names, feed, "search")
        return cls, loc

    def _run(self, session, names, feed, what) -> list[np.ndarray]:
        if self._uses_custom_op:
            from runtime.backends.onnxrt_ops import OP_ERRORS

            OP_ERRORS.clear()
        feed = {k: np.ascontiguousarray(v) for k, v in feed.items()}  # no copy when already contiguous
        outputs = session.run(names, feed)
        if self._uses_custom_op and OP_ERRORS:
            raise ContractError(f"{self.search_path}: the {XCORR_OP} op rejected its inputs "
                                f"({OP_ERRORS[0]}); the graph does not match its metadata; re-export it")
        return outputs

    def close(self) -> None:
        self._template = self._search = self._lost = None
        self._shared = None    # after the sessions: they read the mapped weights


# ------------------------------------------------------------------------------------------------
# opening and validating


def _read_graph(path: Path, role: str) -> tuple[OnnxSummary, GraphMeta]:
    summary = read_onnx_summary(path)
    meta = GraphMeta.from_props(summary.metadata, where=str(path))
    if meta.graph != role:
        raise ContractError(f"{path}: this is a {meta.graph} graph but was given as the {role} graph; "
                            f"pass template.*.onnx and search.*.onnx in that order")
    unknown = [f"{d}::{op}" for d, op in summary.custom_ops if (d, op) != (XCORR_DOMAIN, XCORR_OP)]
    if unknown:
        raise ContractError(f"{path}: holds custom ops this runtime does not implement ({', '.join(unknown)}); "
                            f"only {XCORR_DOMAIN}::{XCORR_OP} is supported")
    return summary, meta


def _check_pair(t: GraphMeta, s: GraphMeta, t_path: Path, s_path: Path) -> None:
    if t.source_sha256 != s.source_sha256 or t.export_id != s.export_id:
        raise ContractError(
            f"{t_path} and {s_path} come from different exports (checkpoint sha256 {t.source_sha256[:12]} vs "
            f"{s.source_sha256[:12]}, export id {t.export_id} vs {s.export_id}); the template kernels would "
            "not fit the search graph. Use the two files written by one `siamtrack export` run")
    if t.spec != s.spec:
        raise ContractError(f"{t_path} and {s_path} describe different models ({t.spec} vs {s.spec}); "
                            "use the pair written by one export")


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise BackendUnavailable(f"onnxruntime is not installed ({err}); pip install onnxruntime "
                                 "(onnxruntime-gpu on a CUDA machine)") from None
    return ort


def _choose_providers(ort, requested) -> list[str]:
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in _AUTO_PROVIDERS if p in available] + ["CPUExecutionProvider"]
    requested = [requested] if isinstance(requested, str) else list(requested)
    missing = [p for p in requested if p not in available]
    if missing:
        raise BackendUnavailable(f"onnxruntime here has no {', '.join(missing)} (available: "
                                 f"{', '.join(available)}); install the matching onnxruntime build or pick "
                                 "another provider")
    return requested


def _usable_cpus() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


# ONNX Runtime's kOrtSessionOptionsConfigAllowIntraOpSpinning (onnxruntime_session_options_config_keys.h).
# ALLOW_SPINNING exists to measure what turning it off saves (siamtrack precision-latency --allow-spinning).
_SPINNING_KEY = "session.intra_op.allow_spinning"
ALLOW_SPINNING = False


def _prepare_shared(backend: "OrtBackend", share_weights: bool | None, summaries: dict[str, OnnxSummary]):
    """Prepared graphs with shared weights (``runtime.backends.onnxrt_shared``), or None; sets
    ``backend.weights_sharing`` to what happened. summaries: role -> the graph's OnnxSummary, already read."""
    if share_weights is None:
        share_weights = os.environ.get("SIAMTRACK_SHARE_WEIGHTS", "1") != "0"
    if not share_weights:
        backend.weights_sharing = "off: not asked for"
        return None
    if backend.providers != ["CPUExecutionProvider"]:
        backend.weights_sharing = "off: the prepared graphs are CPU layouts; providers are " + ", ".join(backend.providers)
        return None
    from runtime.backends import onnxrt_shared

    paths = {"template": backend.template_path, "search": backend.search_path}
    if backend.lost_path is not None:
        paths[LOST_GRAPH] = backend.lost_path
    custom = {role: (XCORR_DOMAIN, XCORR_OP) in summaries[role].custom_ops for role in paths}
    try:
        folder = onnxrt_shared.prepare(paths, custom, signature="exact-int8" if _exact_int8_needed() else "")
        shared = onnxrt_shared.open_shared(folder)
    except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as err:
        # never fatal: the source graphs open as before, at their memory cost
        backend.weights_sharing = f"off: {err}"
        return None
    backend.weights_sharing = (f"shared: {shared.shared_bytes / 2**20:.1f} MiB of weights held once "
                               f"(graphs prepared in {folder})")
    return shared


# ONNX Runtime's key kOrtSessionOptionsAvx2PrecisionMode (onnxruntime_session_options_config_keys.h).
# On x86-64 CPUs without VNNI (SSE4.1, AVX2, AVX-512 before VNNI) ORT's fused INT8 Conv multiplies
# u8 x s8 with VPMADDUBSW, whose 16-bit intermediate saturates: our INT8 graphs then come out wrong,
# not just less precise (lite0 search cls: 27 % relative error instead of the 5 % that Q/DQ rounding
# costs; on 8 sequences the same INT8 graphs lost 11.3 AUC points, 4.2 with exact kernels). "1"
# switches those kernels to exact u8 x u8; it touches nothing else (FP32/FP16 graphs run the same
# kernels). On VNNI CPUs it is not a no-op: the results are bit-identical (VNNI sums u8 x s8 in int32),
# but the u8 x u8 kernels are 2x slower (lite0 search.int8.cpu, 1 thread: 10.6 vs 21.5 ms, same
# outputs to the last bit), so it is set only where ORT's default would saturate
# (runtime.cpu_features.needs_exact_int8: x86 without VNNI, or flags unknown). ARM ignores it.
# TensorRT accumulates INT8 products in int32, so only the exact kernels predict its accuracy.
_EXACT_INT8 = ("session.x64quantprecision", "1")


def _exact_int8_needed() -> bool:
    from runtime.cpu_features import detect, needs_exact_int8

    return needs_exact_int8(detect())


def int8_kernel_description() -> str:
    """Which INT8 kernel path this project's ORT sessions run here, as one line (``runtime.cpu_features``)."""
    from runtime.cpu_features import detect, needs_exact_int8

    features = detect()
    return features.describe_int8(needs_exact_int8(features))


def session_options(ort, threads: int | None = None, custom_xcorr: bool = False):
    """The SessionOptions every ONNX Runtime session of this project uses (backend, calibration,
    engine self-check), so an INT8 graph gives the same numbers wherever it is run: full graph
    optimisation, sequential execution, ``threads`` intra-op threads (None: ORT's default), errors-only
    logging, exact INT8 kernels (the x64quantprecision key where the CPU needs it), intra-op threads
    that do not spin after a run (``ALLOW_SPINNING``), and the ``siamrpn::DepthwiseXCorr`` op when
    ``custom_xcorr``."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    if _exact_int8_needed():
        opts.add_session_config_entry(*_EXACT_INT8)
    # Sessions take turns (the backend's template at init, search and lost search per frame; a
    # calibration pass next to the tracker): a pool that spins after its run steals the next session's
    # cores (precision-latency --threads 2 on two cores: 22 ms alternating with spinning, 9.2 ms
    # without, 8.1 ms for one session alone).
    opts.add_session_config_entry(_SPINNING_KEY, "1" if ALLOW_SPINNING else "0")
    if custom_xcorr:
        from runtime.backends.onnxrt_ops import register_xcorr_op

        opts.register_custom_ops_library(register_xcorr_op())
    return opts


def _open_session(ort, path: Path, summary: OnnxSummary, providers: list[str], threads: int,
                  shared=None, role: str = ""):
    opts = session_options(ort, threads, custom_xcorr=(XCORR_DOMAIN, XCORR_OP) in summary.custom_ops)
    if shared is not None and role in shared.graphs:
        path = shared.graphs[role]      # already optimised: a second pass would find nothing to do
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        for name, value in shared.initializers[role].items():
            opts.add_initializer(name, value)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # ORT raises its own exception types for unreadable or invalid graphs
        raise ContractError(f"{path}: ONNX Runtime cannot load this graph ({type(err).__name__}: "
                            f"{str(err).strip()[:300]}); re-export it (siamtrack export)") from None


def _check_io(template, search, spec, t_path: Path, s_path: Path, size: int | None = None) -> int | None:
    """Compare the sessions' inputs/outputs with the ModelSpec (``size``: the search crop side, default
    the instance size); returns the largest batch accepted (None when the batch axis is dynamic)."""
    n_dims = []
    expected = [
        (template.get_inputs(), t_path, "input", [(TEMPLATE_INPUT, spec.template_shape())]),
        (template.get_outputs(), t_path, "output", [(k, spec.kernel_shape(1, k)) for k in spec.kernel_names]),
        (search.get_inputs(), s_path, "input", [(SEARCH_INPUT, spec.search_shape(1, size))]
         + [(k, spec.kernel_shape(1, k)) for k in spec.kernel_names]),
        (search.get_outputs(), s_path, "output", [(CLS_OUTPUT, spec.cls_shape(1, size)),
                                                  (LOC_OUTPUT, spec.loc_shape(1, size))]),
    ]
    for args, path, kind, wanted in expected:
        got = {a.name: a for a in args}
        if sorted(got) != sorted(name for name, _ in wanted):
            raise ContractError(f"{path}: graph {kind}s are {sorted(got)}, expected {sorted(n for n, _ in wanted)} "
                                "(runtime/contract.py); re-export with this version of the project")
        for name, shape in wanted:
            arg = got[name]
            dims = list(arg.shape)
            if arg.type != "tensor(float)" or len(dims) != 4 or any(
                    isinstance(d, int) and d != want for d, want in zip(dims[1:], shape[1:])):
                raise ContractError(f"{path}: {kind} {name} is {arg.type} {dims}, expected tensor(float) "
                                    f"[N, {', '.join(map(str, shape[1:]))}]; the graph does not match its metadata")
            n_dims.append(dims[0])
    fixed = [d for d in n_dims if isinstance(d, int) and d > 0]
    return min(fixed) if fixed else None
