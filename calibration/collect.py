"""Record calibration inputs the way the FP32 tracker sees them.

For every sequence the FP32 tracker is initialised on frame 0 with the ground-truth (or given) box and
run over the frames. A recording backend keeps each template crop with the kernels the template graph
made from it, and the search crops of chosen frames with the index of the template whose kernels they
were run with. Jittered crops widen the set where tracking alone is too regular: templates shifted by
up to ``template_shift`` of the crop and rescaled by up to ``template_scale`` (pysot's training
augmentation: 4/127 and 0.05), search crops shifted by up to ``search_shift`` (64/255) and rescaled by
``search_scale`` (0.18), some of them blurred.

Output folder (written to a temporary sibling and renamed, so a failed run leaves nothing):
``shard_0000.npz`` ... one per sequence, holding
    ``template``         (T, 3, E, E) uint8   BGR crops (the tracker's float32 crops are whole numbers)
    ``kernel_*``         (T, C, k, k) float32 the FP32 template graph's outputs for those crops
    ``search``           (S, 3, X, X) uint8   BGR crops
    ``search_template``  (S,) int32           row of ``template`` whose kernels go with each search crop
    ``search_jittered``  (S,) bool            False = the tracker's own crop, True = jittered
``manifest.json``: model identity (export id, source sha256, spec), per-shard sha256 and counts,
the set sha256 (over shard hashes), the jitter settings and seed, and ``inputs``: everything the set
was made from (model identity, dataset and its fingerprint, options), which ``--only-stale`` compares
to decide that an existing set is up to date.

A generated dataset (``bench.synth``) is used only when complete (its ``synth.json`` manifest checked),
so an interrupted ``synth`` never silently calibrates INT8 on part of the data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calibration import CalibrationError
from runtime.backends.base import Backend, Kernels

MANIFEST = "manifest.json"
FORMAT = "siamtrack-calibration/1"


@dataclass(frozen=True)
class JitterConfig:
    """Extra crops per recorded step. Shifts are fractions of the crop side, scales relative changes."""

    templates: int = 4
    template_shift: float = 4 / 127
    template_scale: float = 0.05
    searches: int = 1
    search_shift: float = 64 / 255
    search_scale: float = 0.18
    blur_probability: float = 0.2


@dataclass
class SequenceInput:
    """What collect needs from a sequence: a name, frames (iterable of HxWx3 uint8 BGR) and the
    frame-0 box ``[x, y, w, h]`` in 0-based pixels."""

    name: str
    frames: object
    init_box_xywh: np.ndarray


class RecordingBackend(Backend):
    """Delegates to ``inner`` and keeps copies of what crosses it (templates always, searches when
    ``record_search`` is set)."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = f"recording({inner.name})"
        self.spec, self.tracker_config, self.max_batch = inner.spec, inner.tracker_config, inner.max_batch
        self.templates: list[np.ndarray] = []       # each (3, E, E) float32
        self.kernels: list[tuple] = []              # each tuple of (C, k, k) float32
        self.searches: list[np.ndarray] = []        # each (3, X, X) float32
        self.search_template: list[int] = []
        self.search_jittered: list[bool] = []
        self.record_search = False
        self._current_template = -1

    def _template_impl(self, crops):
        kernels = self.inner.run_template(crops)
        if kernels.arrays is None:
            raise CalibrationError(f"backend {self.inner.name} keeps kernels on the device; collect with "
                                   "the ONNX Runtime or PyTorch backend (FP32)")
        for i in range(len(crops)):
            self.templates.append(crops[i].copy())
            self.kernels.append(tuple(np.array(k[i], np.float32) for k in kernels.arrays))
        self._current_template = len(self.templates) - len(crops)
        return Kernels(kernels.n, kernels.arrays, kernels.device)

    def _search_impl(self, crops, kernels):
        if self.record_search:
            self.add_search(crops[0], self._current_template, jittered=False)
        return self.inner.run_search(crops, kernels)

    def add_search(self, crop: np.ndarray, template_index: int, jittered: bool) -> None:
        self.searches.append(crop.copy())
        self.search_template.append(template_index)
        self.search_jittered.append(jittered)

    def close(self):
        self.inner.close()


