"""Rendering on a Ray cluster: each chunk of frames is a Ray task. No bpy in this process.

`--address HOST:PORT` joins an existing cluster (every node must see the output folder, e.g. a
shared filesystem); without it a local Ray instance is started on loopback. Tasks are retried
when their worker dies (`max_retries`), and a retried chunk skips frames whose record already
exists, so a killed worker costs only its unfinished frames. Each task runs in a fresh worker
process (`max_calls=1`), which keeps bpy's memory from piling up, as with local workers.
"""

from __future__ import annotations

import time

from synth.generator.config import ConfigError

MAX_RETRIES = 3


def _init(address: str | None, threads: int) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(log_to_driver=False, include_dashboard=False, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # Loopback only: a second interface address would let nodes register elsewhere.
            ray.init(_node_ip_address="127.0.0.1", **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address or 'a new local instance'}: "
                          f"{str(e).splitlines()[0]}; start one with `ray start --head` or check --address") from None


def run_chunks_ray(cfg_json: dict, chunks: list[list[int]], threads: int, address: str | None, progress):
    """Render chunks as Ray tasks; returns (per-chunk stats, number of task retries observed)."""
    import ray

    from synth.generator.worker import render_chunk

    _init(address, threads)
    task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES, retry_exceptions=False, max_calls=1)(render_chunk)
    refs = [task.remote(cfg_json, c, threads) for c in chunks]
    results = []
    with progress as bar:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            bar.update()
            for r in ready:
                results.append(ray.get(r))
            if not ready:
                time.sleep(0.1)
    # A chunk whose task was retried after its worker died has stats from its last attempt only.
    return results, 0
