"""`synth calibrate`: fit scene distributions so that small renders match a real folder.

No bpy in this process: every trial renders through `run_render` (spawned workers), exactly as
`synth render` does. A render-and-compare search (the practical form of Meta-Sim's idea, Kar et
al. 2019): Optuna's TPE sampler proposes values for the chosen scene parameters, a few dozen small
frames are rendered with them (the same seed every trial, so trials differ only by the scene), the
realism statistics of `synth.measure.realism` are measured on them and on the real folder, and the
trial's score is the mean of log(1 + |standardised mean difference|) over the statistics those
parameters move (`GROUP_STATS`): the log keeps one far-off statistic from drowning the rest while
still rewarding any step toward it. Reports give the plain mean |SMD| beside it. The study lives in an SQLite file in the work folder, so an interrupted
calibration resumes where it stopped, and a later call with more --trials goes on from there.

Each parameter moves the centre of a scene range and keeps its width (log-centre for the
log-uniform lesion area; for the view mix, one weight per view, normalised to sum 1), clipped to
the key's bounds. The search is local: each parameter within `span` x its plausible range either
side of the starting value (`Param.low`/`high` bound it), because a short budget spent over the
whole range in many dimensions never came near the starting scene again (on Kvasir-SEG, 23
trials over the full ranges of all six groups were all worse than the default scene). `--span 1`
searches the full ranges. The starting scene is trial 0, so the best trial is never worse than the
start on the trial frames; the before/after report measures both on a fresh check render of
another seed.

Outputs: the fitted scene file (`--out`, written last) and, in `<out stem>.calibration/`:
study.db, calibration.json (what was asked; a different calibration there is refused),
report.md and report.json (before/after realism, trials), contact_sheet.png (before, after, real),
realism.png / colour.png / radial.png (the plots of `synth evaluate`), trials.png, and check/ (the
before and after check renders, kept for `synth evaluate`).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from synth import UserError
from synth.classifier import evaluate_report as E
from synth.generator.config import QUALITY_PRESETS, RenderConfig
from synth.generator.dataset import Dataset, read_json, write_json, write_text
from synth.generator.imaging import model_view, resize_mask
from synth.generator.run import run_render
from synth.generator.run_folder import RunFolder
from synth.generator.sampling import read_frames, realism_sample
from synth.generator.scene_config import (HEADER, INT_RANGE, SceneConfig, dumps, resolve_scene,
                                          scene_diff, field_at)
from synth.measure import realism as R
from synth.rng import CALIBRATE_SAMPLER_STREAM


class CalibrateError(UserError):
    """A mistake in what `synth calibrate` was asked to do."""


# --------------------------------------------------------------------------- what can be fitted


@dataclass(frozen=True)
class Param:
    """One searched number: the centre of a scene range (`how` centre or log_centre) or a view weight,
    within [low, high] (its plausible range)."""

    key: str
    low: float
    high: float
    how: str = "centre"

    def box(self, start: float, span: float) -> tuple[float, float]:
        """The search interval: `span` x the plausible range either side of `start` (in log units
        for a log-centre), inside [low, high]."""
        if self.how == "log_centre":
            lo, hi, x = math.log(self.low), math.log(self.high), math.log(start)
            w = span * (hi - lo)
            return math.exp(max(lo, x - w)), math.exp(min(hi, x + w))
        w = span * (self.high - self.low)
        return max(self.low, start - w), min(self.high, start + w)


GROUPS: dict[str, tuple[Param, ...]] = {
    # Colour of the mucosa and its variation within a frame.
    "colour": (Param("mucosa.hue", -0.1, 0.7), Param("mucosa.saturation", 0.1, 0.9),
               Param("mucosa.value", 0.3, 1.0), Param("mucosa.color_variation", 0.0, 0.8)),
    # Exposure and the processor's tone: brightness, contrast, black level, saturation, falloff.
    "tone": (Param("artefacts.exposure", -1.5, 1.5), Param("artefacts.gamma", 0.6, 1.8),
             Param("artefacts.black_level", 0.0, 0.15), Param("artefacts.saturation", 0.6, 1.6),
             Param("artefacts.vignetting", 0.0, 0.8)),
    # Vessel density, width and contrast.
    "vessels": (Param("mucosa.vessels.count", 0, 600), Param("mucosa.vessels.contrast", 0.0, 1.0),
                Param("mucosa.vessels.width_px", 0.5, 4.0), Param("mucosa.vessels.deep_contrast", 0.0, 0.9)),
    # Fine granular colour of the surface (spec version 8).
    "texture": (Param("mucosa.mottle", 0.0, 1.0),),
    # Specular highlights: the wet speckle's strength and count, the clear coat's sharpness.
    "glint": (Param("artefacts.glint_strength", 0.0, 30.0), Param("mucosa.glint_threshold", 0.985, 0.9995),
              Param("mucosa.coat_roughness", 0.01, 0.4)),
    # Lesion size on screen and where it sits.
    "lesion": (Param("lesion.area", 0.005, 0.4, "log_centre"), Param("lesion.position_r2", 0.05, 0.7)),
    # The view mix and how close wall views come.
    "views": (Param("camera.views.lumen", 0.0, 1.0, "weight"), Param("camera.views.oblique", 0.0, 1.0, "weight"),
              Param("camera.views.wall", 0.0, 1.0, "weight"), Param("camera.wall_offset", 0.2, 0.9)),
}
# The realism statistics each group moves: a trial is scored on the union for the chosen groups.
GROUP_STATS: dict[str, tuple[str, ...]] = {
    "colour": ("L_mean", "a_mean", "b_mean", "chroma_mean", "ab_spread"),
    "tone": ("L_mean", "L_std", "centre_minus_edge", "dark_lumen", "chroma_mean"),
    "vessels": ("vessel_density", "high_freq", "edge_density"),
    "texture": ("high_freq", "edge_density", "ab_spread"),
    "glint": ("specular_fraction", "specular_blobs", "specular_blob_size"),
    "lesion": ("lesion_area", "lesion_r"),
    "views": ("dark_lumen", "centre_minus_edge", "L_std", "edge_density"),
}
ALL_PARAMS = {p.key: (g, p) for g, ps in GROUPS.items() for p in ps}
SMD_MISSING = 5.0  # |SMD| counted for a statistic the real folder has and the renders lack (or both constant)


def choose_params(names: list[str]) -> tuple[list[str], list[Param]]:
    """Groups and parameters from --params items (group names or scene keys of GROUPS)."""
    groups, params = [], []
    for name in names:
        if name in GROUPS:
            if name not in groups:
                groups.append(name)
            params += [p for p in GROUPS[name] if p not in params]
        elif name in ALL_PARAMS:
            g, p = ALL_PARAMS[name]
            if g not in groups:
                groups.append(g)
            if p not in params:
                params.append(p)
        else:
            raise CalibrateError(f"--params {name!r} is neither a group ({', '.join(GROUPS)}) nor one of their keys "
                                 f"({', '.join(ALL_PARAMS)})")
    if not params:
        raise CalibrateError("--params is empty; name at least one group, e.g. --params colour")
    return groups, params


# --------------------------------------------------------------------------- scene <-> numbers


def _bounds(key: str) -> tuple[float, float]:
    meta, _ = field_at(key)
    lo = meta["lo"] if meta["lo"] is not None else -math.inf
    hi = meta["hi"] if meta["hi"] is not None else math.inf
    if meta["positive"]:
        lo = max(lo, 1e-6)
    return lo, hi


def current_values(scene: SceneConfig, params: list[Param]) -> dict[str, float]:
    """The numbers `params` stand for in `scene` (its range centres, view weights), clipped to the search box."""
    out = {}
    for p in params:
        v = scene.get(p.key)
        if p.how == "weight":
            x = float(v)
        elif p.how == "log_centre":
            x = math.exp((math.log(v[0]) + math.log(v[1])) / 2)
        else:
            x = (v[0] + v[1]) / 2
        out[p.key] = float(min(max(x, p.low), p.high))
    return out


def apply_values(scene: SceneConfig, params: list[Param], values: dict[str, float]) -> SceneConfig:
    """`scene` with each parameter's range moved to its new centre (width kept, clipped to the key's
    bounds) and the view weights normalised."""
    data = scene.to_dict()
    weights = {}
    for p in params:
        node = data
        *path, last = p.key.split(".")
        for part in path:
            node = node[part]
        x = float(values[p.key])
        if p.how == "weight":
            weights[p.key] = (node, last, x)
            continue
        meta, _ = field_at(p.key)
        lo_b, hi_b = _bounds(p.key)
        a, b = node[last]
        if p.how == "log_centre":
            half = (math.log(b) - math.log(a)) / 2
            a, b = math.exp(math.log(x) - half), math.exp(math.log(x) + half)
        else:
            half = (b - a) / 2
            a, b = x - half, x + half
        a, b = min(max(a, lo_b), hi_b), min(max(b, lo_b), hi_b)
        if meta["kind"] == INT_RANGE:
            a, b = int(round(a)), int(round(b))
        node[last] = [a, b]
    if weights:
        # Weights of a table whose every entry is searched are normalised together; entries searched
        # alone are probabilities (scaled down if they sum above 1) and the others share the rest.
        by_table: dict[int, list] = {}
        for node, last, x in weights.values():
            by_table.setdefault(id(node), [node, {}])[1][last] = x
        for node, ws in by_table.values():
            others = {k: v for k, v in node.items() if k not in ws}
            given = sum(ws.values())
            if not others:
                ws = {k: x / given for k, x in ws.items()} if given > 0 else {k: 1.0 / len(ws) for k in ws}
            else:
                if given > 1.0:
                    ws = {k: x / given for k, x in ws.items()}
                    given = 1.0
                rest, o = 1.0 - given, sum(others.values())
                ws.update({k: (v / o * rest) if o > 0 else rest / len(others) for k, v in others.items()})
            total = sum(ws.values())
            node.update({k: x / total for k, x in ws.items()})  # exactly 1 up to float rounding
    return SceneConfig.from_dict(data, "calibrated scene")


# --------------------------------------------------------------------------- scoring


def abs_smds(gaps: list[dict], stats: tuple[str, ...]) -> list[float]:
    """|SMD| of each of `stats` the real folder has; SMD_MISSING where the renders lack it."""
    by = {g["statistic"]: g for g in gaps}
    vals = []
    for name in stats:
        g = by[name]
        if g["n_real"] == 0:
            continue
        vals.append(SMD_MISSING if g["n_synthetic"] == 0 or g["smd"] is None else abs(g["smd"]))
    return vals


def score(gaps: list[dict], stats: tuple[str, ...]) -> float:
    """The search's objective: mean log(1 + |SMD|) over `stats` (lower is better, 0 a perfect match)."""
    vals = abs_smds(gaps, stats)
    return float(np.mean(np.log1p(vals))) if vals else math.nan


