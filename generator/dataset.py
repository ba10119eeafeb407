"""The synth dataset folder: the one format every command reads and writes.

Pure Python + numpy + OpenCV; never imports bpy or torch. `render` writes dataset folders,
`data import` turns real image collections into them, `refine`/`augment` read and write them,
and `classify` reads them. Nothing else in the project knows the file layout.

Layout of a dataset folder::

    manifest.json     format version, producing command and config, code version, seed,
                      class names (their order is the dataset's class order), channels
                      (3: RGB, 1: greyscale), counts (written by `finalize`)
    index.jsonl       one JSON line per frame, sorted by id (written by `finalize`)
    coco.json         COCO instances for the lesion masks, checked with pycocotools
    config.json       the config of the run that owns this folder (written first)
    scene.toml        rendered folders: the resolved scene file the run sampled from (also in config.json)
    images/ID.png     8 bit, RGB (channels 3) or single-channel grey (channels 1)
    masks/ID.png      uint8 instance mask: 0 background, k = lesion instance k
    depth/ID.png      16-bit depth in units of `manifest.depth_scale` metres (optional)
    specs/ID.json     everything sampled for the frame (optional; rendered frames have it)
    records/ID.json   the frame's index line; written last, so its presence means the
                      frame is complete. `index.jsonl` is assembled from these.

Crash safety: every file is written to a temporary name in the same folder and moved into
place with `os.replace`, and a frame's record is written only after its other files. A frame
is complete exactly when its record exists, so an interrupted run can never leave a frame that
looks complete but is not, and `missing_ids` tells a resumed run what is left to do.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from synth import UserError
from synth.generator.run_folder import RunFolder

FORMAT_VERSION = 1
ID_WIDTH = 6
CHANNELS = (1, 3)  # greyscale or RGB; a manifest without "channels" is RGB (folders made before it existed)


class DatasetError(UserError):
    """A dataset folder is missing, malformed, or would be damaged by the requested write."""


def frame_id(index: int) -> str:
    """The canonical id of frame `index`: zero-padded so ids sort in frame order."""
    return f"{index:0{ID_WIDTH}d}"


FRAME_ID_RE = rf"\d{{{ID_WIDTH},}}"  # every id `frame_id` gives, as a regular expression


# --------------------------------------------------------------------------- atomic writes


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (indent for humans; keys in insertion order)."""
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes for an RGB uint8 (H, W, 3), a grey uint8/uint16 (H, W) array."""
    import cv2

    if array.ndim == 3:
        array = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DatasetError("could not encode PNG")
    return buf.tobytes()


def write_png(path: Path, array: np.ndarray) -> None:
    _atomic_write_bytes(Path(path), encode_png(array))


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); a one-line DatasetError if it is not an image."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DatasetError(f"{path} is not a readable image file; remove or replace it")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def is_gray(image: np.ndarray) -> bool:
    """True for a single-channel image, or an RGB one whose three channels are equal everywhere."""
    if image.ndim == 2 or image.shape[-1] == 1:
        return True
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())


def as_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An image (H, W), (H, W, 1) or (H, W, 3), or a batch (..., H, W, 1|3), as (..., H, W, channels) uint8.

    The one conversion between grey and RGB: grey to RGB repeats the channel (lossless); RGB to
    grey is ITU-R 601 luma (what OpenCV and Pillow use), which gives back the grey values
    exactly for an image whose three channels are equal.
    """
    if channels not in CHANNELS:
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if image.ndim == 2:
        image = image[..., None]
    have = image.shape[-1]
    if have not in CHANNELS:
        raise DatasetError(f"an image must have 1 or 3 channels, got shape {image.shape}")
    if have == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]