def _jittered_crop(rng, frame, center_xy, side, out_size, avg, shift, scale, blur_p):
    """One (3, S, S) float32 crop with random shift/scale/blur around (center_xy, side)."""
    import cv2

    from runtime.crop import crop_targets, to_blob

    side_j = max(2.0, side * (1.0 + rng.uniform(-scale, scale)))
    center_j = np.asarray(center_xy, np.float64) + rng.uniform(-shift, shift, 2) * side
    patch = crop_targets(frame, center_j[None], out_size, np.array([int(round(side_j))]), np.asarray(avg)[None])
    if rng.random() < blur_p:
        k = int(rng.choice([3, 5, 7, 9]))
        patch[0] = cv2.GaussianBlur(patch[0], (k, k), 0)
    return to_blob(patch)[0]


def _record_indices(n_frames: int, every: int, cap: int) -> set[int]:
    """Frames 1.. whose search crops are kept: every ``every``-th, thinned evenly to at most ``cap``."""
    idx = np.arange(1, n_frames, max(1, every))
    if len(idx) > cap:
        idx = idx[np.round(np.linspace(0, len(idx) - 1, cap)).astype(int)]
    return set(int(i) for i in idx)


def record_sequence(seq: SequenceInput, backend: Backend, jitter: JitterConfig, rng, every: int,
                    cap: int, n_frames: int | None = None, progress=None) -> RecordingBackend:
    """Run the FP32 tracker over ``seq`` and return the recorder holding its crops and kernels."""
    from runtime.tracker import SiamRPNTracker

    rec = RecordingBackend(backend)
    tracker = SiamRPNTracker(rec)
    cfg = rec.tracker_config
    keep = _record_indices(n_frames, every, cap) if n_frames else None
    for index, frame in enumerate(seq.frames):
        if index == 0:
            state = tracker.init(frame, seq.init_box_xywh)
            main_template = rec._current_template
            s_z = _context_side(state.size_wh, cfg)
            for _ in range(jitter.templates):
                crop = _jittered_crop(rng, frame, state.center_xy, round(s_z), cfg.exemplar_size,
                                      state.channel_average, jitter.template_shift, jitter.template_scale, 0.0)
                rec.run_template(crop[None])
            rec._current_template = main_template
        else:
            record = keep is None or index in keep
            if record and len(rec.searches) < cap * (1 + jitter.searches):
                state = tracker.state
                s_x = _context_side(state.size_wh, cfg) * cfg.instance_size / cfg.exemplar_size
                for _ in range(jitter.searches):
                    crop = _jittered_crop(rng, frame, state.center_xy, s_x, cfg.instance_size,
                                          state.channel_average, jitter.search_shift, jitter.search_scale,
                                          jitter.blur_probability)
                    rec.add_search(crop, main_template, jittered=True)
            rec.record_search = record
            tracker.track(frame)
            rec.record_search = False
        if progress is not None:
            progress.update(1)
    return rec


def _context_side(size_wh, cfg) -> float:
    context = cfg.context_amount * (size_wh[0] + size_wh[1])
    return float(np.sqrt((size_wh[0] + context) * (size_wh[1] + context)))


def _as_uint8(crops: list[np.ndarray], what: str) -> np.ndarray:
    arr = np.stack(crops) if crops else np.zeros((0,), np.uint8)
    u8 = arr.astype(np.uint8)
    if not np.array_equal(u8.astype(np.float32), arr):
        raise CalibrationError(f"{what} crops are not whole numbers 0..255; the tracker's crops always are, "
                               "so the backend was given something else (this is a bug)")
    return u8


