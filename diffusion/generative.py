"""VAE and GAN generators beside the diffusion models: their model folder, and one training loop for both.

`synth vae train` and `synth gan train` run `train` below with the method's network and
optimizer step (diffusion/vae.py, diffusion/gan.py); `synth augment` samples the saved model.
The run folder has the shape of `synth diffusion train`'s, and the same guard (a folder holding
another run is refused without --overwrite; --resume continues from the newest checkpoint)::

    config.json                    the run's VAETrainConfig / GANTrainConfig, its method included
    checkpoints/step-0001000/      model/ (loadable) + state.pt (to resume)
    samples/step-0001000.png       a fixed-seed sample grid per checkpoint, one row per class
    loss.csv, loss.png             the losses per step (GAN: `loss` is the discriminator's)
    model/                         the final model

A model folder holds `model.safetensors` (the weights of the network that samples: the whole
VAE, or the GAN's EMA generator) and `config.json`, which names the method, the class names in
the training data's order, the image channels (1 grey, 3 RGB), the size, the widths and the
latent size, and what the model was trained on.

Exact resume as in diffusion/train.py: every random draw of step s comes from a generator
seeded by (seed, s) and the data order of epoch e from (seed, e), so a checkpoint needs only
the weights and optimizer states, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from synth.diffusion.config import GENERATIVE_METHODS, GenerativeTrainConfig, ModelError, TrainError
from synth.diffusion.data import ImageSet, load_images, to_model_range, to_uint8
from synth.diffusion.model import GENERATIVE_CONFIG, GENERATIVE_WEIGHTS, find_model
from synth.diffusion.sample import pick_device, save_grid, seed_for
from synth.diffusion.train import _check_run_folder, _pace, plot_loss  # the diffusion run's folder guard and log
from synth.rng import GENERATIVE_EPOCH_STREAM, GENERATIVE_GRID_STREAM, GENERATIVE_INIT_STREAM, \
    GENERATIVE_NOISE_STREAM, fork_rng


@dataclass
class GeneratorConfig:
    """What a VAE or GAN model folder's config.json holds besides `info`."""

    method: str
    resolution: int
    image_channels: int
    class_names: list[str] = field(default_factory=list)
    channels: tuple[int, ...] = (32, 64)
    latent_dim: int = 64

    def validate(self) -> "GeneratorConfig":
        self.channels = tuple(int(c) for c in self.channels)
        if self.method not in GENERATIVE_METHODS:
            raise ModelError(f"method must be one of {', '.join(GENERATIVE_METHODS)}, got {self.method!r}")
        factor = 2 ** len(self.channels)
        if self.resolution < factor or self.resolution % factor:
            raise ModelError(f"image size {self.resolution} must be a multiple of {factor} for {len(self.channels)} "
                             "levels (--channels); pass --resolution or fewer --channels")
        if self.image_channels not in (1, 3):
            raise ModelError(f"image_channels must be 1 (greyscale) or 3 (RGB), got {self.image_channels}")
        if not self.class_names:
            raise ModelError("a VAE or GAN needs class labels; the data has none")
        return self


def build_net(cfg: GeneratorConfig) -> torch.nn.Module:
    """The network that samples: the VAE, or the GAN's generator (initial weights from torch's global generator)."""
    from synth.diffusion.gan import Generator
    from synth.diffusion.vae import ConditionalVAE

    kind = ConditionalVAE if cfg.method == "vae" else Generator
    return kind(cfg.image_channels, cfg.resolution, len(cfg.class_names), cfg.channels, cfg.latent_dim)


