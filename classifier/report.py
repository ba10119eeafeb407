"""The report folder of `synth classify`: JSON, a Markdown table, predictions and plots.

Written to a temporary folder next to the target and moved into place only when complete, so
an interrupted or failed run leaves no half report; an existing report is replaced only with
--overwrite (and then only after the new one is complete), and a folder holding files synth
classify did not write is refused (generator/run_folder.py says why).

    report.json       config, data (sources, fractions, every frame id used), model, runs with
                      per-epoch history and test metrics, the transfer curve
    report.md         the same as tables
    config.json       the config alone
    predictions.csv   per test frame: test set, source, folder, id, true label, class probabilities
                      (segmentation: true and predicted lesion pixels, Dice and IoU, first seed)
    curves.png        loss and accuracy (or Dice) per epoch
    roc.png, confusion.png      of the last run (classification)
    transfer_curve.png          (protocol curve)
    augment.png                 (protocol augment) accuracy and balanced accuracy per row, mean and spread over seeds
    examples.png                (segmentation) test frames with true and predicted outlines
"""

from __future__ import annotations

from pathlib import Path


from synth.classifier.data import ClassifyError
from synth.generator.dataset import write_json
from synth.generator.run_folder import RunFolder

SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1")
SEG_KEYS = ("dice", "iou", "dice_lesion_images", "iou_lesion_images", "dice_pooled", "iou_pooled", "precision_pooled",
            "recall_pooled", "detection_auc")


# What `synth classify` writes into --out: with --overwrite only these are replaced.
OUTPUT_FILES = ("report.json", "report.md", "config.json", "predictions.csv", "model.pt", "curves.png", "roc.png",
                "confusion.png", "transfer_curve.png", "augment.png", "examples.png")


def _folder(out: str | Path) -> RunFolder:
    return RunFolder(out, command="synth classify", names=OUTPUT_FILES, error=ClassifyError)


def check_out(out: str, overwrite: bool) -> Path:
    """The report path; a one-line error if it holds anything (without --overwrite), files synth
    classify did not write (even with it), or cannot be made."""
    folder = _folder(out)
    folder.check()
    folder.refuse_existing(overwrite, foreign_ok=False)
    return folder.path


def write_report(out: Path, payload: dict, extras: dict, overwrite: bool, log=print) -> Path:
    out = check_out(str(out), overwrite)
    with _folder(out).staged() as tmp:
        probs = _strip_probs(payload)
        write_json(tmp / "report.json", payload)
        write_json(tmp / "config.json", payload.get("config", {}))
        (tmp / "report.md").write_text(markdown(payload), encoding="utf-8")
        if probs and extras.get("test_origin"):
            _write_predictions(tmp / "predictions.csv", probs, extras, payload["class_names"])
        if extras.get("per_image"):
            _write_segment_predictions(tmp / "predictions.csv", extras["per_image"])
        if "model_state" in extras:
            import torch

            torch.save(extras["model_state"], tmp / "model.pt")
        from synth.classifier import plots

        plots.make_all(tmp, payload, extras)
    log(f"report written to {out}")
    return out


def _strip_probs(payload: dict) -> dict:
    """Remove in-memory probability arrays from the metrics; return those of the last run."""
    last = {}
    for run in payload.get("runs", []):
        last = {}
        for name, m in run.get("test", {}).items():
            if "_probs" in m:
                last[name] = m.pop("_probs")
    return last


