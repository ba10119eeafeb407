"""The Fréchet distance between two sets of feature vectors (FID's formula on any features).

No torch, no bpy. ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2)), in float64. The
last trace is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a
symmetric matrix with the same eigenvalues as S_a S_b: two symmetric eigendecompositions instead
of a general matrix square root, so it stays exact and fast when there are fewer samples than
features (singular covariances). 0 for two identical sets. Like FID, its value depends on the
feature extractor and shrinks with more samples (the estimate is biased upward for small sets),
so only values from one extractor and one set size compare.
"""

from __future__ import annotations

import numpy as np

from synth.measure import MetricError


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to feature sets a (N, F) and b (M, F)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise MetricError(f"feature sets must be (N, F) with one F, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise MetricError("the Fréchet distance needs at least 2 feature vectors in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)
    return max(fd, 0.0)  # rounding can leave -1e-9 for identical sets
