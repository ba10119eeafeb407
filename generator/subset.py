"""`synth data subset`: copy a stratified share of a dataset into a dataset folder of its own.

The share is exactly the one `synth classify --train NAME=DIR:FRACTION --seed S` trains on
(generator/splits.py), so a generative model (`synth diffusion train`, `synth vae train`,
`synth gan train`) can learn from the same few real images the low-data classifier sees, and
nothing of the rest leaks into the "10 % real" arm. With `--holdout H` the share is taken from
the training pool that `synth classify` keeps when the folder is also the test set; adding
`--test-part` takes it from the held-out test frames instead, so whatever was fitted on the pool
(a generator, a calibrated scene, a refine's styles) can be measured on frames it never saw.

Frames keep their ids, labels, masks and sources. Imports neither torch nor bpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synth.generator.dataset import Dataset, DatasetError, DatasetWriter
from synth.generator.splits import holdout_split, stratified_fraction


@dataclass
class SubsetConfig:
    source: str
    out: str
    fraction: float
    seed: int = 0
    holdout: float | None = None  # take the share from the training pool of this held-out split
    test_part: bool = False  # ... or from its held-out test frames
    overwrite: bool = False

    def validate(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise DatasetError(f"--fraction must be in (0, 1], got {self.fraction}")
        if self.holdout is not None and not 0.0 < self.holdout < 1.0:
            raise DatasetError(f"--holdout must be between 0 and 1, got {self.holdout}")
        if self.test_part and self.holdout is None:
            raise DatasetError("--test-part takes the held-out frames of a split: give --holdout too (e.g. 0.3)")
        if Path(self.out).resolve() == Path(self.source).resolve():
            raise DatasetError("--out must differ from the source dataset")


def subset_indices(ds: Dataset, cfg: SubsetConfig) -> np.ndarray:
    """Indices of the frames `cfg` selects, in the source's order."""
    idx = np.arange(len(ds))
    if cfg.holdout is not None:
        pool, test = holdout_split(ds, cfg.holdout, cfg.seed)
        idx = test if cfg.test_part else pool
    return np.sort(stratified_fraction([ds.records[i].label for i in idx], idx, cfg.fraction, cfg.seed))


def make_subset(cfg: SubsetConfig) -> dict:
    """Write the subset folder; returns frames per class."""
    cfg.validate()
    src = Dataset.open(cfg.source)
    chosen = subset_indices(src, cfg)
    if len(chosen) == 0:
        raise DatasetError(f"--fraction {cfg.fraction} of {cfg.source} selects no frame; raise it")
    config = {"command": "data subset", **asdict(cfg)}
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=src.class_names, overwrite=cfg.overwrite,
                           channels=src.channels)
    counts = {c: 0 for c in src.class_names}
    ids = []
    for i in chosen:
        rec = src.records[int(i)]
        image = src.image(rec, src.channels)
        mask = src.mask(rec) if rec.mask else None
        writer.write_frame(rec.id, image=image, label=rec.label, mask=mask, seed=rec.seed, source=rec.source,
                           extra=rec.extra)
        ids.append(rec.id)
        counts[rec.label] += 1
    writer.finalize(manifest={"command": "synth data subset", "config": config, "seed": cfg.seed,
                              "subset_of": str(cfg.source), "kind": src.manifest.get("kind", "unknown")},
                    expected_ids=ids)
    return counts