class GenerativeModel:
    """A VAE or GAN generator and what its labels mean. Plain object, no training state."""

    def __init__(self, cfg: GeneratorConfig, net: torch.nn.Module, info: dict | None = None):
        self.cfg, self.net, self.info = cfg, net, dict(info or {})

    @classmethod
    def new(cls, cfg: GeneratorConfig, seed: int) -> "GenerativeModel":
        with fork_rng(seed_for(seed, GENERATIVE_INIT_STREAM)):
            return cls(cfg.validate(), build_net(cfg))

    def class_index(self, name: str) -> int:
        if name not in self.cfg.class_names:
            raise ModelError(f"class {name!r} is not one the model knows ({', '.join(self.cfg.class_names)})")
        return self.cfg.class_names.index(name)

    def save(self, path: Path | str) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
                  path / GENERATIVE_WEIGHTS)
        meta = {**asdict(self.cfg), "info": self.info}
        (path / GENERATIVE_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str, method: str | None = None) -> "GenerativeModel":
        """Load a model folder or run folder (its final model, else its newest checkpoint's).
        `method` (vae, gan): refuse a folder holding another kind of model, saying what it holds."""
        from safetensors.torch import load_file

        path = Path(path)
        what = method or "vae or gan"
        if not path.exists():
            raise ModelError(f"model {path} does not exist; train one with `synth {method or 'gan'} train`")
        found = find_model(path)
        if found is None:
            raise ModelError(f"{path} is not a synth {what} model or training run "
                             f"(no {GENERATIVE_CONFIG} + {GENERATIVE_WEIGHTS})")
        held, folder = found
        if held not in GENERATIVE_METHODS or (method and held != method):
            kind = "a diffusion model (ddpm)" if held == "ddpm" else f"a {held} model"
            raise ModelError(f"{path} holds {kind}, not a {what} model; pass --method {held} or leave --method out")
        meta = json.loads((folder / GENERATIVE_CONFIG).read_text())
        info = meta.pop("info", {})
        known = GeneratorConfig.__dataclass_fields__
        cfg = GeneratorConfig(**{k: v for k, v in meta.items() if k in known}).validate()
        net = build_net(cfg)
        try:
            net.load_state_dict(load_file(folder / GENERATIVE_WEIGHTS))
        except Exception as e:  # a truncated file, or weights of another shape
            raise ModelError(f"{folder / GENERATIVE_WEIGHTS} does not hold the weights its {GENERATIVE_CONFIG} "
                             f"describes ({type(e).__name__}); train the model again") from None
        return cls(cfg, net.eval(), info)

    @torch.no_grad()
    def generate(self, *, class_ids: Sequence[int], seeds: Sequence[int], batch_size: int = 64,
                 device: str | None = None) -> np.ndarray:
        """One image per (class, seed): uint8 (N, H, W, C), C = cfg.image_channels. Image i depends only
        on seeds[i] and class_ids[i] (its latent comes from its own generator; the network is in eval mode)."""
        dev = pick_device(device)
        net = self.net.to(dev).eval()
        out = []
        for s in range(0, len(seeds), batch_size):
            z = torch.stack([torch.randn(self.cfg.latent_dim, generator=torch.Generator().manual_seed(int(k)))
                             for k in seeds[s:s + batch_size]]).to(dev)
            y = torch.as_tensor(list(class_ids[s:s + batch_size]), dtype=torch.long, device=dev)
            out.append(to_uint8(net.sample(z, y)))
        return np.concatenate(out) if out else np.zeros((0, self.cfg.resolution, self.cfg.resolution,
                                                         self.cfg.image_channels), np.uint8)


# --------------------------------------------------------------------------- training


def _trainer(model: GenerativeModel, cfg: GenerativeTrainConfig, dev: torch.device):
    if cfg.method == "vae":
        from synth.diffusion.vae import VAETrainer

        return VAETrainer(model.net, cfg, dev)
    from synth.diffusion.gan import Discriminator, GANTrainer

    with fork_rng(seed_for(cfg.seed, GENERATIVE_INIT_STREAM, 1)):  # its own initial weights, apart from G's
        d = Discriminator(model.cfg.image_channels, len(model.cfg.class_names), model.cfg.channels)
    return GANTrainer(model.net, cfg, dev, d)


def _write_history(out: Path, history: list[dict]) -> None:
    if not history:
        return
    tmp = out / ".loss.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, out / "loss.csv")
    plot_loss(history, out / "loss.png")


def _snapshot(model: GenerativeModel, net: torch.nn.Module, info: dict) -> GenerativeModel:
    """A standalone CPU copy of the sampling network (training goes on with the original)."""
    return GenerativeModel(model.cfg, copy.deepcopy(net).to("cpu").eval(), info)


