"""Tracking metrics, numerically identical to pysot's toolkit and the GOT-10k toolkit. Pure numpy.

Boxes are ``(T, 4)`` float64 arrays of ``[x, y, w, h]`` in 0-based frame pixels. A ground-truth row that
is NaN, or has ``w <= 0`` or ``h <= 0``, is an *empty* frame (target not annotated / not visible).

One-pass evaluation (OTB, UAV123, LaSOT, NFS; pysot ``toolkit/utils/statistics.py``):

- IoU: intersection from ``max(x1)`` to ``min(x + w)`` (no ``-1``), union ``w1*h1 + w2*h2 - inter``,
  clipped to [0, 1].
- Success curve: thresholds ``np.arange(0, 1.05, 0.05)`` (21 values); empty ground truth counts as IoU -1,
  i.e. a miss at every threshold; ``success[t] = #(IoU > t) / n_frame`` (**strict** ``>``). AUC is the
  mean of the 21 values. Dataset score = mean over sequences.
- Precision: centres ``x + (w-1)/2``, ``y + (h-1)/2``; ``prec[t] = #(dist <= t) / n_frame`` (``<=``) for
  t = 0..50 px; a frame whose ground-truth centre has a coordinate ``<= 0`` (this includes NaN rows, as
  in pysot where NaN compares False) gets distance -1, i.e. a **hit** at every threshold (pysot's quirk,
  kept so the numbers match). Reported precision = ``prec[20]``.
- Normalised precision: ``norm_prec_pysot`` = pysot's curve (centres divided by the ground truth's
  ``w + 1e-16``, ``h + 1e-16``) at threshold index 20 (0.20) of ``arange(0, 51) / 100``. No "LaSOT
  protocol" average is given: the mean of *this* curve is neither pysot's number nor the LaSOT / GOT-10k
  toolkits' (they divide by ``max(1, w)``, replace the first box by the ground truth and drop NaN rows
  from the denominator), so a column with that label would be a third, unpublished number.
- Absent frames, **LaSOT only** (pysot sets ``video.absent`` for LaSOT alone): both trajectories keep only
  frames where the target is present, but ``n_frame`` stays the full sequence length (so absent frames
  count as misses for success and precision). Every other dataset is scored on all frames: a NaN
  ground-truth row (UAV123) is a miss for success and a hit for precision, as in pysot.
  ``pysot_absent(dataset, absent)`` applies that rule.

GOT-10k (``got10k.experiments.got10k``): IoU with both boxes clipped to the image, first frame skipped,
only frames with ``cover > 0`` (visible) kept; AO = mean IoU, SR_t = fraction with IoU > t. The dataset
figure pools all frames of all sequences (frame-weighted), as that toolkit does.

VOT reset protocol (pysot ``tools/test.py`` + ``toolkit/evaluation/ar_benchmark.py``): see
``vot_accuracy_robustness``; the run loop that produces the codes lives in ``bench.accuracy``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.protocol import box_to_vot_polygon, vot_region_to_box

SUCCESS_THRESHOLDS = np.arange(0, 1.05, 0.05)          # 21 IoU thresholds, pysot
PRECISION_THRESHOLDS = np.arange(0, 51, 1).astype(float) # 0..50 px, pysot
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, 1) / 100    # 0..0.50, pysot / LaSOT
PRECISION_INDEX = 20                                     # 20 px
NORM_PRECISION_INDEX = 20                                # 0.20
VOT_BURNIN = 10                                          # frames ignored by accuracy after each init
VOT_SKIP = 5                                             # frames skipped after a failure before re-init

# VOT result codes (pysot's one-number lines)
VOT_INIT, VOT_FAILURE, VOT_SKIPPED = 1, 2, 0


def _as_boxes(a, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must be (T, 4) x,y,w,h boxes, got shape {arr.shape}")
    return arr


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """pysot ``overlap_ratio``: (T,4),(T,4) -> (T,) IoU in [0,1] (NaN where the union is 0 or NaN)."""
    a, b = _as_boxes(a, "boxes a"), _as_boxes(b, "boxes b")
    left = np.maximum(a[:, 0], b[:, 0])
    right = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    top = np.maximum(a[:, 1], b[:, 1])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(0, right - left) * np.maximum(0, bottom - top)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.maximum(np.minimum(1, iou), 0)


def centers_xy(boxes: np.ndarray) -> np.ndarray:
    """(T,4) xywh -> (T,2) centres with pysot's ``x + (w-1)/2`` convention."""
    boxes = _as_boxes(boxes, "boxes")
    return np.stack([boxes[:, 0] + (boxes[:, 2] - 1) / 2, boxes[:, 1] + (boxes[:, 3] - 1) / 2], axis=1)