def _write_predictions(path: Path, probs: dict, extras: dict, class_names) -> None:
    lines = ["test_set,source,folder,id,label," + ",".join(f"p_{c}" for c in class_names)]
    for name, p in probs.items():
        for (src, folder, fid), y, row in zip(extras["test_origin"][name], extras["test_labels"][name], p):
            lines.append(f"{name},{src},{folder},{fid},{class_names[int(y)]}," + ",".join(f"{v:.6f}" for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_segment_predictions(path: Path, per_image: dict) -> None:
    lines = ["test_set,source,folder,id,true_pixels,predicted_pixels,dice,iou"]
    for name, (origin, o) in per_image.items():
        for k, (src, folder, fid) in enumerate(origin):
            lines.append(f"{name},{src},{folder},{fid},{int(o['truth'][k])},{int(o['pred'][k])},"
                         f"{o['dice'][k]:.6f},{o['iou'][k]:.6f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown(payload: dict) -> str:
    """The report as Markdown tables."""
    cfg = payload.get("config", {})
    lines = [f"# synth classify report ({payload.get('task')}, protocol {payload.get('protocol')})", ""]
    model = payload.get("model", {})
    fov = f"circle of radius {cfg.get('fov_radius')} x side" if cfg.get("fov") == "circle" else "none"
    lines.append(f"Model: {model.get('model')} ({model.get('init')}), {cfg.get('epochs')} epochs, "
                 f"size {cfg.get('size')} px, field of view: {fov}, seed {cfg.get('seed')}.")
    lines.append("")
    if payload.get("augment"):
        lines += augment_markdown(payload["augment"], payload)
    lines.append("| role | name | folder | fraction | frames | per class |")
    lines.append("|---|---|---|---|---|---|")
    for role in ("pretrain", "train", "test"):
        for s in payload.get("data", {}).get(role, []):
            per = ", ".join(f"{k}: {v}" for k, v in s["per_class"].items())
            lines.append(f"| {role} | {s['name']} | {s['path']} | {s['fraction']:g} | {s['frames']} | {per} |")
    lines.append("")
    seg = payload.get("task") == "segment"
    keys = SEG_KEYS if seg else SUMMARY_KEYS
    lines.append("| run | train frames | test set | n | " + " | ".join(keys) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(keys))
    for run in payload.get("runs", []):
        for name, m in run["test"].items():
            lines.append(f"| {run['name']} | {run['train_frames']} | {name} | {m.get('n')} | "
                         + " | ".join(_fmt(m.get(k)) for k in keys) + " |")
    lines.append("")
    if payload.get("seed_summary"):
        lines.append(f"Mean ± standard deviation (n - 1) over the training seeds {payload['seeds']} "
                     "(the same frames; initial weights, batches and augmentation differ):")
        lines.append("")
        lines.append("| test set | " + " | ".join(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for name, st in payload["seed_summary"].items():
            lines.append(f"| {name} | " + " | ".join(_pm(st.get(k)) for k in keys) + " |")
        lines.append("")
    for run in payload.get("runs", [])[-1:]:
        for name, m in run["test"].items():
            if "confusion_matrix" in m:
                names = m["class_names"]
                lines.append(f"Confusion matrix of run '{run['name']}' on {name} (rows: true, columns: predicted):")
                lines.append("")
                lines.append("| | " + " | ".join(names) + " |")
                lines.append("|---|" + "---|" * len(names))
                for c, row in zip(names, m["confusion_matrix"]):
                    lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
                lines.append("")
    curve = payload.get("curve")
    if curve:
        lines.append(f"Transfer curve over fractions of '{curve['source']}' (AUC per test set):")
        lines.append("")
        lines.append("| fraction | real frames | " + " | ".join(curve["arms"]) + " |")
        lines.append("|---|---|" + "---|" * len(curve["arms"]))
        for p in curve["points"]:
            cells = []
            for arm in curve["arms"]:
                r = p.get(arm)
                cells.append("n/a" if not r else ", ".join(f"{k} {_fmt(v.get('auc'))}" for k, v in r.items()
                                                          if isinstance(v, dict)))
            lines.append(f"| {p['fraction']:g} | {p['real_frames']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Took {payload.get('seconds')} s.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- protocol augment


def _pm(st: dict | None, signed: bool = False) -> str:
    """A mean with its spread over seeds, "0.861 ± 0.004" (no spread for one seed)."""
    if not st or st.get("mean") is None:
        return "n/a"
    mean = f"{st['mean']:+.3f}" if signed else f"{st['mean']:.3f}"
    return mean if st.get("std") is None else f"{mean} ± {st['std']:.3f}"


def augment_markdown(aug: dict, payload: dict) -> list[str]:
    """The comparison table, the per-class recalls, which row wins, and the sample quality."""
    seeds, rows, runs = aug["seeds"], aug["rows"], payload.get("runs", [])
    multi = len(payload.get("class_names", [])) > 2
    auc = "macro AUC" if multi else "AUC"
    lines = [f"## Augmentation: real only, classical copies, other sources ({aug['real_frames']} real training "
             f"images from '{aug['real_source']}', {len(seeds)} training seed(s): {', '.join(map(str, seeds))})", "",
             "Mean ± standard deviation (n - 1) over the training seeds; min, max and every run in report.json. "
             "Δ: the row minus real only, seed by seed (the same training seed starts both from the same weights), "
             "mean ± standard deviation, and in how many seeds the row was ahead.", ""]
    for test in rows[0]["test"]:
        n = runs[rows[0]["runs"][0]]["test"][test].get("n") if runs else None
        lines += [f"Test set '{test}' ({n} images):", "",
                  f"| row | train images | accuracy | balanced accuracy | {auc} | Δ accuracy | Δ balanced accuracy "
                  f"| Δ {auc} |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            t, d = r["test"][test], r["delta"][test]
            deltas = ["–" if r is rows[0] else f"{_pm(d[k], signed=True)} ({d[k]['ahead']}/{d[k]['n']})"
                      for k in ("accuracy", "balanced_accuracy", "auc")]
            lines.append(f"| {r['name']} | {r['train_frames']} | " + " | ".join(_pm(t[k]) for k in
                         ("accuracy", "balanced_accuracy", "auc")) + " | " + " | ".join(deltas) + " |")
        lines.append("")
        classes = list(rows[0]["test"][test]["per_class_recall"])
        lines += [f"Recall per class on '{test}':", "", "| row | " + " | ".join(classes) + " |",
                  "|---|" + "---|" * len(classes)]
        for r in rows:
            lines.append(f"| {r['name']} | " + " | ".join(_pm(r["test"][test]["per_class_recall"][c]) for c in classes)
                         + " |")
        lines.append("")
        w = aug.get("winner", {}).get(test)
        metric = aug.get("win_metric", "balanced_accuracy").replace("_", " ")
        if w is None:
            lines.append(f"Winner on '{test}': none ({metric} is undefined).")
        elif w["row"] == rows[0]["name"]:
            lines.append(f"Winner on '{test}' (highest mean {metric}): **{w['row']}** "
                         f"({_pm(w)}); no other row beat it.")
        else:
            spread = ("ahead of real only in every seed" if w["ahead"] == w["of"] and w["of"] > 1 else
                      f"ahead of real only in {w['ahead']} of {w['of']} seed(s)"
                      + (": one seed says nothing about the spread" if w["of"] == 1 else ": not a consistent gain"))
            lines.append(f"Winner on '{test}' (highest mean {metric}): **{w['row']}** ({_pm(w)}), "
                         f"{_pm({'mean': w['delta_mean'], 'std': w['delta_std']}, signed=True)} over real only, "
                         f"{spread}.")
        lines.append("")
    quality = aug.get("quality") or {}
    if quality:
        judged = bool(aug.get("judge"))
        lines += [f"Sample quality: each other source against the real share, as the classifier sees them "
                  f"(C2ST 0.5: indistinguishable, 1.0: always told apart"
                  + (f"; judge {aug['judge']}: Fréchet distance on its features, 0 = same mean and covariance, "
                     "and the share of images it assigns to their own class" if judged else "; no --judge given")
                  + ").", "",
                  "| source | images | C2ST accuracy | " + ("FD (judge) | class agreement | " if judged else "")
                  + "filtered: kept / drawn |",
                  "|---|---|---|" + ("---|---|" if judged else "") + "---|"]
        for name, q in quality.items():
            filt = [f["filter"] for f in q.get("folders", []) if f.get("filter")]
            kept = (f"{sum(f['kept'] for f in filt)} / {sum(f['drawn'] for f in filt)}" if filt else "not filtered")
            cells = [name, str(q.get("frames")), _fmt(q.get("c2st_accuracy"))]
            if judged:
                cells += [_fmt(q.get("fd_judge")), _fmt(q.get("class_agreement"))]
            lines.append("| " + " | ".join(cells + [kept]) + " |")
        lines.append("")
        notes = [f"{n}: {q[k]}" for n, q in quality.items() for k in ("c2st_note", "judge_note") if q.get(k)]
        if notes:
            lines += ["Not measured: " + "; ".join(notes), ""]
    return lines
