"""`synth augment`: class-conditional samples written as a dataset, to enlarge a small real set.

Frame i is a pure function of (seed, i): its class comes from its position (N per class, in
class order) and its noise from its own generator, so an interrupted run resumes where it
stopped and a re-run with the same seed writes the same images. A mask-conditioned model draws
each frame's mask from a frame of the same class in `--masks-from`, and the mask is written
with the sample, so generated lesion frames come with a pixel label.

The output keeps the model's class order (its training data's) and its image channels: a model
of greyscale data writes a greyscale dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synth import UserError
from synth.diffusion.model import DiffusionModel, ModelError, resolve_model_path
from synth.diffusion.sample import DEFAULT_STEPS, SAMPLERS, generate, seed_for
from synth.generator.dataset import Dataset, DatasetWriter, frame_id
from synth.rng import AUGMENT_MASK_STREAM, AUGMENT_SAMPLES_STREAM


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


def plan(model: DiffusionModel, cfg: AugmentConfig) -> list[str]:
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


def _mask_source(model: DiffusionModel, cfg: AugmentConfig, labels: list[str]):
    """For each frame, the instance mask it is conditioned on (from --masks-from), or None."""
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
    out = []
    for i, lab in enumerate(labels):
        pool = by_label.get(lab) or ds.records  # a class absent there: any frame's mask
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, AUGMENT_MASK_STREAM, i]))
        rec = pool[int(rng.integers(len(pool)))]
        out.append((rec.id, resize_mask(ds.mask(rec), model.cfg.resolution)))
    return out


def augment(cfg: AugmentConfig, *, overwrite: bool = False, log=print) -> Path:
    model_path = resolve_model_path(cfg.model)
    model = DiffusionModel.load(model_path)
    labels = plan(model, cfg)
    masks = _mask_source(model, cfg, labels)
    steps = cfg.steps or DEFAULT_STEPS[cfg.sampler]
    class_names = model.cfg.class_names or [cfg.label]
    config = {"command": "augment", **asdict(cfg), "model": str(model_path), "steps": steps}
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=class_names, overwrite=overwrite,
                           channels=model.cfg.image_channels)
    done = writer.done_ids()
    todo = [i for i in range(len(labels)) if frame_id(i) not in done]
    if done:
        log(f"resuming: {len(done)} of {len(labels)} frames already written")
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start:start + cfg.batch_size]
        seeds = [seed_for(cfg.seed, AUGMENT_SAMPLES_STREAM, i) for i in chunk]
        ids = [model.class_index(labels[i]) for i in chunk] if model.cfg.class_names else None
        m = np.stack([(masks[i][1] > 0).astype(np.uint8) for i in chunk]) if masks else None
        imgs = generate(model, class_ids=ids, seeds=seeds, masks=m, sampler=cfg.sampler, steps=steps,
                        guidance=cfg.guidance, batch_size=cfg.batch_size)
        for i, img, s in zip(chunk, imgs, seeds):
            extra = {"method": "sample", "sampler": cfg.sampler, "steps": steps, "guidance": cfg.guidance,
                     "model": str(model_path)}
            if masks:
                extra["mask_from"] = f"{cfg.masks_from}:{masks[i][0]}"
            writer.write_frame(frame_id(i), image=img, label=labels[i], mask=masks[i][1] if masks else None,
                               seed=s, source=str(model_path), extra=extra)
        log(f"{min(start + cfg.batch_size, len(todo)) + len(done)}/{len(labels)} frames")
    writer.finalize(
        manifest={"command": "synth augment", "config": config, "seed": cfg.seed, "kind": "generated",
                  "model": str(model_path)},
        expected_ids=[frame_id(i) for i in range(len(labels))],
    )
    return Path(cfg.out)
