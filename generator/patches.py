"""Lesion and normal patches from the same frames: a lesion-vs-normal test without a source shortcut.

No bpy, no torch. `synth data patches SRC --out DST` crops, from every frame of a dataset with
masks, one square window that shows lesion ("lesion" patch) and one that shows none ("normal"
patch). Both classes then come from the same frames, camera, processor and on-screen overlays,
so a classifier can only tell them apart by what is in the window. Real polyp collections
(Kvasir-SEG) have no normal frames of their own, and normal frames from another collection
(CP-CHILD) differ in brightness, borders and zoom: a classifier learns the collection, not the
lesion. Rendered datasets are cut the same way, so training and test see the same kind of image.

Windows are chosen on a grid (stride side/8) among those that
- lie inside a centred circle (at most `--max-outside` of their pixels outside a circle of
  radius `--fov-radius` x side) and on no black pixels (all channels below `--dark`, grown by
  2 px): this keeps the scope's black border, the date text in its corner and the black
  position-guide box that covers part of many Kvasir-SEG frames out of the patches of either
  class, where they would tell the classes apart (normal windows lie nearer the edges);
- for "lesion": hold at least `--min-lesion` of the window in lesion pixels, or at least half of
  the frame's lesion pixels (so small lesions count);
- for "normal": hold no lesion pixel, with a `--margin` of pixels around the lesion kept clear
  (annotated edges are not exact).
One of the qualifying windows is drawn per class and frame (seeded by --seed and the frame's
position), so the lesion is not always centred. Frames where a class has no qualifying window
give no patch of that class; the counts are reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id
from synth.generator.imaging import circle, resize_image, resize_mask
from synth.rng import PATCH_STREAM

CLASS_NAMES = ["normal", "lesion"]


@dataclass
class PatchConfig:
    source: str
    out: str
    size: float = 0.3  # window side as a fraction of the frame's shorter side
    fov_radius: float = 0.42  # circle radius as a fraction of the shorter side
    dark: int = 20  # pixels with every channel below this are overlay or border (0: no such rule)
    max_outside: float = 0.0  # largest fraction of a window allowed outside that circle
    min_lesion: float = 0.15  # lesion fraction of a "lesion" window (or half the frame's lesion)
    margin: int = 4  # pixels kept clear around the lesion in "normal" windows
    resolution: int | None = None  # resize patches to NxN (None: keep the cropped size)
    seed: int = 0
    overwrite: bool = False

    def validate(self) -> None:
        if not 0.05 <= self.size <= 1.0:
            raise DatasetError(f"--size is the window side as a fraction of the frame (0.05-1), got {self.size}")
        if not 0.1 <= self.fov_radius <= 1.0:
            raise DatasetError(f"--fov-radius must be in 0.1-1 (fraction of the frame side), got {self.fov_radius}")
        if not 0.0 <= self.max_outside < 1.0:
            raise DatasetError(f"--max-outside must be in [0, 1), got {self.max_outside}")
        if not 0.0 < self.min_lesion <= 1.0:
            raise DatasetError(f"--min-lesion must be in (0, 1], got {self.min_lesion}")
        if not 0 <= self.dark <= 255:
            raise DatasetError(f"--dark is a pixel value in 0-255, got {self.dark}")
        if self.margin < 0:
            raise DatasetError(f"--margin must be >= 0 pixels, got {self.margin}")
        if self.resolution is not None and self.resolution <= 0:
            raise DatasetError(f"--resolution must be a positive number of pixels, got {self.resolution}")


def _window_sums(binary: np.ndarray, side: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of `binary` in every side x side window on a stride grid: (sums, ys, xs) of top-left corners."""
    h, w = binary.shape
    ii = np.zeros((h + 1, w + 1), np.int64)
    ii[1:, 1:] = binary.astype(np.int64).cumsum(0).cumsum(1)
    ys = np.arange(0, h - side + 1, stride)
    xs = np.arange(0, w - side + 1, stride)
    y0, x0 = ys[:, None], xs[None, :]
    sums = ii[y0 + side, x0 + side] - ii[y0, x0 + side] - ii[y0 + side, x0] + ii[y0, x0]
    return sums, ys, xs


def outside_circle(h: int, w: int, radius: float) -> np.ndarray:
    """True where a pixel lies outside the centred circle of radius `radius` x the shorter side."""
    return ~circle(h, w, radius)


def excluded(image: np.ndarray, cfg: PatchConfig) -> np.ndarray:
    """Pixels no window may cover: outside the circle, or black (border, overlay boxes) grown by 2 px."""
    import cv2

    h, w = image.shape[:2]
    out = outside_circle(h, w, cfg.fov_radius)
    if cfg.dark:
        black = (image.max(axis=2) < cfg.dark).astype(np.uint8)
        out |= cv2.dilate(black, np.ones((5, 5), np.uint8)).astype(bool)
    return out