def mean_abs_smd(gaps: list[dict], stats: tuple[str, ...]) -> float:
    """The realism gap in plain units: mean |SMD| over `stats`."""
    vals = abs_smds(gaps, stats)
    return float(np.mean(vals)) if vals else math.nan


def stats_for(groups: list[str], real_has_lesions: bool) -> tuple[str, ...]:
    out: list[str] = []
    for g in groups:
        for s in GROUP_STATS[g]:
            if s not in out and (real_has_lesions or not s.startswith("lesion")):
                out.append(s)
    return tuple(out)


# --------------------------------------------------------------------------- config


@dataclass
class CalibrateConfig:
    real: str
    out: str
    params: list[str] = field(default_factory=lambda: list(GROUPS))
    trials: int = 40
    frames: int = 24
    check_frames: int | None = None  # frames of each before/after check render (default: --frames)
    resolution: int = 64
    # Each trial frame its own lumen: scene-level draws (the mucosa's colour, vessels) then average
    # over as many scenes as frames, not frames / 4 (with 4, 24 frames held 6 mucosa colours).
    frames_per_scene: int = 1
    quality: str = "default"
    samples: int | None = None
    real_frames: int = 200
    lesion_prob: float | None = None  # default: the real folder's share of lesion frames
    scene: str | None = None
    set: list[str] = field(default_factory=list)
    span: float = 0.25  # search each parameter within span x its plausible range of the start (1: all of it)
    seed: int = 0
    overwrite: bool = False

    @property
    def work(self) -> Path:
        out = Path(self.out)
        return out.parent / f"{out.stem}.calibration"

    def validate(self) -> "CalibrateConfig":

        for name, v, lo in (("--trials", self.trials, 1), ("--frames", self.frames, 1),
                            ("--real-frames", self.real_frames, 2)):
            if not isinstance(v, int) or v < lo:
                raise CalibrateError(f"{name} must be at least {lo}, got {v}")
        if self.frames_per_scene < 1:
            raise CalibrateError(f"--frames-per-scene must be at least 1, got {self.frames_per_scene}")
        if self.check_frames is not None and self.check_frames < 1:
            raise CalibrateError(f"--check-frames must be at least 1, got {self.check_frames}")
        if not 16 <= self.resolution <= 512:
            raise CalibrateError(f"--resolution must be between 16 and 512 (calibration renders are small), "
                                 f"got {self.resolution}")
        if self.quality not in QUALITY_PRESETS:
            raise CalibrateError(f"--quality must be one of {', '.join(QUALITY_PRESETS)}, got {self.quality!r}")
        if self.samples is not None and self.samples < 1:
            raise CalibrateError(f"--samples must be positive, got {self.samples}")
        if self.lesion_prob is not None and not 0.0 <= self.lesion_prob <= 1.0:
            raise CalibrateError(f"--lesion-prob must be between 0 and 1, got {self.lesion_prob}")
        if self.seed < 0:
            raise CalibrateError(f"--seed must be zero or positive, got {self.seed}")
        if not 0.0 < self.span <= 1.0:
            raise CalibrateError(f"--span must be above 0 and at most 1 (a share of each parameter's range), "
                                 f"got {self.span}")
        if Path(self.out).suffix != ".toml":
            raise CalibrateError(f"--out {self.out} must be a .toml file (the fitted scene)")
        if Path(self.out).is_dir():
            raise CalibrateError(f"--out {self.out} is a folder; give the scene file to write, e.g. {self.out}/scene.toml")
        if Path(self.out).exists() and not self.overwrite:
            raise CalibrateError(f"{self.out} exists; pass --overwrite to replace it or choose another --out")
        choose_params(self.params)
        return self

    def identity(self, base: SceneConfig, real_resolved: str, lesion_prob: float) -> dict:
        """What makes two calibrations the same study (--trials may grow, --overwrite is not a setting)."""
        d = asdict(self)
        for k in ("trials", "overwrite", "out", "scene", "set", "check_frames"):
            d.pop(k)
        d.update(real=real_resolved, lesion_prob=lesion_prob, base_scene=base.to_dict())
        return d


