"""How well do trivial image statistics separate the real lesion and normal frames?

The AUC of one number per image (no learning) on the same test set as rows 1-3 of RESULTS.md,
behind the same field of view: if brightness alone separates Kvasir-SEG from CP-CHILD, a model
can reach that AUC without knowing anything about polyps.

    python benchmarks/exp_trivial_baseline.py runs/real/kvasir runs/real/cpchild
    python benchmarks/exp_trivial_baseline.py runs/real/kvasir-patches --fov none --size 64

Give the folders of the test set (every frame of each is used); `--fov none` for patches, which
already lie inside the field of view.
"""

from __future__ import annotations

import argparse

import numpy as np

from synth.classifier.data import Selection, SourceSpec, class_names_of, load_arrays, open_dataset
from synth.classifier.metrics import classification_metrics


def main(dirs: list[str], size: int = 128, radius: float = 0.44, fov: str = "circle") -> None:
    # Every frame of every folder: the test set of rows 1 and 2 (or of the patch rows).
    test = [Selection(SourceSpec("real", d), ds, np.arange(len(ds)))
            for d, ds in ((d, open_dataset(d)) for d in dirs)]
    names = class_names_of([s.dataset for s in test], "test")
    arr = load_arrays(test, names, size=size, fov=fov, fov_radius=radius)
    from synth.classifier.data import fov_mask

    keep = fov_mask(size, radius) if fov == "circle" else np.ones((size, size), bool)
    px = arr.images[:, :, keep].astype(np.float64) / 255.0  # (N, 3, P) inside the field of view
    lum = px.mean(1)
    feats = {
        "mean brightness": lum.mean(1),
        "fraction of dark pixels (< 0.2)": (lum < 0.2).mean(1),
        "brightness spread (std)": lum.std(1),
        "mean red - green": (px[:, 0] - px[:, 1]).mean(1),
    }
    print(f"{len(arr)} frames ({', '.join(f'{c}: {int((arr.labels == k).sum())}' for k, c in enumerate(names))})")
    for name, f in feats.items():
        z = (f - f.min()) / (np.ptp(f) + 1e-12)
        auc = classification_metrics(np.stack([1 - z, z], 1), arr.labels, names)["auc"]
        print(f"| {name} | {max(auc, 1 - auc):.3f} |  (raw AUC {auc:.3f})")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="*", default=["runs/real/kvasir", "runs/real/cpchild"])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--fov", choices=["circle", "none"], default="circle")
    a = p.parse_args()
    main(a.dirs, size=a.size, fov=a.fov)
