"""Tests of `SynthDataset`, the torch Dataset over a synth folder: real tiny folders, real DataLoaders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from synth.classifier.data import Selection, SourceSpec, load_arrays
from synth.classifier.torch_dataset import SynthDataset
from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id
from synth.generator.imaging import circle, fov_mask, model_view, resize_mask

CLASSES = ["normal", "polyp", "adenoma"]
LABELS = ["polyp", "normal", "adenoma", "polyp", "normal", "adenoma"]
DEPTH_SCALE = 0.001  # metres per stored depth unit


def make_folder(root, *, h=20, w=20, depth=True, channels=3):
    """Six frames of noise in 60..200 with two mask instances (frame 1 has no mask), depth in metres.

    Returns the folder and what was written: {id: (image, mask or None, depth in metres)}."""
    rng = np.random.default_rng(0)
    wr = DatasetWriter(root, config={"t": str(root)}, class_names=CLASSES, channels=channels)
    written = {}
    for i, label in enumerate(LABELS):
        img = rng.integers(60, 200, (h, w) if channels == 1 else (h, w, 3), dtype=np.uint8)
        mask = None
        if i != 1:
            mask = np.zeros((h, w), np.uint8)
            mask[2:9, 3:10] = 1
            mask[12:17, 11:18] = 2
        metres = rng.uniform(0.01, 0.06, (h, w)).astype(np.float32)
        wr.write_frame(frame_id(i), image=img, label=label, mask=mask,
                       depth=np.rint(metres / DEPTH_SCALE).astype(np.uint16) if depth else None)
        written[frame_id(i)] = (img, mask, metres)
    wr.finalize(manifest={"kind": "rendered", "command": "test", "depth_scale": DEPTH_SCALE})
    return root, written


def flip_image(sample):
    """A module-level transform, so DataLoader workers can pickle it."""
    sample["image"] = sample["image"].flip(-1)
    return sample


def test_items_shapes_dtypes_labels_and_stored_pixels(tmp_path):
    root, written = make_folder(tmp_path / "d")
    ds = SynthDataset(root)
    assert len(ds) == 6 and ds.class_names == CLASSES and [r.id for r in ds.records] == list(written)
    for i, (fid, (img, mask, _)) in enumerate(written.items()):
        s = ds[i]
        assert set(s) == {"image", "mask", "label", "id"}
        assert s["id"] == fid and s["label"] == CLASSES.index(LABELS[i])
        assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 20, 20)
        assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
        # As stored: the image exactly, the mask with its instance ids, zeros where there is none.
        assert torch.equal(s["image"], torch.from_numpy(img.transpose(2, 0, 1).copy()).float() / 255)
        assert s["mask"].dtype == torch.uint8 and s["mask"].shape == (20, 20)
        assert np.array_equal(s["mask"].numpy(), mask if mask is not None else np.zeros((20, 20), np.uint8))
    assert set(np.unique(ds[0]["mask"].numpy())) == {0, 1, 2}
    assert "mask" not in SynthDataset(root, masks=False)[0]


@pytest.mark.parametrize("size", [12, 32])  # shrinking (area) and enlarging (linear)
def test_resize_and_field_of_view_are_the_imaging_primitives(tmp_path, size):
    root, written = make_folder(tmp_path / "d")
    img, mask, _ = written[frame_id(0)]
    s = SynthDataset(root, size=size)[0]
    assert s["image"].shape == (3, size, size)
    assert np.array_equal((s["image"] * 255).round().byte().numpy().transpose(1, 2, 0), model_view(img, size, None))
    assert np.array_equal(s["mask"].numpy(), resize_mask(mask, size))
    assert set(np.unique(s["mask"].numpy())) == {0, 1, 2}  # nearest neighbour: ids stay ids
    assert np.array_equal(SynthDataset(root, size=size, binary_mask=True)[0]["mask"].numpy(),
                          (resize_mask(mask, size) > 0).astype(np.uint8))

    keep = fov_mask(size, 0.4)
    s = SynthDataset(root, size=size, fov="circle", fov_radius=0.4, depth=True)[0]
    assert (s["image"][:, ~keep] == 0).all() and (s["image"][:, keep] > 0).all()
    assert (s["mask"][~keep] == 0).all() and (s["depth"][~keep] == 0).all() and (s["depth"][keep] > 0).all()
    assert np.array_equal((s["image"] * 255).round().byte().numpy().transpose(1, 2, 0), model_view(img, size, keep))


def test_field_of_view_at_the_stored_size_of_a_non_square_frame(tmp_path):
    root, _ = make_folder(tmp_path / "d", h=20, w=28)
    s = SynthDataset(root, fov="circle")[0]
    keep = circle(20, 28, 0.44)
    assert s["image"].shape == (3, 20, 28)
    assert (s["image"][:, ~keep] == 0).all() and (s["image"][:, keep] > 0).all()
    assert s["image"][:, 0, 0].eq(0).all() and s["image"][:, -1, -1].eq(0).all()  # the corners


def test_depth_round_trip_in_metres(tmp_path):
    root, written = make_folder(tmp_path / "d")
    ds = SynthDataset(root, depth=True)
    for i, (_, _, metres) in enumerate(written.values()):
        d = ds[i]["depth"]
        assert d.dtype == torch.float32 and d.shape == (20, 20)
        # Stored in whole units of depth_scale: within half a unit of what was written.
        assert np.abs(d.numpy() - metres).max() <= DEPTH_SCALE / 2 + 1e-6
    assert SynthDataset(root, size=10, depth=True)[0]["depth"].shape == (10, 10)


def test_depth_asked_of_a_folder_without_it_is_a_one_line_error(tmp_path):
    root, _ = make_folder(tmp_path / "nodepth", depth=False)
    with pytest.raises(DatasetError) as e:
        SynthDataset(root, depth=True)
    assert "\n" not in str(e.value) and str(root) in str(e.value) and "depth" in str(e.value)


def test_transform_and_indices(tmp_path):
    root, written = make_folder(tmp_path / "d")
    ds = SynthDataset(root, transform=flip_image, indices=[4, 2])
    assert len(ds) == 2 and [r.id for r in ds.records] == [frame_id(4), frame_id(2)]
    s = ds[0]
    assert s["id"] == frame_id(4) and s["label"] == CLASSES.index(LABELS[4])
    img = written[frame_id(4)][0]
    assert torch.equal(s["image"], torch.from_numpy(img[:, ::-1].transpose(2, 0, 1).copy()).float() / 255)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_default_collate(tmp_path, workers):
    root, _ = make_folder(tmp_path / "d")
    ds = SynthDataset(root, size=16, fov="circle", depth=True, transform=flip_image)
    pickle.loads(pickle.dumps(ds))  # what workers started by spawn or forkserver need
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers))
    assert [len(b["id"]) for b in batches] == [4, 2]
    b = batches[0]
    assert b["image"].shape == (4, 3, 16, 16) and b["image"].dtype == torch.float32
    assert b["mask"].shape == (4, 16, 16) and b["mask"].dtype == torch.uint8  # frame 1 has no mask: zeros
    assert b["depth"].shape == (4, 16, 16) and b["depth"].dtype == torch.float32
    assert b["label"].tolist() == [CLASSES.index(lab) for lab in LABELS[:4]]
    assert b["id"] == [frame_id(i) for i in range(4)]
    assert torch.equal(b["image"][1], ds[1]["image"])


@pytest.mark.parametrize("fov", ["circle", "none"])
@pytest.mark.parametrize("channels", [3, 1])
def test_same_pixels_as_load_arrays(tmp_path, fov, channels):
    """`synth classify` and users' own training see the same bytes (greyscale repeated to RGB)."""
    root, _ = make_folder(tmp_path / "d", channels=channels, h=24, w=30)
    rows = [5, 0, 3, 1]
    sel = Selection(SourceSpec("a", str(root)), Dataset.open(root), np.array(rows))
    arr = load_arrays([sel], CLASSES, size=16, fov=fov, fov_radius=0.44, with_masks=True, threads=2)
    ds = SynthDataset(root, size=16, fov=fov, fov_radius=0.44, binary_mask=True, indices=rows)
    assert len(ds) == len(arr) == 4
    for k in range(4):
        s = ds[k]
        assert torch.equal(s["image"], torch.from_numpy(arr.images[k]).float() / 255)
        assert np.array_equal(s["mask"].numpy(), arr.masks[k])
        assert s["label"] == arr.labels[k] and s["id"] == arr.origin[k][2]
    if channels == 1:
        assert torch.equal(ds[0]["image"][0], ds[0]["image"][2])


def test_bad_folders_are_one_line_dataset_errors(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a dataset")
    unfinished = DatasetWriter(tmp_path / "unfinished", config={}, class_names=CLASSES)
    unfinished.write_frame(frame_id(0), image=np.zeros((4, 4, 3), np.uint8), label="normal")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{}")
    (tmp_path / "broken" / "index.jsonl").write_text("not json\n")
    for name, says in [("nope", "does not exist"), ("plain", "not a synth dataset"),
                       ("unfinished", "unfinished"), ("broken", "not a valid index line")]:
        with pytest.raises(DatasetError, match=says) as e:
            SynthDataset(tmp_path / name)
        assert "\n" not in str(e.value) and str(tmp_path / name) in str(e.value)
