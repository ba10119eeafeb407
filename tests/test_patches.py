"""`synth data patches`: lesion and lesion-free windows cut from the same frames, and the
classifier's hold-out that keeps the patches of one frame on one side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id
from synth.generator.patches import PatchConfig, make_patches, outside_circle


def make_frames(root: Path, n: int = 12, size: int = 64, seed: int = 0, *, masks: bool = True) -> Path:
    """Frames with a bright disc lesion in even frames and a black overlay box in the lower-left corner."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(root, config={"toy": "patches", "n": n}, class_names=["normal", "lesion"])
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        img = (rng.random((size, size, 3)) * 80 + 90).astype(np.uint8)
        img[int(0.6 * size):, : int(0.4 * size)] = 0  # the position-guide box of a scope
        mask = np.zeros((size, size), np.uint8)
        if i % 2 == 0:
            c = rng.integers(int(0.35 * size), int(0.65 * size), 2)
            mask[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= (0.1 * size) ** 2] = 1
            img[mask > 0] = [230, 120, 100]
        w.write_frame(frame_id(i), image=img, label="lesion" if mask.any() else "normal",
                      mask=mask if masks else None)
    w.finalize(manifest={"command": "test", "kind": "real"})
    return root


def test_patches_hold_lesion_or_none_and_avoid_border_and_overlays(tmp_path):
    src = make_frames(tmp_path / "frames")
    cfg = PatchConfig(source=str(src), out=str(tmp_path / "p"), size=0.3, seed=0)
    counts = make_patches(cfg)
    ds, frames = Dataset.open(tmp_path / "p"), Dataset.open(src)
    by_id = {r.id: r for r in frames}
    assert counts["lesion"] == 6 and counts["normal"] >= 10
    assert sorted(set(ds.labels())) == ["lesion", "normal"]
    bad = outside_circle(64, 64, cfg.fov_radius)
    for rec in ds:
        x, y, side = rec.extra["window"]
        assert side == round(0.3 * 64)
        src_rec = by_id[rec.source]
        mask = frames.mask(src_rec)[y:y + side, x:x + side]
        image = frames.image(src_rec)[y:y + side, x:x + side]
        assert np.array_equal(ds.image(rec), image)  # a crop, pixel for pixel
        assert not bad[y:y + side, x:x + side].any()  # inside the field of view
        assert (image.max(axis=2) >= cfg.dark).all()  # no overlay-box pixel
        if rec.label == "lesion":
            assert mask.sum() >= min(cfg.min_lesion * side * side, 0.5 * frames.mask(src_rec).astype(bool).sum())
        else:
            assert not mask.any()


def test_patches_are_seeded(tmp_path):
    src = make_frames(tmp_path / "frames")
    windows = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        make_patches(PatchConfig(source=str(src), out=str(tmp_path / name), seed=seed))
        windows.append([(r.source, r.label, r.extra["window"]) for r in Dataset.open(tmp_path / name)])
    assert windows[0] == windows[1]
    assert windows[0] != windows[2]


def test_patch_bad_input(tmp_path):
    src = make_frames(tmp_path / "frames", masks=False)
    with pytest.raises(DatasetError, match="no masks"):
        make_patches(PatchConfig(source=str(src), out=str(tmp_path / "p")))
    with pytest.raises(DatasetError, match="--size"):
        make_patches(PatchConfig(source=str(src), out=str(tmp_path / "p"), size=2.0))
    masked = make_frames(tmp_path / "masked")
    with pytest.raises(DatasetError, match="lower --size"):  # nothing fits a window this big
        make_patches(PatchConfig(source=str(masked), out=str(tmp_path / "p"), size=0.9))
    assert not (tmp_path / "p" / "manifest.json").exists()


def test_patch_cli_one_line_error_and_output(tmp_path):
    from typer.testing import CliRunner

    from synth.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["data", "patches", str(tmp_path / "nope"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0 and "does not exist" in res.output
    src = make_frames(tmp_path / "frames")
    res = runner.invoke(app, ["data", "patches", str(src), "--out", str(tmp_path / "p"), "--resolution", "16"])
    assert res.exit_code == 0, res.output
    assert "6 lesion and" in res.output
    assert {r.width for r in Dataset.open(tmp_path / "p")} == {16}
    assert (tmp_path / "p" / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_holdout_keeps_the_patches_of_a_frame_together(tmp_path):
    from synth.classifier.data import SourceSpec, select_sources

    src = make_frames(tmp_path / "frames", n=40)
    make_patches(PatchConfig(source=str(src), out=str(tmp_path / "p"), seed=0))
    spec = SourceSpec.parse(f"real={tmp_path / 'p'}", default_name="real")
    _, train, test = select_sources([spec], [spec], seed=0, holdout=0.3)
    recs = train[0].dataset.records
    train_frames = {recs[i].source for i in train[0].indices}
    test_frames = {recs[i].source for i in test[0].indices}
    assert train_frames and test_frames and not train_frames & test_frames
    assert len(train[0].indices) + len(test[0].indices) == len(recs)
    assert 0.2 < len(test_frames) / (len(test_frames) + len(train_frames)) < 0.4