def _present(gt: np.ndarray, pred: np.ndarray, absent: np.ndarray | None):
    if absent is None:
        return gt, pred
    keep = ~np.asarray(absent, dtype=bool)
    return gt[keep], pred[keep]


def _check_lengths(gt: np.ndarray, pred: np.ndarray) -> None:
    if len(gt) != len(pred):
        raise ValueError(f"result has {len(pred)} boxes but the ground truth has {len(gt)} frames")


def success_curve(gt_xywh, pred_xywh, absent=None) -> np.ndarray:
    """(21,) fraction of frames with IoU > t for t in SUCCESS_THRESHOLDS (pysot ``success_overlap``).

    ``absent`` (T,) bool marks frames to drop from both trajectories (LaSOT); the denominator stays T.
    """
    gt, pred = _as_boxes(gt_xywh, "ground truth"), _as_boxes(pred_xywh, "result")
    _check_lengths(gt, pred)
    n_frame = len(gt)
    gt, pred = _present(gt, pred, absent)
    iou = np.full(len(gt), -1.0)
    valid = np.sum(gt[:, 2:] > 0, axis=1) == 2           # NaN compares False: empty -> miss
    iou[valid] = iou_xywh(gt[valid], pred[valid])
    return np.array([np.sum(iou > t) for t in SUCCESS_THRESHOLDS]) / float(n_frame)


def _distance_curve(gt_c: np.ndarray, pred_c: np.ndarray, thresholds: np.ndarray, n_frame: int) -> np.ndarray:
    dist = np.full(len(gt_c), -1.0)
    valid = np.sum(gt_c > 0, axis=1) == 2                # pysot quirk: invalid centres count as hits
    dist[valid] = np.sqrt(np.sum((gt_c[valid] - pred_c[valid]) ** 2, axis=1))
    return np.array([np.sum(dist <= t) for t in thresholds]) / float(n_frame)


def precision_curve(gt_xywh, pred_xywh, absent=None) -> np.ndarray:
    """(51,) fraction of frames with centre error <= t px, t = 0..50 (pysot ``success_error``)."""
    gt, pred = _as_boxes(gt_xywh, "ground truth"), _as_boxes(pred_xywh, "result")
    _check_lengths(gt, pred)
    n_frame = len(gt)
    gt, pred = _present(gt, pred, absent)
    return _distance_curve(centers_xy(gt), centers_xy(pred), PRECISION_THRESHOLDS, n_frame)


def norm_precision_curve(gt_xywh, pred_xywh, absent=None) -> np.ndarray:
    """(51,) normalised-precision curve over t = 0.00..0.50; centres divided by ground-truth (w, h)."""
    gt, pred = _as_boxes(gt_xywh, "ground truth"), _as_boxes(pred_xywh, "result")
    _check_lengths(gt, pred)
    n_frame = len(gt)
    gt, pred = _present(gt, pred, absent)
    wh = gt[:, 2:4] + 1e-16
    return _distance_curve(centers_xy(gt) / wh, centers_xy(pred) / wh, NORM_PRECISION_THRESHOLDS, n_frame)


@dataclass(frozen=True)
class OpeScores:
    """One sequence's (or a dataset's mean) one-pass-evaluation curves and their summary numbers."""

    success: np.ndarray          # (21,)
    precision: np.ndarray        # (51,)
    norm_precision: np.ndarray   # (51,)

    @property
    def auc(self) -> float:
        return float(np.mean(self.success))

    @property
    def prec20(self) -> float:
        return float(self.precision[PRECISION_INDEX])

    @property
    def norm_prec_pysot(self) -> float:
        """pysot's LaSOT 'normalized precision': the curve at 0.20."""
        return float(self.norm_precision[NORM_PRECISION_INDEX])

    def summary(self) -> dict[str, float]:
        return {"auc": self.auc, "prec20": self.prec20, "norm_prec_pysot": self.norm_prec_pysot}


