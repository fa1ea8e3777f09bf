"""One ``Sequence`` type for every benchmark format, and a reader per on-disk layout.

Ground-truth convention (all formats): ``gt_xywh`` is (T, 4) float64, ``[x, y, w, h]`` in 0-based frame
pixels. A row of NaN means *no box for this frame*: the target is absent (UAV123 NaN rows, LaSOT/GOT-10k
frames flagged absent that carry a box keep their box), or the frame is not annotated (GOT-10k test:
only frame 0 has a box). ``absent`` (T,) bool is True where the target is not visible (LaSOT
full_occlusion | out_of_view, GOT-10k absence.label, UAV123 NaN rows, the folder format's optional
absent.txt). Frame 0 always has a finite box with w, h > 0 (the tracker starts there); otherwise the
sequence is reported as a problem.

VOT sequences also carry ``gt_regions``: per frame the original 4 or 8 numbers (used for the reset
protocol's overlap), and ``gt_xywh`` is pysot's axis-aligned conversion (``runtime.protocol.vot_region_to_box``).

Readers never stop at a bad sequence: ``read_dataset`` returns the good sequences and a list of
``SequenceProblem`` (name + message) for the rest (missing frame, wrong column count, partial NaN rows,
frame/ground-truth count mismatch). A root that does not look like the format at all raises
``InputError`` naming the expected layout.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from runtime.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
FORMATS = ("otb", "uav123", "lasot", "got10k", "vot", "folder")

LAYOUTS = {
    "otb": "ROOT/<Seq>/img/0001.jpg ... and ROOT/<Seq>/groundtruth_rect.txt (Jogging and Skating2 have "
           "groundtruth_rect.1.txt and .2.txt)",
    "uav123": "ROOT/data_seq/UAV123/<folder>/000001.jpg ... and ROOT/anno/UAV123/<seq>.txt; split sequences "
              "(bird1_1, ...) need pysot's ROOT/UAV123.json or a {seq: {start_frame, end_frame, folder_name}} "
              "ROOT/uav123_ranges.json",
    "lasot": "ROOT/<class>/<class>-<n>/img/00000001.jpg ... with groundtruth.txt, full_occlusion.txt, "
             "out_of_view.txt (optional ROOT/testing_set.txt restricts to the test split)",
    "got10k": "ROOT/{val,test}/GOT-10k_Val_000001/00000001.jpg ... with groundtruth.txt, absence.label, "
              "cover.label (pass ROOT/val or ROOT/test, or ROOT with --split)",
    "vot": "ROOT/list.txt and ROOT/<seq>/color/00000001.jpg (or ROOT/<seq>/*.jpg) with ROOT/<seq>/groundtruth.txt "
           "(4 or 8 numbers per line)",
    "folder": "ROOT/<seq>/img/*.jpg (or ROOT/<seq>/*.jpg) with ROOT/<seq>/groundtruth.txt (x,y,w,h per line) "
              "and optional absent.txt (0/1 per line); ROOT itself may be one such sequence",
}


@dataclass
class Sequence:
    """One annotated video.

    frames: list of image paths, or list of HxWx3 uint8 BGR arrays (in-memory, e.g. from ``bench.synth``).
    gt_xywh: (T, 4) float64, NaN rows = no box (see module doc). absent: (T,) bool, True = not visible.
    attributes: dataset-specific extras (e.g. "image_wh", "cover", "gt_first_only", "split").
    gt_regions: VOT only, per-frame tuples of 4 or 8 floats as written in groundtruth.txt.
    """

    name: str
    frames: list
    gt_xywh: np.ndarray
    absent: np.ndarray
    dataset: str = "folder"
    attributes: dict = field(default_factory=dict)
    gt_regions: list | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 BGR; InputError naming the file when it cannot be read."""
        item = self.frames[index]
        if isinstance(item, np.ndarray):
            return item
        import cv2

        img = cv2.imread(str(item), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{item}: cannot be read as an image (missing or corrupt frame {index} of {self.name})")
        return img

    @property
    def init_box(self) -> np.ndarray:
        return self.gt_xywh[0]


@dataclass(frozen=True)
class SequenceProblem:
    name: str
    message: str


@dataclass
class DatasetLoad:
    sequences: list[Sequence]
    problems: list[SequenceProblem]


class _Bad(Exception):
    """One sequence cannot be used; the message is reported and the rest go on."""


def read_dataset(fmt: str, root: str | Path, *, split: str | None = None,
                 names: list[str] | None = None) -> DatasetLoad:
    """Read every sequence of a dataset in format ``fmt`` (one of FORMATS) under ``root``.

    ``names`` restricts to these sequence names. ``split`` is GOT-10k's "val"/"test" when ``root`` is the
    dataset root. Raises InputError when ``root`` does not match the layout at all.
    """
    if fmt not in _READERS:
        raise InputError(f"--format {fmt!r}: unknown; choose one of {', '.join(FORMATS)}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; the {fmt} layout is {LAYOUTS[fmt]}")
    listing, build = _READERS[fmt](root, split)
    if not listing:
        raise InputError(f"{root}: no {fmt} sequence found; expected {LAYOUTS[fmt]}")
    if names:
        available = [n for n, _ in listing]
        unknown = [n for n in dict.fromkeys(names) if n not in set(available)]
        if unknown:
            shown = ", ".join(available[:10]) + (f", ... ({len(available)} in total)" if len(available) > 10 else "")
            raise InputError(f"--sequences: {', '.join(map(repr, unknown))} "
                             f"{'is' if len(unknown) == 1 else 'are'} not a sequence of {root} ({fmt}); "
                             f"available: {shown}")
        wanted = set(names)
        listing = [(n, a) for n, a in listing if n in wanted]
    load = DatasetLoad([], [])
    for name, arg in listing:
        try:
            load.sequences.append(build(name, arg))
        except _Bad as err:
            load.problems.append(SequenceProblem(name, str(err)))
    return load


# ------------------------------------------------------------------ shared parsing helpers

def is_plain_name(name: str) -> bool:
    """True for a name usable as one folder or file name inside a root: no separator, not '.' or '..'."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name \
        and not Path(name).is_absolute()


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files of ``folder`` in natural (numeric) order."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)


def check_numbering(frames: list[Path], where: str) -> None:
    """Numbered frames (0001.jpg ...) must be consecutive; a gap is a missing frame."""
    numbers = []
    for p in frames:
        m = re.search(r"(\d+)$", p.stem)
        if m is None:
            return                                   # not numbered: nothing to check
        numbers.append(int(m.group(1)))
    gaps = [a + 1 for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    if gaps:
        width = len(re.search(r"(\d+)$", frames[0].stem).group(1))
        raise _Bad(f"{where}: frame {gaps[0]:0{width}d}{frames[0].suffix} is missing "
                   f"({len(gaps)} gap(s) in the numbering); restore the file or re-extract the sequence")


def parse_boxes(path: Path, columns: tuple[int, ...] = (4,), allow_empty_rows: bool = True) -> np.ndarray:
    """Rows of numbers separated by commas, tabs or spaces -> (T, C) float64.

    Rows of all-NaN are allowed (no box) when ``allow_empty_rows``; a partly-NaN row, a non-number or a
    row with a column count not in ``columns`` is an error naming the line.
    """
    if not path.is_file():
        raise _Bad(f"{path}: ground-truth file is missing")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        parts = [p for p in re.split(r"[,\s]+", text) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise _Bad(f"{path}:{lineno}: {text!r} is not a list of numbers") from None
        if len(values) not in columns:
            expected = " or ".join(map(str, columns))
            raise _Bad(f"{path}:{lineno}: {len(values)} columns, expected {expected} (x,y,w,h or polygon corners); "
                       "fix or remove the line")
        nan = np.isnan(values)
        if nan.any() and not (nan.all() and allow_empty_rows):
            rule = "only a whole row of NaN (no box) is allowed" if allow_empty_rows else \
                "this format has a box on every frame"
            raise _Bad(f"{path}:{lineno}: {text!r} holds NaN; {rule}")
        rows.append(values)
    if not rows:
        raise _Bad(f"{path}: ground-truth file is empty")
    return np.array(rows, dtype=np.float64)


def _flags(path: Path, n: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        values = [int(float(v)) for v in re.split(r"[,\s]+", path.read_text().strip()) if v]
    except ValueError:
        raise _Bad(f"{path}: expected one 0/1 flag per frame") from None
    if len(values) != n:
        raise _Bad(f"{path}: {len(values)} flags for {n} frames")
    return np.array(values)


def _finish(name: str, frames: list, gt: np.ndarray, absent: np.ndarray | None, dataset: str,
            where: str, **attributes) -> Sequence:
    if len(frames) != len(gt):
        raise _Bad(f"{where}: {len(frames)} frames but {len(gt)} ground-truth rows; a frame or a line is "
                   "missing")
    first = gt[0]
    if not (np.all(np.isfinite(first)) and first[2] > 0 and first[3] > 0):
        raise _Bad(f"{where}: frame 0 has no usable box ({first.tolist()}); the tracker needs one to start")
    if absent is None:
        absent = np.all(np.isnan(gt), axis=1)
    return Sequence(name=name, frames=list(frames), gt_xywh=gt, absent=np.asarray(absent, dtype=bool),
                    dataset=dataset, attributes=attributes)


# ------------------------------------------------------------------ OTB2015 / OTB100

# Sequences whose image folder holds more frames than the benchmark uses (OTB's configSeqs.m).
_OTB_FRAME_RANGES = {"David": (300, 770), "Football1": (1, 74), "Freeman3": (1, 460), "Freeman4": (1, 283),
                     "Diving": (1, 215)}


def _otb_listing(root: Path, split):
    out = []
    for seq_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        gts = sorted(f for f in seq_dir.glob("groundtruth_rect*.txt") if f.read_text().strip())
        if not gts or not (seq_dir / "img").is_dir():
            continue
        for i, gt in enumerate(gts, 1):         # Jogging/Skating2: two targets, named as pysot does
            out.append((f"{seq_dir.name}-{i}" if len(gts) > 1 else seq_dir.name, (seq_dir, gt)))
    return out, _otb_build


def _otb_build(name: str, arg) -> Sequence:
    seq_dir, gt_path = arg
    frames = list_frames(seq_dir / "img")
    check_numbering(frames, f"{seq_dir}/img")
    if seq_dir.name in _OTB_FRAME_RANGES:
        first, last = _OTB_FRAME_RANGES[seq_dir.name]
        frames = frames[first - 1:last]
    gt = parse_boxes(gt_path, allow_empty_rows=False)
    return _finish(name, frames, gt, None, "otb", str(seq_dir))


# ------------------------------------------------------------------ UAV123

def _uav_ranges(root: Path) -> dict:
    """{seq: (folder, [frame file names])} from pysot's UAV123.json or a ranges json, if present."""
    out = {}
    pysot = root / "UAV123.json"
    if pysot.is_file():
        for seq, meta in json.loads(pysot.read_text()).items():
            names = [Path(n).name for n in meta["img_names"]]
            out[seq] = (Path(meta["img_names"][0]).parent.name, names)
    ranges = root / "uav123_ranges.json"
    if ranges.is_file():
        raw = json.loads(ranges.read_text())
        raw = raw.get("UAV123", raw)
        for seq, meta in raw.items():
            names = [f"{i:06d}.jpg" for i in range(meta["start_frame"], meta["end_frame"] + 1)]
            out[seq] = (meta["folder_name"], names)
    return out


def _uav_listing(root: Path, split):
    anno = root / "anno" / "UAV123"
    if not anno.is_dir():
        raise InputError(f"{root}: no anno/UAV123 folder; the uav123 layout is {LAYOUTS['uav123']}")
    ranges = _uav_ranges(root)
    return [(p.stem, (root, p, ranges)) for p in sorted(anno.glob("*.txt"))], _uav_build


def _uav_build(name: str, arg) -> Sequence:
    root, gt_path, ranges = arg
    data = root / "data_seq" / "UAV123"
    gt = parse_boxes(gt_path)
    if name in ranges:
        folder, names = ranges[name]
        frames = [data / folder / n for n in names]
        missing = [f for f in frames if not f.is_file()]
        if missing:
            raise _Bad(f"{missing[0]}: frame is missing ({len(missing)} missing in {name})")
    elif (data / name).is_dir():
        frames = list_frames(data / name)
        check_numbering(frames, str(data / name))
    else:
        raise _Bad(f"{name}: no folder data_seq/UAV123/{name} and no frame range for it; split sequences need "
                   "pysot's UAV123.json (or uav123_ranges.json) in the dataset root")
    return _finish(name, frames, gt, None, "uav123", str(gt_path))


# ------------------------------------------------------------------ LaSOT

def _lasot_listing(root: Path, split):
    seq_dirs = [p.parent for p in sorted(root.glob("*/*/groundtruth.txt"))]
    seq_dirs += [p.parent for p in sorted(root.glob("*/groundtruth.txt"))]      # flattened test set
    seq_dirs = [d for d in seq_dirs if (d / "img").is_dir()]
    test_list = root / "testing_set.txt"
    if test_list.is_file():
        keep = set(test_list.read_text().split())
        seq_dirs = [d for d in seq_dirs if d.name in keep]
    return [(d.name, d) for d in seq_dirs], _lasot_build


def _lasot_build(name: str, seq_dir: Path) -> Sequence:
    frames = list_frames(seq_dir / "img")
    check_numbering(frames, f"{seq_dir}/img")
    gt = parse_boxes(seq_dir / "groundtruth.txt")
    occ = _flags(seq_dir / "full_occlusion.txt", len(gt))
    oov = _flags(seq_dir / "out_of_view.txt", len(gt))
    absent = np.zeros(len(gt), dtype=bool)
    for flags in (occ, oov):
        if flags is not None:
            absent |= flags.astype(bool)
    absent |= np.all(np.isnan(gt), axis=1)
    return _finish(name, frames, gt, absent, "lasot", str(seq_dir))


# ------------------------------------------------------------------ GOT-10k

def _got_listing(root: Path, split):
    base = root / split if split else root
    if not base.is_dir():
        raise InputError(f"{base}: no such folder; the got10k layout is {LAYOUTS['got10k']}")
    seq_dirs = [p.parent for p in sorted(base.glob("*/groundtruth.txt"))]
    return [(d.name, d) for d in seq_dirs], _got_build


def _got_build(name: str, seq_dir: Path) -> Sequence:
    frames = list_frames(seq_dir)
    check_numbering(frames, str(seq_dir))
    gt = parse_boxes(seq_dir / "groundtruth.txt")
    first_only = len(gt) == 1 and len(frames) > 1            # test split: only the init box is public
    if first_only:
        gt = np.vstack([gt, np.full((len(frames) - 1, 4), np.nan)])
    absence = _flags(seq_dir / "absence.label", len(gt))
    cover = _flags(seq_dir / "cover.label", len(gt))
    absent = absence.astype(bool) if absence is not None else np.all(np.isnan(gt), axis=1)
    attrs = {"gt_first_only": first_only}
    if cover is not None:
        attrs["cover"] = cover
    meta = seq_dir / "meta_info.ini"
    if meta.is_file():
        m = re.search(r"resolution:\s*\((\d+),\s*(\d+)\)", meta.read_text())
        if m:
            attrs["image_wh"] = (int(m.group(1)), int(m.group(2)))
    return _finish(name, frames, gt, absent, "got10k", str(seq_dir), **attrs)


# ------------------------------------------------------------------ VOT short-term

def _vot_listing(root: Path, split):
    lst = root / "list.txt"
    names = lst.read_text().split() if lst.is_file() else \
        [p.parent.name for p in sorted(root.glob("*/groundtruth.txt"))]
    for lineno, name in enumerate(names, 1):
        if not is_plain_name(name):
            # an entry like /etc or ../x would read frames outside the dataset and, as the result file's
            # name, write outside --out
            raise InputError(f"{lst}: entry {lineno} {name!r} is not a sequence folder name (absolute, '..' or "
                             "a path with '/'); list.txt must hold plain folder names of ROOT, one per line")
    return [(n, root / n) for n in names], _vot_build


def _vot_build(name: str, seq_dir: Path) -> Sequence:
    from runtime.protocol import box_to_vot_polygon, vot_region_to_box

    if not seq_dir.is_dir():
        raise _Bad(f"{seq_dir}: listed in list.txt but the folder is missing")
    frames = list_frames(seq_dir / "color") or list_frames(seq_dir)
    check_numbering(frames, str(seq_dir))
    gt_path = seq_dir / "groundtruth.txt"
    if gt_path.is_file() and gt_path.read_text().lstrip().startswith("m"):
        raise _Bad(f"{gt_path}: mask ground truth (VOT2020+) is not supported; use a VOT2016-2019 sequence")
    raw = parse_boxes(gt_path, columns=(4, 8), allow_empty_rows=False)
    if raw.shape[1] == 4:                     # pysot turns a rectangle into its inclusive-corner polygon
        raw = np.array([box_to_vot_polygon(r) for r in raw])
    gt = np.array([vot_region_to_box(r) for r in raw])
    seq = _finish(name, frames, gt, np.zeros(len(gt), dtype=bool), "vot", str(seq_dir))
    seq.gt_regions = [tuple(r) for r in raw]
    return seq


# ------------------------------------------------------------------ folder + groundtruth.txt

def _folder_listing(root: Path, split):
    if (root / "groundtruth.txt").is_file():
        return [(root.name, root)], _folder_build
    return [(p.parent.name, p.parent) for p in sorted(root.glob("*/groundtruth.txt"))], _folder_build


def _folder_build(name: str, seq_dir: Path) -> Sequence:
    frames = list_frames(seq_dir / "img") or list_frames(seq_dir)
    check_numbering(frames, str(seq_dir))
    gt = parse_boxes(seq_dir / "groundtruth.txt")
    absent = _flags(seq_dir / "absent.txt", len(gt))
    absent = absent.astype(bool) | np.all(np.isnan(gt), axis=1) if absent is not None else None
    return _finish(name, frames, gt, absent, "folder", str(seq_dir))


_READERS: dict[str, Callable] = {"otb": _otb_listing, "uav123": _uav_listing, "lasot": _lasot_listing,
                                 "got10k": _got_listing, "vot": _vot_listing, "folder": _folder_listing}
