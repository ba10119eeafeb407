"""Anomaly scoring with a diffusion model trained on normal frames (`synth diffusion anomaly`).

The idea of AnoDDPM (Wyatt et al. 2022): partially noise an image to level `strength`, then
denoise it with a model that has only seen normal tissue (under the "normal" class, with an
empty mask if the model is mask-conditioned). Normal regions come back much as they were;
unusual ones (a polyp) are redrawn as normal tissue, so the per-pixel reconstruction error is a
heat map of what the model finds unusual. Averaging over a few noise draws steadies the map.

Outputs, in `--out`::

    heatmaps/ID.png   the error map as 8-bit (255 = `scale` in report.json), at model resolution
    overlays.png      a few frames: image, reconstruction, heat map, true mask
    scores.csv        per frame: id, label, image score (mean of the top 1% of the heat map)
    report.json       pixel-level ROC AUC of the heat maps against the masks (frames that
                      have masks), image-level AUC of the score when normal and lesion frames
                      are both present, and the settings
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from synth import UserError
from synth.diffusion.data import mask_to_model, resize_image, resize_mask, to_model_range, to_uint8
from synth.diffusion.model import DiffusionModel, resolve_model_path
from synth.diffusion.refine import sdedit
from synth.diffusion.sample import generators, pick_device, seed_for
from synth.generator.dataset import FRAME_ID_RE, Dataset, as_channels, write_json, write_png
from synth.generator.imaging import circle
from synth.generator.run_folder import RunFolder
from synth.rng import ANOMALY_STREAM


class AnomalyError(UserError):
    """An anomaly-scoring option or output folder that cannot be used."""


@dataclass
class AnomalyConfig:
    model: str
    data: str
    out: str
    strength: float = 0.4
    steps: int = 50  # DDIM steps for the full noise range (strength * steps are run)
    repeats: int = 3
    normal_class: str | None = "normal"  # None: unconditional (or the model's null class)
    blur: float = 1.0  # Gaussian sigma of the heat map, in pixels
    fov: bool = False  # score only inside the inscribed circle (removes scope borders and text)
    batch_size: int = 16
    limit: int | None = None
    seed: int = 0


def fov_mask(size: int) -> np.ndarray:
    """The inscribed circle of a size x size image (--fov: scope borders and text score nothing)."""
    return circle(size, size, 0.5)


def _prepare_out(out: Path, overwrite: bool, log) -> None:
    folder = RunFolder(out, command="synth diffusion anomaly", names=("overlays.png", "scores.csv", "report.json"),
                       folders={"heatmaps": rf"{FRAME_ID_RE}\.png"}, error=AnomalyError)
    folder.check()
    folder.refuse_existing(overwrite)
    if overwrite:
        folder.clear(log)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)


@torch.no_grad()
def heat_maps(model: DiffusionModel, images: np.ndarray, cfg: AnomalyConfig, first_index: int = 0):
    """Error maps (N, H, W) float in [0, 1] scale and reconstructions (N, H, W, C) of uint8 (N, H, W, C)
    images, C the model's image channels."""
    import cv2

    dev = pick_device()
    x0 = to_model_range(torch.from_numpy(images).permute(0, 3, 1, 2)).to(dev)
    n = len(images)
    if model.cfg.class_names:
        cls = model.class_index(cfg.normal_class) if cfg.normal_class else model.cfg.null_class
        ids = torch.full((n,), cls, device=dev)
    else:
        ids = None
    mask = mask_to_model(torch.zeros(n, *images.shape[1:3], device=dev)) if model.cfg.mask_channels else None
    err = torch.zeros(n, *images.shape[1:3], device=dev)
    recon = None
    for k in range(cfg.repeats):
        gens = generators([seed_for(cfg.seed, ANOMALY_STREAM, first_index + i, k) for i in range(n)], dev)
        recon = sdedit(model, x0, ids, mask, strength=cfg.strength, sampler="ddim", steps=cfg.steps, gens=gens)
        err += (x0 - recon).abs().mean(dim=1) / 2  # [-1, 1] range -> [0, 1]
    err = (err / cfg.repeats).cpu().numpy()
    if cfg.blur > 0:
        err = np.stack([cv2.GaussianBlur(e, (0, 0), cfg.blur) for e in err])
    if cfg.fov:
        err = err * fov_mask(err.shape[-1])[None]
    return err, to_uint8(recon)


