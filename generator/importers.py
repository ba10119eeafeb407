"""Importers: turn real image collections into synth dataset folders.

No bpy, no torch. Three layouts users have:

- `pairs`:   `images/X.jpg` with `masks/X.png` (Kvasir-SEG); every frame is labelled
             `--label` (default "lesion"); masks are thresholded and split into instances.
- `classes`: one sub-folder per class (`normal/*.jpg`, `lesion/*.jpg`, ...).
- `npz`:     a MedMNIST `.npz` (`{split}_images`, `{split}_labels`); class names from
             `--class-names` or `class_0..k`.

Every importer validates its whole input before writing anything, so a bad collection costs
no partial output, and records provenance (the source file) per frame.

A collection whose every image is grey (single-channel files or arrays, or RGB files with three
equal channels) is imported as a greyscale dataset (manifest `channels: 1`, single-channel PNGs),
so diffusion models learn and sample one channel; any colour image makes the whole set RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.generator.dataset import DatasetError, DatasetWriter, frame_id, is_gray, read_gray, read_image
from synth.generator.imaging import resize_image, resize_mask
from synth.generator.splits import stratified_split  # noqa: F401  (its old home; callers may import it here)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

# MedMNIST's BloodMNIST label order (from its INFO dict), so imported files read naturally.
BLOODMNIST_CLASSES = [
    "basophil", "eosinophil", "erythroblast", "immature_granulocyte",
    "lymphocyte", "monocyte", "neutrophil", "platelet",
]


@dataclass
class ImportConfig:
    source: str
    out: str
    layout: str  # pairs | classes | npz
    label: str = "lesion"
    split: str = "train"
    class_names: list[str] | None = None
    resolution: int | None = None  # resize to this square size (None: keep)
    limit: int | None = None  # first N items (sorted by name), for quick runs
    seed: int = 0
    overwrite: bool = False
    mask_threshold: int = 127


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def resize_square(img: np.ndarray, size: int | None, *, nearest: bool = False) -> np.ndarray:
    """Resize to size x size with the primitives (area for images, also when enlarging: imported
    folders and patch sets were made so; nearest for masks); None: unchanged."""
    if size is None:
        return img
    return resize_mask(img, size) if nearest else resize_image(img, size, enlarge="area")


def _instances(binary: np.ndarray) -> np.ndarray:
    """Label connected components 1..k (capped at 255) so each polyp is its own instance."""
    import cv2

    n, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    return np.minimum(labels, 255).astype(np.uint8)


def _check_sizes(shapes: dict[str, tuple], resolution: int | None) -> None:
    if resolution is None and len(set(shapes.values())) > 1:
        sizes = sorted({f"{s[1]}x{s[0]}" for s in shapes.values()})
        raise DatasetError(
            f"images have mixed sizes ({', '.join(sizes[:4])}); pass --resolution N to resize them all to NxN"
        )


def import_dataset(cfg: ImportConfig) -> Path:
    """Validate the source collection, then write it as a dataset folder; returns the folder."""
    src = Path(cfg.source)
    if not src.exists():
        raise DatasetError(f"source {src} does not exist")
    if cfg.resolution is not None and cfg.resolution <= 0:
        raise DatasetError(f"--resolution must be a positive number of pixels, got {cfg.resolution}")
    if cfg.layout == "pairs":
        items, class_names = _scan_pairs(src, cfg)
    elif cfg.layout == "classes":
        items, class_names = _scan_classes(src, cfg)
    elif cfg.layout == "npz":
        items, class_names = _scan_npz(src, cfg)
    else:
        raise DatasetError(f"unknown layout {cfg.layout!r}; use pairs, classes or npz")
    if not items:
        raise DatasetError(f"no images found in {src}")
    if cfg.limit is not None:
        items = items[: cfg.limit]

    # Read everything first: a corrupt file or a size mismatch stops us before any write.
    loaded = [(src_name, label, load()) for src_name, label, load in items]
    _check_sizes({n: img.shape[:2] for n, _, (img, _) in loaded}, cfg.resolution)
    channels = 1 if all(is_gray(img) for _, _, (img, _) in loaded) else 3

    from dataclasses import asdict

    config = {"command": "data import", **asdict(cfg)}
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=class_names, overwrite=cfg.overwrite,
                           channels=channels)
    for i, (src_name, label, (img, mask)) in enumerate(loaded):
        img = resize_square(img, cfg.resolution)
        if mask is not None:
            mask = resize_square(mask, cfg.resolution, nearest=True)
        writer.write_frame(frame_id(i), image=img, label=label, mask=mask, source=src_name)
    writer.finalize(
        manifest={"command": "synth data import", "config": config, "seed": cfg.seed, "source": str(src),
                  "kind": "real"},
        expected_ids=[frame_id(i) for i in range(len(loaded))],
    )
    return Path(cfg.out)


def _scan_pairs(src: Path, cfg: ImportConfig):
    img_dir, mask_dir = src / "images", src / "masks"
    if not img_dir.is_dir() or not mask_dir.is_dir():
        raise DatasetError(f"{src} needs images/ and masks/ sub-folders for --layout pairs")
    masks = {p.stem: p for p in _images_in(mask_dir)}
    items = []
    for p in _images_in(img_dir):
        if p.stem not in masks:
            raise DatasetError(f"image {p.name} has no mask in {mask_dir}; add masks/{p.stem}.png or remove the image")
        mp = masks[p.stem]

        def load(p=p, mp=mp):
            img = read_image(p)
            m = read_gray(mp)
            if m.shape != img.shape[:2]:
                raise DatasetError(f"mask {mp.name} is {m.shape[1]}x{m.shape[0]} but its image is "
                                   f"{img.shape[1]}x{img.shape[0]}; masks must match their images")
            return img, _instances(m > cfg.mask_threshold)

        items.append((p.name, cfg.label, load))
    names = [cfg.label] if cfg.class_names is None else list(cfg.class_names)
    if cfg.label not in names:
        raise DatasetError(f"--label {cfg.label!r} is not among --class-names {names}")
    return items, names


def _scan_classes(src: Path, cfg: ImportConfig):
    found = sorted(d.name for d in src.iterdir() if d.is_dir() and _images_in(d))
    names = list(cfg.class_names) if cfg.class_names else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DatasetError(f"folder(s) {', '.join(unknown)} are not among --class-names {names}")
    items = []
    for name in found:
        for p in _images_in(src / name):
            items.append((f"{name}/{p.name}", name, lambda p=p: (read_image(p), None)))
    return items, names


def _scan_npz(src: Path, cfg: ImportConfig):
    try:
        data = np.load(src)
    except Exception:
        raise DatasetError(f"{src} is not a readable .npz file") from None
    key_x, key_y = f"{cfg.split}_images", f"{cfg.split}_labels"
    if key_x not in data or key_y not in data:
        raise DatasetError(f"{src} has no {key_x}/{key_y}; pick --split from "
                           f"{sorted({k.split('_')[0] for k in data.files})}")
    x, y = data[key_x], np.asarray(data[key_y]).reshape(-1)
    n_classes = int(y.max()) + 1
    if cfg.class_names:
        names = list(cfg.class_names)
    elif "blood" in src.name.lower() and n_classes == len(BLOODMNIST_CLASSES):
        names = BLOODMNIST_CLASSES
    else:
        names = [f"class_{k}" for k in range(n_classes)]
    if n_classes > len(names):
        raise DatasetError(f"{src} has label {n_classes - 1} but only {len(names)} class names were given")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise DatasetError(f"{src}: {key_x} has shape {x.shape}; expected (N, H, W) grey or (N, H, W, 3) RGB images")
    # (N, H, W) greyscale MedMNIST sets stay one channel: the writer stores them as grey PNGs.
    items = [(f"{src.name}:{cfg.split}[{i}]", names[int(y[i])], lambda i=i: (np.ascontiguousarray(x[i]), None))
             for i in range(len(x))]
    return items, names


def class_names_arg(text: str | None) -> list[str] | None:
    """Parse a comma-separated --class-names option."""
    if not text:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if len(set(names)) != len(names):
        raise DatasetError(f"--class-names has duplicates: {text}")
    return names
