"""Rendering on a Ray cluster: each chunk of frames is a Ray task. No bpy in this process.

`--address HOST:PORT` joins an existing cluster (every node must see the output folder, e.g. a
shared filesystem); without it a local Ray instance is started on loopback and stopped at the end.
Each task reserves `threads` CPUs (and one GPU with `--device gpu`), so Ray packs as many tasks
onto a node as it has cores. Tasks are retried when their worker process or node dies
(`max_retries`), and a retried chunk skips frames whose record already exists, so a killed worker
costs only its unfinished frames. Exceptions raised by the rendering code are not retried: they
are bugs or bad input and would fail again. Each task runs in a fresh worker process
(`max_calls=1`), which keeps bpy's memory from piling up, as with local workers.

Retries: Ray does not hand the driver an attempt count without its state API (which needs the
dashboard), so every attempt checks in with a small counter actor; attempts beyond the first of
a chunk are the retries reported in the summary.
"""

from __future__ import annotations

import os
import time

from synth.generator.config import ConfigError

MAX_RETRIES = 3


def _connect(address: str | None) -> bool:
    """Connect to `address` or start a local instance; True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(log_to_driver=False, include_dashboard=False, configure_logging=False)
    try:
        if address:
            host = address.rsplit(":", 1)[0]
            if host.startswith("127."):
                # A cluster on this machine's loopback: this driver is on the same host.
                kwargs["_node_ip_address"] = host
            ray.init(address=address, **kwargs)
        else:
            # Loopback only: a second interface address would let nodes register elsewhere.
            ray.init(_node_ip_address="127.0.0.1", **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address or 'a new local instance'}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                          "start one with `ray start --head` or check --address") from None
    return True


def plan(address: str | None, threads: int | None, device: str) -> tuple[int, int]:
    """Connect and size the job to the cluster: (Cycles threads per task, tasks that fit at once)."""
    import ray

    _connect(address)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in nodes]
    if not node_cpus or max(node_cpus) < 1:
        raise ConfigError(f"the Ray cluster at {address or 'localhost'} has no CPUs to render with")
    threads = threads or 1
    if threads > max(node_cpus):
        raise ConfigError(f"--threads {threads} is more than the largest Ray node has "
                          f"({max(node_cpus)} CPUs); lower --threads")
    slots = sum(c // threads for c in node_cpus)
    if device == "gpu":
        gpus = int(sum(n["Resources"].get("GPU", 0) for n in nodes))
        if gpus == 0:
            raise ConfigError("--device gpu: no GPU in the Ray cluster (no node offers a GPU resource); "
                              "use --device cpu or add GPU nodes")
        slots = min(slots, gpus)
    return threads, max(1, slots)


def shutdown() -> None:
    """Disconnect (and stop the local instance this process started, if any)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _attempt_counter():
    import ray

    @ray.remote(num_cpus=0)
    class Attempts:
        def __init__(self):
            self.n: dict[int, int] = {}

        def start(self, key: int) -> int:
            self.n[key] = self.n.get(key, 0) + 1
            return self.n[key]

        def counts(self) -> dict[int, int]:
            return dict(self.n)

    return Attempts.remote()


def _render_chunk_task(cfg_json: dict, indices: list[int], threads: int, counter, key: int) -> dict:
    """The Ray task: check in with the attempt counter, render, and say which node did it."""
    import ray

    from synth.generator.worker import render_chunk

    attempt = ray.get(counter.start.remote(key))
    stats = render_chunk(cfg_json, indices, threads)
    stats["attempt"] = attempt
    stats["worker"] = f"node {ray.get_runtime_context().get_node_id()[:8]}"
    return stats


def run_chunks_ray(cfg_json: dict, chunks: list[list[int]], threads: int, progress, device: str = "cpu"):
    """Render chunks as Ray tasks (after `plan`); returns (per-chunk stats, number of task retries)."""
    import ray

    task = ray.remote(num_cpus=threads, num_gpus=1 if device == "gpu" else 0, max_retries=MAX_RETRIES,
                      retry_exceptions=False, max_calls=1)(_render_chunk_task)
    counter = _attempt_counter()
    refs = [task.remote(cfg_json, c, threads, counter, i) for i, c in enumerate(chunks)]
    results = []
    with progress as bar:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            bar.update()
            for r in ready:
                try:
                    results.append(ray.get(r))
                except ray.exceptions.RayTaskError as e:
                    # The rendering code raised: show its own error, not Ray's wrapper.
                    raise e.as_instanceof_cause() from None
            if not ready:
                time.sleep(0.1)
    try:
        counts = ray.get(counter.counts.remote(), timeout=30)
        retries = sum(n - 1 for n in counts.values())
    except Exception:  # the counter lived on a node that died: fall back to what the tasks reported
        retries = sum(s.get("attempt", 1) - 1 for s in results)
    ray.kill(counter)
    return results, retries
