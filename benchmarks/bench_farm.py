"""Render-farm benchmarks: process scaling, memory per worker, Ray overhead. Results: docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_farm.py scaling --frames 32 --resolution 64
    .venv/bin/python benchmarks/bench_farm.py memory --frames 1000 --resolution 32 --every 50
    .venv/bin/python benchmarks/bench_farm.py ray --frames 96 --resolution 64 --repeats 2

Every part renders with `--quality draft --samples 1` into fresh folders under a temp dir, and
prints one JSON line. Runs that are compared are done in one invocation, back to back, so that
load from other jobs on a shared machine hits both sides alike; ratios are less noisy than times.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from synth.generator.config import RenderConfig
from synth.generator.run import run_render


def _cfg(out: Path, n: int, resolution: int, seed: int = 11) -> RenderConfig:
    return RenderConfig(n=n, out=str(out), seed=seed, resolution=resolution, quality="draft", samples=1)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed_render(tmp: Path, name: str, n: int, resolution: int, **kw) -> float:
    out = tmp / name
    t0 = time.perf_counter()
    run_render(_cfg(out, n, resolution), quiet=True, **kw)
    dt = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return dt


def _timed_cpu_render(tmp: Path, name: str, n: int, resolution: int, **kw) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the rendering processes) for one run on local workers."""
    c0 = _children_cpu()
    wall = _timed_render(tmp, name, n, resolution, **kw)
    return wall, _children_cpu() - c0


def scaling(args) -> dict:
    """Wall time for the same frames: 1 process x 1 thread, 2 processes x 1 thread, 1 process x 2 threads.

    Also the CPU seconds the rendering processes used: on a machine shared with other jobs the wall
    times say how many cores we got, the CPU seconds per frame say whether two processes waste work
    (1 process's CPU per frame / 2 processes' CPU per frame = the fraction of linear scaling that
    free cores would give).
    """
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t1, c1 = _timed_cpu_render(tmp, "p1", args.frames, args.resolution, workers=1, threads=1)
        t2, c2 = _timed_cpu_render(tmp, "p2", args.frames, args.resolution, workers=2, threads=1)
        t1x2, c1x2 = _timed_cpu_render(tmp, "p1t2", args.frames, args.resolution, workers=1, threads=2)
    return {"part": "scaling", "frames": args.frames, "resolution": args.resolution,
            "loadavg_1min_before": round(load, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
            "s_1proc_1thread": round(t1, 2), "s_2proc_1thread": round(t2, 2), "s_1proc_2threads": round(t1x2, 2),
            "speedup_2proc": round(t1 / t2, 3), "fraction_of_linear": round(t1 / t2 / 2, 3),
            "speedup_2proc_vs_2threads": round(t1x2 / t2, 3),
            "cpu_s_1proc_1thread": round(c1, 2), "cpu_s_2proc_1thread": round(c2, 2),
            "cpu_s_1proc_2threads": round(c1x2, 2), "cpu_efficiency_2proc": round(c1 / c2, 3)}


def _memory_child(cfg_json: dict, n: int, every: int, warmup: int, q) -> None:
    """One rendering process, like `render_chunk` but sampling its RSS every `every` frames."""
    import psutil

    from synth.generator.dataset import DatasetWriter, frame_id
    from synth.generator.spec import frame_specs
    from synth.generator.worker import CLASS_NAMES, quiet_native_output, render_frame

    quiet_native_output()
    from synth.blender_assets.scene import FrameRenderer

    cfg = RenderConfig(**cfg_json)
    writer = DatasetWriter.attach(Path(cfg.out), CLASS_NAMES)
    renderer = FrameRenderer(cfg.resolution, cfg.render_settings, 1, cfg.device)
    proc = psutil.Process()
    t0 = time.perf_counter()
    for k, spec in enumerate(frame_specs(seed=cfg.seed, indices=list(range(n)), lesion_prob=cfg.lesion_prob,
                                         resolution=cfg.resolution, frames_per_scene=cfg.frames_per_scene,
                                         min_lesion_pixels=cfg.lesion_pixel_threshold, render=cfg.render_settings)):
        out = render_frame(renderer, spec, cfg.lesion_pixel_threshold)
        writer.write_frame(frame_id(spec["index"]), image=out["image"], label=out["label"], mask=out["mask"],
                           depth=out["depth"], spec=spec, seed=cfg.seed)
        done = k + 1
        if done == warmup or (done >= warmup and done % every == 0) or done == n:
            q.put((done, proc.memory_info().rss / 2**20, time.perf_counter() - t0))
    renderer.close()
    q.put(None)


def memory(args) -> dict:
    """RSS of one rendering process over `frames` frames, without the restart that --frames-per-process does."""
    from synth.generator.dataset import DatasetWriter
    from synth.generator.worker import CLASS_NAMES

    with tempfile.TemporaryDirectory() as d:
        cfg = _cfg(Path(d) / "mem", args.frames, args.resolution)
        DatasetWriter(Path(cfg.out), config=cfg.to_json(), class_names=CLASS_NAMES)
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_memory_child, args=(cfg.to_json(), args.frames, args.every, args.warmup, q))
        p.start()
        samples = []
        while (item := q.get(timeout=3600)) is not None:
            samples.append(item)
            print(f"  frame {item[0]}: {item[1]:.0f} MiB RSS, {item[2]:.0f} s", flush=True)
        p.join()
    after_warmup = [s for s in samples if s[0] >= args.warmup]
    rss = [s[1] for s in after_warmup]
    return {"part": "memory", "loadavg_1min": round(os.getloadavg()[0], 2), "frames": args.frames, "resolution": args.resolution, "warmup_frames": args.warmup,
            "rss_mib_after_warmup": round(rss[0], 1), "rss_mib_end": round(rss[-1], 1),
            "rss_mib_max": round(max(rss), 1),
            "growth_mib_per_1000_frames": round((rss[-1] - rss[0]) / max(1, samples[-1][0] - args.warmup) * 1000, 1),
            "seconds": round(samples[-1][2], 1), "samples": [[s[0], round(s[1], 1)] for s in samples]}


