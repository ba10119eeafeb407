"""Tests of `synth classify`: tiny real training runs on generated dataset folders.

Images are 16-32 px and runs a few epochs, so the whole file stays well under a few minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth.classifier.data import ClassifyError, SourceSpec, fov_mask, load_arrays, select_sources
from synth.classifier.metrics import classification_metrics, segmentation_metrics
from synth.classifier.classify import run_classify
from synth.classifier.train import ClassifyConfig
from synth.generator.dataset import DatasetWriter, frame_id

torch = pytest.importorskip("torch")


def make_dataset(root: Path, n: int = 40, *, size: int = 24, seed: int = 0, classes=("normal", "lesion"),
                 signal: bool = True, shuffle_labels: bool = False, kind: str = "rendered") -> Path:
    """A toy dataset: class k>0 frames carry a bright disc (and its mask); class 0 frames are noise.

    With `shuffle_labels` the labels are a seeded permutation, unrelated to the pictures.
    """
    rng = np.random.default_rng(seed)
    w = DatasetWriter(root, config={"toy": True, "n": n, "seed": seed}, class_names=list(classes))
    ks = [i % len(classes) for i in range(n)]
    labels = [classes[k] for k in (rng.permutation(ks) if shuffle_labels else ks)]
    yy, xx = np.mgrid[:size, :size]
    for i, k in enumerate(ks):
        img = (rng.random((size, size, 3)) * 60 + 60).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        if k > 0 and signal:
            c = rng.integers(size // 3, 2 * size // 3, 2)
            r = max(2, size // 6)
            mask[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r] = 1
            img[mask > 0] = [200, 40 * k, 40]
        w.write_frame(frame_id(i), image=img, label=labels[i], mask=mask)
    w.finalize(manifest={"command": "test", "kind": kind})
    return root


def cfg_for(tmp_path, train, test, **kw) -> ClassifyConfig:
    base = dict(train=train, test=test, out=str(tmp_path / "report"), size=24, epochs=4, batch_size=16,
                threads=2, seed=0)
    base.update(kw)
    return ClassifyConfig(**base)


def quiet(_msg):
    pass


# --------------------------------------------------------------------------- metrics


def test_metrics_perfect_and_confusion():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    m = classification_metrics(probs, np.array([0, 1, 0, 1]), ["normal", "lesion"])
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0 and m["f1"] == 1.0
    assert m["sensitivity"] == 1.0 and m["specificity"] == 1.0
    assert m["confusion_matrix"] == [[2, 0], [0, 2]]
    # One lesion missed: sensitivity 0.5, specificity 1, balanced accuracy 0.75.
    m = classification_metrics(np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]]),
                               np.array([0, 1, 0, 1]), ["normal", "lesion"])
    assert m["sensitivity"] == 0.5 and m["specificity"] == 1.0 and m["balanced_accuracy"] == 0.75
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]


def test_metrics_random_scores_near_half_and_multiclass():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    p = rng.random(4000)
    m = classification_metrics(np.stack([1 - p, p], 1), y, ["normal", "lesion"])
    assert abs(m["auc"] - 0.5) < 0.03
    y3 = rng.integers(0, 3, 3000)
    p3 = rng.dirichlet([1, 1, 1], 3000)
    m3 = classification_metrics(p3, y3, ["a", "b", "c"])
    assert abs(m3["auc"] - 0.5) < 0.03 and len(m3["confusion_matrix"]) == 3
    m3 = classification_metrics(np.eye(3)[y3], y3, ["a", "b", "c"])
    assert m3["auc"] == 1.0 and m3["specificity"] == 1.0


def test_segmentation_metrics():
    t = np.zeros((2, 8, 8), bool)
    t[0, :4] = True  # 32 px
    p = np.zeros_like(t)
    p[0, :2] = True  # 16 px, all inside
    m = segmentation_metrics(p, t)
    assert m["dice_lesion_images"] == pytest.approx(2 * 16 / 48)
    assert m["iou_lesion_images"] == pytest.approx(0.5)
    assert m["dice"] == pytest.approx((2 * 16 / 48 + 1.0) / 2)  # the empty/empty image scores 1
    assert m["precision_pooled"] == pytest.approx(1.0)  # every marked pixel is lesion
    assert m["recall_pooled"] == pytest.approx(0.5)  # half the lesion was marked
    assert segmentation_metrics(t, t)["dice_pooled"] == pytest.approx(1.0)
    nothing = segmentation_metrics(np.zeros_like(t), t)
    assert nothing["precision_pooled"] is None and nothing["recall_pooled"] == 0.0


# --------------------------------------------------------------------------- data


def test_source_spec_parsing():
    s = SourceSpec.parse("real=/data/x:0.1@2", default_name="train")
    assert (s.name, s.path, s.fraction, s.weight) == ("real", "/data/x", 0.1, 2.0)
    s = SourceSpec.parse("/data/y", default_name="train")
    assert (s.name, s.path, s.fraction, s.weight) == ("train", "/data/y", 1.0, None)
    with pytest.raises(ClassifyError):
        SourceSpec.parse("real=/x:1.5", default_name="t")


def test_holdout_split_is_disjoint_nested_and_seeded(tmp_path):
    d = make_dataset(tmp_path / "d", 60)
    spec = lambda f: [SourceSpec("real", str(d), f)]  # noqa: E731
    names, tr, te = select_sources(spec(1.0), spec(1.0), seed=3, holdout=0.3)
    assert set(tr[0].ids).isdisjoint(te[0].ids)
    assert len(tr[0].ids) + len(te[0].ids) == 60
    assert te[0].labels().count("lesion") == te[0].labels().count("normal")  # stratified
    _, tr_small, te2 = select_sources(spec(0.25), spec(1.0), seed=3, holdout=0.3)
    assert te2[0].ids == te[0].ids  # the test part does not depend on the training fraction
    assert set(tr_small[0].ids) < set(tr[0].ids)  # the fraction is drawn from the training pool
    _, tr_other, _ = select_sources(spec(1.0), spec(1.0), seed=4, holdout=0.3)
    assert tr_other[0].ids != tr[0].ids


def test_fov_mask_blacks_out_the_corners(tmp_path):
    d = make_dataset(tmp_path / "d", 4, size=24)
    _, tr, _ = select_sources([SourceSpec("a", str(d))], [SourceSpec("b", str(d))], seed=0, holdout=0.5)
    arr = load_arrays(tr, ["normal", "lesion"], size=20, fov="circle", fov_radius=0.4)
    keep = fov_mask(20, 0.4)
    assert arr.images.shape == (2, 3, 20, 20)
    assert (arr.images[:, :, ~keep] == 0).all() and (arr.images[:, :, keep] > 0).all()
    arr = load_arrays(tr, ["normal", "lesion"], size=20, fov="none")
    assert (arr.images[:, :, 0, 0] > 0).all()


# --------------------------------------------------------------------------- training runs


def test_separable_toy_set_reaches_auc_1_and_report_parses(tmp_path):
    train = make_dataset(tmp_path / "syn", 48, seed=0)
    test = make_dataset(tmp_path / "real", 32, seed=1, kind="real")
    out = run_classify(cfg_for(tmp_path, [f"synthetic={train}"], [f"real={test}"], epochs=8), log=quiet)
    rep = json.loads((out / "report.json").read_text())
    m = rep["runs"][-1]["test"]["real"]
    assert m["auc"] == 1.0
    assert m["accuracy"] > 0.9
    assert set(m) >= {"accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1", "confusion_matrix"}
    assert len(rep["runs"][-1]["history"]) == 8
    assert rep["data"]["train"][0]["ids"] == [frame_id(i) for i in range(48)]
    for name in ("curves.png", "roc.png", "confusion.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| train | 48 | real | 32 |" in (out / "report.md").read_text()
    assert json.loads((out / "config.json").read_text())["seed"] == 0
    lines = (out / "predictions.csv").read_text().splitlines()
    assert len(lines) == 33 and lines[0].startswith("test_set,source,folder,id,label,p_normal,p_lesion")
    assert not list(tmp_path.glob(".report.tmp-*"))  # the temporary folder was moved into place


def test_shuffled_labels_stay_near_chance(tmp_path):
    train = make_dataset(tmp_path / "tr", 64, seed=0, size=16, shuffle_labels=True)
    test = make_dataset(tmp_path / "te", 120, seed=1, size=16, shuffle_labels=True)
    out = run_classify(cfg_for(tmp_path, [f"t={train}"], [f"r={test}"], size=16, epochs=3), log=quiet)
    auc = json.loads((out / "report.json").read_text())["runs"][-1]["test"]["r"]["auc"]
    assert 0.3 < auc < 0.7


def test_same_seed_same_result(tmp_path):
    d = make_dataset(tmp_path / "d", 40)
    results = []
    for k in range(2):
        cfg = cfg_for(tmp_path, [f"real={d}:0.5"], [f"real={d}"], out=str(tmp_path / f"r{k}"), epochs=2)
        rep = json.loads((run_classify(cfg, log=quiet) / "report.json").read_text())
        results.append((rep["data"]["train"][0]["ids"], rep["data"]["test"][0]["ids"],
                        rep["runs"][-1]["history"][-1]["train_loss"], rep["runs"][-1]["test"]["real"]["roc"]))
    assert results[0] == results[1]
    assert set(results[0][0]).isdisjoint(results[0][1])


@pytest.mark.parametrize("model", ["resnet18", "vit-micro"])
def test_other_models_train(tmp_path, model):
    train = make_dataset(tmp_path / "syn", 24, seed=0)
    test = make_dataset(tmp_path / "real", 12, seed=1)
    out = run_classify(cfg_for(tmp_path, [f"s={train}"], [f"r={test}"], model=model, epochs=1, size=16), log=quiet)
    rep = json.loads((out / "report.json").read_text())
    assert rep["model"]["model"] == model and 0.0 <= rep["runs"][-1]["test"]["r"]["accuracy"] <= 1.0


def test_models_build_and_freeze(tmp_path):
    from synth.nets.models import build_model

    msgs = []
    for name in ("smallcnn", "resnet18", "vit-micro"):
        m, info = build_model(name, 3, 32, log=msgs.append)
        assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    small, _ = build_model("smallcnn", 2, 128)
    assert [l.kernel_size for l in small.modules() if isinstance(l, torch.nn.Conv2d)] == [(2, 2)] * 3
    assert [l.out_features for l in small.modules() if isinstance(l, torch.nn.Linear)] == [512, 2]
    m, info = build_model("resnet18", 2, 64, freeze_backbone=True, log=msgs.append)
    assert info["trainable_parameters"] == 512 * 2 + 2


def test_pretrained_missing_says_so_in_one_line_and_weights_file_loads(tmp_path, monkeypatch):
    from synth.nets.models import build_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    torch.hub.set_dir(str(tmp_path / "empty-cache" / "hub"))
    msgs = []
    _, info = build_model("resnet18", 2, 64, pretrained=True, log=msgs.append)
    assert info["init"] == "random"
    assert len(msgs) == 1 and "no pretrained ResNet-18 weights" in msgs[0] and "\n" not in msgs[0]
    src, _ = build_model("resnet18", 5, 64)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    m, info = build_model("resnet18", 2, 64, weights=str(tmp_path / "w.pt"))
    assert "w.pt" in info["init"]
    assert torch.equal(m.layer1[0].conv1.weight, src.layer1[0].conv1.weight)  # the head (5 classes) is skipped


# --------------------------------------------------------------------------- protocols


def test_finetune_protocol_reports_both_stages(tmp_path):
    syn = make_dataset(tmp_path / "syn", 32, seed=0)
    real = make_dataset(tmp_path / "real", 40, seed=1, kind="real")
    cfg = cfg_for(tmp_path, [f"real={real}:0.5"], [f"real={real}"], protocol="finetune",
                  pretrain=[f"synthetic={syn}"], epochs=1, pretrain_epochs=2)
    rep = json.loads((run_classify(cfg, log=quiet) / "report.json").read_text())
    assert [r["name"] for r in rep["runs"]] == ["pretrain only", "pretrain + finetune"]
    assert [h["stage"] for h in rep["runs"][0]["history"]] == ["pretrain"] * 2
    assert rep["runs"][1]["train_frames"] == 14  # 50 % of the 28-frame training pool
    assert rep["data"]["pretrain"][0]["frames"] == 32


def test_classical_augmentation_adds_copies(tmp_path):
    from synth.classifier.data import classical_augment

    d = make_dataset(tmp_path / "d", 20)
    _, tr, _ = select_sources([SourceSpec("a", str(d))], [SourceSpec("b", str(d))], seed=0, holdout=0.5)
    arr = load_arrays(tr, ["normal", "lesion"], size=24)
    for frac, n in ((0.2, 12), (0.5, 15)):
        aug = classical_augment(arr, frac, seed=0, fov="circle", fov_radius=0.44)
        assert len(aug) == n and aug.images.shape[1:] == arr.images.shape[1:]
        assert (aug.images[:, :, ~fov_mask(24, 0.44)] == 0).all()  # the border stays identical
    cfg = cfg_for(tmp_path, [f"a={d}"], [f"b={d}"], augment=0.5, epochs=1, holdout=0.5)
    rep = json.loads((run_classify(cfg, log=quiet) / "report.json").read_text())
    assert rep["runs"][-1]["train_frames"] == 15


def test_transfer_curve(tmp_path):
    syn = make_dataset(tmp_path / "syn", 24, seed=0)
    real = make_dataset(tmp_path / "real", 40, seed=1, kind="real")
    cfg = cfg_for(tmp_path, [f"synthetic={syn}", f"real={real}"], [f"real={real}"], protocol="curve",
                  curve_fractions=[0.0, 0.5, 1.0], epochs=1, size=16)
    out = run_classify(cfg, log=quiet)
    rep = json.loads((out / "report.json").read_text())
    pts = rep["curve"]["points"]
    assert [p["fraction"] for p in pts] == [0.0, 0.5, 1.0]
    assert pts[0]["real only"] is None and pts[0]["mixed with other data"]["train_frames"] == 24
    assert pts[1]["real_frames"] == 14
    assert pts[2]["mixed with other data"]["train_frames"] == 24 + 28
    ids_half = set(next(iter(pts[1]["real_ids"].values())))
    ids_all = set(next(iter(pts[2]["real_ids"].values())))
    assert ids_half < ids_all and ids_all.isdisjoint(rep["data"]["test"][0]["ids"])
    assert (out / "transfer_curve.png").exists()


# --------------------------------------------------------------------------- bad input


def _cli(args):
    from typer.testing import CliRunner

    from synth.cli import app

    return CliRunner().invoke(app, args)


def _one_line_error(res) -> str:
    err = res.stderr if hasattr(res, "stderr") and res.stderr else res.output
    lines = [l for l in err.splitlines() if l.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_input_gives_one_line_errors(tmp_path):
    a = make_dataset(tmp_path / "a", 8)
    other = make_dataset(tmp_path / "other", 9, classes=("benign", "malignant"))
    empty_writer = DatasetWriter(tmp_path / "empty", config={"n": 0}, class_names=["normal", "lesion"])
    empty_writer.finalize(manifest={"command": "test"})
    base = ["classify", "--size", "16", "--epochs", "1", "--out", str(tmp_path / "rep")]
    assert "no test set" in _one_line_error(_cli(base + ["--train", f"s={a}"]))
    assert "no training data" in _one_line_error(_cli(base + ["--test", f"r={a}"]))
    assert "differ" in _one_line_error(_cli(base + ["--train", f"s={a}", "--test", f"r={other}"]))
    assert "no frames" in _one_line_error(_cli(base + ["--train", f"s={tmp_path / 'empty'}", "--test", f"r={a}"]))
    assert "does not exist" in _one_line_error(_cli(base + ["--train", f"s={tmp_path / 'nope'}", "--test", f"r={a}"]))
    assert "unknown --model" in _one_line_error(_cli(base + ["--train", f"s={a}", "--test", f"r={a}",
                                                             "--model", "resnet999"]))
    assert not (tmp_path / "rep").exists()


def test_cli_writes_report_and_refuses_to_overwrite(tmp_path):
    a = make_dataset(tmp_path / "a", 16, size=16)
    b = make_dataset(tmp_path / "b", 8, size=16, seed=1)
    args = ["classify", "--train", f"s={a}", "--test", f"r={b}", "--size", "16", "--epochs", "1",
            "--out", str(tmp_path / "rep"), "--seed", "1"]
    res = _cli(args)
    assert res.exit_code == 0, res.output
    before = (tmp_path / "rep" / "report.json").read_text()
    assert "already exists" in _one_line_error(_cli(args))
    assert (tmp_path / "rep" / "report.json").read_text() == before  # nothing lost
    assert _cli(args + ["--overwrite"]).exit_code == 0


# --------------------------------------------------------------------------- --real-style


def _tinted(root: Path, n: int, rgb, *, kind: str, seed: int = 0, size: int = 16) -> Path:
    """make_dataset's frames, tinted (so a restyle toward the other tint shows)."""
    from synth.generator.dataset import Dataset

    make_dataset(root / "plain", n, size=size, seed=seed, kind=kind)
    src = Dataset.open(root / "plain")
    w = DatasetWriter(root / "set", config={"n": n, "seed": seed, "rgb": list(rgb)}, class_names=src.class_names)
    for r in src:
        img = np.clip(src.image(r) * (np.array(rgb) / 128.0), 0, 255).astype(np.uint8)
        w.write_frame(r.id, image=img, label=r.label, mask=src.mask(r))
    w.finalize(manifest={"command": "test", "kind": kind})
    return root / "set"


