"""Training pairs from annotated sequences, the way pysot builds them from its "crop511" datasets.

A pair is a template crop (127) of the target in one frame and a search crop (255) of the same target
in a frame at most ``frame_range`` frames away (a positive pair), or of an unrelated target (a negative
pair, probability ``neg``). Both go through pysot's augmentation; the search crop's +-64 px shift is
the spatial-aware sampling of the SiamRPN++ paper.

Distractor negatives (``neg_distractor``, off by default; DaSiamRPN's semantic negatives): a share of
the negative pairs is centred on a *distractor* of the template's own sequence instead of an unrelated
target: an object cut from the same photograph, in a frame near the template's, so the pair differs in
identity but not in look or scene. Only sequences that record distractor boxes (``bench.synth``'s
``distractor_xywh``) have them; other negatives stay pysot's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from runtime.contract import TrackerConfig
from runtime.errors import InputError
from train.augment import SEARCH_AUG, TEMPLATE_AUG, AugmentConfig, augment
from train.targets import AnchorTargets, assign_targets, training_anchors

CROP_SIZE = 511  # pysot pre-crops every annotated frame to 511x511 around the target ("crop511")


@dataclass(frozen=True)
class PairConfig:
    """Sampling and augmentation settings (pysot DATASET.* / TRAIN.* names in comments)."""

    frame_range: int = 100          # DATASET.VID.FRAME_RANGE
    neg: float = 0.2                # DATASET.NEG
    gray: float = 0.0               # DATASET.GRAY
    neg_distractor: float = 0.0     # share of negative pairs centred on a distractor (not in pysot)
    template_aug: AugmentConfig = TEMPLATE_AUG
    search_aug: AugmentConfig = SEARCH_AUG
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass(frozen=True)
class Pair:
    """template (3, E, E) float32 BGR; search (3, X, X) float32 BGR; box_xyxy (4,) target in search
    crop pixels; targets: the anchor labels; negative: template and search show different objects."""

    template: np.ndarray
    search: np.ndarray
    box_xyxy: np.ndarray
    targets: AnchorTargets
    negative: bool


def usable_frames(gt_xywh: np.ndarray, absent: np.ndarray | None) -> np.ndarray:
    """Indices of frames with a finite box of positive size that is not flagged absent."""
    ok = np.isfinite(gt_xywh).all(axis=1) & (gt_xywh[:, 2] > 0) & (gt_xywh[:, 3] > 0)
    if absent is not None:
        ok &= ~np.asarray(absent, dtype=bool)
    return np.flatnonzero(ok)


def crop511(frame: np.ndarray, box_xywh: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """pysot's crop_like_SiamFC search patch: side s_z * 511 / 127 around the box centre, mean padded.

    The target ends up centred at pixel 255 with size (w, h) * 127 / s_z.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    cx, cy = x + w / 2, y + h / 2
    context = config.context_amount * (w + h)
    s_z = np.sqrt((w + context) * (h + context))
    s_x = s_z * CROP_SIZE / config.exemplar_size
    a = (CROP_SIZE - 1) / s_x
    x1, y1 = cx - s_x / 2, cy - s_x / 2
    mapping = np.array([[a, 0, -a * x1], [0, a, -a * y1]], dtype=np.float64)
    mean = frame.mean(axis=(0, 1))
    return cv2.warpAffine(frame, mapping, (CROP_SIZE, CROP_SIZE), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(float(m) for m in mean))


