"""How far out of the image range does a model's x0 estimate go, and what does clipping do?

For a trained run: (1) on 16 of its training images, noised to several timesteps, the range and
mean-squared error of the model's x0 estimate; (2) the mean per-image pixel standard deviation of
8 DDIM-20 samples with and without clipping x0 (a saturated sample has a large one).

    python benchmarks/diffusion_x0_range.py runs/blood10-ddpm --data runs/blood-10pct
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="training run folder (its final model is used)")
    p.add_argument("--data", required=True, help="the dataset folder it was trained on")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch
    from diffusers import DDIMScheduler

    from synth.diffusion.data import to_model_range, to_uint8
    from synth.diffusion.model import DiffusionModel
    from synth.diffusion.sample import reverse, seed_for
    from synth.generator.dataset import Dataset

    m = DiffusionModel.load(args.run)
    ds = Dataset.open(args.data)
    recs = ds.records[:16]
    x0 = to_model_range(torch.from_numpy(np.stack([ds.image(r).transpose(2, 0, 1) for r in recs])))
    ids = torch.tensor([m.class_index(r.label) for r in recs]) if m.cfg.class_names else None
    sch = m.scheduler
    g = torch.Generator().manual_seed(args.seed)
    print(f"schedule {sch.config.beta_schedule}, target {sch.config.prediction_type}")
    for t in (10, 100, 300, 600, 900, 999):
        tt = torch.full((len(recs),), t)
        noise = torch.randn(x0.shape, generator=g)
        xt = sch.add_noise(x0, noise, tt)
        with torch.no_grad():
            out = m(xt, tt, ids, None)[:, :3]
        a = sch.alphas_cumprod[t]
        if sch.config.prediction_type == "epsilon":
            x0h = (xt - (1 - a).sqrt() * out) / a.sqrt()
        else:  # v-prediction
            x0h = a.sqrt() * xt - (1 - a).sqrt() * out
        print(f"t={t:4d}: x0 estimate in [{x0h.min():.2f}, {x0h.max():.2f}], mse {((x0h - x0) ** 2).mean():.3f}")
    for clip in (True, False):
        s = DDIMScheduler.from_config(sch.config, clip_sample=clip)
        s.set_timesteps(20)
        noise_gen = torch.Generator().manual_seed(seed_for(args.seed, 20, 0))
        x = torch.randn((8, 3, m.cfg.resolution, m.cfg.resolution), generator=noise_gen)
        cls = torch.arange(8) % len(m.cfg.class_names) if m.cfg.class_names else None
        x = reverse(m, s, "ddim", x, s.timesteps, cls, None, 1.0, None)
        std = to_uint8(x).reshape(8, -1).std(axis=1).mean()
        print(f"DDIM-20 samples, clip x0 {clip}: mean pixel std {std:.1f}")


if __name__ == "__main__":
    main()
