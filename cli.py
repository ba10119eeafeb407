"""The `synth` command line: thin Typer commands that build one config and call one function.

Imports only typer at module level so `synth --help` stays instant; torch, bpy and friends are
imported inside the command that needs them. User mistakes (`synth.UserError`) become a one-line
`error: ...` on stderr and exit code 2, never a traceback: one handler, in the root command group
(`_Commands`), catches them for every command and sub-command, so commands simply raise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

from synth import UserError


def fail(message: str) -> None:
    """Print a one-line error and exit 2 (the convention for usage errors)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


class _Commands(typer.core.TyperGroup):
    """The root command group: a `UserError` raised by any command, sub-command or option parser
    becomes `error: ...` and exit code 2. It sits in the group that click invokes, not in `main()`,
    so typer's CliRunner (which calls the app) gets what the installed `synth` script gives."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            fail(str(e))


app = typer.Typer(
    cls=_Commands,
    name="synth",
    help="Labelled synthetic medical images: render, refine, augment, classify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Bring real image collections into the synth dataset format.", no_args_is_help=True)
app.add_typer(data_app, name="data")
scene_app = typer.Typer(help="Scene files: the distributions rendered frames are drawn from.", no_args_is_help=True)
app.add_typer(scene_app, name="scene")


# --------------------------------------------------------------------------- render

SCENE_HELP = "Scene file (TOML) laid over the default scene: the distributions frames are drawn from."
SET_HELP = ("KEY=VALUE: change one scene key after --scene (repeatable), e.g. camera.views.wall=0.4 or "
            "lesion.size_cm.flat=0.3,2.5; `synth scene show` lists the keys.")

QUALITY_HELP = "Quality preset: draft (fast previews), default, or high. --samples overrides its sample count."


@app.command()
def render(
    n: int = typer.Option(16, "--n", help="Number of frames."),
    out: Path = typer.Option(Path("synth-data"), "--out", "-o", help="Dataset folder to write (or resume)."),
    lesion_prob: float = typer.Option(0.5, "--lesion-prob", help="Fraction of frames with a visible lesion."),
    seed: int = typer.Option(0, "--seed", help="Frame i depends only on (seed, i)."),
    resolution: int = typer.Option(256, "--resolution", "-r", help="Square image size in pixels."),
    quality: str = typer.Option("default", "--quality", help=QUALITY_HELP),
    samples: Optional[int] = typer.Option(None, "--samples", help="Cycles samples per pixel (overrides --quality)."),
    frames_per_scene: int = typer.Option(
        4, "--frames-per-scene", help="Camera poses rendered per built lumen (more is faster, less varied)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run found in --out."),
    preview: bool = typer.Option(False, "--preview", help="Also write preview.png, a contact sheet of frames."),
    workers: int = typer.Option(1, "--workers", "-w", help="Rendering processes on this machine."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: render only shard K of N (0-based)."),
    backend: str = typer.Option("local", "--backend", help="local (processes here) or ray (a Ray cluster)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address HOST:PORT (--backend ray)."),
    device: str = typer.Option("cpu", "--device", help="cpu, or gpu (Cycles CUDA/OptiX)."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="Cycles threads per process (default: cores/workers; with --backend ray, 1 per task)."
    ),
    frames_per_process: int = typer.Option(
        200, "--frames-per-process", help="Restart a rendering process after this many frames (keeps memory flat)."
    ),
    min_lesion_pixels: Optional[int] = typer.Option(
        None, "--min-lesion-pixels", help="Visible pixels for the label 'lesion' (default: 0.2% of the frame)."
    ),
    lesion_area: Optional[str] = typer.Option(
        None, "--lesion-area",
        help="MIN,MAX apparent area of a lesion as fractions of the frame, drawn log-uniformly (sets the "
             "scene's lesion.area; `synth scene show` prints the default).",
    ),
    overlay_prob: Optional[float] = typer.Option(
        None, "--overlay-prob",
        help="Fraction of frames with the processor's on-screen text and thumbnail box, hidden mask pixels removed "
             "(sets the scene's artefacts.overlay_prob).",
    ),
    scene: Optional[Path] = typer.Option(None, "--scene", help=SCENE_HELP),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Render procedural colonoscopy frames with labels, masks, depth and specs."""
    from synth.generator.config import RenderConfig, parse_area, parse_shard
    from synth.generator.scene_config import resolve_scene

    scene_config = resolve_scene(scene, set_)
    cfg = RenderConfig(
        n=n, out=str(out), lesion_prob=lesion_prob, seed=seed, resolution=resolution, quality=quality,
        samples=samples, frames_per_scene=frames_per_scene, device=device,
        min_lesion_pixels=min_lesion_pixels, lesion_area=parse_area(lesion_area) if lesion_area else None,
        overlay_prob=overlay_prob, scene=scene_config.to_dict(),
    )
    cfg.validate()
    shard_k, shard_n = parse_shard(shard)
    from synth.generator.run import run_render

    run_render(
        cfg, overwrite=overwrite, preview=preview, workers=workers, shard=(shard_k, shard_n),
        backend=backend, address=address, threads=threads, frames_per_process=frames_per_process,
    )


