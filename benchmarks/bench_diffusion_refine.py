"""Refine rendered frames toward real Kvasir-SEG frames and measure realism before and after.

1. Import the real data at --resolution: Kvasir-SEG pairs (label lesion, with masks) and,
   when present, CP-CHILD normal frames (label normal); both are of kind "real".
2. `synth refine` trains a domain-conditioned (real / rendered), mask-conditioned model on the
   rendered folder plus the real folders, then refines every rendered frame with SDEdit at
   several strengths and with DDIB.
3. Realism score = C2ST accuracy of real frames against rendered (before) and refined (after)
   frames, at the same resolution; 0.5 means indistinguishable. Reported on the whole frame and
   inside a circular field of view (which hides Kvasir's black border and on-screen text). With
   --judge REPORT (a `synth classify --save-model` model trained on the real frames only), also
   the Fréchet distance in that model's feature space. Both scores are also given for one half
   of the real frames against the other: what an indistinguishable set scores.

    python benchmarks/bench_diffusion_refine.py --rendered runs/r200 \
        --kvasir ../shared/data/kvasir-seg-256 --cpchild ../shared/data/cp-child-256 \
        --out /tmp/bench-refine --docs docs/diffusion
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
    p.add_argument("--rendered", type=Path, required=True, help="a rendered dataset folder (synth render)")
    p.add_argument("--kvasir", type=Path, default=Path("../shared/data/kvasir-seg-256"))
    p.add_argument("--cpchild", type=Path, default=Path("../shared/data/cp-child-256"))
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-refine"))
    p.add_argument("--docs", type=Path, default=None)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--real-limit", type=int, default=400, help="real frames per source")
    p.add_argument("--train-steps", type=int, default=800)
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--strengths", default="0.3,0.5,0.7")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--judge", default=None, help="synth classify --save-model report trained on real frames")
    p.add_argument("--prefix", default="refine-", help="file name prefix of what goes to --docs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for path in (args.rendered, args.kvasir):
        if not path.exists():
            sys.exit(f"error: {path} not found")

    from synth.diffusion.anomaly import fov_mask
    from synth.measure.quality import c2st, dataset_images
    from synth.diffusion.refine import RefineConfig, refine
    from synth.diffusion.sample import save_grid
    from synth.generator.importers import ImportConfig, import_dataset

    out, res = args.out, args.resolution
    out.mkdir(parents=True, exist_ok=True)
    reals = []
    sources = [("kvasir", args.kvasir, "pairs", None)]
    if args.cpchild.exists():
        sources.append(("cpchild", args.cpchild, "classes", ["normal", "lesion"]))
    for name, src, layout, names in sources:
        dst = out / f"real-{name}"
        if not is_finished(dst):
            import_dataset(ImportConfig(source=str(src), out=str(dst), layout=layout, resolution=res,
                                        limit=args.real_limit, class_names=names, overwrite=True))
        reals.append(dst)

    real_imgs = np.concatenate([dataset_images(r, res) for r in reals])
    fov = fov_mask(res)[None, :, :, None].astype(np.uint8)

    judge = None
    if args.judge:
        from synth.measure.judge import Judge, judge_scores

        judge = Judge(args.judge)

    def realism(fake: np.ndarray, real: np.ndarray = real_imgs) -> dict:
        row = {"c2st": c2st(real, fake, seed=args.seed)["c2st_accuracy"],
               "c2st_fov": c2st(real * fov, fake * fov, seed=args.seed)["c2st_accuracy"]}
        if judge is not None:
            row["fd_judge"] = judge_scores(judge, real, fake)["fd_judge"]
        return row

    rendered_imgs = dataset_images(args.rendered, res)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "n_real": len(real_imgs),
               "n_rendered": len(rendered_imgs), "before": realism(rendered_imgs), "after": []}
    halves = np.random.default_rng(args.seed).permutation(len(real_imgs))
    results["real_vs_real"] = realism(real_imgs[halves[1::2]], real_imgs[halves[::2]])
    print(json.dumps({"real_vs_real": results["real_vs_real"]}), flush=True)
    print(json.dumps(results["before"]), flush=True)
    model = None
    runs = [("sdedit", float(s)) for s in args.strengths.split(",")] + [("ddib", 0.5)]
    grids = [rendered_imgs[:8]]
    for method, strength in runs:
        dst = out / f"refined-{method}-{strength}"
        t = time.perf_counter()
        cfg = RefineConfig(rendered=str(args.rendered), out=str(dst), real=[str(r) for r in reals],
                           model=str(model) if model else None, method=method, strength=strength, steps=args.steps,
                           run=str(out / "model-run"), train_steps=args.train_steps, resolution=res, seed=args.seed,
                           channels=tuple(int(c) for c in args.channels.split(",")))
        refine(cfg, overwrite=True)
        model = out / "model-run" / "model"
        secs = time.perf_counter() - t
        imgs = dataset_images(dst, res)
        grids.append(imgs[:8])
        row = {"method": method, "strength": strength, "seconds": secs, **realism(imgs)}
        results["after"].append(row)
        print(json.dumps(row), flush=True)
    grids.append(real_imgs[np.random.default_rng(args.seed).permutation(len(real_imgs))[:8]])
    save_grid(np.concatenate(grids), out / "refine-grid.png", ncol=8)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "refine-grid.png", args.docs / f"{args.prefix}grid.png")
        shutil.copy(out / "results.json", args.docs / f"{args.prefix}results.json")
        shutil.copy(out / "model-run" / "loss.png", args.docs / f"{args.prefix}loss.png")


if __name__ == "__main__":
    main()
