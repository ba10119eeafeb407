"""`synth refine`: move rendered frames toward real ones while their masks and labels stay valid.

Methods (the method and strength are recorded in every frame's `extra`):

- `sdedit` (Meng et al. 2022): noise the rendered frame to level `strength`, then denoise under
  the real-domain class. Low strength keeps the layout; high strength trusts the model more.
  With a texture model (`synth diffusion train --crop N` on real folders: unconditional, trained
  on crops, fully convolutional) the whole frame is denoised at the scale the crops were cut at,
  so the render keeps its layout and borrows real local texture; pixels outside the render's
  field of view stay as rendered.
- `ddib` (Su et al. 2023, dual diffusion implicit bridges): deterministic DDIM inversion under
  the rendered class up to `strength`, then DDIM decoding under the real class. No noise is
  added, so the same frame always maps to the same refined frame.
- `img2img`: a Stable Diffusion img2img pipeline from a local checkpoint (see stable.py).
- `reinhard`, `histogram`, `fda`: no model, no training (synth.generator.restyle): Lab colour
  transfer, histogram matching or Fourier domain adaptation (`beta`) toward a real frame drawn
  per rendered frame with the seed (`--real-holdout H` draws only from the frames that
  `synth classify --holdout H --seed N` would train on, never from its test part). The frames
  keep their size; `strength` blends the restyled frame with the render (1: fully restyled).

With a mask-conditioned model the frame's lesion mask is an input at every denoising step, so the
lesion is redrawn where the mask says and the mask stays a correct label. Without `--model`,
a model is first trained on the rendered and real folders with the domain (the manifest's
`kind`) as class and the masks as condition.

The refined dataset keeps every frame's id, label, mask (resized to the model's resolution
with nearest-neighbour), depth and spec; `source` names the rendered frame.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from synth import UserError
from synth.diffusion.data import dataset_domain, mask_to_model, resize_image, resize_mask, to_model_range, to_uint8
from synth.diffusion.model import DiffusionModel, resolve_model_path
from synth.diffusion.refined import finish, write_refined
from synth.diffusion.sample import (SAMPLERS, generators, guided_output, make_scheduler, partial_timesteps,
                                    pick_device, reverse, seed_for)
from synth.diffusion.stable import refine_img2img
from synth.generator.dataset import Dataset, DatasetError, DatasetWriter
from synth.generator.restyle import render_fov
from synth.rng import REFINE_STREAM

RESTYLE = ("reinhard", "histogram", "fda")  # synth.generator.restyle.METHODS: no model needed
METHODS = ("sdedit", "ddib", "img2img") + RESTYLE


class RefineError(UserError):
    """A refine option that cannot be used."""


@dataclass
class RefineConfig:
    rendered: str
    out: str
    real: list[str] = field(default_factory=list)
    model: str | None = None
    method: str = "sdedit"
    strength: float | None = None  # default: 0.5 for the diffusion methods, 1 (fully restyled) for RESTYLE
    beta: float = 0.01  # fda: half-size of the swapped low-frequency square, as a fraction of the side
    real_holdout: float = 0.0  # RESTYLE: draw styles only from the training pool of this holdout split
    sampler: str = "ddim"
    steps: int = 50
    guidance: float = 1.5
    source_class: str | None = None  # default: the rendered folder's kind
    target_class: str = "real"
    batch_size: int = 16
    seed: int = 0
    limit: int | None = None
    # Training when no --model is given.
    run: str | None = None  # training run folder (default: <out>-model)
    train_steps: int = 2000
    resolution: int = 64
    channels: tuple[int, ...] = (32, 64, 128)
    train_batch_size: int = 16
    lr: float = 2e-4
    # img2img
    prompt: str = "an endoscopy photo"
    lora: str | None = None  # LoRA weights from `synth diffusion dreambooth`

    def validate(self) -> "RefineConfig":
        if self.method not in METHODS:
            raise RefineError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.sampler not in SAMPLERS:
            raise RefineError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.method in RESTYLE:
            return self._validate_restyle()
        if self.strength is None:
            self.strength = 0.5
        if not 0.0 < self.strength <= 1.0:
            raise RefineError(f"--strength must be in (0, 1], got {self.strength}")
        if self.steps <= 0 or self.batch_size <= 0:
            raise RefineError("--steps and --batch-size must be positive")
        if self.model is None and not self.real:
            raise RefineError("give real images to learn from (--real FOLDER) or a trained --model")
        if self.method == "img2img" and self.model is None:
            raise RefineError("--method img2img needs --model, a local Stable Diffusion checkpoint folder")
        return self

    def _validate_restyle(self) -> "RefineConfig":
        if self.strength is None:
            self.strength = 1.0
        if not 0.0 <= self.strength <= 1.0:
            raise RefineError(f"--strength must be in [0, 1] for --method {self.method}, got {self.strength}")
        if not 0.0 < self.beta <= 0.5:
            raise RefineError(f"--beta must be in (0, 0.5], got {self.beta}")
        if not 0.0 <= self.real_holdout < 1.0:
            raise RefineError(f"--real-holdout must be in [0, 1), got {self.real_holdout}")
        if not self.real:
            raise RefineError(f"--method {self.method} takes its styles from real frames: give --real FOLDER "
                              "(from `synth data import`)")
        if self.model is not None:
            raise RefineError(f"--method {self.method} uses no model; leave out --model")
        if self.limit is not None and self.limit < 0:
            raise RefineError("--limit must be >= 0")
        return self


# --------------------------------------------------------------------------- the two pixel-space methods


def eps_from_output(out, x, alpha_bar, prediction_type: str):
    """The noise estimate from a model output (epsilon or v prediction)."""
    if prediction_type == "epsilon":
        return out
    a, s = alpha_bar ** 0.5, (1 - alpha_bar) ** 0.5
    return a * out + s * x  # v = a*eps - s*x0 and x = a*x0 + s*eps  =>  eps = a*v + s*x


@torch.no_grad()
def sdedit(model: DiffusionModel, x0, class_ids, mask, *, strength, sampler="ddim", steps=50, guidance=1.0,
           gens=None):
    """Noise x0 (model range) to `strength`, then denoise under `class_ids`."""
    from diffusers.utils.torch_utils import randn_tensor

    sched = make_scheduler(model, sampler)
    ts = partial_timesteps(sched, steps, strength)
    noise = randn_tensor(x0.shape, generator=gens, device=x0.device, dtype=x0.dtype)
    xt = sched.add_noise(x0, noise, ts[:1].repeat(x0.shape[0]))
    return reverse(model, sched, sampler, xt, ts, class_ids, mask, guidance, gens)


@torch.no_grad()
def ddim_invert(model: DiffusionModel, x0, class_ids, mask, timesteps_desc):
    """Deterministic DDIM inversion of x0 along the (descending) grid; returns x at its first timestep."""
    ac = model.scheduler.alphas_cumprod.to(x0.device)
    pred = model.scheduler.config.prediction_type
    x, ab_prev = x0, torch.tensor(1.0, device=x0.device)
    for t in reversed(list(timesteps_desc)):
        ab = ac[int(t)]
        # The usual inversion approximation: the noise at the next level is predicted from the current x.
        out = guided_output(model, x, t, class_ids, mask, 1.0, keep_variance=False)
        eps = eps_from_output(out, x, ab, pred)
        x0_pred = (x - (1 - ab_prev).sqrt() * eps) / ab_prev.sqrt()
        x = ab.sqrt() * x0_pred + (1 - ab).sqrt() * eps
        ab_prev = ab
    return x


@torch.no_grad()
def ddib(model: DiffusionModel, x0, source_ids, target_ids, mask, *, strength, steps=50, guidance=1.0):
    """DDIM-invert under the source class, decode under the target class (no randomness)."""
    sched = make_scheduler(model, "ddim")
    ts = partial_timesteps(sched, steps, strength)
    xt = ddim_invert(model, x0, source_ids, mask, ts)
    return reverse(model, sched, "ddim", xt, ts, target_ids, mask, guidance, None)


# --------------------------------------------------------------------------- the command


def _domains(cfg: RefineConfig) -> tuple[Dataset, list[Dataset]]:
    rendered = Dataset.open(cfg.rendered)
    if len(rendered) == 0:
        raise DatasetError(f"dataset {cfg.rendered} has no frames")
    reals = [Dataset.open(p) for p in cfg.real]
    for ds in reals:
        if dataset_domain(ds) == dataset_domain(rendered):
            raise RefineError(f"{ds.root} and {rendered.root} are both of kind {dataset_domain(ds)!r}; "
                              "the real folder must come from `synth data import`")
    return rendered, reals


def train_for_refine(cfg: RefineConfig, rendered: Dataset, log=print) -> Path:
    """Train (or reuse a finished) domain-conditioned, mask-conditioned model for this refine run."""
    from synth.diffusion.train import TrainConfig, latest_checkpoint, train

    run = Path(cfg.run or f"{cfg.out.rstrip('/')}-model")
    tcfg = TrainConfig(
        data=[str(rendered.root)] + [str(p) for p in cfg.real], out=str(run), resolution=cfg.resolution,
        condition="domain", channels=tuple(cfg.channels), mask=rendered.has_masks(), steps=cfg.train_steps,
        batch_size=cfg.train_batch_size, lr=cfg.lr, warmup_steps=min(100, cfg.train_steps // 10),
        checkpoint_every=max(1, cfg.train_steps // 4), seed=cfg.seed, limit=cfg.limit,
    )
    cfg_path = run / "config.json"
    if cfg_path.exists() and (run / "model").exists():
        old = json.loads(cfg_path.read_text())
        if old == json.loads(json.dumps(asdict(tcfg))):
            log(f"reusing the model trained in {run}")
            return run / "model"
    resume = cfg_path.exists() and latest_checkpoint(run) is not None
    log(f"training a refine model in {run} ({cfg.train_steps} steps)")
    train(tcfg, resume=resume, log=log)
    return run / "model"


def refine(cfg: RefineConfig, *, overwrite: bool = False, log=print) -> Path:
    cfg.validate()
    if cfg.method in RESTYLE:
        return refine_restyle(cfg, overwrite=overwrite, log=log)
    rendered, _ = _domains(cfg)
    if cfg.method == "img2img":
        return refine_img2img(cfg, rendered, overwrite=overwrite, log=log)
    model_path = resolve_model_path(cfg.model) if cfg.model else train_for_refine(cfg, rendered, log)
    model = DiffusionModel.load(model_path)
    src_name = cfg.source_class or dataset_domain(rendered)
    if not model.cfg.class_names and cfg.method == "ddib":
        raise RefineError("--method ddib maps the rendered class onto the real one: it needs a domain-conditioned "
                          "model (`synth diffusion train --condition domain` on rendered and real folders)")
    # An unconditional model (trained on real frames only) is the real domain: no class to ask for.
    tgt = model.class_index(cfg.target_class) if model.cfg.class_names else None
    src = model.class_index(src_name) if cfg.method == "ddib" else None
    # A crop-trained (texture) model is fully convolutional: it takes the whole frame at the scale
    # its crops were cut at, so real texture is added at the size it has in real frames.
    res = model.cfg.frame_resolution or model.cfg.resolution
    records = rendered.records[: cfg.limit]
    config = {"command": "refine", **asdict(cfg), "model": str(model_path)}
    # Frames go in, and come out, with the model's image channels (a greyscale model: grey).
    ch = model.cfg.image_channels
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=rendered.class_names, overwrite=overwrite,
                           channels=ch)
    done = writer.done_ids()
    todo = [(i, r) for i, r in enumerate(records) if r.id not in done]
    dev = pick_device()
    model.unet.to(dev)
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start:start + cfg.batch_size]
        imgs = np.stack([resize_image(rendered.image(r, ch), res).transpose(2, 0, 1) for _, r in chunk])
        inst = [resize_mask(rendered.mask(r), res) for _, r in chunk]
        x0 = to_model_range(torch.from_numpy(imgs)).to(dev)
        m = mask_to_model(torch.from_numpy(np.stack([(k > 0).astype(np.uint8) for k in inst])).to(dev)) \
            if model.cfg.mask_channels else None
        tgt_ids = torch.full((len(chunk),), tgt, device=dev) if tgt is not None else None
        seeds = [seed_for(cfg.seed, REFINE_STREAM, i) for i, _ in chunk]
        if cfg.method == "sdedit":
            out = sdedit(model, x0, tgt_ids, m, strength=cfg.strength, sampler=cfg.sampler, steps=cfg.steps,
                         guidance=cfg.guidance, gens=generators(seeds, dev))
        else:
            src_ids = torch.full((len(chunk),), src, device=dev)
            out = ddib(model, x0, src_ids, tgt_ids, m, strength=cfg.strength, steps=cfg.steps,
                       guidance=cfg.guidance)
        refined = to_uint8(out)
        if model.cfg.frame_resolution:
            # A texture model never saw the scope's border (its crops lie inside the view): keep the
            # render's own pixels outside its field of view, so the border stays black.
            refined = np.stack([np.where(render_fov(src_img.transpose(1, 2, 0), rendered.spec(r))[..., None],
                                         ref, src_img.transpose(1, 2, 0))
                                for ref, src_img, (_, r) in zip(refined, imgs, chunk)])
        for (i, r), img, k, s in zip(chunk, refined, inst, seeds):
            write_refined(writer, rendered, r, img, k if r.mask else None, seed=s, extra={
                "method": cfg.method, "strength": cfg.strength,
                "sampler": "ddim" if cfg.method == "ddib" else cfg.sampler, "steps": cfg.steps,
                "guidance": cfg.guidance, "target_class": cfg.target_class, "source_class": src_name,
                "model": str(model_path)})
        log(f"{len(done) + start + len(chunk)}/{len(records)} frames refined")
    return finish(writer, rendered, records, config, cfg.seed, str(model_path))


# --------------------------------------------------------------------------- no-training methods


def style_pool(reals: list[Dataset], holdout: float, seed: int) -> list[tuple[Dataset, object]]:
    """(folder, record) of every real frame a style may be drawn from.

    With `holdout` > 0 only each folder's training pool: the frames `synth classify --holdout H
    --seed N` trains on when the folder is also its test folder, so no test frame lends its style.
    """
    from synth.generator.splits import holdout_split

    pool = []
    for ds in reals:
        idx = holdout_split(ds, holdout, seed)[0] if holdout > 0 else range(len(ds))
        pool += [(ds, ds.records[int(i)]) for i in idx]
    if not pool:
        raise RefineError("the --real folder(s) have no frames to take styles from")
    return pool


def refine_restyle(cfg: RefineConfig, *, overwrite: bool = False, log=print) -> Path:
    """reinhard / histogram / fda: each rendered frame restyled toward one seeded real frame.

    Frames keep their size, mask, label, depth and spec; each record names its style frame.
    """
    import time

    from synth.generator import restyle

    rendered, reals = _domains(cfg)
    pool = style_pool(reals, cfg.real_holdout, cfg.seed)
    records = rendered.records[: cfg.limit]
    config = {"command": "refine", **asdict(cfg)}
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=rendered.class_names, overwrite=overwrite)
    done = writer.done_ids()
    params = {"method": cfg.method, "strength": cfg.strength}
    if cfg.method == "fda":
        params["beta"] = cfg.beta
    t0, n = time.time(), 0
    for i, r in enumerate(records):
        if r.id in done:
            continue
        img = rendered.image(r)
        # Frame i's style depends only on (seed, i): a resumed or re-run command draws the same.
        ds, style = pool[restyle.style_choice(cfg.seed, i, len(pool))]
        out = restyle.restyle(cfg.method, img, ds.image(style), render_fov=restyle.render_fov(img, rendered.spec(r)),
                              beta=cfg.beta, strength=cfg.strength)
        write_refined(writer, rendered, r, out, rendered.mask(r) if r.mask else None, seed=cfg.seed,
                      extra={**params, "style": f"{ds.root}:{style.id}", "style_id": style.id})
        n += 1
        if n % 200 == 0 or i == len(records) - 1:
            log(f"{len(done) + n}/{len(records)} frames restyled ({n / max(time.time() - t0, 1e-9):.0f}/s)")
    return finish(writer, rendered, records, config, cfg.seed, None, real=[str(d.root) for d in reals],
                  style_frames=len(pool), restyle=params)
