"""One field-of-view circle (synth.generator.imaging) gives, pixel for pixel, the masks the
separate formulas gave before they became calls of it; the renderer's mask stays its own."""

from __future__ import annotations

import numpy as np
import pytest

from synth.generator import imaging

SIZES = list(range(4, 97)) + [128, 224, 256]
RADII = [0.3, 0.4, 0.42, 0.44, 0.45, 0.5, 0.61]


# The formulas as they stood in classifier/data.py, generator/patches.py and diffusion/anomaly.py.
def _classify_fov(size, radius):
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= (radius * size) ** 2


def _patches_outside(h, w, radius):
    yy, xx = np.mgrid[0:h, 0:w]
    r = radius * min(h, w)
    return (yy + 0.5 - h / 2) ** 2 + (xx + 0.5 - w / 2) ** 2 > r * r


def _anomaly_fov(size):
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) <= (size / 2) ** 2


@pytest.mark.parametrize("radius", RADII)
def test_one_circle_is_every_former_square_mask(radius):
    from synth.classifier.data import fov_mask
    from synth.generator.patches import outside_circle
    from synth.measure.realism import circle

    for s in SIZES:
        want = _classify_fov(s, radius)
        np.testing.assert_array_equal(imaging.circle(s, s, radius), want)
        np.testing.assert_array_equal(fov_mask(s, radius), want)
        np.testing.assert_array_equal(circle(s, s, radius), want)
        np.testing.assert_array_equal(outside_circle(s, s, radius), _patches_outside(s, s, radius))


def test_non_square_frames_and_the_inscribed_circle():
    from synth.diffusion.anomaly import fov_mask as anomaly_fov
    from synth.generator.patches import outside_circle

    for h, w in [(64, 80), (80, 64), (33, 50), (100, 101)]:
        for r in RADII:
            np.testing.assert_array_equal(outside_circle(h, w, r), _patches_outside(h, w, r))
            assert imaging.circle(h, w, r).shape == (h, w)
    for s in SIZES:
        np.testing.assert_array_equal(anomaly_fov(s), _anomaly_fov(s))


def test_radius_is_a_fraction_of_the_shorter_side():
    m = imaging.circle(41, 61, 0.5)
    assert m[20].sum() == 41 and m[:, 30].sum() == 41  # diameter = the shorter side, centred
    assert not m[0, 0] and m[20, 30]


def test_renderer_mask_differs_on_purpose():
    """post.fov_mask counts its radius in half-sides (and cuts octagons): 0.88 there is 0.44 here."""
    from synth.generator.post import fov_mask

    for s in (32, 64, 128):
        np.testing.assert_array_equal(fov_mask(s, "circle", 0.88), imaging.circle(s, s, 0.44))
        assert (fov_mask(s, "octagon", 0.88) != imaging.circle(s, s, 0.44)).any()


def test_mask_resize_keeps_ids():
    m = np.zeros((8, 8), np.uint16)
    m[2:6, 2:6] = 7
    out = imaging.resize_mask(m, 16)
    assert out.shape == (16, 16) and set(np.unique(out)) == {0, 7}
    assert imaging.resize_mask(m, 8) is m
