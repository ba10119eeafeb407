"""Anomaly heat maps on Kvasir-SEG: a model trained on normal frames only, AUC against polyp masks.

1. Import CP-CHILD normal frames (the normal training set) and Kvasir-SEG pairs (the test set,
   every frame has a polyp mask) at --resolution, with one identical circular field of view
   applied to both (Kvasir's black border and on-screen text would otherwise dominate the error).
2. Train an unconditional-by-class model (one class, "normal") on the normal frames.
3. `synth diffusion anomaly` on Kvasir: noise to --strength, denoise as normal, per-pixel error;
   pixel-level ROC AUC of the heat maps against the polyp masks inside the field of view.

    python benchmarks/bench_diffusion_anomaly.py --cpchild ../shared/data/cp-child-256 \
        --kvasir ../shared/data/kvasir-seg-256 --out /tmp/bench-anomaly --docs docs/diffusion
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from synth.generator.dataset import is_finished


def with_fov(src: Path, dst: Path, size: int) -> Path:
    """A copy of a dataset at size x size with black outside the inscribed circle."""
    from synth.diffusion.anomaly import fov_mask
    from synth.diffusion.data import resize_image, resize_mask
    from synth.generator.dataset import Dataset, DatasetWriter

    if is_finished(dst):
        return dst
    ds = Dataset.open(src)
    fov = fov_mask(size)
    w = DatasetWriter(dst, config={"fov_of": str(src), "size": size}, class_names=ds.class_names, overwrite=True)
    for r in ds:
        img = resize_image(ds.image(r), size) * fov[..., None].astype(np.uint8)
        mask = resize_mask(ds.mask(r), size) * fov.astype(np.uint8) if r.mask else None
        w.write_frame(r.id, image=img, label=r.label, mask=mask, source=r.source)
    w.finalize(manifest={**ds.manifest, "fov": True, "counts": None})
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpchild", type=Path, default=Path("../shared/data/cp-child-256"))
    p.add_argument("--kvasir", type=Path, default=Path("../shared/data/kvasir-seg-256"))
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-anomaly"))
    p.add_argument("--docs", type=Path, default=None)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channels", default="16,32,64")
    p.add_argument("--train-limit", type=int, default=600)
    p.add_argument("--test-limit", type=int, default=200)
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--strengths", default="0.2,0.4")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for path in (args.cpchild, args.kvasir):
        if not path.exists():
            sys.exit(f"error: {path} not found")

    from synth.diffusion.anomaly import AnomalyConfig, score
    from synth.diffusion.train import TrainConfig, train
    from synth.generator.importers import ImportConfig, import_dataset

    out, res = args.out, args.resolution
    out.mkdir(parents=True, exist_ok=True)
    raw_normal, raw_test = out / "cpchild-raw", out / "kvasir-raw"
    if not is_finished(raw_normal):
        import_dataset(ImportConfig(source=str(args.cpchild), out=str(raw_normal), layout="classes",
                                    resolution=res, limit=args.train_limit, overwrite=True))
    if not is_finished(raw_test):
        import_dataset(ImportConfig(source=str(args.kvasir), out=str(raw_test), layout="pairs", resolution=res,
                                    limit=args.test_limit, overwrite=True))
    normal, test = with_fov(raw_normal, out / "cpchild", res), with_fov(raw_test, out / "kvasir", res)
    run = out / "run"
    if not (run / "model").exists():
        train(TrainConfig(data=[str(normal)], out=str(run), channels=tuple(int(c) for c in args.channels.split(",")),
                          steps=args.train_steps, batch_size=args.batch_size, checkpoint_every=args.train_steps,
                          warmup_steps=min(100, args.train_steps // 10), seed=args.seed), overwrite=True)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    for s in (float(v) for v in args.strengths.split(",")):
        rep = score(AnomalyConfig(model=str(run), data=str(test), out=str(out / f"anomaly-{s}"), strength=s,
                                  steps=args.steps, repeats=args.repeats, fov=True, seed=args.seed), overwrite=True)
        row = {"strength": s, "pixel_auc": rep.get("pixel_auc"), "positive_fraction": rep.get("pixel_positive_fraction"),
               "frames": rep["frames"]}
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        best = max(results["runs"], key=lambda r: r["pixel_auc"] or 0)
        shutil.copy(out / f"anomaly-{best['strength']}" / "overlays.png", args.docs / "anomaly-overlays.png")
        shutil.copy(out / "results.json", args.docs / "anomaly-results.json")


if __name__ == "__main__":
    main()
