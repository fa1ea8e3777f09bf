"""Start and stop the ``tritonserver`` that the ``nvidia-pytriton`` wheel bundles (Triton 2.51, python
backend only), on 127.0.0.1 by default, for a repository written by ``siamtrack triton-repo``.

What the bundled server needs, and why this module sets it up:
- ``LD_LIBRARY_PATH``: the interpreter's LIBDIR (the python backend stub links libpython) and the
  wheel's ``nvidia_pytriton.libs`` (its own copies of libtritonserver, ssl, curl, ...).
- a backend directory holding ``python/triton_python_backend_stub`` for THIS Python version (the wheel
  ships one per version; pytriton copies the matching one the same way); made as symlinks in a temp dir.
- the stub runs Python in isolated mode (no PYTHONPATH, no venv), so the repository's ``model.py`` shims
  read ``SIAMTRACK_TRITON_PYTHONPATH`` (put first: a numpy 1.x, then the project) and
  ``SIAMTRACK_TRITON_SITE`` (the venv's site-packages, added with ``site.addsitedir``).
- numpy: tensors reach the stub as zeros and come back empty with numpy 2 (checked: 2.0.2 and 2.4.6
  fail, 1.26.4 works: the stub's pybind11 predates numpy 2). The project itself keeps numpy 2; setup.sh
  installs numpy 1.26.4 into ``.venv/triton-stub-python`` for the stub alone.

``start_server(repo) -> TritonServer`` picks free ports, waits until every model is ready (or raises
with the server's log tail), and ``stop()`` ends that one process by its PID.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import BackendUnavailable, InputError

STUB_SITE_ENV = "SIAMTRACK_TRITON_STUB_SITE"
STUB_SITE_DIR = "triton-stub-python"       # under sys.prefix (the venv)
STUB_NUMPY = "numpy==1.26.4"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _pytriton_dist() -> tuple[Path, Path]:
    """(tritonserver dist folder inside the wheel, the wheel's bundled shared libraries)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("no tritonserver: the nvidia-pytriton wheel is not installed; run "
                                 "`bash setup.sh --dev` (or pip install --no-deps nvidia-pytriton)")
    root = Path(next(iter(spec.submodule_search_locations)))
    dist, libs = root / "tritonserver", root.parent / "nvidia_pytriton.libs"
    if not (dist / "bin" / "tritonserver").is_file():
        raise BackendUnavailable(f"{dist}/bin/tritonserver is missing; reinstall nvidia-pytriton")
    return dist, libs


def stub_site() -> Path:
    """The folder holding numpy 1.x for the python backend stub; InputError when absent or numpy 2."""
    path = Path(os.environ.get(STUB_SITE_ENV) or Path(sys.prefix) / STUB_SITE_DIR)
    found = sorted(path.glob("numpy-*.dist-info")) if path.is_dir() else []
    fix = (f"run `bash setup.sh --dev`, or: {sys.executable} -m pip install --no-deps --target {path} "
           f"{STUB_NUMPY}")
    if not found:
        raise InputError(f"{path}: no numpy for Triton's python backend stub (it needs numpy 1.x); {fix}")
    version = found[-1].name[len("numpy-"):-len(".dist-info")]
    if not version.startswith("1."):
        raise InputError(f"{path}: holds numpy {version}; the python backend stub of Triton 2.51 passes "
                         f"empty tensors with numpy 2; {fix}")
    return path


def shm_prefix(grpc_port: int) -> str:
    """Name prefix of the python backend's /dev/shm regions for a server this process starts."""
    return f"siamtrack{os.getpid()}p{grpc_port}_"


def _remove_shm(prefix: str) -> None:
    """Unlink /dev/shm regions a stopped server left behind. A server that exits because a model
    failed to load (or is killed) does not unlink the regions of the models it had loaded; 16 MiB each."""
    shm = Path("/dev/shm")
    for region in shm.glob(prefix + "*") if shm.is_dir() else []:
        try:
            region.unlink()
        except OSError:
            pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend_dir(dist: Path) -> Path:
    """A temp backend folder: python/{libtriton_python.so, utils, the stub for this Python version}."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (dist / "python_backend_stubs").iterdir())
        raise BackendUnavailable(f"the bundled Triton has no python backend stub for Python {version} "
                                 f"(it has {', '.join(have)}); use one of those Python versions")
    home = Path(tempfile.mkdtemp(prefix="siamtrack-triton-"))
    python = home / "backends" / "python"
    python.mkdir(parents=True)
    for src in (dist / "backends" / "python" / "libtriton_python.so",
                dist / "backends" / "python" / "triton_python_backend_utils.py", stub):
        (python / src.name).symlink_to(src)
    return home


@dataclass
class TritonServer:
    """A running tritonserver: ``grpc_url`` (host:port for tritonclient.grpc), ``http_url``, ``pid``."""

    process: subprocess.Popen
    address: str
    grpc_port: int
    http_port: int
    log_path: Path
    home: Path
    _log_file: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def grpc_url(self) -> str:
        return f"{self.address}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.address}:{self.http_port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def load_errors(self) -> str:
        """The server's error lines (a model that failed to load says why here)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line for line in text.splitlines()
                         if (line.startswith("E") or "error:" in line) and "CudaDriverHelper" not in line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM this server's PID, SIGKILL it after ``timeout_s``; returns its exit code."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._log_file is not None:
            self._log_file.close()
        _remove_shm(shm_prefix(self.grpc_port))
        import shutil

        shutil.rmtree(self.home, ignore_errors=True)
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def server_command(repo: Path, home: Path, dist: Path, address: str, grpc_port: int, http_port: int,
                   config_name: str | None = None, trt_plugins: list[str] | None = None,
                   exit_timeout_s: int = 5) -> list[str]:
    cmd = [str(dist / "bin" / "tritonserver"), f"--model-repository={repo}",
           f"--backend-directory={home / 'backends'}",
           f"--http-address={address}", f"--http-port={http_port}",
           f"--grpc-address={address}", f"--grpc-port={grpc_port}",
           "--allow-metrics=false", f"--exit-timeout-secs={int(exit_timeout_s)}", "--log-info=true",
           # shared-memory regions of two servers on one machine must not collide
           f"--backend-config=python,shm-region-prefix-name={shm_prefix(grpc_port)}",
           "--backend-config=python,shm-default-byte-size=16777216"]
    if config_name:
        cmd.append(f"--model-config-name={config_name}")
    if trt_plugins:  # GPU servers only (the bundled server has no TensorRT backend); unverified here
        cmd.append(f"--backend-config=tensorrt,plugins={';'.join(trt_plugins)}")
    return cmd


