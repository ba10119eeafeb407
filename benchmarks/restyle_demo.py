"""Side-by-side grid and colour statistics of rendered frames, their restyled versions and real frames.

    .venv/bin/python benchmarks/restyle_demo.py runs/base-128 runs/base-128-reinhard runs/base-128-histogram \
        runs/base-128-fda --real runs/real/kvasir --out runs/restyle-demo.png

Rows: the first folder's frames (the renders), the same frame ids from each further folder
(`synth refine` keeps ids), then real frames drawn with --seed, all at the renders' size. Prints,
for every folder, the mean and standard deviation of L*, a*, b* over the pixels inside the
circle `synth classify` uses (0.44 of the side, black overlay pixels left out, as the restyle
methods do) and the distance of the mean to the real folder's; and, measured as `synth evaluate`
measures realism (synth.measure: same frames, same field of view), the C2ST accuracy against the
real folder (64 px behind the classify circle; 0.5: indistinguishable), the Wasserstein distances
of the pooled L*, a*, b* pixel values and the largest standardised gaps. No torch, no bpy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from synth.generator.dataset import Dataset, write_png
from synth.generator.restyle import real_fov


def lab_stats(ds: Dataset, size: int, limit: int, seed: int) -> dict:
    """Pooled Lab mean/std inside the field of view of up to `limit` seeded frames."""
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(ds))[:limit]
    pix = []
    for i in pick:
        img = cv2.resize(ds.image(ds.records[int(i)]), (size, size), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        pix.append(lab[real_fov(img)])
    p = np.concatenate(pix)
    p = p.astype(np.float64)
    return {"frames": len(pick), "mean": p.mean(0).round(2).tolist(), "std": p.std(0).round(2).tolist()}


def measured(ds: Dataset, limit: int, seed: int):
    """synth.measure's folder statistics (128 px) and C2ST inputs (64 px, classify circle) of
    up to `limit` seeded frames, prepared as `synth evaluate` prepares them."""
    from synth.classifier.data import fov_mask, model_view
    from synth.diffusion.data import resize_mask
    from synth.measure import realism as R

    rng = np.random.default_rng(seed)
    pick = sorted(int(i) for i in rng.permutation(len(ds))[:limit])
    imgs = [ds.image(ds.records[i]) for i in pick]
    masks = [ds.mask(ds.records[i]) for i in pick]
    stats = R.folder_statistics([model_view(im, 128, None) for im in imgs],
                                [None if m is None else resize_mask(m, 128) for m in masks])
    keep = fov_mask(64, R.FOV_RADIUS)
    return stats, np.stack([model_view(im, 64, keep) for im in imgs])


def realism_gap(syn, real, top: int = 5) -> dict:
    from synth.measure import realism as R

    cmp = R.compare(syn, real)
    return {"pixel_wasserstein_Lab": {k: None if v is None else round(v, 2) for k, v in cmp["pixel_wasserstein"].items()},
            "largest_gaps": [f"{g['reading']} (SMD {g['smd']:+.2f})" for g in cmp["gaps"][:top]
                             if g["smd"] is not None]}


def c2st(real: np.ndarray, fake: np.ndarray, seed: int) -> float:
    from synth.measure.c2st import c2st as score

    return round(score(real, fake, seed=seed)["c2st_accuracy"], 3)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="rendered folder, then refined folders of it")
    p.add_argument("--real", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--stats-limit", type=int, default=400, help="frames per folder for the colour statistics")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    sets = [Dataset.open(f) for f in a.folders]
    real = Dataset.open(a.real)
    base = sets[0]
    size = base.records[0].width
    # Renders with a lesion and without, alternating, so both kinds show.
    lesion = [r for r in base if r.lesion_pixels > 0]
    normal = [r for r in base if r.lesion_pixels == 0]
    ids = [r.id for pair in zip(lesion, normal) for r in pair][: a.n]
    rows = []
    for ds in sets:
        by_id = {r.id: r for r in ds}
        name = Path(ds.root).name
        tiles = [cv2.resize(ds.image(by_id[i]), (size, size), interpolation=cv2.INTER_AREA) for i in ids]
        tiles[0] = label(tiles[0], name)
        rows.append(np.concatenate(tiles, 1))
    rng = np.random.default_rng(a.seed)
    reals = [real.records[int(i)] for i in rng.permutation(len(real))[: a.n]]
    tiles = [cv2.resize(real.image(r), (size, size), interpolation=cv2.INTER_AREA) for r in reals]
    tiles[0] = label(tiles[0], "real: " + Path(real.root).name)
    rows.append(np.concatenate(tiles, 1))
    write_png(Path(a.out), np.concatenate(rows, 0))
    stats = {"real": lab_stats(real, size, a.stats_limit, a.seed)}
    ref = np.array(stats["real"]["mean"])
    real_frames, real_c2st = measured(real, a.stats_limit, a.seed)
    for ds in sets:
        s = lab_stats(ds, size, a.stats_limit, a.seed)
        s["mean_distance_to_real"] = round(float(np.linalg.norm(np.array(s["mean"]) - ref)), 2)
        frames, c2st_images = measured(ds, a.stats_limit, a.seed)
        s.update(realism_gap(frames, real_frames))
        s["c2st"] = c2st(real_c2st, c2st_images, seed=a.seed)
        stats[str(ds.root)] = s
    print(json.dumps({"grid": a.out, "ids": ids, "real_ids": [r.id for r in reals], "lab": stats}, indent=1))


if __name__ == "__main__":
    main()
