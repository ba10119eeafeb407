"""`synth evaluate`: will these synthetic frames help on my real data? One command, one report folder.

No bpy. Given a folder of synthetic frames (rendered, refined, calibrated) and one or more folders
of the user's real frames, `run_evaluate` answers in three parts:

1. **Realism, side by side**: the statistics of `synth.measure.realism` (colour, brightness against
   distance from the centre, specular highlights, texture, edges and vessels, dark lumen, lesion
   size, position and contrast) for the synthetic folder and each real one, with the gap and a
   plain-words reading per statistic; the C2ST accuracy (0.5: indistinguishable); the judge's
   Fréchet distance (penultimate features of the real-trained patch classifier of part 2, on
   held-out real patches against synthetic ones, beside the same distance between two halves of
   the real patches); a contact sheet of both at one size.
2. **Transfer**: a U-Net segmenter and the fair patch classifier (lesion and lesion-free windows
   cut from the same frames, `synth data patches`) trained on the synthetic folder only, tested
   on each real folder, beside the same models trained on the real folder's training split and
   tested on its held-out split: "synthetic reaches X % of what real data teaches" (Dice ratio;
   for AUC, the ratio of the gains over chance, 0.5).
3. **Low data**: the real training split at a few fractions (nested, stratified: the 5 % frames
   are inside the 10 %), alone and with the synthetic frames, for both tasks.

Honest splits as in `synth classify`: each real folder is split by frame with the seed (30 %
held out, stratified by label); patches are cut after the split, so a frame's patches are on one
side; no held-out frame is ever trained on. Models, losses, augmentation, resizing and the field
of view are those of `synth classify` (its training loops are called here). A real folder
without lesion masks gets the realism part only, with one line saying so.

A *budget* fixes image sizes, epochs and frame counts, so two reports at one budget compare;
`--set KEY=VALUE` changes one setting (the report then calls the budget custom).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from synth import UserError
from synth.classifier import evaluate_report
from synth.classifier.evaluate_report import reach_words
from synth.generator.dataset import Dataset
from synth.generator.imaging import resize_mask  # noqa: F401  (also this module's API)
from synth.generator.run_folder import RunFolder
from synth.generator.sampling import capped, read_frames, realism_sample, share  # noqa: F401  (also this module's API)
from synth.rng import JUDGE_SAMPLE_STREAM, PATCH_STREAM, fork_rng


class EvaluateError(UserError):
    """A mistake in what `synth evaluate` was asked to do."""


# --------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class Budget:
    """Everything that sets the cost, and so the precision, of an evaluation."""

    name: str
    frames_synthetic: int | None  # most synthetic frames used (a stratified, seeded share); None: all
    frames_real: int | None  # most frames of each real folder (training and held-out together); None: all
    realism_frames: int | None  # most frames per folder measured for realism and C2ST
    realism_size: int  # side the realism statistics are measured at
    c2st_size: int
    seg_size: int  # U-Net input side (a multiple of 32)
    seg_epochs: int
    seg_batch: int
    patch_size: int  # patch classifier input side
    patch_model: str
    patch_epochs: int
    patch_batch: int
    fractions: tuple[float, ...]  # low-data fractions of the real training split
    holdout: float = 0.3
    contact_frames: int = 8  # frames per folder on the contact sheet


BUDGETS = {
    # A rough answer in under 15 minutes on 2 CPU cores (measured: 126 s wall on 2 idle cores
    # against two real folders, README; 27 CPU-minutes on a loaded machine with a second low-data
    # point, 0.25: the "+ synthetic" arms cost as much as the synthetic-only run each).
    "quick": Budget("quick", frames_synthetic=300, frames_real=300, realism_frames=300, realism_size=128,
                    c2st_size=64, seg_size=64, seg_epochs=3, seg_batch=16, patch_size=64, patch_model="resnet18",
                    patch_epochs=4, patch_batch=32, fractions=(0.1,)),
    # The settings of the figures in docs/RESULTS.md (rows 2, F1c, F3r): 128 px U-Net for 4 epochs,
    # ResNet-18 on 64 px patches for 10 epochs, up to 4,000 synthetic frames, every real frame.
    "standard": Budget("standard", frames_synthetic=4000, frames_real=None, realism_frames=1000, realism_size=128,
                       c2st_size=128, seg_size=128, seg_epochs=4, seg_batch=16, patch_size=64,
                       patch_model="resnet18", patch_epochs=10, patch_batch=32, fractions=(0.05, 0.1, 0.25)),
    "full": Budget("full", frames_synthetic=None, frames_real=None, realism_frames=None, realism_size=128,
                   c2st_size=128, seg_size=128, seg_epochs=10, seg_batch=16, patch_size=64, patch_model="resnet18",
                   patch_epochs=20, patch_batch=32, fractions=(0.01, 0.05, 0.1, 0.25, 0.5)),
}


def _parse_value(key: str, text: str, current):
    """A --set value in the type of the budget field `key` (`current` is its value now)."""
    text = text.strip()
    try:
        if key == "fractions":
            return tuple(float(t) for t in text.split(",") if t.strip())
        if key == "patch_model":
            return text
        if text.lower() in ("none", "all"):
            if key in ("frames_synthetic", "frames_real", "realism_frames"):
                return None
            raise ValueError
        return float(text) if isinstance(current, float) else int(text)
    except ValueError:
        raise EvaluateError(f"--set {key}={text}: not a valid value for {key}") from None


def resolve_budget(name: str, sets: list[str]) -> Budget:
    """The named budget with the --set KEY=VALUE changes applied and checked."""
    if name not in BUDGETS:
        raise EvaluateError(f"unknown --budget {name!r}; choose one of {', '.join(BUDGETS)}")
    b = BUDGETS[name]
    keys = [f.name for f in fields(Budget) if f.name != "name"]
    changes = {}
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            raise EvaluateError(f"--set {item!r}: write KEY=VALUE with KEY one of {', '.join(keys)}")
        changes[key] = _parse_value(key, value, getattr(b, key))
    if changes:
        b = replace(b, name=f"{name} (custom)", **changes)
    from synth.nets.models import CLASSIFIERS

    for key in ("realism_size", "c2st_size", "seg_size", "patch_size", "seg_epochs", "patch_epochs", "seg_batch",
                "patch_batch", "contact_frames"):
        if getattr(b, key) < 1:
            raise EvaluateError(f"budget setting {key} must be at least 1, got {getattr(b, key)}")
    for key in ("frames_synthetic", "frames_real", "realism_frames"):
        if getattr(b, key) is not None and getattr(b, key) < 2:
            raise EvaluateError(f"budget setting {key} must be at least 2 (or none: all frames)")
    if b.seg_size % 32:
        raise EvaluateError(f"seg_size {b.seg_size} must be a multiple of 32 (the U-Net halves it five times)")
    if b.patch_model not in CLASSIFIERS:
        raise EvaluateError(f"patch_model {b.patch_model!r}: choose one of {', '.join(CLASSIFIERS)}")
    if not 0.0 < b.holdout < 1.0:
        raise EvaluateError(f"holdout {b.holdout} must be between 0 and 1")
    if any(not 0.0 < f < 1.0 for f in b.fractions):
        raise EvaluateError("low-data fractions must be between 0 and 1 (0.1 is 10 % of the real training split)")
    return b


# --------------------------------------------------------------------------- config


@dataclass
class EvaluateConfig:
    """Everything `synth evaluate` was asked; written into the report as config.json."""

    synthetic: str
    real: list[str] = field(default_factory=list)
    out: str = "runs/evaluate"
    budget: str = "quick"
    set: list[str] = field(default_factory=list)  # KEY=VALUE changes to the budget
    seed: int = 0
    threads: int = 2
    overwrite: bool = False
    # Realism only (statistics, C2ST, contact sheet: minutes) is the quick loop for tuning a scene;
    # the transfer part (segmenter, patch classifier, low data) says whether it mattered.
    realism_only: bool = False
    # Real folders whose frames (labels unused) re-estimate the synthetic-only U-Net's batch-norm
    # statistics (synth classify --adapt-bn), scored beside the plain network. A --real folder given
    # here lends its training split only.
    adapt_bn: list[str] = field(default_factory=list)

    def validate(self) -> Budget:
        if not self.real:
            raise EvaluateError("no real folder: give at least one --real DIR (a dataset folder of your real "
                                "frames, e.g. from `synth data import`)")
        if self.threads < 1:
            raise EvaluateError("--threads must be at least 1")
        keys = [Path(p).resolve() for p in self.real]
        if len(set(keys)) != len(keys):
            raise EvaluateError("a --real folder is given twice; give each folder once")
        if Path(self.synthetic).resolve() in keys:
            raise EvaluateError(f"{self.synthetic} is both the synthetic and a --real folder; give different folders")
        out = Path(self.out).resolve()
        if out in keys + [Path(self.synthetic).resolve()]:
            raise EvaluateError("--out must not be one of the input folders; choose a new report folder")
        return resolve_budget(self.budget, self.set)


# --------------------------------------------------------------------------- the report folder

# What `synth evaluate` writes into --out; with --overwrite only these are replaced.
OUTPUT_FILES = ("report.json", "report.md", "config.json", "evaluate.log", "contact_sheet.png", "realism.png",
                "colour.png", "radial.png", "transfer.png", "low_data.png")


def _folder(out: str | Path) -> RunFolder:
    return RunFolder(out, command="synth evaluate", names=OUTPUT_FILES, error=EvaluateError)


def check_out(out: str, overwrite: bool) -> Path:
    """The report folder, refused (one line) if it holds anything unless --overwrite, and even then
    if it holds files `synth evaluate` did not write: --overwrite replaces only its own files."""
    folder = _folder(out)
    folder.check()
    folder.refuse_existing(overwrite, foreign_ok=False)
    return folder.path


# --------------------------------------------------------------------------- data


@dataclass
class Folder:
    """One input folder: its name in the report, the dataset, and its role."""

    name: str
    dataset: Dataset
    role: str  # synthetic | real

    @property
    def path(self) -> str:
        return str(self.dataset.root)

    def has_lesions(self) -> bool:
        return self.dataset.has_masks() and any(r.lesion_pixels > 0 for r in self.dataset.records)


def _names(paths: list[str]) -> list[str]:
    """Short, distinct report names for the real folders (their folder names)."""
    base = [Path(p).resolve().name or "real" for p in paths]
    return [b if base.count(b) == 1 else f"{b}-{i + 1}" for i, b in enumerate(base)]


PATCH_CLASSES = ["normal", "lesion"]


def cut_patches(folder: Folder, idx: np.ndarray, size: int, seed: int, threads: int):
    """The patches `synth data patches --seed SEED` would cut from the frames `idx`, at size x size,
    as classifier Arrays (classes normal, lesion)."""
    from synth.classifier.data import Arrays, model_view
    from synth.generator.patches import PatchConfig, choose_windows

    pcfg = PatchConfig(source=folder.path, out="", seed=seed)
    ds = folder.dataset

    def one(i):
        rec = ds.records[i]
        image, mask = ds.image(rec), ds.mask(rec)
        # The same stream as make_patches (keyed by the frame's position in its folder).
        rng = np.random.default_rng(np.random.SeedSequence([seed, PATCH_STREAM, int(i)]))
        out = []
        for label, (y, x, side) in sorted(choose_windows(mask, pcfg, rng, image).items()):
            crop = np.ascontiguousarray(image[y:y + side, x:x + side])
            out.append((label, model_view(crop, size, None), rec.id))
        return out

    with ThreadPoolExecutor(max(1, threads)) as pool:
        rows = [p for ps in pool.map(one, idx) for p in ps]
    n = len(rows)
    images = np.zeros((n, 3, size, size), np.uint8)
    for k, (_, img, _) in enumerate(rows):
        images[k] = img.transpose(2, 0, 1)
    labels = np.array([PATCH_CLASSES.index(r[0]) for r in rows], np.int64)
    origin = [(folder.name, folder.path, f"{r[2]}:{r[0]}") for r in rows]
    return Arrays(images, labels, None, np.ones(n), origin)


def concat(a, b):
    """Two classifier Arrays as one (training sets mixed without weights, as `synth classify` mixes)."""
    from synth.classifier.data import Arrays

    masks = None if a.masks is None or b.masks is None else np.concatenate([a.masks, b.masks])
    return Arrays(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]), masks,
                  np.concatenate([a.weights, b.weights]), a.origin + b.origin)


# --------------------------------------------------------------------------- progress


class Steps:
    """Planned work in rough seconds, so one progress bar covers the whole evaluation."""

    def __init__(self, progress: Callable[[float, float, str], None] | None):
        self.progress = progress
        self.weights: dict[str, float] = {}
        self.done = 0.0
        self.total = 0.0

    def plan(self, key: str, weight: float) -> None:
        weight = max(weight, 0.01)
        self.weights[key] = self.weights.get(key, 0.0) + weight
        self.total += weight

    def start(self, description: str) -> None:
        if self.progress:
            self.progress(self.done, self.total, description)

    def finish(self, key: str, description: str = "") -> None:
        self.done += self.weights.pop(key, 0.0)
        if self.progress:
            self.progress(self.done, self.total, description)

    def end(self) -> None:
        self.done = self.total
        if self.progress:
            self.progress(self.total, self.total, "done")


# --------------------------------------------------------------------------- the evaluation


def _seg_score(m: dict) -> float | None:
    """The segmentation headline: mean Dice over frames with a lesion (all frames if none has one)."""
    return m.get("dice_lesion_images") if m.get("dice_lesion_images") is not None else m.get("dice")


def reached(syn: float | None, real: float | None, chance: float) -> float | None:
    """How much of the real-trained model's gain over chance the synthetic-only one reaches."""
    if syn is None or real is None or real - chance <= 1e-9:
        return None
    return (syn - chance) / (real - chance)