def pysot_absent(dataset: str, absent) -> np.ndarray | None:
    """The absent flags pysot's OPEBenchmark applies: a sequence's flags for LaSOT, None (score every
    frame) for any other dataset (OTB, UAV123, NFS, GOT-10k, generated/folder sequences)."""
    return absent if dataset == "lasot" else None


def ope_scores(gt_xywh, pred_xywh, absent=None) -> OpeScores:
    return OpeScores(success_curve(gt_xywh, pred_xywh, absent), precision_curve(gt_xywh, pred_xywh, absent),
                     norm_precision_curve(gt_xywh, pred_xywh, absent))


def mean_ope(scores: list[OpeScores]) -> OpeScores:
    """Dataset score: the mean of per-sequence curves (pysot averages over videos, not frames)."""
    if not scores:
        raise ValueError("no sequences to average")
    return OpeScores(np.mean([s.success for s in scores], axis=0), np.mean([s.precision for s in scores], axis=0),
                     np.mean([s.norm_precision for s in scores], axis=0))


# ---------------------------------------------------------------- GOT-10k

def got10k_ious(gt_xywh, pred_xywh, image_wh: tuple[float, float], visible=None) -> np.ndarray:
    """Per-frame IoUs as the GOT-10k toolkit counts them: frame 0 dropped, boxes clipped to the image,
    frames with ``visible == False`` (cover == 0) dropped. Returns (K,) float64.
    """
    gt, pred = _as_boxes(gt_xywh, "ground truth").copy(), _as_boxes(pred_xywh, "result").copy()
    _check_lengths(gt, pred)
    gt, pred = _clip_to_image(gt[1:], image_wh), _clip_to_image(pred[1:], image_wh)
    x1 = np.maximum(gt[:, 0], pred[:, 0])
    y1 = np.maximum(gt[:, 1], pred[:, 1])
    x2 = np.minimum(gt[:, 0] + gt[:, 2], pred[:, 0] + pred[:, 2])
    y2 = np.minimum(gt[:, 1] + gt[:, 3], pred[:, 1] + pred[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = gt[:, 2] * gt[:, 3] + pred[:, 2] * pred[:, 3] - inter
    ious = np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)
    if visible is not None:
        ious = ious[np.asarray(visible, dtype=bool)[1:]]
    return ious


def _clip_to_image(b: np.ndarray, image_wh) -> np.ndarray:
    w_img, h_img = image_wh
    b[:, 0] = np.clip(b[:, 0], 0, w_img)
    b[:, 1] = np.clip(b[:, 1], 0, h_img)
    b[:, 2] = np.clip(b[:, 2], 0, w_img - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, h_img - b[:, 1])
    return b


def got10k_scores(ious_per_sequence: list[np.ndarray]) -> dict[str, float]:
    """AO, SR0.5, SR0.75 over all frames of all sequences pooled (GOT-10k toolkit 'overall')."""
    ious = np.concatenate([np.asarray(i, dtype=np.float64) for i in ious_per_sequence]) if ious_per_sequence \
        else np.zeros(0)
    if ious.size == 0:
        return {"ao": float("nan"), "sr50": float("nan"), "sr75": float("nan")}
    return {"ao": float(np.mean(ious)), "sr50": float(np.mean(ious > 0.5)), "sr75": float(np.mean(ious > 0.75))}


# ---------------------------------------------------------------- VOT (reset protocol)

# The region <-> box conventions live next to the tracker (one implementation, used by every client).
xywh_to_poly = box_to_vot_polygon
poly_to_xywh = vot_region_to_box


def _region_corners(region) -> np.ndarray:
    """4 numbers (x, y, w, h) -> the rectangle's corners (x,y), (x+w,y), (x+w,y+h), (x,y+h); 8 -> (4, 2)."""
    r = np.asarray(region, dtype=np.float64).ravel()
    if r.size == 4:
        x, y, w, h = r
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    return r.reshape(-1, 2)


def _pixel_bounds(poly: np.ndarray, image_wh) -> tuple[float, float, float, float]:
    """(left, top, right, bottom): the polygon's extent rounded outwards to whole pixels, cut to the image."""
    left, top = np.floor(poly.min(axis=0))
    right, bottom = np.ceil(poly.max(axis=0))
    if image_wh is not None:
        left, top = max(left, 0.0), max(top, 0.0)
        right, bottom = min(right, float(image_wh[0])), min(bottom, float(image_wh[1]))
    return left, top, right, bottom


def _rasterize(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) bool mask of a polygon given in mask pixel coordinates, with the VOT region
    library's scan-line rule: vertices rounded to whole pixels; on each row y, an edge whose (integer)
    end rows straddle or touch y gives a crossing x truncated towards zero; crossings are sorted and
    each pair fills its span *inclusive* of both ends (an equal pair is a vertex touching the row: the
    first of the two is dropped). So an axis-aligned w x h box covers (w+1) x (h+1) pixels.
    """
    pts = np.where(poly >= 0, np.floor(poly + 0.5), np.ceil(poly - 0.5))   # C round(): half away from 0
    xs, ys = pts[:, 0], pts[:, 1]
    xp, yp = np.roll(xs, 1), np.roll(ys, 1)                                # edge i runs from vertex i-1
    rows = np.arange(height)
    nodes = np.full((height, len(xs)), np.inf)                            # (H, E) crossings, inf = none
    for e in range(len(xs)):
        y0, y1 = int(ys[e]), int(yp[e])
        crosses = ((y0 <= rows) & (rows < y1)) | ((y1 <= rows) & (rows < y0)) | ((y0 < rows) & (rows <= y1)) \
            | ((y1 < rows) & (rows <= y0)) | ((y0 == y1) & (rows == y0))
        if yp[e] != ys[e]:
            nodes[crosses, e] = np.trunc(xs[e] + (rows[crosses] - ys[e]) / (yp[e] - ys[e]) * (xp[e] - xs[e]))
    nodes.sort(axis=1)
    count = np.isfinite(nodes).sum(axis=1)
    mask = np.zeros((height, width), dtype=bool)
    simple = (count == 2) & (nodes[:, 0] != nodes[:, 1])                 # the usual row: one span
    a, b = nodes[simple, 0], nodes[simple, 1]
    cols = np.arange(width)
    span = (cols >= np.maximum(a, 0)[:, None]) & (cols <= np.minimum(b, width - 1)[:, None])
    mask[simple] = span & ((a < width) & (b >= 0))[:, None]
    for row in np.nonzero(~simple & (count >= 2))[0]:                    # vertices on the row: C's loop
        row_nodes = [int(v) for v in nodes[row, :count[row]]]
        i = 0
        while i < len(row_nodes) - 1:
            lo, hi = row_nodes[i], row_nodes[i + 1]
            if lo == hi:
                i += 1
                continue
            if lo >= width:
                break
            if hi >= 0:
                mask[row, max(lo, 0):min(hi, width - 1) + 1] = True
            i += 2
    return mask


def vot_overlap(region_a, region_b, image_wh: tuple[float, float] | None = None) -> float:
    """Overlap of two VOT regions as pysot's ``region`` extension computes it (``vot_overlap``).

    Regions are 4 numbers (x, y, w, h rectangle) or 8 (polygon corners); a 1-number code gives NaN.
    Both are rasterised on the pixel grid (``_rasterize``) inside the union of their whole-pixel extents,
    each first cut to the image ``[0, W] x [0, H]`` when ``image_wh`` is given; the result is
    #(both) / #(either). As in the reference: 0 when the cut extents do not overlap with positive area
    (boxes that only touch give 0), or when one extent's area is under 1e-10 times the other's.
    Verified against the compiled reference in tests/test_metrics.py.
    """
    if np.size(region_a) == 1 or np.size(region_b) == 1:
        return float("nan")
    pa, pb = _region_corners(region_a), _region_corners(region_b)
    l1, t1, r1, b1 = _pixel_bounds(pa, image_wh)
    l2, t2, r2, b2 = _pixel_bounds(pb, image_wh)
    x0, y0 = min(l1, l2), min(t1, t2)
    width, height = int(max(r1, r2) - x0) + 1, int(max(b1, b2) - y0) + 1
    a1, a2 = (r1 - l1) * (b1 - t1), (r2 - l2) * (b2 - t2)
    with np.errstate(divide="ignore", invalid="ignore"):
        tiny = (np.float64(a1) / a2 < 1e-10) or (np.float64(a2) / a1 < 1e-10)
    if tiny or width < 1 or height < 1:
        return 0.0
    inter_area = (min(r1, r2) - max(l1, l2)) * (min(b1, b2) - max(t1, t2))   # may be a product of negatives
    if max(0.0, inter_area / (a1 + a2 - inter_area)) == 0:
        return 0.0
    offset = np.array([x0, y0])
    ma, mb = _rasterize(pa - offset, width, height), _rasterize(pb - offset, width, height)
    union = np.count_nonzero(ma | mb)
    return float(np.count_nonzero(ma & mb) / union) if union else 0.0


def vot_accuracy_robustness(records: list, gt_regions: list, image_wh, burnin: int = VOT_BURNIN):
    """Accuracy and failures of one reset-protocol run (pysot ``ar_benchmark``, one repetition).

    records: per frame either a code (``VOT_INIT``=1, ``VOT_FAILURE``=2, ``VOT_SKIPPED``=0) or a box
    (4 xywh or 8 polygon numbers). Frames coded as init and the ``burnin - 1`` frames after each init are
    ignored, as are code frames (their overlap is NaN). Returns (per-frame overlaps (T,) with NaN for
    ignored frames, number of failures).
    """
    n = min(len(records), len(gt_regions))
    ignored = np.zeros(n, dtype=bool)
    for i, r in enumerate(records[:n]):
        if _is_code(r) and int(np.ravel(r)[0]) == VOT_INIT:
            ignored[i:i + burnin] = True
    overlaps = np.full(n, np.nan)
    for i in range(n):
        if not ignored[i] and not _is_code(records[i]):
            overlaps[i] = vot_overlap(records[i], gt_regions[i], image_wh)
    failures = sum(1 for r in records if _is_code(r) and int(np.ravel(r)[0]) == VOT_FAILURE)
    return overlaps, failures


def _is_code(r) -> bool:
    return np.size(r) == 1


def vot_summary(overlaps_per_sequence: list[np.ndarray], failures_per_sequence: list[int]) -> dict[str, float]:
    """Dataset accuracy (nanmean over all frames pooled), robustness (failures per 100 frames, as pysot
    prints it) and the lost number (total failures)."""
    all_overlaps = np.concatenate(overlaps_per_sequence) if overlaps_per_sequence else np.zeros(0)
    length = all_overlaps.size
    failures = int(sum(failures_per_sequence))
    with np.errstate(invalid="ignore"):
        acc = float(np.nanmean(all_overlaps)) if np.any(~np.isnan(all_overlaps)) else float("nan")
    return {"accuracy": acc, "robustness": failures / length * 100 if length else float("nan"),
            "lost": failures}


# ---------------------------------------------------------------- VOT expected average overlap (EAO)

# (low, high) sequence lengths averaged over, per VOT edition, as pysot's ``eao_benchmark`` fixes them
# (it does not fit the GMM the VOT toolkit uses). Inclusive, 1-based lengths.
EAO_RANGES = {"VOT2016": (108, 371), "VOT2017": (100, 356), "VOT2018": (100, 356), "VOT2019": (46, 291)}
EAO_DEFAULT_EDITION = "VOT2018"


def eao_edition(dataset_root: str | None) -> str:
    """The VOT edition whose EAO range applies: named in the dataset folder's name, else VOT2018."""
    name = str(dataset_root or "").upper().rstrip("/")
    hits = [e for e in EAO_RANGES if e in name.rsplit("/", 1)[-1]]
    return hits[0] if hits else EAO_DEFAULT_EDITION


@dataclass(frozen=True)
class VotTrajectory:
    """One reset-protocol run as EAO sees it: per-frame overlaps (n,) (NaN on code frames: init,
    failure, skipped; no burn-in), the frame indices of failures, and the ground truth's length."""

    overlaps: np.ndarray
    failure_frames: tuple[int, ...]
    gt_length: int


def vot_eao_trajectory(records: list, gt_regions: list, image_wh) -> VotTrajectory:
    """pysot ``eao_benchmark``'s view of a run: overlaps with no burn-in and regions cut to
    ``(W - 1, H - 1)`` (``calculate_accuracy(..., bound=(width-1, height-1))``; the A/R numbers use
    ``(W, H)``), and the frames coded as failures."""
    w, h = image_wh
    overlaps, _ = vot_accuracy_robustness(records, gt_regions, (w - 1, h - 1), burnin=0)
    failures = tuple(i for i, r in enumerate(records) if _is_code(r) and int(np.ravel(r)[0]) == VOT_FAILURE)
    return VotTrajectory(overlaps, failures, len(gt_regions))


def eao_fragments(runs: list[VotTrajectory], skipping: int = VOT_SKIP) -> tuple[np.ndarray, np.ndarray]:
    """Cut every run into fragments the way pysot's ``eao_benchmark`` does (tag "all").

    A run with failures restarts a fragment at 0 and at each ``failure + skipping`` (the re-init frame)
    that is <= n; a fragment that ends in a failure runs through its next start frame inclusive and is
    padded with 0 (after a failure the overlap stays 0), the last one is padded with NaN (unknown).
    NaN overlaps inside a failure run's fragments count as 0. A run without failures is one fragment,
    its overlaps as they are. Weights: the fragment's share of frames, as pysot computes it.
    Returns (fragments (F, L) float64, weights (F,) float64), L = the longest run.
    """
    length = max((len(r.overlaps) for r in runs), default=0)
    rows, weights = [], []
    for run in runs:
        n, overlaps = len(run.overlaps), np.asarray(run.overlaps, dtype=np.float64)
        if not run.failure_frames:
            row = np.full(length, np.nan)
            row[:n] = overlaps
            rows.append(row)
            weights.append(1.0)
            continue
        starts = [0] + [f + skipping for f in run.failure_frames if f + skipping <= n]
        for k, start in enumerate(starts):
            last = k == len(starts) - 1
            stop = n if last else starts[k + 1] + 1                 # pysot keeps the next start frame
            piece = np.nan_to_num(overlaps[start:stop], nan=0.0)
            row = np.full(length, np.nan) if last else np.zeros(length)
            row[:len(piece)] = piece
            rows.append(row)
            tagged = min(stop, run.gt_length) - start              # frames tagged "all" in the slice
            weights.append(tagged / (run.gt_length - start + 1e-16) if last else tagged / (stop - start))
    return np.array(rows).reshape(-1, length), np.array(weights, dtype=np.float64)


def expected_overlap_curve(fragments: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(L,) float32 expected overlap for each sequence length: 1 at index 0; at i, the weighted mean
    over fragments still running at frame i (non-NaN there) of their mean overlap over frames 1..i
    (frame 0, the init frame, excluded), as pysot's ``calculate_expected_overlap``."""
    length = fragments.shape[1]
    curve = np.zeros(length, np.float32)                      # float32, as the reference stores it
    if length == 0:
        return curve
    curve[0] = 1
    running_sum = np.cumsum(fragments[:, 1:], axis=1)         # (F, L-1): sum of frames 1..i
    for i in range(1, length):
        alive = ~np.isnan(fragments[:, i])
        if np.any(alive):
            means = running_sum[alive, i - 1] / i
            curve[i] = np.sum(means * weights[alive]) / np.sum(weights[alive])
    return curve


def expected_average_overlap(runs: list[VotTrajectory], edition: str = EAO_DEFAULT_EDITION,
                             skipping: int = VOT_SKIP, low_high: tuple[int, int] | None = None) -> float:
    """VOT EAO as pysot's ``EAOBenchmark`` computes it: the expected-overlap curve averaged over sequence
    lengths ``low..high`` (``EAO_RANGES[edition]`` unless ``low_high`` is given). NaN when every run is
    shorter than ``low`` (no length in the range is observed)."""
    low, high = low_high or EAO_RANGES[edition]
    curve = expected_overlap_curve(*eao_fragments(runs, skipping))
    window = np.zeros(len(curve))
    window[low - 1:high] = 1
    valid = ~np.isnan(curve)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(curve[valid] * window[valid]) / np.sum(window[valid]))
