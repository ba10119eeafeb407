"""Do a folder's lesion masks still fall on image edges? A check for refined frames.

A refine may move a lesion's outline away from where its mask says. For every frame with a lesion
mask, this compares the image's brightness gradient (L* of CIELAB, Gaussian sigma 1 px, Sobel) on
the mask's boundary band (3 px) with the gradient everywhere else inside the view, and prints the
median ratio over frames. Renders start well above 1 (lesion outlines are image edges); a refine
that keeps masks right keeps the ratio near the unrefined folder's, one that lets the lesion drift
or dissolve drives it toward 1. No bpy, no torch.

    python benchmarks/mask_edges.py runs/ab/s2-600 runs/tex/s2-600-fda runs/tex/s2-600-t30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from synth.measure.realism import lab

MIN_MASK_PIXELS = 30
MIN_EDGE_PIXELS = 5


def edge_ratio(image: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean gradient on the mask boundary over mean gradient elsewhere in the view (None: too small)."""
    if mask.sum() < MIN_MASK_PIXELS:
        return None
    lum = cv2.GaussianBlur(lab(image)[..., 0].astype(np.float32), (0, 0), 1.0)
    grad = np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0), cv2.Sobel(lum, cv2.CV_32F, 0, 1))
    m = mask.astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    edge = (cv2.dilate(m, k) - cv2.erode(m, k)).astype(bool)
    # inside the field of view, away from its black border (whose edge is not the lesion's)
    view = cv2.erode((image.max(axis=2) > 0).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    edge &= view
    if edge.sum() < MIN_EDGE_PIXELS:
        return None
    return float(grad[edge].mean() / (grad[view & ~edge].mean() + 1e-6))


def folder_ratio(root: Path) -> tuple[float, int]:
    ratios = []
    for path in sorted((root / "images").glob("*.png")):
        mask_path = root / "masks" / path.name
        if not mask_path.exists():
            continue
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
        r = edge_ratio(image, mask)
        if r is not None:
            ratios.append(r)
    if not ratios:
        raise SystemExit(f"error: {root} has no frame with a lesion mask of {MIN_MASK_PIXELS}+ pixels")
    return float(np.median(ratios)), len(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="synth dataset folders (images/ and masks/)")
    args = ap.parse_args()
    for root in args.folders:
        if not (root / "images").is_dir():
            raise SystemExit(f"error: {root} is not a synth dataset folder (no images/); give a render or refine output")
        ratio, n = folder_ratio(root)
        print(f"{root}: median gradient on the mask boundary / elsewhere {ratio:.2f} ({n} frames)")


if __name__ == "__main__":
    main()
