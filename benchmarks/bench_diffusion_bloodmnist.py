"""BloodMNIST: class-conditional training at 28 px, quality per checkpoint, and a sampler table.

1. `synth data import` the train and val splits of bloodmnist.npz (MedMNIST v2, 8 classes).
2. Train a class-conditional U-Net (`synth.diffusion.train`) with checkpoints.
3. Per checkpoint: one sample per chosen val image with that image's class (DDIM), scored against
   the val images by the C2ST realism score (0.5 = indistinguishable); FID/KID too when
   Inception weights are given (--inception-weights), which this machine cannot download; with
   --judge REPORT (a `synth classify --save-model` ResNet-18 trained on the real training split)
   also the Fréchet distance on its features and the class agreement of the samples.
4. Sampler table on the final model: DDPM 1000 steps, DDIM 50, DPM-Solver++ 20: seconds per
   image and the same scores.
5. A grid of `synth augment` samples (one row per class) and the plots, copied to --docs.

    python benchmarks/bench_diffusion_bloodmnist.py --data ../shared/data/bloodmnist.npz \
        --out /tmp/bench-blood --docs docs/diffusion

    # score an existing run (no training) with a real-data judge
    python benchmarks/bench_diffusion_bloodmnist.py --run runs/blood10-ddpm --skip-train \
        --judge runs/blood-classifier --out /tmp/bench-blood10 --docs docs/diffusion --prefix bloodmnist10-
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from synth.generator.dataset import is_finished


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/bloodmnist.npz"))
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-blood"))
    p.add_argument("--docs", type=Path, default=None, help="copy plots and tables here")
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--checkpoint-every", type=int, default=300)
    p.add_argument("--eval-n", type=int, default=200)
    p.add_argument("--eval-steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--sampler-n", type=int, default=100)
    p.add_argument("--inception-weights", default=None)
    p.add_argument("--judge", default=None, help="synth classify --save-model report trained on real BloodMNIST")
    p.add_argument("--run", type=Path, default=None, help="training run folder (default OUT/run)")
    p.add_argument("--prefix", default="bloodmnist-", help="file name prefix of what goes to --docs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true", help="reuse a finished run in --out")
    p.add_argument("--skip-eval", action="store_true", help="reuse the run's metrics.json (per-checkpoint scores)")
    p.add_argument("--samplers", default="ddpm:1000,ddim:50,dpm++:20", help="sampler:steps,... for the table")
    args = p.parse_args()
    if not args.data.exists():
        sys.exit(f"error: {args.data} not found; pass --data path/to/bloodmnist.npz")

    from synth.diffusion.augment import AugmentConfig, augment
    from synth.diffusion.evaluate import EvaluateConfig, evaluate
    from synth.measure.quality import compare
    from synth.diffusion.model import DiffusionModel
    from synth.diffusion.sample import generate, save_grid, seed_for
    from synth.diffusion.train import TrainConfig, train
    from synth.generator.dataset import Dataset
    from synth.generator.importers import ImportConfig, import_dataset

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    for split in ("train", "val"):
        if not is_finished(out / split):
            import_dataset(ImportConfig(source=str(args.data), out=str(out / split), layout="npz", split=split,
                                        overwrite=True))
    run = args.run or out / "run"
    t0 = time.perf_counter()
    if not args.skip_train:
        cfg = TrainConfig(data=[str(out / "train")], out=str(run), condition="label",
                          channels=tuple(int(c) for c in args.channels.split(",")), steps=args.steps,
                          batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                          warmup_steps=min(100, args.steps // 10), seed=args.seed)
        train(cfg, overwrite=True)
        results["train_seconds"] = time.perf_counter() - t0
        results["train_images_per_s"] = args.steps * args.batch_size / results["train_seconds"]

    if args.skip_eval:
        rows = json.loads((run / "metrics.json").read_text())["rows"]
    else:
        rows = evaluate(EvaluateConfig(run=str(run), real=str(out / "val"), n=args.eval_n, steps=args.eval_steps,
                                       guidance=args.guidance, fid=bool(args.inception_weights),
                                       inception_weights=args.inception_weights, judge=args.judge, seed=args.seed))
    results["per_checkpoint"] = rows

    # Sampler table on the final model.
    model = DiffusionModel.load(run / "model")
    val = Dataset.open(out / "val")
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 9]))
    recs = [val.records[i] for i in rng.permutation(len(val))[: args.sampler_n]]
    real = np.stack([val.image(r) for r in recs])
    ids = [model.class_index(r.label) for r in recs]
    labels = [r.label for r in recs]
    judge = None
    if args.judge:
        from synth.measure.judge import Judge

        judge = Judge(args.judge)
    table = []
    for sampler, steps in ((a, int(b)) for a, b in (x.split(":") for x in args.samplers.split(","))):
        t = time.perf_counter()
        fake = generate(model, class_ids=ids, seeds=[seed_for(args.seed, 20, i) for i in range(len(ids))],
                        sampler=sampler, steps=steps, guidance=args.guidance, batch_size=100)
        secs = time.perf_counter() - t
        row = {"sampler": sampler, "steps": steps, "seconds_per_image": secs / len(ids),
               **compare(real, fake, seed=args.seed, fid=bool(args.inception_weights),
                         inception_weights=args.inception_weights, judge=judge, real_labels=labels,
                         fake_labels=labels)}
        table.append(row)
        print(json.dumps(row), flush=True)
        save_grid(fake[:40], out / f"sampler-{sampler.replace('+', 'p')}.png", ncol=10)
    results["samplers"] = table
    # Reference point: real train images against real val images (what a perfect generator scores).
    train_ds = Dataset.open(out / "train")
    picks = [train_ds.records[i] for i in rng.permutation(len(train_ds))[: args.sampler_n]]
    tr = np.stack([train_ds.image(r) for r in picks])
    results["real_vs_real"] = compare(real, tr, seed=args.seed, judge=judge, real_labels=labels,
                                      fake_labels=[r.label for r in picks])

    aug = out / "augment"
    augment(AugmentConfig(model=str(run), out=str(aug), n_per_class=10, sampler="dpm++", steps=20,
                          guidance=args.guidance, seed=args.seed), overwrite=True)
    ads = Dataset.open(aug)
    save_grid(np.stack([ads.image(r) for r in ads]), out / "augment-grid.png", ncol=10)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "per_checkpoint"}, indent=2))
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        for src, dst in ((run / "loss.png", "loss.png"), (run / "metrics.png", "c2st.png"),
                         (out / "augment-grid.png", "augment.png"),
                         (out / "sampler-ddpm.png", "ddpm.png"),
                         (out / "sampler-ddim.png", "ddim.png"),
                         (out / "sampler-dpmpp.png", "dpmpp.png"),
                         (out / "results.json", "results.json")):
            if src.exists():  # a sampler left out of --samplers has no grid
                shutil.copy(src, args.docs / (args.prefix + dst))


if __name__ == "__main__":
    main()
