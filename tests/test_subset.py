"""`synth data subset` copies exactly the share `synth classify --train NAME=DIR:FRACTION` trains on."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from synth.classifier.data import SourceSpec, select_sources
from synth.cli import app
from synth.generator.dataset import Dataset, DatasetWriter, frame_id


def _folder(root, n=60, channels=3):
    rng = np.random.default_rng(0)
    w = DatasetWriter(root, config={"test": True}, class_names=["a", "b", "c"], channels=channels)
    ids = []
    for i in range(n):
        img = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        if channels == 1:
            img = np.repeat(img[..., :1], 3, axis=2)
        w.write_frame(frame_id(i), image=img, label="abc"[i % 3 if i < 45 else 0], source=f"s{i}")
        ids.append(frame_id(i))
    w.finalize(manifest={"kind": "real"}, expected_ids=ids)
    return root


def _run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


def test_subset_is_the_share_classify_trains_on_with_the_same_seed(tmp_path):
    src = _folder(tmp_path / "src")
    for seed, holdout in ((0, None), (3, None), (1, 0.3)):
        out = tmp_path / f"sub{seed}"
        args = ["data", "subset", src, "--fraction", 0.25, "--seed", seed, "--out", out]
        code, text = _run(*args + (["--holdout", holdout] if holdout else []))
        assert code == 0, text
        got = Dataset.open(out)
        test = [SourceSpec.parse(f"t={src}", default_name="t")] if holdout else \
            [SourceSpec.parse(f"t={tmp_path / 'src'}", default_name="t")]
        train = [SourceSpec.parse(f"real={src}:0.25", default_name="real")]
        if holdout:
            _, sel, _ = select_sources(train, test, seed=seed, holdout=holdout)
        else:
            other = _folder(tmp_path / f"other{seed}", n=6)
            _, sel, _ = select_sources(train, [SourceSpec.parse(f"t={other}", default_name="t")], seed=seed,
                                       holdout=0.3)
        src_ds = Dataset.open(src)
        assert sorted(r.id for r in got.records) == sorted(src_ds.records[i].id for i in sel[0].indices)
        # Images, labels and class order are the source's, stratified by class.
        for r in got.records:
            s = next(x for x in src_ds.records if x.id == r.id)
            assert r.label == s.label and np.array_equal(got.image(r), src_ds.image(s))
        assert got.class_names == ["a", "b", "c"]
        assert sorted(np.unique(got.labels(), return_counts=True)[1].tolist()) != [len(got)]
    # Different seeds take different frames; the same seed the same ones.
    assert {r.id for r in Dataset.open(tmp_path / "sub0").records} != {r.id for r in Dataset.open(tmp_path / "sub3").records}


def test_subset_keeps_greyscale_and_refuses_bad_input(tmp_path):
    src = _folder(tmp_path / "grey", channels=1)
    code, text = _run("data", "subset", src, "--fraction", 0.5, "--out", tmp_path / "g")
    assert code == 0, text
    assert Dataset.open(tmp_path / "g").channels == 1
    for bad, words in ((["--fraction", 0], "--fraction"), (["--fraction", 1.5], "--fraction"),
                       (["--fraction", 0.5, "--holdout", 1.0], "--holdout")):
        code, text = _run("data", "subset", src, "--out", tmp_path / "bad", *bad)
        assert code == 2 and words in text and "Traceback" not in text and len(text.strip().splitlines()) == 1
    code, text = _run("data", "subset", src, "--fraction", 0.5, "--out", src)
    assert code == 2 and "differ" in text
    assert not (tmp_path / "bad").exists()


def test_test_part_is_the_frames_classify_tests_on_and_the_pool_the_rest(tmp_path):
    src = _folder(tmp_path / "src")
    for part in ("pool", "test"):
        extra = ["--test-part"] if part == "test" else []
        code, text = _run("data", "subset", src, "--fraction", 1, "--holdout", 0.3, "--seed", 2,
                          "--out", tmp_path / part, *extra)
        assert code == 0, text
    pool = {r.id for r in Dataset.open(tmp_path / "pool").records}
    test = {r.id for r in Dataset.open(tmp_path / "test").records}
    train = [SourceSpec.parse(f"real={src}:0", default_name="real")]
    _, _, test_sel = select_sources(train, [SourceSpec.parse(f"t={src}", default_name="t")], seed=2, holdout=0.3)
    src_ds = Dataset.open(src)
    assert test == {src_ds.records[i].id for i in test_sel[0].indices}
    assert not pool & test and pool | test == {r.id for r in src_ds.records}
    code, text = _run("data", "subset", src, "--fraction", 1, "--test-part", "--out", tmp_path / "bad")
    assert code == 2 and "--holdout" in text and len(text.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
