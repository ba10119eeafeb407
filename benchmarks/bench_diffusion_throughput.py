"""Training throughput of `synth diffusion train` against diffusers' own unconditional training loop.

Same U-Net config (ours is written to a config.json the diffusers script loads with
--model_config_name_or_path), same batch size, resolution, EMA and precision, same images
(the first N BloodMNIST training images). Throughput is images per second over the steady
part of training (the first step, with its one-off costs, is left out of both).

The diffusers script (examples/unconditional_image_generation/train_unconditional.py) is not
part of this repository: fetch it yourself and pass its path; it needs the `datasets` package,
which this project does not depend on (pass a folder with it through --extra-pythonpath).

    python benchmarks/bench_diffusion_throughput.py --script /tmp/dfx/train_unconditional.py \
        --extra-pythonpath /tmp/dfx/deps --data ../shared/data/bloodmnist.npz --out /tmp/bench-throughput
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from synth.generator.dataset import is_finished


def prepare(npz: Path, out: Path, n: int) -> tuple[Path, Path]:
    from synth.generator.dataset import write_png
    from synth.generator.importers import ImportConfig, import_dataset

    if not npz.exists():
        sys.exit(f"error: {npz} not found; pass --data path/to/bloodmnist.npz")
    folder = out / "imagefolder" / "train"
    if not folder.exists():
        x = np.load(npz)["train_images"][:n]
        for i, img in enumerate(x):
            write_png(folder / f"{i:05d}.png", img)
    ds = out / "synth-dataset"
    if not is_finished(ds):
        import_dataset(ImportConfig(source=str(npz), out=str(ds), layout="npz", limit=n, overwrite=True))
    return folder.parent, ds


def run_ours(ds: Path, out: Path, args) -> dict:
    from synth.diffusion.train import TrainConfig, train

    stamps: list[tuple[int, float]] = []

    def log(msg: str) -> None:
        m = re.match(r"step (\d+)/", msg)
        if m:
            stamps.append((int(m.group(1)), time.perf_counter()))

    cfg = TrainConfig(data=[str(ds)], out=str(out), condition="none", channels=tuple(args.channels),
                      layers_per_block=args.layers_per_block, steps=args.steps, batch_size=args.batch_size,
                      warmup_steps=10, checkpoint_every=10**9, sample_every_checkpoint=False, flip=True, seed=0)
    train(cfg, overwrite=True, log=log)
    (s0, t0), (s1, t1) = stamps[0], stamps[-1]
    return {"images_per_s": (s1 - s0) * args.batch_size / (t1 - t0), "steps_timed": s1 - s0, "seconds": t1 - t0}


def write_unet_config(out: Path, args) -> Path:
    from synth.diffusion.model import ModelConfig, build_unet

    unet = build_unet(ModelConfig(resolution=args.resolution, channels=tuple(args.channels),
                                  layers_per_block=args.layers_per_block).validate())
    unet.save_config(out / "unet-config")
    return out / "unet-config"


def run_diffusers(imagefolder: Path, unet_cfg: Path, out: Path, args) -> dict:
    epochs = max(2, args.steps * args.batch_size // args.n)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [args.extra_pythonpath,
                                                                     os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, str(args.script), "--train_data_dir", str(imagefolder), "--resolution",
           str(args.resolution), "--train_batch_size", str(args.batch_size), "--num_epochs", str(epochs),
           "--model_config_name_or_path", str(unet_cfg), "--use_ema", "--mixed_precision", "no",
           "--save_images_epochs", "100000", "--save_model_epochs", "100000", "--checkpointing_steps", "100000",
           "--ddpm_num_inference_steps", "2", "--eval_batch_size", "2", "--lr_warmup_steps", "10",
           "--dataloader_num_workers", "0", "--output_dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/tmp")
    if proc.returncode != 0:
        sys.exit(f"error: the diffusers script failed:\n{proc.stderr[-3000:]}")
    # tqdm's final line per epoch: "Epoch k: 100%|...| S/S [mm:ss<00:00, r it/s ...]"
    done = {}
    for m in re.finditer(r"Epoch (\d+): 100%\|[^|]*\| (\d+)/(\d+) \[(\d+):(\d+)<", proc.stderr):
        done[int(m.group(1))] = (int(m.group(2)), int(m.group(4)) * 60 + int(m.group(5)))
    timed = [v for k, v in sorted(done.items()) if k > 0]  # epoch 0 holds the one-off start-up
    steps = sum(s for s, _ in timed)
    secs = sum(t for _, t in timed)
    return {"images_per_s": steps * args.batch_size / secs, "steps_timed": steps, "seconds": secs,
            "epochs": epochs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--script", type=Path, required=True, help="diffusers' train_unconditional.py")
    p.add_argument("--extra-pythonpath", default="", help="folder holding `datasets` for the diffusers script")
    p.add_argument("--data", type=Path, default=Path("../shared/data/bloodmnist.npz"))
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-throughput"))
    p.add_argument("--n", type=int, default=1024, help="training images")
    p.add_argument("--resolution", type=int, default=28)
    p.add_argument("--channels", type=lambda s: [int(c) for c in s.split(",")], default=[32, 64, 128])
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=96)
    p.add_argument("--rounds", type=int, default=2, help="alternate ours/diffusers this many times")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    imagefolder, ds = prepare(args.data, args.out, args.n)
    unet_cfg = write_unet_config(args.out, args)
    rows = []
    for r in range(args.rounds):
        for name in ("synth", "diffusers"):
            load = os.getloadavg()[0]
            res = (run_ours(ds, args.out / f"ours-{r}", args) if name == "synth"
                   else run_diffusers(imagefolder, unet_cfg, args.out / f"diffusers-{r}", args))
            rows.append({"loop": name, "round": r, "load_before": round(load, 2), **res})
            print(json.dumps(rows[-1]), flush=True)
    ours = np.mean([r["images_per_s"] for r in rows if r["loop"] == "synth"])
    theirs = np.mean([r["images_per_s"] for r in rows if r["loop"] == "diffusers"])
    summary = {"synth_images_per_s": ours, "diffusers_images_per_s": theirs, "ratio": ours / theirs,
               "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "runs": rows}
    (args.out / "throughput.json").write_text(json.dumps(summary, indent=2))
    print(f"synth {ours:.1f} img/s, diffusers {theirs:.1f} img/s, ratio {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
