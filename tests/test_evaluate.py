"""`synth evaluate` and the realism statistics of `synth.measure`: tiny made-up folders whose answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth.generator.dataset import Dataset, DatasetWriter, frame_id
from synth.measure import realism as R

# Small enough that a whole evaluation (realism, two U-Nets and patch classifiers per arm) takes seconds.
TINY = ["frames_synthetic=24", "frames_real=20", "realism_frames=24", "realism_size=64", "c2st_size=32",
        "seg_size=32", "seg_epochs=1", "seg_batch=16", "patch_size=16", "patch_model=smallcnn", "patch_epochs=1",
        "patch_batch=16", "fractions=0.5", "contact_frames=4"]


def make_scope_frames(root: Path, n: int = 24, size: int = 64, seed: int = 0, *, masks: bool = True,
                      shift=(0, 0, 0), kind: str = "rendered") -> Path:
    """Frames that look like a scope's view: pink shaded mucosa with noise, a dark lumen, a few
    highlights, a black border outside a circle; a redder bump (with its mask) in even frames.
    `shift` is added to the RGB values inside the view."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(root, config={"toy": "evaluate", "n": n, "seed": seed, "masks": masks, "shift": list(shift)},
                      class_names=["normal", "lesion"])
    yy, xx = np.mgrid[:size, :size]
    view = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.48 * size) ** 2
    for i in range(n):
        shade = 0.75 + 0.25 * np.cos((xx + rng.integers(size)) / size * np.pi)
        img = np.stack([200 * shade, 120 * shade, 110 * shade], -1) + rng.normal(0, 8, (size, size, 3))
        ly, lx = rng.integers(int(0.35 * size), int(0.65 * size), 2)
        lumen = (yy - ly) ** 2 + (xx - lx) ** 2 <= (0.1 * size) ** 2
        img[lumen] *= 0.12
        for _ in range(int(rng.integers(1, 4))):
            sy, sx = rng.integers(int(0.25 * size), int(0.75 * size), 2)
            img[sy:sy + 2, sx:sx + 2] = 255
        mask = np.zeros((size, size), np.uint8)
        if i % 2 == 0:
            cy, cx = rng.integers(int(0.3 * size), int(0.7 * size), 2)
            mask[((yy - cy) ** 2 + (xx - cx) ** 2 <= (0.12 * size) ** 2) & ~lumen] = 1
            img[mask > 0] = img[mask > 0] * [1.1, 0.7, 0.7] + [20, 0, 0]
        img = img + np.asarray(shift, np.float64)
        img[~view] = 0
        img = np.clip(img, 0, 255).astype(np.uint8)
        w.write_frame(frame_id(i), image=img, label="lesion" if i % 2 == 0 else "normal",
                      mask=mask if masks else None)
    w.finalize(manifest={"command": "test", "kind": kind})
    return root


def folder_stats(root: Path) -> R.FolderStatistics:
    ds = Dataset.open(root)
    return R.folder_statistics([ds.image(r) for r in ds], [ds.mask(r) if r.mask else None for r in ds])


