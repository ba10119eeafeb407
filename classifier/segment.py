"""Segmentation for `synth classify --model unet`: lesion masks learned from rendered frames.

Same sources, splits, field-of-view mask and report as classification; the target is the binary
lesion mask (any instance > 0) and the metrics are Dice and IoU on each test set. The mask is
cut by the same field of view as the image, so the model is never asked for lesion pixels it
cannot see. Each test set with both classes also gets a detection AUC, scoring an image by its
highest lesion probability: a segmenter is also a classifier.

`--seeds K` trains K segmenters on the same frames with training seeds seed, seed+1, ...
(initial weights, batches, augmentation): one run each in the report, and the mean and spread
of every metric over them, because a row trained once moves by several Dice points from its
training seed alone. Examples and `--save-model` come from the first.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from synth.classifier.data import Arrays, ClassifyError, fov_mask, strong_augment
from synth.classifier.metrics import classification_metrics, per_image_overlap, segmentation_metrics, stats
from synth.classifier.protocols import report_payload
from synth.classifier.report import SEG_KEYS
from synth.classifier.train import RealStyler, adapt_batchnorm, batches_for_epoch, load_data
from synth.nets.inputs import normalise, to_unit
from synth.nets.models import build_segmenter


def run_segment(cfg, train_specs, test_specs, log):
    import torch

    if cfg.protocol != "single":
        raise ClassifyError("segmentation (--model unet) supports --protocol single; mix sources with fractions")
    if cfg.size % 32:
        raise ClassifyError(f"--model unet needs --size divisible by 32 (got {cfg.size})")
    if cfg.augment:
        raise ClassifyError("--augment is the classification baseline; use --online-aug for segmentation")
    data = load_data(cfg, train_specs, test_specs, log, with_masks=True)
    payload = report_payload(cfg, data)
    payload["task"] = "segment"
    by_source: dict[str, int] = {}
    for o in data.train.origin:
        by_source[o[0]] = by_source.get(o[0], 0) + 1
    seeds = [cfg.seed + k for k in range(cfg.seeds)]
    payload["runs"], extras = [], {}
    for s in seeds:
        run_cfg = replace(cfg, seed=s)  # the same frames (split by --seed); weights and batches by s
        if len(seeds) > 1:
            log(f"[segment] training seed {s} ({s - cfg.seed + 1}/{len(seeds)})")
        torch.manual_seed(s)  # inside run_classify's fork_rng: nothing outside sees it
        model, info = build_segmenter(cfg.model, weights=cfg.weights, log=log)
        payload["model"] = info
        history = fit_segmenter(model, data.train, data.test, run_cfg, log, style=data.style)
        overlaps: dict = {}  # per test set, the per-frame overlaps of the network that is the result
        results = {name: evaluate_segmenter(model, arr, cfg, data.class_names, overlaps.setdefault(name, {}))
                   for name, arr in data.test.items()}
        if data.adapt is not None:
            # The adapted network is the result; the same weights before adaptation are kept beside
            # it ("NAME, unadapted"), so the two are compared without any other difference.
            before = {f"{name}, unadapted": m for name, m in results.items()}
            adapt_batchnorm(model, data.adapt.images, cfg.batch_size)
            results = {name: evaluate_segmenter(model, arr, cfg, data.class_names, overlaps[name])
                       for name, arr in data.test.items()}
            log("[segment] after batch-norm adaptation: " + ", ".join(
                f"{name} dice {before[name + ', unadapted']['dice_lesion_images'] or 0:.3f} -> "
                f"{m['dice_lesion_images'] or 0:.3f}" for name, m in results.items()))
            results.update(before)
        payload["runs"].append({"name": "train" if len(seeds) == 1 else f"seed {s}", "seed": s,
                                "train_frames": len(data.train), "train_by_source": by_source,
                                "history": history, "test": results})
        if s == cfg.seed:
            extras["examples"] = _examples(model, next(iter(data.test.values())), cfg)
            # predictions.csv: every test frame's Dice and pixel counts, so what the segmenter misses
            # can be looked up frame by frame (this seed's network, the one of the examples).
            extras["per_image"] = {name: (arr.origin, overlaps[name]) for name, arr in data.test.items()}
            if cfg.save_model:
                extras["model_state"] = model.state_dict()
    if len(seeds) > 1:
        payload["seeds"] = seeds
        payload["seed_summary"] = {name: {k: stats([r["test"][name].get(k) for r in payload["runs"]])
                                          for k in SEG_KEYS}
                                   for name in payload["runs"][0]["test"]}
    return payload, extras


def _joint_flip_rot(x, y, gen):
    """Random flips and 90-degree turns applied to image and mask alike (the FOV is symmetric)."""
    import torch

    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None, None], y.flip(-1), y)
    k = torch.randint(0, 4, (n,), generator=gen)
    x = torch.stack([torch.rot90(x[i], int(k[i]), dims=(-2, -1)) for i in range(n)])
    y = torch.stack([torch.rot90(y[i], int(k[i]), dims=(-2, -1)) for i in range(n)])
    return x, y


def fit_segmenter(model, train: Arrays, test: dict[str, Arrays], cfg, log, style=None) -> list[dict]:
    import torch
    import torch.nn.functional as F


    if len(train) == 0:
        raise ClassifyError("no training frames; raise the fraction or add data")
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * ((len(train) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    weighted = not np.allclose(train.weights, train.weights[0])
    # --real-style: restyling changes colours only, so the masks stay the truth.
    styler = RealStyler(train, cfg, style, 1) if style is not None else None
    keep = torch.from_numpy(fov_mask(cfg.size, cfg.fov_radius)).float() if cfg.fov == "circle" else None
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.time()
        tot, n = 0.0, 0
        for rows in batches_for_epoch(train, cfg.batch_size, gen, weighted):
            images = styler(rows) if styler is not None else train.images[rows]
            y = torch.from_numpy(train.masks[rows]).float()[:, None]
            if cfg.online_aug and cfg.online_aug_policy == "strong":
                x, y = strong_augment(to_unit(images), y, generator=gen,
                                      fov_keep=keep, fov_radius=cfg.fov_radius)
                x = normalise(x)
            else:
                x = normalise(to_unit(images))
                if cfg.online_aug:
                    x, y = _joint_flip_rot(x, y, gen)
            logits = model(x)
            # BCE for every pixel plus soft Dice, so small lesions are not drowned by background.
            p = torch.sigmoid(logits)
            dice = 1 - (2 * (p * y).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)
            loss = F.binary_cross_entropy_with_logits(logits, y) + dice.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(rows)
            n += len(rows)
        h = {"stage": "train", "epoch": epoch, "train_loss": tot / n, "seconds": round(time.time() - t0, 2)}
        if cfg.eval_each_epoch or epoch == cfg.epochs:
            for name, arr in test.items():
                m = segmentation_metrics(predict_masks(model, arr) > 0.5, arr.masks)
                h[f"test_{name}_dice"] = m["dice_lesion_images"] if m["dice_lesion_images"] is not None else m["dice"]
                h[f"test_{name}_iou"] = m["iou_lesion_images"] if m["iou_lesion_images"] is not None else m["iou"]
        history.append(h)
        log(f"[segment] epoch {epoch}/{cfg.epochs}: loss {h['train_loss']:.4f}"
            + "".join(f", {k[5:]} {v:.3f}" for k, v in h.items() if k.startswith("test_") and v is not None)
            + f" ({h['seconds']:.0f} s)")
    return history


def predict_masks(model, arr: Arrays, batch_size: int = 64) -> np.ndarray:
    """Lesion probability per pixel (N, S, S)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(arr), batch_size):
            out.append(torch.sigmoid(model(normalise(to_unit(arr.images[i:i + batch_size]))))[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros((0,) + arr.images.shape[2:])


def evaluate_segmenter(model, arr: Arrays, cfg, class_names, per_image: dict | None = None) -> dict:
    """Segmentation metrics of `model` on `arr` inside the field of view; `per_image`, if given, is
    filled with the per-frame overlaps (metrics.per_image_overlap) the metrics come from."""
    prob = predict_masks(model, arr)
    if cfg.fov == "circle":
        prob = prob * fov_mask(cfg.size, cfg.fov_radius)
    if per_image is not None:
        per_image.update(per_image_overlap(prob > 0.5, arr.masks))
    m = segmentation_metrics(prob > 0.5, arr.masks)
    if len(np.unique(arr.labels)) == 2 and len(class_names) == 2:
        score = prob.reshape(len(prob), -1).max(1)
        c = classification_metrics(np.stack([1 - score, score], 1), arr.labels, class_names, cfg.positive)
        m["detection_auc"] = c["auc"]
    return m


def _examples(model, arr: Arrays, cfg, n: int = 6) -> dict:
    has = np.flatnonzero(arr.masks.reshape(len(arr), -1).any(1))
    rows = np.concatenate([has[:n], np.flatnonzero(~np.isin(np.arange(len(arr)), has))])[:n]
    sub = arr.subset(rows)
    return {"images": sub.images, "truth": sub.masks, "pred": predict_masks(model, sub) > 0.5}
