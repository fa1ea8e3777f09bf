"""Seeded synthetic tracking sequences with exact ground truth, built from real photographs.

A sequence pastes a textured patch cut from a real photograph (the target) over a crop of another real
photograph (the background), and moves it along a smooth random trajectory with scale change and a
slight rotation. Optional nuisances: distractors (patches cut from the same source image, so they look
alike), an occluder crossing the target, a global lighting ramp and motion/defocus blur on some frames.

Ground truth is exact: the axis-aligned bounding box, in continuous 0-based pixel coordinates, of the
target's rotated and scaled rectangle (its four corners), clipped to the frame. It is given even when
the occluder hides the target; ``absent`` is True on frames where less than 10 % of the target is
visible.

A generated set (``write_set``, ``siamtrack synth``) is complete only when its manifest ``synth.json``
exists: it is removed before generation starts and written last, and ``check_set`` refuses a folder of
generated sequences without it (an interrupted run), so a partial set is never used as a whole one.

Long-term sequences (``SynthConfig.long_term``, ``siamtrack synth --long-term``): on top of the above, the
target disappears ``absences`` times for ``absence_frames`` frames and comes back ELSEWHERE, alternating
two kinds of event (``long_term_events``):
- "out-of-view": the target is not in the picture (it left the field of view); its ground-truth row is
  NaN (there is no box) and it is absent;
- "occlusion": a static occluder, cut from another photograph and larger than the target, is placed over
  it and stays in the scene for the rest of the sequence; the target waits under it, fully hidden (its
  exact box is given, absent since < 10 % is visible), and moves away unseen.
When the event ends the target reappears at a position at least a third of the frame's short side from
where it was last seen, and not under an occluder. The events draw from their own random stream
(seed, 1), so the schedule does not depend on the rest of the scene.

Attached targets (``SynthConfig.attached``, ``siamtrack synth --attached F``, ``siamtrack train
--synth-attached F``): in a fraction F of the sequences (drawn per sequence from its own random stream
(seed, 3)) the target is a sub-region of a larger pasted region, like a head on a body, so that its box
is NOT the edge of a pasted rectangle on every side. Each side of the target's box is extended by 0.25-1.5
target sides of "body" with probability 1/2 (at least one side); the body moves, scales and rotates
rigidly with the target (the same transform, about the target's centre). Half of these bodies continue
the target's own texture (one larger crop of the photograph, the box an arbitrary window in it); the
other half are another crop of the same photograph with the target blended in through a soft-edged
ellipse (an irregular, soft real boundary; the ellipse's corners show body). The ground truth stays the
target's sub-rectangle, and ``target_mask`` / visibility are the sub-rectangle's coverage. The default
(0.0) draws nothing from that stream: every existing sequence is byte-identical.

Images come from scikit-image's ``data`` folder (read by path, no download) and, when installed,
scikit-learn's two sample images.

Train/test split (for a training stage that must never see test sequences):
- seeds ``0 .. 999_999`` are TRAIN, seeds ``1_000_000 .. 1_999_999`` are TEST (``split_of_seed``);
- each split draws backgrounds and targets only from its own source images (``SOURCE_IMAGES``); no
  photograph is shared between the two lists, so a test target or background is never seen in training.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import InputError

TRAIN_SEEDS = range(0, 1_000_000)
TEST_SEEDS = range(1_000_000, 2_000_000)

# Disjoint photograph lists per split: "skimage:<file>" or "sklearn:<file>".
SOURCE_IMAGES = {
    "train": ("skimage:astronaut.png", "skimage:motorcycle_left.png", "skimage:motorcycle_right.png",
              "skimage:retina.jpg", "skimage:brick.png", "skimage:grass.png", "skimage:camera.png",
              "skimage:ihc.png", "skimage:moon.png", "skimage:page.png", "skimage:color.png",
              "sklearn:china.jpg"),
    "test": ("skimage:coffee.png", "skimage:rocket.jpg", "skimage:chelsea.png", "skimage:hubble_deep_field.jpg",
             "skimage:gravel.png", "skimage:coins.png", "sklearn:flower.jpg"),
}
ABSENT_VISIBLE_FRACTION = 0.10


@dataclass(frozen=True)
class SynthConfig:
    """Size and nuisances of a generated sequence. Sizes in pixels; fractions of the frame's short side."""

    width: int = 320
    height: int = 240
    frames: int = 60
    target_size: tuple[float, float] = (0.15, 0.35)   # initial target side, fraction of min(W, H)
    max_speed: float = 6.0                            # pixels per frame
    scale_range: tuple[float, float] = (0.7, 1.4)     # relative to the initial size
    max_rotation_deg: float = 8.0
    distractors: int = 1
    occlusion: bool = True
    lighting: bool = True
    blur: bool = True
    long_term: bool = False                           # absences with reappearance elsewhere (module doc)
    absences: int = 2                                 # events per sequence (long_term only)
    absence_frames: tuple[int, int] = (10, 20)        # event length range, frames (long_term only)
    attached: float = 0.0                             # share of sequences with an attached target (module doc)


