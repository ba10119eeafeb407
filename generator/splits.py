"""Which frames of a dataset go where: stratified splits and the held-out test part.

Part of the data layer, below `classifier` and `diffusion`: `synth classify` splits a folder
that is both trained and tested on with `holdout_split`, and `synth refine --real-holdout` and
`synth classify --real-style` take styles only from the same training pool, so the split has to
be one function both can import without one command package importing the other.
Pure numpy; imports neither torch nor bpy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from synth.generator.dataset import Dataset
from synth.rng import SPLIT_STREAM


def stratified_split(labels: Sequence[str], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices into len(fractions) disjoint groups per class, reproducibly from `seed`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_STREAM]))
    labels = np.asarray(labels)
    groups: list[list[int]] = [[] for _ in fractions]
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        cuts = np.floor(np.cumsum(fractions) / np.sum(fractions) * len(idx)).astype(int)
        start = 0
        for g, end in enumerate(cuts):
            groups[g].extend(idx[start:end].tolist())
            start = end
    return [np.array(sorted(g), dtype=np.int64) for g in groups]


def stratified_fraction(labels: Sequence[str], idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified `fraction` of the indices `idx` (`labels` holds one label per entry of idx).

    What `synth classify --train NAME=DIR:FRACTION` and `synth data subset` select. Nested in the
    fraction for a fixed seed (1 % is inside 5 %): stratified_split shuffles each class the same way
    whatever the fractions, so the first `fraction` of a class is a prefix of a larger one's share.
    """
    idx = np.asarray(idx)
    if fraction >= 1.0:
        return idx
    if fraction <= 0.0:
        return idx[:0]
    part, _ = stratified_split(labels, [fraction, 1.0 - fraction], seed)
    return idx[part]


def holdout_split(ds: Dataset, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, held-out test) indices of a folder that is both trained and tested on.

    Frames are split stratified by label. Patches cut from one frame (`synth data patches`:
    records with a "window") are split by that frame instead, so the lesion patch and the
    normal patch of a frame are never on opposite sides: they share lighting, colour and
    texture, and a test patch must not have a sibling among the training ones.
    """
    if not any("window" in r.extra for r in ds.records):
        train, test = stratified_split(ds.labels(), [1.0 - holdout, holdout], seed)
        return train, test
    groups = sorted({r.source for r in ds.records})
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_STREAM, 1]))
    held = set(np.asarray(groups, dtype=object)[rng.permutation(len(groups))[: int(round(holdout * len(groups)))]])
    is_test = np.array([r.source in held for r in ds.records])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
