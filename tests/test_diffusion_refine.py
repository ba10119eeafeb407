"""`synth refine`: SDEdit and DDIB keep ids, labels, masks, depth and specs; provenance is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from synth.diffusion.data import resize_mask
from synth.diffusion.refine import RefineConfig, RefineError, refine
from synth.diffusion.toy import make_toy_dataset, toy_frame
from synth.diffusion.train import TrainConfig, train
from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id

QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    # A rendered folder like `synth render` writes: masks with instances, depth and specs.
    w = DatasetWriter(root / "rendered", config={"toy": 1}, class_names=["lesion", "normal"])
    for i in range(6):
        label = ["lesion", "normal"][i % 2]
        img, mask = toy_frame(0, i, 32, label == "lesion", "rendered")
        depth = np.full((32, 32), 1000 + i, np.uint16)
        w.write_frame(frame_id(i), image=img, label=label, mask=mask, depth=depth, spec={"i": i}, seed=i)
    w.finalize(manifest={"kind": "rendered", "command": "test", "depth_scale": 0.001})
    real = make_toy_dataset(root / "real", n=6, size=32, kind="real", seed=1)
    run = root / "run"
    train(TrainConfig(data=[str(root / "rendered"), str(real)], out=str(run), resolution=16, condition="domain",
                      mask=True, channels=(8, 16), timesteps=50, steps=2, batch_size=4, warmup_steps=1,
                      sample_every_checkpoint=False), **QUIET)
    return {"rendered": root / "rendered", "real": real, "model": run / "model"}


@pytest.mark.parametrize("method", ["sdedit", "ddib"])
def test_refine_keeps_labels_masks_ids(data, tmp_path, method):
    out = tmp_path / "refined"
    cfg = RefineConfig(rendered=str(data["rendered"]), out=str(out), model=str(data["model"]), method=method,
                       strength=0.6, steps=4, seed=0)
    refine(cfg, **QUIET)
    src, ref = Dataset.open(data["rendered"]), Dataset.open(out)
    assert [r.id for r in ref] == [r.id for r in src]
    assert ref.labels() == src.labels()
    assert ref.manifest["kind"] == "refined" and ref.manifest["depth_scale"] == 0.001
    for a, b in zip(src, ref):
        assert (b.width, b.height) == (16, 16)  # the model's resolution
        # Masks are the rendered masks resized with nearest neighbour: instances keep their ids.
        mask_src = resize_mask(src.mask(a), 16)
        np.testing.assert_array_equal(ref.mask(b), mask_src)
        assert b.lesion_pixels == int(np.count_nonzero(mask_src))
        assert b.extra["method"] == method and b.extra["strength"] == 0.6
        assert b.source == f"{data['rendered']}:{a.id}"
        assert ref.spec(b) == src.spec(a)
        assert ref.depth(b) is not None
    # The image changed.
    assert not np.array_equal(ref.image(ref.records[0]), src.image(src.records[0])[::2, ::2])


def test_same_seed_same_refinement(data, tmp_path):
    imgs = []
    for name in ("a", "b"):
        cfg = RefineConfig(rendered=str(data["rendered"]), out=str(tmp_path / name), model=str(data["model"]),
                           steps=3, strength=0.5, seed=7, sampler="ddpm")
        ds = Dataset.open(refine(cfg, **QUIET))
        imgs.append(np.stack([ds.image(r) for r in ds]))
    np.testing.assert_array_equal(*imgs)


def test_refine_trains_when_no_model(data, tmp_path):
    cfg = RefineConfig(rendered=str(data["rendered"]), real=[str(data["real"])], out=str(tmp_path / "r"),
                       train_steps=1, resolution=16, channels=(8, 16), train_batch_size=2, steps=2, limit=2)
    refine(cfg, **QUIET)
    assert (tmp_path / "r-model" / "model" / "synth_model.json").exists()
    assert len(Dataset.open(tmp_path / "r")) == 2
    # Same options again: the finished model is reused, the refined folder is resumed (nothing to do).
    messages = []
    refine(cfg, log=messages.append)
    assert any("reusing" in m for m in messages)


def test_refine_bad_input(data, tmp_path):
    base = dict(rendered=str(data["rendered"]), out=str(tmp_path / "o"), model=str(data["model"]))
    with pytest.raises(DatasetError, match="does not exist"):
        refine(RefineConfig(**{**base, "rendered": str(tmp_path / "none")}), **QUIET)
    with pytest.raises(RefineError, match="strength"):
        refine(RefineConfig(**base, strength=0.0), **QUIET)
    with pytest.raises(RefineError, match="method"):
        refine(RefineConfig(**base, method="cyclegan"), **QUIET)
    with pytest.raises(RefineError, match="--real"):
        refine(RefineConfig(rendered=str(data["rendered"]), out=str(tmp_path / "o")), **QUIET)
    with pytest.raises(RefineError, match="both of kind"):
        refine(RefineConfig(rendered=str(data["rendered"]), out=str(tmp_path / "o"), real=[str(data["rendered"])]),
               **QUIET)
    with pytest.raises(Exception, match="not one the model knows"):
        refine(RefineConfig(**base, target_class="photo"), **QUIET)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- the texture model


@pytest.fixture(scope="module")
def texture(data, tmp_path_factory):
    """An unconditional, mask-conditioned model trained on 8 px crops of 32 px real frames."""
    run = tmp_path_factory.mktemp("texture") / "run"
    train(TrainConfig(data=[str(data["real"])], out=str(run), resolution=32, crop=8, crop_radius=0.9,
                      condition="none", mask=True, channels=(8, 16), timesteps=50, steps=2, batch_size=4,
                      warmup_steps=1, sample_every_checkpoint=False), **QUIET)
    return run


def test_crops_lie_inside_the_circle_and_follow_their_masks():
    import torch

    from synth.diffusion.train import random_crops

    x = torch.zeros(64, 1, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    inside = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2) <= (0.8 * 16) ** 2
    x[:, 0] = inside.float()  # 1 inside the circle of radius 0.8 x half the side, 0 outside
    m = (xx + 32 * yy).expand(64, 32, 32).clone()  # each pixel its own number
    xs, ms = random_crops(x, m, 8, 0.8, torch.Generator().manual_seed(0))
    assert xs.shape == (64, 1, 8, 8) and ms.shape == (64, 8, 8)
    assert bool((xs == 1).all())  # every pixel of every crop inside the circle
    # The mask crop is the same window as the image crop (consecutive pixel numbers in a row).
    assert bool((ms[:, :, 1:] - ms[:, :, :-1] == 1).all()) and bool((ms[:, 1:] - ms[:, :-1] == 32).all())
    assert len({int(v) for v in ms[:, 0, 0]}) > 10  # the windows move about
    xs2, _ = random_crops(x, m, 8, 0.8, torch.Generator().manual_seed(0))
    assert torch.equal(xs, xs2)


def test_texture_model_refines_whole_frames_and_keeps_the_border(data, texture, tmp_path):
    from synth.diffusion.model import DiffusionModel

    model = DiffusionModel.load(texture / "model")
    assert (model.cfg.resolution, model.cfg.frame_resolution, model.cfg.attention) == (8, 32, False)
    # A rendered folder whose frames have a black border outside a circular field of view.
    src = tmp_path / "rendered"
    w = DatasetWriter(src, config={"toy": 2}, class_names=["lesion", "normal"])
    yy, xx = np.mgrid[0:32, 0:32]
    fov = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2) <= 14 ** 2
    for i in range(4):
        img, mask = toy_frame(0, i, 32, i % 2 == 0, "rendered")
        img[~fov] = 0
        w.write_frame(frame_id(i), image=img, label=["lesion", "normal"][i % 2], mask=mask * fov, seed=i)
    w.finalize(manifest={"kind": "rendered", "command": "test"})
    outs = []
    for name in ("a", "b"):
        cfg = RefineConfig(rendered=str(src), out=str(tmp_path / name), model=str(texture), strength=0.4, steps=4,
                           seed=3)
        outs.append(Dataset.open(refine(cfg, **QUIET)))
    ren, ref = Dataset.open(src), outs[0]
    for a, b, c in zip(ren, ref, outs[1]):
        before, after = ren.image(a), ref.image(b)
        assert after.shape == (32, 32, 3)  # the whole frame at the crops' scale, not an 8 px crop
        np.testing.assert_array_equal(ref.mask(b), ren.mask(a))
        assert not after[~fov].any()  # the border stays black
        assert not np.array_equal(after[fov], before[fov])  # the view changed
        np.testing.assert_array_equal(after, outs[1].image(c))  # same seed, same frames
    with pytest.raises(RefineError, match="domain-conditioned"):
        refine(RefineConfig(rendered=str(src), out=str(tmp_path / "d"), model=str(texture), method="ddib"), **QUIET)


def test_crop_bad_input(data, tmp_path):
    from synth.diffusion.train import TrainError

    base = dict(data=[str(data["real"])], resolution=32, condition="none", channels=(8, 16), steps=1, batch_size=2)
    with pytest.raises(TrainError, match="does not fit inside the central circle"):
        train(TrainConfig(out=str(tmp_path / "a"), crop=30, **base), **QUIET)
    with pytest.raises(TrainError, match="--crop must be a positive"):
        train(TrainConfig(out=str(tmp_path / "b"), crop=0, **base), **QUIET)
    with pytest.raises(TrainError, match="--crop-radius"):
        train(TrainConfig(out=str(tmp_path / "c"), crop=8, crop_radius=2.0, **base), **QUIET)


def test_a_run_saved_before_crops_existed_still_resumes(data, tmp_path):
    """Runs whose config.json predates --crop/--crop-radius resume: the new keys default to unset."""
    import json

    cfg = TrainConfig(data=[str(data["real"])], out=str(tmp_path / "run"), resolution=16, condition="none",
                      channels=(8, 16), timesteps=50, steps=2, batch_size=2, warmup_steps=1, checkpoint_every=1,
                      sample_every_checkpoint=False)
    train(cfg, **QUIET)
    path = tmp_path / "run" / "config.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("crop", "crop_radius")}
    path.write_text(json.dumps(old))
    train(cfg, resume=True, **QUIET)  # before crop_radius had an unset default: "config differs in: crop_radius"
