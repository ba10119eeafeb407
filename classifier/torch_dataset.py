"""A synth dataset folder as a `torch.utils.data.Dataset`, for training code of your own.

`synth classify` decodes its frames with `read_frame` too (classifier/data.py `load_arrays`),
so `SynthDataset(root, size=128, fov="circle")` gives exactly the pixels classify's models
see: the resize and field of view are generator/imaging.py's, masks are resized by nearest
neighbour. Reading goes through `synth.generator.dataset.Dataset`; imports torch, never bpy.

>>> ds = SynthDataset("runs/r4000", size=128, fov="circle")
>>> loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from synth.generator.dataset import Dataset, DatasetError, FrameRecord
from synth.generator.imaging import circle, fov_mask, model_view, resize_mask


def read_frame(
    ds: Dataset,
    rec: FrameRecord,
    *,
    size: int | None,
    keep: np.ndarray | None,
    masks: bool = True,
    binary_mask: bool = False,
    depth: bool = False,
) -> dict:
    """One frame as numpy arrays: "image" (H, W, 3) uint8 RGB (grey repeated, as classify's
    models take 3 channels), "mask" (H, W) uint8 instance ids (0/1 with `binary_mask`; zeros for
    a frame without one) or None, "depth" (H, W) float32 metres or None. `size` resizes to
    size x size (None: as stored); outside the field of view `keep` (bool, H x W) everything is 0."""
    img = ds.image(rec)
    if size is not None:
        img = model_view(img, size, None)
    m = d = None
    if masks:
        m = ds.mask(rec)
        if binary_mask:
            m = (m > 0).astype(np.uint8)
        if size is not None:
            m = resize_mask(m, size)
    if depth:
        d = ds.depth(rec)
        if size is not None:
            d = resize_mask(d, size)  # nearest: a depth blended across an edge is no surface's depth
    if keep is not None:
        img = img * keep[..., None].astype(np.uint8)
        m = None if m is None else m * keep.astype(np.uint8)
        d = None if d is None else d * keep
    return {"image": img, "mask": m, "depth": d}


class SynthDataset(torch.utils.data.Dataset):
    """Frames of a dataset folder as dicts of tensors.

    Item i: "image" float32 (3, H, W) in [0, 1]; "label" int, an index into `class_names` (the
    manifest's order); "id" str; "mask" uint8 (H, W) when `masks` (instance ids, or 0/1 with
    `binary_mask`; zeros for a frame without a mask, so batches collate); "depth" float32 (H, W)
    metres when `depth`. `size` resizes to size x size as classify does (None: as stored, so
    frames of different sizes do not collate); `fov="circle"` zeroes everything outside the
    centred circle of `fov_radius` x the shorter side. `indices` picks rows of the folder's
    index (e.g. a classify selection); `records` are the rows this dataset serves, in order.
    `transform(sample)`, when given, gets the dict and returns what the item is.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        size: int | None = None,
        fov: str = "none",
        fov_radius: float = 0.44,
        masks: bool = True,
        binary_mask: bool = False,
        depth: bool = False,
        transform: Callable[[dict], object] | None = None,
        indices: Sequence[int] | None = None,
    ):
        if fov not in ("circle", "none"):
            raise ValueError(f"fov={fov!r}: choose 'circle' or 'none'")
        self.dataset = Dataset.open(root)
        rows = range(len(self.dataset)) if indices is None else indices
        self.records = [self.dataset.records[int(i)] for i in rows]
        self.class_names = self.dataset.class_names
        if depth:
            lacking = [r.id for r in self.records if r.depth is None]
            if lacking:
                raise DatasetError(f"{self.dataset.root} has no depth for {len(lacking)} of its frames "
                                   f"(first: {lacking[0]}); pass depth=False")
        self.size, self.fov, self.fov_radius = size, fov, fov_radius
        self.masks, self.binary_mask, self.depth = masks, binary_mask, depth
        self.transform = transform
        # One circle for every frame when they all come out at one size.
        self._keep = fov_mask(size, fov_radius) if fov == "circle" and size is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rec = self.records[i]
        keep = self._keep
        if keep is None and self.fov == "circle":
            keep = circle(rec.height, rec.width, self.fov_radius)
        f = read_frame(self.dataset, rec, size=self.size, keep=keep, masks=self.masks,
                       binary_mask=self.binary_mask, depth=self.depth)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(f["image"].transpose(2, 0, 1))).float().div_(255.0),
            "label": self.class_names.index(rec.label),
            "id": rec.id,
        }
        if f["mask"] is not None:
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(f["mask"]))
        if f["depth"] is not None:
            sample["depth"] = torch.from_numpy(np.ascontiguousarray(f["depth"], dtype=np.float32))
        return self.transform(sample) if self.transform is not None else sample
