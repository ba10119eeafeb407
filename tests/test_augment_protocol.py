"""Tests of `synth classify --protocol augment`: real only vs classical copies vs another source, over seeds.

Three classes of 16 px coloured shapes; the "generated" folder draws the same shapes in other
colours and noise, so it is a different set of images with the same classes. Every training is
a real smallcnn run of one epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth.generator.dataset import DatasetWriter, frame_id
from test_classifier import _cli, _one_line_error as _classify_one_line_error  # the shared CLI helpers

pytest.importorskip("torch")

CLASSES = ("square", "disc", "cross")


def shapes(root: Path, n: int, *, seed: int, kind: str = "real", generated: bool = False,
           classes=CLASSES, filtered: bool = False) -> Path:
    """n frames of 16 px, class i % 3: a red square, a green disc or a blue cross on dark noise.
    `generated` frames are paler, noisier and smaller: the same classes, other pictures."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(root, config={"n": n, "seed": seed, "generated": generated}, class_names=list(classes))
    yy, xx = np.mgrid[:16, :16]
    colours = np.array([(220, 60, 60), (60, 200, 60), (70, 90, 230)])
    for i in range(n):
        k = i % 3
        img = (rng.random((16, 16, 3)) * (90 if generated else 40) + 30).astype(np.uint8)
        cy, cx = rng.integers(5, 11, 2)
        r = 2 if generated else 3
        if k == 0:
            m = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        elif k == 1:
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            m = ((abs(yy - cy) <= r) & (abs(xx - cx) <= 1)) | ((abs(xx - cx) <= r) & (abs(yy - cy) <= 1))
        img[m] = colours[k] * 0.7 + 60 if generated else colours[k]
        w.write_frame(frame_id(i), image=img, label=classes[k])
    manifest = {"command": "test", "kind": kind}
    if filtered:  # what `synth augment --filter-judge` records
        per_class = {c: {"kept": n // 3, "drawn": n // 3 + 2 + k} for k, c in enumerate(classes)}
        manifest["filter"] = {"judge": "j", "threshold": 0.5, "cap": 40, "per_class": per_class}
    w.finalize(manifest=manifest)
    return root


def _one_line_error(res) -> str:
    assert "Traceback" not in res.output
    return _classify_one_line_error(res)


COMMON = ["--size", "16", "--fov", "none", "--epochs", "1", "--batch-size", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    return {"real": shapes(root / "real", 48, seed=0), "test": shapes(root / "test", 30, seed=1),
            "gen": shapes(root / "gen", 18, seed=2, kind="generated", generated=True, filtered=True),
            "odd": shapes(root / "odd", 9, seed=3, kind="generated", classes=("a", "b", "c")), "root": root}


def _augment_args(d, out, *extra):
    return (["classify", "--protocol", "augment", "--train", f"real={d['real']}:0.5", "--train", f"gen={d['gen']}",
             "--test", f"real={d['test']}", "--augment-fractions", "0.5", "--seeds", "2", "--seed", "3",
             "--out", str(out)] + COMMON + list(extra))


def test_augment_protocol_end_to_end(data):
    d, root = data, data["root"]
    res = _cli(_augment_args(d, root / "a"))
    assert res.exit_code == 0, res.output
    rep = json.loads((root / "a" / "report.json").read_text())
    aug, runs = rep["augment"], rep["runs"]
    rows = aug["rows"]
    assert [r["name"] for r in rows] == ["real only", "real + classical 0.5", "real + gen"]
    assert aug["seeds"] == [3, 4] and aug["real_frames"] == 24
    # Each row: two runs, training seeds 3 and 4; its images: 24 real, + 12 copies, + 18 generated.
    assert [r["train_frames"] for r in rows] == [24, 36, 42]
    assert rows[2]["train_by_source"] == {"real": 24, "gen": 18}
    for r in rows:
        assert [runs[i]["seed"] for i in r["runs"]] == [3, 4] and {runs[i]["row"] for i in r["runs"]} == {r["name"]}
    # The same real images in every row: those of the real selection in the report's data.
    real_ids = rep["data"]["train"][0]["ids"]
    assert len(real_ids) == 24 and all(r["real_ids"] == real_ids for r in rows)

    # The summaries are the mean and sample std of the runs listed; deltas are paired by seed.
    base = [runs[i]["test"]["real"] for i in rows[0]["runs"]]
    for r in rows:
        ms = [runs[i]["test"]["real"] for i in r["runs"]]
        for key in ("accuracy", "balanced_accuracy", "auc"):
            vals = [m[key] for m in ms]
            st = r["test"]["real"][key]
            assert st["values"] == vals and st["mean"] == pytest.approx(np.mean(vals))
            assert st["std"] == pytest.approx(np.std(vals, ddof=1)) and (st["min"], st["max"]) == (min(vals), max(vals))
            diff = [a[key] - b[key] for a, b in zip(ms, base)]
            assert r["delta"]["real"][key]["mean"] == pytest.approx(np.mean(diff))
            assert r["delta"]["real"][key]["std"] == pytest.approx(np.std(diff, ddof=1))
        cm = np.array(ms[1]["confusion_matrix"])
        assert r["test"]["real"]["per_class_recall"]["disc"]["values"][1] == pytest.approx(cm[1, 1] / cm[1].sum())
    # Two training seeds are two different runs (weights, batches, copies).
    for r in rows:
        a, b = (runs[i] for i in r["runs"])
        assert a["history"][-1]["train_loss"] != b["history"][-1]["train_loss"]

    # Sample quality of the generated source: C2ST against the real share, and the filter counts.
    q = aug["quality"]["gen"]
    assert q["frames"] == 18 and 0.0 <= q["c2st_accuracy"] <= 1.0 and "fd_judge" not in q
    assert q["folders"][0]["filter"]["kept"] == 18 and q["folders"][0]["filter"]["drawn"] == 18 + 6 + 3
    md = (root / "a" / "report.md").read_text()
    assert "| real + classical 0.5 | 36 | " in md and " ± " in md and "Winner on 'real'" in md
    assert "18 / 27" in md  # kept / drawn
    assert aug["winner"]["real"]["row"] in [r["name"] for r in rows]
    assert (root / "a" / "augment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Equal steps (the default): every row's epoch draws as many images as the largest row holds.
    assert aug["equal_steps"] is True and aug["epoch_draws"] == 42

    # With --epochs-per-row each row trains on its own size, and the first training of "real only"
    # is the run `--protocol single` makes with the same --seed; with equal steps it trains longer.
    res = _cli(_augment_args(d, root / "c", "--epochs-per-row"))
    assert res.exit_code == 0, res.output
    per_row = json.loads((root / "c" / "report.json").read_text())
    assert per_row["augment"]["equal_steps"] is False and per_row["augment"]["epoch_draws"] is None
    res = _cli(["classify", "--train", f"real={d['real']}:0.5", "--test", f"real={d['test']}", "--seed", "3",
                "--out", str(root / "single")] + COMMON)
    assert res.exit_code == 0, res.output
    single = json.loads((root / "single" / "report.json").read_text())["runs"][-1]
    first = per_row["runs"][per_row["augment"]["rows"][0]["runs"][0]]
    assert single["history"][-1]["train_loss"] == first["history"][-1]["train_loss"]
    assert single["test"]["real"]["confusion_matrix"] == first["test"]["real"]["confusion_matrix"]
    assert single["test"]["real"]["auc"] == first["test"]["real"]["auc"]
    assert runs[rows[0]["runs"][0]]["history"][-1]["train_loss"] != first["history"][-1]["train_loss"]
    # The largest row draws its own size either way: the same training.
    assert runs[rows[2]["runs"][0]]["history"][-1]["train_loss"] == \
        per_row["runs"][per_row["augment"]["rows"][2]["runs"][0]]["history"][-1]["train_loss"]

    # The same --seed again, now with a judge: the same numbers, plus the judge's scores.
    res = _cli(["classify", "--train", f"real={d['real']}", "--test", f"real={d['test']}", "--save-model",
                "--out", str(root / "judge")] + COMMON)
    assert res.exit_code == 0, res.output
    res = _cli(_augment_args(d, root / "b", "--judge", str(root / "judge")))
    assert res.exit_code == 0, res.output
    again = json.loads((root / "b" / "report.json").read_text())
    for r1, r2 in zip(rows, again["augment"]["rows"]):
        assert r1["test"] == r2["test"] and r1["delta"] == r2["delta"] and r1["real_ids"] == r2["real_ids"]
    assert [r["history"][-1]["train_loss"] for r in runs] == [r["history"][-1]["train_loss"] for r in again["runs"]]
    q2 = again["augment"]["quality"]["gen"]
    assert q2["c2st_accuracy"] == q["c2st_accuracy"]
    assert np.isfinite(q2["fd_judge"]) and q2["fd_judge"] >= 0 and 0.0 <= q2["class_agreement"] <= 1.0
    assert "FD (judge)" in (root / "b" / "report.md").read_text()


def test_augment_protocol_bad_input(data):
    d, root = data, data["root"]
    out = root / "bad"
    base = ["classify", "--protocol", "augment", "--train", f"real={d['real']}:0.5", "--train", f"gen={d['gen']}",
            "--out", str(out)] + COMMON
    test = ["--test", f"real={d['test']}"]
    assert "--seeds 0" in _one_line_error(_cli(base + test + ["--seeds", "0"]))
    for bad in ("0", "11", "-0.2"):
        assert "outside (0, 10]" in _one_line_error(_cli(base + test + ["--augment-fractions", bad]))
    assert "comma-separated" in _one_line_error(_cli(base + test + ["--augment-fractions", "a,b"]))
    assert "--curve-source" in _one_line_error(_cli(base + test + ["--curve-source", "kvasir"]))
    assert "no test set" in _one_line_error(_cli(base))
    assert "disagree on classes" in _one_line_error(_cli(base + test + ["--train", f"odd={d['odd']}"]))
    assert "--augment-fractions instead" in _one_line_error(_cli(base + test + ["--augment", "0.2"]))
    assert "not a `synth classify` report" in _one_line_error(_cli(base + test + ["--judge", str(d["real"])]))
    single = ["classify", "--train", f"real={d['real']}", "--out", str(out)] + COMMON + test
    assert "option of --protocol augment" in _one_line_error(_cli(single + ["--seeds", "2"]))
    assert "option of --protocol augment" in _one_line_error(_cli(single + ["--epochs-per-row"]))
    assert not out.exists()


def test_epoch_draws_repeat_a_small_set_evenly():
    """More draws than rows: successive permutations, each row seen equally often (give or take
    one); the default draws every row once, as a plain permutation."""
    import torch

    from synth.classifier.data import Arrays
    from synth.classifier.train import batches_for_epoch

    n = 10
    arr = Arrays(images=np.zeros((n, 3, 4, 4), np.uint8), labels=np.zeros(n, np.int64), masks=None,
                 weights=np.ones(n), origin=[("r", "f", str(i)) for i in range(n)])
    rows = np.concatenate(batches_for_epoch(arr, 4, torch.Generator().manual_seed(0), False, draws=25))
    assert len(rows) == 25
    counts = np.bincount(rows, minlength=n)
    assert counts.min() == 2 and counts.max() == 3
    once = np.concatenate(batches_for_epoch(arr, 4, torch.Generator().manual_seed(0), False))
    assert sorted(once) == list(range(n))
    assert np.array_equal(once, torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy())
    assert [len(b) for b in batches_for_epoch(arr, 4, torch.Generator().manual_seed(0), False, draws=25)] == [4] * 6 + [1]
