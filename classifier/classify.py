"""`synth classify`'s entry point: validate the config, run its task and protocol, write the report.

torch inside the function, no bpy. The one module that knows every protocol: the training loop
(train.py), the protocols built on it (protocols.py, augment_protocol.py, segment.py) and the
report writer sit below it, so none of them imports another to dispatch.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from synth.classifier import report
from synth.classifier.augment_protocol import run_augment
from synth.classifier.protocols import run_protocol
from synth.classifier.segment import run_segment
from synth.classifier.train import ClassifyConfig, default_lr, parse_sources
from synth.rng import fork_rng


def run_classify(cfg: ClassifyConfig, log: Callable[[str], None] = print) -> Path:
    """Train and evaluate as `cfg` says and write the report folder `cfg.out`. Returns its path."""
    import torch

    cfg.validate()
    out = report.check_out(cfg.out, cfg.overwrite)  # fail before any training, not after
    torch.set_num_threads(cfg.threads)
    if cfg.lr is None:
        cfg.lr = default_lr(cfg.model)
    train_specs = parse_sources(cfg.train, "train")
    test_specs = parse_sources(cfg.test, "test")
    pre_specs = parse_sources(cfg.pretrain, "pretrain")
    t0 = time.time()

    with fork_rng(cfg.seed):  # model weights (and smallcnn's dropout) draw from torch's global generator
        if cfg.task == "segment":
            payload, plots = run_segment(cfg, train_specs, test_specs, log)
        elif cfg.protocol == "augment":
            payload, plots = run_augment(cfg, train_specs, test_specs, log)
        else:
            payload, plots = run_protocol(cfg, train_specs, test_specs, pre_specs, log)
    payload["seconds"] = round(time.time() - t0, 1)
    payload["config"] = asdict(cfg)
    return report.write_report(out, payload, plots, cfg.overwrite, log)
