"""The named random streams of synth.rng, and fork_rng."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from synth import rng

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("generator", "blender_assets", "measure", "classifier", "diffusion")


def test_streams_of_one_command_differ():
    for command, keys in rng.COMMANDS.items():
        assert len(set(keys)) == len(keys), f"{command} draws two streams with one key: {keys}"


def test_every_stream_key_is_listed_in_a_command():
    names = {k: v for k, v in vars(rng).items() if k.endswith("_STREAM")}
    listed = {k for keys in rng.COMMANDS.values() for k in keys}
    assert set(names.values()) - {rng.BENCHMARK_STREAM} <= listed


def _stream_arguments():
    """(file, line, node) of the key argument of every SeedSequence([seed, KEY, ...]) and
    seed_for(seed, KEY, ...) in the package."""
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "SeedSequence" and node.args and isinstance(node.args[0], ast.List) and len(node.args[0].elts) > 1:
                yield path, node.lineno, node.args[0].elts[1]
            elif name == "seed_for" and len(node.args) > 1:
                yield path, node.lineno, node.args[1]


# Keys still written as numbers where the name exists in synth/rng.py: (file, key) -> why.
NOT_YET_NAMED: dict = {}


def test_stream_keys_are_named_not_numbers():
    """A new stream gets a name in synth/rng.py (and a place in COMMANDS), not a bare number."""
    found = list(_stream_arguments())
    assert len(found) >= 15  # the scan sees the streams of generator, classifier, measure and diffusion
    bare = {(str(p.relative_to(ROOT)), key.value): line for p, line, key in found
            if isinstance(key, ast.Constant) and isinstance(key.value, int)}
    new = [f"{f}:{line} (key {k})" for (f, k), line in bare.items() if (f, k) not in NOT_YET_NAMED]
    assert not new, "stream keys written as numbers (name them in synth/rng.py): " + ", ".join(new)
    stale = [k for k in NOT_YET_NAMED if (ROOT / k[0]).is_file() and k not in bare]
    assert not stale, f"these are named now; remove them from NOT_YET_NAMED: {stale}"


def test_fork_rng_seeds_inside_and_restores_outside():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    with rng.fork_rng(7):
        inside = torch.rand(3)
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(3))  # seeded as torch.manual_seed(7)
    assert torch.equal(after, before)  # the outside stream is as if the block had not run
    torch.manual_seed(123)
    with pytest.raises(RuntimeError), rng.fork_rng(7):
        torch.rand(5)
        raise RuntimeError
    assert torch.equal(torch.rand(3), before)  # restored on an exception too


def test_online_augment_refuses_global_state():
    from synth.classifier.data import online_augment

    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(TypeError):
        online_augment(x)  # no generator: no silent fall-back to the global one
    with pytest.raises(TypeError, match="torch.Generator"):
        online_augment(x, generator=None)
    a = online_augment(x, generator=torch.Generator().manual_seed(1))
    b = online_augment(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_spec_streams_are_the_registered_keys():
    from synth.generator import spec

    # Pinned by tests/test_scene_pins.py: the frame sampler's keys never move.
    assert (spec.SCENE_STREAM, spec.FRAME_STREAM, spec.LESION_STREAM) == (0, 1, 2)
    assert (rng.SCENE_STREAM, rng.FRAME_STREAM, rng.LESION_STREAM) == (0, 1, 2)
