"""The dataset format: round trip, COCO, crash safety, refusal to clobber, and the importers."""

import json

import numpy as np
import pytest

from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id, load_records
from synth.generator.importers import ImportConfig, import_dataset, stratified_split


def _write(root, n=4, config=None, overwrite=False):
    w = DatasetWriter(root, config=config or {"run": 1}, class_names=["normal", "lesion"], overwrite=overwrite)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        mask = np.zeros((16, 16), np.uint8)
        if i % 2:
            mask[2:6, 3:9] = 1
            mask[10:12, 10:15] = 2
        w.write_frame(frame_id(i), image=img, label="lesion" if i % 2 else "normal", mask=mask,
                      depth=np.full((16, 16), 1234, np.uint16), spec={"i": i}, seed=0)
    return w


def test_round_trip_and_coco(tmp_path):
    w = _write(tmp_path / "d")
    man = w.finalize(manifest={"kind": "test"}, expected_ids=[frame_id(i) for i in range(4)])
    assert man["counts"] == {"frames": 4, "per_class": {"normal": 2, "lesion": 2},
                             "fraction": {"normal": 0.5, "lesion": 0.5}}
    ds = Dataset.open(tmp_path / "d")
    assert len(ds) == 4 and ds.class_names == ["normal", "lesion"]
    rec = ds.records[1]
    assert rec.lesion_pixels == 4 * 6 + 2 * 5
    assert [i["bbox"] for i in rec.instances] == [[3, 2, 6, 4], [10, 10, 5, 2]]
    mask = ds.mask(rec)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, 2}
    assert ds.spec(rec) == {"i": 1}
    assert ds.depth(rec).shape == (16, 16)
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "d" / "coco.json"))
    assert len(coco.getAnnIds()) == 4
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert np.array_equal(coco.annToMask(ann), (mask == 1).astype(np.uint8))


def test_missing_frames_block_finalize(tmp_path):
    w = _write(tmp_path / "d", n=3)
    with pytest.raises(DatasetError, match="missing 1 frame"):
        w.finalize(manifest={}, expected_ids=[frame_id(i) for i in range(4)])


def test_a_frame_without_record_is_not_complete(tmp_path):
    w = _write(tmp_path / "d", n=2)
    (tmp_path / "d" / "records" / "000001.json").unlink()  # as if killed before the record was written
    assert w.done_ids() == {"000000"}
    assert [r.id for r in load_records(tmp_path / "d")] == ["000000"]


def test_different_run_refused_without_overwrite(tmp_path):
    _write(tmp_path / "d", config={"run": 1})
    with pytest.raises(DatasetError, match="different run"):
        DatasetWriter(tmp_path / "d", config={"run": 2}, class_names=["normal", "lesion"])
    assert len(list((tmp_path / "d" / "images").iterdir())) == 4  # nothing deleted
    DatasetWriter(tmp_path / "d", config={"run": 2}, class_names=["normal", "lesion"], overwrite=True)
    assert not list((tmp_path / "d" / "images").iterdir())


def test_non_dataset_folder_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="not a synth dataset"):
        DatasetWriter(tmp_path / "d", config={}, class_names=["a"])
    assert (tmp_path / "d" / "thesis.tex").read_text() == "precious"


def test_open_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.open(tmp_path / "nope")
    _write(tmp_path / "d")
    with pytest.raises(DatasetError, match="unfinished"):
        Dataset.open(tmp_path / "d")


def _kvasir_like(root, n=3, size=24):
    import cv2

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = np.full((size, size, 3), 40 * i, np.uint8)
        m = np.zeros((size, size), np.uint8)
        m[2:8, 2:8] = 255
        m[15:20, 15:22] = 255
        cv2.imwrite(str(root / "images" / f"f{i}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"f{i}.png"), m)


def test_import_pairs_round_trip(tmp_path):
    _kvasir_like(tmp_path / "kv")
    import_dataset(ImportConfig(source=str(tmp_path / "kv"), out=str(tmp_path / "out"), layout="pairs",
                                class_names=["normal", "lesion"]))
    ds = Dataset.open(tmp_path / "out")
    assert len(ds) == 3 and ds.labels() == ["lesion"] * 3
    assert [len(r.instances) for r in ds.records] == [2, 2, 2]  # connected components become instances
    assert ds.records[0].source == "f0.jpg"
    assert (tmp_path / "out" / "coco.json").exists()


def test_import_rejects_bad_input_before_writing(tmp_path):
    import cv2

    _kvasir_like(tmp_path / "kv")
    (tmp_path / "kv" / "masks" / "f1.png").unlink()
    with pytest.raises(DatasetError, match="f1.jpg has no mask"):
        import_dataset(ImportConfig(source=str(tmp_path / "kv"), out=str(tmp_path / "o1"), layout="pairs"))
    assert not (tmp_path / "o1").exists()

    _kvasir_like(tmp_path / "kv2")
    (tmp_path / "kv2" / "images" / "f2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="not a readable image"):
        import_dataset(ImportConfig(source=str(tmp_path / "kv2"), out=str(tmp_path / "o2"), layout="pairs"))
    assert not (tmp_path / "o2").exists()

    (tmp_path / "cls" / "a").mkdir(parents=True)
    (tmp_path / "cls" / "b").mkdir()
    cv2.imwrite(str(tmp_path / "cls" / "a" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "cls" / "b" / "y.png"), np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="mixed sizes"):
        import_dataset(ImportConfig(source=str(tmp_path / "cls"), out=str(tmp_path / "o3"), layout="classes"))
    with pytest.raises(DatasetError, match="not among --class-names"):
        import_dataset(ImportConfig(source=str(tmp_path / "cls"), out=str(tmp_path / "o4"), layout="classes",
                                    class_names=["a"]))
    import_dataset(ImportConfig(source=str(tmp_path / "cls"), out=str(tmp_path / "o5"), layout="classes",
                                resolution=8))
    assert Dataset.open(tmp_path / "o5").labels() == ["a", "b"]


def test_import_npz(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10).reshape(-1, 1) % 3
    np.savez(tmp_path / "toy.npz", train_images=x, train_labels=y, test_images=x[:2], test_labels=y[:2])
    import_dataset(ImportConfig(source=str(tmp_path / "toy.npz"), out=str(tmp_path / "o"), layout="npz"))
    ds = Dataset.open(tmp_path / "o")
    assert ds.class_names == ["class_0", "class_1", "class_2"] and len(ds) == 10
    assert np.array_equal(ds.image(ds.records[4]), x[4])
    with pytest.raises(DatasetError, match="no val_images"):
        import_dataset(ImportConfig(source=str(tmp_path / "toy.npz"), out=str(tmp_path / "o2"), layout="npz",
                                    split="val"))


def test_stratified_split_is_reproducible_and_disjoint():
    labels = ["a"] * 50 + ["b"] * 30
    g1 = stratified_split(labels, [0.8, 0.2], seed=3)
    g2 = stratified_split(labels, [0.8, 0.2], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))
    assert not set(g1[0]) & set(g1[1]) and len(g1[0]) + len(g1[1]) == 80
    assert sum(labels[i] == "b" for i in g1[1]) == 6
    assert not np.array_equal(stratified_split(labels, [0.8, 0.2], seed=4)[1], g1[1])


def test_index_is_json_lines(tmp_path):
    _write(tmp_path / "d").finalize(manifest={})
    lines = (tmp_path / "d" / "index.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [frame_id(i) for i in range(4)]
