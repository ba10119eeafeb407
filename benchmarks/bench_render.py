"""Rendering benchmarks: quality per second of presets, throughput and overhead, memory over a long run.

    python benchmarks/bench_render.py quality    --frames 4 --resolution 256
    python benchmarks/bench_render.py throughput --frames 24 --resolution 256 [--workers 2]
    python benchmarks/bench_render.py memory     --frames 500 --resolution 64

Each prints a Markdown table row set and writes JSON next to docs/BENCHMARKS.md (docs/bench/).
Ratios are measured within one run, because the machines are shared and absolute times are noisy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bench"


def _specs(n: int, resolution: int, render: dict, seed: int = 100):
    from synth.generator.spec import frame_specs

    return list(frame_specs(seed=seed, indices=range(n), lesion_prob=0.5, resolution=resolution,
                            frames_per_scene=4, min_lesion_pixels=int(0.002 * resolution**2), render=render))


def _quality_worker(resolution: int, n: int, settings: list[dict], threads: int) -> list[dict]:
    """Render the same frames with each setting in one process; PSNR against the first setting."""
    from synth.blender_assets.scene import FrameRenderer
    from synth.generator.post import srgb_encode

    ref_imgs = None
    rows = []
    for st in settings:
        specs = _specs(n, resolution, st)
        r = FrameRenderer(resolution, st, threads)
        r.render(specs[0])  # warm-up: kernel load and first BVH are not per-frame costs
        imgs, secs = [], []
        for s in specs:
            t = time.perf_counter()
            p = r.render(s)
            secs.append(time.perf_counter() - t)
            imgs.append(srgb_encode(p["rgb"] / max(np.percentile(p["rgb"], 97), 1e-4) * 0.85))
        r.close()
        if ref_imgs is None:
            ref_imgs = imgs
        mse = np.mean([np.mean((a - b) ** 2) for a, b in zip(imgs, ref_imgs)])
        psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
        rows.append({**st, "seconds_per_frame": float(np.mean(secs)), "psnr_db": psnr})
    return rows


def quality(args) -> list[dict]:
    settings = [{"samples": 256, "denoise": True, "max_bounces": 6, "denoising_quality": "HIGH"}]
    for spp in (1, 2, 4, 8, 16):
        for dn in (False, True):
            settings.append({"samples": spp, "denoise": dn, "max_bounces": 3})
    settings.append({"samples": 4, "denoise": True, "max_bounces": 3, "denoising_quality": "FAST"})
    settings.append({"samples": 4, "denoise": True, "max_bounces": 2})
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        rows = pool.apply(_quality_worker, (args.resolution, args.frames, settings, args.threads))
    print("| samples | denoise | bounces | s/frame | PSNR vs 256 spp (dB) |\n|---|---|---|---|---|")
    for r in rows:
        dq = r.get("denoising_quality", "BALANCED") if r["denoise"] else "-"
        print(f"| {r['samples']} | {dq} | {r['max_bounces']} | {r['seconds_per_frame']:.2f} | {r['psnr_db']:.1f} |")
    return rows


def throughput(args) -> dict:
    """`synth render` wall time per frame against the time spent inside bpy.ops.render.render."""
    from synth.generator.config import RenderConfig
    from synth.generator.dataset import Dataset
    from synth.generator.run import run_render

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RenderConfig(n=args.frames, out=f"{tmp}/ds", resolution=args.resolution, quality=args.quality,
                           seed=200)
        t = time.perf_counter()
        run_render(cfg, quiet=True, frames_per_process=args.frames, workers=args.workers,
                   threads=max(1, args.threads // args.workers))
        wall = time.perf_counter() - t
        ds = Dataset.open(f"{tmp}/ds")
        cycles = sum(r.extra["render_seconds"] for r in ds.records)
        lesion_frac = ds.labels().count("lesion") / len(ds)
    row = {"frames": args.frames, "resolution": args.resolution, "quality": args.quality, "workers": args.workers,
           "wall_s": wall,
           # With several workers their Cycles seconds overlap: the ratio is only meaningful for one.
           "cycles_s": cycles, "overhead_ratio": wall / cycles if args.workers == 1 else None,
           "frames_per_min": args.frames / wall * 60, "visible_lesion_fraction": lesion_frac}
    ratio = f"ratio {row['overhead_ratio']:.3f}, " if args.workers == 1 else ""
    print(f"frames {args.frames} at {args.resolution}px ({args.quality}, {args.workers} worker(s)): wall {wall:.1f} s, "
          f"inside bpy.ops.render.render {cycles:.1f} s, {ratio}{row['frames_per_min']:.1f} frames/min")
    return row


def _memory_worker(resolution: int, n: int, every: int, threads: int) -> list[tuple[int, float]]:
    from synth.blender_assets.scene import FrameRenderer
    from synth.generator.config import QUALITY_PRESETS
    from synth.generator.post import apply
    from synth.generator.worker import rss_mb

    render = QUALITY_PRESETS["draft"]
    r = FrameRenderer(resolution, render, threads)
    out = []
    from synth.generator.spec import frame_specs

    for k, s in enumerate(frame_specs(seed=300, indices=range(n), lesion_prob=0.5, resolution=resolution,
                                      frames_per_scene=4, min_lesion_pixels=8, render=render)):
        p = r.render(s)
        apply(p["rgb"], p["index"], s["artefacts"])
        if (k + 1) % every == 0:
            out.append((k + 1, rss_mb()))
    return out


def memory(args) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        series = pool.apply(_memory_worker, (args.resolution, args.frames, 50, args.threads))
    warm = series[0][1]
    last = series[-1][1]
    row = {"frames": args.frames, "resolution": args.resolution, "series": series, "rss_after_warmup_mb": warm,
           "rss_end_mb": last, "growth": last / warm - 1}
    print(f"RSS after {series[0][0]} frames {warm:.0f} MB, after {series[-1][0]} frames {last:.0f} MB: "
          f"growth {100 * row['growth']:.1f} %")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["quality", "throughput", "memory"])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--quality", default="default")
    ap.add_argument("--threads", type=int, default=2, help="Cycles threads in all (split among --workers)")
    ap.add_argument("--workers", type=int, default=1, help="throughput: rendering processes")
    args = ap.parse_args()
    result = {"quality": quality, "throughput": throughput, "memory": memory}[args.what](args)
    DOCS.mkdir(parents=True, exist_ok=True)
    suffix = f"_workers{args.workers}" if args.what == "throughput" and args.workers > 1 else ""
    (DOCS / f"render_{args.what}{suffix}.json").write_text(json.dumps({"args": vars(args), "result": result}, indent=1))


if __name__ == "__main__":
    main()
