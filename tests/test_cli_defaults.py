"""Option defaults of the commands equal the defaults of the config dataclasses they fill.

A default stated twice drifts (the diffusion schedule once did: the code said cosine + v, a
command restated another). `synth diffusion train` reads its defaults from `TrainConfig`; the
other commands still state theirs, and this test fails the day one of them differs.
"""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from synth.cli import app

ROOT = typer.main.get_command(app)


def _command(*path):
    c = ROOT
    for name in path:
        c = c.commands[name]
    return c


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _config(dotted: str):
    module, name = dotted.rsplit(".", 1)
    return getattr(__import__(module, fromlist=[name]), name)


@pytest.mark.parametrize("path, config", [
    (("diffusion", "train"), "synth.diffusion.config.TrainConfig"),
    (("vae", "train"), "synth.diffusion.config.VAETrainConfig"),
    (("gan", "train"), "synth.diffusion.config.GANTrainConfig"),
    (("augment",), "synth.diffusion.augment.AugmentConfig"),
    (("refine",), "synth.diffusion.refine.RefineConfig"),
    (("diffusion", "evaluate"), "synth.diffusion.evaluate.EvaluateConfig"),
    (("diffusion", "anomaly"), "synth.diffusion.anomaly.AnomalyConfig"),
    (("diffusion", "dreambooth"), "synth.diffusion.stable.DreamBoothConfig"),
    (("classify",), "synth.classifier.train.ClassifyConfig"),
])
def test_option_defaults_are_the_config_defaults(path, config):
    defaults = _defaults(_config(config))
    compared, drift = 0, []
    for p in _command(*path).params:
        if p.name not in defaults:
            continue
        want, got = defaults[p.name], p.default
        if isinstance(want, tuple):  # tuples of ints are given as "32,64,128"
            want = ",".join(map(str, want))
        if isinstance(want, list) and got in ((), None):
            got = list(got or ())
        compared += 1
        if want != got:
            drift.append(f"--{p.name.replace('_', '-')}: option {got!r}, {config} {defaults[p.name]!r}")
    assert compared >= 5, f"{path}: too few options matched {config}'s fields to mean anything"
    assert not drift, "\n".join(drift)


def test_train_defaults_come_from_the_config():
    """The train command states no default of its own: change TrainConfig and the option follows."""
    from synth.diffusion import commands
    from synth.diffusion.config import ModelConfig, TrainConfig

    assert commands._TRAIN == TrainConfig(data=[], out="")
    # The network's defaults are ModelConfig's; only schedule and prediction differ on purpose
    # (ModelConfig's say what a model saved before those keys existed was trained with).
    shared = {"channels", "layers_per_block", "attention", "learned_variance", "timesteps"}
    t, m = _defaults(TrainConfig), _defaults(ModelConfig)
    assert {k: t[k] for k in shared} == {k: m[k] for k in shared}
    assert (m["schedule"], m["prediction"]) == ("linear", "epsilon") != (t["schedule"], t["prediction"])
