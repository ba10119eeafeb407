"""`synth augment`: class-conditional samples written as a dataset, to enlarge a small real set.

The model may be a diffusion model (`synth diffusion train`, method ddpm), a VAE (`synth vae
train`) or a GAN (`synth gan train`); `--method` defaults to what the model folder holds.

Frame i is a pure function of (seed, i): its class comes from its position (N per class, in
class order) and its noise or latent from its own generator, so an interrupted run resumes
where it stopped and a re-run with the same seed writes the same images. A mask-conditioned
diffusion model draws each frame's mask from a frame of the same class in `--masks-from`, and
the mask is written with the sample, so generated lesion frames come with a pixel label.

Filtering (`--filter-judge REPORT`): a classifier trained on real images (`synth classify
--save-model`) scores every drawn sample, and a sample is kept only when the judge's
probability of its own class is at least `--filter-threshold`. Class c draws candidates
0, 1, 2, ...: candidate j < N is draw c*N + j (the frame the unfiltered run writes there),
later ones are draws K*N + (j - N)*K + c (K classes), so the draws stay a pure function of the
seed and no two classes share one. Drawing stops when N are kept or after `--filter-cap` x N
candidates; kept and drawn counts per class go into the manifest (`filter`). The k-th kept
sample of class c is frame c*N + k and records its candidate number and judge probability, so
a resumed run continues after the last kept frame and writes what an uninterrupted run writes.

The output keeps the model's class order (its training data's) and its image channels: a model
of greyscale data writes a greyscale dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synth import UserError
from synth.diffusion.config import GENERATIVE_METHODS
from synth.diffusion.model import DiffusionModel, ModelError, find_model, resolve_model_path
from synth.diffusion.sample import DEFAULT_STEPS, SAMPLERS, generate, seed_for
from synth.generator.dataset import Dataset, DatasetWriter, frame_id, load_records
from synth.measure.judge import Judge
from synth.rng import AUGMENT_MASK_STREAM, AUGMENT_SAMPLES_STREAM

METHODS = ("ddpm",) + GENERATIVE_METHODS


@dataclass
class AugmentConfig:
    model: str
    out: str
    n_per_class: int = 100
    classes: list[str] | None = None  # None: every class the model knows
    sampler: str = "ddim"
    steps: int | None = None
    guidance: float = 2.0
    masks_from: str | None = None
    label: str = "sample"  # label of the frames of an unconditional model
    batch_size: int = 32
    seed: int = 0
    method: str | None = None  # ddpm, vae or gan; None: what the model folder holds
    filter_judge: str | None = None  # a `synth classify --save-model` report trained on real images
    filter_threshold: float = 0.5  # keep a sample when the judge gives its class at least this probability
    filter_cap: int = 20  # at most this many times --n candidates per class


def plan(model, cfg: AugmentConfig) -> list[str]:
    """The label of every frame, in frame order."""
    if cfg.n_per_class <= 0:
        raise UserError(f"--n must be a positive number of samples per class, got {cfg.n_per_class}")
    if cfg.sampler not in SAMPLERS:
        raise ModelError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {cfg.sampler!r}")
    if not model.cfg.class_names:
        if cfg.classes:
            raise ModelError("this model is unconditional; drop --classes")
        return [cfg.label] * cfg.n_per_class
    names = cfg.classes or model.cfg.class_names
    for c in names:
        model.class_index(c)  # a one-line error for a class the model does not know
    return [c for c in names for _ in range(cfg.n_per_class)]


def _mask_source(model: DiffusionModel, cfg: AugmentConfig):
    """A function giving the instance mask draw i of class `label` is conditioned on (from
    --masks-from) as (frame id, mask), or None when the model takes no mask."""
    if not model.cfg.mask_channels:
        if cfg.masks_from:
            raise ModelError("this model is not mask-conditioned; drop --masks-from")
        return None
    if not cfg.masks_from:
        raise ModelError("this model is mask-conditioned: pass --masks-from DATASET to take masks from")
    from synth.diffusion.data import resize_mask

    ds = Dataset.open(cfg.masks_from)
    by_label: dict[str, list] = {}
    for r in ds:
        by_label.setdefault(r.label, []).append(r)

    def mask_for(i: int, label: str):
        pool = by_label.get(label) or ds.records  # a class absent there: any frame's mask
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, AUGMENT_MASK_STREAM, i]))
        rec = pool[int(rng.integers(len(pool)))]
        return rec.id, resize_mask(ds.mask(rec), model.cfg.resolution)

    return mask_for


def _check_options(cfg: AugmentConfig) -> None:
    if cfg.method is not None and cfg.method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.filter_judge is not None:
        if not 0.0 <= cfg.filter_threshold <= 1.0:
            raise UserError(f"--filter-threshold is a probability in [0, 1], got {cfg.filter_threshold}")
        if cfg.filter_cap < 1:
            raise UserError(f"--filter-cap must be at least 1 (candidates per class, times --n), got {cfg.filter_cap}")


def _held_method(cfg: AugmentConfig) -> str:
    """The method of the model folder; a --method that disagrees is a one-line error."""
    found = find_model(cfg.model) if Path(cfg.model).exists() else None
    if found is None:  # missing or not a model: that method's loader says so
        return cfg.method or "ddpm"
    held = found[0]
    if cfg.method and cfg.method != held:
        kind = "a diffusion model (ddpm)" if held == "ddpm" else f"a {held} model"
        raise ModelError(f"{cfg.model} holds {kind}, not a {cfg.method} model; pass --method {held} "
                         "or leave --method out")
    return held


class _Sampler:
    """Draws of one model: `draw(indices, labels)` -> (uint8 images, seeds, masks or None)."""

    def __init__(self, cfg: AugmentConfig, method: str):
        self.cfg, self.method = cfg, method
        if method == "ddpm":
            self.path = resolve_model_path(cfg.model)
            self.model = DiffusionModel.load(self.path)
            self.labels = plan(self.model, cfg)
            self.mask_for = _mask_source(self.model, cfg)
            self.steps = cfg.steps or DEFAULT_STEPS[cfg.sampler]
            self.class_names = self.model.cfg.class_names or [cfg.label]
            self.channels = self.model.cfg.image_channels
            self.config = {"command": "augment", **asdict(cfg), "model": str(self.path), "steps": self.steps}
        else:
            from synth.diffusion.generative import GenerativeModel

            self.model = GenerativeModel.load(cfg.model, method)
            self.path = find_model(cfg.model)[1]
            self.labels = plan(self.model, cfg)
            if cfg.masks_from:
                raise ModelError(f"a {method} model is not mask-conditioned; drop --masks-from")
            self.mask_for = None
            self.class_names = self.model.cfg.class_names
            self.channels = self.model.cfg.image_channels
            # The diffusion sampler's options do not apply to a VAE or GAN, so they are not recorded.
            skip = ("sampler", "steps", "guidance", "masks_from", "label")
            self.config = {"command": "augment", **{k: v for k, v in asdict(cfg).items() if k not in skip},
                           "model": str(self.path)}
        # Options added after the diffusion-only command are recorded only when used, so the
        # config of a diffusion run, and the folders it resumes, are what they were before.
        self.config["method"] = method
        if method == "ddpm":
            del self.config["method"]
        if cfg.filter_judge is None:
            for k in ("filter_judge", "filter_threshold", "filter_cap"):
                del self.config[k]

    def draw(self, indices: list[int], labels: list[str]):
        cfg = self.cfg
        seeds = [seed_for(cfg.seed, AUGMENT_SAMPLES_STREAM, i) for i in indices]
        if self.method != "ddpm":
            ids = [self.model.class_index(lab) for lab in labels]
            return self.model.generate(class_ids=ids, seeds=seeds, batch_size=cfg.batch_size), seeds, None
        ids = [self.model.class_index(lab) for lab in labels] if self.model.cfg.class_names else None
        masks = [self.mask_for(i, lab) for i, lab in zip(indices, labels)] if self.mask_for else None
        m = np.stack([(x[1] > 0).astype(np.uint8) for x in masks]) if masks else None
        imgs = generate(self.model, class_ids=ids, seeds=seeds, masks=m, sampler=cfg.sampler, steps=self.steps,
                        guidance=cfg.guidance, batch_size=cfg.batch_size)
        return imgs, seeds, masks

    def extra(self, mask) -> dict:
        """What a frame's record says about how it was made."""
        if self.method != "ddpm":
            return {"method": "sample", "generator": self.method, "model": str(self.path)}
        cfg = self.cfg
        extra = {"method": "sample", "sampler": cfg.sampler, "steps": self.steps, "guidance": cfg.guidance,
                 "model": str(self.path)}
        if mask is not None:
            extra["mask_from"] = f"{cfg.masks_from}:{mask[0]}"
        return extra


