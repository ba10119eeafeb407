"""No-training restyling (synth.generator.restyle) and `synth refine --method reinhard|histogram|fda`.

Tiny made-up frames only: blue-tinted "renders" inside a black circular scope border, and
red-tinted "real" frames with an octagonal border, a black overlay box and white "text" in a
corner, like Kvasir-SEG's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from synth.generator import restyle
from synth.generator.dataset import Dataset, DatasetWriter, frame_id
from synth.generator.post import fov_mask

QUIET = dict(log=lambda *_: None)
SIZE = 32
ART = {"fov_shape": "circle", "fov_radius": 0.95}


def blue_render(i: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A bluish textured frame inside a black circle, with a lesion disc and its mask."""
    rng = np.random.default_rng([7, i])
    inside = fov_mask(size, ART["fov_shape"], ART["fov_radius"])
    yy, xx = np.mgrid[:size, :size]
    shade = 0.7 + 0.3 * np.cos(xx / size * 3 + i) * np.sin(yy / size * 2)
    img = np.array([60, 80, 170], float) * shade[..., None] + rng.normal(0, 10, (size, size, 3))
    mask = np.zeros((size, size), np.uint8)
    if i % 2 == 0:
        mask[(yy - size // 2) ** 2 + (xx - size // 2 - 2) ** 2 <= (size // 6) ** 2] = 1
        img[mask > 0] += 40
    img[~inside] = 0
    mask[~inside] = 0
    return np.clip(img, 0, 255).astype(np.uint8), mask


def red_real(i: int, size: int = 48) -> np.ndarray:
    """A reddish frame with Kvasir-like clutter outside the mucosa: octagon border, box, text."""
    rng = np.random.default_rng([8, i])
    base = np.array([190 - 10 * i, 90, 70], float)
    img = base + rng.normal(0, 15, (size, size, 3))
    img[~fov_mask(size, "octagon", 1.0)] = 0
    img[: size // 6, : size // 3] = 255  # on-screen text, in the corner
    img[-size // 4:, : size // 4] = 0  # the black position-guide box
    return np.clip(img, 0, 255).astype(np.uint8)


def lab_mean(img: np.ndarray, where: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[where].mean(0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("restyle")
    w = DatasetWriter(root / "rendered", config={"toy": 1}, class_names=["normal", "lesion"])
    for i in range(6):
        img, mask = blue_render(i)
        w.write_frame(frame_id(i), image=img, label="lesion" if mask.any() else "normal", mask=mask,
                      depth=np.full((SIZE, SIZE), 500 + i, np.uint16), spec={"i": i, "artefacts": ART}, seed=i)
    w.finalize(manifest={"kind": "rendered", "command": "test", "depth_scale": 0.001})
    w = DatasetWriter(root / "real", config={"toy": 2}, class_names=["normal", "lesion"])
    for i in range(8):
        w.write_frame(f"r{i}", image=red_real(i), label="lesion")
    w.finalize(manifest={"kind": "real", "command": "test"})
    return root


# --------------------------------------------------------------------------- the functions


@pytest.mark.parametrize("method", restyle.METHODS)
def test_moves_lab_mean_toward_style_and_keeps_border(method):
    render, _ = blue_render(0)
    style = red_real(0)
    inside = fov_mask(SIZE, ART["fov_shape"], ART["fov_radius"])
    target = lab_mean(cv2.resize(style, (SIZE, SIZE), interpolation=cv2.INTER_AREA),
                      restyle.real_fov(cv2.resize(style, (SIZE, SIZE), interpolation=cv2.INTER_AREA)))
    out = restyle.restyle(method, render, style, beta=0.05)
    assert out.shape == render.shape and out.dtype == np.uint8
    before = np.linalg.norm(lab_mean(render, inside) - target)
    after = np.linalg.norm(lab_mean(out, inside) - target)
    assert before > 40 and after < 0.2 * before, (before, after)
    assert (out[~inside] == 0).all()  # the scope border stays black
    assert lab_mean(out, inside)[1] > lab_mean(render, inside)[1] + 20  # redder (Lab a*)


@pytest.mark.parametrize("method", restyle.METHODS)
def test_outside_the_fields_of_view_nothing_counts_or_changes(method):
    render, _ = blue_render(1)
    rfov = fov_mask(SIZE, "circle", 0.7)
    render[~rfov] = 37  # not black: must still come back untouched
    style = red_real(2, size=SIZE)
    sfov = restyle.real_fov(style)
    cluttered = style.copy()
    cluttered[~sfov] = 255  # change only what lies outside the real frame's field of view
    a = restyle.restyle(method, render, style, sfov, render_fov=rfov)
    b = restyle.restyle(method, render, cluttered, sfov, render_fov=rfov)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[~rfov], render[~rfov])
    assert not np.array_equal(a[rfov], render[rfov])


@pytest.mark.parametrize("method", restyle.METHODS)
def test_strength_zero_and_self_style_keep_the_render(method):
    render, _ = blue_render(2)
    inside = fov_mask(SIZE, ART["fov_shape"], ART["fov_radius"])
    np.testing.assert_array_equal(restyle.restyle(method, render, red_real(0), strength=0.0), render)
    # Its own style (same field of view): what it changes is rounding only.
    same = restyle.restyle(method, render, render, inside, render_fov=inside)
    assert np.abs(same.astype(int) - render).max() <= 2


def test_fda_changes_only_low_frequencies_and_checks_beta():
    render, mask = blue_render(0)
    out = restyle.fda(render, red_real(0), beta=0.05)
    inside = fov_mask(SIZE, ART["fov_shape"], ART["fov_radius"])
    diff = out.astype(float) - render
    # The change is smooth: the lesion edge (a high-frequency feature) is as sharp as before.
    lap = lambda im: np.abs(cv2.Laplacian(im.astype(np.float32).mean(2), cv2.CV_32F))
    edge = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool) & inside
    assert np.abs(lap(out)[edge].mean() - lap(render)[edge].mean()) < 0.2 * lap(render)[edge].mean()
    assert np.std(diff[inside], 0).max() < 0.5 * np.abs(diff[inside].mean(0)).max()
    assert restyle.fda_band((128, 128), 0.01) == 1 and restyle.fda_band((64, 64), 0.01) == 0
    for beta in (0.0, -0.1, 0.51):
        with pytest.raises(ValueError, match="beta"):
            restyle.fda(render, red_real(0), beta=beta)


def test_fields_of_view():
    # From the spec: the very mask post.py cut.
    img, _ = blue_render(0)
    np.testing.assert_array_equal(restyle.render_fov(img, {"artefacts": {"fov_shape": "octagon", "fov_radius": 0.9}}),
                                  fov_mask(SIZE, "octagon", 0.9))
    # Without one: the black border touching the edge is out, a black pixel inside stays in.
    img[SIZE // 2, SIZE // 2] = 0
    fov = restyle.render_fov(img)
    np.testing.assert_array_equal(fov, fov_mask(SIZE, ART["fov_shape"], ART["fov_radius"]))
    # A real frame: inside the classify circle, off the black box and the text's surroundings.
    real = red_real(0)
    keep = restyle.real_fov(real)
    assert keep.sum() > 0.4 * keep.size and not (real[keep].max(1) < restyle.DARK).any()
    assert not keep[~fov_mask(48, "circle", restyle.REAL_FOV_RADIUS)].any()


def test_style_choice_is_seeded():
    a = [restyle.style_choice(3, i, 50) for i in range(20)]
    assert a == [restyle.style_choice(3, i, 50) for i in range(20)]
    assert a != [restyle.style_choice(4, i, 50) for i in range(20)]
    assert len(set(a)) > 5
    with pytest.raises(ValueError):
        restyle.style_choice(0, 0, 0)


# --------------------------------------------------------------------------- synth refine


def _refine(folders, out, method, seed=0, **kw):
    from synth.diffusion.refine import RefineConfig, refine

    cfg = RefineConfig(rendered=str(folders / "rendered"), real=[str(folders / "real")], out=str(out),
                       method=method, seed=seed, **kw)
    return Dataset.open(refine(cfg, **QUIET))


@pytest.mark.parametrize("method", restyle.METHODS)
def test_refine_keeps_masks_labels_ids_and_records_the_style(folders, tmp_path, method):
    src = Dataset.open(folders / "rendered")
    ref = _refine(folders, tmp_path / "a", method, seed=1, beta=0.1)
    assert [r.id for r in ref] == [r.id for r in src] and ref.labels() == src.labels()
    assert ref.manifest["kind"] == "refined" and ref.manifest["depth_scale"] == 0.001
    assert ref.manifest["restyle"]["method"] == method and ref.manifest["style_frames"] == 8
    real = Dataset.open(folders / "real")
    real_by_id = {r.id: r for r in real}
    real_ids = set(real_by_id)
    inside = fov_mask(SIZE, ART["fov_shape"], ART["fov_radius"])
    for a, b in zip(src, ref):
        np.testing.assert_array_equal(ref.mask(b), src.mask(a))
        np.testing.assert_array_equal(ref.depth(b), src.depth(a))
        assert ref.spec(b) == src.spec(a) and b.lesion_pixels == a.lesion_pixels
        assert b.extra["method"] == method and b.extra["strength"] == 1.0
        assert (b.extra.get("beta") == 0.1) == (method == "fda")
        assert b.extra["style_id"] in real_ids and b.extra["style"].endswith(":" + b.extra["style_id"])
        img = ref.image(b)
        assert (img[~inside] == 0).all()
        style = cv2.resize(real.image(real_by_id[b.extra["style_id"]]), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        target = lab_mean(style, restyle.real_fov(style))
        before = np.linalg.norm(lab_mean(src.image(a), inside) - target)
        assert np.linalg.norm(lab_mean(img, inside) - target) < 0.3 * before


def test_refine_same_seed_same_pixels_other_seed_other_styles(folders, tmp_path):
    a = _refine(folders, tmp_path / "a", "fda", seed=5)
    b = _refine(folders, tmp_path / "b", "fda", seed=5)
    c = _refine(folders, tmp_path / "c", "fda", seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(a.image(x), b.image(y))
        assert x.extra["style_id"] == y.extra["style_id"]
    assert [r.extra["style_id"] for r in a] != [r.extra["style_id"] for r in c]
    assert any(not np.array_equal(a.image(x), c.image(y)) for x, y in zip(a, c))
    # Resuming draws the same styles: a second run over the finished folder changes nothing.
    again = _refine(folders, tmp_path / "a", "fda", seed=5)
    assert [r.extra["style_id"] for r in again] == [r.extra["style_id"] for r in a]


def test_refine_real_holdout_never_uses_the_test_part(folders, tmp_path):
    from synth.classifier.data import holdout_split

    real = Dataset.open(folders / "real")
    _, test = holdout_split(real, 0.5, 3)
    test_ids = {real.records[i].id for i in test}
    ref = _refine(folders, tmp_path / "h", "reinhard", seed=3, real_holdout=0.5)
    assert ref.manifest["style_frames"] == 8 - len(test_ids)
    assert not {r.extra["style_id"] for r in ref} & test_ids


@pytest.mark.parametrize("kw,message", [
    (dict(real=[]), "--real"),
    (dict(beta=0.0), "--beta"),
    (dict(beta=0.7), "--beta"),
    (dict(strength=1.2), "--strength"),
    (dict(strength=-0.1), "--strength"),
    (dict(real_holdout=1.0), "--real-holdout"),
    (dict(model="some/model"), "no model"),
])
def test_refine_bad_input(folders, tmp_path, kw, message):
    from synth.diffusion.refine import RefineConfig, RefineError, refine

    args = dict(rendered=str(folders / "rendered"), real=[str(folders / "real")], out=str(tmp_path / "o"),
                method="fda")
    args.update(kw)
    with pytest.raises(RefineError, match=message):
        refine(RefineConfig(**args), **QUIET)
    assert not (tmp_path / "o").exists()