def choose_windows(mask: np.ndarray, cfg: PatchConfig, rng: np.random.Generator,
                   image: np.ndarray | None = None) -> dict[str, tuple[int, int, int]]:
    """(y, x, side) of at most one "lesion" and one "normal" window of a frame with instance mask `mask`."""
    import cv2

    h, w = mask.shape
    side = max(8, int(round(cfg.size * min(h, w))))
    stride = max(1, side // 8)
    area = side * side
    bad = excluded(image, cfg) if image is not None else outside_circle(h, w, cfg.fov_radius)
    outside, ys, xs = _window_sums(bad, side, stride)
    in_fov = outside <= cfg.max_outside * area
    lesion = mask > 0
    found: dict[str, tuple[int, int, int]] = {}
    total = int(lesion.sum())
    if total:
        les, _, _ = _window_sums(lesion, side, stride)
        ok = in_fov & ((les >= cfg.min_lesion * area) | (les >= 0.5 * total))
        cand = np.argwhere(ok)
        if len(cand):
            i, j = cand[rng.integers(len(cand))]
            found["lesion"] = (int(ys[i]), int(xs[j]), side)
        k = 2 * cfg.margin + 1
        near = cv2.dilate(lesion.astype(np.uint8), np.ones((k, k), np.uint8)) if cfg.margin else lesion
        clear, _, _ = _window_sums(near, side, stride)
        cand = np.argwhere(in_fov & (clear == 0))
    else:
        cand = np.argwhere(in_fov)
    if len(cand):
        i, j = cand[rng.integers(len(cand))]
        found["normal"] = (int(ys[i]), int(xs[j]), side)
    return found


def make_patches(cfg: PatchConfig, log=print) -> dict:
    """Write the patch dataset; returns counts (frames read, patches per class, frames without one)."""
    cfg.validate()
    src = Dataset.open(cfg.source)
    if not src.has_masks():
        raise DatasetError(f"{cfg.source} has no masks; patches need lesion masks to know where lesions are "
                           "(import Kvasir-SEG style images/ + masks/ folders, or use a rendered dataset)")
    if Path(cfg.out).resolve() == Path(cfg.source).resolve():
        raise DatasetError("--out must differ from the source dataset")
    from synth.generator.importers import resize_square

    config = {"command": "data patches", **asdict(cfg)}
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=CLASS_NAMES, overwrite=cfg.overwrite)
    counts = {"frames": len(src), "lesion": 0, "normal": 0, "no_lesion_window": 0, "no_normal_window": 0}
    ids = []
    for n, rec in enumerate(src):
        mask = src.mask(rec)
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, PATCH_STREAM, n]))
        image = src.image(rec)
        windows = choose_windows(mask, cfg, rng, image)
        if mask.any() and "lesion" not in windows:
            counts["no_lesion_window"] += 1
        if "normal" not in windows:
            counts["no_normal_window"] += 1
        for label in ("lesion", "normal"):
            if label not in windows:
                continue
            y, x, side = windows[label]
            crop = np.ascontiguousarray(image[y:y + side, x:x + side])
            crop_mask = np.ascontiguousarray(mask[y:y + side, x:x + side])
            crop = resize_square(crop, cfg.resolution)
            crop_mask = resize_square(crop_mask, cfg.resolution, nearest=True)
            pid = frame_id(len(ids))
            writer.write_frame(pid, image=crop, label=label, mask=crop_mask, source=f"{rec.id}",
                               extra={"window": [x, y, side], "source_label": rec.label})
            ids.append(pid)
            counts[label] += 1
    if not ids:
        raise DatasetError(f"no window of {cfg.size} x the frame side fits inside the field of view of any "
                           f"frame of {cfg.source}; lower --size or raise --fov-radius")
    writer.finalize(manifest={"command": "synth data patches", "config": config, "seed": cfg.seed,
                              "source": str(cfg.source), "kind": src.manifest.get("kind", "unknown"),
                              "patches": counts}, expected_ids=ids)
    write_patch_preview(Path(cfg.out))
    return counts


def write_patch_preview(root: Path, per_class: int = 16, columns: int = 8, tile: int = 64) -> Path:
    """preview.png: rows of lesion patches (lesion outlined in green), then rows of normal patches."""
    import cv2

    from synth.generator.dataset import write_png

    ds = Dataset.open(root)
    tiles = []
    for label in ("lesion", "normal"):
        recs = [r for r in ds if r.label == label][:per_class]
        for rec in recs + [None] * (-len(recs) % columns):  # each class starts on a new row
            if rec is None:
                tiles.append(np.zeros((tile, tile, 3), np.uint8))
                continue
            img = resize_image(ds.image(rec), tile, enlarge="area").copy()  # drawn on below
            mask = resize_mask((ds.mask(rec) > 0).astype(np.uint8), tile)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(img, contours, -1, (0, 255, 0), 1)
            tiles.append(img)
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    write_png(root / "preview.png", np.concatenate(rows, axis=0))
    return root / "preview.png"
