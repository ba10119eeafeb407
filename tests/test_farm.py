"""Render farms: shards, local workers and a real Ray cluster give the same frames; killed workers
lose nothing. Tiny renders (32 px, 1 sample) through the real `synth` command.

The Ray tests start a real cluster with `ray start`: a head and one worker node, each with one CPU,
on the loopback address 127.0.0.2. (Ray rewrites 127.0.0.1 to the machine's interface address;
any other 127.x address it keeps, so all traffic stays on loopback.) The cluster's processes are
found by its private temp folder and stopped at the end; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

BIN = Path(sys.executable).parent
SYNTH = str(BIN / "synth")
RAY = str(BIN / "ray")
N = 6
COMMON = ["--seed", "7", "--resolution", "32", "--quality", "draft", "--samples", "1", "--lesion-prob", "0.6"]
LOOPBACK = "127.0.0.2"


def synth(*args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([SYNTH, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"synth {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def render(out: Path, *extra: str, n: int = N, **kw) -> subprocess.CompletedProcess:
    return synth("render", "--n", str(n), "--out", str(out), *COMMON, *extra, **kw)


def frames(root: Path) -> dict[str, tuple[dict, bytes]]:
    """id -> (spec, mask PNG bytes) of every finished frame."""
    out = {}
    for rec in sorted((root / "records").glob("*.json")):
        fid = rec.stem
        out[fid] = (json.loads((root / "specs" / f"{fid}.json").read_text()), (root / "masks" / f"{fid}.png").read_bytes())
    return out


def assert_same_frames(a: Path, b: Path, ids: list[str] | None = None) -> None:
    fa, fb = frames(a), frames(b)
    ids = ids or sorted(fa)
    assert ids and set(ids) <= set(fa) and set(ids) <= set(fb)
    for fid in ids:
        assert fa[fid][0] == fb[fid][0], f"spec of {fid} differs between {a} and {b}"
        assert fa[fid][1] == fb[fid][1], f"mask of {fid} differs between {a} and {b}"


def assert_complete(root: Path, n: int) -> None:
    """No missing, duplicate or corrupt frame; index and COCO agree."""
    import cv2
    from pycocotools.coco import COCO

    ids = [f"{i:06d}" for i in range(n)]
    assert sorted(p.stem for p in (root / "records").glob("*.json")) == ids
    lines = (root / "index.jsonl").read_text().splitlines()
    assert len(lines) == n
    assert sorted(json.loads(line)["id"] for line in lines) == ids  # no duplicates
    for sub in ("images", "masks"):
        pngs = sorted((root / sub).glob("*.png"))
        assert [p.stem for p in pngs] == ids, sub
        for p in pngs:
            assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None, f"{p} does not decode"
    coco = COCO(str(root / "coco.json"))
    assert len(coco.getImgIds()) == n
    assert json.loads((root / "manifest.json").read_text())["counts"]["frames"] == n


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("farm") / "single"
    render(out)
    assert_complete(out, N)
    return out


# --------------------------------------------------------------------------- errors (no rendering)


@pytest.mark.parametrize("bad", ["3/3", "-1/2", "1/0", "x", "1/2/3", "a/b"])
def test_bad_shard_exits_2(tmp_path, bad):
    r = synth("render", "--n", "4", "--out", str(tmp_path / "o"), "--shard", bad, check=False, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: --shard") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_address_needs_ray_backend(tmp_path):
    r = synth("render", "--n", "2", "--out", str(tmp_path / "o"), "--address", "127.0.0.2:1", check=False, timeout=60)
    assert r.returncode == 2 and "--backend ray" in r.stderr


@pytest.mark.blender
def test_gpu_without_gpu_is_one_line_error(tmp_path):
    r = render(tmp_path / "o", "--device", "gpu", n=2, check=False, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device gpu:") and "no GPU" in lines[0], r.stderr
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- identity


@pytest.mark.blender
def test_three_shards_merged_equal_single_run(reference, tmp_path):
    out = tmp_path / "shards"
    for k in (2, 0):  # out of order, as a job array may run them
        r = render(out, "--shard", f"{k}/3")
        assert "synth merge" in r.stdout
    assert not (out / "index.jsonl").exists()
    r = synth("merge", str(out), check=False, timeout=60)
    assert r.returncode == 2 and "missing 2 frame" in r.stderr  # shard 1 not rendered yet
    r = render(out, "--shard", "1/3")  # the last shard to finish finalizes on its own
    assert (out / "index.jsonl").exists()
    synth("merge", str(out), timeout=60)  # and an explicit merge does the same again
    assert_complete(out, N)
    assert_same_frames(reference, out)


@pytest.mark.blender
def test_shard_with_a_different_n_is_refused(tmp_path):
    out = tmp_path / "shards"
    render(out, "--shard", "0/2", n=2)
    before = sorted(p.name for p in (out / "records").iterdir())
    r = render(out, "--shard", "1/2", n=4, check=False, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "same --n" in r.stderr and "--n 2" in r.stderr
    assert sorted(p.name for p in (out / "records").iterdir()) == before
    assert json.loads((out / "config.json").read_text())["n"] == 2


@pytest.mark.blender
def test_two_workers_equal_single_run(reference, tmp_path):
    out = tmp_path / "w2"
    r = render(out, "--workers", "2", "--frames-per-process", "2")  # 3 processes' worth, 2 at a time
    assert "worker 1:" in r.stdout and "worker 2:" in r.stdout  # per-worker throughput
    assert_complete(out, N)
    assert_same_frames(reference, out)


# --------------------------------------------------------------------------- faults, local


def _render_children(proc: psutil.Process) -> list[psutil.Process]:
    """The spawned rendering processes of a `synth render` (not multiprocessing's resource tracker)."""
    out = []
    for c in proc.children(recursive=True):
        try:
            if "spawn_main" in " ".join(c.cmdline()):
                out.append(c)
        except psutil.Error:
            pass
    return out


def _records(root: Path) -> int:
    return len(list((root / "records").glob("*.json"))) if (root / "records").is_dir() else 0


@pytest.mark.blender
def test_sigkill_worker_then_rerun_completes(reference, tmp_path):
    n = 16
    out = tmp_path / "killed"
    cmd = [SYNTH, "render", "--n", str(n), "--out", str(out), *COMMON, "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if 2 <= _records(out) <= 6:  # chunks of 8 frames: neither worker is done yet
                kids = _render_children(psutil.Process(proc.pid))
                if kids:
                    killed = kids[0].pid
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.05)
        assert killed is not None, "no rendering worker to kill"
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # The run itself notices the dead worker and renders its frames again ...
    assert proc.returncode == 0, f"{stdout}\n{stderr}"
    assert "died" in stderr, f"killed {killed} but the run did not notice:\n{stdout}\n{stderr}"
    # ... and running the same command again finds nothing to do and leaves a complete dataset.
    r = synth("render", "--n", str(n), "--out", str(out), *COMMON, "--workers", "2")
    assert "resuming" in r.stdout
    assert_complete(out, n)
    assert_same_frames(reference, out, [f"{i:06d}" for i in range(N)])


@pytest.mark.blender
def test_killed_run_resumes_without_duplicates(tmp_path):
    """Kill the whole run (parent and workers) mid-way; the same command finishes the dataset."""
    n = 8
    out = tmp_path / "killed_all"
    cmd = [SYNTH, "render", "--n", str(n), "--out", str(out), *COMMON, "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and _records(out) < 2:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this run's processes
        proc.wait(10)
    before = _records(out)
    assert 0 < before <= n
    render(out, "--workers", "2", n=n)
    assert_complete(out, n)


# --------------------------------------------------------------------------- Ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _stop_cluster(temp_dir: str, address: str) -> None:
    """Stop exactly this cluster's processes: those that name its temp folder or address, and their children.

    (`ray stop` would stop every Ray process on the machine, other users' included.)
    """
    procs = set()
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(p.info["cmdline"] or [])
            if temp_dir in cmdline or f"--address={address}" in cmdline:
                procs.add(p)
                procs.update(p.children(recursive=True))
        except psutil.Error:
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(procs), timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    """A real two-node Ray cluster on loopback: `ray start --head` plus one `ray start --address` worker."""
    pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="synth-ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    port = _free_port()
    address = f"{LOOPBACK}:{port}"
    # A throwaway loopback cluster: no token authentication (a token file in ~/.ray would
    # otherwise switch the head to token mode), and the same setting for the `synth` drivers.
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env = dict(os.environ)
    head = [RAY, "start", "--head", "--node-ip-address", LOOPBACK, "--port", str(port), "--num-cpus", "1",
            "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp_dir,
            "--ray-client-server-port", str(_free_port()), "--dashboard-port", str(_free_port())]
    worker = [RAY, "start", "--address", address, "--node-ip-address", LOOPBACK, "--num-cpus", "1"]
    try:
        for cmd in (head, worker):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
            assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout}\n{r.stderr}"
        yield address
    finally:
        _stop_cluster(temp_dir, address)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.blender
@pytest.mark.ray
def test_ray_cluster_equals_single_run(reference, ray_cluster, tmp_path):
    out = tmp_path / "ray"
    r = render(out, "--backend", "ray", "--address", ray_cluster)
    assert "node " in r.stdout  # per-node throughput in the summary
    assert_complete(out, N)
    assert_same_frames(reference, out)


@pytest.mark.blender
@pytest.mark.ray
def test_ray_worker_killed_mid_task_is_retried(reference, ray_cluster, tmp_path):
    n = 16
    out = tmp_path / "ray_killed"
    cmd = [SYNTH, "render", "--n", str(n), "--out", str(out), *COMMON, "--backend", "ray", "--address", ray_cluster]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            if 1 <= _records(out) <= 6:  # 2 tasks of 8 frames: both still rendering
                for p in psutil.process_iter(["cmdline"]):
                    try:
                        if (p.info["cmdline"] or [""])[0].startswith("ray::_render_chunk_task"):
                            killed = p.pid
                            p.send_signal(signal.SIGKILL)
                            break
                    except (psutil.Error, IndexError):
                        pass
                if killed:
                    break
            time.sleep(0.05)
        assert killed is not None, "no Ray rendering task to kill"
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, f"{stdout}\n{stderr}"
    assert "retried after a worker died" in stdout, stdout  # Ray re-ran the killed task
    assert_complete(out, n)
    assert_same_frames(reference, out, [f"{i:06d}" for i in range(N)])
