"""Realism metrics: C2ST separates different domains and not equal ones; FID/KID wiring; offline errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.diffusion.metrics import MetricError, c2st, fid_kid, find_inception_weights, inception_extractor
from synth.diffusion.toy import toy_frame


def _set(kind: str, seed: int, n: int = 40, size: int = 16) -> np.ndarray:
    return np.stack([toy_frame(seed, i, size, i % 2 == 0, kind)[0] for i in range(n)])


def test_c2st_tells_domains_apart_and_not_equal_sets():
    real_a, real_b, rendered = _set("real", 1), _set("real", 2), _set("rendered", 3)
    assert c2st(real_a, rendered)["c2st_accuracy"] > 0.9
    same = c2st(real_a, real_b)["c2st_accuracy"]
    assert same < 0.75
    assert c2st(real_a, real_b, seed=5) == c2st(real_a, real_b, seed=5)


def test_c2st_needs_enough_images_of_one_size():
    with pytest.raises(MetricError, match="at least 10"):
        c2st(_set("real", 1, n=4), _set("real", 2, n=4))
    with pytest.raises(MetricError, match="resize"):
        c2st(_set("real", 1), _set("real", 2, size=32))


class TinyFeatures(torch.nn.Module):
    """A fixed random conv feature extractor standing in for Inception (same interface: uint8 in)."""

    num_features = 16

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.1)

    def forward(self, x):
        return self.conv(x.float() / 255).mean(dim=(2, 3))


def test_fid_kid_wiring():
    real_a, real_b, rendered = _set("real", 1), _set("real", 2), _set("rendered", 3)
    ex = TinyFeatures()
    same = fid_kid(real_a, real_a, ex)
    near = fid_kid(real_a, real_b, ex)
    far = fid_kid(real_a, rendered, ex)
    assert abs(same["fid"]) < 1e-3
    assert far["fid"] > near["fid"] and far["kid_mean"] > near["kid_mean"]


def test_inception_weights_missing_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MetricError) as e:
        find_inception_weights(None)
    assert "--inception-weights" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MetricError, match="does not exist"):
        inception_extractor(str(tmp_path / "nope.pth"))
