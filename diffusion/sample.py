"""Sampling: DDPM, DDIM and DPM-Solver++ (diffusers schedulers) with classifier-free guidance.

The loop is explicit, as in diffusers: `set_timesteps`, then the model, then `scheduler.step`.
Every image gets its own `torch.Generator` (diffusers accepts a list, one per batch item), so
sample i depends only on its seed: the same seed gives the same image whatever the batch size
or the other images in the batch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from synth.diffusion.data import mask_to_model, to_uint8
from synth.diffusion.model import DiffusionModel, ModelError

SAMPLERS = ("ddpm", "ddim", "dpm++")
DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "dpm++": 20}


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_scheduler(model: DiffusionModel, sampler: str):
    """A sampling scheduler sharing the model's training noise schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    cfg = model.scheduler.config
    if sampler == "ddpm":
        return DDPMScheduler.from_config(cfg)
    if sampler == "ddim":
        return DDIMScheduler.from_config(cfg)
    if sampler == "dpm++":
        # The learned variance is only used by ancestral DDPM; the ODE solvers ignore it.
        # DDPM and DDIM clip each step's predicted x0 to the image range (clip_sample). DPM-Solver++
        # has no clip_sample; without the equivalent (thresholding at 1.0, i.e. clipping) an
        # epsilon model's x0 estimate at high noise (x_t / sqrt(alpha_bar), about 100x at t=999 on
        # the linear schedule) carries its error straight into the sample, which saturates.
        clip = bool(cfg.get("clip_sample", False))
        return DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, variance_type=None,
            thresholding=clip, sample_max_value=float(cfg.get("clip_sample_range", 1.0)),
        )
    raise ModelError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")


def seed_for(seed: int, *keys: int) -> int:
    """A 63-bit torch seed that is a pure function of (seed, keys)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


@torch.no_grad()
def guided_output(model: DiffusionModel, x, t, class_ids, mask, guidance: float, *, keep_variance: bool):
    """Model output with classifier-free guidance: uncond + w * (cond - uncond) on the mean part."""
    cfg = model.cfg
    c = cfg.image_channels  # the mean (or noise/v) part; a learned variance fills the next c channels
    if cfg.class_names and guidance != 1.0:
        null = torch.full_like(class_ids, cfg.null_class)
        both = model(torch.cat([x, x]), t, torch.cat([class_ids, null]),
                     None if mask is None else torch.cat([mask, mask]))
        cond, uncond = both.chunk(2)
        mean = uncond[:, :c] + guidance * (cond[:, :c] - uncond[:, :c])
        out = torch.cat([mean, cond[:, c:]], dim=1)
    else:
        out = model(x, t, class_ids, mask)
    # Only DDPM's ancestral step uses the learned variance channels.
    return out if keep_variance else out[:, :c]


def partial_timesteps(scheduler, steps: int, strength: float):
    """Timesteps from noise level `strength` (1.0: pure noise) down to 0 (SDEdit / img2img)."""
    if not 0.0 < strength <= 1.0:
        raise ModelError(f"--strength must be in (0, 1], got {strength}")
    scheduler.set_timesteps(steps)
    n = max(1, min(steps, int(round(steps * strength))))
    start = (steps - n) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


@torch.no_grad()
def reverse(model, scheduler, sampler, x, timesteps, class_ids, mask, guidance, gens):
    """Run the reverse process over `timesteps` from noisy x; returns x_0 in model range."""
    for t in timesteps:
        out = guided_output(model, x, t, class_ids, mask, guidance, keep_variance=sampler == "ddpm")
        x = scheduler.step(out, t, x, generator=gens).prev_sample
    return x


def _batches(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


@torch.no_grad()
def generate(
    model: DiffusionModel,
    *,
    class_ids: Sequence[int] | None,
    seeds: Sequence[int],
    masks: np.ndarray | None = None,
    sampler: str = "ddim",
    steps: int | None = None,
    guidance: float = 1.0,
    batch_size: int = 16,
    device: str | None = None,
) -> np.ndarray:
    """Sample len(seeds) images; returns uint8 (N, H, W, C), C = model.cfg.image_channels (1 for a
    greyscale model). masks: binary uint8 (N, H, W) or None."""
    from diffusers.utils.torch_utils import randn_tensor

    dev = pick_device(device)
    model.unet.to(dev).eval()
    steps = steps or DEFAULT_STEPS[sampler]
    if steps <= 0:
        raise ModelError(f"--steps must be positive, got {steps}")
    res = model.cfg.resolution
    if model.cfg.mask_channels and masks is None:
        raise ModelError("this model is mask-conditioned: give masks (--masks-from DATASET)")
    out = []
    for sl in _batches(len(seeds), batch_size):
        gens = generators(seeds[sl], dev)
        x = randn_tensor((len(gens), model.cfg.image_channels, res, res), generator=gens, device=dev)
        ids = torch.as_tensor(list(class_ids[sl]), device=dev) if class_ids is not None else None
        m = mask_to_model(torch.as_tensor(masks[sl], device=dev)) if model.cfg.mask_channels else None
        scheduler = make_scheduler(model, sampler)
        scheduler.set_timesteps(steps)
        x = x * scheduler.init_noise_sigma
        x = reverse(model, scheduler, sampler, x, scheduler.timesteps, ids, m, guidance, gens)
        out.append(to_uint8(x))
    return np.concatenate(out)


def save_grid(images: np.ndarray, path, ncol: int | None = None) -> None:
    """A contact sheet of uint8 (N, H, W, 3) images, or grey (N, H, W, 1), as one PNG (grey stays grey)."""
    from synth.generator.dataset import write_png

    n, h, w, c = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    grid = np.zeros((nrow * (h + 2) + 2, ncol * (w + 2) + 2, c), np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncol)
        grid[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + col * (w + 2): 2 + col * (w + 2) + w] = img
    write_png(path, grid if c == 3 else grid[..., 0])
