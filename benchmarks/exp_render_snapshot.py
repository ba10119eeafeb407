"""Freeze the finished frames of a render that is still running into a dataset folder of its own.

`synth render` finalizes a folder only when every frame is there; a long render can be measured
before that by copying the frames that are complete (their record exists) into a new folder and
finalizing it with the dataset module. The copy records how many frames it holds and where they
came from, so results state the count they used.

    python benchmarks/exp_render_snapshot.py runs/render-128 runs/render-128-snap [--max N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from synth.generator.dataset import DatasetError, finalize_folder, load_records, read_json


def snapshot(src: Path, dst: Path, max_frames: int | None = None) -> int:
    if not (src / "records").is_dir():
        raise DatasetError(f"{src} is not a synth dataset being rendered (no records/)")
    if dst.exists():
        shutil.rmtree(dst)
    records = load_records(src)[: max_frames or None]
    if not records:
        raise DatasetError(f"{src} has no finished frames yet")
    for sub in ("images", "masks", "records"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for r in records:
        for rel in (r.image, r.mask, f"records/{r.id}.json"):
            if rel:
                shutil.copy2(src / rel, dst / rel)
    config = read_json(src / "config.json") if (src / "config.json").exists() else {}
    shutil.copy2(src / "config.json", dst / "config.json")
    finalize_folder(dst, manifest={"command": "synth render (snapshot)", "config": config, "kind": "rendered",
                                   "snapshot_of": str(src), "seed": config.get("seed")},
                    class_names=["normal", "lesion"], coco=False)
    return len(records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--max", type=int, default=None, help="keep at most the first N frames (by id)")
    a = ap.parse_args()
    try:
        n = snapshot(a.src, a.dst, a.max)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    print(f"snapshot of {n} finished frames of {a.src} in {a.dst}")


if __name__ == "__main__":
    main()
