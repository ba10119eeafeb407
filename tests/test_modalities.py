"""Other modalities through the whole recipe: 11+ classes and greyscale images.

Import -> diffusion train (2 steps, a real tiny diffusers model) -> augment -> classify, through
the real CLI, on tiny made-up data: an 11-class set whose names sort differently as strings
(class_10 before class_2), and a greyscale set that must stay one channel from import to samples.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.diffusion.data import load_images
from synth.generator.dataset import Dataset, DatasetWriter, as_channels, frame_id, write_png

TINY = ["--channels", "8,16", "--timesteps", "50", "--batch-size", "4", "--warmup-steps", "1",
        "--sample-steps", "2", "--steps", "2", "--checkpoint-every", "2"]
CLASSIFY = ["--size", "16", "--epochs", "1", "--batch-size", "16", "--fov", "none"]
ELEVEN = [f"class_{k}" for k in range(11)]


def run(*args, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


def _frame(k: int, i: int, size: int, gray: bool) -> np.ndarray:
    """Class k is a stripe pattern of its own period and brightness, with per-frame noise."""
    rng = np.random.default_rng(np.random.SeedSequence([k, i]))
    yy, xx = np.mgrid[0:size, 0:size]
    base = 40 + 18 * k + 30 * np.sin(2 * np.pi * (xx + yy) / (2 + k % 5))
    if gray:
        return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    tint = np.array([1.0, 0.6 + 0.03 * k, 0.9 - 0.05 * k])
    return np.clip(base[..., None] * tint + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)


def _unet_config(run_folder) -> dict:
    return json.loads((run_folder / "model" / "unet" / "config.json").read_text())


def test_eleven_classes_keep_their_order_from_import_to_classify(tmp_path):
    x = np.stack([_frame(k, i, 8, gray=False) for k in range(11) for i in range(4)])
    y = np.repeat(np.arange(11), 4).reshape(-1, 1)
    np.savez(tmp_path / "eleven.npz", train_images=x, train_labels=y)
    real, model, aug = tmp_path / "real", tmp_path / "model", tmp_path / "aug"

    run("data", "import", tmp_path / "eleven.npz", "--out", real)
    assert Dataset.open(real).class_names == ELEVEN  # numeric order, as the labels are numbered
    assert Dataset.open(real).channels == 3

    run("diffusion", "train", "--data", real, "--out", model, "--seed", "1", *TINY)
    meta = json.loads((model / "model" / "synth_model.json").read_text())
    assert meta["model"]["class_names"] == ELEVEN  # not sorted as strings (class_10 after class_1)
    assert _unet_config(model)["in_channels"] == 3

    run("augment", "--model", model, "--out", aug, "--n", "2", "--sampler", "dpm++", "--steps", "2",
        "--guidance", "2", "--seed", "3")
    ads = Dataset.open(aug)
    assert ads.class_names == ELEVEN and ads.manifest["counts"]["per_class"] == {c: 2 for c in ELEVEN}

    rep = tmp_path / "rep"
    run("classify", "--train", f"real={real}", "--train", f"diffusion={aug}", "--test", f"real={real}",
        "--out", rep, *CLASSIFY)
    report = json.loads((rep / "report.json").read_text())
    assert report["class_names"] == ELEVEN
    assert report["runs"][-1]["train_by_source"]["diffusion"] == 22


def test_same_classes_in_another_order_combine_and_a_different_set_is_one_line(tmp_path):
    """Folders listing the same classes in other orders are matched by name; the first training
    folder's order is the report's. A folder with another set of classes keeps the one-line error."""
    def folder(name, class_names, labels):
        w = DatasetWriter(tmp_path / name, config={"n": name}, class_names=class_names)
        for i, lab in enumerate(labels):
            w.write_frame(frame_id(i), image=_frame(int(lab.split("_")[1]), i, 8, gray=False), label=lab)
        w.finalize(manifest={"kind": "real"})
        return tmp_path / name

    labels = [c for c in ELEVEN for _ in range(4)]
    a = folder("a", ELEVEN, labels)
    b = folder("b", sorted(ELEVEN), labels[::2])  # how augment wrote them before: sorted as strings
    assert Dataset.open(b).class_names[:3] == ["class_0", "class_1", "class_10"]
    rep = tmp_path / "rep"
    run("classify", "--train", f"real={a}", "--train", f"old={b}", "--test", f"real={a}", "--out", rep, *CLASSIFY)
    report = json.loads((rep / "report.json").read_text())
    assert report["class_names"] == ELEVEN and report["class_order_from"] == str(a)
    old = next(s for s in report["data"]["train"] if s["name"] == "old")
    assert old["per_class"] == {c: 2 for c in ELEVEN}  # every frame kept its own label
    # The predictions' label column names each test frame's own class, read by name.
    rows = (rep / "predictions.csv").read_text().splitlines()
    truth = {r.id: r.label for r in Dataset.open(a)}
    assert rows[0].split(",")[5:] == [f"p_{c}" for c in ELEVEN]
    assert all(truth[r.split(",")[3]] == r.split(",")[4] for r in rows[1:])

    # A training order that differs from the test folder's is fine too (b first, then a).
    run("classify", "--train", f"old={b}", "--test", f"real={a}", "--out", tmp_path / "rep2", *CLASSIFY)
    assert json.loads((tmp_path / "rep2" / "report.json").read_text())["class_names"] == sorted(ELEVEN)

    c = folder("c", ELEVEN[:10], [lab for lab in labels if lab != "class_10"])
    res = run("classify", "--train", f"real={a}", "--train", f"other={c}", "--test", f"real={a}",
              "--out", tmp_path / "rep3", *CLASSIFY, code=2)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training datasets disagree on classes"), res.output
    res = run("classify", "--train", f"real={a}", "--test", f"other={c}", "--out", tmp_path / "rep4", *CLASSIFY,
              code=2)
    assert len(res.output.strip().splitlines()) == 1 and "differ from test classes" in res.output
    assert not (tmp_path / "rep3").exists() and not (tmp_path / "rep4").exists()


def test_diffusion_data_follows_the_manifest_order(tmp_path):
    def folder(name, class_names):
        w = DatasetWriter(tmp_path / name, config={"n": name}, class_names=class_names)
        for i, lab in enumerate(["b", "a", "c", "a"]):
            if lab in class_names:
                w.write_frame(frame_id(i), image=_frame(i, i, 8, gray=False), label=lab)
        w.finalize(manifest={"kind": "real"})
        return tmp_path / name

    assert load_images([folder("cba", ["c", "b", "a"])]).class_names == ["c", "b", "a"]
    # A later folder's extra class comes after the first folder's; a class no frame has is left out.
    assert load_images([folder("ba", ["b", "a", "z"]), folder("abc", ["a", "b", "c"])]).class_names == ["b", "a", "c"]
    # Domains are not classes of a manifest: they stay sorted.
    assert load_images([tmp_path / "cba"], condition="domain").class_names == ["real"]


def test_greyscale_stays_one_channel_from_import_to_samples(tmp_path):
    src = tmp_path / "src"
    for k, name in enumerate(["normal", "tumour"]):
        for i in range(6):
            write_png(src / name / f"{i}.png", _frame(3 * k, i, 8, gray=True))  # single-channel PNG files
    real, model, aug = tmp_path / "real", tmp_path / "model", tmp_path / "aug"

    run("data", "import", src, "--out", real)
    ds = Dataset.open(real)
    assert ds.channels == 1 and ds.manifest["channels"] == 1
    stored = cv2.imread(str(real / ds.records[0].image), cv2.IMREAD_UNCHANGED)
    assert stored.ndim == 2  # written as grey, not as three equal channels
    assert np.array_equal(ds.image(ds.records[0], 1)[..., 0], _frame(0, 0, 8, gray=True))
    rgb = ds.image(ds.records[0])  # what an RGB classifier reads: the grey value three times
    assert rgb.shape == (8, 8, 3) and (rgb == rgb[..., :1]).all()

    run("diffusion", "train", "--data", real, "--out", model, "--seed", "1", "--learned-variance", *TINY)
    unet = _unet_config(model)
    assert unet["in_channels"] == 1 and unet["out_channels"] == 2  # one channel + its learned variance
    meta = json.loads((model / "model" / "synth_model.json").read_text())
    assert meta["model"]["image_channels"] == 1
    grid = cv2.imread(str(model / "samples" / "step-0000002.png"), cv2.IMREAD_UNCHANGED)
    assert grid.ndim == 2

    for sampler in ("ddpm", "dpm++"):  # ddpm also uses the learned variance channel
        out = aug.with_name(f"aug-{sampler.replace('+', 'p')}")
        run("augment", "--model", model, "--out", out, "--n", "3", "--sampler", sampler, "--steps", "2",
            "--guidance", "2", "--seed", "4")
        ads = Dataset.open(out)
        assert ads.channels == 1 and ads.class_names == ["normal", "tumour"]
        for r in ads:
            assert cv2.imread(str(out / r.image), cv2.IMREAD_UNCHANGED).shape == (8, 8)

    rep = tmp_path / "rep"
    run("classify", "--train", f"real={real}", "--train", f"diffusion={aug.with_name('aug-dpmpp')}",
        "--test", f"real={real}", "--out", rep, *CLASSIFY)
    assert json.loads((rep / "report.json").read_text())["runs"][-1]["train_by_source"]["diffusion"] == 6


def test_importer_records_channels(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (6, 8, 8), dtype=np.uint8)
    y = np.arange(6).reshape(-1, 1) % 2
    np.savez(tmp_path / "gray.npz", train_images=gray, train_labels=y)
    np.savez(tmp_path / "gray1.npz", train_images=gray[..., None], train_labels=y)
    np.savez(tmp_path / "rgbgray.npz", train_images=np.repeat(gray[..., None], 3, 3), train_labels=y)
    np.savez(tmp_path / "rgb.npz", train_images=rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8), train_labels=y)
    for name, channels in (("gray", 1), ("gray1", 1), ("rgbgray", 1), ("rgb", 3)):
        run("data", "import", tmp_path / f"{name}.npz", "--out", tmp_path / name)
        ds = Dataset.open(tmp_path / name)
        assert ds.channels == channels, name
        if channels == 1:
            assert np.array_equal(np.stack([ds.image(r, 1)[..., 0] for r in ds]), gray)
    np.savez(tmp_path / "bad.npz", train_images=rng.integers(0, 255, (6, 8, 8, 2), dtype=np.uint8), train_labels=y)
    res = run("data", "import", tmp_path / "bad.npz", "--out", tmp_path / "bad", code=2)
    assert len(res.output.strip().splitlines()) == 1 and "expected (N, H, W) grey" in res.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("image", [np.full((4, 4), 200, np.uint8), np.full((4, 4, 1), 200, np.uint8)])
def test_as_channels_round_trips_grey(image):
    rgb = as_channels(image, 3)
    assert rgb.shape == (4, 4, 3) and (rgb == 200).all()
    assert np.array_equal(as_channels(rgb, 1), np.full((4, 4, 1), 200, np.uint8))
    for v in range(256):  # luma of an equal-channel pixel is that value exactly
        assert as_channels(np.full((1, 1, 3), v, np.uint8), 1)[0, 0, 0] == v


def test_a_colour_frame_cannot_go_into_a_greyscale_dataset(tmp_path):
    from synth.generator.dataset import DatasetError

    w = DatasetWriter(tmp_path / "d", config={}, class_names=["a"], channels=1)
    w.write_frame(frame_id(0), image=np.full((4, 4, 3), 9, np.uint8), label="a")  # equal channels: fine
    with pytest.raises(DatasetError, match="colour image"):
        w.write_frame(frame_id(1), image=_frame(1, 1, 4, gray=False), label="a")
    assert w.finalize(manifest={})["channels"] == 1


def test_a_model_saved_before_image_channels_loads_as_rgb(tmp_path):
    from synth.diffusion.model import META_FILE, DiffusionModel, ModelConfig

    DiffusionModel.new(ModelConfig(resolution=8, channels=(8, 16), class_names=["a", "b"]), seed=0).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    del meta["model"]["image_channels"]
    (tmp_path / "m" / META_FILE).write_text(json.dumps(meta))
    m = DiffusionModel.load(tmp_path / "m")
    assert m.cfg.image_channels == 3 and m.unet.config.in_channels == 3
