"""The look of spec version 4 without Blender: baked mucosa maps, wet speckle, processor tone and
overlays. Pure numpy; the renders that use them are tested in test_render.py."""

import json

import cv2
import numpy as np
import pytest

from synth.generator import post
from synth.generator.spec import SPEC_VERSION, VIEW_TYPES, frame_specs, sample_artefacts, sample_scene
from synth.generator.texture import TEX_H, TEX_W, bake_lesion_surface, bake_mucosa


def _specs(seed, n=12, **kw):
    return list(frame_specs(seed=seed, indices=range(n), lesion_prob=0.5, resolution=64, frames_per_scene=4,
                            min_lesion_pixels=8, render={"samples": 1, "denoise": False, "max_bounces": 2}, **kw))


def test_baked_mucosa_is_a_pure_function_of_the_spec():
    m = sample_scene(7, 0)["mucosa"]
    a, b = bake_mucosa(m), bake_mucosa(json.loads(json.dumps(m)))
    assert a.shape == (TEX_H, TEX_W, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
    other = bake_mucosa(sample_scene(8, 0)["mucosa"])
    assert not np.allclose(a, other)


def test_vessels_darken_and_redden_the_albedo():
    m = sample_scene(3, 0)["mucosa"]
    bare = json.loads(json.dumps(m))
    bare["vessels"]["contrast"] = bare["vessels"]["deep_contrast"] = 0.0
    with_v, without = bake_mucosa(m), bake_mucosa(bare)
    changed = np.abs(with_v - without).sum(axis=2) > 0.02
    assert 0.005 < changed.mean() < 0.6  # a network, not a wash over the whole surface
    assert (with_v[changed, 1] < without[changed, 1]).mean() > 0.9  # vessels take green away: redder/darker


def test_lesion_surface_is_the_tissue_without_its_vessels_mottled():
    m = sample_scene(3, 0)["mucosa"]
    m["lesion_mottle"] = 0.3  # the default scene leaves lesions unmottled (docs/RESULTS.md, spec 6)
    surface = bake_lesion_surface(m)
    assert np.array_equal(surface, bake_lesion_surface(json.loads(json.dumps(m))))  # pure function of the spec
    plain = json.loads(json.dumps(m))
    plain["lesion_mottle"] = 0.0
    bare = json.loads(json.dumps(plain))
    bare["vessels"]["contrast"] = bare["vessels"]["deep_contrast"] = bare["mucus"] = 0.0
    # unmottled, it is exactly the mucosa's patchy tissue with no vessel (nor mucus) drawn on it
    assert np.allclose(bake_lesion_surface(plain), bake_mucosa(bare), atol=1e-6)
    assert not np.allclose(bake_lesion_surface(plain), bake_mucosa(m), atol=0.02)
    # mottling adds fine paler and redder spots about a millimetre (8 texels) across
    green = surface[..., 1] / np.maximum(bake_lesion_surface(plain)[..., 1], 1e-6)
    assert (green > 1.02).mean() > 0.05 and (green < 0.98).mean() > 0.05


def test_mottle_grains_the_whole_surface_in_the_tissue_own_hue():
    m = sample_scene(3, 0)["mucosa"]
    plain = json.loads(json.dumps(m))
    plain["mottle"] = 0.0
    without_key = {k: v for k, v in plain.items() if k != "mottle"}
    assert np.array_equal(bake_mucosa(plain), bake_mucosa(without_key))  # off: the spec-7 bake, texel for texel
    grainy = json.loads(json.dumps(plain))
    grainy["mottle"] = 0.6
    a, b = bake_mucosa(grainy), bake_mucosa(json.loads(json.dumps(grainy)))
    assert np.array_equal(a, b)  # a pure function of the spec
    flat = bake_mucosa(plain)
    ratio = a[..., 1] / np.maximum(flat[..., 1], 1e-6)
    assert (ratio > 1.05).mean() > 0.1 and (ratio < 0.95).mean() > 0.1  # lighter and redder grains
    assert abs(float(a.mean() / flat.mean()) - 1.0) < 0.1  # texture, not a change of overall brightness

    def fine(img):  # energy at the grain's scale: the image minus its 4-texel blur
        g = img[..., 1]
        return float(np.abs(g - cv2.GaussianBlur(g, (0, 0), 4)).mean())

    assert fine(a) > 1.5 * fine(flat)


def test_specs_v4_round_trip_and_carry_the_new_look():
    specs = _specs(2, n=40)
    for s in specs:
        assert s["spec_version"] == SPEC_VERSION == 9
        assert json.loads(json.dumps(s)) == s
        assert s["mounds"] == [] and all(les["keep_dome"] is False for les in s["lesions"])  # spec 9, off
        assert s["camera"]["view"] in VIEW_TYPES
        assert {"tone", "glint_strength", "chromatic_aberration", "overlay", "sharpen"} <= set(s["artefacts"])
        for les in s["lesions"]:  # spec 6: nodular lesion surfaces
            assert 6.0 <= les["nodule_scale"] <= 16.0 and 0.0 <= les["nodule_strength"] <= 1.0
    views = {s["camera"]["view"] for s in specs}
    assert views == set(VIEW_TYPES)


def test_overlay_probability_zero_and_one():
    assert all(s["artefacts"]["overlay"] is None for s in _specs(1, overlay_prob=0.0))
    assert all(s["artefacts"]["overlay"] is not None for s in _specs(1, overlay_prob=1.0))


def _passes(size=64, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.05, 0.4, (size, size, 3)).astype(np.float32)
    index = np.zeros((size, size), np.float32)
    index[size // 2:, : size // 2] = 1.0  # a lesion in the bottom-left quarter, where the box goes
    return rgb, index


def test_overlay_removes_the_mask_pixels_it_covers():
    rng = np.random.default_rng(0)
    art = sample_artefacts(rng, overlay_prob=1.0)
    art["overlay"]["box"] = {"w": 0.3, "h": 0.3, "color": [0.0, 0.0, 0.0], "guide": None}
    art["overlay"]["text_lines"] = ["12/03/2019", "ABC 7"]
    art.update(fov_shape="circle", fov_radius=1.5, motion_blur=None, defocus=None, jpeg_quality=None,
               bubbles=[], fluid=None, residue=[])
    rgb, index = _passes()
    img, mask = post.apply(rgb, index, art)
    _, covered = post.draw_overlay(np.zeros((64, 64, 3)), art["overlay"])
    assert covered[-5:, :5].all() and covered[:8, :20].any()  # box bottom left, text top left
    assert not mask[covered].any()  # no lesion pixel survives under the graphics
    assert mask[(index > 0) & ~covered].all()  # and every other lesion pixel is kept
    assert (img[-5:, :5] == 0).all()
    no_ov = dict(art, overlay=None)
    _, mask_plain = post.apply(rgb, index, no_ov)
    assert mask_plain.sum() > mask.sum()


def test_wet_speckle_is_added_after_gain_and_is_deterministic():
    art = sample_artefacts(np.random.default_rng(5), overlay_prob=0.0)
    art.update(motion_blur=None, defocus=None, jpeg_quality=None, bubbles=[], fluid=None, residue=[],
               chromatic_aberration=0.0, noise_sigma=0.0, sharpen=None)  # sharpening would spread the specks
    rgb, index = _passes()
    glint = np.zeros((64, 64), np.float32)
    glint[30:33, 30:33] = 1.0
    a, _ = post.apply(rgb, index, art, glint)
    b, _ = post.apply(rgb, index, art, glint)
    dry, _ = post.apply(rgb, index, art, np.zeros_like(glint))
    assert np.array_equal(a, b)
    assert (a[30:33, 30:33] == 255).all() and not (dry[30:33, 30:33] == 255).all()  # specks clip to white
    assert np.array_equal(np.delete(a, slice(30, 33), 0), np.delete(dry, slice(30, 33), 0))


def test_processor_black_level_makes_the_far_lumen_black():
    art = sample_artefacts(np.random.default_rng(1), overlay_prob=0.0)
    art.update(motion_blur=None, defocus=None, jpeg_quality=None, bubbles=[], fluid=None, residue=[],
               noise_sigma=0.0, vignetting=0.0, fov_radius=1.5, chromatic_aberration=0.0)
    art["tone"]["black"] = 0.03
    rgb = np.full((32, 32, 3), 0.5, np.float32)
    rgb[:8] = 0.004  # far lumen: under 1 % of the near wall's light
    img, _ = post.apply(rgb, np.zeros((32, 32), np.float32), art)
    assert img[:8].max() == 0 and img[16:].min() > 100


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_overlay_probability_is_validated(bad):
    from synth.generator.config import ConfigError, RenderConfig

    with pytest.raises(ConfigError, match="--overlay-prob"):
        RenderConfig(overlay_prob=bad).validate()


def _high_frequency(img: np.ndarray) -> float:
    g = img.astype(np.float32).mean(axis=2)
    return float(np.abs(g[1:, :] - g[:-1, :]).mean() + np.abs(g[:, 1:] - g[:, :-1]).mean())


def test_structure_enhancement_sharpens_fine_relief_and_keeps_the_mean():
    rng = np.random.default_rng(0)
    art = sample_artefacts(rng, overlay_prob=0.0)
    art.update(fov_shape="circle", fov_radius=1.5, motion_blur=None, defocus=None, jpeg_quality=None,
               bubbles=[], fluid=None, residue=[], noise_sigma=0.0, chromatic_aberration=0.0)
    yy, xx = np.mgrid[0:64, 0:64]
    base = 0.2 + 0.05 * np.sin(xx * 1.3) * np.sin(yy * 0.9)  # a fine relief on a flat wall
    rgb = np.stack([base, 0.6 * base, 0.5 * base], axis=-1).astype(np.float32)
    index = np.zeros((64, 64), np.float32)
    art["sharpen"] = {"gain": 0.0, "radius": 0.01}
    plain, _ = post.apply(rgb, index, art)
    art["sharpen"] = {"gain": 1.0, "radius": 0.01}
    sharp, _ = post.apply(rgb, index, art)
    again, _ = post.apply(rgb, index, art)
    assert np.array_equal(sharp, again)
    assert _high_frequency(sharp) > 1.3 * _high_frequency(plain)
    assert abs(float(sharp.mean()) - float(plain.mean())) < 2.0  # detail added, brightness kept
    # brightness only: every channel moves by the same amount (no colour fringes) where nothing clips
    ok = (sharp > 2).all(axis=2) & (sharp < 253).all(axis=2)
    d = sharp.astype(int) - plain.astype(int)
    assert ok.mean() > 0.5 and np.abs(d[ok].max(axis=1) - d[ok].min(axis=1)).max() <= 2