def read_gray(path: Path, *, dtype_16bit: bool = False) -> np.ndarray:
    """Read a single-channel PNG (uint8 mask or uint16 depth) unchanged."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DatasetError(f"{path} is not a readable image file; remove or replace it")
    if img.ndim == 3:  # a mask saved as RGB(A): any non-zero channel counts
        img = img[..., :3].max(axis=2)
    return img


# --------------------------------------------------------------------------- records


@dataclass
class FrameRecord:
    """One line of index.jsonl. Paths are relative to the dataset folder."""

    id: str
    label: str
    image: str
    width: int
    height: int
    mask: str | None = None
    depth: str | None = None
    spec: str | None = None
    lesion_pixels: int = 0
    # One entry per instance in the mask: COCO-style [x, y, w, h] in pixels.
    instances: list[dict] = field(default_factory=list)
    seed: int | None = None
    # Provenance: where the frame came from (a source dataset's frame id or a file name).
    source: str | None = None
    # Free-form per-frame facts (refinement method and strength, sampler, ...).
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "FrameRecord":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def instances_from_mask(mask: np.ndarray) -> list[dict]:
    """Per-instance id, pixel area and COCO bbox [x, y, w, h] of an instance mask."""
    out = []
    for k in np.unique(mask):
        if k == 0:
            continue
        ys, xs = np.nonzero(mask == k)
        x0, y0 = int(xs.min()), int(ys.min())
        out.append(
            {
                "instance": int(k),
                "area": int(xs.size),
                "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
            }
        )
    return out


# --------------------------------------------------------------------------- a folder's state


def run_config(root: Path) -> dict | None:
    """The config of the run that owns the folder (config.json, written first), or None."""
    path = Path(root) / "config.json"
    return read_json(path) if path.exists() else None


def done_ids(root: Path) -> set[str]:
    """Ids of the frames that are complete (their record exists), finished folder or not."""
    return {p.stem for p in (Path(root) / "records").glob("*.json")}


def is_finished(root: Path) -> bool:
    """True when `finalize` has run (its manifest is written last), so the folder can be read."""
    return (Path(root) / "manifest.json").exists()


def temp_files(root: Path) -> list[Path]:
    """The temporary files writers put in the folder and its frame folders before moving them into place."""
    root = Path(root)
    return [*(q for sub in DatasetWriter.SUBDIRS for q in (root / sub).glob(".*.tmp")), *root.glob(".*.tmp")]


# --------------------------------------------------------------------------- writer


class DatasetWriter:
    """Writes frames into a dataset folder, safely and resumably.

    `config` is the owning run's configuration (a JSON-able dict). `channels` is 3 for RGB
    images or 1 for greyscale ones (written as single-channel PNGs). Opening a folder that holds
    a different config raises DatasetError unless `overwrite`; with `overwrite` the files a writer
    wrote there are removed first (any other file stays). Opening a folder with the same config
    resumes it: frames whose record exists are kept (see `done_ids`).
    """

    def __init__(
        self,
        root: Path,
        *,
        config: dict,
        class_names: Sequence[str],
        overwrite: bool = False,
        config_keys_that_may_change: Iterable[str] = (),
        channels: int = 3,
    ):
        if channels not in CHANNELS:
            raise DatasetError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels}")
        self.root = Path(root)
        self.config = config
        self.class_names = list(class_names)
        self.channels = channels
        self._prepare(overwrite, set(config_keys_that_may_change))

    # What a writer owns: these files, and in each folder the files it names by frame id. Anything
    # else in `root` is left alone, --overwrite included.
    FRAME_FILES = {sub: rf"{FRAME_ID_RE}\.{ext}" for sub, ext in
                   (("images", "png"), ("masks", "png"), ("depth", "png"), ("specs", "json"), ("records", "json"))}
    SUBDIRS = tuple(FRAME_FILES)
    FILES = ("manifest.json", "index.jsonl", "coco.json", "config.json", "preview.png", "scene.toml")

    def _prepare(self, overwrite: bool, may_change: set[str]) -> None:
        root = self.root
        out = RunFolder(root, names=self.FILES, folders=self.FRAME_FILES, error=DatasetError)
        out.check()
        diff = out.differing_keys(_roundtrip(self.config), may_change)
        if diff and not overwrite:
            raise out.other_run(diff)
        if diff or (diff is None and overwrite):
            out.clear()
        elif diff is None and not out.is_empty() and not (root / "records").is_dir():
            raise out.not_a_run("synth dataset")
        try:
            for sub in self.SUBDIRS:
                (root / sub).mkdir(parents=True, exist_ok=True)
            write_json(root / "config.json", self.config)
        except OSError as e:
            raise DatasetError(f"cannot write to {root}: {e.strerror}; choose a writable --out") from None

    @classmethod
    def attach(cls, root: Path, class_names: Sequence[str]) -> "DatasetWriter":
        """A writer for a folder another process prepared (a rendering worker): no config checks."""
        self = cls.__new__(cls)
        self.root, self.config, self.class_names = Path(root), None, list(class_names)
        self.channels = 3  # rendered frames are RGB
        return self

    def done_ids(self) -> set[str]:
        return done_ids(self.root)

    def write_frame(
        self,
        id: str,
        *,
        image: np.ndarray,
        label: str,
        mask: np.ndarray | None = None,
        depth: np.ndarray | None = None,
        spec: dict | None = None,
        seed: int | None = None,
        source: str | None = None,
        extra: dict | None = None,
    ) -> FrameRecord:
        """Write one frame's files, then its record (which marks it complete)."""
        if label not in self.class_names:
            raise DatasetError(f"label {label!r} is not one of the classes {self.class_names}")
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in CHANNELS):
            raise DatasetError(f"frame {id}: image must be uint8 (H, W, 3) or grey (H, W), "
                               f"got {image.dtype} {image.shape}")
        if self.channels == 1 and not is_gray(image):
            raise DatasetError(f"frame {id}: a colour image cannot go into a greyscale (channels 1) dataset")
        # Stored as the dataset's channels: grey as a single-channel PNG, RGB as RGB.
        image = as_channels(image, self.channels)
        if self.channels == 1:
            image = image[..., 0]
        h, w = image.shape[:2]
        rec = FrameRecord(id=id, label=label, image=f"images/{id}.png", width=w, height=h, seed=seed, source=source)
        rec.extra = dict(extra or {})
        write_png(self.root / rec.image, image)
        if mask is not None:
            if mask.shape != (h, w):
                raise DatasetError(f"frame {id}: mask shape {mask.shape} differs from image {(h, w)}")
            mask = mask.astype(np.uint8)
            rec.mask = f"masks/{id}.png"
            rec.instances = instances_from_mask(mask)
            rec.lesion_pixels = int(np.count_nonzero(mask))
            write_png(self.root / rec.mask, mask)
        if depth is not None:
            rec.depth = f"depth/{id}.png"
            write_png(self.root / rec.depth, depth.astype(np.uint16))
        if spec is not None:
            rec.spec = f"specs/{id}.json"
            write_json(self.root / rec.spec, spec)
        write_json(self.root / "records" / f"{id}.json", rec.to_json())
        return rec

    def finalize(self, *, manifest: dict, coco: bool = True, expected_ids: Iterable[str] | None = None) -> dict:
        """Assemble index.jsonl, coco.json and manifest.json from the frame records."""
        return finalize_folder(self.root, manifest=manifest, class_names=self.class_names, coco=coco,
                               expected_ids=expected_ids, channels=self.channels)


