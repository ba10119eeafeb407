"""Image-set quality metrics: a weight-free realism score (C2ST) and FID/KID on Inception features.

C2ST, the classifier two-sample test (Lopez-Paz & Oquab 2017): a small classifier learns to
tell real from generated images on part of the data and is scored on held-out images. Its
accuracy is the realism score: 0.5 means it cannot tell them apart, 1.0 means it always can.
It needs no pretrained weights, so it works offline and is what the benchmarks report when
Inception weights are not available. The classifier is a standardised logistic regression on
features that see colour (histograms), layout (an 8x8 thumbnail), texture (gradient
histogram) and the frequency content where diffusion artefacts show (radial power spectrum),
scored by stratified k-fold cross-validation on class-balanced sets. It lives in
`synth.measure.c2st` (with the realism statistics of `synth evaluate`); the names stay here too.

A third, graded score that needs no downloaded weights comes from a classifier trained on the
real images (`judge.py`): the Fréchet distance on its features and the class agreement of
conditional samples.

FID and KID use torchmetrics with the Inception network of torch-fidelity. Its weights
(`weights-inception-2015-12-05-6726825d.pth`) cannot be downloaded at run time here: they are
taken from `--inception-weights FILE` or torch's hub cache, and a one-line error says so
when neither has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# C2ST lives with the other measurements (synth.measure); its names stay importable from here.
from synth.measure import MetricError
from synth.measure.c2st import c2st, image_features as _features  # noqa: F401

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


# --------------------------------------------------------------------------- FID / KID


def find_inception_weights(path: str | None) -> Path:
    """The torch-fidelity Inception weights: the given file, else torch's hub cache; else a clear error."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise MetricError(f"--inception-weights {p} does not exist")
        return p
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return cached
    raise MetricError(
        f"FID/KID need Inception weights, which cannot be downloaded here: pass --inception-weights FILE "
        f"({INCEPTION_FILE} from torch-fidelity) or put it in {cached.parent}; the C2ST realism score needs no weights"
    )


def inception_extractor(path: str | None):
    """torchmetrics' Inception (2048-d pool features) with local weights."""
    weights = find_inception_weights(path)
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:  # pragma: no cover - torchmetrics always ships it
        raise MetricError("this torchmetrics has no Inception feature extractor") from None
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                  feature_extractor_weights_path=str(weights))
    except ModuleNotFoundError:
        raise MetricError("FID/KID need the torch-fidelity package (pip install torch-fidelity); "
                          "the C2ST realism score needs neither it nor weights") from None


def fid_kid(real: np.ndarray, fake: np.ndarray, extractor, *, batch_size: int = 64) -> dict:
    """FID and KID (mean, std) of uint8 (N, H, W, 3) image sets with a feature extractor module.

    The extractor takes uint8 (B, 3, H, W) and returns (B, F) features (torchmetrics' Inception
    does its own resizing to 299 px).
    """
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(real), len(fake))
    if n < 2:
        raise MetricError("FID/KID need at least 2 images of each set")
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=True)
    kid = KernelInceptionDistance(feature=extractor, subset_size=min(1000, n), subsets=50)
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            for s in range(0, len(images), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])).permute(0, 3, 1, 2)
                fid.update(batch, real=is_real)
                kid.update(batch, real=is_real)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}


# --------------------------------------------------------------------------- dataset-level helpers


def dataset_images(path: str | Path, size: int | None = None, limit: int | None = None,
                   labels: Sequence[str] | None = None, *, with_labels: bool = False):
    """uint8 (N, size, size, 3) images of a dataset folder (optionally only some labels);
    with `with_labels`, also the list of their labels."""
    from synth.diffusion.data import resize_image
    from synth.generator.dataset import Dataset

    ds = Dataset.open(path)
    recs = [r for r in ds if labels is None or r.label in labels][:limit]
    if not recs:
        raise MetricError(f"{path} has no frames{' with labels ' + ', '.join(labels) if labels else ''}")
    imgs = [ds.image(r) for r in recs]
    size = size or imgs[0].shape[0]
    stacked = np.stack([resize_image(i, size) for i in imgs])
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
        from synth.diffusion.judge import judge_scores

        out.update(judge_scores(judge, real, fake, real_labels=real_labels, fake_labels=fake_labels))
    return out


def compare_datasets(real: str, fake: str, *, resolution: int | None = None, limit: int | None = None,
                     seed: int = 0, fid: bool = False, inception_weights: str | None = None,
                     judge: str | None = None) -> dict:
    judge_model = None
    if judge:
        from synth.diffusion.judge import Judge

        judge_model = Judge(judge)
    fake_imgs, fake_labels = dataset_images(fake, resolution, limit, with_labels=True)
    real_imgs, real_labels = dataset_images(real, resolution or fake_imgs.shape[1], limit, with_labels=True)
    if real_imgs.shape[1] != fake_imgs.shape[1]:
        fake_imgs, fake_labels = dataset_images(fake, real_imgs.shape[1], limit, with_labels=True)
    known = set(judge_model.class_names) if judge_model else set()
    labelled = judge_model is not None and set(fake_labels) <= known and set(real_labels) <= known
    return compare(real_imgs, fake_imgs, seed=seed, fid=fid, inception_weights=inception_weights, judge=judge_model,
                   real_labels=real_labels if labelled else None, fake_labels=fake_labels if labelled else None)