def test_real_style_restyles_synthetic_rows_only():
    from synth.classifier.data import StylePool, real_style_augment
    from synth.generator.restyle import real_fov, style_rng

    rng = np.random.default_rng(0)
    keep = fov_mask(16, 0.44)
    imgs = (rng.random((6, 3, 16, 16)) * 60 + np.array([40, 60, 160])[None, :, None, None]).astype(np.uint8)
    imgs *= keep[None, None].astype(np.uint8)
    styles = np.zeros((3, 16, 16, 3), np.uint8)
    styles[:] = np.array([190, 80, 60], np.uint8)
    styles = styles * keep[None, ..., None].astype(np.uint8)
    pool = StylePool(styles, np.stack([real_fov(s) for s in styles]), [], method="reinhard", prob=1.0)
    synthetic = np.array([True, False, True, False, True, False])
    out = real_style_augment(imgs, synthetic, pool, style_rng(0), keep)
    np.testing.assert_array_equal(out[~synthetic], imgs[~synthetic])  # real rows untouched
    assert (out[synthetic][:, 0][:, keep].mean() > imgs[synthetic][:, 0][:, keep].mean() + 50)  # redder
    assert (out[:, :, ~keep] == 0).all()  # the field of view's border stays black
    np.testing.assert_array_equal(out, real_style_augment(imgs, synthetic, pool, style_rng(0), keep))
    pool.prob = 0.0
    np.testing.assert_array_equal(real_style_augment(imgs, synthetic, pool, style_rng(0), keep), imgs)


