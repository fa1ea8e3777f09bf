"""``siamtrack latency``: per-stage latency, FPS and peak memory of one or more backends, side by side.

Each ``--run`` is measured in its own fresh Python process, so its peak resident memory (model + runtime
library) is its own and no library loaded for one backend (torch, ONNX Runtime, TensorRT) inflates
another's numbers. The child tracks real-image frames (``bench.synth``, or ``--video``) with
``SiamRPNTracker(backend, timer=StageTimer())``:

1. template: ``warmup`` untimed then ``template_iters`` timed ``init`` calls (stages crop, preprocess,
   template);
2. track: ``warmup`` untimed then ``iterations`` timed ``track`` calls (stages crop, preprocess, search,
   postprocess, and ``track_e2e`` = the whole call; also its process CPU time);
3. host_replay: the timed ``track`` loop again over the same frames, with a new tracker whose backend
   plays back the search outputs recorded in step 2 (``_ReplayBackend``). It does the same host work
   (its boxes are compared bit for bit with step 2's: ``replay_identical``), but no network runs on this
   CPU between frames, as in a GPU deployment. Next to a CPU network every host stage starts from cold
   caches (the network's working set evicted them), which on this project's 2-core VM made the same work
   2-3x slower; ``host`` measures that case, ``host_replay`` the other;
4. search_lost (a model folder with the long-term search graph, or a long-term config):
   ``warmup`` untimed then ``template_iters`` timed ``backend.run_search`` calls on a lost-size crop of
   the first frame (the network alone, like the ``search`` stage; the tracker is not involved, so the
   row exists for a short-term tracker too).

Reported per stage: median, p90, p99 (ms) and mean; FPS = 1000 / median ``track_e2e``; peak RSS of the
child process (``peak_rss_mib``: VmHWM on Linux).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.runs import Run, parse_runs
from runtime.cli_args import positive_int
from runtime.errors import InputError

STAGES = ("crop", "preprocess", "template", "search", "postprocess", "track_e2e", "search_lost")
ROOT = Path(__file__).resolve().parents[1]


def stage_stats(seconds: list[float]) -> dict:
    """Durations in seconds -> {"n", "median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms"}."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {}
    return {"n": int(ms.size), "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "min_ms": float(ms.min())}


class WallCpuTimer:
    """A tracker timer (same ``stage(name)`` protocol as ``runtime.timing.StageTimer``) that records, per
    stage, wall-clock seconds in ``samples`` and process CPU seconds (all threads) in ``cpu_samples``.

    CPU time is what a stage costs regardless of other load on the machine; wall time is what a caller
    waits. On a busy or shared CPU the two differ a lot, so both are reported.
    """

    def __init__(self):
        self.samples: dict[str, list[float]] = {}
        self.cpu_samples: dict[str, list[float]] = {}

    def stage(self, name: str):
        return _WallCpuSpan(self.samples.setdefault(name, []), self.cpu_samples.setdefault(name, []))

    def reset(self) -> None:
        self.samples.clear()
        self.cpu_samples.clear()


class _WallCpuSpan:
    __slots__ = ("_wall", "_cpu", "_w0", "_c0")

    def __init__(self, wall: list, cpu: list):
        self._wall, self._cpu = wall, cpu

    def __enter__(self):
        self._w0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self._wall.append(time.perf_counter() - self._w0)
        self._cpu.append(time.process_time() - self._c0)
        return False


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    Linux: ``VmHWM`` of /proc/self/status, which belongs to the current address space. ``ru_maxrss`` is
    not used there because Linux carries it across ``execve``, so a child started from a big parent (a
    pytest process that already loaded torch) would report the parent's peak. Elsewhere: ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _frames(params: dict) -> list[np.ndarray]:
    need = params["warmup"] + max(params["iterations"], 1) + 1
    if params.get("video"):
        from runtime.video_io import FrameReader

        frames = []
        for f in FrameReader(params["video"]):
            frames.append(f)
            if len(frames) >= need:
                break
        boxes = [np.asarray(params["box"], dtype=np.float64)] if params.get("box") else None
        if boxes is None:
            h, w = frames[0].shape[:2]
            boxes = [np.array([w * 0.4, h * 0.4, w * 0.2, h * 0.2])]
        return frames, boxes[0]
    from bench.synth import TEST_SEEDS, SynthConfig, iter_frames

    w, h = params["frame_wh"]
    items = list(iter_frames(TEST_SEEDS.start, SynthConfig(width=w, height=h, frames=min(need, 120))))
    return [it.frame for it in items], items[0].box_xywh


def measure(run: Run, params: dict) -> dict:
    """Measure one run in this process. ``params``: warmup, iterations, template_iters, frame_wh | video."""
    from runtime.tracker import SiamRPNTracker

    rss_start = peak_rss_mib()
    frames, box = _frames(params)
    t0 = time.perf_counter()
    backend = run.open(threads=params.get("threads"))
    open_s = time.perf_counter() - t0
    timer = WallCpuTimer()
    recorder = _Recorder(backend)     # the backend, keeping what each search returned for the replay
    tracker = SiamRPNTracker(recorder, timer=timer)
    for i in range(params["warmup"] + params["template_iters"]):
        if i == params["warmup"]:
            timer.reset()
        tracker.init(frames[0], box)
    init_wall = {k: list(v) for k, v in timer.samples.items()}
    init_cpu = {k: list(v) for k, v in timer.cpu_samples.items()}
    e2e, e2e_cpu, host, host_cpu = [], [], [], []
    for i in range(params["warmup"] + params["iterations"]):
        if i == params["warmup"]:
            timer.reset()
        result, times = _timed_track(tracker, timer, _track_frame(frames, i))
        recorder.results.append(result)
        if i >= params["warmup"]:
            for samples, value in zip((e2e, e2e_cpu, host, host_cpu), times):
                samples.append(value)

    def stats(wall, cpu):
        out = stage_stats(wall)
        if cpu:
            out["cpu_median_ms"] = float(np.median(cpu) * 1000.0)
        return out

    stages = {stage: stats(timer.samples.get(stage, []), timer.cpu_samples.get(stage, []))
              for stage in ("crop", "preprocess", "search", "postprocess")}
    stages["template"] = stats(init_wall.get("template", []), init_cpu.get("template", []))
    stages["track_e2e"] = stats(e2e, e2e_cpu)
    stages["host"] = stats(host, host_cpu)
    stages["init_crop"] = stats(init_wall.get("crop", []), init_cpu.get("crop", []))
    stages["init_preprocess"] = stats(init_wall.get("preprocess", []), init_cpu.get("preprocess", []))
    replay = _replay_host(backend, recorder, frames, box, params)
    stages["host_replay"] = stats(*replay[:2])
    if _times_lost_search(backend):
        stages["search_lost"] = stats(*_time_lost_search(backend, frames[0], params))
    backend.close()
    peak = peak_rss_mib()
    h, w = frames[0].shape[:2]
    return {"run": run.to_dict(), "stages": stages, "open_seconds": open_s,
            "fps": 1000.0 / stages["track_e2e"]["median_ms"] if stages["track_e2e"].get("median_ms") else None,
            "peak_rss_mib": peak, "rss_before_open_mib": rss_start,
            "frame_wh": [w, h], "backend_name": getattr(backend, "name", run.backend),
            "int8_kernels": getattr(backend, "int8_kernels", None),   # ORT INT8 graphs: which kernel path ran
            "replay_identical": replay[2]}


def _track_frame(frames: list, i: int):
    """The frame of track step ``i`` (after the init frame; cycling through the clip)."""
    return frames[1 + i % (len(frames) - 1)] if len(frames) > 1 else frames[0]


class _Recorder:
    """A backend as the tracker uses it (spec, config, template, search) that also keeps what each
    ``run_search`` returned, in call order, and the tracker's results (``results``), for
    ``_replay_host``. The outputs belong to the caller (``Backend.run_search``), so keeping references
    adds no copy to the timed search."""

    def __init__(self, backend):
        self.name, self.spec, self.tracker_config = backend.name, backend.spec, backend.tracker_config
        self._backend = backend
        self.outputs: list = []
        self.results: list = []

    def run_template(self, crops):
        return self._backend.run_template(crops)

    def run_search(self, crops, kernels):
        out = self._backend.run_search(crops, kernels)
        self.outputs.append(out)
        return out


class _ReplayBackend:
    """The recorded backend's spec and template, and its recorded search outputs in order: a ``track()``
    loop over the same frames then does all of its host work (crop, blob, decoding, state) while the
    network's working set is not on this CPU, as when the network runs on a GPU. Duck-typed to the
    tracker's use of a backend; not a Backend anyone could deploy."""

    def __init__(self, real, outputs: list):
        self.name, self.spec, self.tracker_config = real.name + "-replay", real.spec, real.tracker_config
        self._real, self._outputs = real, iter(outputs)

    def run_template(self, crops):
        return self._real.run_template(crops)

    def run_search(self, crops, kernels):
        return next(self._outputs)


def _replay_host(backend, recorder: _Recorder, frames: list, box, params: dict):
    """(wall, CPU, identical) of ``host_replay``: the timed track loop again with the outputs replayed.
    ``identical``: every replayed box equals the recorded run's bit for bit (else the replay did not
    repeat the same host work, and the numbers are not comparable)."""
    from runtime.tracker import SiamRPNTracker

    timer = WallCpuTimer()
    tracker = SiamRPNTracker(_ReplayBackend(backend, recorder.outputs), timer=timer)
    tracker.init(frames[0], box)
    wall, cpu, identical = [], [], True
    for i, recorded in enumerate(recorder.results):
        result, (_, _, host, host_cpu) = _timed_track(tracker, timer, _track_frame(frames, i))
        identical &= bool(np.array_equal(result.box_xywh, recorded.box_xywh))
        if i >= params["warmup"]:
            wall.append(host)
            cpu.append(host_cpu)
    return wall, cpu, identical


def _timed_track(tracker, timer: "WallCpuTimer", frame):
    """One ``tracker.track(frame)``: (result, (wall, CPU, host wall, host CPU) seconds). host = the call
    minus its backend search call(s): crops, blob, decoding, state, the tracker's own Python; per frame,
    so one median covers all of it."""
    n_search = len(timer.samples.get("search", ()))
    w0, c0 = time.perf_counter(), time.process_time()
    result = tracker.track(frame)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return result, (wall, cpu, wall - sum(timer.samples.get("search", [])[n_search:]),
                    cpu - sum(timer.cpu_samples.get("search", [])[n_search:]))


def _times_lost_search(backend) -> bool:
    """Time the large search when the run has it on purpose: a folder with search_lost graphs/engines
    (``lost_path``), or a long-term config. The PyTorch model runs any crop, so it would otherwise pay
    the 831 search (seconds for r50) in every short-term latency run."""
    return bool(backend.spec.lost_instance_size
                and (getattr(backend, "lost_path", None) or backend.tracker_config.long_term))


def _time_lost_search(backend, frame: np.ndarray, params: dict) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds of ``template_iters`` backend searches on a lost-size crop of ``frame``
    (the whole frame resized: image content, as the tracker's large crop would hold)."""
    import cv2

    spec = backend.spec
    side_e, side_l = spec.exemplar_size, spec.lost_instance_size
    z = cv2.resize(frame, (side_e, side_e)).transpose(2, 0, 1)[None].astype(np.float32)   # (1, 3, E, E)
    x = cv2.resize(frame, (side_l, side_l)).transpose(2, 0, 1)[None].astype(np.float32)   # (1, 3, L, L)
    kernels = backend.run_template(np.ascontiguousarray(z))
    x = np.ascontiguousarray(x)
    wall, cpu = [], []
    for i in range(params["warmup"] + params["template_iters"]):
        w0, c0 = time.perf_counter(), time.process_time()
        backend.run_search(x, kernels)
        if i >= params["warmup"]:
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return wall, cpu


def measure_in_subprocess(run: Run, params: dict, threads: int | None, timeout: float,
                          prefix: tuple[str, ...] = (), env_extra: dict | None = None) -> dict:
    """Run ``measure`` in a fresh interpreter; returns its dict, or {"run", "error"} on failure.
    prefix: command words before the interpreter (e.g. ``("taskset", "-c", "0")``); env_extra: more
    environment variables for the child."""
    with tempfile.TemporaryDirectory(prefix="siamtrack-latency-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        if threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(threads)
        env.update(env_extra or {})
        cmd = [*prefix, sys.executable, "-m", "bench.latency", "--child", json.dumps(
            {"run": run.to_dict(), "params": params, "out": str(out)})]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"run": run.to_dict(), "error": f"timed out after {timeout:.0f} s; lower --iterations"}
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"run": run.to_dict(), "error": " | ".join(tail) or f"exit code {proc.returncode}"}
        return json.loads(out.read_text())


def _child(payload: str) -> int:
    from runtime.errors import SiamTrackError

    data = json.loads(payload)
    fields = {k: v for k, v in data["run"].items() if k not in ("name", "random_weights")}
    try:
        result = measure(Run(**fields), data["params"])
    except SiamTrackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    Path(data["out"]).write_text(json.dumps(result))
    return 0


def _environment(threads: int | None, frame_wh) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads or "library default",
            "python": platform.python_version(), "frame_wh": f"{frame_wh[0]}x{frame_wh[1]}"}