def _roundtrip(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


def load_records(root: Path) -> list[FrameRecord]:
    """The complete frames of a folder, from their record files, sorted by id."""
    recs = []
    for p in sorted((Path(root) / "records").glob("*.json")):
        try:
            recs.append(FrameRecord.from_json(read_json(p)))
        except (json.JSONDecodeError, TypeError) as e:  # records are atomic; this means tampering
            raise DatasetError(f"{p} is corrupt ({e}); delete it and re-run to render that frame again") from None
    return recs


def finalize_folder(
    root: Path,
    *,
    manifest: dict,
    class_names: Sequence[str],
    coco: bool = True,
    expected_ids: Iterable[str] | None = None,
    channels: int = 3,
) -> dict:
    """Write index.jsonl, coco.json and manifest.json (with counts) for the records in `root`.

    `class_names` is written in the order given: it is the dataset's class order, which every
    command that reads the folder keeps. `channels` (3 RGB, 1 greyscale) says how images are stored.
    """
    root = Path(root)
    records = load_records(root)
    if expected_ids is not None:
        expected = set(expected_ids)
        have = {r.id for r in records}
        missing = sorted(expected - have)
        # Frames beyond a smaller --n of a re-run stay on disk but are not part of this dataset.
        records = [r for r in records if r.id in expected]
        if missing:
            raise DatasetError(
                f"{root} is missing {len(missing)} frame(s) (first: {missing[0]}); re-run the same command to render them"
            )
    lines = "".join(json.dumps(r.to_json(), default=_json_default) + "\n" for r in records)
    _atomic_write_bytes(root / "index.jsonl", lines.encode())
    counts = {c: 0 for c in class_names}
    for r in records:
        counts[r.label] = counts.get(r.label, 0) + 1
    man = {
        "format_version": FORMAT_VERSION,
        **manifest,
        "class_names": list(class_names),
        "channels": int(channels),
        "counts": {"frames": len(records), "per_class": counts,
                   "fraction": {c: n / max(1, len(records)) for c, n in counts.items()}},
    }
    if coco and any(r.mask for r in records):
        write_coco(root, records)
        man["coco"] = "coco.json"
    write_json(root / "manifest.json", man)
    return man


# --------------------------------------------------------------------------- COCO


def write_coco(root: Path, records: Sequence[FrameRecord], category: str = "lesion") -> dict:
    """COCO instances (RLE segmentation) for every mask instance; verified by loading with pycocotools."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    root = Path(root)
    images, annotations = [], []
    ann_id = 1
    for img_id, rec in enumerate(records, start=1):
        images.append({"id": img_id, "file_name": rec.image, "width": rec.width, "height": rec.height,
                       "frame_id": rec.id})
        if not rec.mask or not rec.instances:
            continue
        mask = read_gray(root / rec.mask)
        for inst in rec.instances:
            binary = np.asfortranarray((mask == inst["instance"]).astype(np.uint8))
            rle = mask_utils.encode(binary)
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                    "instance": inst["instance"],
                }
            )
            ann_id += 1
    doc = {
        "info": {"description": "synth dataset", "version": str(FORMAT_VERSION)},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": category, "supercategory": "lesion"}],
    }
    write_json(root / "coco.json", doc)
    # Load it back with the reference implementation: a malformed file fails here, not in a user's tool.
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        coco_api = COCO(str(root / "coco.json"))
    if len(coco_api.getAnnIds()) != len(annotations):
        raise DatasetError(f"{root}/coco.json did not load back whole with pycocotools")
    return doc


# --------------------------------------------------------------------------- reader


class Dataset:
    """A finalized dataset folder, read-only.

    >>> ds = Dataset.open("synth-data")
    >>> img = ds.image(ds.records[0]); mask = ds.mask(ds.records[0])
    """

    def __init__(self, root: Path, manifest: dict, records: list[FrameRecord]):
        self.root = Path(root)
        self.manifest = manifest
        self.records = records

    @classmethod
    def open(cls, root: Path | str) -> "Dataset":
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"dataset folder {root} does not exist")
        man_path, idx_path = root / "manifest.json", root / "index.jsonl"
        if not man_path.exists() or not idx_path.exists():
            if (root / "records").is_dir():
                raise DatasetError(
                    f"{root} is an unfinished synth dataset (no manifest.json/index.jsonl); "
                    "re-run the command that made it to finish it"
                )
            raise DatasetError(f"{root} is not a synth dataset (no manifest.json); create it with "
                               "`synth render` or `synth data import`")
        manifest = read_json(man_path)
        records = []
        with open(idx_path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(FrameRecord.from_json(json.loads(line)))
                    except (json.JSONDecodeError, TypeError):
                        raise DatasetError(f"{idx_path}:{n} is not a valid index line") from None
        return cls(root, manifest, records)

    @property
    def class_names(self) -> list[str]:
        """The classes in the dataset's own order (the manifest's); labels index into it."""
        return list(self.manifest.get("class_names", []))

    @property
    def channels(self) -> int:
        """3 for RGB images, 1 for greyscale ones (folders from before the key existed are RGB)."""
        return int(self.manifest.get("channels", 3))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[FrameRecord]:
        return iter(self.records)

    def labels(self) -> list[str]:
        return [r.label for r in self.records]

    def label_indices(self, class_names: Sequence[str] | None = None) -> np.ndarray:
        names = list(class_names or self.class_names)
        return np.array([names.index(r.label) for r in self.records], dtype=np.int64)

    def image(self, rec: FrameRecord, channels: int = 3) -> np.ndarray:
        """The frame's image as uint8 (H, W, channels): RGB by default (a grey image repeated, so
        RGB models read either), or (H, W, 1) grey for models of greyscale data."""
        return as_channels(read_image(self.root / rec.image), channels)

    def mask(self, rec: FrameRecord) -> np.ndarray | None:
        """Instance mask (uint8 H×W); an all-zero mask for frames without one."""
        if rec.mask is None:
            return np.zeros((rec.height, rec.width), np.uint8)
        return read_gray(self.root / rec.mask)

    def depth(self, rec: FrameRecord) -> np.ndarray | None:
        """Depth in metres (float32) or None."""
        raw = self.depth_raw(rec)
        return None if raw is None else raw.astype(np.float32) * float(self.manifest.get("depth_scale", 1.0))

    def depth_raw(self, rec: FrameRecord) -> np.ndarray | None:
        """The stored 16-bit depth (units of `manifest.depth_scale` metres) or None: for copying a
        frame's depth into another folder (refine) without a round trip through float."""
        return None if rec.depth is None else read_gray(self.root / rec.depth)

    def spec(self, rec: FrameRecord) -> dict | None:
        return read_json(self.root / rec.spec) if rec.spec else None

    def has_masks(self) -> bool:
        return any(r.mask for r in self.records)

    def class_counts(self) -> dict[str, int]:
        """Frames per class, in the dataset's class order (classes without frames included)."""
        labels = [r.label for r in self.records]
        return {c: labels.count(c) for c in self.class_names}
