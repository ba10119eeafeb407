"""Which frames of a dataset folder a measurement uses, and reading them: numpy only, no torch, no bpy.

`synth evaluate` and `synth calibrate` draw the same frames for the same seed: stratified,
nested shares (`share`, `capped`, as `synth classify` draws DIR:FRACTION) and the seeded sample
the realism statistics are computed on (`realism_sample`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from synth.generator.dataset import Dataset
from synth.generator.splits import stratified_split
from synth.rng import REALISM_SAMPLE_STREAM


def share(ds: Dataset, idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified `fraction` of `idx`, nested in the fraction for one seed (as `synth classify`
    draws DIR:FRACTION: the 5 % frames are inside the 10 %)."""
    if fraction >= 1.0:
        return idx
    if fraction <= 0.0 or not len(idx):
        return idx[:0]
    part, _ = stratified_split([ds.records[i].label for i in idx], [fraction, 1.0 - fraction], seed)
    return idx[part]


def capped(ds: Dataset, idx: np.ndarray, most: int | None, seed: int) -> np.ndarray:
    """At most `most` of `idx`, a stratified share of them when there are more."""
    return idx if most is None or len(idx) <= most else share(ds, idx, most / len(idx), seed)


def realism_sample(ds: Dataset, most: int | None, seed: int) -> np.ndarray:
    """The frames measured for realism: all, or a seeded random `most` of them (in frame order)."""
    n = len(ds)
    if most is None or n <= most:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([seed, REALISM_SAMPLE_STREAM]))
    return np.sort(rng.permutation(n)[:most])


def read_frames(ds: Dataset, idx: np.ndarray, threads: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(RGB image, instance mask or None) of the frames `idx`, at their stored size."""
    with_masks = ds.has_masks()

    def one(i):
        rec = ds.records[i]
        return ds.image(rec), (ds.mask(rec) if with_masks else None)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(one, idx))
