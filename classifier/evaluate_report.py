"""The report folder of `synth evaluate`: the answer in words, Markdown tables, plots, a contact sheet.

No bpy, no torch (matplotlib with the Agg backend, OpenCV). Written into a temporary folder that
`RunFolder.staged` (generator/run_folder.py) moves into place, report.json last:

    report.json        config, budget, inputs, realism (summaries, gaps, C2ST, judge), transfer,
                       low data, skipped parts, the answer
    report.md          the same as tables, the answer first
    config.json        the config alone
    evaluate.log       every line of the run, with per-epoch training lines
    contact_sheet.png  the first frames of every folder at one size, one row per folder
    realism.png        per-frame distributions of every statistic, synthetic against each real folder
    colour.png         pooled L*, a*, b* pixel distributions inside the field of view
    radial.png         mean brightness against distance from the centre
    transfer.png       synthetic-only against real-trained scores (when a real folder has masks)
    low_data.png       the low-data curves (when a real folder has masks)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.generator.dataset import write_json, write_png
from synth.measure import realism as R

TASKS = {"segmentation": ("Dice", "segmentation (U-Net)"), "patch_classifier": ("AUC", "patch classifier")}


def _score(task: str, m: dict | None):
    if not m:
        return None
    if task == "segmentation":
        return m.get("dice_lesion_images") if m.get("dice_lesion_images") is not None else m.get("dice")
    return m.get("auc")


def _f(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.0%}" + (" (below chance)" if v < 0 else "")


def reach_words(x: float) -> str:
    """The share of what real data teaches that synthetic data reaches, in words."""
    if x < 0:
        return "synthetic reaches nothing of what real data teaches (the synthetic-only model is below chance)"
    return f"synthetic reaches {x:.0%} of what real data teaches"


# --------------------------------------------------------------------------- the answer


def answer(payload: dict) -> list[str]:
    """The report's conclusions, one line each: realism, transfer and low data per real folder."""
    lines = []
    for folder in payload["real"]:
        name = folder["name"]
        real = payload["realism"]["folders"].get(name, {})
        acc = (real.get("c2st") or {}).get("c2st_accuracy")
        big = [g["reading"] for g in real.get("gaps", []) if g["severity"] in ("large", "medium")][:3]
        lines.append(f"{name}: realism: C2ST {_f(acc)} (0.5 = indistinguishable)"
                     + (f"; largest gaps: {'; '.join(big)}" if big else "; no statistic differs by a medium or large gap"))
        tr = payload["transfer"].get(name, {})
        for task, (metric, title) in TASKS.items():
            e = tr.get(task)
            if not e:
                continue
            syn, ref = _score(task, e["synthetic_only"]["held_out"]), _score(task, e["real_trained"]["held_out"])
            x = e["synthetic_reaches"]
            lines.append(f"{name}: {title}: {reach_words(x) if x is not None else 'synthetic reaches n/a'} "
                         f"({metric} {_f(syn)} trained on synthetic only, {_f(ref)} trained on "
                         f"{e['training_frames']['real']} real {'frames' if task == 'segmentation' else 'patches'}"
                         + (f"; chance {e['chance']:g}" if e["chance"] else "") + ")")
            pts = [p for p in payload["low_data"].get(name, {}).get(task, {}).get("points", []) if p["real_only"]]
            if pts:
                parts = []
                for p in pts:
                    a, m = _score(task, p["real_only"]), _score(task, p["real_plus_synthetic"])
                    parts.append(f"{p['fraction']:.0%} real: {_f(a)} -> {_f(m)}")
                lines.append(f"{name}: {title}, adding synthetic to a little real data ({metric} alone -> with "
                             f"synthetic): {'; '.join(parts)}")
    for s in payload["skipped"]:
        lines.append(f"{s['folder']}: {s['part']} skipped: {s['reason']}")
    return lines


# --------------------------------------------------------------------------- Markdown