def _cli_render(out: Path, n: int, resolution: int, *extra: str) -> tuple[float, float, str]:
    """`synth render` in its own session: (wall seconds, rendering seconds from its summary, command).

    Its own session matters on Linux with autogroup scheduling (a shared desktop or CI box): Ray's
    workers are started by the raylet in a session of their own and would get a separate share of
    the CPUs, local workers would share the benchmark's. Each side gets one session this way.
    """
    import re
    import subprocess
    import sys

    synth = str(Path(sys.executable).parent / "synth")
    cmd = ["setsid", synth, "render", "--n", str(n), "--out", str(out), "--resolution", str(resolution),
           "--quality", "draft", "--samples", "1", "--seed", "11", *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    m = re.search(r"rendered \d+ frames in ([\d.]+) s", r.stdout)
    shutil.rmtree(out, ignore_errors=True)
    return wall, float(m.group(1)), " ".join(["synth", *cmd[2:]])


def ray_overhead(args) -> dict:
    """The same job on local workers (2 x 1 thread) and on a local Ray instance (2 CPUs, 1 thread per task).

    Both through the CLI; the Ray side includes starting and stopping the local Ray instance in its
    wall time; the rendering seconds (from the summary) leave that out on both sides.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback-only instance for this benchmark
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local, on_ray = [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(args.repeats):  # alternate, so load from other jobs hits both sides alike
            local.append(_cli_render(tmp / f"local{r}", args.frames, args.resolution, "--workers", "2"))
            on_ray.append(_cli_render(tmp / f"ray{r}", args.frames, args.resolution, "--backend", "ray"))
    bl = min(local, key=lambda x: x[0])
    br = min(on_ray, key=lambda x: x[0])
    return {"part": "ray", "loadavg_1min": round(os.getloadavg()[0], 2), "frames": args.frames,
            "resolution": args.resolution, "commands": [local[0][2], on_ray[0][2]],
            "wall_s_local": [round(x[0], 2) for x in local], "wall_s_ray": [round(x[0], 2) for x in on_ray],
            "render_s_local": [round(x[1], 2) for x in local], "render_s_ray": [round(x[1], 2) for x in on_ray],
            "overhead_wall_best": round(br[0] / bl[0] - 1, 3),
            "overhead_render_best": round(min(x[1] for x in on_ray) / min(x[1] for x in local) - 1, 3),
            "overhead_wall_per_pair": [round(r[0] / loc[0] - 1, 3) for r, loc in zip(on_ray, local)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["scaling", "memory", "ray"])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--every", type=int, default=50, help="memory: sample RSS every N frames")
    ap.add_argument("--warmup", type=int, default=20, help="memory: frames before the first sample")
    ap.add_argument("--repeats", type=int, default=2, help="ray: local/Ray pairs, alternating")
    args = ap.parse_args()
    res = {"scaling": scaling, "memory": memory, "ray": ray_overhead}[args.part](args)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
