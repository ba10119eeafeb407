"""Training and test data for `synth classify`: sources, splits, field-of-view mask, tensors.

A *source* is one dataset folder given on the command line as ``NAME=DIR[:FRACTION][@WEIGHT]``:
``synthetic=runs/render`` (every frame), ``real=data/kvasir:0.1`` (10 % of its frames, stratified
by label with ``--seed``), ``real=DIR@2`` (its frames drawn twice as often per epoch). Sources that
share a name are pooled: ``--test real=kvasir --test real=cpchild`` is one test set called "real".

Honest splits: a folder that appears both in ``--train`` and ``--test`` is split by frame id
with the seed into a training pool and a held-out test part (``holdout``); training fractions
are drawn from the pool only, and `check_disjoint` refuses to go on if any image file is in
both. Every frame id used is recorded in the report.

Every image, real or rendered, goes through the same resize and the same circular field-of-view
mask (black outside a centred circle) at train and test time, so a model cannot tell data sets
apart by their borders or on-screen text (Kvasir-SEG has both, CP-CHILD neither).

Reading goes through `synth.generator.dataset.Dataset` only; this module never knows the layout.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from synth import UserError
from synth.generator.dataset import Dataset, DatasetError
# The field-of-view circle and the classifier's input view live in the primitives layer;
# imported here because they are also this module's API (train, segment, evaluate, the judge).
from synth.generator.imaging import fov_mask, model_view  # noqa: F401
from synth.generator.splits import holdout_split, stratified_split  # noqa: F401  (holdout_split: also this module's API)
from synth.rng import CLASSICAL_AUGMENT_STREAM, fork_rng


class ClassifyError(UserError):
    """A mistake in what `synth classify` was asked to do (bad sources, classes, options)."""


# --------------------------------------------------------------------------- sources

_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z0-9_.-]+)=)?(?P<path>.+?)(?::(?P<frac>[0-9.eE+-]+))?(?:@(?P<weight>[0-9.eE+-]+))?$")


@dataclass
class SourceSpec:
    """One ``NAME=DIR[:FRACTION][@WEIGHT]`` option."""

    name: str
    path: str
    fraction: float = 1.0
    weight: float | None = None  # relative sampling weight of the whole source; None: by size

    @classmethod
    def parse(cls, text: str, *, default_name: str) -> "SourceSpec":
        m = _SPEC.match(text.strip())
        if not m:
            raise ClassifyError(f"cannot read source {text!r}; write NAME=DIR[:FRACTION][@WEIGHT]")
        name = m.group("name") or default_name
        try:
            frac = float(m.group("frac")) if m.group("frac") else 1.0
            weight = float(m.group("weight")) if m.group("weight") else None
        except ValueError:
            raise ClassifyError(f"cannot read the fraction or weight in {text!r}") from None
        if not 0.0 <= frac <= 1.0:
            raise ClassifyError(f"fraction {frac} in {text!r} must be between 0 and 1")
        if weight is not None and weight <= 0:
            raise ClassifyError(f"weight {weight} in {text!r} must be positive")
        return cls(name=name, path=m.group("path"), fraction=frac, weight=weight)

    def __str__(self) -> str:
        s = f"{self.name}={self.path}"
        if self.fraction != 1.0:
            s += f":{self.fraction:g}"
        if self.weight is not None:
            s += f"@{self.weight:g}"
        return s


@dataclass
class Selection:
    """The frames of one dataset folder chosen for one role (train or test)."""

    spec: SourceSpec
    dataset: Dataset
    indices: np.ndarray  # into dataset.records

    @property
    def ids(self) -> list[str]:
        return [self.dataset.records[i].id for i in self.indices]

    def labels(self) -> list[str]:
        return [self.dataset.records[i].label for i in self.indices]

    def describe(self) -> dict:
        labels = self.labels()
        return {
            "name": self.spec.name,
            "path": str(self.dataset.root),
            "kind": self.dataset.manifest.get("kind"),
            "fraction": self.spec.fraction,
            "weight": self.spec.weight,
            "frames": len(self.indices),
            "per_class": {c: labels.count(c) for c in sorted(set(labels))},
            "ids": self.ids,
        }


def open_dataset(path: str) -> Dataset:
    ds = Dataset.open(path)
    if len(ds) == 0:
        raise ClassifyError(f"dataset {path} has no frames; render or import some first")
    return ds


def class_names_of(datasets: Sequence[Dataset], role: str) -> list[str]:
    """The class names shared by `datasets`, in the first one's order, or a one-line error naming
    the odd one. Folders whose class sets are equal combine whatever their order (labels are
    matched by name); only a different set is an error."""
    first = datasets[0]
    for ds in datasets[1:]:
        if set(ds.class_names) != set(first.class_names):
            raise ClassifyError(
                f"{role} datasets disagree on classes: {first.root} has {first.class_names}, "
                f"{ds.root} has {ds.class_names}; import them with the same --class-names"
            )
    return first.class_names


def select_sources(
    train: Sequence[SourceSpec],
    test: Sequence[SourceSpec],
    *,
    seed: int,
    holdout: float,
    require_masks: bool = False,
) -> tuple[list[str], list[Selection], list[Selection]]:
    """Open every folder, check classes, split shared folders, and apply fractions.

    Returns (class names in the first training folder's order, training selections, test selections).
    """
    if not train:
        raise ClassifyError("no training data: give at least one --train NAME=DIR")
    if not test:
        raise ClassifyError("no test set: give at least one --test NAME=DIR (e.g. --test real=DIR)")
    if not 0.0 < holdout < 1.0:
        raise ClassifyError(f"--holdout {holdout} must be between 0 and 1")
    opened: dict[Path, Dataset] = {}

    def get(spec: SourceSpec) -> Dataset:
        key = Path(spec.path).resolve()
        if key not in opened:
            opened[key] = open_dataset(spec.path)
        return opened[key]

    train_ds = [get(s) for s in train]
    test_ds = [get(s) for s in test]
    # One class order for the whole report: the first training folder's (recorded in the report).
    names = class_names_of(train_ds, "training")
    test_names = class_names_of(test_ds, "test")
    if set(test_names) != set(names):
        raise ClassifyError(
            f"training classes {names} differ from test classes {test_names}; "
            "the classes must match by name (import with the same --class-names)"
        )
    if len(names) < 2 and not require_masks:
        raise ClassifyError(f"a classifier needs at least two classes; the data has {names}")
    for role, specs in (("--train", train), ("--test", test)):
        seen = set()
        for s in specs:
            key = Path(s.path).resolve()
            if key in seen:
                raise ClassifyError(f"{s.path} is given twice as {role}; give each folder once")
            seen.add(key)
    if require_masks:
        # A folder without masks is fine when every frame is of the first class ("normal"):
        # its truth is an empty mask. A lesion frame without a mask has no truth to learn or score.
        for ds in train_ds + test_ds:
            if not ds.has_masks() and any(lab != names[0] for lab in ds.labels()):
                raise ClassifyError(f"{ds.root} has no masks; segmentation needs masked frames "
                                    "(rendered frames or `synth data import --layout pairs`)")
        if not any(ds.has_masks() for ds in train_ds):
            raise ClassifyError("no training folder has masks; segmentation needs masked frames")

    test_keys = {Path(s.path).resolve() for s in test}
    train_keys = {Path(s.path).resolve() for s in train}
    train_sel, test_sel = [], []
    for spec, ds in zip(test, test_ds):
        idx = np.arange(len(ds))
        if Path(spec.path).resolve() in train_keys:
            # Shared folder: the held-out part is the test set, the rest is the training pool.
            _, idx = holdout_split(ds, holdout, seed)
        if spec.fraction < 1.0:
            idx = _fraction(ds, idx, spec.fraction, seed)
        test_sel.append(Selection(spec, ds, idx))
    for spec, ds in zip(train, train_ds):
        idx = np.arange(len(ds))
        if Path(spec.path).resolve() in test_keys:
            idx, _ = holdout_split(ds, holdout, seed)
        idx = _fraction(ds, idx, spec.fraction, seed)
        train_sel.append(Selection(spec, ds, idx))
    for sel in test_sel:
        if len(sel.indices) == 0:
            raise ClassifyError(f"test source {sel.spec} selects no frames")
    check_disjoint(train_sel, test_sel)
    return names, train_sel, test_sel


def _fraction(ds: Dataset, idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified `fraction` of `idx` (generator/splits.py: the same share `synth data subset` copies)."""
    from synth.generator.splits import stratified_fraction

    return stratified_fraction([ds.records[i].label for i in idx], idx, fraction, seed)


def check_disjoint(train: Sequence[Selection], test: Sequence[Selection]) -> None:
    """Refuse to train and test on the same image file (by resolved path)."""
    train_files = {(s.dataset.root / s.dataset.records[i].image).resolve() for s in train for i in s.indices}
    for s in test:
        for i in s.indices:
            if (s.dataset.root / s.dataset.records[i].image).resolve() in train_files:
                raise ClassifyError(f"frame {s.dataset.records[i].id} of {s.dataset.root} is in both the "
                                    "training and the test data; use separate folders or --holdout")


# --------------------------------------------------------------------------- images


@dataclass
class Arrays:
    """Images (N, 3, S, S) uint8, class indices (N,), optional binary masks (N, S, S) uint8,
    sampling weights (N,), and where each row came from."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    weights: np.ndarray
    origin: list[tuple[str, str, str]] = field(default_factory=list)  # (source name, folder, frame id)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows) -> "Arrays":
        rows = np.asarray(rows, np.int64)
        return Arrays(self.images[rows], self.labels[rows], None if self.masks is None else self.masks[rows],
                      self.weights[rows], [self.origin[i] for i in rows])

    def row_of(self) -> dict[tuple[str, str], int]:
        """(folder, frame id) -> row, to pick the rows of a sub-selection without decoding again."""
        return {(o[1], o[2]): k for k, o in enumerate(self.origin)}


def load_arrays(
    selections: Sequence[Selection],
    class_names: Sequence[str],
    *,
    size: int,
    fov: str = "circle",
    fov_radius: float = 0.44,
    with_masks: bool = False,
    threads: int = 2,
) -> Arrays:
    """Decode, resize and field-of-view-mask every selected frame into memory.

    Data sets here are small (thousands of frames at 128 px is a few hundred MB), so decoding
    once beats decoding every epoch on a 2-core machine.
    """
    # The per-frame reading `SynthDataset` does too: users' own training sees these pixels.
    from synth.classifier.torch_dataset import read_frame

    if fov not in ("circle", "none"):
        raise ClassifyError(f"--fov {fov!r}: choose circle or none")
    keep = fov_mask(size, fov_radius) if fov == "circle" else None
    jobs = [(sel, i) for sel in selections for i in sel.indices]

    def one(job):
        sel, i = job
        f = read_frame(sel.dataset, sel.dataset.records[i], size=size, keep=keep, masks=with_masks, binary_mask=True)
        return f["image"], f["mask"]

    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            out = list(pool.map(one, jobs))
    except DatasetError:
        raise
    n = len(out)
    images = np.zeros((n, 3, size, size), np.uint8)
    masks = np.zeros((n, size, size), np.uint8) if with_masks else None
    for k, (img, m) in enumerate(out):
        images[k] = img.transpose(2, 0, 1)
        if masks is not None:
            masks[k] = m
    labels = np.array([class_names.index(sel.dataset.records[i].label) for sel, i in jobs], np.int64)
    # Per-row sampling weight: a source with @W gets W of the epoch's draws in total
    # (shared evenly among its frames); sources without a weight count by their size.
    weights = np.ones(n, np.float64)
    total = sum(len(s.indices) for s in selections)
    start = 0
    for sel in selections:
        k = len(sel.indices)
        if sel.spec.weight is not None and k:
            weights[start:start + k] = sel.spec.weight * total / k
        start += k
    origin = [(sel.spec.name, str(sel.dataset.root), sel.dataset.records[i].id) for sel, i in jobs]
    return Arrays(images, labels, masks, weights, origin)


# --------------------------------------------------------------------------- augmentation


def classical_copies(n: int, fraction: float) -> int:
    """How many copies `classical_augment` adds to n images at `fraction`."""
    return int(round(fraction * n)) if fraction > 0 else 0


def classical_augment(arrays: Arrays, fraction: float, *, seed: int, fov: str, fov_radius: float) -> Arrays:
    """The classical baseline: add `fraction` x N augmented copies (flip, rotate, resized crop).

    Copies are made once, before training, from randomly chosen training images (a fixed seed),
    so "20 % augmentation" means a training set 1.2 times as large. The field-of-view mask is
    applied again afterwards: a rotated border must not become a new cue.
    """
    import torch
    from torchvision.transforms import v2

    if fraction <= 0:
        return arrays
    n_new = classical_copies(len(arrays), fraction)
    rng = np.random.default_rng(np.random.SeedSequence([seed, CLASSICAL_AUGMENT_STREAM]))
    pick = rng.choice(len(arrays), size=n_new, replace=n_new > len(arrays))
    size = arrays.images.shape[-1]
    tf = v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(20),
        v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
    ])
    # torchvision's transforms draw from torch's global generator: seeded here, restored after.
    with fork_rng(int(rng.integers(2**31))):
        new = np.stack([tf(torch.from_numpy(arrays.images[i])).numpy() for i in pick]) if n_new else arrays.images[:0]
    new_masks = None
    if fov == "circle":
        new = new * fov_mask(size, fov_radius)[None, None].astype(np.uint8)
    if arrays.masks is not None:
        new_masks = arrays.masks[pick]  # segmentation does not use this baseline; keep shapes aligned
    return Arrays(
        images=np.concatenate([arrays.images, new]),
        labels=np.concatenate([arrays.labels, arrays.labels[pick]]),
        masks=None if arrays.masks is None else np.concatenate([arrays.masks, new_masks]),
        weights=np.concatenate([arrays.weights, arrays.weights[pick]]),
        origin=arrays.origin + [(f"{arrays.origin[i][0]}+aug",) + tuple(arrays.origin[i][1:]) for i in pick],
    )


def online_augment(batch, *, generator, fov_keep=None):
    """Random flips, 90-degree rotations and brightness/contrast/colour jitter per image.

    Used with --online-aug to make rendered frames less uniform; cheap enough for CPU. The
    field-of-view mask is re-applied so the border stays identical for every image. Every draw
    comes from `generator` (a torch.Generator): there is no fall-back to global state.
    """
    import torch

    if not isinstance(generator, torch.Generator):
        raise TypeError("online_augment needs a seeded torch.Generator (generator=...)")
    x = batch
    n = x.shape[0]
    g = generator
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    k = torch.randint(0, 4, (n,), generator=g)
    x = torch.stack([torch.rot90(x[i], int(k[i]), dims=(-2, -1)) for i in range(n)])
    bright = 1.0 + (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.4
    contrast = 1.0 + (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.4
    colour = 1.0 + (torch.rand(n, 3, 1, 1, generator=g) - 0.5) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * bright * colour
    x = x.clamp(0.0, 1.0)
    if fov_keep is not None:
        x = x * fov_keep
    return x


AUG_POLICIES = ("light", "strong")


def strong_augment(batch, masks=None, *, generator, fov_keep=None, fov_radius=0.44):
    """The `strong` --online-aug-policy: geometry and camera variety that rendered frames lack.

    Per image, every draw from `generator`: flips and 90-degree turns; a zoom of 1-1.6x whose crop
    stays inside the field of view (so no black border moves into the picture); brightness,
    contrast, gamma, saturation and hue jitter; half the time a Gaussian blur (0.3-1.2 px) and half
    the time sensor noise. A renderer draws one camera and one processor; real frames come from
    many, and a model that never saw blur, colour casts or zoom learns the renderer's (the usual
    domain-randomisation remedy for sim-to-real). `masks` (N, 1, S, S), when given, get the same
    geometry (nearest neighbour) and none of the photometry. Images are floats in [0, 1].
    Returns the images, or (images, masks) when masks were given.
    """
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if not isinstance(generator, torch.Generator):
        raise TypeError("strong_augment needs a seeded torch.Generator (generator=...)")
    g = generator
    n, _, size, _ = batch.shape

    def u(lo, hi):
        return lo + (hi - lo) * float(torch.rand(1, generator=g))

    out_x, out_y = [], []
    for i in range(n):
        x = batch[i]
        y = masks[i] if masks is not None else None
        if float(torch.rand(1, generator=g)) < 0.5:
            x = x.flip(-1)
            y = y.flip(-1) if y is not None else None
        k = int(torch.randint(0, 4, (1,), generator=g))
        x = torch.rot90(x, k, dims=(-2, -1))
        y = torch.rot90(y, k, dims=(-2, -1)) if y is not None else None
        zoom = u(1.0, 1.6)
        if zoom > 1.02:
            side = max(8, int(round(size / zoom)))
            # The crop's centre may wander as far as keeps the output's field of view inside the input's.
            reach = fov_radius * size * (1.0 - side / size) / 1.5
            cy = size / 2 + u(-reach, reach)
            cx = size / 2 + u(-reach, reach)
            top = int(round(min(max(cy - side / 2, 0), size - side)))
            left = int(round(min(max(cx - side / 2, 0), size - side)))
            x = TF.resized_crop(x, top, left, side, side, [size, size], interpolation=InterpolationMode.BILINEAR,
                                antialias=True)
            if y is not None:
                y = TF.resized_crop(y, top, left, side, side, [size, size], interpolation=InterpolationMode.NEAREST)
        x = TF.adjust_brightness(x, u(0.7, 1.3))
        x = TF.adjust_contrast(x, u(0.7, 1.3))
        x = TF.adjust_gamma(x.clamp(0.0, 1.0), u(0.7, 1.4))
        x = TF.adjust_saturation(x, u(0.6, 1.4))
        x = TF.adjust_hue(x.clamp(0.0, 1.0), u(-0.04, 0.04))
        if float(torch.rand(1, generator=g)) < 0.5:
            sigma = u(0.3, 1.2)
            x = TF.gaussian_blur(x, [5, 5], [sigma, sigma])
        if float(torch.rand(1, generator=g)) < 0.5:
            x = x + torch.randn(x.shape, generator=g) * u(0.005, 0.03)
        out_x.append(x.clamp(0.0, 1.0))
        out_y.append(y)
    x = torch.stack(out_x)
    if fov_keep is not None:
        x = x * fov_keep
    if masks is None:
        return x
    y = torch.stack(out_y)
    if fov_keep is not None:
        y = y * fov_keep
    return x, y


# --------------------------------------------------------------------------- real style (--real-style)


@dataclass
class StylePool:
    """Real frames that lend their style to synthetic training images (`--real-style`), as the
    classifier sees them: images (M, S, S, 3) uint8, their fields of view (M, S, S) bool (where
    their statistics are taken, see synth.generator.restyle.real_fov), and where each came from."""

    images: np.ndarray
    fovs: np.ndarray
    selections: list[Selection]
    method: str = "fda"
    prob: float = 0.5
    beta: float = 0.01

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> dict:
        return {"method": self.method, "prob": self.prob, **({"beta": self.beta} if self.method == "fda" else {}),
                "frames": len(self), "sources": [{"path": str(s.dataset.root), "frames": len(s.indices), "ids": s.ids}
                                                 for s in self.selections]}


def style_selections(paths: Sequence[str], train: Sequence[SourceSpec], test: Sequence[Selection], *,
                     seed: int, holdout: float) -> list[Selection]:
    """The frames of each --real-style folder that may lend a style: never a test frame."""
    return real_selections(paths, "--real-style", train, test, seed=seed, holdout=holdout)


def real_selections(paths: Sequence[str], option: str, train: Sequence[SourceSpec], test: Sequence[Selection], *,
                    seed: int, holdout: float) -> list[Selection]:
    """The frames of each real folder given to `option` (--real-style, --adapt-bn) that training
    may look at without their labels: never a test frame.

    A folder that is also a --test folder is refused unless it is a --train folder too (any
    fraction, even :0); then only its training pool (split by frame with --holdout and --seed,
    exactly as for training) is used.
    """
    train_keys = {Path(s.path).resolve() for s in train}
    test_keys = {Path(s.dataset.root).resolve() for s in test}
    sels = []
    for path in paths:
        ds = open_dataset(path)
        if ds.manifest.get("kind") != "real":
            raise ClassifyError(f"{option} {path} is of kind {ds.manifest.get('kind')!r}; give a real folder "
                                "(from `synth data import`)")
        key = Path(path).resolve()
        idx = np.arange(len(ds))
        if key in test_keys:
            if key not in train_keys:
                raise ClassifyError(f"{option} {path} is also a --test folder, so test frames would be used in "
                                    f"training; add --train NAME={path}:0 to split it by frame (only its "
                                    "training pool is then used) or use another folder")
            idx, _ = holdout_split(ds, holdout, seed)
        sels.append(Selection(SourceSpec(option.lstrip("-"), path), ds, idx))
    check_disjoint(sels, test)
    return sels


def load_style_pool(sels: Sequence[Selection], *, size: int, fov: str, fov_radius: float, threads: int,
                    method: str, prob: float, beta: float) -> StylePool:
    """Decode the style frames exactly as training images are (size, field of view)."""
    from synth.generator.restyle import real_fov

    names = sorted({lab for s in sels for lab in s.labels()})
    arr = load_arrays(sels, names, size=size, fov=fov, fov_radius=fov_radius, threads=threads)
    if len(arr) == 0:
        raise ClassifyError("--real-style selects no frames")
    images = np.ascontiguousarray(arr.images.transpose(0, 2, 3, 1))
    fovs = np.stack([real_fov(img) for img in images])
    return StylePool(images, fovs, list(sels), method=method, prob=prob, beta=beta)


def synthetic_rows(arrays: Arrays) -> np.ndarray:
    """True for each row from a folder that is not real (rendered, refined, generated)."""
    kinds: dict[str, str | None] = {}
    for o in arrays.origin:
        if o[1] not in kinds:
            kinds[o[1]] = Dataset.open(o[1]).manifest.get("kind")
    return np.array([kinds[o[1]] != "real" for o in arrays.origin], bool)


def real_style_augment(images: np.ndarray, restyle_rows: np.ndarray, pool: StylePool, rng: np.random.Generator,
                       keep: np.ndarray | None = None) -> np.ndarray:
    """A batch (N, 3, S, S) uint8 with each row where `restyle_rows` is True restyled, with
    probability pool.prob, toward a style frame drawn from the pool with `rng`. Pixels outside
    the field of view `keep` (and the image's own black border) are left as they were."""
    from synth.generator.restyle import render_fov, restyle

    out = images.copy()
    for k in np.flatnonzero(restyle_rows):
        if rng.random() >= pool.prob:
            continue
        j = int(rng.integers(len(pool)))
        img = np.ascontiguousarray(images[k].transpose(1, 2, 0))
        rfov = render_fov(img) if keep is None else render_fov(img) & keep
        if rfov.any():
            out[k] = restyle(pool.method, img, pool.images[j], pool.fovs[j], render_fov=rfov,
                             beta=pool.beta).transpose(2, 0, 1)
    return out