def split_of_seed(seed: int) -> str:
    if seed in TRAIN_SEEDS:
        return "train"
    if seed in TEST_SEEDS:
        return "test"
    raise InputError(f"seed {seed}: outside both splits; use {TRAIN_SEEDS.start}..{TRAIN_SEEDS.stop - 1} (train) "
                     f"or {TEST_SEEDS.start}..{TEST_SEEDS.stop - 1} (test)")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def source_paths(split: str) -> list[Path]:
    """The existing image files of one split (sklearn's are skipped when it is not installed)."""
    dirs = {"skimage": (_package_dir("skimage") or Path("/nonexistent")) / "data",
            "sklearn": (_package_dir("sklearn") or Path("/nonexistent")) / "datasets" / "images"}
    paths = []
    for item in SOURCE_IMAGES[split]:
        pkg, fname = item.split(":")
        p = dirs[pkg] / fname
        if p.is_file():
            paths.append(p)
    if len(paths) < 2:
        raise InputError("bench.synth: scikit-image's sample images were not found; install the data extra "
                         "(pip install scikit-image) to generate sequences")
    return paths


_IMAGE_CACHE: dict[Path, np.ndarray] = {}


def _load(path: Path) -> np.ndarray:
    import cv2

    if path not in _IMAGE_CACHE:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{path}: cannot be read as an image")
        _IMAGE_CACHE[path] = img
    return _IMAGE_CACHE[path]


def _random_crop(rng: np.random.Generator, img: np.ndarray, w: int, h: int) -> np.ndarray:
    """A random crop of ``img`` with aspect w:h, resized to (h, w)."""
    import cv2

    ih, iw = img.shape[:2]
    s = min(iw / w, ih / h) * rng.uniform(0.5, 1.0)
    cw, ch = max(int(w * s), 8), max(int(h * s), 8)
    x0, y0 = rng.integers(0, iw - cw + 1), rng.integers(0, ih - ch + 1)
    return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)