def write_sample_grid(model: GenerativeModel, path: Path, seed: int, per_class: int = 8) -> None:
    """A fixed-seed grid, one row per class, to watch training progress."""
    n = len(model.cfg.class_names)
    ids = [c for c in range(n) for _ in range(per_class)]
    seeds = [seed_for(seed, GENERATIVE_GRID_STREAM, i) for i in range(len(ids))]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(model.generate(class_ids=ids, seeds=seeds), path, ncol=per_class)


def train(cfg: GenerativeTrainConfig, *, overwrite: bool = False, resume: bool = False,
          data: ImageSet | None = None, log=print) -> Path:
    """Train a VAE or GAN as `cfg` says; returns the run folder (its final model is `out/model`)."""
    cfg.validate()
    out = Path(cfg.out)
    resume_from = _check_run_folder(cfg, overwrite, resume, log)
    if data is None:
        data = load_images(cfg.data, resolution=cfg.resolution, condition="label", limit_per_dataset=cfg.limit)
    mcfg = GeneratorConfig(method=cfg.method, resolution=data.resolution, image_channels=data.channels,
                           class_names=list(data.class_names), channels=cfg.channels, latent_dim=cfg.latent_dim)
    model = GenerativeModel.new(mcfg, cfg.seed)
    model.info = {"trained_on": [str(p) for p in cfg.data], "frames": len(data),
                  "train_config": json.loads(json.dumps(asdict(cfg)))}
    dev = pick_device()
    trainer = _trainer(model, cfg, dev)
    step, history = 0, []
    if resume_from is not None:
        state = torch.load(resume_from / "state.pt", map_location=dev, weights_only=False)
        trainer.load_state_dict(state["trainer"])
        step, history = state["step"], state["history"]
        log(f"resuming {out} from step {step}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    images, labels, n = torch.from_numpy(data.images), torch.from_numpy(data.labels), len(data)

    @lru_cache(maxsize=4)
    def epoch_order(epoch: int) -> np.ndarray:
        return np.random.default_rng(np.random.SeedSequence([cfg.seed, GENERATIVE_EPOCH_STREAM, epoch])).permutation(n)

    def batch(s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        pos = s * cfg.batch_size + np.arange(cfg.batch_size)
        idx = torch.from_numpy(np.array([epoch_order(int(p // n))[p % n] for p in pos]))
        g = torch.Generator().manual_seed(seed_for(cfg.seed, GENERATIVE_NOISE_STREAM, s))
        x = to_model_range(images[idx])
        if cfg.flip:
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x.to(dev), labels[idx].to(dev), g

    def save(at: int, folder: Path, checkpoint: bool) -> GenerativeModel:
        """The model at step `at` into `folder`; a checkpoint holds it as model/ beside state.pt."""
        snap = _snapshot(model, trainer.sampling_net(), {**model.info, "step": at})
        tmp = folder.with_name("." + folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if checkpoint:
            tmp.mkdir(parents=True)
            torch.save({"trainer": trainer.state_dict(), "step": at, "history": history}, tmp / "state.pt")
            snap.save(tmp / "model")
        else:
            snap.save(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # a checkpoint or model appears whole or not at all
        _write_history(out, history)
        return snap

    first_step, t_start = step, time.perf_counter()
    while step < cfg.steps:
        x, y, g = batch(step)
        row = trainer.step(x, y, g)
        if not all(math.isfinite(v) for v in row.values()):
            raise TrainError(f"loss became {row} at step {step + 1}; lower --lr")
        step += 1
        history.append({"step": step, **{k: round(v, 6) for k, v in row.items()}})
        if step % max(1, cfg.steps // 20) == 0 or step == 1:
            log(f"step {step}/{cfg.steps} " + " ".join(f"{k} {v:.4f}" for k, v in row.items())
                + _pace(step - first_step, cfg.steps - step, time.perf_counter() - t_start, cfg.batch_size))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            snap = save(step, out / "checkpoints" / f"step-{step:07d}", checkpoint=True)
            write_sample_grid(snap, out / "samples" / f"step-{step:07d}.png", cfg.seed)
    save(step, out / "model", checkpoint=False)
    return out

