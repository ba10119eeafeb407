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
