"""pysot's training augmentation, with an explicit random generator so a seed reproduces a run.

The search crop's shift jitter (``shift = 64`` px, uniform) is the paper's spatial-aware sampling: the
target lands anywhere within +-64 px of the crop centre, so a padded backbone cannot learn that objects
sit in the middle. Boxes are corner form (x1, y1, x2, y2) in pixels of the image they refer to.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# pysot's colour PCA matrix (RGB eigenvectors scaled by eigenvalues, ImageNet statistics).
RGB_VAR = np.array([[-0.55919361, 0.98062831, -0.41940627],
                    [1.72091413, 0.19879334, -1.82968581],
                    [4.64467907, 4.73710203, 4.88324118]], dtype=np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """One branch's DATASET.{TEMPLATE,SEARCH}.* values."""

    shift: float
    scale: float
    blur: float = 0.0
    flip: float = 0.0
    color: float = 1.0


TEMPLATE_AUG = AugmentConfig(shift=4, scale=0.05)
SEARCH_AUG = AugmentConfig(shift=64, scale=0.18, blur=0.2)


def _uniform(rng: np.random.Generator) -> float:
    return rng.random() * 2.0 - 1.0


def crop_roi(image: np.ndarray, box_xyxy, out_size: int, padding=(0, 0, 0)) -> np.ndarray:
    """Affine crop mapping ``box_xyxy`` onto (out_size-1) pixels, black (``padding``) outside."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    a = (out_size - 1) / (x2 - x1)
    b = (out_size - 1) / (y2 - y1)
    mapping = np.array([[a, 0, -a * x1], [0, b, -b * y1]], dtype=np.float64)
    return cv2.warpAffine(image, mapping, (out_size, out_size), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=padding)


def shift_scale(image, box_xyxy, out_size: int, cfg: AugmentConfig, rng: np.random.Generator):
    """Jitter the crop window's scale and position; return the crop and the box in crop pixels."""
    im_h, im_w = image.shape[:2]
    # pysot centres the window on (shape[0]//2, shape[1]//2): rows used as x. Same thing for square inputs.
    cx, cy = image.shape[0] // 2, image.shape[1] // 2
    w = h = out_size - 1
    scale_x = scale_y = 1.0
    if cfg.scale:
        scale_x = min(1.0 + _uniform(rng) * cfg.scale, im_w / w)
        scale_y = min(1.0 + _uniform(rng) * cfg.scale, im_h / h)
        w, h = w * scale_x, h * scale_y
    x1, y1, x2, y2 = cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5
    if cfg.shift:
        sx = _uniform(rng) * cfg.shift
        sy = _uniform(rng) * cfg.shift
        sx = max(-x1, min(im_w - 1 - x2, sx))
        sy = max(-y1, min(im_h - 1 - y2, sy))
        x1, y1, x2, y2 = x1 + sx, y1 + sy, x2 + sx, y2 + sy
    bx1, by1, bx2, by2 = (float(v) for v in box_xyxy)
    box = np.array([(bx1 - x1) / scale_x, (by1 - y1) / scale_y, (bx2 - x1) / scale_x, (by2 - y1) / scale_y])
    return crop_roi(image, (x1, y1, x2, y2), out_size), box


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random cross-shaped motion-blur kernel of odd size 5..45."""
    size = int(rng.choice(np.arange(5, 46, 2)))
    kernel = np.zeros((size, size))
    c = size // 2
    wx = rng.random()
    kernel[:, c] += 1.0 / size * wx
    kernel[c, :] += 1.0 / size * (1 - wx)
    return cv2.filter2D(image, -1, kernel)


def colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PCA colour offset; the result is float (as in pysot, values are not re-clipped)."""
    offset = (RGB_VAR @ rng.standard_normal((3, 1)))[::-1].reshape(3)  # RGB -> BGR order
    return image - offset


def augment(image: np.ndarray, box_xyxy, out_size: int, cfg: AugmentConfig, rng: np.random.Generator,
            gray: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """pysot ``Augmentation.__call__``: gray, shift/scale crop, colour, blur, flip (in that order).

    image: HxWx3 BGR (uint8) centred on the target (a "crop511" patch); returns (out_size x out_size x 3
    float32 image, box (4,) corner form in output pixels).
    """
    if gray:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    image, box = shift_scale(image, box_xyxy, out_size, cfg, rng)
    if cfg.color > rng.random():
        image = colour(image, rng)
    if cfg.blur > rng.random():
        image = blur(image, rng)
    if cfg.flip and cfg.flip > rng.random():
        image = cv2.flip(image, 1)
        width = image.shape[1]
        box = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]])
    return np.asarray(image, dtype=np.float32), box