# --------------------------------------------------------------------------- measuring


def measure_folder(root: Path, size: int, most: int | None, seed: int, threads: int = 2):
    """Realism statistics of a dataset folder's frames (a seeded sample of `most`) at size x size,
    and its first frames for the contact sheet."""
    ds = Dataset.open(root)
    idx = realism_sample(ds, most, seed)
    frames = read_frames(ds, idx, threads)
    imgs = [model_view(img, size, None) for img, _ in frames]
    masks = [None if m is None else resize_mask(m, size) for _, m in frames]
    stats = R.folder_statistics(imgs, masks, ids=[ds.records[i].id for i in idx])
    return stats, imgs[:8]


def render_scene(scene: SceneConfig, out: Path, cfg: CalibrateConfig, n: int, seed: int, lesion_prob: float) -> Path:
    """Render `n` frames of `scene` into `out` through the normal render path (resumes a same run)."""
    rc = RenderConfig(n=n, out=str(out), lesion_prob=lesion_prob, seed=seed, resolution=cfg.resolution,
                      quality=cfg.quality, samples=cfg.samples, frames_per_scene=cfg.frames_per_scene,
                      scene=scene.to_dict())
    run_render(rc, overwrite=True, quiet=True)
    return out


# --------------------------------------------------------------------------- the search


