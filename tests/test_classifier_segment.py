"""Tests of segmentation in `synth classify --model unet` (tiny U-Net runs on toy masks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.classifier.data import ClassifyError
from synth.classifier.classify import run_classify
from synth.classifier.train import ClassifyConfig
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
    # predictions.csv: one row per test frame whose Dice and IoU average to the report's
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "test_set,source,folder,id,true_pixels,predicted_pixels,dice,iou"
    cells = [r.split(",") for r in rows[1:]]
    assert len(cells) == m["n"] == 16 and {c[0] for c in cells} == {"real"}
    assert len({c[3] for c in cells}) == 16  # every frame once
    dice = np.array([float(c[6]) for c in cells])
    assert dice.mean() == pytest.approx(m["dice"], abs=1e-5)
    lesion = np.array([int(c[4]) for c in cells]) > 0
    assert dice[lesion].mean() == pytest.approx(m["dice_lesion_images"], abs=1e-5)


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


def test_strong_augment_moves_masks_with_their_pixels():
    import torch

    from synth.classifier.data import fov_mask, strong_augment

    # Lesion discs drawn bright on a dark field: after zoom, flips and turns the mask must still
    # sit on the bright pixels, whatever the colour jitter did to them.
    size, n = 64, 12
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, 1, size, size), np.float32)
    rng = np.random.default_rng(0)
    for i in range(n):
        cy, cx = rng.integers(20, 44, 2)
        masks[i, 0] = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(6, 12) ** 2
    images = torch.from_numpy(np.repeat(masks, 3, axis=1) * 0.7 + 0.15)
    keep = torch.from_numpy(fov_mask(size, 0.44)).float()
    x, y = strong_augment(images * keep, torch.from_numpy(masks) * keep, generator=torch.Generator().manual_seed(3),
                          fov_keep=keep)
    x2, y2 = strong_augment(images * keep, torch.from_numpy(masks) * keep,
                            generator=torch.Generator().manual_seed(3), fov_keep=keep)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # seeded: same generator, same batch
    assert x.shape == images.shape and y.shape == masks.shape and set(y.unique().tolist()) <= {0.0, 1.0}
    assert float(x[:, :, keep == 0].abs().max()) == 0.0 and float(y[:, :, keep == 0].max()) == 0.0
    inside = keep.bool()
    for i in range(n):
        lum = x[i].mean(0)
        on, off = y[i, 0].bool() & inside, ~y[i, 0].bool() & inside
        assert on.any() and float(lum[on].mean()) > float(lum[off].mean()) + 0.2
        # Pixels the mask calls lesion are nearly all bright ones (blur softens only the rim).
        assert float((lum[on] > lum[off].mean() + 0.1).float().mean()) > 0.85
    # It does move things: areas change with the zoom, colours with the jitter.
    assert not torch.equal(y.sum((1, 2, 3)), torch.from_numpy(masks).mul(keep).sum((1, 2, 3)))
    with pytest.raises(TypeError, match="torch.Generator"):
        strong_augment(images, generator=None)


def test_unet_trains_with_the_strong_policy(tmp_path):
    syn = make_dataset(tmp_path / "syn", 32, size=32, seed=0)
    real = make_dataset(tmp_path / "real", 16, size=32, seed=1, kind="real")
    base = ["classify", "--model", "unet", "--train", f"s={syn}", "--test", f"r={real}", "--size", "32",
            "--epochs", "2", "--batch-size", "8", "--online-aug", "--seed", "4"]
    res = _cli(base + ["--online-aug-policy", "strong", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["config"]["online_aug_policy"] == "strong"
    light = _cli(base + ["--out", str(tmp_path / "b")])
    assert light.exit_code == 0, light.output
    other = json.loads((tmp_path / "b" / "report.json").read_text())
    losses = lambda r: [h["train_loss"] for h in r["runs"][-1]["history"]]
    assert losses(rep) != losses(other)  # the policy is used, not only recorded
    assert "--online-aug-policy" in _one_line_error(_cli(base + ["--online-aug-policy", "heavy",
                                                                 "--out", str(tmp_path / "c")]))


def test_unet_over_several_training_seeds(tmp_path):
    """--seeds 2: two segmenters on the same frames (training seeds 5 and 6), one run each, and the
    mean and spread of their metrics; the first run is the one --seeds 1 trains."""
    syn = make_dataset(tmp_path / "syn", 16, size=32, seed=0)
    real = make_dataset(tmp_path / "real", 8, size=32, seed=1, kind="real")

    def report(seeds, name):
        cfg = ClassifyConfig(train=[f"synthetic={syn}"], test=[f"real={real}"], out=str(tmp_path / name),
                             model="unet", size=32, epochs=2, batch_size=8, threads=2, fov="none", seed=5,
                             seeds=seeds)
        out = run_classify(cfg, log=quiet)
        return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()

    one, _ = report(1, "one")
    two, md = report(2, "two")
    assert [r["name"] for r in one["runs"]] == ["train"] and "seed_summary" not in one
    assert [r["name"] for r in two["runs"]] == ["seed 5", "seed 6"] and two["seeds"] == [5, 6]
    first, second = (r["test"]["real"] for r in two["runs"])
    assert first == one["runs"][0]["test"]["real"]  # seed 5 again: the same run
    assert two["runs"][0]["history"] != two["runs"][1]["history"]  # another seed: another training
    dice = two["seed_summary"]["real"]["dice"]
    assert dice["values"] == [first["dice"], second["dice"]]
    assert dice["mean"] == pytest.approx((first["dice"] + second["dice"]) / 2)
    assert "over the training seeds [5, 6]" in md and " ± " in md


def test_seeds_belong_to_augment_and_segmentation(tmp_path):
    a = make_dataset(tmp_path / "a", 8, size=32)
    with pytest.raises(ClassifyError, match="--seeds is an option of --protocol augment and of segmentation"):
        run_classify(ClassifyConfig(train=[str(a)], test=[str(a)], out=str(tmp_path / "r"), size=32, seeds=2),
                     log=quiet)
    assert ClassifyConfig(train=[], test=[], out="r").seeds == 1
    assert ClassifyConfig(train=[], test=[], out="r", protocol="augment").seeds == 3
    assert not (tmp_path / "r").exists()


def _shifted(root, n: int, seed: int, gain: float, offset: float):
    """make_dataset's frames seen by another camera: every intensity scaled and offset (a real folder)."""
    from synth.generator.dataset import Dataset, DatasetWriter

    make_dataset(root / "plain", n, size=32, seed=seed)
    src = Dataset.open(root / "plain")
    w = DatasetWriter(root / "set", config={"n": n, "seed": seed}, class_names=src.class_names)
    for r in src:
        img = np.clip(src.image(r) * gain + offset, 0, 255).astype(np.uint8)
        w.write_frame(r.id, image=img, label=r.label, mask=src.mask(r))
    w.finalize(manifest={"command": "test", "kind": "real"})
    return root / "set"