EPILOG = """\
examples:
  # CPU time per stage of the r50 model with random weights (pysot's tracker loop, PyTorch backend)
  siamtrack latency --run torch:r50 --iterations 20
  # PyTorch vs ONNX Runtime FP32 vs INT8, one table with a ratio column against the first run
  siamtrack latency --run torch:r50 --run onnxruntime:artifacts/r50 \\
      --run onnxruntime:artifacts/r50,precision=int8 --json --out artifacts/latency.json
  # TensorRT engines on a Jetson, frames from a real video
  siamtrack latency --run tensorrt:artifacts/r50,precision=fp16 --video clip.mp4 --box 120,80,60,40

Every run is measured in its own fresh process (so peak memory is per backend). Stages: crop,
preprocess, template (init), search, postprocess, track_e2e (one whole track() call), host (that call
minus the search), host_replay (the same frames again with the recorded search outputs played back:
the host path when the network does not run on this CPU, as on a GPU), and search_lost
(the long-term tracker's 831 search, network only) when the model folder has search_lost.* graphs or
engines (export with --lost-search, or a long-term config), or a PyTorch run's config is long-term.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamtrack latency", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True,
                   help="BACKEND:MODEL[,precision=..][,flavour=..][,checkpoint=..][,seed=..][,label=..] (repeatable)")
    p.add_argument("--iterations", type=int, default=50, help="timed track() steps (default 50)")
    p.add_argument("--template-iters", type=int, help="timed init() calls (default: min(iterations, 20))")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls before each timed phase")
    p.add_argument("--size", default="640x480", help="WxH of the generated frames (default 640x480)")
    p.add_argument("--video", help="take frames from this video/folder instead of generated ones")
    p.add_argument("--box", help="init box x,y,w,h for --video (default: a centred box)")
    p.add_argument("--threads", type=positive_int,
                   help="intra-op CPU threads of ONNX Runtime / torch (and OMP/MKL) in each measuring process "
                        "(default: the library's)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per run")
    p.add_argument("--out", help="also write the JSON result here")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--child"]:
        return _child(raw[1])
    args = build_parser().parse_args(raw)
    runs = parse_runs(args.run)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {args.size!r}: expected WxH, e.g. 640x480") from None
    if args.iterations < 1 or args.warmup < 0:
        raise InputError("--iterations must be >= 1 and --warmup >= 0")
    box = None
    if args.box:
        from runtime.track_cli import parse_box

        box = list(parse_box(args.box))
    params = {"warmup": args.warmup, "iterations": args.iterations,
              "template_iters": args.template_iters or min(args.iterations, 20), "frame_wh": [w, h],
              "video": args.video, "box": box, "threads": args.threads}
    from tqdm import tqdm

    results = {}
    for run in tqdm(runs, desc="latency", unit="run", disable=args.json or len(runs) < 2):
        results[run.name] = measure_in_subprocess(run, params, args.threads, args.timeout)
    first_ok = next((r for r in results.values() if not r.get("error")), None)
    frame_wh = first_ok["frame_wh"] if first_ok else [w, h]
    summary = {"runs": results, "warmup": args.warmup, "iterations": args.iterations,
               "template_iters": params["template_iters"], "environment": _environment(args.threads, frame_wh)}
    from bench import report

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        report.write_atomic(Path(args.out), json.dumps(summary, indent=1, default=report.json_default))
    if args.json:
        print(json.dumps(summary, indent=1, default=report.json_default))
    else:
        print(report.latency_markdown(summary))
    return 0 if all(not r.get("error") for r in results.values()) else 1


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack latency"))
