"""Anomaly scoring: heat maps, scores and AUCs are written, seeded, and bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.diffusion.anomaly import AnomalyConfig, AnomalyError, score
from synth.diffusion.toy import make_toy_dataset
from synth.diffusion.train import TrainConfig, train
from synth.generator.dataset import read_gray

QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomaly")
    normal = make_toy_dataset(root / "normal", n=4, size=16, classes=["normal"])
    test = make_toy_dataset(root / "test", n=6, size=16, kind="rendered")
    train(TrainConfig(data=[str(normal)], out=str(root / "run"), channels=(8, 16), timesteps=50, steps=2,
                      batch_size=4, warmup_steps=1, sample_every_checkpoint=False), **QUIET)
    return {"model": root / "run", "test": test}


def test_anomaly_outputs_and_seed(setup, tmp_path):
    cfg = AnomalyConfig(model=str(setup["model"]), data=str(setup["test"]), out=str(tmp_path / "a"), steps=4,
                        repeats=2, fov=True)
    report = score(cfg, **QUIET)
    assert 0 <= report["pixel_auc"] <= 1 and 0 <= report["image_auc"] <= 1
    assert json.loads((tmp_path / "a" / "report.json").read_text())["frames"] == 6
    assert len((tmp_path / "a" / "scores.csv").read_text().splitlines()) == 7
    assert (tmp_path / "a" / "overlays.png").exists()
    heat = read_gray(tmp_path / "a" / "heatmaps" / "000000.png")
    assert heat.shape == (16, 16) and heat.max() > 0 and heat[0, 0] == 0  # outside the field of view
    again = score(AnomalyConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")}), **QUIET)
    assert again["pixel_auc"] == report["pixel_auc"]
    np.testing.assert_array_equal(read_gray(tmp_path / "b" / "heatmaps" / "000003.png"),
                                  read_gray(tmp_path / "a" / "heatmaps" / "000003.png"))
    with pytest.raises(AnomalyError, match="--overwrite"):
        score(cfg, **QUIET)


def test_anomaly_bad_input(setup, tmp_path):
    base = dict(model=str(setup["model"]), data=str(setup["test"]), out=str(tmp_path / "o"))
    with pytest.raises(AnomalyError, match="strength"):
        score(AnomalyConfig(**base, strength=1.5), **QUIET)
    with pytest.raises(Exception, match="not one the model knows"):
        score(AnomalyConfig(**base, normal_class="healthy"), **QUIET)
    with pytest.raises(Exception, match="does not exist"):
        score(AnomalyConfig(**{**base, "data": str(tmp_path / "none")}), **QUIET)
