"""End to end through the real CLI: import a real folder, train, refine, augment, score; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.diffusion.toy import make_toy_dataset, toy_frame
from synth.generator.dataset import Dataset, write_png

TINY = ["--channels", "8,16", "--timesteps", "50", "--batch-size", "4", "--warmup-steps", "1",
        "--sample-steps", "2"]


def run(*args: str, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    # A Kvasir-like real folder: images/ and masks/ (255 = polyp), PNG files.
    for i in range(6):
        img, mask = toy_frame(1, i, 24, True, "real")
        write_png(root / "kvasir" / "images" / f"f{i}.png", img)
        write_png(root / "kvasir" / "masks" / f"f{i}.png", mask * 255)
    # A class-folder collection (BloodMNIST-like, tiny).
    for c, lesion in (("blast", True), ("normal", False)):
        for i in range(4):
            write_png(root / "cells" / c / f"{i}.png", toy_frame(2, i, 16, lesion, "real")[0])
    make_toy_dataset(root / "rendered", n=6, size=32, kind="rendered")
    return root


def test_end_to_end(folders, tmp_path):
    real = tmp_path / "real"
    run("data", "import", folders / "kvasir", "--out", real, "--resolution", "16")
    assert Dataset.open(real).manifest["kind"] == "real"

    model = tmp_path / "run"
    run("diffusion", "train", "--data", folders / "rendered", "--data", real, "--resolution", "16",
        "--condition", "domain", "--mask", "--steps", "2", "--checkpoint-every", "1", "--out", model, "--seed", "1",
        *TINY)
    assert (model / "model" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (model / "loss.png").exists() and (model / "samples" / "step-0000002.png").exists()

    refined = tmp_path / "refined"
    run("refine", folders / "rendered", "--model", model, "--out", refined, "--steps", "3", "--strength", "0.4",
        "--seed", "2")
    src, ref = Dataset.open(folders / "rendered"), Dataset.open(refined)
    assert [(r.id, r.label, r.lesion_pixels > 0) for r in ref] == [(r.id, r.label, r.lesion_pixels > 0) for r in src]
    assert all(r.extra["method"] == "sdedit" and r.extra["strength"] == 0.4 for r in ref)

    res = run("diffusion", "metrics", real, refined, "--seed", "0", code=2)  # too few images for 5 folds
    assert res.output.count("\n") == 1 and "at least 10" in res.output

    cells = tmp_path / "cells"
    run("data", "import", folders / "cells", "--out", cells)
    cmodel = tmp_path / "crun"
    run("diffusion", "train", "--data", cells, "--steps", "1", "--out", cmodel, *TINY)
    aug = tmp_path / "aug"
    run("augment", "--model", cmodel, "--out", aug, "--n", "3", "--steps", "2", "--sampler", "dpm++", "--seed", "4")
    ds = Dataset.open(aug)
    assert ds.manifest["counts"]["per_class"] == {"blast": 3, "normal": 3}
    # Same seed, same samples: a second folder from the same command is identical.
    run("diffusion", "sample", "--model", cmodel, "--out", tmp_path / "aug2", "--n", "3", "--steps", "2",
        "--sampler", "dpm++", "--seed", "4")
    ds2 = Dataset.open(tmp_path / "aug2")
    for a, b in zip(ds, ds2):
        np.testing.assert_array_equal(ds.image(a), ds2.image(b))
    res = run("diffusion", "evaluate", cmodel, "--real", cells, "--n", "10", "--steps", "2", code=2)
    assert "at least 10" in res.output  # 8 real cells: a clear message, not a traceback


@pytest.mark.parametrize("args,message", [
    (["refine", "{tmp}/missing", "--model", "{tmp}/m", "--out", "{tmp}/o"], "does not exist"),
    (["augment", "--model", "{tmp}/missing", "--out", "{tmp}/o"], "does not exist"),
    (["diffusion", "train", "--data", "{root}/rendered", "--data", "{tmp}/small", "--out", "{tmp}/o"], "mixed sizes"),
    (["diffusion", "train", "--data", "{root}/rendered", "--out", "{tmp}/o", "--schedule", "quad"], "--schedule"),
    (["diffusion", "train", "--data", "{root}/rendered", "--out", "{tmp}/o", "--channels", "8,x"], "--channels"),
    (["diffusion", "metrics", "{root}/rendered", "{root}/rendered", "--fid"], "Inception weights"),
    # The no-training refine methods: real style frames needed, beta and strength in range.
    (["refine", "{root}/rendered", "--out", "{tmp}/o", "--method", "fda"], "--real"),
    (["refine", "{root}/rendered", "--real", "{root}/kvasir", "--out", "{tmp}/o", "--method", "fda"],
     "not a synth dataset"),
    (["refine", "{root}/rendered", "--real", "{root}/rendered", "--out", "{tmp}/o", "--method", "histogram"],
     "both of kind"),
    (["refine", "{root}/rendered", "--real", "{tmp}/small", "--out", "{tmp}/o", "--method", "fda", "--beta", "0.6"],
     "--beta"),
    (["refine", "{root}/rendered", "--real", "{tmp}/small", "--out", "{tmp}/o", "--method", "fda", "--beta", "0"],
     "--beta"),
    (["refine", "{root}/rendered", "--real", "{tmp}/small", "--out", "{tmp}/o", "--method", "reinhard",
      "--strength", "1.5"], "--strength"),
    (["refine", "{root}/rendered", "--model", "{tmp}/m", "--out", "{tmp}/o", "--strength", "-0.2"], "--strength"),
])
def test_bad_input_is_one_line(folders, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    make_toy_dataset(tmp_path / "small", n=2, size=16)
    res = run(*[a.format(tmp=tmp_path, root=folders) for a in args], code=2)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.output
    assert not (tmp_path / "o").exists()


def test_restyle_refine_end_to_end(folders, tmp_path):
    """reinhard / histogram / fda through the CLI: no model, same ids, labels and masks, seeded styles."""
    real = tmp_path / "real"
    run("data", "import", folders / "kvasir", "--out", real)
    src = Dataset.open(folders / "rendered")
    real_ids = {r.id for r in Dataset.open(real)}
    for method in ("reinhard", "histogram", "fda"):
        out = tmp_path / method
        res = run("refine", folders / "rendered", "--real", real, "--out", out, "--method", method, "--beta", "0.1",
                  "--seed", "3")
        assert "wrote refined frames" in res.output
        ref = Dataset.open(out)
        assert [(r.id, r.label) for r in ref] == [(r.id, r.label) for r in src]
        for a, b in zip(src, ref):
            np.testing.assert_array_equal(ref.mask(b), src.mask(a))
            assert b.extra["method"] == method and b.extra["style_id"] in real_ids
            assert not np.array_equal(ref.image(b), src.image(a))
        assert ref.manifest["config"]["method"] == method and ref.manifest["real"] == [str(real)]
    # Same seed, same pixels; the folder is not overwritten silently.
    run("refine", folders / "rendered", "--real", real, "--out", tmp_path / "again", "--method", "fda",
        "--beta", "0.1", "--seed", "3")
    a, b = Dataset.open(tmp_path / "fda"), Dataset.open(tmp_path / "again")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(a.image(x), b.image(y))
    res = run("refine", folders / "rendered", "--real", real, "--out", tmp_path / "fda", "--method", "reinhard",
              code=2)
    assert res.output.strip().startswith("error:") and res.output.count("\n") == 1
