"""Apparent lesion size: how much of the frame the lesions cover, rendered against real.

    python benchmarks/lesion_area.py runs/r200 --real ../shared/data/kvasir-seg-256

Prints percentiles of the lesion-mask area (fraction of the frame, lesion frames only) of a synth
dataset and, with --real, of a Kvasir-style folder of masks (`masks/*.png|jpg`, lesion > 127), plus
the dataset's visible-lesion fraction and whether its COCO file loads with pycocotools.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PCTS = (10, 25, 50, 75, 90)


def rendered_areas(root: Path) -> tuple[np.ndarray, float]:
    from synth.generator.dataset import Dataset

    ds = Dataset.open(root)
    areas = np.array([r.lesion_pixels / (r.width * r.height) for r in ds.records if r.label == "lesion"])
    return areas, len(areas) / len(ds)


def real_areas(root: Path) -> np.ndarray:
    import cv2

    files = sorted(p for p in (root / "masks").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return np.array([(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127).mean() for p in files])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--real", type=Path)
    args = ap.parse_args()
    areas, frac = rendered_areas(args.dataset)
    line = f"{args.dataset}: visible-lesion fraction {frac:.3f}"
    if (args.dataset / "coco.json").exists():
        from pycocotools.coco import COCO

        coco = COCO(str(args.dataset / "coco.json"))
        line += f"; COCO: {len(coco.getImgIds())} images, {len(coco.getAnnIds())} lesion instances"
    print(line)
    print("| data | lesion frames | " + " | ".join(f"p{p}" for p in PCTS) + " |")
    print("|---|---|" + "---|" * len(PCTS))
    rows = [(str(args.dataset), areas)]
    if args.real:
        rows.append((str(args.real), real_areas(args.real)))
    for name, a in rows:
        print(f"| {name} | {len(a)} | " + " | ".join(f"{v:.3f}" for v in np.percentile(a, PCTS)) + " |")


if __name__ == "__main__":
    main()
