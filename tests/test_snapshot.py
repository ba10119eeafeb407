"""`synth data snapshot` freezes the finished frames of a render, byte for byte, as a dataset."""

from __future__ import annotations

import numpy as np

from synth.generator.dataset import Dataset, DatasetWriter, frame_id
from test_subset import _run  # the shared CLI helper


def _render_in_progress(root, n=5):
    """A folder as a running render leaves it: config, frames with records, no manifest yet."""
    rng = np.random.default_rng(0)
    w = DatasetWriter(root, config={"seed": 3, "resolution": 16}, class_names=["normal", "lesion"])
    for i in range(n):
        mask = np.zeros((16, 16), np.uint8)
        if i % 2:
            mask[4:9, 5:11] = 1
        w.write_frame(frame_id(i), image=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                      label="lesion" if i % 2 else "normal", mask=mask,
                      depth=rng.integers(0, 60000, (16, 16)).astype(np.uint16), spec={"i": i}, seed=i)
    (root / "scene.toml").write_text("# scene\n")
    # a frame still being written: its image is there, its record is not
    (root / "images" / f"{frame_id(n)}.png").write_bytes(b"partial")
    return root


def test_snapshot_copies_the_first_finished_frames_exactly(tmp_path):
    src = _render_in_progress(tmp_path / "render")
    code, text = _run("data", "snapshot", src, "--out", tmp_path / "snap", "--max", 3)
    assert code == 0, text
    ds = Dataset.open(tmp_path / "snap")
    assert [r.id for r in ds.records] == [frame_id(i) for i in range(3)]
    assert ds.manifest["snapshot_of"] == str(src) and ds.manifest["seed"] == 3
    for r in ds.records:
        for rel in (r.image, r.mask, r.depth, r.spec):
            assert (tmp_path / "snap" / rel).read_bytes() == (src / rel).read_bytes()
    assert (tmp_path / "snap" / "scene.toml").read_text() == "# scene\n"
    # every finished frame without --max; the half-written one is not a frame
    code, text = _run("data", "snapshot", src, "--out", tmp_path / "all")
    assert code == 0 and "5 finished frames" in text
    assert len(Dataset.open(tmp_path / "all")) == 5


def test_snapshot_refuses_bad_input_and_never_overwrites_silently(tmp_path):
    src = _render_in_progress(tmp_path / "render")
    assert _run("data", "snapshot", src, "--out", tmp_path / "snap", "--max", 2)[0] == 0
    # the same folder again with other settings: refused, the earlier snapshot kept
    code, text = _run("data", "snapshot", src, "--out", tmp_path / "snap", "--max", 4)
    assert code == 2 and "--overwrite" in text and "Traceback" not in text
    assert len(Dataset.open(tmp_path / "snap")) == 2
    code, text = _run("data", "snapshot", src, "--out", tmp_path / "snap", "--max", 4, "--overwrite")
    assert code == 0 and len(Dataset.open(tmp_path / "snap")) == 4
    for args, words in (([tmp_path / "nothing"], "no records/"), ([src, "--max", 0], "--max"),
                        ([src, "--out", src], "differ")):
        out = [] if "--out" in args else ["--out", tmp_path / "bad"]
        code, text = _run("data", "snapshot", *args, *out)
        assert code == 2 and words in text and len(text.strip().splitlines()) == 1, text
    empty = tmp_path / "empty"
    (empty / "records").mkdir(parents=True)
    code, text = _run("data", "snapshot", empty, "--out", tmp_path / "bad")
    assert code == 2 and "no finished frames" in text
    assert not (tmp_path / "bad").exists()
