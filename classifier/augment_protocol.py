"""`synth classify --protocol augment`: does a small real training set gain from more images, and from which?

One report, one real training share (the ``--train`` sources named ``--curve-source``, drawn once
with ``--seed``), the same test sets, and these rows:

- "real only": the real share alone;
- "real + classical F": the real share plus F x N flipped/rotated/cropped copies
  (`classical_augment`, the ``--augment`` baseline), for each F of ``--augment-fractions``;
- "real + NAME": the real share pooled with every frame of the other ``--train`` sources called
  NAME (samples of a generative model, rendered frames, ...).

Every row is trained ``--seeds K`` times, with training seeds seed, seed+1, ..., seed+K-1: the
initial weights, the batch order and the classical copies follow the training seed, the data
split does not. Training seed s starts every row from the same weights, so a row's difference
to "real only" is also given seed by seed (paired). With ``--epochs-per-row`` the first training of
a row is exactly the run ``--protocol single`` makes with the same sources and ``--seed``.

Every row trains for the same number of optimiser steps (``--equal-steps``, the default): an epoch
draws as many rows as the largest row holds, so "real only" sees each of its images more often
instead of stopping sooner. Without it (``--epochs-per-row``) a row with 1,200 extra images also
trains twice as long, and its gain over "real only" mixes the images with the extra steps.

Beside how useful each other source is, how close to the real share it looks: the C2ST accuracy
of its images against the real share (measure/c2st.py); with ``--judge REPORT`` the Fréchet
distance and class agreement under a classifier trained on real images (measure/judge.py);
and the kept/drawn counts a filtered `synth augment` folder records in its manifest.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from synth.classifier.data import Arrays, ClassifyError, classical_augment, classical_copies
from synth.classifier.metrics import stats
from synth.classifier.protocols import new_model, report_payload
from synth.classifier.train import ClassifyConfig, evaluate, fit, load_data
from synth.measure.judge import Judge, judge_scores
from synth.rng import fork_rng

REAL_ONLY = "real only"
METRICS = ("accuracy", "balanced_accuracy", "auc")
# The row that "wins" has the highest mean of this metric (ties: the earlier row); balanced
# accuracy, because a class-imbalanced test set lets plain accuracy reward the majority class.
WIN_METRIC = "balanced_accuracy"


def run_augment(cfg: ClassifyConfig, train_specs, test_specs, log):
    """Train every row `cfg.seeds` times; returns (JSON payload, extras for the report writer)."""
    real_name = cfg.curve_source
    if not any(s.name == real_name for s in train_specs):
        raise ClassifyError(f"--protocol augment compares everything with the real training share, the --train "
                            f"sources named {real_name!r} (--curve-source); none of "
                            f"{[s.name for s in train_specs]} is")
    others = list(dict.fromkeys(s.name for s in train_specs if s.name != real_name))
    if not others and not cfg.augment_fractions:
        raise ClassifyError("--protocol augment has nothing to compare with real only; give --augment-fractions "
                            "or another --train NAME=DIR (e.g. generated samples)")
    data = load_data(cfg, train_specs, test_specs, log)
    judge = _load_judge(cfg.judge, data.class_names) if cfg.judge else None
    payload = report_payload(cfg, data)
    origin = data.train.origin
    real_rows = [k for k, o in enumerate(origin) if o[0] == real_name]
    if not real_rows:
        raise ClassifyError(f"the real share (--train {real_name}=...) selects no frames; raise its fraction")

    # (row name, rows of data.train, classical fraction). Pooled rows keep the --train order, so
    # a row's first training is the one `--protocol single` makes with the same sources.
    rows = [(REAL_ONLY, real_rows, 0.0)]
    rows += [(f"real + classical {f:g}", real_rows, f) for f in cfg.augment_fractions]
    rows += [(f"real + {n}", sorted(real_rows + [k for k, o in enumerate(origin) if o[0] == n]), 0.0)
             for n in others]
    if not others:
        log("no other --train source than the real share: only the classical rows are compared")
    # Sample quality first: it is quick, and a judge that does not fit fails before any training.
    quality = sample_quality(cfg, data, real_rows, others, judge, log)

    seeds = [cfg.seed + k for k in range(cfg.seeds)]
    draws = epoch_draws(rows, cfg.equal_steps)
    if draws is not None:
        log(f"every row trains {cfg.epochs} epochs of {draws} draws (its largest row's size): equal optimiser steps")
    quiet = replace(cfg, eval_each_epoch=False)  # many runs: each is tested once, at its end
    runs, row_info = [], []
    model_log = log
    for name, idx, fraction in rows:
        base = reweighted(data.train.subset(idx), data.train_selections)
        info_row = {"name": name, "classical_fraction": fraction or None, "runs": [],
                    "real_ids": [o[2] for o in base.origin if o[0] == real_name]}
        for s in seeds:
            run_cfg = replace(quiet, seed=s)  # the training seed; the data were split with cfg.seed
            arrays = classical_augment(base, fraction, seed=s, fov=cfg.fov, fov_radius=cfg.fov_radius)
            stage = f"{name}, seed {s}"
            # The model's initial weights (and smallcnn's dropout) draw from torch's global
            # generator: seeded with the training seed for this run only, so a run does not
            # depend on the runs before it.
            with fork_rng(s):
                model, info = new_model(run_cfg, data.class_names, model_log)
                model_log = lambda _m: None  # noqa: E731  (say what the model is once)
                hist = fit(model, arrays, run_cfg, epochs=cfg.epochs, lr=cfg.lr, test=data.test,
                           class_names=data.class_names, log=log, stage=stage, seed_offset=1, style=data.style,
                           epoch_draws=draws)
                res = evaluate(model, data.test, run_cfg, data.class_names)
            payload["model"] = info
            by_source: dict[str, int] = {}
            for o in arrays.origin:
                by_source[o[0]] = by_source.get(o[0], 0) + 1
            info_row["runs"].append(len(runs))
            runs.append({"name": stage, "row": name, "seed": s, "train_frames": len(arrays),
                         "train_by_source": by_source, "history": hist, "test": res})
            log(f"augment {stage}: " + ", ".join(f"{t} accuracy {m['accuracy']:.3f}, balanced "
                                                 f"{m['balanced_accuracy']:.3f}" for t, m in res.items()))
        info_row["train_frames"] = runs[info_row["runs"][0]]["train_frames"]
        info_row["train_by_source"] = runs[info_row["runs"][0]]["train_by_source"]
        row_info.append(info_row)

    summarise(row_info, runs, data.class_names)
    payload["runs"] = runs
    payload["augment"] = {
        "real_source": real_name,
        "real_frames": len(real_rows),
        "seeds": seeds,
        "fractions": list(cfg.augment_fractions),
        "win_metric": WIN_METRIC,
        "rows": row_info,
        "winner": winners(row_info, list(data.test)),
        "quality": quality,
        "judge": cfg.judge,
        "equal_steps": cfg.equal_steps,
        "epoch_draws": draws,
    }
    return payload, {}


# --------------------------------------------------------------------------- pieces


def epoch_draws(rows, equal_steps: bool) -> int | None:
    """Rows each epoch draws when every row trains for the same optimiser steps: the size of the
    largest row (real share + classical copies, or real share + another source); None otherwise
    (each row draws its own size, so a larger row also trains longer)."""
    if not equal_steps:
        return None
    return max(len(idx) + classical_copies(len(idx), fraction) for _, idx, fraction in rows)


def reweighted(arrays: Arrays, selections) -> Arrays:
    """`arrays` with the per-row sampling weights `load_arrays` would give these rows alone.

    A source with @W gets W of each epoch's draws, shared among its frames, where the total is
    the number of rows trained on: the pooled Arrays were weighted against every source at once,
    which is not what a row with only some of them means.
    """
    weight_of = {str(s.dataset.root): s.spec.weight for s in selections}
    folders = [o[1] for o in arrays.origin]
    counts: dict[str, int] = {}
    for f in folders:
        counts[f] = counts.get(f, 0) + 1
    w = np.ones(len(arrays), np.float64)
    for k, f in enumerate(folders):
        if weight_of.get(f) is not None:
            w[k] = weight_of[f] * len(arrays) / counts[f]
    return replace(arrays, weights=w)


def per_class_recall(m: dict) -> dict:
    """Recall of every class from a run's confusion matrix (None for a class absent from the test set)."""
    cm = np.asarray(m["confusion_matrix"])
    return {c: (float(cm[k, k] / cm[k].sum()) if cm[k].sum() else None) for k, c in enumerate(m["class_names"])}