def centred_box(box_xywh: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """The target's box in its crop511 patch (pysot ``_get_bbox``), corner form."""
    w, h = float(box_xywh[2]), float(box_xywh[3])
    context = config.context_amount * (w + h)
    scale = config.exemplar_size / np.sqrt((w + context) * (h + context))
    w, h = w * scale, h * scale
    c = CROP_SIZE // 2
    return np.array([c - w / 2, c - h / 2, c + w / 2, c + h / 2])


class PairSampler:
    """Draws training pairs from a list of sequences (``bench.sequences.Sequence``-like: ``frame(i)``,
    ``gt_xywh`` (T, 4), ``absent`` (T,) and ``name``)."""

    def __init__(self, sequences, config: PairConfig = PairConfig()):
        self.config = config
        self.sequences = []
        self.frames = []
        for seq in sequences:
            idx = usable_frames(np.asarray(seq.gt_xywh, dtype=np.float64), getattr(seq, "absent", None))
            if len(idx) >= 2:
                self.sequences.append(seq)
                self.frames.append(idx)
        if not self.sequences:
            raise InputError("no usable training pairs: every sequence has fewer than two frames with a visible "
                             "box of positive size; check the ground truth files (x,y,w,h per line)")
        self.anchors = training_anchors(config.tracker)

    def _patch(self, seq_index: int, frame_index: int, box=None) -> tuple[np.ndarray, np.ndarray]:
        """crop511 patch of a frame around its target's box (or around ``box``) and that box in it."""
        seq = self.sequences[seq_index]
        box = np.asarray(seq.gt_xywh[frame_index] if box is None else box, dtype=np.float64)
        return crop511(seq.frame(int(frame_index)), box, self.config.tracker), centred_box(box, self.config.tracker)

    def _distractor(self, rng: np.random.Generator, s: int, near: np.ndarray):
        """(frame, box) of a visible distractor of sequence ``s`` in one of the frames ``near``, or None
        when the sequence records none there."""
        boxes = getattr(self.sequences[s], "attributes", {}).get("distractor_xywh")   # Sequence-likes may have none
        if boxes is None or len(boxes) == 0:
            return None
        boxes = np.asarray(boxes, dtype=np.float64)                    # (T, D, 4)
        # at least 8 px each way inside the frame: a sliver at the edge is no object to confuse
        frames, which = np.nonzero((boxes[near, :, 2] >= 8) & (boxes[near, :, 3] >= 8))
        if len(frames) == 0:
            return None
        k = int(rng.integers(len(frames)))
        frame = int(near[frames[k]])
        return frame, boxes[frame, which[k]]

    def sample(self, rng: np.random.Generator) -> Pair:
        cfg = self.config
        s = int(rng.integers(len(self.sequences)))
        frames = self.frames[s]
        t = int(rng.integers(len(frames)))
        template_frame = frames[t]
        negative = bool(cfg.neg and cfg.neg > rng.random())
        gray = bool(cfg.gray and cfg.gray > rng.random())
        near = frames[np.abs(frames - template_frame) <= cfg.frame_range]
        # drawn only when enabled, so that runs without it keep pysot's random stream (and their losses)
        distractor = (self._distractor(rng, s, near) if negative and cfg.neg_distractor
                      and cfg.neg_distractor > rng.random() else None)
        if distractor is not None:
            s2, (search_frame, search_box) = s, distractor
        elif negative:
            s2, search_box = int(rng.integers(len(self.sequences))), None
            search_frame = int(self.frames[s2][rng.integers(len(self.frames[s2]))])
        else:
            s2, search_box = s, None
            search_frame = int(near[rng.integers(len(near))])
        z_img, z_box = self._patch(s, template_frame)
        x_img, x_box = self._patch(s2, search_frame, search_box)
        tracker = cfg.tracker
        template, _ = augment(z_img, z_box, tracker.exemplar_size, cfg.template_aug, rng, gray=gray)
        search, box = augment(x_img, x_box, tracker.instance_size, cfg.search_aug, rng, gray=gray)
        targets = assign_targets(box, tracker, rng, negative=negative, anchors=self.anchors)
        return Pair(template.transpose(2, 0, 1).copy(), search.transpose(2, 0, 1).copy(), box, targets, negative)

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        """A stacked batch: template (B,3,E,E), search (B,3,X,X), label_cls (B,A,S,S) int64,
        label_loc (B,4,A,S,S), label_loc_weight (B,A,S,S), box_xyxy (B,4), negative (B,)."""
        pairs = [self.sample(rng) for _ in range(size)]
        return {
            "template": np.stack([p.template for p in pairs]),
            "search": np.stack([p.search for p in pairs]),
            "label_cls": np.stack([p.targets.cls for p in pairs]),
            "label_loc": np.stack([p.targets.delta for p in pairs]),
            "label_loc_weight": np.stack([p.targets.delta_weight for p in pairs]),
            "box_xyxy": np.stack([p.box_xyxy for p in pairs]),
            "negative": np.array([p.negative for p in pairs]),
        }
