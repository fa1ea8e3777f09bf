"""ONNX Runtime graphs optimised once per machine, with the weights they share held once in memory.

Why: the template and search graphs of one export both carry the backbone (r50: 177 of their 190 MB of
weights). Opened as they are, every ONNX Runtime session parses its file, copies the weights, then
rewrites every convolution for the CPU's blocked NCHWc layout (a second, reordered copy); measured on
r50 (fp32, CPU, 1 thread): 640 MiB resident after opening the pair and an 880 MiB peak while opening
the second graph. Sharing the *source* initializers (``SessionOptions.add_initializer``) does not help:
the layout pass replaces them with per-session reordered copies.

What this module does instead (CPU execution provider only):

1. **Prepare, once per (graphs, ONNX Runtime version, CPU)**, in a child process for graphs over
   64 MB so the tracking process never sees the load peak: open each graph with the project's SessionOptions and full optimisation, and
   let ONNX Runtime save the optimised graph (``optimized_model_filepath``) with its weights in an
   external file (``session.optimized_model_external_initializers_file_name``). Then hash every
   external weight blob and write ``share.json``: per graph, per initializer, file, offset, dtype,
   shape, sha256; per file, its size (and for the graph files, small once their weights are external,
   a sha256). Written into a temporary folder and published by one rename, which fails if the
   folder exists: a published folder is never replaced while it is valid, so a process that opened
   it keeps working. Processes preparing the same folder take turns on a lock file (``<key>.lock``,
   released by the OS when its holder dies): the second one waits and uses the first one's result.
   A folder that fails its check (missing or truncated file, changed graph file) is moved aside and
   rebuilt, never opened; weight bytes are not re-hashed on open (that would read every weight),
   only their file sizes are compared.
2. **Open**: every blob that appears in more than one graph is memory-mapped once (read-only, from the
   first graph's weights file) and handed to each session that uses it with ``add_initializer``; each
   session opens its optimised graph with graph optimisation off (it is already optimised), so ONNX
   Runtime maps the rest of its external weights instead of copying them. Same kernels, same numbers
   (tests/test_shared_weights.py compares outputs bit for bit).

The optimised graphs hold CPU-specific layouts (NCHWc block size of AVX2 vs AVX-512), so the cache key
covers the ONNX Runtime version, the CPU's model name and flags, and each source graph's path, size and
modification time; a changed graph, library or CPU gets a new folder. A failed preparation is not
fatal: the caller opens the source graphs as before and ``reason`` says why.

Cache folder: ``$SIAMTRACK_CACHE_DIR/ort`` if set, else ``$XDG_CACHE_HOME/siamtrack/ort`` (default
``~/.cache/siamtrack/ort``). The folders hold data only (ONNX graphs and weights), never code.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = 2                      # share.json layout version (2: per-file sizes and graph hashes)
MIN_EXTERNAL_BYTES = 1024       # smaller initializers stay inside the graph file
BUILD_TIMEOUT_S = 900.0         # r50 on a Jetson-class CPU: minutes, not hours
IN_PROCESS_BYTES = 64 << 20     # sources up to this size are prepared in the calling process
_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 10: np.float16}


def cache_root() -> Path:
    """Where prepared graphs live (see the module docstring)."""
    if os.environ.get("SIAMTRACK_CACHE_DIR"):
        return Path(os.environ["SIAMTRACK_CACHE_DIR"]) / "ort"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "siamtrack" / "ort"


@dataclass
class SharedGraphs:
    """Prepared graphs ready to open. ``graphs``: role -> optimised graph path. ``initializers``: role ->
    {initializer name: OrtValue} to pass to ``SessionOptions.add_initializer`` (the same OrtValue, one
    memory map, for every role that uses the blob). ``shared_bytes``: bytes of weights held once instead
    of once per graph. The arrays behind the OrtValues must outlive the sessions: keep this object."""

    folder: Path
    graphs: dict[str, Path]
    initializers: dict[str, dict] = field(default_factory=dict)
    shared_bytes: int = 0
    _arrays: list = field(default_factory=list, repr=False)


def cache_key(sources: dict[str, Path], signature: str) -> str:
    """Hex key of one set of source graphs on this machine and library (see the module docstring)."""
    import onnxruntime as ort

    from runtime.cpu_features import detect

    cpu = detect()
    h = hashlib.sha256(json.dumps({"format": FORMAT, "ort": ort.__version__, "cpu": cpu.model,
                                   "flags": sorted(cpu.flags), "signature": signature}, sort_keys=True).encode())
    for role in sorted(sources):
        st = Path(sources[role]).stat()
        h.update(f"{role}\0{Path(sources[role]).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:24]


def prepare(sources: dict[str, Path], custom_xcorr: dict[str, bool], signature: str = "",
            root: Path | None = None) -> Path:
    """The prepared folder for ``sources`` (role -> source graph), made when missing or damaged (in a
    child process for large graphs); waits while another process prepares the same folder. Raises
    RuntimeError with the reason (the child's last error lines) when preparation fails."""
    root = Path(root) if root is not None else cache_root()
    folder = root / cache_key(sources, signature)
    if check_folder(folder) is None:
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with _preparation_lock(root / f"{folder.name}.lock"):
        problem = check_folder(folder)
        if problem is None:             # another process prepared it while this one waited
            return folder
        if folder.exists():             # damaged (or from an interrupted older layout): never opened
            _discard(folder)
        _run_build(sources, custom_xcorr, folder)
        problem = check_folder(folder)
        if problem is not None:
            raise RuntimeError(f"preparing optimised graphs in {folder} failed ({problem})")
    _prune(root, sources, keep=folder)
    return folder


def _run_build(sources: dict[str, Path], custom_xcorr: dict[str, bool], folder: Path) -> None:
    request = {"sources": {r: str(p) for r, p in sources.items()}, "custom_xcorr": custom_xcorr,
               "folder": str(folder)}
    if sum(Path(p).stat().st_size for p in sources.values()) <= IN_PROCESS_BYTES:
        try:                            # small graphs: their load peak is small too; skip the child's start-up
            _build(request)
        except Exception as err:        # ORT raises its own types; the caller falls back on RuntimeError
            raise RuntimeError(f"preparing optimised graphs in {folder} failed ({type(err).__name__}: "
                               f"{str(err).strip()[:200]})") from None
        return
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = project + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "runtime.backends.onnxrt_shared", json.dumps(request)],
                          env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
        raise RuntimeError(f"preparing optimised graphs in {folder} failed ({tail or proc.returncode})")