def write_shard(path: Path, rec: RecordingBackend) -> dict:
    """Save one recorder's data as ``path`` (.npz); returns its manifest entry."""
    arrays = {"template": _as_uint8(rec.templates, "template"),
              "search": _as_uint8(rec.searches, "search").reshape(-1, *rec.spec.search_shape(1)[1:]),
              "search_template": np.asarray(rec.search_template, np.int32),
              "search_jittered": np.asarray(rec.search_jittered, bool)}
    for j, name in enumerate(rec.spec.kernel_names):
        arrays[name] = np.stack([k[j] for k in rec.kernels]).astype(np.float32)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"file": path.name, "sha256": digest, "templates": len(rec.templates), "searches": len(rec.searches),
            "jittered_searches": int(np.sum(rec.search_jittered))}


def set_sha256(shards: list[dict]) -> str:
    h = hashlib.sha256()
    for s in shards:
        h.update(f"{s['file']}:{s['sha256']}\n".encode())
    return h.hexdigest()


def collect(sequences, backend: Backend, out_dir: str | Path, *, model_identity: dict,
            jitter: JitterConfig = JitterConfig(), every: int = 1, max_per_sequence: int = 64,
            min_samples: int = 32, seed: int = 0, overwrite: bool = False, progress: bool = False,
            inputs: dict | None = None) -> dict:
    """Record every sequence (iterable of SequenceInput) with the FP32 ``backend``; write shards and
    ``manifest.json`` into ``out_dir`` atomically; return the manifest.

    model_identity: {"export_id", "source_sha256", "xcorr", "precision"} of the graphs behind ``backend``
    (empty strings when unknown). Refuses (CalibrationError, nothing written) when fewer than
    ``min_samples`` search crops were recorded. inputs: recorded as ``manifest["inputs"]``
    (``collect_inputs``), for ``--only-stale``.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise CalibrationError(f"{out_dir}: folder exists and is not empty; pass --overwrite to replace it "
                               "or choose another --out")
    if model_identity.get("precision", "fp32") != "fp32":
        raise CalibrationError(f"calibration must record the FP32 model, got {model_identity['precision']}")
    rng = np.random.default_rng(seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
    try:
        shards, names = [], []
        sequences = list(sequences)
        lengths = [len(s.frames) if hasattr(s.frames, "__len__") else None for s in sequences]
        total = None if None in lengths else sum(lengths)
        bar = tqdm(desc="recording", unit="frame", total=total, disable=not progress)
        for i, seq in enumerate(sequences):
            n_frames = len(seq.frames) if hasattr(seq.frames, "__len__") else None
            rec = record_sequence(seq, backend, jitter, rng, every, max_per_sequence, n_frames, bar)
            entry = write_shard(tmp / f"shard_{i:04d}.npz", rec)
            entry["source"] = seq.name
            shards.append(entry)
            names.append(seq.name)
        bar.close()
        searches = sum(s["searches"] for s in shards)
        if searches < min_samples:
            raise CalibrationError(
                f"calibration set: only {searches} search crops from {len(shards)} sequence(s), at least "
                f"{min_samples} are needed for stable INT8 ranges; add sequences, lower --every, raise "
                "--max-per-sequence or --jitter-searches, or (knowingly) lower --min-samples")
        manifest = {"format": FORMAT, "model": dict(model_identity, spec=json.loads(backend.spec.to_json())),
                    "shards": shards, "templates": sum(s["templates"] for s in shards), "searches": searches,
                    "set_sha256": set_sha256(shards), "sources": names, "jitter": asdict(jitter),
                    "every": every, "max_per_sequence": max_per_sequence, "seed": seed, "inputs": inputs or {}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.chmod(tmp, 0o755)   # mkdtemp makes 0700
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        from runtime.atomic import replace_dir

        replace_dir(tmp, out_dir)   # every shard and the manifest fsynced, then one rename
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------ inputs

def sequences_from_dataset(fmt: str, root: Path, names: list[str] | None, limit: int | None):
    from bench.sequences import read_dataset
    from bench.synth import check_set

    if fmt == "folder":
        check_set(root)   # a generated set must be complete (its manifest is written last)
    load = read_dataset(fmt, root, names=names)
    for p in load.problems:
        print(f"calibrate: skipping {p.name}: {p.message}", file=sys.stderr)
    seqs = load.sequences[:limit] if limit else load.sequences
    return [SequenceInput(s.name, _LazyFrames(s), np.asarray(s.init_box, np.float64)) for s in seqs]


class _LazyFrames:
    """Frames of a bench Sequence, read one at a time."""

    def __init__(self, seq):
        self.seq = seq

    def __len__(self):
        return len(self.seq)

    def __iter__(self):
        return (self.seq.frame(i) for i in range(len(self.seq)))


def sequence_from_video(path: Path, box: str) -> SequenceInput:
    from runtime.errors import InputError
    from runtime.video_io import FrameReader

    try:
        values = np.array([float(v) for v in box.split(",")], np.float64)
    except ValueError:
        values = np.zeros(0)
    if values.shape != (4,) or values[2] <= 0 or values[3] <= 0:
        raise InputError(f"--box {box!r}: expected x,y,w,h in pixels with w, h > 0, e.g. --box 120,80,60,90")
    return SequenceInput(path.stem, FrameReader(path), values)


def dataset_fingerprint(root: Path) -> str:
    """sha256 naming a dataset's content cheaply: a generated set's manifest, else every file's relative
    path, size and modification time (a changed, added or removed file changes it)."""
    from bench.synth import set_fingerprint

    root = Path(root)
    generated = set_fingerprint(root) if root.is_dir() else None
    if generated:
        return generated
    h = hashlib.sha256()
    if root.is_file():
        st = root.stat()
        h.update(f"{root.name}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = Path(folder) / name
            st = p.stat()
            h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def collect_inputs(args, identity: dict) -> dict:
    """What a calibration set is made from (recorded in its manifest; compared by --only-stale)."""
    source = args.dataset.partition(":")[2] if args.dataset else str(args.video)
    return {"model": identity, "dataset": args.dataset or f"video:{args.video}", "box": args.box,
            "dataset_fingerprint": dataset_fingerprint(Path(source)), "names": args.names, "limit": args.limit,
            "every": args.every, "max_per_sequence": args.max_per_sequence,
            "jitter_templates": args.jitter_templates, "jitter_searches": args.jitter_searches,
            "min_samples": args.min_samples, "seed": args.seed}


def set_is_current(out: Path, inputs: dict) -> bool:
    """True when ``out`` holds a verified calibration set recorded from exactly ``inputs``."""
    from calibration.feeds import load_calibration

    if not (out / MANIFEST).is_file():
        return False
    try:
        calib = load_calibration(out)    # checks every shard's sha256
    except CalibrationError:
        return False
    return calib.manifest.get("inputs") == json.loads(json.dumps(inputs))


def model_identity(model_dir: Path, flavour: str | None) -> dict:
    """Export identity read from ``template.fp32.<flavour>.onnx`` metadata (empty when not a folder)."""
    import onnx

    from runtime.contract import META_EXPORT_ID, META_PRECISION, META_SOURCE_SHA, XCORR_FLAVOURS, artifact_name

    for fl in ([flavour] if flavour else list(XCORR_FLAVOURS)):
        path = model_dir / artifact_name("template", "fp32", fl, "onnx")
        if path.is_file():
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            return {"export_id": props.get(META_EXPORT_ID, ""), "source_sha256": props.get(META_SOURCE_SHA, ""),
                    "xcorr": fl, "precision": props.get(META_PRECISION, "fp32")}
    raise CalibrationError(f"{model_dir}: no template.fp32.<flavour>.onnx; export the model first")


def main(argv: list[str] | None = None) -> int:
    from runtime.cli_args import positive_int

    parser = argparse.ArgumentParser(
        prog="siamtrack calibrate",
        description="Record INT8 calibration crops (+ kernels) by running the FP32 tracker over sequences.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack calibrate artifacts/mobilev2 --dataset folder:data/seqs --out artifacts/mobilev2/calib\n"
               "  siamtrack calibrate artifacts/r50 --dataset otb:/data/OTB100 --limit 20 --max-per-sequence 16\n"
               "  siamtrack calibrate artifacts/r50 --video car.mp4 --box 120,80,60,90 --out calib/\n"
               "then: siamtrack quantize artifacts/mobilev2 --calib artifacts/mobilev2/calib")
    parser.add_argument("model_dir", type=Path, help="folder with the FP32 export (template/search .fp32.*.onnx)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="FORMAT:ROOT, FORMAT one of otb, uav123, lasot, got10k, vot, folder")
    src.add_argument("--video", type=Path, help="a video file or image folder (with --box)")
    parser.add_argument("--box", help="x,y,w,h of the target in the first frame (with --video)")
    parser.add_argument("--names", help="comma list of sequence names to use")
    parser.add_argument("--limit", type=int, help="use at most this many sequences")
    parser.add_argument("--out", type=Path, help="output folder (default MODEL_DIR/calib)")
    parser.add_argument("--flavour", choices=("plugin", "standard"), help="FP32 graphs to run (default: any)")
    parser.add_argument("--every", type=int, default=1, help="keep every n-th frame's search crop")
    parser.add_argument("--max-per-sequence", type=int, default=64, help="tracked search crops per sequence")
    parser.add_argument("--jitter-templates", type=int, default=4, help="jittered templates per sequence")
    parser.add_argument("--jitter-searches", type=int, default=1, help="jittered search crops per kept frame")
    parser.add_argument("--min-samples", type=int, default=32, help="refuse sets with fewer search crops")
    parser.add_argument("--seed", type=int, default=0, help="jitter seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--only-stale", action="store_true",
                        help="leave --out alone (and say \"up to date\") when it was recorded from this FP32 model, "
                             "this dataset (unchanged) and these options; else record it anew (implies --overwrite)")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads of ONNX Runtime's intra-op pool, per session of the FP32 model; "
                             "default: the library's (all usable CPUs); not among the inputs --only-stale "
                             "compares")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    args = parser.parse_args(argv)
    from runtime.backends import open_backend
    from runtime.errors import InputError

    if args.video is not None and not args.box:
        raise InputError("--video needs --box x,y,w,h (the target in the first frame)")
    if args.dataset:
        fmt, _, root = args.dataset.partition(":")
        if not root:
            raise InputError(f"--dataset {args.dataset!r}: expected FORMAT:ROOT, e.g. folder:data/seqs")
        names = args.names.split(",") if args.names else None
        sequences = sequences_from_dataset(fmt, Path(root), names, args.limit)
    else:
        sequences = [sequence_from_video(args.video, args.box)]
    identity = model_identity(args.model_dir, args.flavour)
    inputs = collect_inputs(args, identity)
    out = args.out or args.model_dir / "calib"
    if args.only_stale and set_is_current(out, inputs):
        manifest = json.loads((out / MANIFEST).read_text())
        print(f"up to date: {out} (recorded from export {identity['export_id']} on the same data and options; "
              f"{manifest['searches']} search crops)")
        return 0
    backend = open_backend(str(args.model_dir), backend="onnxruntime", precision="fp32", flavour=identity["xcorr"],
                           threads=args.threads)
    jitter = JitterConfig(templates=args.jitter_templates, searches=args.jitter_searches)
    with backend:
        manifest = collect(sequences, backend, out, model_identity=identity,
                           jitter=jitter, every=args.every, max_per_sequence=args.max_per_sequence,
                           min_samples=args.min_samples, seed=args.seed,
                           overwrite=args.overwrite or args.only_stale, progress=not args.quiet, inputs=inputs)
    summary = {k: manifest[k] for k in ("templates", "searches", "set_sha256", "sources")}
    print(json.dumps(summary) if args.json else
          f"recorded {summary['templates']} templates and {summary['searches']} search crops from "
          f"{len(summary['sources'])} sequence(s); set sha256 {summary['set_sha256'][:12]}")
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack calibrate"))