def test_adapt_bn_recovers_a_camera_shift_and_keeps_the_unadapted_result(tmp_path):
    """--adapt-bn: batch-norm statistics from unlabelled real frames undo a global intensity shift
    that the rendered-trained network has never seen; the same weights unadapted stay in the report."""
    syn = make_dataset(tmp_path / "syn", 32, size=32, seed=0)
    real = _shifted(tmp_path / "real", 16, 1, gain=0.3, offset=20)
    pool = _shifted(tmp_path / "pool", 24, 2, gain=0.3, offset=20)
    cfg = ClassifyConfig(train=[f"synthetic={syn}"], test=[f"real={real}"], out=str(tmp_path / "rep"),
                         model="unet", size=32, epochs=4, batch_size=8, lr=3e-3, threads=2, fov="none",
                         adapt_bn=[str(pool)])
    rep = json.loads((run_classify(cfg, log=quiet) / "report.json").read_text())
    test = rep["runs"][-1]["test"]
    assert set(test) == {"real", "real, unadapted"}
    assert rep["data"]["adapt_bn"][0]["frames"] == 24
    adapted, unadapted = test["real"]["dice_lesion_images"], test["real, unadapted"]["dice_lesion_images"]
    assert adapted > unadapted + 0.2, (adapted, unadapted)
    # The unadapted figure is the plain run's: adaptation changes nothing before the test.
    plain = run_classify(ClassifyConfig(**{**cfg.__dict__, "adapt_bn": [], "out": str(tmp_path / "plain")}),
                         log=quiet)
    plain_test = json.loads((plain / "report.json").read_text())["runs"][-1]["test"]["real"]
    assert plain_test["dice_lesion_images"] == pytest.approx(unadapted)
    # A test folder cannot lend its frames unless split by --train NAME=DIR:0.
    with pytest.raises(ClassifyError, match="also a --test folder"):
        run_classify(ClassifyConfig(**{**cfg.__dict__, "adapt_bn": [str(real)], "out": str(tmp_path / "bad")}),
                     log=quiet)
    with pytest.raises(ClassifyError, match="kind 'rendered'"):
        run_classify(ClassifyConfig(**{**cfg.__dict__, "adapt_bn": [str(syn)], "out": str(tmp_path / "bad")}),
                     log=quiet)
    assert not (tmp_path / "bad").exists()


def test_adapt_bn_for_a_classifier_adds_the_adapted_run_and_checks_the_model(tmp_path):
    syn = make_dataset(tmp_path / "syn", 32, size=32, seed=0)
    real = _shifted(tmp_path / "real", 16, 1, gain=0.3, offset=20)
    pool = _shifted(tmp_path / "pool", 16, 2, gain=0.3, offset=20)
    cfg = ClassifyConfig(train=[f"synthetic={syn}"], test=[f"real={real}"], out=str(tmp_path / "rep"),
                         model="resnet18", size=32, epochs=2, batch_size=8, threads=2, fov="none",
                         adapt_bn=[str(pool)])
    rep = json.loads((run_classify(cfg, log=quiet) / "report.json").read_text())
    assert [r["name"] for r in rep["runs"]] == ["train", "train + adapted batch norm"]
    assert "train + adapted batch norm" in (tmp_path / "rep" / "report.md").read_text()
    for model, protocol, message in (("smallcnn", "single", "has none"), ("resnet18", "curve", "protocol single")):
        with pytest.raises(ClassifyError, match=message):
            run_classify(ClassifyConfig(**{**cfg.__dict__, "model": model, "protocol": protocol,
                                           "out": str(tmp_path / "bad")}), log=quiet)
    assert not (tmp_path / "bad").exists()
