"""Realism metrics: C2ST separates different domains and not equal ones; FID/KID wiring; offline errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.measure.quality import MetricError, c2st, fid_kid, find_inception_weights, inception_extractor
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


def test_judge_scores_from_a_trained_classifier(tmp_path):
    """A real-data classifier as judge: FD 0 for a set against itself, larger for another domain;
    class agreement of correctly and wrongly labelled samples; bad reports are one clear line."""
    from synth.classifier.classify import run_classify
    from synth.classifier.train import ClassifyConfig
    from synth.measure.judge import Judge, judge_scores
    from synth.measure.quality import compare_datasets
    from synth.diffusion.toy import make_toy_dataset

    real = make_toy_dataset(tmp_path / "real", n=48, size=16, kind="real", seed=1)
    rendered = make_toy_dataset(tmp_path / "rendered", n=48, size=16, kind="rendered", seed=2)
    report = run_classify(ClassifyConfig(train=[f"real={real}"], test=[f"real={real}"], out=str(tmp_path / "judge"),
                                         model="smallcnn", size=16, fov="none", epochs=15, batch_size=16, seed=0,
                                         save_model=True), log=lambda *_: None)
    judge = Judge(report)
    imgs = np.stack([toy_frame(1, i, 16, i % 2 == 0, "real")[0] for i in range(48)])
    labels = ["lesion" if i % 2 == 0 else "normal" for i in range(48)]
    same = judge_scores(judge, imgs, imgs, real_labels=labels, fake_labels=labels)
    assert abs(same["fd_judge"]) < 1e-3
    assert same["class_agreement"] == same["class_agreement_real"] > 0.8
    flipped = judge_scores(judge, imgs, imgs, real_labels=labels, fake_labels=labels[1:] + labels[:1])
    assert flipped["class_agreement"] < 0.2
    res_near = compare_datasets(str(real), str(make_toy_dataset(tmp_path / "real2", n=48, size=16, kind="real",
                                                                seed=3)), judge=str(report))
    res_far = compare_datasets(str(real), str(rendered), judge=str(report))
    assert res_far["fd_judge"] > res_near["fd_judge"] > 0
    assert "class_agreement" in res_far and "c2st_accuracy" in res_far
    (report / "model.pt").write_bytes(b"not a state dict")
    with pytest.raises(MetricError, match="does not hold the weights"):
        Judge(report)
    (report / "model.pt").unlink()
    with pytest.raises(MetricError, match="--save-model"):
        Judge(report)
    with pytest.raises(MetricError, match="not a `synth classify` report"):
        Judge(tmp_path)