def _sampler(seed: int, k: int, n_startup: int):
    import optuna

    # Reseeded per trial from (seed, trial number): a resumed study proposes what an uninterrupted one would.
    s = int(np.random.SeedSequence([seed, CALIBRATE_SAMPLER_STREAM, k]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=s, n_startup_trials=n_startup, multivariate=True)


def _study(work: Path, sampler):
    import optuna

    return optuna.create_study(storage=f"sqlite:///{work / 'study.db'}", study_name="calibrate",
                               direction="minimize", sampler=sampler, load_if_exists=True)


WORK_FILES = ("study.db", "calibration.json", "report.md", "report.json", "contact_sheet.png", "realism.png",
              "colour.png", "radial.png", "trials.png")
WORK_DIRS = ("trials", "check")


def _prepare_work(cfg: CalibrateConfig, ident: dict) -> Path:
    """The work folder: new, the same calibration (resumed), or refused / cleared with --overwrite."""
    work = cfg.work
    folder = RunFolder(work, command="synth calibrate", names=WORK_FILES + WORK_DIRS, error=CalibrateError,
                       config="calibration.json")
    folder.check()
    diff = folder.differing_keys(ident)
    if diff:
        if "base_scene" in diff:
            old = read_json(work / "calibration.json")
            diff.remove("base_scene")
            diff += ["scene: " + ", ".join(scene_diff(old.get("base_scene") or {}, ident["base_scene"])[:4])]
        if not cfg.overwrite:
            raise CalibrateError(f"{work} holds a different calibration (differs in: {'; '.join(diff)}); "
                                 "pass --overwrite to start again or choose another --out")
        folder.clear()
    elif diff is None and not folder.is_empty():
        if folder.foreign() or not cfg.overwrite:
            raise CalibrateError(f"{work} is not empty and holds no calibration; choose another --out")
        folder.clear()
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "calibration.json", ident)
    return work