def check_folder(folder: Path) -> str | None:
    """None when ``folder`` is a complete prepared folder (share.json readable, of this FORMAT, every
    file it lists present at its recorded size, graph files at their recorded sha256), else what is
    wrong, in a few words."""
    try:
        info = json.loads((folder / "share.json").read_text())
    except FileNotFoundError:
        return "not prepared"
    except (OSError, ValueError) as err:
        return f"share.json unreadable ({type(err).__name__})"
    if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("files"), dict):
        return f"share.json has format {info.get('format') if isinstance(info, dict) else '?'}, expected {FORMAT}"
    for name, entry in info["files"].items():
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != entry.get("size"):
            return f"{name} has {size} bytes, expected {entry.get('size')} (truncated or changed)"
        if "sha256" in entry and _sha256(path) != entry["sha256"]:
            return f"{name} does not match its sha256 (changed on disk)"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _preparation_lock(path: Path, timeout: float = BUILD_TIMEOUT_S):
    """An exclusive ``flock`` on ``path`` (created if missing, left in place: removing it would let a
    third process lock a new file while the second still holds the old one). Waits up to ``timeout``
    seconds, then raises RuntimeError (the caller falls back to the source graphs). Without fcntl (not
    POSIX) there is no lock: concurrent builders then both build and the publishing rename picks one."""
    try:
        import fcntl
    except ImportError:             # pragma: no cover - not on Linux
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another process has been preparing {path.stem} for over "
                                       f"{timeout:.0f} s") from None
                time.sleep(0.05)
        yield                       # closing the descriptor below releases the lock
    finally:
        os.close(fd)


