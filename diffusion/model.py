"""The diffusion model: a diffusers `UNet2DModel` plus its `DDPMScheduler`, saved as one folder.

A model folder holds exactly what sampling needs, so `sample`, `refine`, `augment` and
`anomaly` load it without the training code::

    unet/               UNet2DModel.save_pretrained (config.json + safetensors)
    scheduler/          DDPMScheduler.save_pretrained (the training noise schedule)
    synth_model.json    class names, image channels, mask conditioning, resolution, and what it was trained on

`resolve_model_path` also recognises the VAE and GAN folders of diffusion/generative.py, so
passing one where a diffusion model is needed says what the folder holds.

Images have `image_channels` channels: 3 for RGB data, 1 for greyscale data (CT, MRI, X-ray),
so a grey dataset is learned and sampled as one channel rather than three that drift apart.

Conditioning:
- class labels through the U-Net's class embedding; one extra "null" class is the
  unconditional label used for classifier-free guidance (trained by dropping labels);
- an optional lesion mask as an extra input channel (in [-1, 1]), so samples follow a mask.

Learned variance (improved DDPM, Nichol & Dhariwal 2021) doubles the output channels: the
second half interpolates the log variance between the posterior variance and beta_t, which is
exactly diffusers' `variance_type="learned_range"`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from synth.diffusion.config import PREDICTIONS, SCHEDULES, ModelConfig, ModelError  # noqa: F401  (also this module's API)

META_FILE = "synth_model.json"


def build_unet(cfg: ModelConfig):
    from diffusers import UNet2DModel

    n = len(cfg.channels)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if cfg.attention:
        down[-1] = "AttnDownBlock2D"
        up[0] = "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=cfg.resolution,
        in_channels=cfg.image_channels + cfg.mask_channels,
        out_channels=cfg.image_channels * (2 if cfg.learned_variance else 1),
        layers_per_block=cfg.layers_per_block,
        block_out_channels=cfg.channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=cfg.norm_groups,
        attention_head_dim=min(8, cfg.channels[-1]),
        num_class_embeds=cfg.num_classes + 1 if cfg.class_names else None,
    )


def build_scheduler(cfg: ModelConfig):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=cfg.timesteps,
        beta_schedule=SCHEDULES[cfg.schedule],
        prediction_type=PREDICTIONS[cfg.prediction],
        variance_type="learned_range" if cfg.learned_variance else "fixed_small",
        clip_sample=True,
    )


class DiffusionModel:
    """A U-Net, its training noise schedule and what the labels mean. Plain object, no training state."""

    def __init__(self, cfg: ModelConfig, unet=None, scheduler=None, info: dict | None = None):
        self.cfg = cfg
        self.unet = unet if unet is not None else build_unet(cfg)
        self.scheduler = scheduler if scheduler is not None else build_scheduler(cfg)
        self.info = dict(info or {})

    @classmethod
    def new(cls, cfg: ModelConfig, seed: int) -> "DiffusionModel":
        # Weight init draws from torch's global generator; fork it so the caller's state is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(cfg.validate())

    # ------------------------------------------------------------------ conditioning

    def class_index(self, name: str) -> int:
        if not self.cfg.class_names:
            raise ModelError("this model is unconditional; it has no classes to choose from")
        if name not in self.cfg.class_names:
            raise ModelError(f"class {name!r} is not one the model knows ({', '.join(self.cfg.class_names)})")
        return self.cfg.class_names.index(name)

    def __call__(self, x: torch.Tensor, t, class_ids: torch.Tensor | None, mask: torch.Tensor | None):
        """Raw U-Net output for noisy images x (B,C,H,W) at timestep(s) t (C = cfg.image_channels)."""
        if self.cfg.mask_channels:
            if mask is None:
                raise ModelError("this model is mask-conditioned: give a mask for every image")
            x = torch.cat([x, mask.to(x.dtype)], dim=1)
        labels = class_ids if self.cfg.class_names else None
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        return self.unet(x, t, class_labels=labels).sample

    # ------------------------------------------------------------------ files

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(path / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(path / "scheduler")
        meta = {"model": asdict(self.cfg), "info": self.info}
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> "DiffusionModel":
        from diffusers import DDPMScheduler, UNet2DModel

        path = resolve_model_path(path)
        meta = json.loads((path / META_FILE).read_text())
        m = dict(meta["model"])
        m["channels"] = tuple(m["channels"])
        cfg = ModelConfig(**m)
        unet = UNet2DModel.from_pretrained(path / "unet")
        scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
        unet.eval()
        return cls(cfg, unet, scheduler, meta.get("info"))


# A VAE or GAN model folder (diffusion/generative.py): its config.json names the method.
GENERATIVE_CONFIG = "config.json"
GENERATIVE_WEIGHTS = "model.safetensors"


def model_method(folder: Path) -> str | None:
    """What a model folder holds: "ddpm" (a diffusion model), "vae" or "gan"; None if no model."""
    if (folder / META_FILE).is_file():
        return "ddpm"
    if (folder / GENERATIVE_CONFIG).is_file() and (folder / GENERATIVE_WEIGHTS).is_file():
        try:
            method = json.loads((folder / GENERATIVE_CONFIG).read_text()).get("method")
        except (json.JSONDecodeError, AttributeError):
            return None
        return str(method) if method else None
    return None


def find_model(path: Path | str) -> tuple[str, Path] | None:
    """(method, model folder) of a model folder or training run folder (its final model, else its
    newest checkpoint's), or None when there is no model there."""
    path = Path(path)
    ckpts = sorted((path / "checkpoints").glob("step-*/model"), reverse=True) if (path / "checkpoints").is_dir() \
        else []
    for folder in (path, path / "model", *ckpts):
        method = model_method(folder)
        if method:
            return method, folder
    return None


def resolve_model_path(path: Path | str) -> Path:
    """Accept a model folder, or a training run folder (its final model, else its newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist; train one with `synth diffusion train`")
    found = find_model(path)
    if found is None:
        raise ModelError(f"{path} is not a synth diffusion model or training run (no {META_FILE})")
    method, folder = found
    if method != "ddpm":
        raise ModelError(f"{path} holds a {method} model (from `synth {method} train`), not a diffusion model; "
                         f"only `synth augment --model {path}` samples it")
    return folder