def score(cfg: AnomalyConfig, *, overwrite: bool = False, log=print) -> dict:
    from sklearn.metrics import roc_auc_score

    if not 0 < cfg.strength <= 1:
        raise AnomalyError(f"--strength must be in (0, 1], got {cfg.strength}")
    if cfg.repeats <= 0 or cfg.steps <= 0:
        raise AnomalyError("--repeats and --steps must be positive")
    model = DiffusionModel.load(resolve_model_path(cfg.model))
    if model.cfg.class_names and cfg.normal_class and cfg.normal_class not in model.cfg.class_names:
        model.class_index(cfg.normal_class)  # the one-line "not one the model knows" error
    ds = Dataset.open(cfg.data)
    recs = ds.records[: cfg.limit]
    out = Path(cfg.out)
    _prepare_out(out, overwrite, log)
    res = model.cfg.resolution
    fov = fov_mask(res)
    rows, pix_scores, pix_truth, shown = [], [], [], []
    scale = None
    for s in range(0, len(recs), cfg.batch_size):
        chunk = recs[s:s + cfg.batch_size]
        imgs = np.stack([resize_image(ds.image(r, model.cfg.image_channels), res) for r in chunk])
        if cfg.fov:
            imgs = imgs * fov[None, :, :, None].astype(np.uint8)
        heat, recon = heat_maps(model, imgs, cfg, first_index=s)
        # One fixed scale for all maps (set by the first batch), so PNG values compare across frames.
        scale = scale or float(max(np.quantile(heat, 0.999), 1e-6))
        for r, h, img, rec in zip(chunk, heat, imgs, recon):
            write_png(out / "heatmaps" / f"{r.id}.png", np.clip(h / scale * 255, 0, 255).astype(np.uint8))
            valid = fov if cfg.fov else np.ones_like(fov)
            top = np.sort(h[valid])[-max(1, valid.sum() // 100):]
            rows.append({"id": r.id, "label": r.label, "score": float(top.mean()),
                         "lesion_pixels": int(r.lesion_pixels)})
            if r.mask:
                m = resize_mask(ds.mask(r), res) > 0
                pix_scores.append(h[valid])
                pix_truth.append(m[valid])
            if len(shown) < 6:
                # Shown as RGB: a grey (H, W, 1) image is not something imshow draws.
                shown.append((as_channels(img, 3), as_channels(rec, 3), h, resize_mask(ds.mask(r), res) > 0))
        log(f"{min(s + cfg.batch_size, len(recs))}/{len(recs)} frames scored")

    report = {"config": asdict(cfg), "frames": len(rows), "scale": scale}
    if pix_truth:
        truth = np.concatenate([t.ravel() for t in pix_truth])
        scores_ = np.concatenate([p.ravel() for p in pix_scores])
        if truth.any() and not truth.all():
            report["pixel_auc"] = float(roc_auc_score(truth, scores_))
            report["pixel_positive_fraction"] = float(truth.mean())
    has_lesion = np.array([r["lesion_pixels"] > 0 for r in rows])
    if has_lesion.any() and not has_lesion.all():
        report["image_auc"] = float(roc_auc_score(has_lesion, [r["score"] for r in rows]))
    with open(out / ".scores.csv.tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(out / ".scores.csv.tmp", out / "scores.csv")
    _plot_overlays(shown, out / "overlays.png", scale)
    write_json(out / "report.json", report)
    return report


def _plot_overlays(shown, path: Path, scale: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 4, figsize=(8, 2 * len(shown)), squeeze=False)
    for row, (img, rec, heat, mask) in zip(axes, shown):
        for ax, im, title in zip(row, (img, rec, heat, mask), ("image", "reconstruction", "heat map", "mask")):
            ax.imshow(im, cmap="magma" if im.ndim == 2 else None, vmin=0, vmax=scale if title == "heat map" else None)
            ax.set_axis_off()
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
