"""Image primitives every part shares: the field-of-view circle, the one image resize and the one mask resize.

The lowest layer (numpy; OpenCV imported inside the functions that resize; no torch, no bpy),
so classify, evaluate, the judge, measure, patches and anomaly all draw one circle.

One radius convention: `radius` is a fraction of the image's shorter side, the circle is
centred on the image's centre ((h - 1) / 2, (w - 1) / 2 in pixel indices), and a pixel is
inside when its centre is inside or on the circle. `synth classify --fov-radius 0.44` and
`synth data patches --fov-radius 0.42` use it; 0.5 is the inscribed circle.

The renderer's scope mask (generator/post.py `fov_mask`) is deliberately its own: it cuts a
circle or an octagon, with the radius in units of half the side, as recorded in each frame's
spec; `generator/restyle.py` draws render fields of view with it so they match the render.
"""

from __future__ import annotations

import numpy as np


def circle(h: int, w: int, radius: float) -> np.ndarray:
    """(h, w) bool: True inside the centred circle of `radius` x the shorter side."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - (h - 1) / 2.0) ** 2 + (xx - (w - 1) / 2.0) ** 2 <= (radius * min(h, w)) ** 2


def fov_mask(size: int, radius: float) -> np.ndarray:
    """(size, size) bool: the field-of-view circle of a square image (`circle` at size x size)."""
    return circle(size, size, radius)


ENLARGE = ("linear", "cubic", "area")


def resize_image(img: np.ndarray, size: int | tuple[int, int], *, enlarge: str = "linear") -> np.ndarray:
    """Resize an (H, W) or (H, W, C) image to size x size (or (h, w)); C = 1 stays a trailing axis.

    Area averaging when shrinking (no aliasing: every source pixel counts); when enlarging,
    linear by default; cubic where a generative model should not learn linear interpolation's
    soft edges (the diffusion trainers ask for it); area (close to nearest when enlarging) where
    imported folders and patch sets were made that way, so their pixels stay what was measured.
    The same size is returned unchanged."""
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    if img.shape[:2] == (h, w):
        return img
    if enlarge not in ENLARGE:
        raise ValueError(f"enlarge must be one of {ENLARGE}, got {enlarge!r}")
    up = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}[enlarge]
    interp = cv2.INTER_AREA if img.shape[0] > h else up
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out.reshape(h, w, *img.shape[2:])  # OpenCV drops a single channel's axis


def model_view(img: np.ndarray, size: int, keep: np.ndarray | None) -> np.ndarray:
    """An (H, W, 3) uint8 image as a classifier sees it: `resize_image` to size x size, black
    outside the field of view `keep` when given."""
    img = resize_image(img, size)
    return img * keep[..., None].astype(np.uint8) if keep is not None else img


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to size x size (or (h, w)), so instance ids stay ids."""
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
