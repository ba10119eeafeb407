"""Training data for diffusion models: synth dataset folders loaded into memory as tensors.

Reads folders only through `synth.generator.dataset.Dataset` (the one reader of the format).
Images become uint8 (N, C, H, W), C = 1 when every folder is greyscale (manifest `channels` 1)
and 3 otherwise; lesion masks become binary uint8 (N, H, W). The images the diffusion part
works with are small (28-128 px), so holding them in memory is both the fastest and the
simplest way to make batches reproducible.

A frame's conditioning label is either its class label (`condition="label"`), the domain of
its dataset (`condition="domain"`: the manifest's `kind`, e.g. real or rendered), or nothing.
Class labels keep the datasets' own class order (their manifests'), so a model trained on a
folder, and the samples it writes, list the classes in the order that folder does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from synth.generator.dataset import Dataset, DatasetError
from synth.generator.imaging import resize_image as _resize_image, resize_mask  # noqa: F401  (resize_mask: also this module's API)

CONDITIONS = ("label", "domain", "none")


@dataclass
class ImageSet:
    images: np.ndarray  # uint8 (N, C, H, W), C = 3 (RGB) or 1 (greyscale)
    masks: np.ndarray  # uint8 (N, H, W), 1 = lesion
    labels: np.ndarray  # int64 (N,) index into class_names; all 0 when unconditional
    class_names: list[str]
    ids: list[str]  # "<dataset folder>:<frame id>" for provenance

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def dataset_domain(ds: Dataset) -> str:
    return str(ds.manifest.get("kind") or "unknown")


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """The primitives' `resize_image`, cubic when enlarging: what every diffusion model trained on."""
    return _resize_image(img, size, enlarge="cubic")


def open_datasets(paths: Sequence[str | Path]) -> list[Dataset]:
    if not paths:
        raise DatasetError("no dataset folder given; pass at least one --data FOLDER")
    out = []
    for p in paths:
        ds = Dataset.open(p)
        if len(ds) == 0:
            raise DatasetError(f"dataset {p} has no frames")
        out.append(ds)
    return out


def check_sizes(datasets: Sequence[Dataset]) -> int:
    """The common square size of every frame; a one-line error for mixed or non-square sizes."""
    sizes = {(r.width, r.height) for ds in datasets for r in ds}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        raise DatasetError(f"images have mixed sizes ({shown}); pass --resolution N to resize them all to NxN")
    (w, h), = sizes
    if w != h:
        raise DatasetError(f"images are {w}x{h}, not square; pass --resolution N to resize them to NxN")
    return w


def class_order(datasets: Sequence[Dataset], found: Sequence[str]) -> list[str]:
    """The labels in `found`, in the datasets' class order: the first folder's manifest order,
    then classes only later folders have in theirs, then any label no manifest lists."""
    order: list[str] = []
    for ds in datasets:
        order += [c for c in ds.class_names if c not in order]
    order += [c for c in found if c not in order]
    return [c for c in order if c in found]


def data_channels(datasets: Sequence[Dataset]) -> int:
    """1 when every folder is greyscale, else 3 (a grey folder mixed with RGB ones is read as RGB)."""
    return 1 if all(ds.channels == 1 for ds in datasets) else 3


def load_images(
    paths: Sequence[str | Path],
    *,
    resolution: int | None = None,
    condition: str = "label",
    class_names: Sequence[str] | None = None,
    limit_per_dataset: int | None = None,
) -> ImageSet:
    """Load frames of one or more dataset folders, resized to `resolution` (None: keep; must agree).

    Class labels are ordered as the folders' manifests order them (not sorted as strings:
    class_10 after class_9); domains are sorted.
    """
    if condition not in CONDITIONS:
        raise DatasetError(f"--condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    datasets = open_datasets(paths)
    size = resolution if resolution is not None else check_sizes(datasets)
    if size <= 0:
        raise DatasetError(f"--resolution must be a positive number of pixels, got {size}")

    def name_of(ds: Dataset, label: str) -> str:
        return {"label": label, "domain": dataset_domain(ds), "none": "all"}[condition]

    found: list[str] = []
    for ds in datasets:
        for r in ds.records[:limit_per_dataset]:
            n = name_of(ds, r.label)
            if n not in found:
                found.append(n)
    if class_names:
        names = list(class_names)
        unknown = [n for n in found if n not in names]
        if unknown:
            raise DatasetError(f"class(es) {', '.join(unknown)} in the data are not among {names}")
    elif condition == "label":
        names = class_order(datasets, found)
    else:
        names = sorted(found)

    channels = data_channels(datasets)
    images, masks, labels, ids = [], [], [], []
    for ds in datasets:
        for r in ds.records[:limit_per_dataset]:
            img = resize_image(ds.image(r, channels), size)
            m = resize_mask(ds.mask(r), size)
            images.append(img.transpose(2, 0, 1))
            masks.append((m > 0).astype(np.uint8))
            labels.append(names.index(name_of(ds, r.label)))
            ids.append(f"{ds.root}:{r.id}")
    return ImageSet(
        images=np.stack(images),
        masks=np.stack(masks),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=names if condition != "none" else [],
        ids=ids,
    )


def to_model_range(images_u8):
    """uint8 [0, 255] tensor -> float [-1, 1], the range the models work in."""
    return images_u8.float() / 127.5 - 1.0


def to_uint8(x) -> np.ndarray:
    """Model-range tensor (B, C, H, W) -> uint8 numpy (B, H, W, C)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu")
    import torch

    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def mask_to_model(masks_u8):
    """Binary mask tensor (B, H, W) -> (B, 1, H, W) in {-1, 1}, the mask input channel."""
    return masks_u8.float().unsqueeze(1) * 2 - 1
