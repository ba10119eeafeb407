"""CLI commands of the classifier part. Imports only typer at module level (`synth --help` stays instant)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from synth import UserError

SOURCE_HELP = ("NAME=DIR[:FRACTION][@WEIGHT], repeatable. FRACTION takes a stratified share of the folder "
               "(with --seed); WEIGHT sets the source's share of each epoch's draws. Sources with the same "
               "NAME are pooled.")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the `synth` app. A `UserError` they raise reaches the root
    command group of cli.py, which prints it as one line and exits 2."""

    @app.command()
    def classify(
        train: List[str] = typer.Option([], "--train", help="Training data: " + SOURCE_HELP),
        test: List[str] = typer.Option([], "--test", help="Test data (NAME=DIR); folders also in --train are "
                                                          "split by frame (--holdout)."),
        out: Path = typer.Option(Path("runs/classify"), "--out", "-o", help="Report folder to write."),
        model: str = typer.Option("smallcnn", "--model", "-m",
                                  help="smallcnn, resnet18, vit-tiny, vit-micro, or unet (segmentation)."),
        protocol: str = typer.Option("single", "--protocol",
                                     help="single (train on --train), finetune (--pretrain then --train), "
                                          "curve (transfer curve over fractions of --curve-source), or augment "
                                          "(real only vs real + classical copies vs real + each other --train "
                                          "source, over --seeds trainings)."),
        pretrain: List[str] = typer.Option([], "--pretrain", help="Data to pretrain on first: " + SOURCE_HELP),
        epochs: int = typer.Option(5, "--epochs", help="Epochs of training (fine-tuning for finetune)."),
        pretrain_epochs: Optional[int] = typer.Option(None, "--pretrain-epochs", help="Epochs of pretraining "
                                                                                     "(default: --epochs)."),
        batch_size: int = typer.Option(64, "--batch-size", help="Images per step."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default per model)."),
        finetune_lr: Optional[float] = typer.Option(None, "--finetune-lr", help="Learning rate after pretraining "
                                                                                "(default: --lr)."),
        size: int = typer.Option(128, "--size", help="Images are resized to SIZE x SIZE."),
        fov: str = typer.Option("circle", "--fov", help="circle: black outside one centred circle for every "
                                                        "image (removes border/UI cues); none."),
        fov_radius: float = typer.Option(0.44, "--fov-radius", help="Circle radius as a fraction of the side."),
        holdout: float = typer.Option(0.3, "--holdout", help="Share of a folder held out for testing when it is "
                                                             "both --train and --test."),
        augment: float = typer.Option(0.0, "--augment", help="Classical baseline: add this fraction of "
                                                             "flipped/rotated/cropped copies (0.2, 0.5)."),
        online_aug: bool = typer.Option(False, "--online-aug", help="Random flips, rotations and colour jitter "
                                                                    "every batch."),
        online_aug_policy: str = typer.Option("light", "--online-aug-policy", help="light (with --online-aug: "
                                              "flips and turns; classifiers also mild colour jitter) or strong "
                                              "(implies --online-aug; also zoom, gamma, saturation, hue, blur and "
                                              "noise: camera variety rendered frames lack)."),
        real_style: List[Path] = typer.Option([], "--real-style", help="Real folder(s) whose frames restyle the "
                                              "synthetic training images on the fly (real training images and test "
                                              "images never): a style frame drawn per image with the seed. A folder "
                                              "that is also --test is refused unless also given as --train (even "
                                              "NAME=DIR:0): then only its training pool (--holdout split) is used."),
        real_style_method: str = typer.Option("fda", "--real-style-method", help="fda (Fourier domain "
                                              "adaptation), reinhard (Lab colour transfer) or histogram."),
        real_style_prob: float = typer.Option(0.5, "--real-style-prob", help="Chance that a synthetic image is "
                                                                             "restyled each time it is drawn."),
        real_style_beta: float = typer.Option(0.01, "--real-style-beta", help="fda: low-frequency band, "
                                                                              "in (0, 0.5]."),
        adapt_bn: List[Path] = typer.Option([], "--adapt-bn", help="Real folder(s) whose frames, labels unused, "
                                            "re-estimate the trained network's batch-norm statistics (AdaBN) "
                                            "before testing; the report also keeps the unadapted result. A "
                                            "folder that is also --test is refused unless also given as --train "
                                            "(even NAME=DIR:0): then only its training pool is used."),
        pretrained: bool = typer.Option(False, "--pretrained", help="ResNet-18: ImageNet weights from the torch "
                                                                    "hub cache if there (no download)."),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Initial weights file (state dict)."),
        freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train only the last layer."),
        positive: Optional[str] = typer.Option(None, "--positive", help="Positive class for sensitivity/AUC "
                                                                        "(default: lesion, else the last class)."),
        curve: Optional[str] = typer.Option(None, "--curve", help="Comma-separated fractions for --protocol curve "
                                                                  "(default 0,0.01,0.05,0.1,0.25,1)."),
        curve_source: str = typer.Option("real", "--curve-source", help="Name of the --train sources the "
                                                                        "curve varies (augment: the real share)."),
        classical_fractions: Optional[str] = typer.Option(None, "--augment-fractions", help="--protocol augment: "
                                                        "comma-separated classical fractions, one row each, in "
                                                        "(0, 10] (default 0.2,0.5; none for no classical row)."),
        seeds: Optional[int] = typer.Option(None, "--seeds", help="Trainings with training seeds --seed, --seed+1, "
                                            "...: per row of --protocol augment (default 3), or of a segmentation "
                                            "report (--model unet; default 1), with their mean and spread."),
        equal_steps: bool = typer.Option(True, "--equal-steps/--epochs-per-row", help="--protocol augment: "
                                         "train every row for the same optimiser steps (its largest row's), or "
                                         "each row for --epochs of its own size (a larger row trains longer)."),
        judge: Optional[Path] = typer.Option(None, "--judge", help="--protocol augment: a real-trained `synth "
                                             "classify --save-model` report; adds the Fréchet distance and class "
                                             "agreement of each other source under it."),
        threads: int = typer.Option(2, "--threads", help="CPU threads for torch and image decoding."),
        eval_each_epoch: bool = typer.Option(True, "--eval-each-epoch/--eval-at-end",
                                             help="Test after every epoch (for the plots) or only at the end."),
        save_model: bool = typer.Option(False, "--save-model", help="Also write model.pt into the report."),
        seed: int = typer.Option(0, "--seed", help="Same seed: same splits, weights, batches and numbers."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report folder."),
    ) -> None:
        """Train on some dataset folders, test on others (e.g. rendered -> real), write a report."""
        from synth.classifier.classify import run_classify
        from synth.classifier.train import DEFAULT_AUGMENT_FRACTIONS, DEFAULT_CURVE, ClassifyConfig

        fractions = list(DEFAULT_CURVE)
        if curve:
            try:
                fractions = [float(t) for t in curve.split(",") if t.strip()]
            except ValueError:
                raise UserError(f"--curve {curve!r}: give comma-separated fractions like 0,0.1,1") from None
        # (--seeds is checked by ClassifyConfig: segmentation takes it too.)
        given = [n for n, v in (("--augment-fractions", classical_fractions),
                                ("--epochs-per-row", None if equal_steps else True), ("--judge", judge)) if v is not None]
        if given and protocol != "augment":
            raise UserError(f"{given[0]} is an option of --protocol augment, not of --protocol {protocol}")
        aug_fractions = list(DEFAULT_AUGMENT_FRACTIONS)
        if classical_fractions is not None:
            text = classical_fractions.strip().lower()
            try:
                aug_fractions = [] if text in ("", "none") else [float(t) for t in text.split(",") if t.strip()]
            except ValueError:
                raise UserError(f"--augment-fractions {classical_fractions!r}: give comma-separated fractions like "
                                "0.2,0.5 (or none)") from None
            aug_fractions = list(dict.fromkeys(aug_fractions))  # one row per fraction
        cfg = ClassifyConfig(
            train=list(train), test=list(test), out=str(out), model=model, protocol=protocol,
            pretrain=list(pretrain), epochs=epochs, pretrain_epochs=pretrain_epochs, batch_size=batch_size,
            lr=lr, finetune_lr=finetune_lr, size=size, fov=fov, fov_radius=fov_radius, holdout=holdout,
            seed=seed, augment=augment, online_aug=online_aug,
            online_aug_policy=online_aug_policy, real_style=[str(p) for p in real_style],
            real_style_method=real_style_method, real_style_prob=real_style_prob,
            real_style_beta=real_style_beta, adapt_bn=[str(p) for p in adapt_bn], pretrained=pretrained,
            weights=str(weights) if weights else None, freeze_backbone=freeze_backbone, positive=positive,
            curve_fractions=fractions, curve_source=curve_source, augment_fractions=aug_fractions,
            seeds=seeds, equal_steps=equal_steps, judge=str(judge) if judge else None, threads=threads,
            eval_each_epoch=eval_each_epoch, save_model=save_model, overwrite=overwrite,
        )
        run_classify(cfg, log=typer.echo)