class Evaluation:
    """One run of `synth evaluate`: holds the inputs, the budget and the growing report."""

    def __init__(self, cfg: EvaluateConfig, budget: Budget, log: Callable[[str], None], steps: Steps):
        self.cfg, self.budget, self.steps = cfg, budget, steps
        self.lines: list[str] = []
        self._log = log
        self._t0 = time.time()
        self.synthetic = Folder("synthetic", _open(cfg.synthetic, "synthetic"), "synthetic")
        self.reals = [Folder(n, _open(p, "--real"), "real") for n, p in zip(_names(cfg.real), cfg.real)]
        self.payload: dict = {
            "command": "synth evaluate",
            "config": asdict(cfg),
            "budget": asdict(budget),
            "synthetic": self._describe(self.synthetic),
            "real": [self._describe(f) for f in self.reals],
            "realism": {"folders": {}},
            "transfer": {},
            "low_data": {},
            "skipped": [],
        }
        self.contact: dict[str, list[np.ndarray]] = {}
        self.folder_stats: dict = {}

    # ---- logging: on screen and into evaluate.log

    def say(self, line: str) -> None:
        self.lines.append(f"[{time.time() - self._t0:7.1f} s] {line}")
        self._log(line)

    def quiet(self, line: str) -> None:
        self.lines.append(f"[{time.time() - self._t0:7.1f} s]   {line}")

    def skip(self, folder: str, part: str, why: str) -> None:
        line = f"{folder}: {part} skipped: {why}"
        self.payload["skipped"].append({"folder": folder, "part": part, "reason": why})
        self.say(line)

    @staticmethod
    def _describe(f: Folder) -> dict:
        ds = f.dataset
        return {"name": f.name, "path": f.path, "frames": len(ds), "kind": ds.manifest.get("kind"),
                "masks": ds.has_masks(), "lesion_frames": sum(r.lesion_pixels > 0 for r in ds.records)}

    # ---- planning

    def plan(self) -> None:
        b, s = self.budget, self.steps
        transfer = not self.cfg.realism_only
        n_syn = len(capped(self.synthetic.dataset, np.arange(len(self.synthetic.dataset)), b.frames_synthetic, 0))
        for f in [self.synthetic] + self.reals:
            s.plan(f"realism:{f.name}", 0.01 * len(realism_sample(f.dataset, b.realism_frames, 0)))
        seg_cost = 0.03 * (b.seg_size / 64) ** 2
        for f in self.reals:
            s.plan(f"c2st:{f.name}", 1.0)
            if not transfer or not self._transferable(f, announce=False):
                continue
            n_real = len(capped(f.dataset, np.arange(len(f.dataset)), b.frames_real, 0))
            pool = (1 - b.holdout) * n_real
            runs = [n_syn, pool] + [x for fr in b.fractions for x in (fr * pool, n_syn + fr * pool)]
            s.plan(f"seg:{f.name}", sum(runs) * b.seg_epochs * seg_cost + 0.01 * (n_real + n_syn))
            s.plan(f"patch:{f.name}", sum(runs) * 1.5 * b.patch_epochs * 0.015 + 0.01 * (n_real + n_syn))

    def _transferable(self, f: Folder, *, announce: bool = True) -> bool:
        why = None
        if not f.has_lesions():
            why = ("it has no lesion masks (import real frames with their masks: "
                   "`synth data import DIR --layout pairs`)" if not f.dataset.has_masks()
                   else "its masks hold no lesion pixels")
        elif not self.synthetic.has_lesions():
            why = f"the synthetic folder {self.synthetic.path} has no lesion masks"
        if why and announce:
            self.skip(f.name, "segmentation and patch classifier (transfer, low data)", why)
        return why is None

    # ---- part 1: realism

    def realism(self) -> None:
        from synth.classifier.data import fov_mask, model_view
        from synth.measure import realism as R
        from synth.measure.c2st import c2st

        b, seed = self.budget, self.cfg.seed
        keep = fov_mask(b.c2st_size, R.FOV_RADIUS)
        c2st_images = {}
        for f in [self.synthetic] + self.reals:
            self.steps.start(f"realism: measuring {f.name}")
            idx = realism_sample(f.dataset, b.realism_frames, seed)
            frames = read_frames(f.dataset, idx, self.cfg.threads)
            imgs = [model_view(img, b.realism_size, None) for img, _ in frames]
            masks = [None if m is None else resize_mask(m, b.realism_size) for _, m in frames]
            stats = R.folder_statistics(imgs, masks, ids=[f.dataset.records[i].id for i in idx])
            self.folder_stats[f.name] = stats
            c2st_images[f.name] = np.stack([model_view(img, b.c2st_size, keep) for img, _ in frames])
            self.contact[f.name] = [img for img, _ in frames[: b.contact_frames]]
            self.steps.finish(f"realism:{f.name}")
        syn = self.folder_stats["synthetic"]
        self.payload["realism"]["synthetic"] = syn.summary()
        self.payload["realism"]["field_of_view"] = {
            "radius": R.FOV_RADIUS, "border_dark": R.BORDER_DARK, "size": b.realism_size,
            "rule": "inside a centred circle of radius 0.44 x side, minus black pixels joined to its outside"}
        for f in self.reals:
            self.steps.start(f"realism: C2ST synthetic vs {f.name}")
            real = self.folder_stats[f.name]
            entry = {"summary": real.summary(), **R.compare(syn, real)}
            try:
                entry["c2st"] = c2st(c2st_images[f.name], c2st_images["synthetic"], seed=seed)
            except UserError as e:
                entry["c2st"] = {"c2st_accuracy": None, "note": str(e)}
            self.payload["realism"]["folders"][f.name] = entry
            top = [g for g in entry["gaps"] if g["severity"] in ("large", "medium")][:3]
            acc = entry["c2st"].get("c2st_accuracy")
            self.say(f"{f.name}: C2ST {acc:.3f} (0.5: indistinguishable)" if acc is not None
                     else f"{f.name}: C2ST n/a ({entry['c2st']['note']})")
            for g in top:
                self.say(f"  {g['reading']} ({g['severity']} gap, SMD {g['smd']:+.2f})" if g["smd"] is not None
                         else f"  {g['reading']}")
            self.steps.finish(f"c2st:{f.name}")

    # ---- parts 2 and 3: transfer and low data

    def transfer(self) -> None:
        import torch

        torch.set_num_threads(self.cfg.threads)
        for f in self.reals:
            if not self._transferable(f):
                continue
            pool, test = self._split(f)
            if len(test) == 0 or len(pool) == 0:
                self.skip(f.name, "segmentation and patch classifier", f"{len(f.dataset)} frames are too few "
                          f"to hold {self.budget.holdout:.0%} out")
                continue
            self.payload["transfer"][f.name] = {"split": {
                "training_frames": int(len(pool)), "held_out_frames": int(len(test)), "holdout": self.budget.holdout,
                "held_out_ids": [f.dataset.records[i].id for i in test]}}
            self.payload["low_data"][f.name] = {}
            self._segmentation(f, pool, test)
            self._patches(f, pool, test)

    def _split(self, f: Folder) -> tuple[np.ndarray, np.ndarray]:
        from synth.generator.splits import holdout_split

        b, seed = self.budget, self.cfg.seed
        pool, test = holdout_split(f.dataset, b.holdout, seed)
        if b.frames_real is not None and len(f.dataset) > b.frames_real:
            frac = b.frames_real / len(f.dataset)
            pool, test = share(f.dataset, pool, frac, seed), share(f.dataset, test, frac, seed)
        return pool, test

    def _synthetic_idx(self) -> np.ndarray:
        ds = self.synthetic.dataset
        return capped(ds, np.arange(len(ds)), self.budget.frames_synthetic, self.cfg.seed)

    def _runs(self, f: Folder, pool_idx: np.ndarray, train_syn, train_pool, train_fn, score_key, chance,
              task: str) -> None:
        """Synthetic only, real only, and the low-data arms for one task; results into the payload."""
        b, seed, ds = self.budget, self.cfg.seed, f.dataset
        row_of = {int(i): k for k, i in enumerate(pool_idx)}
        res_syn = train_fn(train_syn, "synthetic only")
        res_real = train_fn(train_pool, "real training split")
        syn_score, real_score = score_key(res_syn["held_out"]), score_key(res_real["held_out"])
        x = reached(syn_score, real_score, chance)
        adapted = res_syn.get("held_out_adapted_bn")
        entry = {"synthetic_only": res_syn, "real_trained": res_real, "synthetic_reaches": x,
                 "chance": chance, "training_frames": {"synthetic": len(train_syn), "real": len(train_pool)}}
        self.payload["transfer"][f.name][task] = entry
        word = "Dice" if task == "segmentation" else "AUC"
        self.say(f"{f.name} {task}: synthetic only {word} {_fmt(syn_score)}"
                 + (f" ({_fmt(score_key(adapted))} with batch norm adapted to real frames)" if adapted else "")
                 + f", real-trained {_fmt(real_score)}" + (f": {reach_words(x)}" if x is not None else ""))
        points = []
        for fr in b.fractions:
            idx = share(ds, pool_idx, fr, seed)
            rows = [row_of[int(i)] for i in idx]
            point = {"fraction": fr, "real_frames": int(len(idx))}
            if rows:
                part = train_pool.subset(rows)
                alone = train_fn(part, f"real {fr:g}")
                mixed = train_fn(concat(train_syn, part), f"real {fr:g} + synthetic")
                point.update({"real_only": alone["held_out"], "real_plus_synthetic": mixed["held_out"],
                              "training_items": {"real": len(part), "synthetic": len(train_syn)}})
                a, m = score_key(alone["held_out"]), score_key(mixed["held_out"])
                self.say(f"{f.name} {task}, {fr:.0%} real ({len(idx)} frames): {word} {_fmt(a)} alone, "
                         f"{_fmt(m)} with synthetic")
            else:
                point.update({"real_only": None, "real_plus_synthetic": None})
                self.say(f"{f.name} {task}, {fr:.0%} real: no frames at this fraction")
            points.append(point)
        self.payload["low_data"][f.name][task] = {"metric": word, "points": points}

    def _adapt_frames(self, f: Folder, pool: np.ndarray, names: list[str], kw: dict) -> np.ndarray:
        """The --adapt-bn frames prepared as the segmenter's inputs: every frame of each folder, or
        only the training split of the real folder under test (never its held-out frames)."""
        from synth.classifier.data import Selection, SourceSpec, load_arrays

        sels = []
        for path in self.cfg.adapt_bn:
            ds = _open(path, "--adapt-bn")
            idx = pool if Path(path).resolve() == Path(f.path).resolve() else np.arange(len(ds))
            sels.append(Selection(SourceSpec("adapt-bn", path), ds, idx))
        return load_arrays(sels, names, **{**kw, "with_masks": False}).images

    def _segmentation(self, f: Folder, pool: np.ndarray, test: np.ndarray) -> None:

        from synth.classifier.data import Selection, SourceSpec, load_arrays
        from synth.nets.models import build_segmenter
        from synth.classifier.segment import evaluate_segmenter, fit_segmenter
        from synth.classifier.train import ClassifyConfig, adapt_batchnorm

        b, seed = self.budget, self.cfg.seed
        key = f"seg:{f.name}"
        self.steps.start(f"{f.name}: loading frames for segmentation")
        names = list(dict.fromkeys(self.synthetic.dataset.class_names + f.dataset.class_names))
        kw = dict(size=b.seg_size, fov="circle", fov_radius=0.44, with_masks=True, threads=self.cfg.threads)
        syn_idx = self._synthetic_idx()
        train_syn = load_arrays([Selection(SourceSpec("synthetic", self.synthetic.path), self.synthetic.dataset,
                                           syn_idx)], names, **kw)
        train_pool = load_arrays([Selection(SourceSpec(f.name, f.path), f.dataset, pool)], names, **kw)
        held = load_arrays([Selection(SourceSpec(f.name, f.path), f.dataset, test)], names, **kw)
        scfg = ClassifyConfig(train=[], test=[], out=self.cfg.out, model="unet", size=b.seg_size, epochs=b.seg_epochs,
                              batch_size=b.seg_batch, lr=1e-3, fov="circle", fov_radius=0.44, online_aug=True,
                              eval_each_epoch=False, seed=seed, threads=self.cfg.threads)

        def train(arrays, what):
            self.steps.start(f"{f.name}: segmentation, {what} ({len(arrays)} frames, {b.seg_epochs} epochs)")
            with fork_rng(seed):  # the same initial weights for every run, as in synth classify
                model, _ = build_segmenter("unet")
            fit_segmenter(model, arrays, {}, scfg, self.quiet)
            out = {"held_out": _seg_summary(evaluate_segmenter(model, held, scfg, names))}
            if what == "synthetic only":  # it saw no real frame: every real frame is a fair test
                out["all_real_frames"] = _seg_summary(evaluate_segmenter(model, concat(train_pool, held), scfg, names))
                if self.cfg.adapt_bn:  # the same network, batch norm re-estimated on unlabelled real frames
                    adapt_batchnorm(model, self._adapt_frames(f, pool, names, kw), scfg.batch_size)
                    out["held_out_adapted_bn"] = _seg_summary(evaluate_segmenter(model, held, scfg, names))
            return out

        self._runs(f, pool, train_syn, train_pool, train, _seg_score, 0.0, "segmentation")
        self.steps.finish(key)

    def _patches(self, f: Folder, pool: np.ndarray, test: np.ndarray) -> None:
        import torch

        from synth.nets.models import build_model, split_head
        from synth.classifier.train import ClassifyConfig, default_lr, evaluate, fit, to_input
        from synth.measure import MetricError
        from synth.measure.frechet import frechet_distance

        b, seed, th = self.budget, self.cfg.seed, self.cfg.threads
        key = f"patch:{f.name}"
        self.steps.start(f"{f.name}: cutting lesion and lesion-free patches")
        train_syn = cut_patches(self.synthetic, self._synthetic_idx(), b.patch_size, seed, th)
        train_pool = cut_patches(f, pool, b.patch_size, seed, th)
        held = cut_patches(f, test, b.patch_size, seed, th)
        counts = {n: {c: int((a.labels == k).sum()) for k, c in enumerate(PATCH_CLASSES)}
                  for n, a in (("synthetic", train_syn), ("real training split", train_pool), ("held out", held))}
        self.quiet(f"patches: {counts}")
        if min(len(np.unique(a.labels)) for a in (train_syn, train_pool, held)) < 2:
            self.skip(f.name, "patch classifier", f"the patches lack a class ({counts}); more frames with "
                      "room for a lesion-free window are needed")
            self.steps.finish(key)
            return
        pcfg = ClassifyConfig(train=[], test=[], out=self.cfg.out, model=b.patch_model, size=b.patch_size,
                              epochs=b.patch_epochs, batch_size=b.patch_batch, lr=default_lr(b.patch_model),
                              fov="none", online_aug=True, eval_each_epoch=False, seed=seed, threads=th)
        models = {}

        def train(arrays, what):
            self.steps.start(f"{f.name}: patch classifier, {what} ({len(arrays)} patches, {b.patch_epochs} epochs)")
            with fork_rng(seed):
                model, _ = build_model(b.patch_model, 2, b.patch_size, log=self.quiet)
            fit(model, arrays, pcfg, epochs=b.patch_epochs, lr=pcfg.lr, test={}, class_names=PATCH_CLASSES,
                log=self.quiet, stage=what, seed_offset=1)
            models[what] = model
            tests = {"held_out": held}
            if what == "synthetic only":
                tests["all_real_frames"] = concat(train_pool, held)
            res = evaluate(model, tests, pcfg, PATCH_CLASSES)
            return {k: _cls_summary(m) for k, m in res.items()}

        self._runs(f, pool, train_syn, train_pool, train, lambda m: m.get("auc"), 0.5, "patch_classifier")
        entry = self.payload["transfer"][f.name]["patch_classifier"]
        entry["patches"] = counts

        # The judge: the real-trained classifier's penultimate features, held-out real patches
        # against synthetic ones, beside two halves of the held-out real patches (the floor at this n).
        body, _ = split_head(models["real training split"].eval(), b.patch_model)
        rng = np.random.default_rng(np.random.SeedSequence([seed, JUDGE_SAMPLE_STREAM]))
        half = min(len(held) // 2, len(train_syn))
        judge = {"features": f"penultimate layer of the real-trained {b.patch_model}", "n": half}
        if half >= 2:
            order = rng.permutation(len(held))
            a_rows, b_rows = order[:half], order[half:2 * half]
            s_rows = rng.permutation(len(train_syn))[:half]

            def feats(images):
                with torch.no_grad():
                    return np.concatenate([body(to_input(images[i:i + 256], pcfg, train=False)).numpy()
                                           for i in range(0, len(images), 256)])

            try:
                fb = feats(held.images[b_rows])
                judge["fd_synthetic"] = frechet_distance(feats(train_syn.images[s_rows]), fb)
                judge["fd_real_floor"] = frechet_distance(feats(held.images[a_rows]), fb)
            except MetricError as e:
                judge["note"] = str(e)
        else:
            judge["note"] = "too few held-out patches for the judge's Fréchet distance"
        self.payload["realism"]["folders"][f.name]["judge"] = judge
        if "fd_synthetic" in judge:
            self.say(f"{f.name}: judge's Fréchet distance {judge['fd_synthetic']:.1f} (real against real: "
                     f"{judge['fd_real_floor']:.1f}, {half} patches each)")
        self.steps.finish(key)


def _open(path: str, role: str) -> Dataset:
    ds = Dataset.open(path)
    if len(ds) == 0:
        raise EvaluateError(f"{role} folder {path} has no frames")
    return ds


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _seg_summary(m: dict) -> dict:
    keys = ("n", "dice", "iou", "dice_lesion_images", "iou_lesion_images", "dice_pooled", "iou_pooled",
            "precision_pooled", "recall_pooled", "detection_auc")
    return {k: m.get(k) for k in keys if k in m}


def _cls_summary(m: dict) -> dict:
    keys = ("n", "accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1", "confusion_matrix")
    return {k: m.get(k) for k in keys}


# --------------------------------------------------------------------------- entry point


def run_evaluate(cfg: EvaluateConfig, log: Callable[[str], None] = print,
                 progress: Callable[[float, float, str], None] | None = None) -> Path:
    """Evaluate `cfg.synthetic` against every `cfg.real` folder and write the report folder `cfg.out`.

    `log` gets one line per finished measurement; `progress(done, total, what)` is called as the
    work goes (rough seconds). Returns the report folder.
    """
    budget = cfg.validate()
    out = check_out(cfg.out, cfg.overwrite)  # fail before any work, not after
    steps = Steps(progress)
    ev = Evaluation(cfg, budget, log, steps)
    t0 = time.time()
    ev.plan()
    ev.say(f"evaluating {ev.synthetic.path} against {', '.join(f.path for f in ev.reals)} "
           f"(budget {budget.name}, seed {cfg.seed})")
    ev.realism()
    if not cfg.realism_only:
        ev.transfer()
    else:
        for f in ev.reals:
            ev.skip(f.name, "segmentation and patch classifier (transfer, low data)", "not asked (--realism-only)")
    steps.end()
    ev.payload["seconds"] = round(time.time() - t0, 1)
    ev.payload["answer"] = evaluate_report.answer(ev.payload)
    with _folder(out).staged() as tmp:  # report.json moved in last: with it, the report is complete
        evaluate_report.write(tmp, ev.payload, ev.folder_stats, ev.contact, ev.lines)
    for line in ev.payload["answer"]:
        log(line)
    log(f"report written to {out} ({ev.payload['seconds']:.0f} s)")
    return out
