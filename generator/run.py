"""Running `synth render`: split the missing frames into chunks, render them in worker processes
(or Ray tasks), show one progress bar, then finalize the dataset. No bpy in this process.

Safety: the output folder is prepared by `DatasetWriter` (a different run's folder is refused
without --overwrite); frames are written atomically with their record last, so an interrupted or
killed run keeps every finished frame and the same command renders only what is missing.
Rendering processes are spawned, never forked, and replaced after `frames_per_process` frames
so memory cannot pile up over long runs.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import typer

from synth import UserError, __version__
from synth.generator.config import FRAME_INDEPENDENT, ConfigError, RenderConfig, default_threads
from synth.generator.dataset import (DatasetError, DatasetWriter, done_ids, finalize_folder, frame_id, run_config,
                                     temp_files, write_text)
from synth.generator.worker import CLASS_NAMES, DEPTH_SCALE_M, render_chunk


@dataclass
class RunStats:
    rendered: int = 0
    seconds: float = 0.0
    chunks: list[dict] = field(default_factory=list)
    retries: int = 0


def shard_indices(n: int, k: int, n_shards: int) -> range:
    """Frames of shard k: a contiguous block, so shards rebuild as few lumens as possible."""
    return range(k * n // n_shards, (k + 1) * n // n_shards)


def make_chunks(indices: list[int], workers: int, frames_per_process: int, frames_per_scene: int) -> list[list[int]]:
    """Contiguous chunks, at most `frames_per_process` long, enough to keep every worker busy."""
    if not indices:
        return []
    size = min(frames_per_process, max(1, math.ceil(len(indices) / workers)))
    if size >= frames_per_scene:  # align to scenes so a lumen is built once per chunk
        size = size // frames_per_scene * frames_per_scene
    return [indices[i:i + size] for i in range(0, len(indices), size)]


STALE_TEMP_SECONDS = 600


def _clean_stale_temp(root: Path) -> None:
    """Remove temp files a killed run left behind (they never look like finished files).

    Only old ones: another shard may be writing into the same folder right now, and its temp files
    live for milliseconds, so anything older than `STALE_TEMP_SECONDS` belongs to a dead process.
    """
    cutoff = time.time() - STALE_TEMP_SECONDS
    for p in temp_files(root):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
        except FileNotFoundError:
            pass


def _scene_check(root: Path, cfg: RenderConfig) -> tuple[str, ...]:
    """Refuse, in one line naming the keys, a folder rendered from a different scene; returns config
    keys that may differ after all (a folder from before scene files whose scene was the default)."""
    from synth.generator.scene_config import scene_diff

    old = run_config(root)
    if old is None:
        return ()
    new_scene = json.loads(json.dumps(cfg.scene))
    legacy = old.get("scene") is None
    if legacy:
        # Rendered before scene files existed: it sampled from the default scene, with its own
        # lesion area and overlay share (the pinned specs show the default scene draws the same).
        try:
            old_scene = RenderConfig(lesion_area=old.get("lesion_area"), overlay_prob=old.get("overlay_prob")).resolved().scene
        except (UserError, TypeError, ValueError):
            return ()  # not a config this code wrote: the general config check reports it
        old_scene = json.loads(json.dumps(old_scene))
    else:
        old_scene = old["scene"]
    diff = scene_diff(old_scene, new_scene) if isinstance(old_scene, dict) else ["scene"]
    if diff:
        more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
        raise ConfigError(f"{root} holds a run of a different scene (differs in: {', '.join(diff[:5])}{more}); "
                          "give the same --scene and --set, pass --overwrite to replace it, or choose another --out")
    return ("scene",) if legacy else ()


def write_scene_file(root: Path, cfg: RenderConfig) -> Path:
    """scene.toml: the resolved scene of the run, with its comments (the same numbers as config.json)."""
    from synth.generator.scene_config import HEADER, dumps

    header = ("# The resolved scene this folder was rendered from (`synth render --scene` accepts it).\n" + HEADER)
    path = root / "scene.toml"
    write_text(path, dumps(cfg.scene_config(), header=header))
    return path


def _open_writer(root: Path, cfg: RenderConfig, overwrite: bool, shard: tuple[int, int]) -> DatasetWriter:
    """Prepare the folder; shards starting at the same moment may see each other half-way, so retry."""
    may_change = FRAME_INDEPENDENT
    if not overwrite:
        may_change = may_change + _scene_check(root, cfg)
    if shard[1] > 1:
        # Shards split range(n) among themselves: with different --n their blocks would overlap or leave gaps.
        may_change = tuple(k for k in FRAME_INDEPENDENT if k != "n")
        old = run_config(root)
        if not overwrite and old is not None:
            old_n = old.get("n")
            if old_n != cfg.n:
                raise ConfigError(f"{root} is a run of --n {old_n}; every --shard of a run needs the same --n "
                                  f"(got {cfg.n}): use --n {old_n} or another --out")
    for attempt in range(3):
        try:
            return DatasetWriter(root, config=cfg.to_json(), class_names=CLASS_NAMES, overwrite=overwrite,
                                 config_keys_that_may_change=may_change)
        except DatasetError:
            if shard[1] == 1 or overwrite or attempt == 2:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def _count_done(root: Path, wanted: set[str]) -> int:
    return len(done_ids(root) & wanted)


def run_render(cfg: RenderConfig, *, overwrite: bool = False, preview: bool = False, workers: int = 1,
               shard: tuple[int, int] = (0, 1), backend: str = "local", address: str | None = None,
               threads: int | None = None, frames_per_process: int = 200, quiet: bool = False) -> dict | None:
    """Render the frames of `cfg` (this shard's share) and finalize when the dataset is complete."""
    cfg.validate()
    if workers <= 0:
        raise ConfigError(f"--workers must be positive, got {workers}")
    if frames_per_process <= 0:
        raise ConfigError(f"--frames-per-process must be positive, got {frames_per_process}")
    if threads is not None and threads <= 0:
        raise ConfigError(f"--threads must be positive, got {threads}")
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend must be local or ray, got {backend!r}")
    if address and backend != "ray":
        raise ConfigError("--address is for --backend ray")
    root = Path(cfg.out)
    if address is not None and not address.strip():
        raise ConfigError("--address must look like HOST:PORT")
    # The scene written out in full: config.json records it, workers and Ray tasks receive it.
    cfg = cfg.resolved()
    if cfg.device == "gpu" and backend == "local":
        _require_gpu()  # with Ray the GPUs are on the cluster's nodes: `plan` checks them
    writer = _open_writer(root, cfg, overwrite, shard)
    write_scene_file(root, cfg)
    _clean_stale_temp(root)

    k, n_shards = shard
    mine = list(shard_indices(cfg.n, k, n_shards))
    done = writer.done_ids()
    todo = [i for i in mine if frame_id(i) not in done]
    if backend == "ray" and todo:
        from synth.generator.ray_backend import plan

        # Ray packs tasks of `threads` CPUs onto the nodes: enough chunks to fill every slot.
        threads, slots = plan(address, threads, cfg.device)
        workers = max(workers, slots)
    threads = threads or default_threads(workers)
    chunks = make_chunks(todo, workers, frames_per_process, cfg.frames_per_scene)
    say = (lambda *a, **kw: None) if quiet else typer.echo
    if len(todo) < len(mine):
        say(f"resuming: {len(mine) - len(todo)} of {len(mine)} frames already in {root}")

    stats = RunStats()
    t0 = time.perf_counter()
    wanted = {frame_id(i) for i in mine}
    if chunks:
        if backend == "ray":
            from synth.generator.ray_backend import run_chunks_ray, shutdown

            try:
                stats.chunks, stats.retries = run_chunks_ray(cfg.to_json(), chunks, threads,
                                                            progress=_progress(root, wanted, len(mine), quiet),
                                                            device=cfg.device)
            finally:
                shutdown()
        else:
            stats.chunks, stats.retries = _run_chunks_local(cfg.to_json(), chunks, workers, threads,
                                                           progress=_progress(root, wanted, len(mine), quiet))
    stats.seconds = time.perf_counter() - t0
    stats.rendered = sum(c["frames"] for c in stats.chunks)

    all_ids = [frame_id(i) for i in range(cfg.n)]
    have = writer.done_ids()
    if not set(all_ids) <= have:
        missing = len(set(all_ids) - have)
        say(f"shard {k}/{n_shards} done ({stats.rendered} frames rendered); {missing} frames of other shards "
            f"are not in {root} yet: run `synth merge {root}` when every shard has finished")
        return None
    manifest = finalize_run(root, cfg, stats)
    if preview:
        write_preview(root)
    _summary(say, root, manifest, stats)
    return manifest


def _run_chunks_local(cfg_json: dict, chunks: list[list[int]], workers: int, threads: int, progress):
    """Render chunks in spawned processes, each used for one chunk then replaced.

    `workers` slots each run one chunk at a time (so the summary can say what each slot did).
    A worker that dies (killed, out of memory) breaks the pool: finished frames are on disk, so
    the unfinished chunks are submitted again to a fresh pool, a bounded number of times.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results: list[dict] = []
    pending = list(chunks)
    retries = 0
    with progress as bar:
        while pending:
            n_slots = min(workers, len(pending))
            pool = ProcessPoolExecutor(max_workers=n_slots, mp_context=ctx, max_tasks_per_child=1)
            futures: dict = {}
            broken = False

            def submit(slot: int) -> None:
                chunk = pending.pop(0)
                futures[pool.submit(render_chunk, cfg_json, chunk, threads)] = (slot, chunk)

            try:
                for slot in range(n_slots):
                    submit(slot)
                while futures:
                    finished, _ = wait(list(futures), timeout=0.5, return_when=FIRST_COMPLETED)
                    bar.update()
                    for f in finished:
                        slot, chunk = futures.pop(f)
                        try:
                            result = f.result()
                        except BrokenProcessPool:
                            broken = True
                            pending.append(chunk)
                            continue
                        result["worker"] = f"worker {slot + 1}"
                        results.append(result)
                        if pending and not broken:
                            submit(slot)
            except KeyboardInterrupt:
                _kill_pool(pool)
                raise
            finally:
                pool.shutdown(wait=not broken, cancel_futures=True)
            if pending:
                retries += 1
                if retries > 3:
                    raise RuntimeError("rendering processes kept dying; see the messages above")
                typer.echo(f"a rendering process died; rendering its {sum(map(len, pending))} unfinished "
                           "frames again", err=True)
        bar.update()
    return results, retries


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    for p in list(getattr(pool, "_processes", {}).values()):
        try:
            p.kill()
        except Exception:
            pass
    pool.shutdown(wait=False, cancel_futures=True)


class _progress:
    """One bar for the whole run, fed by counting finished frame records on disk.

    Counting records works the same for local processes, Ray tasks on other machines sharing the
    folder, and resumed runs, and needs no channel back from the workers.
    """

    def __init__(self, root: Path, wanted: set[str], total: int, quiet: bool):
        self.root, self.wanted, self.total, self.quiet = root, wanted, total, quiet
        self._bar = None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._start_done = _count_done(self.root, self.wanted)
            self._t0 = time.perf_counter()
            self._task = self._bar.add_task("render", total=self.total, completed=self._start_done, rate="")
        return self

    def update(self) -> None:
        if self._bar is None:
            return
        done = _count_done(self.root, self.wanted)
        dt = time.perf_counter() - self._t0
        rate = (done - self._start_done) / dt * 60 if dt > 0 else 0.0
        self._bar.update(self._task, completed=done, rate=f"{rate:.1f} frames/min")

    def __exit__(self, *exc):
        if self._bar is not None:
            self.update()
            self._bar.stop()
        return False


def _require_gpu() -> None:
    """Ask a throwaway spawned process (bpy stays out of this one) whether Cycles sees a GPU."""
    import multiprocessing as mp

    from synth.generator.worker import check_gpu

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        try:
            pool.submit(check_gpu).result()
        except RuntimeError as e:
            raise ConfigError(str(e)) from None


def _versions() -> dict:
    from importlib import metadata

    out = {"synth": __version__, "python": platform.python_version()}
    try:  # the exact code, when running from a checkout
        import subprocess

        rev = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            out["git"] = rev.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    for pkg in ("bpy", "numpy", "opencv-python-headless"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def finalize_run(root: Path, cfg: RenderConfig, stats: RunStats | None = None) -> dict:
    """index.jsonl, coco.json and manifest.json for a complete render run."""
    ids = [frame_id(i) for i in range(cfg.n)]
    cfg = cfg.resolved()
    write_scene_file(root, cfg)
    man = {
        "kind": "rendered",
        "command": "synth render",
        "argv": sys.argv,
        "config": cfg.to_json(),
        "scene_file": "scene.toml",
        "seed": cfg.seed,
        "versions": _versions(),
        "depth_scale": DEPTH_SCALE_M,
        "depth_units": "metres per unit of depth/ID.png; 0 = no surface",
        "label_rule": f"lesion when the mask has >= {cfg.lesion_pixel_threshold} visible lesion pixels",
        "lesion_pixel_threshold": cfg.lesion_pixel_threshold,
    }
    return finalize_folder(root, manifest=man, class_names=CLASS_NAMES, expected_ids=ids)


def merge_shards(out: Path, preview: bool = False) -> dict:
    """Finalize a folder that several shards (machines, job-array tasks) rendered into."""
    root = Path(out)
    old = run_config(root)
    if old is None:
        raise DatasetError(f"{root} holds no synth render run (no config.json)")
    cfg = RenderConfig(**old)
    manifest = finalize_run(root, cfg)
    if preview:
        write_preview(root)
    _summary(typer.echo, root, manifest, None)
    return manifest


def _summary(say, root: Path, manifest: dict, stats: RunStats | None) -> None:
    frames = manifest["counts"]["frames"]
    say(f"dataset {root}: {frames} frames, visible-lesion fraction {manifest['counts']['fraction']['lesion']:.3f}")
    if stats and stats.rendered:
        spf = stats.seconds / stats.rendered
        say(f"rendered {stats.rendered} frames in {stats.seconds:.1f} s: {spf:.2f} s/frame, "
            f"{60 / spf:.1f} frames/min" + (f" ({stats.retries} retried after a worker died)" if stats.retries else ""))
        per_worker: dict[str, list[float]] = {}
        for c in stats.chunks:
            if c["frames"]:
                w = per_worker.setdefault(c.get("worker") or f"{c['host']}:{c['pid']}", [0, 0.0])
                w[0] += c["frames"]
                w[1] += c["seconds"]
        if len(per_worker) > 1 or len(stats.chunks) > 1:
            for name, (nf, sec) in sorted(per_worker.items()):
                say(f"  {name}: {nf} frames, {nf / sec * 60:.1f} frames/min while rendering")


def write_preview(root: Path, max_frames: int = 32, columns: int = 8) -> Path:
    """preview.png: a contact sheet of the first frames, lesion outlines drawn in green."""
    import cv2
    import numpy as np

    from synth.generator.dataset import Dataset, write_png

    ds = Dataset.open(root)
    tiles = []
    for rec in ds.records[:max_frames]:
        img = ds.image(rec).copy()
        mask = ds.mask(rec)
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, contours, -1, (0, 255, 0), max(1, img.shape[0] // 128))
        tiles.append(img)
    if not tiles:
        raise DatasetError(f"{root} has no frames to preview")
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    cols = min(columns, len(tiles))
    sheet = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = cv2.resize(t, (w, h)) if t.shape[:2] != (h, w) else t
    write_png(root / "preview.png", sheet)
    return root / "preview.png"
