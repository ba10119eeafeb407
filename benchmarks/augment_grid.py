"""A grid of class-conditional samples beside real images: one row per class, one block per folder.

    python benchmarks/augment_grid.py OUT.png real=runs/blood/real10 ddpm=runs/blood/aug-ddpm \
        vae=runs/blood/aug-vae gan=runs/blood/aug-gan [--per-class 6] [--scale 2] [--seed 0]

Frames are drawn per class with the seed (the same seed, the same grid); each block is labelled
with its folder's name and the rows with the class names. Used for docs/RESULTS.md's augmentation
section, where only generated blocks are committed: put a real=DIR block first to look at samples
beside real images on your own machine (real data stays out of the repository).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from synth.generator.dataset import Dataset


def block(ds: Dataset, classes: list[str], k: int, rng: np.random.Generator, side: int) -> np.ndarray:
    rows = []
    for c in classes:
        recs = [r for r in ds.records if r.label == c]
        pick = rng.choice(len(recs), size=min(k, len(recs)), replace=False) if recs else []
        tiles = [cv2.resize(ds.image(recs[i]), (side, side), interpolation=cv2.INTER_NEAREST) for i in pick]
        tiles += [np.zeros((side, side, 3), np.uint8)] * (k - len(tiles))
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("folders", nargs="+", help="NAME=DIR")
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    named = [f.split("=", 1) for f in a.folders]
    sets = [(n, Dataset.open(d)) for n, d in named]
    classes = sets[0][1].class_names
    side = sets[0][1].records[0].width * a.scale
    label_w, head_h, gap = 150, 22, 8
    blocks = [block(ds, classes, a.per_class, np.random.default_rng(a.seed), side) for _, ds in sets]
    h = head_h + len(classes) * side
    w = label_w + sum(b.shape[1] + gap for b in blocks)
    canvas = np.full((h, w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, c in enumerate(classes):
        cv2.putText(canvas, c[:18], (4, head_h + i * side + side // 2 + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    x = label_w
    for (name, _), b in zip(sets, blocks):
        canvas[head_h:, x:x + b.shape[1]] = b
        cv2.putText(canvas, name, (x + 2, 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += b.shape[1] + gap
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out} ({len(classes)} classes x {len(sets)} folders)")


if __name__ == "__main__":
    main()
