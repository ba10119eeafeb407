"""Pinned frame specs: the default scene must sample exactly what the sampler sampled before the
distributions moved into a scene file (same rng calls in the same order, same values).

The hashes were computed with the code of commit b644e34 (spec version 4, numbers as literals in
generator/spec.py). Floats are rounded to 10 significant digits before hashing so a last-bit
difference of a libm on another machine does not fail the test; any real change of a range, a
probability or the order of draws changes many digits. If a deliberate change of the sampler
breaks these, bump SPEC_VERSION and recompute them.
"""

import hashlib
import json

from synth.generator.config import RenderConfig
from synth.generator.spec import frame_specs

PINNED = {
    1: ["37993b8592794dbb", "edcbf07f2fd441df", "752b7395431b3af1", "bbf0ae86ac4158c0", "44671fca9e5d1666",
        "591321aa1efaa3c2", "3aaaac8d89779a9c", "49bfa9ce6ad2599a", "f0de16412b352b0d", "49f8873fadff77ee",
        "0f47c8d8becaa6a8", "368721d623472619"],
    5: ["1cabdbab8aed359b", "572bd83d655f401c", "006ea5a9738d2f88", "da7e5691587cdf39", "7290d679f246cd25",
        "35e42fe3f079da4e", "5ba03ac9c80cf9a2", "ab3a417bf16c49cc"],
}
# 40 frames of seed 2, every frame with lesions and overlays, lesion area 1-50 %: covers bubbles,
# fluid, residue, overlay boxes, pedunculated lesions and mucus.
PINNED_ALL_BRANCHES = "66889028520c9c9b"


def canon(o):
    if isinstance(o, float):
        return float(f"{o:.10g}")
    if isinstance(o, dict):
        return {k: canon(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [canon(v) for v in o]
    return o


def digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(canon(spec), sort_keys=True).encode()).hexdigest()[:16]


def default_specs(seed: int, n: int, **kw) -> list[dict]:
    cfg = RenderConfig(resolution=64, lesion_prob=0.5)
    return list(frame_specs(seed=seed, indices=range(n), lesion_prob=cfg.lesion_prob, resolution=cfg.resolution,
                            frames_per_scene=cfg.frames_per_scene, min_lesion_pixels=cfg.lesion_pixel_threshold,
                            render=cfg.render_settings, **kw))


def test_default_specs_are_pinned():
    for seed, want in PINNED.items():
        assert [digest(s) for s in default_specs(seed, len(want))] == want, f"seed {seed}"


def all_branches_digest(**kw) -> str:
    h = hashlib.sha256()
    for s in frame_specs(seed=2, indices=range(40), lesion_prob=1.0, resolution=64, frames_per_scene=4,
                         min_lesion_pixels=8, render=RenderConfig().render_settings, **kw):
        h.update(json.dumps(canon(s), sort_keys=True).encode())
    return h.hexdigest()[:16]


def test_every_branch_is_pinned():
    assert all_branches_digest(lesion_area=(0.01, 0.5), overlay_prob=1.0) == PINNED_ALL_BRANCHES
