"""`synth classify`: its config and the training loop (the entry point, `run_classify`, is classify.py).

The loop is deliberately plain: all images are in memory as uint8, each epoch draws a seeded
permutation (or a seeded weighted sample when sources carry @WEIGHT), and the same seed gives
the same splits, the same initial weights, the same batches and so the same numbers on CPU.
No model selection happens on the test data: the model after the last epoch is the one
reported; per-epoch test numbers are only plotted to show how training went.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from synth.classifier.data import (AUG_POLICIES, Arrays, ClassifyError, SourceSpec, StylePool, fov_mask,
                                   load_arrays, load_style_pool, online_augment, real_selections,
                                   real_style_augment, select_sources, strong_augment, style_selections,
                                   synthetic_rows)
from synth.classifier.metrics import classification_metrics
from synth.nets.inputs import normalise, to_unit

PROTOCOLS = ("single", "finetune", "curve", "augment")
DEFAULT_CURVE = (0.0, 0.01, 0.05, 0.1, 0.25, 1.0)
DEFAULT_AUGMENT_FRACTIONS = (0.2, 0.5)  # --protocol augment: the classical rows
BATCHNORM_MODELS = ("resnet18", "unet")  # the models --adapt-bn can adapt


@dataclass
class ClassifyConfig:
    """Everything `synth classify` was asked; written next to the report as config.json."""

    train: list[str]
    test: list[str]
    out: str
    model: str = "smallcnn"
    protocol: str = "single"  # single | finetune | curve | augment
    pretrain: list[str] = field(default_factory=list)  # sources for the first stage (finetune/curve)
    epochs: int = 5
    pretrain_epochs: int | None = None  # default: epochs
    batch_size: int = 64
    lr: float | None = None  # default per model
    finetune_lr: float | None = None  # default: lr
    size: int = 128
    fov: str = "circle"
    fov_radius: float = 0.44
    holdout: float = 0.3
    seed: int = 0
    augment: float = 0.0  # classical baseline: add this fraction of augmented copies
    online_aug: bool = False
    online_aug_policy: str = "light"  # light (flips, turns; colour jitter for classifiers) | strong
    # --real-style: restyle synthetic training images toward real frames of these folders, on the fly
    real_style: list[str] = field(default_factory=list)
    real_style_method: str = "fda"
    real_style_prob: float = 0.5
    real_style_beta: float = 0.01
    # --adapt-bn: real folders whose frames, without their labels, re-estimate the batch-norm
    # statistics of the trained network (AdaBN): the cheapest adaptation to a new domain
    adapt_bn: list[str] = field(default_factory=list)
    pretrained: bool = False
    weights: str | None = None
    freeze_backbone: bool = False
    positive: str | None = None
    curve_fractions: list[float] = field(default_factory=lambda: list(DEFAULT_CURVE))
    curve_source: str = "real"  # the real sources of curve and augment
    # --protocol augment: classical fractions and the judge report
    augment_fractions: list[float] = field(default_factory=lambda: list(DEFAULT_AUGMENT_FRACTIONS))
    # Trainings with seeds seed, seed+1, ...: per row of --protocol augment (None: 3), or of a
    # segmentation report (None: 1), reported with their mean and spread
    seeds: int | None = None
    # --protocol augment: train every row for the same optimiser steps (those of its largest row),
    # so a row's gain is not just the extra steps its extra images bring
    equal_steps: bool = True
    judge: str | None = None
    threads: int = 2
    eval_each_epoch: bool = True
    save_model: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        # The strong policy is a kind of online augmentation: asking for it turns it on.
        if self.online_aug_policy == "strong":
            self.online_aug = True
        if self.seeds is None:
            self.seeds = 3 if self.protocol == "augment" else 1

    def validate(self) -> None:
        from synth.nets.models import MODELS

        if self.model not in MODELS:
            raise ClassifyError(f"unknown --model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.protocol not in PROTOCOLS:
            raise ClassifyError(f"unknown --protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.protocol == "finetune" and not self.pretrain:
            raise ClassifyError("--protocol finetune needs --pretrain NAME=DIR (the data to pretrain on)")
        if self.epochs < 1 or (self.pretrain_epochs is not None and self.pretrain_epochs < 1):
            raise ClassifyError("--epochs must be at least 1")
        if self.batch_size < 1:
            raise ClassifyError("--batch-size must be at least 1")
        if self.size < 8:
            raise ClassifyError(f"--size {self.size} is too small; use 8 or more")
        if not 0.0 < self.fov_radius <= 0.75:
            raise ClassifyError("--fov-radius is a fraction of the image side, between 0 and 0.75")
        if self.augment < 0:
            raise ClassifyError("--augment is a fraction (0.2 adds 20 % augmented copies)")
        if any(not 0.0 <= f <= 1.0 for f in self.curve_fractions):
            raise ClassifyError("--curve fractions must be between 0 and 1")
        if self.threads < 1:
            raise ClassifyError("--threads must be at least 1")
        if self.seeds < 1:
            raise ClassifyError(f"--seeds {self.seeds}: train each row at least once (--seeds 1 or more)")
        if self.seeds > 1 and self.protocol != "augment" and self.task != "segment":
            raise ClassifyError(f"--seeds is an option of --protocol augment and of segmentation (--model unet), "
                                f"not of --protocol {self.protocol} with --model {self.model}")
        bad = [f for f in self.augment_fractions if not 0.0 < f <= 10.0]
        if bad:
            raise ClassifyError(f"--augment-fractions {bad[0]:g} is outside (0, 10]; 0.2 adds 20 % flipped/rotated/"
                                "cropped copies of the real share")
        if self.protocol == "augment":
            if self.augment:
                raise ClassifyError("--protocol augment makes the classical rows itself; give their fractions "
                                    "with --augment-fractions instead of --augment")
            if self.pretrain:
                raise ClassifyError("--protocol augment trains from scratch; drop --pretrain")
            if self.save_model:
                raise ClassifyError("--protocol augment trains many models and saves none; drop --save-model")
        if self.online_aug_policy not in AUG_POLICIES:
            raise ClassifyError(f"--online-aug-policy {self.online_aug_policy!r}: choose one of "
                                f"{', '.join(AUG_POLICIES)}")
        from synth.generator.restyle import METHODS as STYLES

        if self.real_style_method not in STYLES:
            raise ClassifyError(f"--real-style-method {self.real_style_method!r}: choose one of {', '.join(STYLES)}")
        if not 0.0 <= self.real_style_prob <= 1.0:
            raise ClassifyError(f"--real-style-prob must be in [0, 1], got {self.real_style_prob}")
        if not 0.0 < self.real_style_beta <= 0.5:
            raise ClassifyError(f"--real-style-beta must be in (0, 0.5], got {self.real_style_beta}")
        if self.adapt_bn and self.model not in BATCHNORM_MODELS:
            raise ClassifyError(f"--adapt-bn re-estimates batch-norm statistics; --model {self.model} has none "
                                f"(use one of {', '.join(BATCHNORM_MODELS)})")
        if self.adapt_bn and self.protocol not in ("single", "finetune"):
            raise ClassifyError(f"--adapt-bn adapts one trained network: use it with --protocol single or finetune, "
                                f"not {self.protocol}")

    @property
    def task(self) -> str:
        return "segment" if self.model == "unet" else "classify"


def default_lr(model: str) -> float:
    return {"smallcnn": 1e-3, "resnet18": 1e-3, "vit-tiny": 3e-4, "vit-micro": 1e-3, "unet": 1e-3}[model]


def parse_sources(texts, default_name: str) -> list[SourceSpec]:
    return [SourceSpec.parse(t, default_name=default_name) for t in texts]


# --------------------------------------------------------------------------- loading


@dataclass
class Data:
    """Everything loaded for a classification report."""

    class_names: list[str]
    train: Arrays
    test: dict[str, Arrays]  # pooled by test source name
    train_selections: list
    test_selections: list
    style: StylePool | None = None  # --real-style frames, never test frames
    adapt: Arrays | None = None  # --adapt-bn frames (labels unused), never test frames
    adapt_selections: list = field(default_factory=list)


def load_data(cfg: ClassifyConfig, train_specs, test_specs, log, *, with_masks=False) -> Data:
    names, train_sel, test_sel = select_sources(train_specs, test_specs, seed=cfg.seed, holdout=cfg.holdout,
                                                require_masks=with_masks)
    kw = dict(size=cfg.size, fov=cfg.fov, fov_radius=cfg.fov_radius, with_masks=with_masks, threads=cfg.threads)
    train = load_arrays(train_sel, names, **kw)
    test: dict[str, Arrays] = {}
    for name in dict.fromkeys(s.spec.name for s in test_sel):
        test[name] = load_arrays([s for s in test_sel if s.spec.name == name], names, **kw)
    log(f"data: {len(train)} training frames from {len(train_sel)} source(s); test "
        + ", ".join(f"{k}: {len(v)}" for k, v in test.items()) + f"; classes {names}")
    style = None
    if cfg.real_style:
        sels = style_selections(cfg.real_style, train_specs, test_sel, seed=cfg.seed, holdout=cfg.holdout)
        style = load_style_pool(sels, size=cfg.size, fov=cfg.fov, fov_radius=cfg.fov_radius, threads=cfg.threads,
                                method=cfg.real_style_method, prob=cfg.real_style_prob, beta=cfg.real_style_beta)
        log(f"real style: {len(style)} frames ({cfg.real_style_method}, p {cfg.real_style_prob:g}) for the "
            f"{int(synthetic_rows(train).sum())} synthetic training frames")
    adapt, adapt_sel = None, []
    if cfg.adapt_bn:
        adapt_sel = real_selections(cfg.adapt_bn, "--adapt-bn", train_specs, test_sel, seed=cfg.seed,
                                    holdout=cfg.holdout)
        adapt = load_arrays(adapt_sel, names, **{**kw, "with_masks": False})
        log(f"batch-norm adaptation: {len(adapt)} real frames, labels unused")
    return Data(names, train, test, train_sel, test_sel, style, adapt, adapt_sel)


# --------------------------------------------------------------------------- the loop


def to_input(images_u8, cfg: ClassifyConfig, *, train: bool, generator=None, keep=None):
    """uint8 (N, 3, S, S) numpy -> normalised float tensor, with --online-aug when training."""
    x = to_unit(images_u8)
    if train and cfg.online_aug:
        if cfg.online_aug_policy == "strong":
            x = strong_augment(x, fov_keep=keep, generator=generator, fov_radius=cfg.fov_radius)
        else:
            x = online_augment(x, fov_keep=keep, generator=generator)
    return normalise(x)


def adapt_batchnorm(model, images_u8: np.ndarray, batch_size: int) -> int:
    """AdaBN (Li et al., 2016): replace every batch-norm layer's running mean and variance with
    their averages over `images_u8` (uint8 (N, 3, S, S), prepared as test images are), keeping
    the learned weights. A network trained on rendered frames then normalises real frames by
    real statistics. Returns the number of layers adapted; the model is left in eval mode."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise ClassifyError("--adapt-bn: this model has no batch-norm layers to adapt")
    if len(images_u8) < 2:
        raise ClassifyError("--adapt-bn needs at least 2 real frames")
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a plain average over all batches, not an exponential one
    model.train()
    with torch.no_grad():
        for i in range(0, len(images_u8), batch_size):
            chunk = images_u8[i:i + batch_size]
            if len(chunk) >= 2:  # a batch of one has no variance
                model(normalise(to_unit(chunk)))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.eval()
    return len(layers)


