"""Image-set quality metrics: a weight-free realism score (C2ST) and FID/KID on Inception features.

No bpy; torch and torchmetrics inside the functions. `synth diffusion metrics`, the diffusion
trainer's evaluations and the augment protocol score image sets with these.

C2ST, the classifier two-sample test (Lopez-Paz & Oquab 2017): a small classifier learns to
tell real from generated images on part of the data and is scored on held-out images. Its
accuracy is the realism score: 0.5 means it cannot tell them apart, 1.0 means it always can.
It needs no pretrained weights, so it works offline and is what the benchmarks report when
Inception weights are not available. The classifier is a standardised logistic regression on
features that see colour (histograms), layout (an 8x8 thumbnail), texture (gradient
histogram) and the frequency content where diffusion artefacts show (radial power spectrum),
scored by stratified k-fold cross-validation on class-balanced sets. It lives in
`synth.measure.c2st` (with the realism statistics of `synth evaluate`); its names are importable here too.

A third, graded score that needs no downloaded weights comes from a classifier trained on the
real images (`judge.py`): the Fréchet distance on its features and the class agreement of
conditional samples.

FID and KID (`fid.py`) use torchmetrics with the Inception network of torch-fidelity, whose
weights come from a local file; their names are importable here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from synth.generator.dataset import Dataset
from synth.generator.imaging import resize_image
from synth.measure import MetricError
from synth.measure.c2st import c2st, image_features as _features  # noqa: F401  (c2st: also this module's API)
from synth.measure.fid import INCEPTION_FILE, fid_kid, find_inception_weights, inception_extractor  # noqa: F401
from synth.measure.judge import Judge, judge_scores

# --------------------------------------------------------------------------- dataset-level helpers


def dataset_images(path: str | Path, size: int | None = None, limit: int | None = None,
                   labels: Sequence[str] | None = None, *, with_labels: bool = False):
    """uint8 (N, size, size, 3) images of a dataset folder (optionally only some labels);
    with `with_labels`, also the list of their labels."""
    ds = Dataset.open(path)
    recs = [r for r in ds if labels is None or r.label in labels][:limit]
    if not recs:
        raise MetricError(f"{path} has no frames{' with labels ' + ', '.join(labels) if labels else ''}")
    imgs = [ds.image(r) for r in recs]
    size = size or imgs[0].shape[0]
    stacked = np.stack([resize_image(i, size, enlarge="cubic") for i in imgs])  # as the diffusion trainers see them
    return (stacked, [r.label for r in recs]) if with_labels else stacked


def compare(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, fid: bool = False,
            inception_weights: str | None = None, judge=None, real_labels: Sequence[str] | None = None,
            fake_labels: Sequence[str] | None = None) -> dict:
    """C2ST always; FID/KID as well when asked (a one-line error if their weights are missing);
    the scores of a real-data classifier (`judge.Judge`) when one is given."""
    extractor = inception_extractor(inception_weights) if fid else None  # fail before any work
    out = c2st(real, fake, seed=seed)
    if extractor is not None:
        out.update(fid_kid(real, fake, extractor))
    if judge is not None:
        out.update(judge_scores(judge, real, fake, real_labels=real_labels, fake_labels=fake_labels))
    return out


def compare_datasets(real: str, fake: str, *, resolution: int | None = None, limit: int | None = None,
                     seed: int = 0, fid: bool = False, inception_weights: str | None = None,
                     judge: str | None = None) -> dict:
    judge_model = None
    if judge:
        judge_model = Judge(judge)
    fake_imgs, fake_labels = dataset_images(fake, resolution, limit, with_labels=True)
    real_imgs, real_labels = dataset_images(real, resolution or fake_imgs.shape[1], limit, with_labels=True)
    if real_imgs.shape[1] != fake_imgs.shape[1]:
        fake_imgs, fake_labels = dataset_images(fake, real_imgs.shape[1], limit, with_labels=True)
    known = set(judge_model.class_names) if judge_model else set()
    labelled = judge_model is not None and set(fake_labels) <= known and set(real_labels) <= known
    return compare(real_imgs, fake_imgs, seed=seed, fid=fid, inception_weights=inception_weights, judge=judge_model,
                   real_labels=real_labels if labelled else None, fake_labels=fake_labels if labelled else None)
