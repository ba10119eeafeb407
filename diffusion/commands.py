"""CLI commands of the diffusion part. Imports only typer and the torch-free `diffusion.config` at
module level (`synth --help` stays instant).

Each command builds one config dataclass and calls one importable function; user mistakes
(`synth.UserError`) propagate to the root command group of cli.py, which prints them as one line
and exits with code 2. `synth diffusion train` takes its option defaults from `TrainConfig`, and
`synth vae train` / `synth gan train` theirs from `VAETrainConfig` / `GANTrainConfig`, so the
command line and the code cannot drift apart.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import List, Optional

import typer

from synth.diffusion.config import GENERATIVE_CONFIGS, GENERATIVE_METHODS, TrainConfig

_TRAIN = TrainConfig(data=[], out="")  # the defaults of `synth diffusion train`


def _ints(text: str, flag: str) -> tuple[int, ...]:
    from synth import UserError

    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{flag} takes comma-separated integers, got {text!r}") from None


def _names(text: Optional[str]) -> Optional[list[str]]:
    if not text:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


SAMPLER_HELP = "ddpm, ddim or dpm++ (DPM-Solver++)."
STEPS_HELP = "Sampling steps (default: ddpm 1000, ddim 50, dpm++ 20)."
JUDGE_HELP = ("A `synth classify --save-model` report trained on real images: adds the Fréchet distance on its "
              "features and the class agreement of samples (no downloaded weights needed).")


# --------------------------------------------------------------------------- train


def train_cmd(
    data: List[Path] = typer.Option(..., "--data", "-d", help="Dataset folder(s) to learn from (repeatable)."),
    out: Path = typer.Option(..., "--out", "-o", help="Training run folder (checkpoints, plots, model/)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Resize frames to NxN."),
    condition: str = typer.Option(_TRAIN.condition, "--condition", help="Class condition: label, domain (real/rendered) or none."),
    mask: bool = typer.Option(_TRAIN.mask, "--mask/--no-mask", help="Condition on the lesion mask (extra input channel)."),
    crop: Optional[int] = typer.Option(_TRAIN.crop, "--crop", help="Learn random NxN crops of the frames (at "
                                       "--resolution) instead of whole frames: a texture model without "
                                       "attention that `synth refine` applies to whole frames."),
    crop_radius: Optional[float] = typer.Option(_TRAIN.crop_radius, "--crop-radius", help="Crops lie inside the "
                                                "central circle of this radius (fraction of half the side; "
                                                "default 0.88), away from borders and on-screen text."),
    channels: str = typer.Option(",".join(map(str, _TRAIN.channels)), "--channels",
                                 help="U-Net widths per level, comma-separated."),
    layers_per_block: int = typer.Option(_TRAIN.layers_per_block, "--layers-per-block"),
    attention: bool = typer.Option(_TRAIN.attention, "--attention/--no-attention", help="Self-attention at the lowest level."),
    schedule: str = typer.Option(_TRAIN.schedule, "--schedule", help="Noise schedule: cosine or linear."),
    prediction: str = typer.Option(_TRAIN.prediction, "--prediction", help="v or epsilon (the network's target)."),
    learned_variance: bool = typer.Option(_TRAIN.learned_variance, "--learned-variance", help="Learn the variance (improved DDPM hybrid loss)."),
    timesteps: int = typer.Option(_TRAIN.timesteps, "--timesteps", help="Diffusion timesteps."),
    steps: int = typer.Option(_TRAIN.steps, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(_TRAIN.batch_size, "--batch-size", "-b"),
    grad_accum: int = typer.Option(_TRAIN.grad_accum, "--grad-accum", help="Micro-batches per optimizer step."),
    lr: float = typer.Option(_TRAIN.lr, "--lr"),
    warmup_steps: int = typer.Option(_TRAIN.warmup_steps, "--warmup-steps"),
    ema_decay: float = typer.Option(_TRAIN.ema_decay, "--ema-decay"),
    class_dropout: float = typer.Option(_TRAIN.class_dropout, "--class-dropout", help="Label drop rate (classifier-free guidance)."),
    mixed_precision: str = typer.Option(_TRAIN.mixed_precision, "--mixed-precision", help="no, fp16 (GPU) or bf16."),
    checkpoint_every: int = typer.Option(_TRAIN.checkpoint_every, "--checkpoint-every"),
    sample_steps: int = typer.Option(_TRAIN.sample_steps, "--sample-steps", help="DDIM steps of the sample grid per checkpoint."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N frames of each folder."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run in --out."),
) -> None:
    """Train a class- (and optionally mask-) conditioned DDPM U-Net."""
    from synth.diffusion.train import TrainConfig, train

    cfg = TrainConfig(
        data=[str(d) for d in data], out=str(out), resolution=resolution, condition=condition,
        channels=_ints(channels, "--channels"), layers_per_block=layers_per_block, attention=attention,
        mask=mask, crop=crop, crop_radius=crop_radius, learned_variance=learned_variance, schedule=schedule, prediction=prediction,
        timesteps=timesteps, steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        warmup_steps=warmup_steps, ema_decay=ema_decay, class_dropout=class_dropout,
        mixed_precision=mixed_precision, checkpoint_every=checkpoint_every, sample_steps=sample_steps,
        seed=seed, limit=limit,
    )
    run = train(cfg, overwrite=overwrite, resume=resume, log=typer.echo)
    typer.echo(f"model saved in {run / 'model'}")


# --------------------------------------------------------------------------- sample / augment


def augment_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="Model folder or training run folder (from `synth "
                                                            "diffusion train`, `synth vae train` or `synth gan train`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write."),
    n: int = typer.Option(100, "--n", help="Samples per class."),
    method: Optional[str] = typer.Option(None, "--method", help="ddpm (diffusion), vae or gan (default: what "
                                                                "--model holds; an error if they disagree)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated classes (default: all)."),
    sampler: str = typer.Option("ddim", "--sampler", help=SAMPLER_HELP + " Diffusion models only, as are "
                                                                         "--steps, --guidance and --masks-from."),
    steps: Optional[int] = typer.Option(None, "--steps", help=STEPS_HELP),
    guidance: float = typer.Option(2.0, "--guidance", help="Classifier-free guidance scale (1: none)."),
    masks_from: Optional[Path] = typer.Option(None, "--masks-from", help="Dataset to take masks from (mask-conditioned models)."),
    label: str = typer.Option("sample", "--label", help="Label of samples of an unconditional model."),
    filter_judge: Optional[Path] = typer.Option(None, "--filter-judge", help="A `synth classify --save-model` "
                                                "report trained on real images: keep only samples it gives "
                                                "their own class with at least --filter-threshold."),
    filter_threshold: float = typer.Option(0.5, "--filter-threshold", help="Judge probability a sample's class "
                                                                          "needs to be kept, in [0, 1]."),
    filter_cap: int = typer.Option(20, "--filter-cap", help="Stop a class after this many times --n draws "
                                                            "(it then has fewer than --n)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Write N class-conditional samples per class as a dataset (to enlarge a small training set)."""
    from synth.diffusion.augment import AugmentConfig, augment

    cfg = AugmentConfig(model=str(model), out=str(out), n_per_class=n, classes=_names(classes),
                        sampler=sampler, steps=steps, guidance=guidance,
                        masks_from=str(masks_from) if masks_from else None, label=label,
                        batch_size=batch_size, seed=seed, method=method,
                        filter_judge=str(filter_judge) if filter_judge else None,
                        filter_threshold=filter_threshold, filter_cap=filter_cap)
    path = augment(cfg, overwrite=overwrite, log=typer.echo)
    typer.echo(f"wrote samples to {path}")