def batches_for_epoch(arrays: Arrays, batch_size: int, generator, weighted: bool, draws: int | None = None):
    """Row indices of each batch of one epoch: a permutation, or a weighted draw with replacement.

    `draws` rows an epoch (default: every row once). More draws than rows take successive
    permutations (each row seen equally often, give or take one), so a small training set can be
    trained for as many steps as a large one.
    """
    import torch

    n = len(arrays)
    draws = n if draws is None else draws
    if weighted:
        w = torch.as_tensor(arrays.weights, dtype=torch.double)
        order = torch.multinomial(w, draws, replacement=True, generator=generator)
    else:
        order = torch.cat([torch.randperm(n, generator=generator) for _ in range(-(-draws // n))])[:draws]
    order = order.numpy()
    return [order[i:i + batch_size] for i in range(0, draws, batch_size)]


def predict(model, arrays: Arrays, cfg: ClassifyConfig, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, C) for every row of `arrays`."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(arrays), batch_size):
            x = to_input(arrays.images[i:i + batch_size], cfg, train=False)
            outs.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 1))


def evaluate(model, test: dict[str, Arrays], cfg: ClassifyConfig, class_names) -> dict:
    res = {}
    for name, arr in test.items():
        probs = predict(model, arr, cfg)
        m = classification_metrics(probs, arr.labels, class_names, cfg.positive)
        m["_probs"] = probs  # kept in memory for predictions.csv; stripped from JSON
        res[name] = m
    return res


def fit(model, arrays: Arrays, cfg: ClassifyConfig, *, epochs: int, lr: float, test: dict[str, Arrays],
        class_names, log, stage: str, seed_offset: int = 0, style: StylePool | None = None,
        epoch_draws: int | None = None) -> list[dict]:
    """Train `model` in place for `epochs`; returns one history dict per epoch. With `style`,
    synthetic rows are restyled toward its real frames on the fly (real rows never are).
    `epoch_draws` sets the rows an epoch draws (default: len(arrays)), and so the steps."""
    import torch
    from torch import nn

    if len(arrays) == 0:
        raise ClassifyError(f"stage {stage!r} has no training frames; raise the fraction or add data")
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + seed_offset)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.model.startswith("vit") else torch.optim.Adam
    opt = opt_cls(params, lr=lr, weight_decay=0.05 if cfg.model.startswith("vit") else 0.0)
    draws = len(arrays) if epoch_draws is None else epoch_draws
    if draws < 1:
        raise ClassifyError(f"stage {stage!r}: an epoch must draw at least one row, got {draws}")
    steps = epochs * ((draws + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    keep = torch.from_numpy(fov_mask(cfg.size, cfg.fov_radius)).float() if cfg.fov == "circle" else None
    weighted = _weighted(arrays)
    styler = RealStyler(arrays, cfg, style, seed_offset) if style is not None else None
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.time()
        tot_loss, tot_ok, tot_n = 0.0, 0, 0
        for rows in batches_for_epoch(arrays, cfg.batch_size, gen, weighted, draws):
            images = styler(rows) if styler is not None else arrays.images[rows]
            x = to_input(images, cfg, train=True, generator=gen, keep=keep)
            y = torch.from_numpy(arrays.labels[rows])
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * len(rows)
            tot_ok += int((logits.argmax(1) == y).sum())
            tot_n += len(rows)
        h = {"stage": stage, "epoch": epoch, "train_loss": tot_loss / tot_n, "train_accuracy": tot_ok / tot_n,
             "seconds": round(time.time() - t0, 2)}
        if cfg.eval_each_epoch or epoch == epochs:
            for name, arr in test.items():
                probs = predict(model, arr, cfg)
                m = classification_metrics(probs, arr.labels, class_names, cfg.positive)
                h[f"test_{name}_accuracy"] = m["accuracy"]
                h[f"test_{name}_auc"] = m["auc"]
                h[f"test_{name}_loss"] = float(_nll(probs, arr.labels))
        history.append(h)
        log(f"[{stage}] epoch {epoch}/{epochs}: loss {h['train_loss']:.4f}, train acc {h['train_accuracy']:.3f}"
            + "".join(f", {k[5:]} {v:.3f}" for k, v in h.items() if k.startswith("test_") and v is not None
                      and not k.endswith("_loss"))
            + f" ({h['seconds']:.0f} s)")
    return history


class RealStyler:
    """--real-style for one training run: the rows of `arrays` that are synthetic, and a numpy
    Generator seeded by (seed, stage) that draws, batch after batch, whether and which style."""

    def __init__(self, arrays: Arrays, cfg: ClassifyConfig, style: StylePool, seed_offset: int):
        from synth.generator.restyle import style_rng

        self.arrays, self.style = arrays, style
        self.synthetic = synthetic_rows(arrays)
        self.rng = style_rng(cfg.seed, seed_offset)
        self.keep = fov_mask(cfg.size, cfg.fov_radius) if cfg.fov == "circle" else None

    def __call__(self, rows) -> np.ndarray:
        return real_style_augment(self.arrays.images[rows], self.synthetic[rows], self.style, self.rng, self.keep)


def _weighted(arrays: Arrays) -> bool:
    return not np.allclose(arrays.weights, arrays.weights[0]) if len(arrays) else False


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    p = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-7, 1.0)).mean()) if len(labels) else float("nan")