def server_env() -> dict[str, str]:
    _, libs = _pytriton_dist()
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    env["SIAMTRACK_TRITON_PYTHONPATH"] = os.pathsep.join([str(stub_site()), str(PROJECT_ROOT)])
    env["SIAMTRACK_TRITON_SITE"] = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
    return env


def start_server(repo: str | Path, *, address: str = "127.0.0.1", grpc_port: int | None = None,
                 http_port: int | None = None, config_name: str | None = None,
                 trt_plugins: list[str] | None = None, log_path: str | Path | None = None,
                 ready_timeout_s: float = 120.0, exit_timeout_s: int = 5) -> TritonServer:
    """Start tritonserver on ``repo`` and wait until it and every model are ready.

    exit_timeout_s: on stop, how long Triton waits for in-flight work; open streams (sequences) count
    as in flight, so a server with live streams always waits this long before exiting."""
    repo = Path(repo).resolve()
    if not (repo / "siamtrack_repository.json").is_file():
        raise InputError(f"{repo}: not a repository written by `siamtrack triton-repo` (no "
                         "siamtrack_repository.json); write one first")
    dist, _ = _pytriton_dist()
    env = server_env()
    home = _backend_dir(dist)
    grpc_port = grpc_port or free_port()
    http_port = http_port or free_port()
    log_path = Path(log_path) if log_path else home / "tritonserver.log"
    log_file = open(log_path, "wb")
    cmd = server_command(repo, home, dist, address, grpc_port, http_port, config_name, trt_plugins, exit_timeout_s)
    process = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    server = TritonServer(process, address, grpc_port, http_port, log_path, home, log_file)
    try:
        _wait_ready(server, ready_timeout_s)
    except BaseException:  # the error message already holds the log's tail
        server.stop()
        raise
    return server


def _wait_ready(server: TritonServer, timeout_s: float) -> None:
    url = f"http://{'127.0.0.1' if server.address in ('0.0.0.0', '') else server.address}:{server.http_port}/v2/health/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise BackendUnavailable(f"tritonserver exited with code {server.process.returncode} before it was "
                                     f"ready; its errors:\n{server.load_errors() or server.log_tail(25)}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise BackendUnavailable(f"tritonserver not ready after {timeout_s:g} s; its log ends:\n{server.log_tail(25)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="siamtrack triton-serve",
        description="Run the Triton Inference Server bundled with the nvidia-pytriton wheel on a repository "
                    "written by `siamtrack triton-repo`, in the foreground until Ctrl-C.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  siamtrack triton-serve --repo triton/lite0                       # free ports on 127.0.0.1
  siamtrack triton-serve --repo triton/lite0 --grpc-port 8001 --json
  siamtrack camera --server 127.0.0.1:8001 --source clip.mp4 --box 120,80,60,40 --headless --json-out -

The bundled server has only the python backend (CPU). On a GPU server use NVIDIA's Triton container
with --model-config-name=gpu (README: "Serving with Triton").""")
    p.add_argument("--repo", required=True, help="model repository (siamtrack triton-repo --out)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--grpc-port", type=int, default=None, help="gRPC port (default: a free one)")
    p.add_argument("--http-port", type=int, default=None, help="HTTP port (default: a free one)")
    p.add_argument("--model-config-name", default=None, help="config variant, e.g. gpu (configs/gpu.pbtxt)")
    p.add_argument("--trt-plugin", action="append", default=None, help="TensorRT plugin library (GPU servers)")
    p.add_argument("--log", default=None, help="write the server log here (default: a temp file)")
    p.add_argument("--json", action="store_true", help="print the URLs and PID as one JSON line")
    args = p.parse_args(argv)
    server = start_server(args.repo, address=args.address, grpc_port=args.grpc_port, http_port=args.http_port,
                          config_name=args.model_config_name, trt_plugins=args.trt_plugin, log_path=args.log)
    info = {"grpc_url": server.grpc_url, "http_url": server.http_url, "pid": server.pid,
            "log": str(server.log_path)}
    print(json.dumps(info) if args.json else
          f"tritonserver ready: gRPC {server.grpc_url}, HTTP {server.http_url} (pid {server.pid}, log "
          f"{server.log_path}); Ctrl-C stops it", flush=True)
    try:
        while server.alive():
            time.sleep(0.5)
        print(f"tritonserver exited with code {server.process.returncode}; log:\n{server.log_tail()}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack triton-serve"))