def test_real_style_in_classify_seeded_and_never_from_test_frames(tmp_path):
    syn = _tinted(tmp_path / "syn", 24, (60, 80, 200), kind="rendered")
    real = _tinted(tmp_path / "real", 20, (200, 90, 70), kind="real", seed=1)
    base = ["classify", "--train", f"synthetic={syn}", "--test", f"real={real}", "--size", "16", "--epochs", "1",
            "--batch-size", "8", "--real-style", str(real), "--seed", "2"]
    # The style folder is the test folder: refused in one line (it would lend test frames' style).
    assert "--test folder" in _one_line_error(_cli(base + ["--out", str(tmp_path / "bad")]))
    assert not (tmp_path / "bad").exists()
    # Also given as a training folder at fraction 0: styles come from its training pool only.
    runs = []
    for name, extra in (("a", []), ("b", []), ("none", ["--real-style-prob", "0"])):
        res = _cli(base + ["--train", f"pool={real}:0", "--out", str(tmp_path / name)] + extra)
        assert res.exit_code == 0, res.output
        runs.append(json.loads((tmp_path / name / "report.json").read_text()))
    a, b, none = runs
    style = a["data"]["real_style"]
    test_ids = set(a["data"]["test"][0]["ids"])
    assert style["method"] == "fda" and style["frames"] == 20 - len(test_ids) > 0
    assert test_ids and not set(style["sources"][0]["ids"]) & test_ids
    assert _same_but_seconds(a, b)  # same seed, same run
    # Without restyling (probability 0) the run is the plain one: the style draws touch nothing else.
    plain = _cli(base[:base.index("--real-style")] + ["--seed", "2", "--train", f"pool={real}:0",
                                                      "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert _losses(none) == _losses(plain) and _losses(a) != _losses(plain)


def _losses(rep):
    return [h["train_loss"] for h in rep["runs"][-1]["history"]]


def _same_but_seconds(a, b):
    strip = lambda rep: [{k: v for k, v in h.items() if k != "seconds"} for h in rep["runs"][-1]["history"]]
    return strip(a) == strip(b)


def test_real_style_bad_input(tmp_path):
    syn = make_dataset(tmp_path / "syn", 8, size=16)
    real = make_dataset(tmp_path / "real", 8, size=16, seed=1, kind="real")
    base = ["classify", "--train", f"s={syn}", "--test", f"r={real}", "--size", "16", "--epochs", "1",
            "--out", str(tmp_path / "rep")]
    other = make_dataset(tmp_path / "other", 8, size=16, seed=2, kind="real")
    assert "--real-style-method" in _one_line_error(_cli(base + ["--real-style", str(other),
                                                                 "--real-style-method", "cyclegan"]))
    assert "--real-style-prob" in _one_line_error(_cli(base + ["--real-style", str(other),
                                                               "--real-style-prob", "1.5"]))
    assert "--real-style-beta" in _one_line_error(_cli(base + ["--real-style", str(other),
                                                               "--real-style-beta", "0.7"]))
    assert "real folder" in _one_line_error(_cli(base + ["--real-style", str(syn)]))
    assert "does not exist" in _one_line_error(_cli(base + ["--real-style", str(tmp_path / "nope")]))
    assert not (tmp_path / "rep").exists()
