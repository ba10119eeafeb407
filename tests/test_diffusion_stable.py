"""Stable Diffusion path with a tiny random pipeline: img2img refine and DreamBooth LoRA fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.diffusion.refine import RefineConfig, refine
from synth.diffusion.stable import DreamBoothConfig, StableError, dreambooth, load_img2img, make_tiny_pipeline
from synth.diffusion.toy import make_toy_dataset
from synth.generator.dataset import Dataset

QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    return {
        "pipe": make_tiny_pipeline(root / "pipe"),
        "rendered": make_toy_dataset(root / "rendered", n=3, size=32, kind="rendered"),
        "real": make_toy_dataset(root / "real", n=4, size=32, kind="real", seed=1),
        "root": root,
    }


def test_img2img_refine_keeps_masks_and_is_seeded(sd, tmp_path):
    outs = []
    for name in ("a", "b"):
        cfg = RefineConfig(rendered=str(sd["rendered"]), out=str(tmp_path / name), model=str(sd["pipe"]),
                           method="img2img", strength=0.6, steps=4, seed=3)
        outs.append(Dataset.open(refine(cfg, **QUIET)))
    src = Dataset.open(sd["rendered"])
    a, b = outs
    assert [(r.id, r.label) for r in a] == [(r.id, r.label) for r in src]
    for ra, rs in zip(a, src):
        np.testing.assert_array_equal(a.mask(ra), src.mask(rs))
        assert ra.extra["method"] == "img2img" and ra.extra["strength"] == 0.6
        np.testing.assert_array_equal(a.image(ra), b.image(b.records[int(ra.id)]))
    assert not np.array_equal(a.image(a.records[0]), src.image(src.records[0]))


@pytest.mark.slow
def test_dreambooth_lora_trains_and_changes_img2img(sd, tmp_path):
    cfg = DreamBoothConfig(pretrained=str(sd["pipe"]), instance_data=str(sd["real"]), out=str(tmp_path / "lora"),
                           resolution=32, steps=2, num_class_images=2, class_steps=2, lr=1e-2)
    out = dreambooth(cfg, **QUIET)
    assert (out / "pytorch_lora_weights.safetensors").exists()
    from safetensors.torch import load_file

    weights = load_file(out / "pytorch_lora_weights.safetensors")
    assert weights and all("lora" in k for k in weights)
    assert any(("lora_B" in k or "lora.up" in k) and v.abs().sum() > 0 for k, v in weights.items())

    image = np.full((1, 32, 32, 3), 0.5, np.float32)

    def run(lora):
        pipe = load_img2img(sd["pipe"], lora)
        return pipe(prompt="a photo of sks polyp", image=image, strength=0.8, num_inference_steps=3,
                    generator=torch.Generator().manual_seed(0), output_type="np").images

    assert not np.allclose(run(None), run(str(out)))


def test_stable_bad_input(sd, tmp_path):
    with pytest.raises(StableError, match="model_index.json"):
        refine(RefineConfig(rendered=str(sd["rendered"]), out=str(tmp_path / "o"), model=str(sd["rendered"]),
                            method="img2img"), **QUIET)
    with pytest.raises(StableError, match="multiple of 8"):
        dreambooth(DreamBoothConfig(pretrained=str(sd["pipe"]), instance_data=str(sd["real"]), out=str(tmp_path / "l"),
                                    resolution=30), **QUIET)
    assert not (tmp_path / "o").exists() and not (tmp_path / "l").exists()
