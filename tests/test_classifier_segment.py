"""Tests of segmentation in `synth classify --model unet` (tiny U-Net runs on toy masks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.classifier.data import ClassifyError
from synth.classifier.train import ClassifyConfig, run_classify
from test_classifier import _cli, _one_line_error, make_dataset, quiet

pytest.importorskip("segmentation_models_pytorch")


def test_unet_learns_toy_masks_and_writes_report(tmp_path):
    syn = make_dataset(tmp_path / "syn", 32, size=32, seed=0)
    real = make_dataset(tmp_path / "real", 16, size=32, seed=1, kind="real")
    cfg = ClassifyConfig(train=[f"synthetic={syn}"], test=[f"real={real}"], out=str(tmp_path / "rep"),
                         model="unet", size=32, epochs=4, batch_size=8, lr=3e-3, threads=2, fov="none")
    out = run_classify(cfg, log=quiet)
    rep = json.loads((out / "report.json").read_text())
    assert rep["task"] == "segment"
    m = rep["runs"][-1]["test"]["real"]
    assert set(m) >= {"dice", "iou", "dice_pooled", "iou_pooled", "dice_lesion_images", "detection_auc"}
    # The discs are bright red on grey noise: even a few steps find them well.
    assert m["dice_lesion_images"] > 0.5 and m["iou_lesion_images"] > 0.3
    assert 0.0 <= m["iou_pooled"] <= m["dice_pooled"] <= 1.0
    hist = rep["runs"][-1]["history"]
    assert len(hist) == 4 and "test_real_dice" in hist[-1]
    for name in ("curves.png", "examples.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "dice_lesion_images" in (out / "report.md").read_text()


def test_unet_rejects_bad_input(tmp_path):
    a = make_dataset(tmp_path / "a", 8, size=32)
    with pytest.raises(ClassifyError, match="divisible by 32"):
        run_classify(ClassifyConfig(train=[str(a)], test=[str(a)], out=str(tmp_path / "r"), model="unet",
                                    size=48), log=quiet)
    # A dataset imported from class folders has no masks: a one-line error, not a crash.
    from synth.generator.dataset import DatasetWriter

    w = DatasetWriter(tmp_path / "nomask", config={}, class_names=["normal", "lesion"])
    for i in range(4):
        w.write_frame(f"{i:06d}", image=np.zeros((32, 32, 3), np.uint8), label=["normal", "lesion"][i % 2])
    w.finalize(manifest={"command": "test"})
    res = _cli(["classify", "--model", "unet", "--size", "32", "--train", f"s={tmp_path / 'nomask'}",
                "--test", f"r={a}", "--out", str(tmp_path / "r2")])
    assert "has no masks" in _one_line_error(res)


def test_maskless_normal_folder_counts_as_empty_masks(tmp_path):
    from synth.classifier.data import SourceSpec, select_sources
    from synth.generator.dataset import DatasetWriter

    a = make_dataset(tmp_path / "a", 8, size=32)
    w = DatasetWriter(tmp_path / "normals", config={}, class_names=["normal", "lesion"])
    for i in range(3):
        w.write_frame(f"{i:06d}", image=np.zeros((32, 32, 3), np.uint8), label="normal")
    w.finalize(manifest={"command": "test"})
    _, _, test = select_sources([SourceSpec("s", str(a))], [SourceSpec("r", str(tmp_path / "normals"))],
                                seed=0, holdout=0.3, require_masks=True)
    assert len(test[0].ids) == 3
    with pytest.raises(ClassifyError, match="no training folder has masks"):
        select_sources([SourceSpec("s", str(tmp_path / "normals"))], [SourceSpec("r", str(a))],
                       seed=0, holdout=0.3, require_masks=True)


def test_unet_trains_with_real_style(tmp_path):
    """--real-style in segmentation: restyled synthetic images, masks unchanged, recorded in the report."""
    syn = make_dataset(tmp_path / "syn", 16, size=32, seed=0)
    real = make_dataset(tmp_path / "real", 8, size=32, seed=1, kind="real")
    style = make_dataset(tmp_path / "style", 6, size=32, seed=2, kind="real")
    losses = []
    for name, prob in (("plain", 0.0), ("styled", 1.0)):
        cfg = ClassifyConfig(train=[f"synthetic={syn}"], test=[f"real={real}"], out=str(tmp_path / name),
                             model="unet", size=32, epochs=1, batch_size=8, threads=2, real_style=[str(style)],
                             real_style_method="histogram", real_style_prob=prob)
        rep = json.loads((run_classify(cfg, log=quiet) / "report.json").read_text())
        assert rep["data"]["real_style"]["frames"] == 6 and rep["data"]["real_style"]["method"] == "histogram"
        losses.append(rep["runs"][-1]["history"][-1]["train_loss"])
    assert losses[0] != losses[1]