def markdown(payload: dict) -> str:
    b = payload["budget"]
    syn = payload["synthetic"]
    out = ["# synth evaluate report", ""]
    out.append(f"Synthetic: `{syn['path']}` ({syn['frames']} frames, {syn['lesion_frames']} with a lesion"
               f"{'' if syn['masks'] else ', no masks'}). Real: "
               + "; ".join(f"**{r['name']}** `{r['path']}` ({r['frames']} frames"
                           f"{', masks' if r['masks'] else ', no masks'})" for r in payload["real"])
               + f". Budget **{b['name']}**, seed {payload['config']['seed']}, took {payload.get('seconds', 0):.0f} s.")
    out += ["", "## The answer", ""] + [f"- {line}" for line in payload.get("answer", [])] + [""]

    out += ["## 1. Realism", "", "![synthetic and real frames at one size](contact_sheet.png)", ""]
    fov = payload["realism"].get("field_of_view", {})
    out.append(f"Statistics are measured at {fov.get('size')} px {fov.get('rule', '')}. SMD: standardised mean "
               "difference (difference of means over the pooled standard deviation; 0.2 small, 0.5 medium, "
               "0.8 large); Wasserstein: the distance between the two per-frame distributions, in the "
               "statistic's units. Sorted by the size of the gap: the top rows say what to change first.")
    out += ["", "| real folder | C2ST accuracy (0.5: indistinguishable) | frames per set | judge's Fréchet distance "
            "(synthetic vs real) | same, real vs real (floor) | patches each |", "|---|---|---|---|---|---|"]
    for name, e in payload["realism"]["folders"].items():
        c, j = e.get("c2st") or {}, e.get("judge") or {}
        out.append(f"| {name} | {_f(c.get('c2st_accuracy'))} | {c.get('n_per_set', 'n/a')} | "
                   f"{_f(j.get('fd_synthetic'), 1)} | {_f(j.get('fd_real_floor'), 1)} | {j.get('n', 'n/a')} |")
    out.append("")
    for name, e in payload["realism"]["folders"].items():
        out += [f"### synthetic vs {name}", ""]
        px = e.get("pixel_wasserstein", {})
        out.append("Pooled pixel distributions inside the view (Wasserstein): "
                   + ", ".join(f"{c}* {_f(v, 2)}" for c, v in px.items()) + ".")
        out += ["", "| statistic | synthetic | real | SMD | Wasserstein | gap | reading |", "|---|---|---|---|---|---|---|"]
        for g in e["gaps"]:
            out.append(f"| {g['title']} | {_g(g['mean_synthetic'])} | {_g(g['mean_real'])} | "
                       f"{_smd(g['smd'])} | "
                       f"{_g(g['wasserstein'])} | {g['severity']} | {g['reading']} |")
        out.append("")
    out += ["Plots: [per-frame distributions](realism.png), [colour](colour.png), "
            "[brightness from the centre](radial.png).", ""]

    out += ["## 2. Transfer", ""]
    rows = []
    for name, tr in payload["transfer"].items():
        for task, (metric, title) in TASKS.items():
            e = tr.get(task)
            if not e:
                continue
            so = e["synthetic_only"]
            rows.append(f"| {name} | {title} | {metric} | {_f(_score(task, so['held_out']))} | "
                        f"{_f(_score(task, so.get('held_out_adapted_bn')))} | "
                        f"{_f(_score(task, so.get('all_real_frames')))} | {_f(_score(task, e['real_trained']['held_out']))}"
                        f" | {_pct(e['synthetic_reaches'])} | {e['training_frames']['synthetic']} / "
                        f"{e['training_frames']['real']} |")
    if rows:
        out.append("Trained on the synthetic folder only, and on the real folder's training split; tested on its "
                   f"held-out split ({int(b['holdout'] * 100)} % of the frames, by frame, seeded), and the "
                   "synthetic-only model also on every real frame used, and (with `--adapt-bn DIR`) with its "
                   "batch-norm statistics re-estimated on DIR's frames, labels unused. \"Reaches\": the "
                   "synthetic-only score as a share of the real-trained one (for AUC, of its gain over chance, 0.5).")
        out += ["", "| real folder | task | metric | synthetic only, held-out | synthetic only, batch norm "
                "adapted, held-out | synthetic only, all real frames | "
                "real-trained, held-out | synthetic reaches | training items (synthetic / real) |",
                "|---|---|---|---|---|---|---|---|---|"] + rows + ["", "[transfer.png](transfer.png)", ""]
    else:
        out += ["No real folder with lesion masks: nothing to transfer to (see Skipped).", ""]

    out += ["## 3. Low data", ""]
    rows = []
    for name, tasks in payload["low_data"].items():
        for task, (metric, title) in TASKS.items():
            for p in tasks.get(task, {}).get("points", []):
                a, m = _score(task, p["real_only"]), _score(task, p["real_plus_synthetic"])
                change = "n/a" if a is None or m is None else f"{m - a:+.3f}"
                rows.append(f"| {name} | {title} | {metric} | {p['fraction']:.0%} | {p['real_frames']} | {_f(a)} | "
                            f"{_f(m)} | {change} |")
    if rows:
        out.append("Shares of the real training split (nested: the smaller share's frames are inside the larger), "
                   "alone and with every synthetic frame used; tested on the same held-out split.")
        out += ["", "| real folder | task | metric | real share | real frames | real only | real + synthetic | "
                "change |", "|---|---|---|---|---|---|---|---|"] + rows + ["", "[low_data.png](low_data.png)", ""]
    else:
        out += ["Not measured (see Skipped).", ""]

    if payload["skipped"]:
        out += ["## Skipped", ""] + [f"- {s['folder']}: {s['part']} skipped: {s['reason']}"
                                     for s in payload["skipped"]] + [""]
    out += ["## Budget", "", "| setting | value |", "|---|---|"]
    out += [f"| {k} | {', '.join(f'{x:g}' for x in v) if isinstance(v, (list, tuple)) else v} |" for k, v in b.items()]
    out.append("")
    return "\n".join(out)


