"""VAE and GAN generators beside the diffusion models: train, save, load, sample, resume, augment,
filter with a judge, and one-line errors. Real tiny networks (widths 8/16, 16 px) trained a few
steps on CPU, a real `synth classify` judge, the real CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from synth.cli import app
from synth.diffusion.augment import draw_index
from synth.diffusion.config import GANTrainConfig, TrainError, VAETrainConfig
from synth.diffusion.generative import GenerativeModel, GeneratorConfig, train
from synth.diffusion.model import DiffusionModel, ModelConfig, ModelError
from synth.diffusion.sample import seed_for
from synth.diffusion.toy import make_toy_dataset
from synth.generator.dataset import Dataset, DatasetWriter, frame_id
from synth.rng import AUGMENT_SAMPLES_STREAM

TINY = dict(channels=(8, 16), latent_dim=8, batch_size=4)
TINY_CLI = ["--channels", "8,16", "--latent-dim", "8", "--batch-size", "4"]
CLASSIFY = ["--model", "smallcnn", "--size", "16", "--epochs", "1", "--batch-size", "16", "--fov", "none"]
CONFIGS = {"vae": VAETrainConfig, "gan": GANTrainConfig}
QUIET = dict(log=lambda *_: None)


def run(*args, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


def images(folder) -> np.ndarray:
    ds = Dataset.open(folder)
    return np.stack([ds.image(r, ds.channels) for r in ds])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy") / "toy", n=8, size=16)


@pytest.fixture(scope="module")
def runs(toy, tmp_path_factory):
    """A VAE and a GAN run of 2 steps on the toy set (checkpoint at step 1 and 2)."""
    root = tmp_path_factory.mktemp("runs")
    return {m: train(CONFIGS[m](data=[str(toy)], out=str(root / m), steps=2, checkpoint_every=1, **TINY), **QUIET)
            for m in CONFIGS}


@pytest.fixture(scope="module")
def judge(toy, tmp_path_factory):
    """A classifier trained 1 epoch on the toy set by `synth classify --save-model`."""
    out = tmp_path_factory.mktemp("judge") / "judge"
    # Batches of 4: two optimizer steps, so its probabilities differ a little between samples.
    run("classify", "--train", f"real={toy}", "--test", f"real={toy}", "--out", out, *CLASSIFY, "--batch-size", "4",
        "--save-model")
    return out


@pytest.mark.parametrize("method", ["vae", "gan"])
def test_train_save_load_sample(runs, method):
    run_dir = runs[method]
    meta = json.loads((run_dir / "model" / "config.json").read_text())
    assert meta["method"] == method and meta["class_names"] == ["lesion", "normal"]
    assert meta["image_channels"] == 3 and meta["resolution"] == 16 and meta["info"]["step"] == 2
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert (run_dir / "checkpoints" / "step-0000001" / "state.pt").is_file()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step-0000001.png", "step-0000002.png"]
    assert len((run_dir / "loss.csv").read_text().splitlines()) == 3

    m = GenerativeModel.load(run_dir)  # a run folder: its final model
    a = m.generate(class_ids=[0, 1, 0], seeds=[1, 2, 3], batch_size=3)
    assert a.shape == (3, 16, 16, 3) and a.dtype == np.uint8
    same = GenerativeModel.load(run_dir / "model", method).generate(class_ids=[0, 1, 0], seeds=[1, 2, 3],
                                                                     batch_size=1)
    np.testing.assert_array_equal(a, same)  # same seed, same image, whatever the batch
    other = m.generate(class_ids=[0, 1, 0], seeds=[9, 2, 3], batch_size=3)
    assert not np.array_equal(a[0], other[0]) and np.array_equal(a[1:], other[1:])
    swapped = m.generate(class_ids=[1, 1, 0], seeds=[1, 2, 3], batch_size=3)
    assert not np.array_equal(a[0], swapped[0])  # the class is an input
    # The newest checkpoint's model is what a run without a final model gives.
    ckpt = GenerativeModel.load(run_dir / "checkpoints" / "step-0000002" / "model")
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, ckpt.net.state_dict()[k]), k


def test_greyscale_28px_and_sizes(tmp_path):
    """A greyscale folder at 28 px (BloodMNIST's size, not a power of two) stays one channel."""
    w = DatasetWriter(tmp_path / "grey", config={"n": "grey"}, class_names=["b", "a"], channels=1)
    for i in range(6):
        rng = np.random.default_rng(i)
        w.write_frame(frame_id(i), image=rng.integers(0, 255, (28, 28), dtype=np.uint8), label="ba"[i % 2])
    w.finalize(manifest={"kind": "real"})
    for method in CONFIGS:
        out = train(CONFIGS[method](data=[str(tmp_path / "grey")], out=str(tmp_path / method), steps=1, **TINY),
                    **QUIET)
        m = GenerativeModel.load(out)
        assert m.cfg.class_names == ["b", "a"] and m.cfg.image_channels == 1  # the folder's class order
        assert m.generate(class_ids=[0, 1], seeds=[0, 1]).shape == (2, 28, 28, 1)
    with pytest.raises(ModelError, match="multiple of 4"):
        GeneratorConfig(method="gan", resolution=30, image_channels=3, class_names=["a"], channels=(8, 16)).validate()
    with pytest.raises(ModelError, match="multiple of 8"):
        GeneratorConfig(method="vae", resolution=28, image_channels=3, class_names=["a"], channels=(8, 8, 8)).validate()


@pytest.mark.parametrize("method", ["vae", "gan"])
def test_resume_equals_uninterrupted(toy, tmp_path, method):
    base = dict(data=[str(toy)], steps=4, checkpoint_every=2, **TINY)
    full = train(CONFIGS[method](out=str(tmp_path / "full"), **base), **QUIET)
    part = tmp_path / "part"
    train(CONFIGS[method](out=str(part), **base), **QUIET)
    # An interruption after step 2: the later checkpoint and the final model are not there.
    shutil.rmtree(part / "checkpoints" / "step-0000004")
    shutil.rmtree(part / "model")
    with pytest.raises(TrainError, match="--resume"):
        train(CONFIGS[method](out=str(part), **base), **QUIET)
    train(CONFIGS[method](out=str(part), **base), resume=True, **QUIET)
    assert (full / "model" / "model.safetensors").read_bytes() == (part / "model" / "model.safetensors").read_bytes()
    sa = torch.load(full / "checkpoints" / "step-0000004" / "state.pt", weights_only=False)
    sb = torch.load(part / "checkpoints" / "step-0000004" / "state.pt", weights_only=False)
    assert sa["history"] == sb["history"] and len(sa["history"]) == 4
    # The weights moved from the start: resuming did not just reload the step-2 model.
    s2 = torch.load(part / "checkpoints" / "step-0000002" / "state.pt", weights_only=False)
    net = "net" if method == "vae" else "g"
    assert any(not torch.equal(s2["trainer"][net][k], sb["trainer"][net][k]) for k in sb["trainer"][net])
    for k, v in sa["trainer"][net].items():
        assert torch.equal(v, sb["trainer"][net][k]), k
    other = train(CONFIGS[method](out=str(tmp_path / "seed1"), seed=1, **base), **QUIET)
    assert (other / "model" / "model.safetensors").read_bytes() != (full / "model" / "model.safetensors").read_bytes()


def test_cli_gan_samples_train_a_classifier(toy, tmp_path):
    gan = tmp_path / "gan"
    run("gan", "train", "--data", toy, "--out", gan, "--steps", "2", "--checkpoint-every", "2", *TINY_CLI,
        "--seed", "1")
    aug = tmp_path / "aug"
    run("augment", "--model", gan, "--out", aug, "--n", "3", "--method", "gan", "--seed", "2")
    ds = Dataset.open(aug)
    assert ds.class_names == ["lesion", "normal"] and ds.manifest["counts"]["per_class"] == {"lesion": 3, "normal": 3}
    assert ds.manifest["config"]["method"] == "gan" and all(r.extra["generator"] == "gan" for r in ds)
    assert "sampler" not in ds.manifest["config"]  # diffusion-only options are not recorded
    # The method is read from the folder; same seed, same images; another seed, others.
    run("augment", "--model", gan, "--out", tmp_path / "same", "--n", "3", "--seed", "2", "--batch-size", "2")
    np.testing.assert_array_equal(images(aug), images(tmp_path / "same"))
    run("augment", "--model", gan, "--out", tmp_path / "other", "--n", "3", "--seed", "3")
    assert not np.array_equal(images(aug), images(tmp_path / "other"))
    # Resumable: a lost frame is written again, the same.
    first = images(aug)
    (aug / "records" / "000004.json").unlink()
    res = run("augment", "--model", gan, "--out", aug, "--n", "3", "--method", "gan", "--seed", "2")
    assert "resuming: 5 of 6" in res.output
    np.testing.assert_array_equal(images(aug), first)

    rep = tmp_path / "rep"
    run("classify", "--train", f"real={toy}", "--train", f"gan={aug}", "--test", f"real={toy}", "--out", rep,
        *CLASSIFY)
    assert json.loads((rep / "report.json").read_text())["runs"][-1]["train_by_source"]["gan"] == 6


def test_bad_input_is_one_line(runs, toy, judge, tmp_path):
    ddpm = DiffusionModel.new(ModelConfig(resolution=16, channels=(8, 16), class_names=["lesion", "normal"],
                                          timesteps=10), seed=0).save(tmp_path / "ddpm")
    o = tmp_path / "o"
    cases = [
        (["augment", "--model", runs["gan"], "--out", o, "--method", "flow"], "--method must be one of ddpm, vae, gan"),
        (["augment", "--model", ddpm, "--out", o, "--method", "gan"], "holds a diffusion model (ddpm), not a gan"),
        (["augment", "--model", runs["vae"], "--out", o, "--method", "gan"], "holds a vae model, not a gan"),
        (["augment", "--model", runs["gan"], "--out", o, "--method", "ddpm"], "holds a gan model, not a ddpm"),
        (["augment", "--model", toy, "--out", o, "--method", "vae"], "is not a synth vae model"),
        (["augment", "--model", runs["gan"], "--out", o, "--n", "0"], "--n must be a positive number"),
        (["augment", "--model", runs["vae"], "--out", o, "--masks-from", toy], "not mask-conditioned"),
        (["augment", "--model", runs["gan"], "--out", o, "--classes", "polyp"], "'polyp' is not one the model knows"),
        (["augment", "--model", runs["gan"], "--out", o, "--filter-judge", toy], "not a `synth classify` report"),
        (["augment", "--model", runs["gan"], "--out", o, "--filter-judge", judge, "--filter-threshold", "1.5"],
         "--filter-threshold is a probability"),
        (["augment", "--model", runs["gan"], "--out", o, "--filter-judge", judge, "--filter-cap", "0"],
         "--filter-cap must be at least 1"),
        (["diffusion", "anomaly", toy, "--model", runs["gan"], "--out", o], "holds a gan model"),
        (["refine", toy, "--model", runs["vae"], "--out", o], "holds a vae model"),
        (["gan", "train", "--data", toy, "--out", o, "--resolution", "18", *TINY_CLI], "multiple of 4"),
        (["vae", "train", "--data", toy, "--out", runs["gan"], *TINY_CLI], "different training run"),
    ]
    for args, message in cases:
        res = run(*args, code=2)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, res.output)
        assert not o.exists(), args  # nothing half-written