@dataclass
class _Mover:
    """A patch moving over the frame: centre (px), velocity (px/frame), size (px), angle (deg)."""

    patch: np.ndarray
    cx: float
    cy: float
    vx: float
    vy: float
    base_w: float
    base_h: float
    scale: float = 1.0
    angle: float = 0.0
    # Attached targets only (None otherwise): the target's window (x0, y0, x1, y1) in patch pixels (the
    # rest of the patch is its body) and the patch's own alpha (HxW float32; None = opaque).
    window: tuple[float, float, float, float] | None = None
    alpha: np.ndarray | None = None

    def step(self, rng, cfg: SynthConfig, w_img: int, h_img: int, allow_scale: bool = True) -> None:
        self.vx = 0.9 * self.vx + rng.normal(0, cfg.max_speed * 0.25)
        self.vy = 0.9 * self.vy + rng.normal(0, cfg.max_speed * 0.25)
        speed = math.hypot(self.vx, self.vy)
        if speed > cfg.max_speed:
            self.vx, self.vy = self.vx * cfg.max_speed / speed, self.vy * cfg.max_speed / speed
        self.cx, self.cy = self.cx + self.vx, self.cy + self.vy
        if not 0.1 * w_img <= self.cx <= 0.9 * w_img:          # bounce, keeping the centre in the frame
            self.vx = -self.vx
            self.cx = float(np.clip(self.cx, 0.1 * w_img, 0.9 * w_img))
        if not 0.1 * h_img <= self.cy <= 0.9 * h_img:
            self.vy = -self.vy
            self.cy = float(np.clip(self.cy, 0.1 * h_img, 0.9 * h_img))
        if allow_scale:
            lo, hi = cfg.scale_range
            self.scale = float(np.clip(self.scale * math.exp(rng.normal(0, 0.02)), lo, hi))
            self.angle = float(np.clip(self.angle + rng.normal(0, 0.8), -cfg.max_rotation_deg,
                                       cfg.max_rotation_deg))

    def matrix(self) -> np.ndarray:
        """2x3 affine map from patch pixels to frame pixels (scale about the patch centre, rotate, move).
        With a ``window``, base_w x base_h is the window's display size and its centre is placed at (cx, cy)."""
        ph, pw = self.patch.shape[:2]
        if self.window is None:
            sx, sy = self.base_w * self.scale / pw, self.base_h * self.scale / ph
        else:
            x0, y0, x1, y1 = self.window
            sx, sy = self.base_w * self.scale / (x1 - x0), self.base_h * self.scale / (y1 - y0)
        a = math.radians(self.angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.diag([sx, sy])
        centre = np.array([pw / 2, ph / 2]) if self.window is None else \
            np.array([(self.window[0] + self.window[2]) / 2, (self.window[1] + self.window[3]) / 2])
        t = np.array([self.cx, self.cy]) - rot @ centre
        return np.hstack([rot, t[:, None]])

    def box_xywh(self, w_img: int, h_img: int) -> np.ndarray:
        """Exact axis-aligned box of the transformed patch rectangle (the target's window when it has
        one), clipped to the frame."""
        ph, pw = self.patch.shape[:2]
        x0, y0, x1, y1 = (0, 0, pw, ph) if self.window is None else self.window
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64)
        pts = corners @ self.matrix().T
        x1, y1 = max(pts[:, 0].min(), 0.0), max(pts[:, 1].min(), 0.0)
        x2, y2 = min(pts[:, 0].max(), float(w_img)), min(pts[:, 1].max(), float(h_img))
        return np.array([x1, y1, x2 - x1, y2 - y1])

    def paste(self, canvas: np.ndarray) -> np.ndarray:
        """Composite onto float32 canvas (H,W,3); returns the coverage mask (H,W) float32 0..1 (with a
        ``window``: the window's coverage, not the body's)."""
        import cv2

        h, w = canvas.shape[:2]
        m = self.matrix()
        warped = cv2.warpAffine(self.patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        own = np.ones(self.patch.shape[:2], np.float32) if self.alpha is None else self.alpha
        alpha = cv2.warpAffine(own, m, (w, h), flags=cv2.INTER_LINEAR)
        canvas *= 1 - alpha[..., None]
        canvas += warped.astype(np.float32) * alpha[..., None]
        if self.window is None:
            return alpha
        x0, y0, x1, y1 = (int(round(v)) for v in self.window)
        inside = np.zeros(self.patch.shape[:2], np.float32)
        inside[y0:y1, x0:x1] = 1.0
        return cv2.warpAffine(inside, m, (w, h), flags=cv2.INTER_LINEAR) * alpha


def _attach_body(rng: np.random.Generator, target: _Mover, img: np.ndarray) -> None:
    """Turn ``target`` into a window of a larger body patch cut from ``img`` (module doc, attached)."""
    ph, pw = target.patch.shape[:2]
    ext = [rng.uniform(0.25, 1.5) if rng.random() < 0.5 else 0.0 for _ in range(4)]   # left, top, right, bottom
    if not any(ext):
        ext[int(rng.integers(4))] = rng.uniform(0.25, 1.5)
    left, top = int(round(ext[0] * pw)), int(round(ext[1] * ph))
    bw, bh = left + pw + int(round(ext[2] * pw)), top + ph + int(round(ext[3] * ph))
    body = _random_crop(rng, img, bw, bh)
    if rng.random() < 0.5:
        # another crop of the same photograph, the target blended in through a soft-edged ellipse
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        r = np.hypot((xx + 0.5 - pw / 2) / (pw / 2), (yy + 0.5 - ph / 2) / (ph / 2))
        soft = float(rng.uniform(0.1, 0.3))                 # edge width, fraction of the radius
        a = np.clip((1.0 - r) / soft + 0.5, 0.0, 1.0)[..., None]
        region = body[top:top + ph, left:left + pw].astype(np.float32)
        body[top:top + ph, left:left + pw] = np.clip(
            region * (1 - a) + target.patch.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    target.patch = body
    target.window = (float(left), float(top), float(left + pw), float(top + ph))


def _sequence_movers(rng, cfg: SynthConfig, paths: list[Path], attach_rng=None):
    w_img, h_img = cfg.width, cfg.height
    order = rng.permutation(len(paths))
    bg_img, obj_img = _load(paths[order[0]]), _load(paths[order[1]])
    background = _random_crop(rng, bg_img, w_img, h_img).astype(np.float32)
    side = min(w_img, h_img) * rng.uniform(*cfg.target_size)
    aspect = math.exp(rng.uniform(-0.5, 0.5))
    tw, th = side * math.sqrt(aspect), side / math.sqrt(aspect)
    psize = (max(int(tw * 1.5), 8), max(int(th * 1.5), 8))     # patch resolution a bit above its display size

    def mover(img, w, h, x, y):
        return _Mover(_random_crop(rng, img, *psize), x, y, rng.normal(0, 2), rng.normal(0, 2), w, h)

    target = mover(obj_img, tw, th, rng.uniform(0.3, 0.7) * w_img, rng.uniform(0.3, 0.7) * h_img)
    if attach_rng is not None and attach_rng.random() < cfg.attached:
        _attach_body(attach_rng, target, obj_img)       # its own stream: the rest of the scene is unchanged
    distractors = [mover(obj_img, tw * rng.uniform(0.8, 1.2), th * rng.uniform(0.8, 1.2),
                         rng.uniform(0.1, 0.9) * w_img, rng.uniform(0.1, 0.9) * h_img) for _ in range(cfg.distractors)]
    occluder = None
    if cfg.occlusion:
        occ_img = _load(paths[order[2 % len(paths)]])
        # Wider and taller than the target can get, so mid-sweep it hides the target completely.
        occ_w = math.hypot(tw, th) * cfg.scale_range[1] * 1.1
        occluder = _Mover(_random_crop(rng, occ_img, 32, 64), 0, 0, 0, 0, occ_w, max(h_img * 0.6, occ_w))
    return background, target, distractors, occluder


@dataclass(frozen=True)
class SynthFrame:
    """One generated frame. frame: HxWx3 uint8 BGR. box_xywh: (4,) float64 exact target box (NaN while
    the target is out of view). absent: visible_fraction < ABSENT_VISIBLE_FRACTION. target_mask: HxW
    float32 0..1, the target's coverage before occlusion. visible_fraction: share of that coverage not
    hidden by occluders. event: the long-term event under way ("out-of-view", "occlusion") or "".
    distractor_xywh: (D, 4) float64 boxes of the distractors (cut from the target's photograph), clipped
    to the frame like ``box_xywh`` (width or height <= 0 when one is out of view); drawn under the target.
    Training uses them for distractor negatives (``train.pairs.PairConfig.neg_distractor``)."""

    frame: np.ndarray
    box_xywh: np.ndarray
    absent: bool
    target_mask: np.ndarray
    visible_fraction: float
    event: str = ""
    distractor_xywh: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


OUT_OF_VIEW, OCCLUSION = "out-of-view", "occlusion"
MIN_VISIBLE_FRAMES = 5            # the target is seen at least this long between events and at the end


@dataclass(frozen=True)
class LongTermEvent:
    """Frames ``start .. stop - 1`` without the target; it reappears elsewhere on frame ``stop``."""

    start: int
    stop: int
    kind: str


def long_term_events(seed: int, config: SynthConfig) -> list[LongTermEvent]:
    """The absence schedule of a long-term sequence: ``config.absences`` events, one in each equal slice
    of the frames after a warm-up (a tenth of the sequence, at least 10 frames), kinds alternating from a
    random first one. InputError when the sequence is too short for them."""
    if not config.long_term:
        return []
    rng = np.random.default_rng([seed, 1])
    lo, hi = config.absence_frames
    n, k = config.frames, config.absences
    warm = max(10, n // 10)
    span = (n - warm - MIN_VISIBLE_FRAMES) // max(k, 1)
    if k < 1 or lo < 1 or hi < lo or span < lo + MIN_VISIBLE_FRAMES:
        need = warm + MIN_VISIBLE_FRAMES + k * (lo + MIN_VISIBLE_FRAMES)
        raise InputError(f"long-term sequences of {n} frames cannot hold {k} absence(s) of {lo}..{hi} frames; "
                         f"use at least {need} frames (e.g. --frames {max(need, 100)})")
    first = int(rng.integers(2))
    events = []
    for i in range(k):
        length = int(rng.integers(lo, min(hi, span - MIN_VISIBLE_FRAMES) + 1))
        start = warm + i * span + int(rng.integers(0, span - length - MIN_VISIBLE_FRAMES + 1))
        events.append(LongTermEvent(start, start + length, (OUT_OF_VIEW, OCCLUSION)[(first + i) % 2]))
    return events


def _occluder_over(rng, target: "_Mover", paths: list[Path], w_img: int, h_img: int) -> "_Mover":
    """A static patch from the scene's third photograph covering the target's whole rotated extent."""
    x, y, w, h = target.box_xywh(10 * w_img, 10 * h_img)       # unclipped extent (the frame is no limit)
    side = math.hypot(w, h) * 1.15
    img = _load(paths[int(rng.integers(len(paths)))])
    return _Mover(_random_crop(rng, img, 32, 32), x + w / 2, y + h / 2, 0, 0, side, side)


def _reappear(rng, target: "_Mover", occluders: list["_Mover"], w_img: int, h_img: int) -> None:
    """Move the target to a new place: far from where it was seen last and not under an occluder (the
    farthest of 40 candidates when none is both)."""
    short = min(w_img, h_img)
    old = np.array([target.cx, target.cy])
    best, best_d = None, -1.0
    for _ in range(40):
        c = np.array([rng.uniform(0.15, 0.85) * w_img, rng.uniform(0.15, 0.85) * h_img])
        d = float(np.hypot(*(c - old)))
        clear = all(np.hypot(c[0] - o.cx, c[1] - o.cy) > (o.base_w + math.hypot(target.base_w, target.base_h)
                                                          * target.scale) / 2 for o in occluders)
        if clear and d >= short / 3:
            best = c
            break
        if d > best_d:
            best, best_d = c, d
    target.cx, target.cy = float(best[0]), float(best[1])
    target.vx, target.vy = rng.normal(0, 2), rng.normal(0, 2)


def iter_frames(seed: int, config: SynthConfig = SynthConfig()):
    """Yield a ``SynthFrame`` for each frame of sequence ``seed`` (deterministic for a seed and config)."""
    import cv2

    rng = np.random.default_rng(seed)
    paths = source_paths(split_of_seed(seed))
    w_img, h_img, n = config.width, config.height, config.frames
    attach_rng = np.random.default_rng([seed, 3]) if config.attached > 0 else None
    background, target, distractors, occluder = _sequence_movers(rng, config, paths, attach_rng)
    # The occluder sweeps horizontally across the target's path during one window of the sequence.
    occ_start = int(rng.integers(n // 4, max(n // 2, n // 4 + 1))) if occluder else n
    occ_len = max(n // 5, 3)
    gain_end = rng.uniform(0.6, 1.4) if config.lighting else 1.0
    blur_frames = set(rng.choice(n, size=max(n // 8, 1), replace=False).tolist()) if config.blur else set()
    events = {e.start: e for e in long_term_events(seed, config)}
    lt_rng = np.random.default_rng([seed, 2])                   # the events' own stream
    static: list[_Mover] = []                                   # occluders left in the scene
    event = None
    for i in range(n):
        if event is not None and i == event.stop:
            _reappear(lt_rng, target, static, w_img, h_img)
            event = None
        if i in events:
            event = events[i]
            if event.kind == OCCLUSION:
                static.append(_occluder_over(lt_rng, target, paths, w_img, h_img))
        if i:
            if event is None:                                   # it waits, unseen, during an event
                target.step(rng, config, w_img, h_img)
            for d in distractors:
                d.step(rng, config, w_img, h_img, allow_scale=False)
        canvas = background.copy()
        for d in distractors:
            d.paste(canvas)
        out_of_view = event is not None and event.kind == OUT_OF_VIEW
        mask = np.zeros((h_img, w_img), np.float32) if out_of_view else target.paste(canvas)
        uncovered = np.ones_like(mask)                          # 1 where no static occluder covers
        for o in static:
            uncovered *= 1 - o.paste(canvas)
        visible = float((mask * uncovered).sum())
        if occluder is not None and occ_start <= i < occ_start + occ_len:
            t = (i - occ_start + 0.5) / occ_len               # 0..1 across the window
            occluder.cx = target.cx + (t - 0.5) * 2.5 * occluder.base_w
            occluder.cy = target.cy
            occ_mask = occluder.paste(canvas)
            visible = float((mask * uncovered * (1 - occ_mask)).sum())
        gain = 1.0 + (gain_end - 1.0) * i / max(n - 1, 1)
        canvas *= gain
        if i in blur_frames:
            k = int(rng.integers(3, 8)) | 1
            canvas = cv2.GaussianBlur(canvas, (k, k), 0)
        frame = np.clip(canvas, 0, 255).astype(np.uint8)
        area = float(mask.sum())
        fraction = visible / area if area > 0 else 0.0
        box = np.full(4, np.nan) if out_of_view else target.box_xywh(w_img, h_img)   # no box out of view
        distractor_boxes = np.array([d.box_xywh(w_img, h_img) for d in distractors]).reshape(-1, 4)
        yield SynthFrame(frame, box, fraction < ABSENT_VISIBLE_FRACTION, mask, fraction,
                         event.kind if event is not None else "", distractor_boxes)


def generate(seed: int, config: SynthConfig = SynthConfig(), name: str | None = None):
    """One in-memory ``bench.sequences.Sequence`` (frames are uint8 arrays)."""
    from bench.sequences import Sequence

    frames, boxes, absent, distractors = [], [], [], []
    for item in iter_frames(seed, config):
        frames.append(item.frame)
        boxes.append(item.box_xywh)
        absent.append(item.absent)
        distractors.append(item.distractor_xywh)
    # distractor_xywh: (T, D, 4) per-frame distractor boxes (see SynthFrame), for distractor negatives
    return Sequence(name=name or f"synth-{seed:07d}", frames=frames, gt_xywh=np.array(boxes),
                    absent=np.array(absent, dtype=bool), dataset="synth",
                    attributes={"seed": seed, "split": split_of_seed(seed), "image_wh": (config.width, config.height),
                                "distractor_xywh": np.stack(distractors)})


def write_sequence(seed: int, folder: str | Path, config: SynthConfig = SynthConfig(), ext: str = ".jpg") -> Path:
    """Write ``folder/img/00000001.jpg ...``, ``groundtruth.txt`` (x,y,w,h per line) and ``absent.txt``.

    The layout is the ``folder`` format of ``bench.sequences``. Files are written to a temporary folder,
    fsynced and renamed, so an interrupted run leaves no half sequence.
    """
    import cv2

    from runtime.atomic import replace_dir

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "img").mkdir(parents=True)
    gt_lines, absent_lines = [], []
    for i, item in enumerate(iter_frames(seed, config)):
        cv2.imwrite(str(tmp / "img" / f"{i + 1:08d}{ext}"), item.frame)
        gt_lines.append(",".join(f"{v:.4f}" for v in item.box_xywh) + "\n")
        absent_lines.append(f"{int(item.absent)}\n")
    (tmp / "groundtruth.txt").write_text("".join(gt_lines))
    (tmp / "absent.txt").write_text("".join(absent_lines))
    replace_dir(tmp, folder)
    return folder


def write_dataset(root: str | Path, seeds, config: SynthConfig = SynthConfig()) -> list[Path]:
    """One folder per seed, named ``synth-<seed>``, under ``root`` (the ``folder`` dataset format), with
    the completion manifest (``write_set``)."""
    seeds = list(seeds)
    write_set(root, seeds, config)
    return [Path(root) / sequence_name(s) for s in seeds]


# ------------------------------------------------------------------ generated sets and their manifest

SET_MANIFEST = "synth.json"
SET_FORMAT = "siamtrack-synth/1"
_SEQ_NAME = re.compile(r"synth-\d{7}$")


def sequence_name(seed: int) -> str:
    return f"synth-{seed:07d}"


_LONG_TERM_FIELDS = ("long_term", "absences", "absence_frames")


def set_request(seeds, config: SynthConfig) -> dict:
    """What a set is made of; equal requests give byte-identical sets."""
    options = dataclasses.asdict(config)
    if not config.long_term:   # a short-term set's manifest stays as it was before long-term sets existed
        for key in _LONG_TERM_FIELDS:
            del options[key]
    if not config.attached:    # likewise before attached targets existed
        del options["attached"]
    return {"format": SET_FORMAT, "seeds": [int(s) for s in seeds], "config": json.loads(json.dumps(options))}


def write_set(root: str | Path, seeds, config: SynthConfig = SynthConfig(), progress=None) -> dict:
    """Write sequences ``seeds`` under ``root`` and, last, the manifest ``synth.json`` that says the set is
    complete. Generated sequences of ``root`` that are not in ``seeds`` are removed (the folder reader
    would read them too). Returns the manifest. progress: optional wrapper for the seed iterable (tqdm)."""
    from runtime.atomic import write_text

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / SET_MANIFEST).unlink(missing_ok=True)    # from here until the end the set is incomplete
    seeds = [int(s) for s in seeds]
    wanted = {sequence_name(s) for s in seeds}
    for old in root.iterdir():
        stray = old.name.startswith(".synth-") and ".tmp" in old.name     # a killed run's temp folder
        if old.is_dir() and (stray or (_SEQ_NAME.match(old.name) and old.name not in wanted)):
            shutil.rmtree(old)
    for s in (progress(seeds) if progress else seeds):
        write_sequence(s, root / sequence_name(s), config)
    manifest = dict(set_request(seeds, config), sequences=sorted(wanted))
    write_text(root / SET_MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def check_set(root: str | Path) -> dict | None:
    """Verify a generated set before it is used: its manifest exists and every sequence it lists is
    there with all its frames, and no other generated sequence is. Returns the manifest; None when
    ``root`` holds no generated sequences (a user's own folder dataset). InputError otherwise."""
    root = Path(root)
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and _SEQ_NAME.match(p.name)) \
        if root.is_dir() else []
    manifest_path = root / SET_MANIFEST
    redo = (f"regenerate it: siamtrack synth --out {root} --count N ... (or delete the folder; build.sh "
            "regenerates it)")
    if not manifest_path.is_file():
        if not present:
            return None
        raise InputError(f"{root}: an incomplete generated set ({len(present)} sequence(s) and no {SET_MANIFEST}, "
                         f"which is written last): its generation was interrupted; {redo}")
    try:
        manifest = json.loads(manifest_path.read_text())
        listed, frames = list(manifest["sequences"]), int(manifest["config"]["frames"])
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{manifest_path}: unreadable; {redo}") from None
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    short = [n for n in listed if n in present and _frame_count(root / n) != frames]
    if missing or extra or short:
        detail = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                       f"not in the manifest: {', '.join(extra)}" if extra else "",
                                       f"wrong frame count: {', '.join(short)}" if short else "") if x)
        raise InputError(f"{root}: the generated set does not match its {SET_MANIFEST} ({detail}); {redo}")
    return manifest


def set_is_current(root: str | Path, seeds, config: SynthConfig) -> bool:
    """True when ``root`` holds exactly the complete set ``write_set(root, seeds, config)`` would write."""
    try:
        manifest = check_set(root)
    except InputError:
        return False
    return manifest is not None and {k: manifest.get(k) for k in ("format", "seeds", "config")} == \
        set_request(seeds, config)


def set_fingerprint(root: str | Path) -> str | None:
    """sha256 of a complete generated set's manifest (None when ``root`` is not one)."""
    path = Path(root) / SET_MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _frame_count(folder: Path) -> int:
    img = folder / "img"
    frames = sum(1 for p in img.iterdir() if p.is_file()) if img.is_dir() else 0
    gt = folder / "groundtruth.txt"
    lines = len(gt.read_text().splitlines()) if gt.is_file() else -1
    return frames if frames == lines else -1


EPILOG = """\
examples:
  # 5 test sequences of 60 frames at 320x240 into a folder-format dataset
  siamtrack synth --out artifacts/synth-test --count 5
  # training sequences (seeds 0..), larger frames
  siamtrack synth --out artifacts/synth-train --split train --count 200 --size 640x480 --frames 100
  # long-term test sequences: the target leaves the view or hides behind an occluder, twice, and comes
  # back elsewhere (for siamtrack accuracy --dataset ... and siamtrack longterm-report)
  siamtrack synth --out artifacts/synth-lt --count 20 --frames 150 --long-term

Train seeds are 0..999999, test seeds 1000000..1999999; the two use disjoint source photographs.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="siamtrack synth", description="Write seeded synthetic tracking sequences "
                                "(folder + groundtruth.txt) from real photographs.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset folder to write (one sub-folder per sequence)")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--first-seed", type=int, help="default: the first seed of the split")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--size", default="320x240", help="WxH")
    p.add_argument("--long-term", action="store_true",
                   help="long-term sequences: the target leaves the view or is fully occluded --absences times "
                        "and reappears elsewhere (NaN ground truth while out of view, absent.txt flags)")
    p.add_argument("--absences", type=int, default=2, help="absences per long-term sequence (default 2)")
    p.add_argument("--attached", type=float, default=0.0,
                   help="fraction (0..1) of sequences whose target is a sub-region of a larger pasted body "
                        "(texture continues beyond the box on some sides, like a head on a body); the box "
                        "stays the sub-region (default 0: the classic pasted rectangles)")
    p.add_argument("--only-stale", action="store_true",
                   help="do nothing (and say \"up to date\") when --out already holds this complete set")
    args = p.parse_args(argv)
    if args.count < 1:
        raise InputError(f"--count {args.count}: nothing to generate; pass the number of sequences, 1 or more "
                         "(e.g. --count 5)")
    if args.frames < 2:
        raise InputError(f"--frames {args.frames}: a sequence needs at least 2 frames (one to start on, one to "
                         "track), e.g. --frames 60")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {args.size!r}: expected WxH, e.g. 320x240") from None
    if w < 32 or h < 32:
        raise InputError(f"--size {args.size}: frames must be at least 32x32 pixels")
    first = args.first_seed if args.first_seed is not None else (TRAIN_SEEDS if args.split == "train" else TEST_SEEDS).start
    seeds = range(first, first + args.count)
    for s in (seeds.start, seeds.stop - 1):
        if split_of_seed(s) != args.split:
            raise InputError(f"--first-seed {first} with --count {args.count} leaves the {args.split} seed range")
    from tqdm import tqdm

    if not 0.0 <= args.attached <= 1.0:
        raise InputError(f"--attached {args.attached}: give a fraction in [0, 1], e.g. 0.5")
    cfg = SynthConfig(width=w, height=h, frames=args.frames, long_term=args.long_term, absences=args.absences,
                      attached=args.attached)
    long_term_events(first, cfg)          # a sequence too short for its absences fails before writing
    root = Path(args.out)
    if args.only_stale and set_is_current(root, seeds, cfg):
        print(f"up to date: {root} holds these {args.count} generated sequences ({SET_MANIFEST} checked)")
        return 0
    write_set(root, seeds, cfg, progress=lambda it: tqdm(it, desc="synth", unit="seq"))
    print(f"wrote {args.count} sequences to {root} (complete: {SET_MANIFEST})")
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack synth"))
