"""The transfer protocols of `synth classify`, built from one training loop.

- ``single``: train on every ``--train`` source (pooled), test on every ``--test`` set. This is
  "synthetic only" (train on rendered, test on real), "real only" (the baseline) and "mixed"
  (``--train synthetic=DIR --train real=DIR:0.1``, optionally ``@WEIGHT`` per source).
- ``finetune``: pretrain on ``--pretrain`` sources, then fine-tune on ``--train``; the report has
  both the pretrained-only model and the fine-tuned one.
- ``curve``: the transfer curve. For each fraction f of the ``--curve-source`` ("real") sources,
  train once on real f alone and once with the other data (the other ``--train`` sources mixed
  in, or, with ``--pretrain``, pretraining on them first). f = 0 with other data is
  "synthetic only"; f = 0 alone has nothing to learn from and is recorded as empty.
- ``augment``: real only, real + classical augmentation, real + each other source (generated
  samples), each trained ``--seeds`` times; see classifier/augment_protocol.py.
- ``--augment F`` on the other protocols adds the classical augmentation baseline (flip, rotate, crop):
  F x N augmented copies of the training images.

Every run starts from the same seeded initial weights, so the runs of one report differ only in
their data.
"""

from __future__ import annotations

import copy
from dataclasses import replace


from synth.classifier.data import ClassifyError, classical_augment, load_arrays, select_sources
from synth.classifier.train import ClassifyConfig, adapt_batchnorm, evaluate, fit, load_data
from synth.nets.models import build_model


def run_protocol(cfg: ClassifyConfig, train_specs, test_specs, pre_specs, log):
    """Run cfg.protocol; returns (JSON payload, extras for the report writer)."""
    if cfg.protocol == "curve":
        return _curve(cfg, train_specs, test_specs, pre_specs, log)
    data = load_data(cfg, train_specs, test_specs, log)
    payload = report_payload(cfg, data)
    extras: dict = {}
    pre = None
    if cfg.protocol == "finetune" or pre_specs:
        pre = _load_pretrain(cfg, pre_specs, test_specs, data.class_names, log)
        payload["data"]["pretrain"] = [s.describe() for s in pre[1]]
    model, info = new_model(cfg, data.class_names, log)
    payload["model"] = info
    runs = []
    if pre is not None:
        arrays = _augmented(pre[0], cfg)
        hist = fit(model, arrays, cfg, epochs=cfg.pretrain_epochs or cfg.epochs, lr=cfg.lr, test=data.test,
                   class_names=data.class_names, log=log, stage="pretrain", style=data.style)
        runs.append(_run("pretrain only", arrays, hist, evaluate(model, data.test, cfg, data.class_names)))
    arrays = _augmented(data.train, cfg)
    lr = cfg.finetune_lr if (pre is not None and cfg.finetune_lr) else cfg.lr
    stage = "finetune" if pre is not None else "train"
    hist = fit(model, arrays, cfg, epochs=cfg.epochs, lr=lr, test=data.test, class_names=data.class_names,
               log=log, stage=stage, seed_offset=1, style=data.style)
    name = "pretrain + finetune" if pre is not None else "train"
    runs.append(_run(name, arrays, hist, evaluate(model, data.test, cfg, data.class_names)))
    if data.adapt is not None:
        # The same weights with batch-norm statistics from real frames: the last run, so the saved
        # model and the confusion matrix are the adapted network's.
        adapt_batchnorm(model, data.adapt.images, cfg.batch_size)
        runs.append(_run(f"{name} + adapted batch norm", arrays, hist,
                         evaluate(model, data.test, cfg, data.class_names)))
    payload["runs"] = runs
    extras["test_origin"] = {k: v.origin for k, v in data.test.items()}
    extras["test_labels"] = {k: v.labels for k, v in data.test.items()}
    if cfg.save_model:
        extras["model_state"] = model.state_dict()
    return payload, extras


# --------------------------------------------------------------------------- pieces


def report_payload(cfg, data) -> dict:
    """The head of every classify report (task, protocol, classes, data): shared by the protocols
    here, the segmenter (segment.py) and the augmentation protocol, so their reports read alike."""
    return {
        "task": "classify",
        "protocol": cfg.protocol,
        "class_names": data.class_names,
        # Folders may list the same classes in other orders; labels are matched by name and
        # indices (confusion matrix, predictions.csv columns) follow this folder's order.
        "class_order_from": str(data.train_selections[0].dataset.root),
        "data": {
            "train": [s.describe() for s in data.train_selections],
            "test": [s.describe() for s in data.test_selections],
            "fov": {"mode": cfg.fov, "radius_fraction": cfg.fov_radius, "size": cfg.size},
            "holdout": cfg.holdout,
            "real_style": data.style.describe() if data.style is not None else None,
            "adapt_bn": [s.describe() for s in data.adapt_selections] or None,
        },
    }


def new_model(cfg, class_names, log):
    """The run's model with the report's seeded initial weights (also used by augment_protocol.py)."""
    import torch

    # Same initial weights for every run of a report. This seeds torch's global generator inside
    # run_classify's fork_rng: the seeded state must last through fit (smallcnn's dropout draws
    # from it), so it is not forked here, and nothing outside run_classify sees it.
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model, len(class_names), cfg.size, pretrained=cfg.pretrained, weights=cfg.weights,
                       freeze_backbone=cfg.freeze_backbone, log=log)