def _smd(v) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def _g(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


# --------------------------------------------------------------------------- pictures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)


def contact_sheet(path: Path, frames: dict[str, list[np.ndarray]], tile: int = 96) -> None:
    """One row per folder (synthetic first), its first frames at tile x tile, the name above the row."""
    import cv2

    from synth.classifier.data import model_view

    cols = max(len(v) for v in frames.values())
    rows = []
    for name, imgs in frames.items():
        band = np.full((18, cols * tile, 3), 255, np.uint8)
        cv2.putText(band, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles = [model_view(img, tile, None) for img in imgs] + [np.zeros((tile, tile, 3), np.uint8)] * (cols - len(imgs))
        rows += [band, np.concatenate(tiles, axis=1)]
    write_png(path, np.concatenate(rows, axis=0))


def realism_plot(path: Path, stats: dict) -> None:
    """A panel per statistic: per-frame histograms of the synthetic folder and each real one."""
    plt = _plt()
    shown = [s for s in R.STATISTICS if any(np.isfinite(f.values[s.name]).any() for f in stats.values())]
    ncols = 5
    nrows = max(1, -(-len(shown) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, s in zip(axes.ravel(), shown):
        vals = {n: f.values[s.name][np.isfinite(f.values[s.name])] for n, f in stats.items()}
        allv = np.concatenate([v for v in vals.values() if len(v)])
        lo, hi = np.percentile(allv, [1, 99]) if len(allv) else (0, 1)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        for n, v in vals.items():
            if len(v):
                ax.hist(np.clip(v, lo, hi), bins=24, range=(lo, hi), density=True, histtype="step", lw=1.4,
                        label=n, ls="-" if n == "synthetic" else "--")
        ax.set_title(s.title, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    _save(fig, path)


def colour_plot(path: Path, stats: dict) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, c in zip(axes, R.HIST_BINS):
        lo, hi, n = R.HIST_BINS[c]
        x = lo + (np.arange(n) + 0.5) * (hi - lo) / n
        for name, f in stats.items():
            h = f.hist[c]
            if h.sum():
                ax.plot(x, h / h.sum(), label=name, ls="-" if name == "synthetic" else "--")
        ax.set_title(f"{c}* of pixels inside the view", fontsize=10)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def radial_plot(path: Path, stats: dict) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    r = (np.arange(R.RINGS) + 0.5) / R.RINGS
    for name, f in stats.items():
        ax.plot(r, R.mean_profile(f.radial), "o-" if name == "synthetic" else "s--", label=name)
    ax.set_xlabel("distance from the centre (1 = edge of the view)")
    ax.set_ylabel("mean L*")
    ax.set_title("brightness against distance from the centre", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def transfer_plot(path: Path, payload: dict) -> bool:
    bars = []
    for name, tr in payload["transfer"].items():
        for task, (metric, title) in TASKS.items():
            if task in tr:
                e = tr[task]
                bars.append((f"{name}\n{title}\n({metric})", _score(task, e["synthetic_only"]["held_out"]),
                             _score(task, e["real_trained"]["held_out"])))
    if not bars:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.6 * len(bars) + 1, 3.6))
    x = np.arange(len(bars))
    ax.bar(x - 0.2, [b[1] or 0 for b in bars], 0.4, label="synthetic only")
    ax.bar(x + 0.2, [b[2] or 0 for b in bars], 0.4, label="real-trained")
    ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("held-out real frames", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def low_data_plot(path: Path, payload: dict) -> bool:
    panels = [(name, task) for name, tasks in payload["low_data"].items() for task in TASKS if task in tasks]
    if not panels:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
    for ax, (name, task) in zip(axes[0], panels):
        metric, title = TASKS[task]
        pts = payload["low_data"][name][task]["points"]
        fr = [p["fraction"] for p in pts if p["real_only"]]
        ax.plot(fr, [_score(task, p["real_only"]) for p in pts if p["real_only"]], "o-", label="real only")
        ax.plot(fr, [_score(task, p["real_plus_synthetic"]) for p in pts if p["real_only"]], "s-",
                label="real + synthetic")
        e = payload["transfer"][name][task]
        for key, style, label in (("synthetic_only", ":", "synthetic only"), ("real_trained", "--", "all real")):
            v = _score(task, e[key]["held_out"])
            if v is not None:
                ax.axhline(v, ls=style, color="grey", lw=1)
                ax.annotate(label, (max(fr) if fr else 0, v), fontsize=7, ha="right", va="bottom")
        ax.set_xlabel("share of the real training split")
        ax.set_ylabel(metric)
        ax.set_title(f"{name}: {title}", fontsize=10)
        ax.legend(fontsize=8)
    _save(fig, path)
    return True


# --------------------------------------------------------------------------- the folder


def write(folder: Path, payload: dict, stats: dict, contact: dict, lines: list[str]) -> None:
    """Everything of the report into `folder` (a fresh temporary folder)."""
    (folder / "evaluate.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(folder / "config.json", payload["config"])
    contact_sheet(folder / "contact_sheet.png", contact)
    realism_plot(folder / "realism.png", stats)
    colour_plot(folder / "colour.png", stats)
    radial_plot(folder / "radial.png", stats)
    transfer_plot(folder / "transfer.png", payload)
    low_data_plot(folder / "low_data.png", payload)
    (folder / "report.md").write_text(markdown(payload), encoding="utf-8")
    write_json(folder / "report.json", payload)