# --------------------------------------------------------------------------- refine


def refine_cmd(
    rendered: Path = typer.Argument(..., help="Rendered dataset folder to refine."),
    out: Path = typer.Option(..., "--out", "-o", help="Refined dataset folder to write."),
    real: List[Path] = typer.Option([], "--real", help="Real dataset folder(s) (from `synth data import`)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Reuse a trained model (or SD checkpoint for img2img; "
                                                                       "not used by reinhard, histogram, fda)."),
    method: str = typer.Option("sdedit", "--method", help="sdedit, ddib, img2img (diffusion), or reinhard (Lab colour "
                                                          "transfer), histogram (histogram matching), fda (Fourier "
                                                          "domain adaptation): no model, styles from --real."),
    strength: Optional[float] = typer.Option(None, "--strength", help="sdedit/ddib/img2img: noise level to start from, "
                                                                      "in (0, 1], default 0.5. reinhard/histogram/fda: "
                                                                      "blend with the render, in [0, 1], default 1."),
    beta: float = typer.Option(0.01, "--beta", help="fda: half-size of the swapped low-frequency square as a "
                                                    "fraction of the side, in (0, 0.5]."),
    real_holdout: float = typer.Option(0.0, "--real-holdout", help="reinhard/histogram/fda: draw styles only from "
                                                                   "the frames `synth classify --holdout H --seed N` "
                                                                   "trains on (never its test part)."),
    sampler: str = typer.Option("ddim", "--sampler", help=SAMPLER_HELP + " (ddib always uses ddim)"),
    steps: int = typer.Option(50, "--steps", help="Sampling steps for the full noise range."),
    guidance: float = typer.Option(1.5, "--guidance", help="Classifier-free guidance toward the real class."),
    target_class: str = typer.Option("real", "--target-class"),
    source_class: Optional[str] = typer.Option(None, "--source-class", help="Default: the rendered folder's kind."),
    prompt: str = typer.Option("an endoscopy photo", "--prompt", help="Prompt for --method img2img."),
    lora: Optional[Path] = typer.Option(None, "--lora", help="LoRA weights for img2img (from `synth diffusion dreambooth`)."),
    batch_size: int = typer.Option(16, "--batch-size", "-b"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Refine only the first N frames."),
    run: Optional[Path] = typer.Option(None, "--run", help="Training run folder when no --model (default OUT-model)."),
    train_steps: int = typer.Option(2000, "--train-steps"),
    resolution: int = typer.Option(64, "--resolution", "-r", help="Model resolution when training."),
    channels: str = typer.Option("32,64,128", "--channels"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Move rendered frames toward real images; masks, labels and ids are kept."""
    from synth.diffusion.refine import RefineConfig, refine

    cfg = RefineConfig(
        rendered=str(rendered), out=str(out), real=[str(r) for r in real],
        model=str(model) if model else None, method=method, strength=strength, beta=beta,
        real_holdout=real_holdout, sampler=sampler,
        steps=steps, guidance=guidance, target_class=target_class, source_class=source_class,
        prompt=prompt, lora=str(lora) if lora else None, batch_size=batch_size, limit=limit, run=str(run) if run else None,
        train_steps=train_steps, resolution=resolution, channels=_ints(channels, "--channels"), seed=seed,
    )
    path = refine(cfg, overwrite=overwrite, log=typer.echo)
    typer.echo(f"wrote refined frames to {path}")


# --------------------------------------------------------------------------- metrics


def metrics_cmd(
    real: Path = typer.Argument(..., help="Real dataset folder."),
    generated: Path = typer.Argument(..., help="Generated or refined dataset folder."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Compare at NxN (default: the generated size)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use at most N images of each."),
    fid: bool = typer.Option(False, "--fid", help="Also FID and KID (needs Inception weights)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="torch-fidelity Inception weights file."),
    judge: Optional[Path] = typer.Option(None, "--judge", help=JUDGE_HELP),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Realism of a dataset against real images: C2ST accuracy (0.5 = indistinguishable), optionally FID/KID."""
    import json

    from synth.measure.quality import compare_datasets

    res = compare_datasets(str(real), str(generated), resolution=resolution, limit=limit, seed=seed, fid=fid,
                           inception_weights=str(inception_weights) if inception_weights else None,
                           judge=str(judge) if judge else None)
    typer.echo(json.dumps(res))

def evaluate_cmd(
    run: Path = typer.Argument(..., help="Training run folder (its checkpoints are evaluated)."),
    real: Path = typer.Option(..., "--real", help="Real dataset folder to compare with."),
    n: int = typer.Option(200, "--n", help="Samples per checkpoint (one per chosen real frame)."),
    sampler: str = typer.Option("ddim", "--sampler", help=SAMPLER_HELP),
    steps: Optional[int] = typer.Option(25, "--steps", help=STEPS_HELP),
    guidance: float = typer.Option(1.0, "--guidance"),
    target_class: Optional[str] = typer.Option(None, "--target-class", help="Generate only this class."),
    every: int = typer.Option(1, "--every", help="Evaluate every k-th checkpoint."),
    fid: bool = typer.Option(False, "--fid", help="Also FID and KID (needs Inception weights)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights"),
    judge: Optional[Path] = typer.Option(None, "--judge", help=JUDGE_HELP),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Quality per checkpoint: writes metrics.csv, metrics.json and metrics.png into the run."""
    from synth.diffusion.evaluate import EvaluateConfig, evaluate

    cfg = EvaluateConfig(run=str(run), real=str(real), n=n, sampler=sampler, steps=steps, guidance=guidance,
                         target_class=target_class, fid=fid, every=every,
                         inception_weights=str(inception_weights) if inception_weights else None,
                         judge=str(judge) if judge else None, seed=seed)
    evaluate(cfg, log=typer.echo)
    typer.echo(f"wrote {run / 'metrics.csv'} and {run / 'metrics.png'}")


# --------------------------------------------------------------------------- Stable Diffusion


def dreambooth_cmd(
    pretrained: Path = typer.Option(..., "--pretrained", help="Local Stable Diffusion folder (model_index.json)."),
    instance_data: Path = typer.Option(..., "--instance-data", help="Dataset folder of the images to adapt to."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the LoRA weights."),
    instance_prompt: str = typer.Option("a photo of sks polyp", "--instance-prompt"),
    class_prompt: Optional[str] = typer.Option("a photo of a polyp", "--class-prompt", help="Prior preservation prompt."),
    no_prior: bool = typer.Option(False, "--no-prior", help="Train without prior preservation."),
    class_data: Optional[Path] = typer.Option(None, "--class-data", help="Dataset of class images (default: generated)."),
    num_class_images: int = typer.Option(50, "--num-class-images"),
    prior_weight: float = typer.Option(1.0, "--prior-weight"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Use only instance frames with these labels."),
    resolution: int = typer.Option(512, "--resolution", "-r"),
    rank: int = typer.Option(4, "--rank", help="LoRA rank."),
    steps: int = typer.Option(400, "--steps"),
    batch_size: int = typer.Option(1, "--batch-size", "-b"),
    lr: float = typer.Option(1e-4, "--lr"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """DreamBooth-style LoRA fine-tune of a local Stable Diffusion checkpoint (instance + class prompts)."""
    from synth.diffusion.stable import DreamBoothConfig, dreambooth

    cfg = DreamBoothConfig(
        pretrained=str(pretrained), instance_data=str(instance_data), out=str(out),
        instance_prompt=instance_prompt, class_prompt=None if no_prior else class_prompt,
        class_data=str(class_data) if class_data else None, num_class_images=num_class_images,
        prior_weight=prior_weight, labels=_names(labels), resolution=resolution, rank=rank, steps=steps,
        batch_size=batch_size, lr=lr, seed=seed,
    )
    path = dreambooth(cfg, log=typer.echo)
    typer.echo(f"LoRA weights saved in {path}")

def tiny_sd_cmd(
    out: Path = typer.Argument(..., help="Folder to write the pipeline to."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a tiny randomly initialised Stable Diffusion pipeline (offline smoke tests and demos)."""
    from synth.diffusion.stable import make_tiny_pipeline

    typer.echo(f"wrote {make_tiny_pipeline(out, seed=seed)}")


# --------------------------------------------------------------------------- anomaly


def anomaly_cmd(
    data: Path = typer.Argument(..., help="Dataset folder to score."),
    model: Path = typer.Option(..., "--model", "-m", help="Model trained on normal frames."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for heat maps, scores and report."),
    strength: float = typer.Option(0.4, "--strength", help="How far to noise before denoising, in (0, 1]."),
    steps: int = typer.Option(50, "--steps", help="DDIM steps for the full noise range."),
    repeats: int = typer.Option(3, "--repeats", help="Noise draws averaged per frame."),
    normal_class: Optional[str] = typer.Option("normal", "--normal-class", help="Class to denoise under."),
    blur: float = typer.Option(1.0, "--blur", help="Gaussian sigma of the heat map (pixels)."),
    fov: bool = typer.Option(False, "--fov", help="Score only inside the inscribed circle."),
    batch_size: int = typer.Option(16, "--batch-size", "-b"),
    limit: Optional[int] = typer.Option(None, "--limit"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Score how unusual each frame is (noise, denoise as normal, compare); heat maps and AUC vs masks."""
    import json

    from synth.diffusion.anomaly import AnomalyConfig, score

    cfg = AnomalyConfig(model=str(model), data=str(data), out=str(out), strength=strength, steps=steps,
                        repeats=repeats, normal_class=normal_class or None, blur=blur, fov=fov,
                        batch_size=batch_size, limit=limit, seed=seed)
    report = score(cfg, overwrite=overwrite, log=typer.echo)
    typer.echo(json.dumps({k: v for k, v in report.items() if k != "config"}))


def register(app: typer.Typer) -> None:
    """Add this part's commands to the `synth` app."""
    diffusion_app = typer.Typer(help="Train, sample and evaluate diffusion models on synth datasets.",
                                no_args_is_help=True)
    app.add_typer(diffusion_app, name="diffusion")
    diffusion_app.command("train")(train_cmd)
    app.command("augment")(augment_cmd)
    diffusion_app.command("sample")(augment_cmd)
    app.command("refine")(refine_cmd)
    diffusion_app.command("metrics")(metrics_cmd)
    diffusion_app.command("evaluate")(evaluate_cmd)
    diffusion_app.command("dreambooth")(dreambooth_cmd)
    diffusion_app.command("tiny-sd")(tiny_sd_cmd)
    diffusion_app.command("anomaly")(anomaly_cmd)
    for method in GENERATIVE_METHODS:
        _register_generative(app, method)


GENERATIVE_HELP = {
    "vae": ("Class-conditional convolutional VAE: latent and class embedding in, image out; "
            "`synth augment --model RUN` samples it.", "Train a small class-conditional VAE on dataset folders."),
    "gan": ("Class-conditional GAN (DCGAN generator, spectral-norm projection discriminator, hinge loss, "
            "EMA generator); `synth augment --model RUN` samples it.",
            "Train a small class-conditional GAN on dataset folders."),
}


def _register_generative(app: typer.Typer, method: str) -> None:
    """`synth vae train` / `synth gan train`: one command shape, the method's own options and defaults."""
    group = typer.Typer(help=GENERATIVE_HELP[method][0], no_args_is_help=True)
    app.add_typer(group, name=method)
    d = GENERATIVE_CONFIGS[method](data=[], out="")  # this method's defaults

    def train_cmd(
        data: List[Path] = typer.Option(..., "--data", "-d", help="Dataset folder(s) to learn from (repeatable); "
                                                                  "classes are their labels, in their order."),
        out: Path = typer.Option(..., "--out", "-o", help="Training run folder (checkpoints, samples, loss, model/)."),
        resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Resize frames to NxN (a multiple "
                                                                                   "of 2 ** levels)."),
        channels: str = typer.Option(",".join(map(str, d.channels)), "--channels",
                                     help="Conv widths per level, comma-separated; each level halves the image."),
        latent_dim: int = typer.Option(d.latent_dim, "--latent-dim", help="Size of the latent vector."),
        steps: int = typer.Option(d.steps, "--steps", help="Optimizer steps."),
        batch_size: int = typer.Option(d.batch_size, "--batch-size", "-b"),
        lr: float = typer.Option(d.lr, "--lr", help="Adam learning rate" + (" (generator and discriminator)."
                                                                            if method == "gan" else ".")),
        kl_weight: float = typer.Option(getattr(d, "kl_weight", 0.0), "--kl-weight",
                                        help="Weight of the KL term against the summed squared pixel error."),
        ema_decay: float = typer.Option(getattr(d, "ema_decay", 0.0), "--ema-decay",
                                        help="Decay of the EMA generator that is saved and sampled."),
        flip: bool = typer.Option(d.flip, "--flip/--no-flip", help="Random horizontal flips of training images."),
        checkpoint_every: int = typer.Option(d.checkpoint_every, "--checkpoint-every"),
        limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N frames of each folder."),
        seed: int = typer.Option(0, "--seed"),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run in --out."),
    ) -> None:
        from synth.diffusion.generative import train

        extra = {"vae": {"kl_weight": kl_weight}, "gan": {"ema_decay": ema_decay}}[method]
        cfg = GENERATIVE_CONFIGS[method](
            data=[str(p) for p in data], out=str(out), resolution=resolution, channels=_ints(channels, "--channels"),
            latent_dim=latent_dim, steps=steps, batch_size=batch_size, lr=lr, flip=flip,
            checkpoint_every=checkpoint_every, seed=seed, limit=limit, **extra)
        run = train(cfg, overwrite=overwrite, resume=resume, log=typer.echo)
        typer.echo(f"model saved in {run / 'model'}")

    train_cmd.__doc__ = GENERATIVE_HELP[method][1]
    # One function for both commands; each shows only its own method's option (typer reads the
    # signature, so the other method's parameter is taken out of it).
    sig = inspect.signature(train_cmd)
    other = "ema_decay" if method == "vae" else "kl_weight"
    train_cmd.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name != other])
    group.command("train")(train_cmd)