def _discard(folder: Path) -> None:
    """Move ``folder`` aside (one rename, so no process sees it half deleted), then delete it."""
    import shutil

    aside = folder.parent / f".discard.{folder.name}.{os.getpid()}.{time.monotonic_ns()}"
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _prune(root: Path, sources: dict[str, Path], keep: Path) -> None:
    """Remove prepared folders that can no longer be used: their source graphs are gone, or they were
    made from an earlier version of these same source files (re-exported, re-quantized)."""
    ours = {str(Path(p)) for p in sources.values()}
    for share in root.glob("*/share.json"):
        folder = share.parent
        if folder == keep or folder.name.startswith("."):    # ".": another process's folder in the making
            continue
        try:
            graphs = json.loads(share.read_text())["graphs"].values()
            made_from = {g["source"]: g.get("source_stat") for g in graphs}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue                    # not ours to judge; leave it alone
        # Same source files, but as they are now? A folder of another ORT version or CPU setting (another
        # key, same files) may be in use by another process: only a stale one goes.
        stale = any(stat is None or _source_stat(src) != stat for src, stat in made_from.items())
        if (set(made_from) == ours and stale) or not all(Path(s).is_file() for s in made_from):
            _discard(folder)


def _source_stat(path: str) -> list[int] | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def open_shared(folder: Path) -> SharedGraphs:
    """Read ``share.json`` of a prepared folder and map every blob used by two or more graphs once."""
    import onnxruntime as ort

    info = json.loads((folder / "share.json").read_text())
    if info.get("format") != FORMAT:       # prepare() checked the folder; this guards a direct call
        raise RuntimeError(f"{folder}/share.json has format {info.get('format')}, expected {FORMAT}")
    users: dict[str, list] = {}
    for role, graph in info["graphs"].items():
        for name, blob in graph["initializers"].items():
            users.setdefault(blob["sha256"], []).append((role, name, blob))
    result = SharedGraphs(folder=folder, graphs={r: folder / g["model"] for r, g in info["graphs"].items()},
                          initializers={r: {} for r in info["graphs"]})
    for digest, uses in users.items():
        if len({role for role, _, _ in uses}) < 2:
            continue                                   # used by one graph: ONNX Runtime maps it itself
        _, _, blob = uses[0]
        array = np.memmap(folder / blob["file"], dtype=_ONNX_DTYPES[blob["dtype"]], mode="r",
                          offset=blob["offset"], shape=tuple(blob["dims"]))
        value = ort.OrtValue.ortvalue_from_numpy(array)
        result._arrays.append(array)
        for role, name, _ in uses:
            result.initializers[role][name] = value
        result.shared_bytes += blob["length"] * (len({role for role, _, _ in uses}) - 1)
    return result


# ------------------------------------------------------------------------------------------------
# the child process: optimise, save, hash