def run_calibrate(cfg: CalibrateConfig, log: Callable[[str], None] = print,
                  progress: Callable[[int, int, float | None, str], None] | None = None) -> dict:
    """Fit the chosen scene parameters to the real folder; returns the report payload."""
    import optuna


    cfg.validate()
    t0 = time.perf_counter()
    base = resolve_scene(cfg.scene, cfg.set)
    groups, params = choose_params(cfg.params)
    try:
        real_ds = Dataset.open(cfg.real)
    except UserError as e:
        raise CalibrateError(f"--real {cfg.real}: {e}") from None
    real_has_lesions = real_ds.has_masks() and any(r.lesion_pixels > 0 for r in real_ds.records)
    if "lesion" in groups and not real_has_lesions:
        if "lesion" in cfg.params or any(p.key in cfg.params for p in GROUPS["lesion"]):
            raise CalibrateError(f"--params lesion needs lesion masks in --real {cfg.real}; it has none")
        groups = [g for g in groups if g != "lesion"]
        params = [p for p in params if ALL_PARAMS[p.key][0] != "lesion"]
        log(f"{cfg.real} has no lesion masks: lesion size and position are not fitted")
    labels = real_ds.labels()
    lesion_prob = cfg.lesion_prob if cfg.lesion_prob is not None else (
        labels.count("lesion") / len(labels) if "lesion" in labels else 0.0)
    stat_names = stats_for(groups, real_has_lesions)
    work = _prepare_work(cfg, cfg.identity(base, str(Path(cfg.real).resolve()), lesion_prob))

    log(f"measuring {cfg.real} ({min(len(real_ds), cfg.real_frames)} frames at {cfg.resolution} px)")
    real_stats, real_tiles = measure_folder(Path(cfg.real), cfg.resolution, cfg.real_frames, cfg.seed)

    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # multivariate TPE
    n_startup = max(2, min(10, cfg.trials // 4))
    study = _study(work, _sampler(cfg.seed, 0, n_startup))
    complete = lambda s: [t for t in s.get_trials(deepcopy=False)  # noqa: E731
                          if t.state == optuna.trial.TrialState.COMPLETE]
    start = current_values(base, params)
    boxes = {p.key: p.box(start[p.key], cfg.span) for p in params}
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.RUNNING:  # left by a killed run: it never finished
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    done = len(complete(study))
    if done:
        log(f"resuming: {done} of {cfg.trials} trials already in {work / 'study.db'}")

    def best_value(s):
        c = complete(s)
        return min(t.value for t in c) if c else None

    if progress:
        progress(min(done, cfg.trials), cfg.trials, best_value(study), "calibrating")
    while done < cfg.trials:
        study = _study(work, _sampler(cfg.seed, done, n_startup))
        if not any(t.user_attrs.get("start") for t in study.get_trials(deepcopy=False)
                   if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)):
            study.enqueue_trial(start, user_attrs={"start": True})  # trial 0: the scene we start from
        trial = study.ask()
        try:
            values = {p.key: trial.suggest_float(p.key, *boxes[p.key]) for p in params}
            scene = apply_values(base, params, values)
            scratch = work / "trials" / "current"
            render_scene(scene, scratch, cfg, cfg.frames, cfg.seed, lesion_prob)
            syn, _ = measure_folder(scratch, cfg.resolution, None, cfg.seed)
            gaps = R.compare(syn, real_stats)["gaps"]
            value = score(gaps, stat_names)
            trial.set_user_attr("smd", {g["statistic"]: g["smd"] for g in gaps})
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        study.tell(trial, value)
        done += 1
        best = best_value(study)
        if progress:
            progress(done, cfg.trials, best, "calibrating")
    shutil.rmtree(work / "trials", ignore_errors=True)

    trials = complete(study)
    best_trial = min(trials, key=lambda t: (t.value, t.number))
    start_trial = next((t for t in trials if t.user_attrs.get("start")), None)
    fitted = apply_values(base, params, best_trial.params)

    # Before and after on frames no trial saw (another seed): the honest measure of the fit.
    n_check = cfg.check_frames or cfg.frames
    check_seed = cfg.seed + 1
    measured = {}
    tiles = {}
    for name, scene in (("before", base), ("after", fitted)):
        if progress:
            progress(cfg.trials, cfg.trials, best_trial.value, f"check render: {name}")
        root = render_scene(scene, work / "check" / name, cfg, n_check, check_seed, lesion_prob)
        measured[name], tiles[name] = measure_folder(root, cfg.resolution, None, cfg.seed)
    compared = {name: R.compare(s, real_stats) for name, s in measured.items()}
    all_stats = tuple(s.name for s in R.STATISTICS if real_has_lesions or s.group != "lesion")
    real_name = Path(cfg.real).resolve().name or "real"

    payload = {
        "command": "synth calibrate",
        "config": {**asdict(cfg), "work": str(work)},
        "real": {"path": str(cfg.real), "frames": len(real_ds), "measured": real_stats.frames,
                 "masks": real_has_lesions, "name": real_name},
        "lesion_prob": lesion_prob,
        "groups": groups,
        "statistics_fitted": list(stat_names),
        "params": [{"key": p.key, "group": ALL_PARAMS[p.key][0], "how": p.how, "search": list(boxes[p.key]),
                    "before": base.get(p.key), "after": fitted.get(p.key)} for p in params],
        "score": {
            "trial_frames": {"before": start_trial.value if start_trial else None, "after": best_trial.value,
                             "frames": cfg.frames, "seed": cfg.seed},
            "check_frames": {"before": score(compared["before"]["gaps"], stat_names),
                             "after": score(compared["after"]["gaps"], stat_names), "frames": n_check,
                             "seed": check_seed},
            "check_mean_abs_smd": {"before": mean_abs_smd(compared["before"]["gaps"], stat_names),
                                   "after": mean_abs_smd(compared["after"]["gaps"], stat_names)},
            "check_all_statistics_mean_abs_smd": {"before": mean_abs_smd(compared["before"]["gaps"], all_stats),
                                                  "after": mean_abs_smd(compared["after"]["gaps"], all_stats)},
        },
        "realism": {name: c for name, c in compared.items()},
        "best_trial": best_trial.number,
        "trials": [{"number": t.number, "score": t.value, "start": bool(t.user_attrs.get("start")),
                    "params": t.params} for t in sorted(trials, key=lambda t: t.number)],
        "seconds": time.perf_counter() - t0,
    }
    _write_report(work, payload, {**measured, real_name: real_stats},
                  {"before": tiles["before"], "after": tiles["after"], real_name: real_tiles})
    s = payload["score"]["check_mean_abs_smd"]
    header = (f"# Calibrated by `synth calibrate` against {cfg.real}: fitted {', '.join(p.key for p in params)}.\n"
              f"# Realism gap (mean |SMD| of {len(stat_names)} statistics) on a check render: "
              f"{s['before']:.3f} before, {s['after']:.3f} after; report in {work}.\n" + HEADER)
    write_text(Path(cfg.out), dumps(fitted, header=header))
    return payload


# --------------------------------------------------------------------------- report


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(p: dict) -> str:
    sc = p["score"]
    cf, tf, ma, al = sc["check_frames"], sc["trial_frames"], sc["check_mean_abs_smd"], sc["check_all_statistics_mean_abs_smd"]
    c = p["config"]
    out = ["# synth calibrate report", "",
           f"Real: `{p['real']['path']}` ({p['real']['measured']} of {p['real']['frames']} frames measured at "
           f"{c['resolution']} px{', with lesion masks' if p['real']['masks'] else ', no lesion masks'}). "
           f"Fitted groups: {', '.join(p['groups'])}. {len(p['trials'])} trials of {c['frames']} frames "
           f"(seed {c['seed']}, quality {c['quality']}, lesion share {p['lesion_prob']:.2f}); best trial "
           f"{p['best_trial']}; took {p['seconds'] / 60:.1f} min.", "",
           "## The answer", "",
           f"- Realism gap, mean |SMD| over the {len(p['statistics_fitted'])} statistics the fitted parameters move "
           f"({', '.join(p['statistics_fitted'])}), on a check render of {cf['frames']} frames no trial saw "
           f"(seed {cf['seed']}): **{_fmt(ma['before'])} before, {_fmt(ma['after'])} after**.",
           f"- The search's score, mean log(1 + |SMD|) over those statistics: {_fmt(cf['before'])} -> "
           f"{_fmt(cf['after'])} on the check render, {_fmt(tf['before'])} -> {_fmt(tf['after'])} on the trial "
           "frames (the starting scene is trial 0).",
           f"- Mean |SMD| over every statistic: {_fmt(al['before'])} before, {_fmt(al['after'])} after.", ""]
    big = [g for g in p["realism"]["after"]["gaps"] if g["severity"] in ("large", "medium")][:4]
    if big:
        out.insert(-1, "- Largest gaps left: " + "; ".join(f"{g['reading']} (SMD {_fmt(g['smd'])})" for g in big) + ".")
    out += ["![before, after and real frames](contact_sheet.png)", "", "## Fitted parameters", "",
            "| key | group | before | after | searched |", "|---|---|---|---|---|"]
    for q in p["params"]:
        out.append(f"| `{q['key']}` | {q['group']} | {_fmt(q['before'])} | {_fmt(q['after'])} | "
                   f"{q['how']} in {_fmt(q['search'])} |")
    out += ["", "## Realism before and after (check render)", "",
            "SMD: standardised mean difference against the real folder (0.2 small, 0.5 medium, 0.8 large), "
            "as `synth evaluate` reports it. Rows in the order of the gap after calibration.", "",
            "| statistic | real | before | after | SMD before | SMD after | after, in words |",
            "|---|---|---|---|---|---|---|"]
    before = {g["statistic"]: g for g in p["realism"]["before"]["gaps"]}
    for g in p["realism"]["after"]["gaps"]:
        b = before[g["statistic"]]
        mark = " *" if g["statistic"] in p["statistics_fitted"] else ""
        out.append(f"| {g['title']}{mark} | {_fmt(g['mean_real'])} | {_fmt(b['mean_synthetic'])} | "
                   f"{_fmt(g['mean_synthetic'])} | {_fmt(b['smd'])} | {_fmt(g['smd'])} | {g['reading']} |")
    out += ["", "\\* scored during the search.", "",
            "Plots: [per-frame distributions](realism.png), [colour](colour.png), "
            "[brightness from the centre](radial.png), [score per trial](trials.png).", ""]
    return "\n".join(out)


def _write_report(work: Path, payload: dict, stats: dict, tiles: dict) -> None:

    E.contact_sheet(work / "contact_sheet.png", tiles)
    E.realism_plot(work / "realism.png", stats)
    E.colour_plot(work / "colour.png", stats)
    E.radial_plot(work / "radial.png", stats)
    plt = E._plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = [t["number"] for t in payload["trials"]]
    ys = [t["score"] for t in payload["trials"]]
    ax.plot(xs, ys, "o", ms=3, label="trial")
    ax.plot(xs, np.minimum.accumulate(ys), "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("score: mean log(1 + |SMD|)")
    ax.legend(fontsize=8)
    E._save(fig, work / "trials.png")
    write_text(work / "report.md", markdown(payload))
    write_json(work / "report.json", payload)