def summarise(rows: list[dict], runs: list[dict], class_names) -> None:
    """Add to each row, per test set, the statistics over its seeds and the paired difference to "real only"."""
    def values(row, test, key):
        out = []
        for r in row["runs"]:
            m = runs[r]["test"][test]
            out.append(per_class_recall(m)[key[1]] if isinstance(key, tuple) else m.get(key))
        return out

    keys = list(METRICS) + [("recall", c) for c in class_names]
    base = rows[0]
    for row in rows:
        row["test"], row["delta"] = {}, {}
        for test in runs[row["runs"][0]]["test"]:
            summary, delta = {}, {}
            for key in keys:
                mine, ref = values(row, test, key), values(base, test, key)
                diff = [None if a is None or b is None else a - b for a, b in zip(mine, ref)]
                d = stats(diff)
                d["ahead"] = sum(1 for x in diff if x is not None and x > 0)
                d["behind"] = sum(1 for x in diff if x is not None and x < 0)
                if isinstance(key, tuple):
                    summary.setdefault("per_class_recall", {})[key[1]] = stats(mine)
                    delta.setdefault("per_class_recall", {})[key[1]] = d
                else:
                    summary[key], delta[key] = stats(mine), d
            row["test"][test], row["delta"][test] = summary, delta


def winners(rows: list[dict], tests: list[str]) -> dict:
    """Per test set, the row with the highest mean WIN_METRIC, its difference to "real only" and
    in how many training seeds it was ahead of it."""
    out = {}
    for test in tests:
        scored = [r for r in rows if r["test"][test][WIN_METRIC]["mean"] is not None]
        if not scored:
            out[test] = None
            continue
        best = max(scored, key=lambda r: r["test"][test][WIN_METRIC]["mean"])  # max keeps the first of ties
        d = best["delta"][test][WIN_METRIC]
        out[test] = {"row": best["name"], "metric": WIN_METRIC, **{k: best["test"][test][WIN_METRIC][k]
                                                                  for k in ("mean", "std")},
                     "delta_mean": d["mean"], "delta_std": d["std"], "ahead": d["ahead"], "of": d["n"]}
    return out