def _judge_probs(judge, imgs, labels):
    from synth.measure.judge import Judge

    j = Judge(judge)
    _, p = j.features_and_probs(imgs)
    return p[np.arange(len(imgs)), [j.class_names.index(c) for c in labels]]


def _candidate_probs(model, judge, c, name, n, drawn, seed):
    """The judge's probability of its class for candidates 0..drawn-1 of class position c."""
    seeds = [seed_for(seed, AUGMENT_SAMPLES_STREAM, draw_index(c, j, n, 2)) for j in range(drawn)]
    return _judge_probs(judge, model.generate(class_ids=[c] * drawn, seeds=seeds), [name] * drawn)


def test_filter_keeps_only_what_the_judge_accepts(runs, judge, tmp_path):
    gan, n, cap = runs["gan"], 3, 4
    m = GenerativeModel.load(gan)
    # A threshold amid the first class's candidate scores (a barely trained judge scores them all
    # near 0.5): some are kept, some not. Halfway between two scores, clear of rounding.
    p = np.sort(_candidate_probs(m, judge, 0, "lesion", n, cap * n, seed=5))
    gaps = [k for k in range(1, len(p)) if p[k] - p[k - 1] > 1e-6]
    k = min(gaps, key=lambda k: abs(k - len(p) // 2))
    threshold = float((p[k - 1] + p[k]) / 2)
    out = tmp_path / "kept"
    res = run("augment", "--model", gan, "--out", out, "--n", n, "--seed", "5", "--batch-size", "5",
              "--filter-judge", judge, "--filter-threshold", threshold, "--filter-cap", cap)
    ds = Dataset.open(out)
    counts = ds.manifest["filter"]["per_class"]
    assert ds.manifest["filter"]["threshold"] == threshold and ds.manifest["filter"]["cap"] == cap * n
    for c, name in enumerate(["lesion", "normal"]):
        kept, drawn = counts[name]["kept"], counts[name]["drawn"]
        assert f"{name}: kept {kept} of {drawn} drawn" in res.output
        assert kept <= n and kept <= drawn <= cap * n and (kept == n or drawn == cap * n)
        assert ds.manifest["counts"]["per_class"][name] == kept
        recs = [r for r in ds if r.label == name]
        assert [r.id for r in recs] == [frame_id(c * n + k) for k in range(kept)]
        cand = [r.extra["candidate"] for r in recs]
        assert cand == sorted(cand) and (not cand or cand[-1] == drawn - 1 or kept < n)
        # Every candidate drawn: the kept ones are exactly those the judge scores >= threshold.
        probs = _candidate_probs(m, judge, c, name, n, drawn, seed=5)
        assert cand == [j for j in range(drawn) if probs[j] >= threshold]
        if recs:
            written = np.stack([ds.image(r) for r in recs])
            assert (_judge_probs(judge, written, [name] * kept) >= threshold - 1e-6).all()
            np.testing.assert_allclose([r.extra["judge_prob"] for r in recs], probs[cand], atol=1e-6)
    assert 0 < sum(v["kept"] for v in counts.values()) < sum(v["drawn"] for v in counts.values())

    # Resumed after losing the last kept frame: the same folder again.
    before, last = images(out), sorted((out / "records").glob("*.json"))[-1]
    last.unlink()
    run("augment", "--model", gan, "--out", out, "--n", n, "--seed", "5", "--batch-size", "5",
        "--filter-judge", judge, "--filter-threshold", threshold, "--filter-cap", cap)
    np.testing.assert_array_equal(images(out), before)
    assert Dataset.open(out).manifest["filter"]["per_class"] == counts

    # Threshold 0 keeps the first N candidates: exactly the unfiltered frames, for diffusion models too.
    ddpm = DiffusionModel.new(ModelConfig(resolution=16, channels=(8, 16), class_names=["lesion", "normal"],
                                          timesteps=10), seed=0).save(tmp_path / "ddpm")
    for model in (gan, ddpm):
        plain, all_kept = tmp_path / f"plain-{model.name}", tmp_path / f"all-{model.name}"
        common = ["--model", model, "--n", "2", "--seed", "7", "--steps", "2"]
        run("augment", *common, "--out", plain)
        run("augment", *common, "--out", all_kept, "--filter-judge", judge, "--filter-threshold", "0")
        np.testing.assert_array_equal(images(plain), images(all_kept))
        assert Dataset.open(all_kept).manifest["filter"]["per_class"] == {c: {"kept": 2, "drawn": 2}
                                                                          for c in ("lesion", "normal")}