def _cli(args):
    from typer.testing import CliRunner

    from synth.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(res) -> str:
    err = res.stderr if hasattr(res, "stderr") and res.stderr else res.output
    lines = [line for line in err.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --------------------------------------------------------------------------- realism statistics


def test_field_of_view_drops_border_and_overlay_box_but_keeps_a_dark_lumen():
    size = 64
    img = np.full((size, size, 3), 150, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    img[(yy - 31.5) ** 2 + (xx - 31.5) ** 2 > (0.4 * size) ** 2] = 0  # the scope's black border
    img[44:, :20] = 0  # a black overlay box joined to the border
    img[28:36, 28:36] = 2  # a black lumen in the middle of the view
    view = R.field_of_view(img)
    assert view[30:34, 30:34].all()
    assert not view[50, 14] and not view[0, 0]
    assert view[20, 40]


def test_identical_folders_have_zero_gaps_and_a_shift_in_colour_is_named(tmp_path):
    a = folder_stats(make_scope_frames(tmp_path / "a"))
    same = folder_stats(make_scope_frames(tmp_path / "same"))
    res = R.compare(a, same)
    measured = [g for g in res["gaps"] if g["mean_synthetic"] is not None]
    assert {g["statistic"] for g in measured} == {s.name for s in R.STATISTICS}  # lesion statistics too
    for g in measured:
        assert g["difference"] == 0 and g["smd"] == 0 and g["wasserstein"] == 0, g
        assert g["severity"] == "close" and g["reading"].startswith("synthetic matches real")
    assert all(v == 0 for v in res["pixel_wasserstein"].values())

    # Blue added inside the view lowers b* (bluer): that must be the gap the report names first
    # among the colour statistics, in words, and the largest pooled pixel distance.
    blue = folder_stats(make_scope_frames(tmp_path / "blue", shift=(0, 0, 40)))
    res = R.compare(blue, a)
    by = {g["statistic"]: g for g in res["gaps"]}
    assert by["b_mean"]["difference"] < -5 and by["b_mean"]["severity"] == "large"
    assert "bluer in b*" in by["b_mean"]["reading"]
    assert abs(by["b_mean"]["smd"]) > 3 * abs(by["L_mean"]["smd"])
    assert res["pixel_wasserstein"]["b"] == max(res["pixel_wasserstein"].values())
    # ... and a brighter folder reads as brighter.
    bright = folder_stats(make_scope_frames(tmp_path / "bright", shift=(30, 30, 30)))
    g = {g["statistic"]: g for g in R.compare(bright, a)["gaps"]}["L_mean"]
    assert g["difference"] > 5 and "brighter in L*" in g["reading"]


def test_specular_highlights_and_lesion_statistics_measure_what_they_say():
    size = 64
    img = np.full((size, size, 3), 120, np.uint8)
    img[10:12, 30:32] = 255
    img[40:43, 20:23] = 250
    mask = np.zeros((size, size), np.uint8)
    mask[28:36, 40:48] = 1
    img[28:36, 40:48] = [200, 80, 80]
    m = R.image_statistics(img, mask, radius=0.5)
    assert m.values["specular_blobs"] == 2
    assert m.values["lesion_area"] == pytest.approx(64 / size ** 2)
    assert m.values["lesion_x"] == pytest.approx(43.5 / 63) and m.values["lesion_y"] == pytest.approx(31.5 / 63)
    assert m.values["lesion_da"] > 20  # redder than its grey surround
    assert np.isnan(R.image_statistics(img, None).values["lesion_area"])


def test_c2st_is_near_chance_for_identical_folders_and_high_for_different_ones(tmp_path):
    from synth.measure.c2st import c2st

    def images(root):
        ds = Dataset.open(root)
        return np.stack([ds.image(r) for r in ds])

    a = images(make_scope_frames(tmp_path / "a", n=40, size=32))
    same = images(make_scope_frames(tmp_path / "same", n=40, size=32))
    blue = images(make_scope_frames(tmp_path / "blue", n=40, size=32, seed=3, shift=(0, 0, 60)))
    assert abs(c2st(a, same)["c2st_accuracy"] - 0.5) < 0.15
    assert c2st(a, blue)["c2st_accuracy"] > 0.9


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift():
    from synth.measure.frechet import frechet_distance

    x = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x, x + 1.0) == pytest.approx(8.0, rel=1e-3)  # |mean shift|^2


# --------------------------------------------------------------------------- synth evaluate


@pytest.mark.slow
def test_evaluate_end_to_end_through_the_cli(tmp_path):
    syn = make_scope_frames(tmp_path / "syn", n=24, seed=0)
    real = make_scope_frames(tmp_path / "real", n=20, seed=5, shift=(0, 0, 30), kind="real")
    nomask = make_scope_frames(tmp_path / "nomask", n=12, seed=6, masks=False, kind="real")
    args = ["evaluate", syn, "--real", real, "--real", nomask, "--out", tmp_path / "rep", "--seed", "0",
            "--adapt-bn", nomask, "--adapt-bn", real]
    for kv in TINY:
        args += ["--set", kv]
    res = _cli(args)
    assert res.exit_code == 0, res.output
    # The maskless folder: one clear line on screen, not a crash.
    assert "nomask: segmentation and patch classifier (transfer, low data) skipped: it has no lesion masks" in res.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["budget"]["name"] == "quick (custom)" and rep["budget"]["seg_epochs"] == 1
    assert [s["folder"] for s in rep["skipped"]] == ["nomask"]
    # Realism for both real folders; the shifted one is bluer.
    gaps = {g["statistic"]: g for g in rep["realism"]["folders"]["real"]["gaps"]}
    assert "yellower in b*" in gaps["b_mean"]["reading"]  # the real folder has 30 more blue
    assert set(rep["realism"]["folders"]) == {"real", "nomask"}
    assert 0.0 <= rep["realism"]["folders"]["real"]["c2st"]["c2st_accuracy"] <= 1.0
    assert "fd_synthetic" in rep["realism"]["folders"]["real"]["judge"]
    # Transfer and low data for the masked folder, on its held-out split.
    tr = rep["transfer"]["real"]
    held = set(tr["split"]["held_out_ids"])
    assert tr["split"]["held_out_frames"] == len(held) > 0
    seg, cls = tr["segmentation"], tr["patch_classifier"]
    assert 0.0 <= seg["synthetic_only"]["held_out"]["dice"] <= 1.0
    assert seg["real_trained"]["held_out"]["n"] == len(held)
    assert cls["synthetic_only"]["held_out"]["auc"] is not None and cls["chance"] == 0.5
    # With --adapt-bn the synthetic-only U-Net is also scored with batch norm from unlabelled real frames.
    assert seg["synthetic_only"]["held_out_adapted_bn"]["n"] == len(held)
    pts = rep["low_data"]["real"]["segmentation"]["points"]
    assert [p["fraction"] for p in pts] == [0.5] and pts[0]["real_only"] is not None
    assert "nomask" not in rep["transfer"]
    assert any("synthetic reaches" in line for line in rep["answer"])
    md = (tmp_path / "rep" / "report.md").read_text()
    for part in ("## The answer", "## 1. Realism", "## 2. Transfer", "## 3. Low data", "## Skipped",
                 "yellower in b*", "nomask: segmentation and patch classifier", "batch norm adapted, held-out"):
        assert part in md, part
    for name in ("contact_sheet.png", "realism.png", "colour.png", "radial.png", "transfer.png", "low_data.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG", name


def test_realism_only_run_is_seeded_and_refuses_to_overwrite_silently(tmp_path):
    """Folders without masks: realism only. Identical pictures give zero gaps and C2ST near chance;
    the same seed gives the same report; a second run needs --overwrite."""
    from synth.classifier.evaluate import EvaluateConfig, run_evaluate

    syn = make_scope_frames(tmp_path / "syn", n=40, size=32, masks=False)
    twin = make_scope_frames(tmp_path / "twin", n=40, size=32, masks=False, kind="real")
    lines = []
    cfg = EvaluateConfig(synthetic=str(syn), real=[str(twin)], out=str(tmp_path / "rep"), set=TINY)
    run_evaluate(cfg, log=lines.append)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    real = rep["realism"]["folders"]["twin"]
    for g in real["gaps"]:
        assert g["smd"] in (0.0, None) and g["wasserstein"] in (0.0, None), g
    assert abs(real["c2st"]["c2st_accuracy"] - 0.5) < 0.15
    assert rep["transfer"] == {} and rep["low_data"] == {}
    assert any("twin: segmentation and patch classifier" in line and "no lesion masks" in line for line in lines)

    res = _cli(["evaluate", syn, "--real", twin, "--out", tmp_path / "rep"] + sum((["--set", kv] for kv in TINY), []))
    assert "--overwrite" in _one_line_error(res)
    (tmp_path / "rep" / "mine.txt").write_text("a user's file")
    with pytest.raises(Exception, match="did not write"):
        run_evaluate(EvaluateConfig(synthetic=str(syn), real=[str(twin)], out=str(tmp_path / "rep"), set=TINY,
                                    overwrite=True), log=lambda _: None)
    (tmp_path / "rep" / "mine.txt").unlink()
    run_evaluate(EvaluateConfig(synthetic=str(syn), real=[str(twin)], out=str(tmp_path / "rep"), set=TINY,
                                overwrite=True), log=lambda _: None)
    again = json.loads((tmp_path / "rep" / "report.json").read_text())
    rep.pop("seconds"), again.pop("seconds")
    assert json.dumps(rep["realism"], sort_keys=True) == json.dumps(again["realism"], sort_keys=True)


def test_realism_only_skips_training_even_for_folders_with_masks(tmp_path):
    """--realism-only (the quick loop while tuning a scene): statistics and C2ST for every real
    folder, no segmenter or patch classifier even where masks would allow them, and the report
    says why they are missing."""
    syn = make_scope_frames(tmp_path / "syn", n=24, size=32)
    real = make_scope_frames(tmp_path / "real", n=20, size=32, seed=1, kind="real")
    res = _cli(["evaluate", syn, "--real", real, "--out", tmp_path / "rep", "--realism-only"]
               + sum((["--set", kv] for kv in TINY), []))
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["transfer"] == {} and rep["low_data"] == {}
    assert "c2st_accuracy" in rep["realism"]["folders"]["real"]["c2st"]
    assert [s["reason"] for s in rep["skipped"]] == ["not asked (--realism-only)"]
    assert not (tmp_path / "rep" / "transfer.png").exists()


def test_evaluate_bad_input_gives_one_line_errors(tmp_path):
    syn = make_scope_frames(tmp_path / "syn", n=6, size=32)
    out = tmp_path / "rep"
    assert "no real folder" in _one_line_error(_cli(["evaluate", syn, "--out", out]))
    assert "does not exist" in _one_line_error(_cli(["evaluate", syn, "--real", tmp_path / "nope", "--out", out]))
    assert "both the synthetic" in _one_line_error(_cli(["evaluate", syn, "--real", syn, "--out", out]))
    assert "--budget" in _one_line_error(_cli(["evaluate", syn, "--real", tmp_path / "x", "--out", out,
                                               "--budget", "huge"]))
    assert "KEY=VALUE" in _one_line_error(_cli(["evaluate", syn, "--real", tmp_path / "x", "--out", out,
                                                "--set", "epochs=3"]))
    assert "multiple of 32" in _one_line_error(_cli(["evaluate", syn, "--real", tmp_path / "x", "--out", out,
                                                     "--set", "seg_size=48"]))
    assert not out.exists()


def test_measure_imports_neither_classifier_nor_diffusion_nor_torch():
    """The measurements sit below classifier and diffusion: using them loads neither (nor torch)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from synth.measure import realism as R\n"
        "from synth.measure.c2st import c2st\n"
        "from synth.measure.frechet import frechet_distance\n"
        "imgs = np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)\n"
        "s = R.folder_statistics(list(imgs)); R.compare(s, s)\n"
        "c2st(imgs[:10], imgs[10:], folds=2); frechet_distance(imgs[:10, 0, 0], imgs[10:, 0, 0])\n"
        "bad = [m for m in sys.modules if m.startswith(('synth.classifier', 'synth.diffusion', 'torch', 'bpy'))]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
