"""Copy the frames a `synth classify` run trained on into a dataset folder of their own.

Row 4b of docs/RESULTS.md trains the diffusion model on exactly the 10 % of BloodMNIST that the
10 %-real classifier saw (a model trained on more would leak the other 90 % into the "10 %" arm).
`synth classify` lists every id it used in report.json; this copies those frames.

    python benchmarks/exp_subset.py runs/exp/row4-blood-10pct/report.json runs/real/blood-train runs/blood-10pct
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from synth.generator.dataset import Dataset, DatasetError, finalize_folder


def subset(report: Path, src: Path, dst: Path) -> int:
    rep = json.loads(report.read_text())
    ids = {i for part in rep["data"]["train"] if Path(part["path"]).resolve() == src.resolve() for i in part["ids"]}
    if not ids:
        raise DatasetError(f"{report} lists no training frames from {src}")
    ds = Dataset.open(src)
    if dst.exists():
        raise DatasetError(f"{dst} exists; remove it or choose another folder")
    (dst / "records").mkdir(parents=True)
    kept = [r for r in ds.records if r.id in ids]
    for r in kept:
        for rel in (r.image, r.mask, r.depth, r.spec):
            if rel:
                (dst / rel).parent.mkdir(exist_ok=True)
                shutil.copy2(src / rel, dst / rel)
        (dst / "records" / f"{r.id}.json").write_text(json.dumps(r.to_json()))
    finalize_folder(dst, manifest={"command": "subset", "kind": ds.manifest.get("kind", "real"), "subset_of": str(src),
                                   "ids_from": str(report), "seed": rep.get("config", {}).get("seed")},
                    class_names=ds.class_names, coco=False, channels=ds.channels)
    return len(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    a = ap.parse_args()
    try:
        n = subset(a.report, a.src, a.dst)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    print(f"{n} frames of {a.src} in {a.dst}")


if __name__ == "__main__":
    main()