@app.command()
def merge(
    out: Path = typer.Argument(..., help="The dataset folder all shards wrote into."),
    preview: bool = typer.Option(False, "--preview", help="Also write preview.png."),
) -> None:
    """Finalize a dataset rendered in shards: check every frame is there, write index, COCO and manifest."""
    from synth.generator.run import merge_shards

    merge_shards(out, preview=preview)


@scene_app.command("show")
def scene_show(
    scene: Optional[Path] = typer.Option(None, "--scene", help=SCENE_HELP),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    seed: int = typer.Option(0, "--seed", help="Unused (printing a scene draws nothing); every command takes it."),
) -> None:
    """Print the resolved scene file (default, --scene FILE, then each --set) with a comment per key."""
    from synth.generator.scene_config import dumps, resolve_scene

    typer.echo(dumps(resolve_scene(scene, set_)), nl=False)


@app.command()
def calibrate(
    real: Path = typer.Option(..., "--real", help="Dataset folder of your real frames (`synth data import`)."),
    out: Path = typer.Option(..., "--out", "-o", help="The fitted scene file to write (.toml); its report goes "
                                                      "to OUT_STEM.calibration/ beside it."),
    params: str = typer.Option("colour,tone,vessels,glint,lesion,views", "--params",
                               help="Comma-separated groups to fit (colour, tone, vessels, glint, lesion, views) "
                                    "or single keys of them (e.g. mucosa.hue)."),
    trials: int = typer.Option(40, "--trials", help="Scenes to try (the first is the starting scene). A later "
                                                    "call with more trials goes on from the stored study."),
    frames: int = typer.Option(24, "--frames", help="Frames rendered per trial (the same seeded frames every trial)."),
    resolution: int = typer.Option(64, "--resolution", "-r", help="Render and measure at this size (real frames "
                                                                  "are resized to it)."),
    frames_per_scene: int = typer.Option(1, "--frames-per-scene", help="Trial frames per built lumen (1: every "
                                                                        "frame its own mucosa colour and vessels)."),
    quality: str = typer.Option("default", "--quality", help=QUALITY_HELP),
    samples: Optional[int] = typer.Option(None, "--samples", help="Cycles samples per pixel (overrides --quality)."),
    real_frames: int = typer.Option(200, "--real-frames", help="Real frames measured (a seeded sample)."),
    check_frames: Optional[int] = typer.Option(None, "--check-frames", help="Frames of the before/after check "
                                                                            "renders (default: --frames)."),
    lesion_prob: Optional[float] = typer.Option(None, "--lesion-prob", help="Share of rendered frames with a "
                                                                            "lesion (default: the real folder's)."),
    scene: Optional[Path] = typer.Option(None, "--scene", help="Scene file to start from (default: the packaged one)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    span: float = typer.Option(0.25, "--span", help="Search each parameter within this share of its plausible range "
                                                    "either side of the starting value (1: the whole range)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the sampler, the trial frames and the real sample."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out and a different calibration's work folder."),
) -> None:
    """Fit scene distributions so small renders match a real folder's realism statistics (Optuna, resumable)."""
    from synth.classifier.calibrate import CalibrateConfig, run_calibrate

    cfg = CalibrateConfig(real=str(real), out=str(out), params=[p.strip() for p in params.split(",") if p.strip()],
                          trials=trials, frames=frames, check_frames=check_frames, resolution=resolution,
                          frames_per_scene=frames_per_scene,
                          quality=quality, samples=samples, real_frames=real_frames, lesion_prob=lesion_prob,
                          scene=str(scene) if scene else None, set=list(set_), span=span, seed=seed,
                          overwrite=overwrite)
    cfg.validate()
    from synth.generator.scene_config import resolve_scene

    resolve_scene(cfg.scene, cfg.set)  # a bad scene fails before anything is written
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task("calibrating", total=trials, best="-")

        def progress(done: int, total: int, best, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what,
                       best="-" if best is None else f"{best:.3f}")

        payload = run_calibrate(cfg, log=lambda line: bar.console.print(line, markup=False, highlight=False),
                                progress=progress)
    s = payload["score"]["check_mean_abs_smd"]
    typer.echo(f"realism gap (mean |SMD| of the fitted statistics) on a check render: {s['before']:.3f} before, "
               f"{s['after']:.3f} after; wrote {out} and {payload['config']['work']}/report.md")


# --------------------------------------------------------------------------- data import


@data_app.command("import")
def data_import(
    source: Path = typer.Argument(..., help="Folder (pairs/classes layout) or .npz file."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write."),
    layout: str = typer.Option(
        "auto", "--layout", help="pairs (images/ + masks/), classes (one folder per class), npz (MedMNIST), or auto."
    ),
    label: str = typer.Option("lesion", "--label", help="Label of every frame for --layout pairs."),
    class_names: Optional[str] = typer.Option(None, "--class-names", help="Comma-separated class names, in order."),
    split: str = typer.Option("train", "--split", help="npz split: train, val or test."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Resize every image to NxN."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Import only the first N items (sorted)."),
    seed: int = typer.Option(0, "--seed", help="Recorded for provenance; importing is deterministic."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset in --out."),
) -> None:
    """Import real images (Kvasir-SEG pairs, class folders, MedMNIST .npz) as a synth dataset."""
    from synth.generator.importers import ImportConfig, class_names_arg, import_dataset

    if layout == "auto":
        layout = "npz" if source.suffix == ".npz" else "pairs" if (source / "masks").is_dir() else "classes"
    cfg = ImportConfig(
        source=str(source), out=str(out), layout=layout, label=label, split=split,
        class_names=class_names_arg(class_names), resolution=resolution, limit=limit, seed=seed,
        overwrite=overwrite,
    )
    path = import_dataset(cfg)
    from synth.generator.dataset import Dataset

    ds = Dataset.open(path)
    counts = ds.class_counts()
    typer.echo(f"imported {len(ds)} images into {path} ({', '.join(f'{k}: {v}' for k, v in counts.items())})")


@data_app.command("subset")
def data_subset(
    source: Path = typer.Argument(..., help="Dataset folder to take a share of."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write."),
    fraction: float = typer.Option(..., "--fraction", help="Stratified share of the frames, in (0, 1]: the share "
                                                           "`synth classify --train NAME=SOURCE:FRACTION` uses."),
    seed: int = typer.Option(0, "--seed", help="The --seed of the synth classify run whose share you want."),
    holdout: Optional[float] = typer.Option(None, "--holdout", help="Take the share from the training pool "
                                                                    "left when SOURCE is also the test set "
                                                                    "(synth classify --holdout)."),
    test_part: bool = typer.Option(False, "--test-part", help="With --holdout: take the share from the held-out "
                                                              "test frames instead of the training pool."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset in --out."),
) -> None:
    """Copy the few real frames a low-data run trains on into their own folder (to train a generator on)."""
    from synth.generator.subset import SubsetConfig, make_subset

    counts = make_subset(SubsetConfig(source=str(source), out=str(out), fraction=fraction, seed=seed,
                                      holdout=holdout, test_part=test_part, overwrite=overwrite))
    typer.echo(f"copied {sum(counts.values())} frames of {source} into {out} "
               f"({', '.join(f'{k}: {v}' for k, v in counts.items())})")


@data_app.command("snapshot")
def data_snapshot(
    source: Path = typer.Argument(..., help="A render's --out folder, finished or still rendering."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write."),
    max_frames: Optional[int] = typer.Option(None, "--max", help="Keep at most the first N finished frames "
                                                                 "(by id: the frames a render of N would make)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier snapshot in --out."),
) -> None:
    """Freeze the finished frames of a render as a dataset of their own, to measure before it ends."""
    from synth.generator.snapshot import SnapshotConfig, make_snapshot

    n = make_snapshot(SnapshotConfig(source=str(source), out=str(out), max_frames=max_frames, overwrite=overwrite))
    typer.echo(f"snapshot of {n} finished frames of {source} in {out}")


@data_app.command("patches")
def data_patches(
    source: Path = typer.Argument(..., help="Dataset folder with lesion masks (rendered, or imported pairs)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write (classes normal, lesion)."),
    size: float = typer.Option(0.3, "--size", help="Window side as a fraction of the frame's shorter side."),
    fov_radius: float = typer.Option(0.42, "--fov-radius", help="Windows stay inside this circle (x frame side)."),
    dark: int = typer.Option(20, "--dark", help="Windows avoid pixels darker than this in every channel (0: off)."),
    max_outside: float = typer.Option(0.0, "--max-outside", help="Largest window fraction allowed outside it."),
    min_lesion: float = typer.Option(0.15, "--min-lesion", help="Lesion fraction of a lesion window (or half the lesion)."),
    margin: int = typer.Option(4, "--margin", help="Pixels kept clear around lesions in normal windows."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Resize patches to NxN."),
    seed: int = typer.Option(0, "--seed", help="Chooses among the qualifying windows."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset in --out."),
) -> None:
    """Cut a lesion patch and a lesion-free patch from every frame: both classes from the same frames."""
    from synth.generator.patches import PatchConfig, make_patches

    counts = make_patches(PatchConfig(
        source=str(source), out=str(out), size=size, fov_radius=fov_radius, dark=dark, max_outside=max_outside,
        min_lesion=min_lesion, margin=margin, resolution=resolution, seed=seed, overwrite=overwrite))
    typer.echo(f"{counts['lesion']} lesion and {counts['normal']} normal patches from {counts['frames']} frames "
               f"into {out} (no lesion window in {counts['no_lesion_window']} lesion frames, "
               f"no normal window in {counts['no_normal_window']} frames)")


# --------------------------------------------------------------------------- evaluate


@app.command()
def evaluate(
    synthetic: Path = typer.Argument(..., help="Dataset folder of synthetic frames (rendered, refined, calibrated)."),
    real: List[Path] = typer.Option([], "--real", help="Dataset folder of your real frames (repeatable). Folders "
                                                       "with lesion masks also get the transfer and low-data parts."),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder to write."),
    budget: str = typer.Option("quick", "--budget", help="quick (a rough answer in minutes on a CPU), standard "
                                                         "(the settings docs quote) or full."),
    set_: List[str] = typer.Option([], "--set", help="KEY=VALUE: change one budget setting (e.g. seg_epochs=2, "
                                                     "fractions=0.05,0.1); the report then calls the budget custom."),
    seed: int = typer.Option(0, "--seed", help="Same seed: same splits, samples, weights and numbers."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for torch and image decoding."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier report in --out."),
    realism_only: bool = typer.Option(False, "--realism-only", help="Only the realism part (statistics, C2ST, "
                                                                    "contact sheet: minutes), e.g. while tuning a "
                                                                    "scene; no segmenter or patch classifier."),
    adapt_bn: List[Path] = typer.Option([], "--adapt-bn", help="Real folder(s) whose frames, labels unused, also "
                                        "re-estimate the synthetic-only U-Net's batch-norm statistics, scored "
                                        "beside it; a --real folder lends its training split only."),
) -> None:
    """Will these synthetic frames help on my real data? Realism, transfer and low-data curves in one report."""
    from synth.classifier.evaluate import EvaluateConfig, run_evaluate

    cfg = EvaluateConfig(synthetic=str(synthetic), real=[str(p) for p in real], out=str(out), budget=budget,
                         set=list(set_), seed=seed, threads=threads, overwrite=overwrite,
                         realism_only=realism_only, adapt_bn=[str(p) for p in adapt_bn])
    cfg.validate()  # bad input fails before the progress bar appears
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("evaluating", total=1.0)

        def progress(done: float, total: float, what: str) -> None:
            bar.update(task, completed=done / total if total else 1.0, description=what[:70] or "evaluating")

        run_evaluate(cfg, log=lambda line: bar.console.print(line, markup=False, highlight=False, soft_wrap=True),
                     progress=progress)


# --------------------------------------------------------------------------- other parts

# Each part registers its own commands; these modules import only typer at top level.
from synth.diffusion import commands as _diffusion_commands  # noqa: E402
from synth.classifier import commands as _classifier_commands  # noqa: E402

_diffusion_commands.register(app)
_classifier_commands.register(app)


def main() -> None:
    try:
        app()  # user mistakes are handled in _Commands.invoke
    except KeyboardInterrupt:
        typer.echo("interrupted: finished frames are kept; run the same command again to continue", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
