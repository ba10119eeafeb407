"""FID and KID of two uint8 image sets with a feature extractor: torchmetrics' Inception or the judge's.

No bpy; torch and torchmetrics inside the functions. The Inception weights of torch-fidelity
(`weights-inception-2015-12-05-6726825d.pth`) cannot be downloaded at run time here: they are
taken from `--inception-weights FILE` or torch's hub cache, and a one-line error says so when
neither has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.measure import MetricError

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
