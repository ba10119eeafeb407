"""Quality per checkpoint of a training run (`synth diffusion evaluate`): C2ST, optionally FID/KID
and the scores of a real-data classifier (`--judge`, see judge.py).

For each checkpoint the EMA model generates one sample per chosen real frame, with that frame's
label (and mask, for mask-conditioned models), so generated and real sets have the same class
mix; then the metrics of metrics.py compare them. Results go to the run folder as
metrics.csv / metrics.json and a plot metrics.png (one panel per metric against the step).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synth.diffusion.data import resize_image, resize_mask
from synth.diffusion.model import DiffusionModel, ModelError
from synth.diffusion.sample import SAMPLERS, generate, seed_for
from synth.generator.dataset import Dataset, as_channels
from synth.measure.judge import Judge
from synth.measure.quality import MetricError, compare, inception_extractor
from synth.rng import EVALUATE_SAMPLES_STREAM, EVALUATE_SELECT_STREAM


@dataclass
class EvaluateConfig:
    run: str
    real: str
    n: int = 200
    sampler: str = "ddim"
    steps: int | None = 25
    guidance: float = 1.0
    target_class: str | None = None  # generate only this class (e.g. "real" for a domain model)
    fid: bool = False
    inception_weights: str | None = None
    judge: str | None = None  # a `synth classify --save-model` report trained on real images
    every: int = 1  # evaluate every k-th checkpoint
    seed: int = 0
    batch_size: int = 64


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    out = []
    for p in sorted((run / "checkpoints").glob("step-*")):
        if (p / "model" / "synth_model.json").exists():
            out.append((int(p.name.split("-")[1]), p / "model"))
    return out


def evaluate(cfg: EvaluateConfig, log=print) -> list[dict]:
    if cfg.sampler not in SAMPLERS:
        raise ModelError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {cfg.sampler!r}")
    if cfg.n <= 0:
        raise MetricError("--n must be positive")
    run = Path(cfg.run)
    ckpts = checkpoints(run)[:: max(1, cfg.every)]
    if not ckpts:
        raise ModelError(f"{run} has no checkpoints; train with `synth diffusion train --out {run}`")
    if cfg.fid:
        inception_extractor(cfg.inception_weights)  # fail now, not after an hour of sampling
    judge = None
    if cfg.judge:
        judge = Judge(cfg.judge)
    real = Dataset.open(cfg.real)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, EVALUATE_SELECT_STREAM]))
    recs = [real.records[i] for i in rng.permutation(len(real))[: cfg.n]]
    rows = []
    for step, path in ckpts:
        model = DiffusionModel.load(path)
        res = model.cfg.resolution
        names = model.cfg.class_names
        if not names:
            ids = None
        elif cfg.target_class:
            ids = [model.class_index(cfg.target_class)] * len(recs)
        elif all(r.label in names for r in recs):
            ids = [names.index(r.label) for r in recs]
        elif "real" in names:  # a domain-conditioned model compared with real frames
            ids = [names.index("real")] * len(recs)
        else:
            raise ModelError(f"the labels of {cfg.real} are not classes of the model ({', '.join(names)}); "
                             "pass --target-class")
        masks = (np.stack([(resize_mask(real.mask(r), res) > 0).astype(np.uint8) for r in recs])
                 if model.cfg.mask_channels else None)
        fake = generate(model, class_ids=ids, seeds=[seed_for(cfg.seed, EVALUATE_SAMPLES_STREAM, i) for i in range(len(recs))],
                        masks=masks, sampler=cfg.sampler, steps=cfg.steps, guidance=cfg.guidance,
                        batch_size=cfg.batch_size)
        fake = as_channels(fake, 3)  # the measures take RGB; grey samples compare with grey frames read as RGB
        real_imgs = np.stack([resize_image(real.image(r), res) for r in recs])
        fake_labels = [names[i] for i in ids] if ids is not None else None
        row = {"step": step, **compare(real_imgs, fake, seed=cfg.seed, fid=cfg.fid,
                                        inception_weights=cfg.inception_weights, judge=judge,
                                        real_labels=[r.label for r in recs] if fake_labels else None,
                                        fake_labels=fake_labels)}
        rows.append(row)
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    write_metrics(run, rows, asdict(cfg))
    return rows


def write_metrics(folder: Path, rows: list[dict], config: dict) -> None:
    keys = list(rows[0])
    with open(folder / ".metrics.csv.tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(folder / ".metrics.csv.tmp", folder / "metrics.csv")
    (folder / "metrics.json").write_text(json.dumps({"config": config, "rows": rows}, indent=2) + "\n")
    plot_metrics(rows, folder / "metrics.png")


def plot_metrics(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("c2st_accuracy", "C2ST accuracy (0.5 = indistinguishable)"), ("fid", "FID"), ("kid_mean", "KID"),
              ("fd_judge", "FD on a real-data classifier's features"),
              ("class_agreement", "class agreement of samples")]
    panels = [(k, t) for k, t in panels if k in rows[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.3), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, (k, title) in zip(axes[0], panels):
        ax.plot(steps, [r[k] for r in rows], "o-")
        if k == "c2st_accuracy":
            ax.axhline(0.5, color="grey", ls="--", lw=1)
            ax.set_ylim(0.4, 1.02)
        if k == "class_agreement" and "class_agreement_real" in rows[0]:
            ax.axhline(rows[0]["class_agreement_real"], color="grey", ls="--", lw=1, label="on real images")
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=8)
        ax.set_xlabel("optimizer step")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