def _load_pretrain(cfg, pre_specs, test_specs, class_names, log):
    if not pre_specs:
        raise ClassifyError("--protocol finetune needs --pretrain NAME=DIR")
    names, sel, _ = select_sources(pre_specs, test_specs, seed=cfg.seed, holdout=cfg.holdout)
    if set(names) != set(class_names):
        raise ClassifyError(f"--pretrain classes {names} differ from --train classes {class_names}")
    # Labels as indices into the --train order, so the pretrained head means the same classes.
    arrays = load_arrays(sel, class_names, size=cfg.size, fov=cfg.fov, fov_radius=cfg.fov_radius,
                         threads=cfg.threads)
    log(f"pretrain data: {len(arrays)} frames from {len(sel)} source(s)")
    return arrays, sel


def _augmented(arrays, cfg):
    return classical_augment(arrays, cfg.augment, seed=cfg.seed, fov=cfg.fov, fov_radius=cfg.fov_radius)


def _run(name, arrays, history, results) -> dict:
    by_source: dict[str, int] = {}
    for o in arrays.origin:
        by_source[o[0]] = by_source.get(o[0], 0) + 1
    return {"name": name, "train_frames": len(arrays), "train_by_source": by_source, "history": history,
            "test": results}


# --------------------------------------------------------------------------- transfer curve


def _curve(cfg: ClassifyConfig, train_specs, test_specs, pre_specs, log):
    real = [s for s in train_specs if s.name == cfg.curve_source]
    other = [s for s in train_specs if s.name != cfg.curve_source]
    if not real:
        raise ClassifyError(f"--protocol curve varies the --train sources named {cfg.curve_source!r} "
                            f"(--curve-source); none of {[s.name for s in train_specs]} is")
    if not other and not pre_specs:
        log("no other training data than the curve source: only the real-only arm is run")
    data = load_data(cfg, train_specs, test_specs, log)
    payload = report_payload(cfg, data)
    rows = data.train.row_of()
    quiet = replace(cfg, eval_each_epoch=False)  # many runs: evaluate each only once, at its end
    other_rows = [k for k, o in enumerate(data.train.origin) if o[0] != cfg.curve_source]

    pre_state = None
    if pre_specs:
        pre_arrays, pre_sel = _load_pretrain(cfg, pre_specs, test_specs, data.class_names, log)
        payload["data"]["pretrain"] = [s.describe() for s in pre_sel]
        model, info = new_model(cfg, data.class_names, log)
        fit(model, _augmented(pre_arrays, cfg), quiet, epochs=cfg.pretrain_epochs or cfg.epochs, lr=cfg.lr,
            test=data.test, class_names=data.class_names, log=log, stage="pretrain", style=data.style)
        pre_state = copy.deepcopy(model.state_dict())
    with_label = "pretrained on other data" if pre_specs else "mixed with other data"

    points, runs = [], []
    for f in cfg.curve_fractions:
        scaled = [replace(s, fraction=s.fraction * f) for s in real]
        real_rows = []
        ids = {}
        if f > 0:
            _, sel, _ = select_sources(scaled, test_specs, seed=cfg.seed, holdout=cfg.holdout)
            for s in sel:
                real_rows += [rows[(str(s.dataset.root), i)] for i in s.ids]
                ids[str(s.spec)] = s.ids
        point = {"fraction": f, "real_frames": len(real_rows), "real_ids": ids}
        for arm in ("real only", with_label):
            if arm == "real only":
                if not real_rows:
                    point[arm] = None  # nothing to learn from
                    continue
                arrays = data.train.subset(real_rows)
            elif pre_state is not None:
                arrays = data.train.subset(real_rows) if real_rows else None
            else:
                if not other_rows:
                    continue
                arrays = data.train.subset(other_rows + real_rows)
            model, info = new_model(cfg, data.class_names, lambda m: None)
            payload["model"] = info
            stage = f"{arm}, real {f:g}"
            hist = []
            if pre_state is not None:
                model.load_state_dict(pre_state)
            if arrays is not None:
                arrays = _augmented(arrays, cfg)
                lr = cfg.finetune_lr if (pre_state is not None and cfg.finetune_lr) else cfg.lr
                hist = fit(model, arrays, quiet, epochs=cfg.epochs, lr=lr, test=data.test,
                           class_names=data.class_names, log=log, stage=stage, seed_offset=1, style=data.style)
            res = evaluate(model, data.test, cfg, data.class_names)
            frames = len(arrays) if arrays is not None else 0
            run = {"name": stage, "train_frames": frames, "history": hist, "test": res}
            runs.append(run)
            point[arm] = {name: _summary(m) for name, m in res.items()}
            point[arm]["train_frames"] = frames
            log(f"curve {stage}: " + ", ".join(f"{n} AUC {m['auc']}" for n, m in res.items()))
        points.append(point)
    payload["runs"] = runs
    payload["curve"] = {"source": cfg.curve_source, "arms": ["real only", with_label], "points": points}
    return payload, {}


def _summary(m: dict) -> dict:
    keys = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1")
    return {k: m.get(k) for k in keys}