# --------------------------------------------------------------------------- sample quality


def _load_judge(path: str, class_names):
    judge = Judge(path)
    if set(judge.class_names) != set(class_names):
        raise ClassifyError(f"--judge {path} knows the classes {judge.class_names}, the data has {class_names}; "
                            "use a judge trained on these classes")
    return judge


def sample_quality(cfg: ClassifyConfig, data, real_rows: list[int], names: list[str], judge, log) -> dict:
    """For each other source name: its folders (with the kept/drawn counts of a filtered `synth
    augment` folder), C2ST accuracy against the real share, and with a judge its Fréchet distance
    to the real share and class agreement. Images are compared as the classifier sees them
    (--size, field of view)."""
    from synth.measure import MetricError
    from synth.measure.c2st import c2st

    real = np.ascontiguousarray(data.train.images[real_rows].transpose(0, 2, 3, 1))
    out = {}
    for name in names:
        rows = [k for k, o in enumerate(data.train.origin) if o[0] == name]
        other = np.ascontiguousarray(data.train.images[rows].transpose(0, 2, 3, 1))
        q: dict = {"frames": len(rows), "folders": [_folder(s) for s in data.train_selections if s.spec.name == name]}
        try:
            q.update(c2st(real, other, seed=cfg.seed))
        except MetricError as e:  # too few images for its folds: say so, the training rows still stand
            q.update(c2st_accuracy=None, c2st_note=str(e))
        if judge is not None:
            labels = [data.class_names[i] for i in data.train.labels[rows]]
            try:
                # KID draws its subsets from torch's global generator: seeded here, restored after.
                with fork_rng(cfg.seed):
                    q.update(judge_scores(judge, real, other, fake_labels=labels))
            except MetricError as e:
                q.update(fd_judge=None, judge_note=str(e))
        out[name] = q
        log(f"quality of {name}: C2ST {_num(q.get('c2st_accuracy'))}"
            + (f", FD (judge) {_num(q.get('fd_judge'))}, class agreement {_num(q.get('class_agreement'))}"
               if judge is not None else ""))
    return out


def _folder(sel) -> dict:
    f = {"path": str(sel.dataset.root), "kind": sel.dataset.manifest.get("kind"), "frames": len(sel.indices)}
    filt = sel.dataset.manifest.get("filter")
    if filt and isinstance(filt.get("per_class"), dict):
        per = filt["per_class"]
        f["filter"] = {"threshold": filt.get("threshold"), "judge": filt.get("judge"), "per_class": per,
                       "kept": sum(int(v.get("kept", 0)) for v in per.values()),
                       "drawn": sum(int(v.get("drawn", 0)) for v in per.values())}
    return f


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