def augment(cfg: AugmentConfig, *, overwrite: bool = False, log=print) -> Path:
    _check_options(cfg)
    method = _held_method(cfg)
    src = _Sampler(cfg, method)
    judge = _load_judge(cfg, src.class_names) if cfg.filter_judge is not None else None
    writer = DatasetWriter(Path(cfg.out), config=src.config, class_names=src.class_names, overwrite=overwrite,
                           channels=src.channels)
    manifest = {"command": "synth augment", "config": src.config, "seed": cfg.seed, "kind": "generated",
                "model": str(src.path)}
    if judge is None:
        expected = _write_all(writer, src, log)
    else:
        expected, counts = _write_filtered(writer, src, judge, log)
        manifest["filter"] = {"judge": cfg.filter_judge, "threshold": cfg.filter_threshold,
                              "cap": cfg.filter_cap * cfg.n_per_class, "per_class": counts}
    writer.finalize(manifest=manifest, expected_ids=expected)
    return Path(cfg.out)


def _write_all(writer: DatasetWriter, src: _Sampler, log) -> list[str]:
    """Every frame of the plan (no filter); returns the frame ids."""
    labels, cfg = src.labels, src.cfg
    done = writer.done_ids()
    todo = [i for i in range(len(labels)) if frame_id(i) not in done]
    if done:
        log(f"resuming: {len(done)} of {len(labels)} frames already written")
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start:start + cfg.batch_size]
        imgs, seeds, masks = src.draw(chunk, [labels[i] for i in chunk])
        for k, (i, img, s) in enumerate(zip(chunk, imgs, seeds)):
            mask = masks[k] if masks else None
            writer.write_frame(frame_id(i), image=img, label=labels[i], mask=mask[1] if mask else None,
                               seed=s, source=str(src.path), extra=src.extra(mask))
        log(f"{min(start + cfg.batch_size, len(todo)) + len(done)}/{len(labels)} frames")
    return [frame_id(i) for i in range(len(labels))]


