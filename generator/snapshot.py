"""`synth data snapshot`: freeze the finished frames of a render (still running or not) as a dataset.

`synth render` finalizes a folder only when every frame is there; a long render can be measured
before that by copying the frames that are complete (their record exists) into a new folder and
finalizing that. The copy keeps every file of a frame byte for byte (image, mask, depth, spec,
record) and the render's config and scene file, and its manifest says how many frames it holds and
what it is a snapshot of, so a result can state the count it used. `--max N` keeps the first N
frames by id: frame i depends only on (seed, i), so the first N frames of a render equal a render
of N frames.

Imports neither torch nor bpy.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from synth.generator.dataset import DatasetError, DatasetWriter, load_records, read_json

RENDER_CLASSES = ("normal", "lesion")


@dataclass
class SnapshotConfig:
    source: str
    out: str
    max_frames: int | None = None
    overwrite: bool = False

    def validate(self) -> None:
        src = Path(self.source)
        if not (src / "records").is_dir():
            raise DatasetError(f"{src} is not a synth dataset (no records/ folder); give a render's --out folder")
        if self.max_frames is not None and self.max_frames < 1:
            raise DatasetError(f"--max must be at least 1, got {self.max_frames}")
        if Path(self.out).resolve() == src.resolve():
            raise DatasetError("--out must differ from the source folder")


def make_snapshot(cfg: SnapshotConfig) -> int:
    """Copy the finished frames (the first `max_frames` by id) and finalize; returns the frame count."""
    cfg.validate()
    src, dst = Path(cfg.source), Path(cfg.out)
    records = load_records(src)[: cfg.max_frames or None]
    if not records:
        raise DatasetError(f"{src} has no finished frames yet; wait for the render to write some")
    manifest = read_json(src / "manifest.json") if (src / "manifest.json").exists() else {}
    class_names = manifest.get("class_names") or list(RENDER_CLASSES)
    render_config = read_json(src / "config.json") if (src / "config.json").exists() else {}
    config = {"command": "data snapshot", **asdict(cfg), "render_config": render_config}
    writer = DatasetWriter(dst, config=config, class_names=class_names, overwrite=cfg.overwrite)
    for r in records:
        for rel in (r.image, r.mask, r.depth, r.spec):
            if rel:
                shutil.copy2(src / rel, dst / rel)
        # The record last: it marks the frame complete, as in a render.
        shutil.copy2(src / "records" / f"{r.id}.json", dst / "records" / f"{r.id}.json")
    if (src / "scene.toml").exists():
        shutil.copy2(src / "scene.toml", dst / "scene.toml")
    writer.finalize(manifest={"command": "synth data snapshot", "config": render_config,
                              "kind": manifest.get("kind", "rendered"), "snapshot_of": str(src),
                              "seed": render_config.get("seed")},
                    # a render writes coco.json unless told not to; a finished one shows which
                    coco=(src / "coco.json").exists() or not manifest, expected_ids=[r.id for r in records])
    return len(records)
