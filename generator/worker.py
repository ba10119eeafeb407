"""A rendering process: render a chunk of frames and write them into the dataset folder.

Runs in a spawned child process (never forked from a process that imported bpy). It imports bpy
through `blender_assets.scene` only inside `render_chunk`, so importing this module is cheap and
the same function serves local process pools and Ray tasks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from synth.generator.config import RenderConfig
from synth.generator.dataset import DatasetWriter, frame_id
from synth.generator.post import apply as post_process
from synth.generator.post import depth_to_uint16
from synth.generator.spec import frame_specs

CLASS_NAMES = ["normal", "lesion"]
DEPTH_SCALE_M = 1e-4  # depth PNG unit: 0.1 mm, so 16 bits reach 6.5 m


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def render_frame(renderer, spec: dict, threshold: int) -> dict:
    """Render one spec and turn its passes into image, mask, depth and label."""
    passes = renderer.render(spec)
    image, mask = post_process(passes["rgb"], passes["index"], spec["artefacts"], passes.get("glint"))
    visible = int(np.count_nonzero(mask))
    label = "lesion" if visible >= threshold else "normal"
    hidden = 0
    if label == "normal" and visible:
        # Below the visibility threshold the frame is 'normal', and its mask says so too.
        hidden, mask = visible, np.zeros_like(mask)
    depth = depth_to_uint16(passes["depth"], DEPTH_SCALE_M)
    return {"image": image, "mask": mask, "depth": depth, "label": label, "hidden": hidden}


def quiet_native_output() -> None:
    """Send Blender's own console chatter (written by C code to fds 1 and 2) to /dev/null.

    Only rendering processes call this; errors still reach the parent as Python exceptions.
    """
    if os.environ.get("SYNTH_BLENDER_LOG"):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def render_chunk(cfg_json: dict, indices: list[int], threads: int, progress=None) -> dict:
    """Render frames `indices` of the run `cfg_json` into cfg.out; returns this chunk's statistics.

    Frames already complete (their record exists) are skipped, so a retried chunk only does what
    is left. `progress`, if given, is a queue that receives one item per finished frame.
    """
    quiet_native_output()
    from synth.blender_assets.scene import FrameRenderer

    cfg = RenderConfig(**cfg_json)
    writer = DatasetWriter.attach(Path(cfg.out), CLASS_NAMES)
    done = writer.done_ids()
    todo = [i for i in indices if frame_id(i) not in done]
    stats = {"pid": os.getpid(), "host": os.uname().nodename, "frames": 0, "seconds": 0.0,
             "render_seconds": 0.0, "rss_mb_start": None, "rss_mb_end": None}
    if not todo:
        return stats
    t0 = time.perf_counter()
    parent = os.getppid()
    # The run hands over its resolved scene (cfg.scene), never a file name: every worker, local or
    # on a Ray node, samples from exactly the distributions the run recorded.
    cfg = cfg.resolved()
    scene_config = cfg.scene_config()
    renderer = FrameRenderer(cfg.resolution, cfg.render_settings, threads, cfg.device)
    stats["rss_mb_start"] = rss_mb()
    try:
        for spec in frame_specs(seed=cfg.seed, indices=todo, lesion_prob=cfg.lesion_prob,
                                resolution=cfg.resolution, frames_per_scene=cfg.frames_per_scene,
                                min_lesion_pixels=cfg.lesion_pixel_threshold, render=cfg.render_settings,
                                scene_config=scene_config):
            if os.getppid() != parent:
                break  # the run that started us is gone (killed): stop instead of rendering on as an orphan
            out = render_frame(renderer, spec, cfg.lesion_pixel_threshold)
            writer.write_frame(
                frame_id(spec["index"]), image=out["image"], label=out["label"], mask=out["mask"],
                depth=out["depth"], spec=spec, seed=cfg.seed,
                extra={"scene_index": spec["scene"]["index"], "lesion_types": [les["type"] for les in spec["lesions"]],
                       "sub_threshold_lesion_pixels": out["hidden"],
                       "render_seconds": round(renderer.last_render_seconds, 4)},
            )
            stats["frames"] += 1
            stats["render_seconds"] += renderer.last_render_seconds
            if progress is not None:
                progress.put(1)
    finally:
        renderer.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["rss_mb_end"] = rss_mb()
    return stats


def check_gpu() -> str:
    """Name of the Cycles GPU backend available here; raises RuntimeError if there is none.

    Runs in a throwaway process: Blender's own warnings (CUDA/HIP libraries not found) are silenced
    so the user sees one clear line.
    """
    quiet_native_output()
    from synth.blender_assets.scene import enable_gpu

    return enable_gpu()