def _build(request: dict) -> None:
    """Optimise and save the graphs into a temporary folder beside the target, then publish it with one
    rename. If the target exists by then (another builder won; only possible without the lock), this
    build is discarded and the existing folder is left alone: it may be open in another process."""
    import shutil

    import onnxruntime as ort

    from runtime.atomic import fsync_dir, fsync_tree, write_text
    from runtime.backends.onnxrt import session_options

    folder = Path(request["folder"])
    # a leading "." keeps it out of _prune's way and out of every reader's (they look for <key>/)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        graphs = {}
        for role, source in request["sources"].items():
            opts = session_options(ort, 1, custom_xcorr=request["custom_xcorr"][role])
            opts.optimized_model_filepath = str(tmp / f"{role}.onnx")
            opts.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                          f"{role}.weights")
            opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                          str(MIN_EXTERNAL_BYTES))
            ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
            graphs[role] = {"model": f"{role}.onnx", "source": source, "source_stat": _source_stat(source),
                            "initializers": _external_blobs(tmp, tmp / f"{role}.onnx")}
        files = {}
        for path in sorted(tmp.iterdir()):
            files[path.name] = {"size": path.stat().st_size}
            if path.suffix == ".onnx":
                files[path.name]["sha256"] = _sha256(path)
        write_text(tmp / "share.json", json.dumps({"format": FORMAT, "ort": ort.__version__, "graphs": graphs,
                                                   "files": files}, indent=1))
        fsync_tree(tmp)
        try:
            os.rename(tmp, folder)      # fails on an existing non-empty folder: never replaces one
        except OSError:
            if not folder.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _external_blobs(folder: Path, model_path: Path) -> dict:
    """{initializer name: {file, offset, length, dtype, dims, sha256}} of an optimised graph's external
    weights. The graph file is walked as protobuf (``runtime.onnx_meta``'s reader: no onnx package in
    the tracking process); the weights are read once to hash them."""
    import mmap

    with open(model_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        tensors = _initializers(buf)
    blobs = {}
    for tensor in tensors:
        ext = tensor["external"]
        if not ext or tensor["dtype"] not in _ONNX_DTYPES:
            continue
        offset, length = int(ext.get("offset", 0)), int(ext["length"])
        with open(folder / ext["location"], "rb") as f:
            f.seek(offset)
            digest = hashlib.sha256(f.read(length)).hexdigest()
        blobs[tensor["name"]] = {"file": ext["location"], "offset": offset, "length": length,
                                 "dtype": tensor["dtype"], "dims": tensor["dims"],
                                 "sha256": f"{digest}:{tensor['dtype']}:{tensor['dims']}"}
    return blobs


# ModelProto.graph = 7, GraphProto.initializer = 5; TensorProto: dims 1, data_type 2, name 8,
# external_data 13 (StringStringEntryProto: key 1, value 2)   (onnx/onnx.proto)
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DIMS, _TENSOR_DTYPE, _TENSOR_NAME, _TENSOR_EXTERNAL = 1, 2, 8, 13


def _initializers(buf) -> list[dict]:
    from runtime.onnx_meta import _fields

    found = []
    for number, graph in _fields(buf, 0, len(buf)):
        if number == _MODEL_GRAPH and isinstance(graph, tuple):
            found += [_tensor_fields(buf, span) for gf, span in _fields(buf, *graph)
                      if gf == _GRAPH_INITIALIZER and isinstance(span, tuple)]
    return found


def _tensor_fields(buf, span: tuple[int, int]) -> dict:
    from runtime.onnx_meta import _fields, _text, _varint

    tensor = {"name": "", "dtype": 0, "dims": [], "external": {}}
    for number, value in _fields(buf, *span):
        if number == _TENSOR_DIMS and isinstance(value, int):           # unpacked repeated int64
            tensor["dims"].append(value)
        elif number == _TENSOR_DIMS:                                      # packed
            pos, end = value
            while pos < end:
                dim, pos = _varint(buf, pos, end)
                tensor["dims"].append(dim)
        elif number == _TENSOR_DTYPE:
            tensor["dtype"] = value
        elif number == _TENSOR_NAME:
            tensor["name"] = _text(buf, value)
        elif number == _TENSOR_EXTERNAL:
            entry = dict(_fields(buf, *value))
            tensor["external"][_text(buf, entry.get(1, (0, 0)))] = _text(buf, entry.get(2, (0, 0)))
    return tensor


if __name__ == "__main__":
    _build(json.loads(sys.argv[1]))
