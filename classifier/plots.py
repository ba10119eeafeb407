"""Plots of a `synth classify` report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def make_all(folder: Path, payload: dict, extras: dict) -> list[str]:
    made = []
    runs = [r for r in payload.get("runs", []) if r.get("history")]
    if runs and payload.get("protocol") not in ("curve", "augment"):  # many runs: one history each is no plot
        # Several training seeds are runs side by side, not stages in a row: the first seed's curves.
        made.append(history_plot(folder / "curves.png", runs[:1] if payload.get("seeds") else runs,
                                 payload.get("task")))
    last = (payload.get("runs") or [None])[-1]
    if last and payload.get("task") == "classify":
        if any("roc" in m for m in last["test"].values()):
            made.append(roc_plot(folder / "roc.png", last))
        made.append(confusion_plot(folder / "confusion.png", last))
    if payload.get("curve"):
        made.append(curve_plot(folder / "transfer_curve.png", payload["curve"]))
    if payload.get("augment"):
        made.append(augment_plot(folder / "augment.png", payload["augment"]))
    if "examples" in extras:
        made.append(examples_plot(folder / "examples.png", extras["examples"]))
    return made


def history_plot(path: Path, runs: list[dict], task: str) -> str:
    """Loss (left) and accuracy or Dice (right) per epoch; stages follow each other on the x axis."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    hist = [h for r in runs for h in r["history"]]
    x = np.arange(1, len(hist) + 1)
    ax1.plot(x, [h["train_loss"] for h in hist], "o-", label="train")
    score = "dice" if task == "segment" else "accuracy"
    if task != "segment":
        ax2.plot(x, [h["train_accuracy"] for h in hist], "o-", label="train")
    test_names = sorted({k.split("_", 1)[1].rsplit("_", 1)[0] for h in hist for k in h
                         if k.startswith("test_") and k.endswith(f"_{score}")})
    for name in test_names:
        key = f"test_{name}_{score}"
        xs = [i for i, h in zip(x, hist) if h.get(key) is not None]
        ax2.plot(xs, [h[key] for h in hist if h.get(key) is not None], "s--", label=f"test {name}")
        lkey = f"test_{name}_loss"
        lx = [i for i, h in zip(x, hist) if h.get(lkey) is not None]
        if lx:
            ax1.plot(lx, [h[lkey] for h in hist if h.get(lkey) is not None], "s--", label=f"test {name}")
    # Mark where one stage (pretrain) ends and the next begins.
    for i in range(1, len(hist)):
        if hist[i]["stage"] != hist[i - 1]["stage"]:
            for ax in (ax1, ax2):
                ax.axvline(i + 0.5, color="grey", lw=0.8, ls=":")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    ax2.set(xlabel="epoch", ylabel=score, title=f"{score} per epoch", ylim=(0, 1.02))
    ax1.legend(), ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def roc_plot(path: Path, run: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, m in run["test"].items():
        if "roc" in m:
            ax.plot(m["roc"]["fpr"], m["roc"]["tpr"], label=f"{name} (AUC {m['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
           title=f"ROC: {run['name']}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def confusion_plot(path: Path, run: dict) -> str:
    plt = _plt()
    items = list(run["test"].items())
    fig, axes = plt.subplots(1, len(items), figsize=(4.2 * len(items), 4), squeeze=False)
    for ax, (name, m) in zip(axes[0], items):
        cm = np.array(m["confusion_matrix"])
        names = m["class_names"]
        ax.imshow(cm, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title=f"{name}: {run['name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def curve_plot(path: Path, curve: dict, metric: str = "auc") -> str:
    """Test metric against the fraction of real training data, one line per arm and test set."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = curve["points"]
    # Fraction 0 cannot sit on a log axis: place it one step left of the smallest fraction.
    fr = [p["fraction"] for p in pts]
    pos = [f for f in fr if f > 0]
    zero_x = (min(pos) / 3) if pos else 1e-3
    xs = [f if f > 0 else zero_x for f in fr]
    # Open markers for the second arm, so equal values stay visible on top of each other.
    for arm, style in zip(curve["arms"], ("o-", "s--")):
        sets = sorted({k for p in pts if p.get(arm) for k, v in p[arm].items() if isinstance(v, dict)})
        for name in sets:
            px = [x for x, p in zip(xs, pts) if p.get(arm) and p[arm][name].get(metric) is not None]
            py = [p[arm][name][metric] for p in pts if p.get(arm) and p[arm][name].get(metric) is not None]
            ax.plot(px, py, style, label=f"{arm} ({name})", mfc="none" if style == "s--" else None, ms=8)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(xs, [f"{f:g}" for f in fr])
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax.set(xlabel=f"fraction of '{curve['source']}' training data", ylabel=f"test {metric.upper()}",
           title="transfer curve", ylim=(0.3, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def augment_plot(path: Path, aug: dict) -> str:
    """Accuracy and balanced accuracy per row of --protocol augment: bars at the mean over the
    training seeds, error bars of one standard deviation, and each seed's run as a dot."""
    plt = _plt()
    rows, tests = aug["rows"], list(aug["rows"][0]["test"])
    fig, axes = plt.subplots(1, len(tests), figsize=(max(5.0, 1.3 * len(rows) + 2) * len(tests), 4.2), squeeze=False)
    width = 0.38
    for ax, test in zip(axes[0], tests):
        x = np.arange(len(rows))
        for k, (metric, label) in enumerate((("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"))):
            st = [r["test"][test][metric] for r in rows]
            mean = [s["mean"] if s["mean"] is not None else np.nan for s in st]
            err = [s["std"] or 0.0 for s in st]
            xs = x + (k - 0.5) * width
            ax.bar(xs, mean, width, yerr=err, capsize=4, label=label, alpha=0.85)
            for xi, s in zip(xs, st):
                vals = [v for v in s["values"] if v is not None]
                ax.plot([xi] * len(vals), vals, "k.", ms=4)
        ref = rows[0]["test"][test]["balanced_accuracy"]["mean"]
        if ref is not None:
            ax.axhline(ref, color="grey", ls=":", lw=0.8, label="real only, balanced accuracy")
        # Differences between rows are often a few hundredths: the axis starts a little below the
        # lowest run (at a tenth), not at 0, so they stay visible.
        low = [v for r in rows for m in ("accuracy", "balanced_accuracy")
               for v in r["test"][test][m]["values"] if v is not None]
        bottom = max(0.0, np.floor((min(low) - 0.05) * 10) / 10) if low else 0.0
        ax.set_xticks(x, [r["name"] for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="test score", ylim=(bottom, 1.0 + 0.12 * (1.0 - bottom)),
               title=f"{test}: mean ± std over {len(aug['seeds'])} seed(s), dots: runs")
        ax.legend(fontsize=8, loc="upper left", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def examples_plot(path: Path, ex: dict) -> str:
    """Test images with the true (green) and predicted (red) lesion outlines."""
    plt = _plt()
    imgs, truth, pred = ex["images"], ex["truth"], ex["pred"]
    n = len(imgs)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
    for ax, im, t, p in zip(axes[0], imgs, truth, pred):
        ax.imshow(im.transpose(1, 2, 0))
        if t.any():
            ax.contour(t, levels=[0.5], colors="lime", linewidths=1)
        if p.any():
            ax.contour(p, levels=[0.5], colors="red", linewidths=1)
        ax.axis("off")
    fig.suptitle("green: true mask, red: predicted", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