# --------------------------------------------------------------------------- filtering


def _load_judge(cfg: AugmentConfig, class_names: list[str]):
    judge = Judge(cfg.filter_judge)
    names = list(dict.fromkeys(cfg.classes or class_names))
    missing = [c for c in names if c not in judge.class_names]
    if missing:
        raise ModelError(f"class(es) {', '.join(missing)} of the samples are not classes of the judge "
                         f"{cfg.filter_judge} ({', '.join(judge.class_names)}); use a judge trained on these classes")
    return judge


def draw_index(c: int, j: int, n: int, k: int) -> int:
    """The draw of candidate j of class position c (n per class, k classes): the unfiltered
    frame c*n + j for j < n, then draws after all k*n of those, interleaved by class."""
    return c * n + j if j < n else k * n + (j - n) * k + c


def judge_probs(judge, images: np.ndarray, class_index: int) -> np.ndarray:
    """The judge's probability of one class for uint8 (N, H, W, C) images; grey is read as three
    equal channels, as `synth classify` reads grey frames."""
    rgb = np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images
    return judge.features_and_probs(rgb)[1][:, class_index]


def _write_filtered(writer: DatasetWriter, src: _Sampler, judge, log) -> tuple[list[str], dict]:
    """Draw candidates per class until N pass the judge or the cap is reached; returns the frame
    ids written and {class: {"kept", "drawn"}}."""
    cfg, n = src.cfg, src.cfg.n_per_class
    names = list(dict.fromkeys(src.labels))  # the plan's classes, in order
    k_classes, cap = len(names), cfg.filter_cap * n
    records = {r.id: r for r in load_records(writer.root)}
    expected, counts = [], {}
    for c, name in enumerate(names):
        # Resume after the last of the frames already kept in order (a later gap is drawn again).
        kept, j = 0, 0
        while kept < n and frame_id(c * n + kept) in records:
            j = int(records[frame_id(c * n + kept)].extra["candidate"]) + 1
            kept += 1
        drawn, target = j, judge.class_names.index(name)
        while kept < n and j < cap:
            js = list(range(j, min(cap, j + cfg.batch_size)))
            imgs, seeds, masks = src.draw([draw_index(c, x, n, k_classes) for x in js], [name] * len(js))
            probs = judge_probs(judge, imgs, target)
            for t, x in enumerate(js):
                drawn = x + 1
                if probs[t] >= cfg.filter_threshold:
                    mask = masks[t] if masks else None
                    extra = {**src.extra(mask), "candidate": x, "judge_prob": float(probs[t])}
                    writer.write_frame(frame_id(c * n + kept), image=imgs[t], label=name,
                                       mask=mask[1] if mask else None, seed=seeds[t], source=str(src.path),
                                       extra=extra)
                    kept += 1
                    if kept == n:
                        break
            j = js[-1] + 1
        counts[name] = {"kept": kept, "drawn": drawn}
        expected += [frame_id(c * n + i) for i in range(kept)]
        log(f"{name}: kept {kept} of {drawn} drawn (judge probability >= {cfg.filter_threshold})"
            + ("" if kept == n else f"; stopped at the cap of {cap} draws"))
    return expected, counts
