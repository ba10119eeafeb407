"""Training a diffusion model on synth dataset folders (`synth diffusion train`).

One readable loop in the style of diffusers' training examples, with:
AdamW + linear warm-up + cosine decay, an EMA of the weights (the EMA is what gets sampled and
saved), gradient accumulation, mixed precision and multi-GPU through accelerate
(`accelerate launch -m synth.cli diffusion train ...`), classifier-free guidance by dropping
class labels, optional mask conditioning, and the hybrid loss of improved DDPM when the
variance is learned.

Exact resume: every random draw of optimizer step s comes from generators seeded by
(seed, micro-step), and the data order of epoch e from (seed, e), so nothing random has to be
checkpointed. A checkpoint holds the raw weights, the optimizer, the LR schedule and the EMA;
resuming from it reproduces an uninterrupted run's weights exactly (tested).

Run folder::

    config.json                    this run's TrainConfig (a resumed run must match it)
    checkpoints/step-0000500/      model/ (EMA weights, loadable) + state.pt (to resume)
    samples/step-0000500.png       a fixed-seed sample grid per checkpoint (one row per class)
    loss.csv, loss.png             the training loss curve
    model/                         the final EMA model
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synth.diffusion.config import TrainConfig, TrainError, crop_reach  # noqa: F401  (also this module's API)
from synth.diffusion.data import ImageSet, load_images, mask_to_model, to_model_range
from synth.diffusion.model import DiffusionModel
from synth.diffusion.sample import seed_for
from synth.generator.run_folder import RunFolder
from synth.rng import EPOCH_ORDER_STREAM, TRAIN_NOISE_STREAM, TRAIN_SAMPLES_STREAM


# Options that may change when resuming without changing the trained weights.
RESUMABLE_KEYS = ("checkpoint_every", "sample_every_checkpoint", "sample_steps", "out")


# --------------------------------------------------------------------------- losses


def _approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _discretized_gaussian_nll(x0, mean, log_scale):
    """-log p(x0) for 8-bit data under N(mean, exp(log_scale)^2), per pixel (improved DDPM's decoder)."""
    centered = x0 - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centered + 1.0 / 255))
    cdf_min = _approx_std_normal_cdf(inv_std * (centered - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    logp = torch.where(x0 < -0.999, log_cdf_plus, torch.where(x0 > 0.999, log_one_minus_cdf_min, log_delta))
    return -logp


def vlb_loss(scheduler, x0, xt, t, out, prediction: str):
    """The variational bound term L_vlb of improved DDPM, in bits per dimension, per image.

    The mean part of `out` is detached (the "stop gradient" of the hybrid loss), so this term
    trains only the variance channels; the log variance is interpolated exactly as diffusers'
    `variance_type="learned_range"` does at sampling time.
    """
    ac_all = scheduler.alphas_cumprod.to(x0.device)
    shape = (-1, 1, 1, 1)
    ac = ac_all[t].view(shape)
    ac_prev = torch.where(t > 0, ac_all[(t - 1).clamp(min=0)], torch.ones_like(ac_all[t])).view(shape)
    beta = 1 - ac / ac_prev
    post_var = (1 - ac_prev) / (1 - ac) * beta
    min_log = torch.log(post_var.clamp(min=1e-20))
    max_log = torch.log(beta)
    c = x0.shape[1]  # image channels; the variance channels follow them
    mean_out, var_out = out[:, :c].detach().float(), out[:, c:].float()
    frac = (var_out + 1) / 2
    model_log_var = frac * max_log + (1 - frac) * min_log
    if prediction == "epsilon":
        x0_pred = (xt - (1 - ac).sqrt() * mean_out) / ac.sqrt()
    else:  # v-prediction
        x0_pred = ac.sqrt() * xt - (1 - ac).sqrt() * mean_out
    x0_pred = x0_pred.clamp(-1, 1)
    c1 = ac_prev.sqrt() * beta / (1 - ac)
    c2 = (1 - beta).sqrt() * (1 - ac_prev) / (1 - ac)
    mean_pred = c1 * x0_pred + c2 * xt
    mean_true = c1 * x0 + c2 * xt
    kl = 0.5 * (-1.0 + model_log_var - min_log + torch.exp(min_log - model_log_var)
                + (mean_true - mean_pred) ** 2 * torch.exp(-model_log_var))
    nll = _discretized_gaussian_nll(x0, mean_pred, 0.5 * model_log_var)
    dims = (1, 2, 3)
    per_image = torch.where(t == 0, nll.mean(dims), kl.mean(dims)) / math.log(2.0)
    return per_image.mean()


# --------------------------------------------------------------------------- run folder


# What a training run (diffusion, VAE or GAN) writes into --out: model/ whole (every finished run
# replaces it whole anyway), and in checkpoints/ and samples/ only the step-numbered entries.
RUN_NAMES = ("config.json", "loss.csv", "loss.png", "model")
RUN_FOLDERS = {"checkpoints": r"step-\d{7}", "samples": r"step-\d{7}\.png"}


def _check_run_folder(cfg: TrainConfig, overwrite: bool, resume: bool, log=print) -> Path | None:
    """Refuse to mix runs; returns the checkpoint to resume from (or None)."""
    out = Path(cfg.out)
    folder = RunFolder(out, names=RUN_NAMES, folders=RUN_FOLDERS, error=TrainError)
    folder.check()
    if overwrite:
        folder.clear(log)
    else:
        diff = folder.differing_keys(asdict(cfg), RESUMABLE_KEYS)
        if diff:
            raise folder.other_run(diff, "training run")
        if diff is not None:
            latest = latest_checkpoint(out)
            if latest is None and not (out / "model").exists():
                return None
            if not resume:
                raise TrainError(f"{out} already holds this run; pass --resume to continue it "
                                 "or --overwrite to restart")
            return latest
        if not folder.is_empty():
            raise folder.not_a_run("training run")
    if resume:
        raise TrainError(f"{out} holds no checkpoint to resume from; run without --resume")
    return None


def latest_checkpoint(run: Path) -> Path | None:
    ckpts = sorted(p for p in (Path(run) / "checkpoints").glob("step-*") if (p / "state.pt").exists())
    return ckpts[-1] if ckpts else None


def _write_loss(out: Path, history: list[dict]) -> None:
    tmp = out / ".loss.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "lr"])
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, out / "loss.csv")
    plot_loss(history, out / "loss.png")


def plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = np.array([h["step"] for h in history])
    loss = np.array([h["loss"] for h in history])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, alpha=0.35, lw=0.8, label="loss")
    k = max(1, len(loss) // 50)
    if k > 1:
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- training


def train(cfg: TrainConfig, *, overwrite: bool = False, resume: bool = False, data: ImageSet | None = None,
          log=print) -> Path:
    """Train a model as `cfg` says; returns the run folder (its final model is `out/model`)."""
    from accelerate import Accelerator
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    cfg.validate()
    out = Path(cfg.out)
    resume_from = _check_run_folder(cfg, overwrite, resume, log)
    if data is None:
        data = load_images(cfg.data, resolution=cfg.resolution, condition=cfg.condition,
                           limit_per_dataset=cfg.limit)
    # The model learns as many channels as the data has: one for greyscale folders, three for RGB.
    mcfg = cfg.model_config(data.class_names, data.resolution, data.channels)

    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                              cpu=not torch.cuda.is_available())
    dev = accelerator.device
    model = DiffusionModel.new(mcfg, cfg.seed)
    model.info = {"trained_on": [str(p) for p in cfg.data], "condition": cfg.condition, "frames": len(data),
                  "train_config": json.loads(json.dumps(asdict(cfg)))}
    unet = model.unet
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)
    step, history = 0, []
    if resume_from is not None:
        state = torch.load(resume_from / "state.pt", map_location="cpu", weights_only=False)
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        ema.load_state_dict(state["ema"])
        step, history = state["step"], state["history"]
        log(f"resuming {out} from step {step}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    unet, optimizer = accelerator.prepare(unet, optimizer)
    ema.to(dev)
    scheduler = model.scheduler

    images = torch.from_numpy(data.images)
    masks = torch.from_numpy(data.masks)
    labels = torch.from_numpy(data.labels)
    n = len(data)
    world, rank = accelerator.num_processes, accelerator.process_index

    @lru_cache(maxsize=4)
    def epoch_order(epoch: int) -> np.ndarray:
        return np.random.default_rng(np.random.SeedSequence([cfg.seed, EPOCH_ORDER_STREAM, epoch])).permutation(n)

    def batch_indices(micro: int) -> np.ndarray:
        pos = micro * cfg.batch_size + np.arange(cfg.batch_size)
        idx = np.array([epoch_order(int(p // n))[p % n] for p in pos])
        return idx[rank::world]  # each process takes its share of the global batch

    def micro_step(micro: int) -> torch.Tensor:
        idx = torch.from_numpy(batch_indices(micro))
        g = torch.Generator().manual_seed(seed_for(cfg.seed, TRAIN_NOISE_STREAM, micro, rank))
        b = len(idx)
        x0 = to_model_range(images[idx])
        m = masks[idx].float()
        if cfg.flip:
            flip = torch.rand(b, generator=g) < 0.5
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
            m = torch.where(flip.view(-1, 1, 1), m.flip(-1), m)
        if cfg.crop:
            x0, m = random_crops(x0, m, cfg.crop, cfg.circle, g)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=g)
        y = labels[idx].clone()
        if mcfg.class_names and cfg.class_dropout > 0:
            y[torch.rand(b, generator=g) < cfg.class_dropout] = mcfg.null_class
        x0, noise, t, y, m = (v.to(dev) for v in (x0, noise, t, y, m))
        xt = scheduler.add_noise(x0, noise, t)
        target = noise if mcfg.prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)
        inp = torch.cat([xt, mask_to_model(m.to(torch.uint8))], 1) if mcfg.mask_channels else xt
        with accelerator.autocast():
            pred = unet(inp, t, class_labels=y if mcfg.class_names else None).sample
        loss = F.mse_loss(pred[:, :mcfg.image_channels].float(), target.float())
        if mcfg.learned_variance:
            loss = loss + cfg.vlb_weight * vlb_loss(scheduler, x0, xt, t, pred, mcfg.prediction)
        return loss

    def save_checkpoint(at: int) -> None:
        raw = accelerator.unwrap_model(unet)
        final = out / "checkpoints" / f"step-{at:07d}"
        tmp = out / "checkpoints" / f".step-{at:07d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save({"unet": raw.state_dict(), "optimizer": optimizer.state_dict(),
                    "lr_schedule": lr_schedule.state_dict(), "ema": ema.state_dict(), "step": at,
                    "history": history}, tmp / "state.pt")
        ema_model = _ema_copy(model, raw, ema)
        ema_model.info = {**model.info, "step": at}
        ema_model.save(tmp / "model")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # a checkpoint appears whole or not at all
        _write_loss(out, history)
        if cfg.sample_every_checkpoint:
            write_sample_grid(ema_model, out / "samples" / f"step-{at:07d}.png", cfg.seed, cfg.sample_steps,
                              data)

    unet.train()
    first_step, t_start = step, time.perf_counter()
    while step < cfg.steps:
        total = 0.0
        for a in range(cfg.grad_accum):
            with accelerator.accumulate(unet):
                loss = micro_step(step * cfg.grad_accum + a)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(unet.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach()) / cfg.grad_accum
        if not math.isfinite(total):
            raise TrainError(f"loss became {total} at step {step + 1}; lower --lr or use --mixed-precision no")
        lr_schedule.step()
        ema.step(accelerator.unwrap_model(unet).parameters())
        step += 1
        history.append({"step": step, "loss": round(total, 6), "lr": lr_schedule.get_last_lr()[0]})
        if step % max(1, cfg.steps // 20) == 0 or step == 1:
            log(f"step {step}/{cfg.steps} loss {total:.4f} lr {history[-1]['lr']:.2e}"
                + _pace(step - first_step, cfg.steps - step, time.perf_counter() - t_start,
                        cfg.batch_size * cfg.grad_accum))
        if accelerator.is_main_process and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(step)
        accelerator.wait_for_everyone()

    if accelerator.is_main_process:
        final = _ema_copy(model, accelerator.unwrap_model(unet), ema)
        final.info = {**model.info, "step": step}
        tmp = out / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        final.save(tmp)
        shutil.rmtree(out / "model", ignore_errors=True)
        os.replace(tmp, out / "model")
        _write_loss(out, history)
    return out


def random_crops(x0, m, size: int, radius: float, g):
    """One square crop of `size` px per image (and its mask), placed uniformly over the positions
    that keep the whole crop inside the central circle of `radius` x half the side."""
    n, _, h, w = x0.shape
    reach = crop_reach(size, radius, min(h, w))
    r = reach * torch.rand(n, generator=g).sqrt()  # uniform over the disc of centres
    a = 2 * math.pi * torch.rand(n, generator=g)
    left = ((w - 1) / 2 + r * torch.cos(a) - (size - 1) / 2).round().long().clamp(0, w - size)
    top = ((h - 1) / 2 + r * torch.sin(a) - (size - 1) / 2).round().long().clamp(0, h - size)
    xs = torch.stack([x0[i, :, t:t + size, lf:lf + size] for i, (t, lf) in enumerate(zip(top.tolist(), left.tolist()))])
    ms = torch.stack([m[i, t:t + size, lf:lf + size] for i, (t, lf) in enumerate(zip(top.tolist(), left.tolist()))])
    return xs, ms


def _pace(done: int, left: int, seconds: float, images_per_step: int) -> str:
    """' | 2.10 steps/s, 34 img/s, eta 12m05s' from this process's steps so far ('' before any)."""
    if done <= 0 or seconds <= 0:
        return ""
    rate = done / seconds
    eta = int(round(left / rate))
    h, rem = divmod(eta, 3600)
    clock = f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"
    return f" | {rate:.2f} steps/s, {rate * images_per_step:.0f} img/s, eta {clock}"


def _ema_copy(model: DiffusionModel, raw_unet, ema) -> DiffusionModel:
    """A standalone model holding the EMA weights (the training weights are left untouched)."""
    import copy

    unet = copy.deepcopy(raw_unet).to("cpu")
    ema.copy_to(unet.parameters())
    unet.eval()
    return DiffusionModel(model.cfg, unet, model.scheduler, model.info)


def write_sample_grid(model: DiffusionModel, path: Path, seed: int, steps: int, data: ImageSet,
                      per_class: int = 8) -> None:
    """A fixed-seed DDIM grid, one row per class, to watch training progress."""
    from synth.diffusion.sample import generate, save_grid

    n_rows = max(1, model.cfg.num_classes)
    class_ids = [c for c in range(n_rows) for _ in range(per_class)] if model.cfg.class_names else None
    seeds = [seed_for(seed, TRAIN_SAMPLES_STREAM, i) for i in range(n_rows * per_class)]
    masks = None
    if model.cfg.mask_channels:  # masks of training frames of the same class, so lesions have a place
        lab = data.labels if class_ids else np.zeros(len(data), np.int64)
        picks = []
        for i, c in enumerate(class_ids or [0] * len(seeds)):
            where = np.flatnonzero(lab == c)
            picks.append(where[(i % per_class) % len(where)])
        masks = data.masks[picks]
        if model.cfg.frame_resolution:  # a crop model samples crops: the centre of each mask
            lo = (masks.shape[-1] - model.cfg.resolution) // 2
            masks = masks[:, lo:lo + model.cfg.resolution, lo:lo + model.cfg.resolution]
    imgs = generate(model, class_ids=class_ids, seeds=seeds, masks=masks, sampler="ddim", steps=steps,
                    guidance=1.0, batch_size=32)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(imgs, path, ncol=per_class)
