"""Diffusion core: model, training (exact resume, learned variance), sampling, augment. Tiny models on CPU."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from synth import UserError
from synth.diffusion.augment import AugmentConfig, augment
from synth.diffusion.data import load_images
from synth.diffusion.model import DiffusionModel, ModelConfig, ModelError
from synth.diffusion.sample import SAMPLERS, generate
from synth.diffusion.toy import make_toy_dataset
from synth.diffusion.train import TrainConfig, TrainError, train, vlb_loss
from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id

TINY = dict(channels=(8, 16), timesteps=50, batch_size=4, warmup_steps=1, sample_steps=2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return {
        "rendered": make_toy_dataset(root / "rendered", n=8, size=16, kind="rendered"),
        "real": make_toy_dataset(root / "real", n=8, size=16, kind="real", seed=1),
    }


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    """One tiny class+mask-conditioned model with learned variance, shared by the sampling tests."""
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = TrainConfig(data=[str(toy["rendered"]), str(toy["real"])], out=str(out), condition="domain", mask=True,
                      learned_variance=True, steps=3, checkpoint_every=2, **TINY)
    train(cfg, log=lambda *_: None)
    return out


def _params(unet):
    return {k: v.clone() for k, v in unet.state_dict().items()}


def test_model_shapes_and_save_load(tmp_path):
    cfg = ModelConfig(resolution=16, channels=(8, 16), class_names=["a", "b"], mask_channels=1,
                      learned_variance=True, timesteps=10)
    m = DiffusionModel.new(cfg, seed=0)
    x = torch.randn(2, 3, 16, 16)
    out = m(x, 3, torch.tensor([0, 2]), torch.zeros(2, 1, 16, 16))  # 2 is the null class
    assert out.shape == (2, 6, 16, 16)
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    back = DiffusionModel.load(tmp_path / "m")
    assert back.cfg == m.cfg
    torch.testing.assert_close(back(x, 3, torch.tensor([0, 2]), torch.zeros(2, 1, 16, 16)), out)
    with pytest.raises(ModelError, match="not one the model knows"):
        back.class_index("zebra")


def test_model_config_rejects_bad_resolution():
    with pytest.raises(ModelError, match="multiple of 4"):
        ModelConfig(resolution=18, channels=(8, 16, 32)).validate()
    with pytest.raises(ModelError, match="schedule"):
        ModelConfig(schedule="quadratic").validate()


def test_vlb_loss_is_finite_and_trains_only_variance():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=50, variance_type="learned_range")
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    t = torch.tensor([0, 1, 20, 49])
    xt = sched.add_noise(x0, torch.randn_like(x0), t)
    out = torch.zeros(4, 6, 8, 8, requires_grad=True)
    loss = vlb_loss(sched, x0, xt, t, out, "epsilon")
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert out.grad[:, :3].abs().sum() == 0  # stop-gradient on the mean
    assert out.grad[:, 3:].abs().sum() > 0


@pytest.mark.parametrize("schedule,prediction", [("linear", "epsilon"), ("cosine", "v")])
def test_training_writes_model_loss_curve_and_samples(toy, tmp_path, schedule, prediction):
    out = tmp_path / "run"
    cfg = TrainConfig(data=[str(toy["rendered"])], out=str(out), steps=2, checkpoint_every=1, schedule=schedule,
                      prediction=prediction, grad_accum=2, **TINY)
    lines = []
    train(cfg, log=lines.append)
    # every progress line after the first step tells the pace and what is left
    assert re.fullmatch(r"step 2/2 loss [0-9.]+ lr \S+ \| [0-9.]+ steps/s, \d+ img/s, eta 0m00s", lines[-1]), lines
    m = DiffusionModel.load(out)
    assert m.scheduler.config.prediction_type == ("epsilon" if prediction == "epsilon" else "v_prediction")
    assert m.cfg.class_names == ["lesion", "normal"]
    rows = (out / "loss.csv").read_text().splitlines()
    assert len(rows) == 3 and (out / "loss.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-0000001.png", "step-0000002.png"]


def test_resume_equals_uninterrupted(toy, tmp_path):
    base = dict(data=[str(toy["rendered"]), str(toy["real"])], condition="domain", mask=True,
                learned_variance=True, steps=4, checkpoint_every=2, grad_accum=2, sample_every_checkpoint=False,
                **TINY)
    full = train(TrainConfig(out=str(tmp_path / "full"), **base), log=lambda *_: None)
    part = tmp_path / "part"
    train(TrainConfig(out=str(part), **base), log=lambda *_: None)
    # Simulate an interruption after step 2: drop the later checkpoint and the final model.
    import shutil

    shutil.rmtree(part / "checkpoints" / "step-0000004")
    shutil.rmtree(part / "model")
    with pytest.raises(TrainError, match="--resume"):
        train(TrainConfig(out=str(part), **base), log=lambda *_: None)
    train(TrainConfig(out=str(part), **base), resume=True, log=lambda *_: None)
    a = DiffusionModel.load(full / "model").unet.state_dict()
    b = DiffusionModel.load(part / "model").unet.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = torch.load(full / "checkpoints" / "step-0000004" / "state.pt", weights_only=False)
    sb = torch.load(part / "checkpoints" / "step-0000004" / "state.pt", weights_only=False)
    for k in sa["unet"]:
        assert torch.equal(sa["unet"][k], sb["unet"][k]), k
    assert sa["history"] == sb["history"]


def test_different_seed_gives_different_weights(toy, tmp_path):
    runs = [train(TrainConfig(data=[str(toy["rendered"])], out=str(tmp_path / f"s{s}"), steps=1, seed=s,
                              sample_every_checkpoint=False, **TINY),
                  log=lambda *_: None) for s in (0, 1)]
    a, b = (DiffusionModel.load(r).unet.state_dict() for r in runs)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_run_folder_refuses_a_different_run(toy, tmp_path):
    cfg = TrainConfig(data=[str(toy["rendered"])], out=str(tmp_path / "r"), steps=1, **TINY)
    train(cfg, log=lambda *_: None)
    other = TrainConfig(data=[str(toy["rendered"])], out=str(tmp_path / "r"), steps=1, lr=1e-3,
                        **{k: v for k, v in TINY.items()})
    with pytest.raises(TrainError, match="different training run.*lr"):
        train(other, log=lambda *_: None)
    train(other, overwrite=True, log=lambda *_: None)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_samples_any_batch(trained, sampler):
    m = DiffusionModel.load(trained)
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[0, 4:9, 4:9] = 1
    kw = dict(class_ids=[0, 1, 0], masks=masks, sampler=sampler, steps=3, guidance=2.0)
    a = generate(m, seeds=[1, 2, 3], batch_size=3, **kw)
    b = generate(m, seeds=[1, 2, 3], batch_size=1, **kw)
    assert a.shape == (3, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    c = generate(m, seeds=[9, 2, 3], batch_size=3, **kw)
    assert not np.array_equal(a[0], c[0]) and np.array_equal(a[1:], c[1:])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_keep_x0_in_the_image_range(sampler):
    """An untrained model's x0 estimates at high noise are far out of range; every sampler clips them
    as the training schedule asks (clip_sample), so the sample never leaves [-1, 1] before conversion."""
    from synth.diffusion.sample import make_scheduler, reverse

    m = DiffusionModel.new(ModelConfig(resolution=16, channels=(8, 16), timesteps=1000), seed=0)
    assert m.scheduler.config.clip_sample
    sch = make_scheduler(m, sampler)
    sch.set_timesteps({"ddpm": 50, "ddim": 10, "dpm++": 10}[sampler])
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * sch.init_noise_sigma
    out = reverse(m, sch, sampler, x, sch.timesteps, None, None, 1.0, None)
    assert out.abs().max() <= 1.0 + 1e-4, float(out.abs().max())


def test_augment_writes_dataset_and_resumes(trained, toy, tmp_path):
    cfg = AugmentConfig(model=str(trained), out=str(tmp_path / "aug"), n_per_class=2, steps=2,
                        masks_from=str(toy["rendered"]), seed=3)
    augment(cfg, log=lambda *_: None)
    ds = Dataset.open(tmp_path / "aug")
    assert ds.labels() == ["real", "real", "rendered", "rendered"]
    assert ds.manifest["kind"] == "generated" and ds.manifest["counts"]["per_class"] == {"real": 2, "rendered": 2}
    assert all(r.extra["sampler"] == "ddim" and r.mask for r in ds)
    first = ds.image(ds.records[0])
    # An interrupted run: remove one frame's record; the re-run writes exactly that frame again.
    (tmp_path / "aug" / "records" / "000000.json").unlink()
    augment(cfg, log=lambda *_: None)
    np.testing.assert_array_equal(Dataset.open(tmp_path / "aug").image(ds.records[0]), first)
    with pytest.raises(DatasetError, match="different run"):
        augment(AugmentConfig(**{**cfg.__dict__, "seed": 4}), log=lambda *_: None)


def test_augment_errors(trained, tmp_path):
    with pytest.raises(ModelError, match="not one the model knows"):
        augment(AugmentConfig(model=str(trained), out=str(tmp_path / "a"), classes=["polyp"], n_per_class=1,
                              masks_from=None), log=lambda *_: None)
    with pytest.raises(ModelError, match="--masks-from"):
        augment(AugmentConfig(model=str(trained), out=str(tmp_path / "a"), n_per_class=1), log=lambda *_: None)
    with pytest.raises(ModelError, match="does not exist"):
        augment(AugmentConfig(model=str(tmp_path / "nope"), out=str(tmp_path / "a")), log=lambda *_: None)
    assert not (tmp_path / "a").exists()  # nothing half-written


def test_loader_bad_input(toy, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_images([tmp_path / "missing"])
    mixed = make_toy_dataset(tmp_path / "mixed", n=2, size=32)
    with pytest.raises(DatasetError, match="mixed sizes.*--resolution"):
        load_images([toy["rendered"], mixed])
    assert load_images([toy["rendered"], mixed], resolution=16).images.shape == (10, 3, 16, 16)
    with pytest.raises(DatasetError, match="not among"):
        load_images([toy["rendered"]], class_names=["normal"])
    # A corrupt image file.
    bad = make_toy_dataset(tmp_path / "bad", n=2, size=16)
    (bad / "images" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="not a readable image"):
        load_images([bad])
    # A folder that is not a dataset.
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="not a synth dataset"):
        load_images([tmp_path / "plain"])
