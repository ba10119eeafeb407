"""Tiny toy datasets, written with the real DatasetWriter, for tests, demos and smoke runs.

A "rendered" toy frame is a smooth pinkish field with, for the lesion class, a brighter disc
whose pixels are the mask; "real" toy frames are the same scenes with a different colour cast
and grain, so a domain gap exists that refinement and the realism score can see.
Frame i depends only on (seed, i).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from synth.generator.dataset import DatasetWriter, frame_id

TINTS = {"rendered": (200, 110, 120), "real": (150, 90, 60)}


def toy_frame(seed: int, i: int, size: int, lesion: bool, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    base = np.array(TINTS.get(kind, TINTS["rendered"]), np.float32)
    shade = 0.75 + 0.25 * np.cos(np.pi * (xx - rng.uniform(0.3, 0.7))) * np.cos(np.pi * (yy - rng.uniform(0.3, 0.7)))
    img = base[None, None, :] * shade[..., None]
    mask = np.zeros((size, size), np.uint8)
    if lesion:
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.12, 0.22) * size
        inside = (np.mgrid[0:size, 0:size][1] - cx) ** 2 + (np.mgrid[0:size, 0:size][0] - cy) ** 2 <= r * r
        mask[inside] = 1
        img[inside] = img[inside] * 0.6 + np.array([250, 200, 170], np.float32) * 0.4
    if kind == "real":
        img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_toy_dataset(
    root: str | Path,
    *,
    n: int = 8,
    size: int = 16,
    kind: str = "rendered",
    classes: Sequence[str] = ("lesion", "normal"),
    seed: int = 0,
    masks: bool = True,
) -> Path:
    """Write n toy frames (classes alternate) as a finalized dataset; returns the folder."""
    classes = list(classes)
    config = {"command": "toy", "n": n, "size": size, "kind": kind, "classes": classes, "seed": seed}
    w = DatasetWriter(Path(root), config=config, class_names=classes, overwrite=True)
    for i in range(n):
        label = classes[i % len(classes)]
        img, mask = toy_frame(seed, i, size, lesion=label == "lesion", kind=kind)
        w.write_frame(frame_id(i), image=img, label=label, mask=mask if masks else None, seed=seed)
    w.finalize(manifest={"command": "toy", "kind": kind, "seed": seed, "config": config})
    return Path(root)
