"""Restyle rendered frames toward real ones without training: colour transfer, histogram matching, FDA.

Pure numpy + OpenCV; imports neither torch nor bpy, so `synth refine` (diffusion/refine.py) and
`synth classify --real-style` (classifier/data.py) can both use it. Three methods, each taking a
render, a real "style" frame and, optionally, both frames' fields of view:

- `reinhard`: colour transfer in CIELAB (Reinhard et al., "Color transfer between images",
  2001): each Lab channel of the render is shifted and scaled to the style frame's mean and
  standard deviation.
- `histogram`: per-channel histogram matching (the render's RGB quantiles mapped onto the style
  frame's), the rule of skimage.exposure.match_histograms, restricted to the fields of view.
- `fda`: Fourier domain adaptation (Yang & Soatto, CVPR 2020): the low-frequency amplitude
  spectrum of the render, inside a centred square of half-size floor(beta x min(H, W)), is
  replaced by the style frame's; the phase (the layout, and so the mask) is kept.

Statistics come only from inside each frame's field of view: a real Kvasir-SEG frame has a
black octagonal border, on-screen text in a corner and often a black position-guide box, none
of which is mucosa. `real_fov` is the circle `synth classify` uses (0.44 of the side) minus
black overlay pixels; `render_fov` is the render's own scope shape from its spec (the very mask
generator/post.py applied) or, without a spec, every pixel not in the black border. Pixels
outside the render's field of view are returned exactly as they were, so the border stays black.

For FDA, outside each field of view the frame is filled with its in-view mean colour before
the transform: the amplitude at the lowest frequencies then describes the mucosa's colour and
illumination, not the size and shape of the black border.

The style frame for frame i is drawn by `style_choice(seed, i, n)`, a numpy Generator seeded
with (seed, i): the same seed gives the same styles whatever order frames are processed in.
"""

from __future__ import annotations

import cv2
import numpy as np

from synth.generator.imaging import resize_image, resize_mask
from synth.generator.post import fov_mask
from synth.rng import STYLE_STREAM

METHODS = ("reinhard", "histogram", "fda")
# The circle `synth classify` masks every image with (0.44 of the side), in fov_mask's units
# (1 = the inscribed circle): it keeps a real frame's corners, text and border out.
REAL_FOV_RADIUS = 0.88
# Pixels whose channels are all below this (grown by 2 px) are a real frame's black overlays.
DARK = 10
DEFAULT_BETA = 0.01  # the paper's value


# --------------------------------------------------------------------------- fields of view


def _square_mask(h: int, w: int, shape: str, radius: float) -> np.ndarray:
    """generator.post's scope mask at (h, w): drawn square, stretched when the frame is not.

    The renderer's mask on purpose (not synth.generator.imaging.circle): a render's field of
    view must be the shape post.py cut, and real frames use the same code so both sides of a
    transfer are masked alike (for a square frame, radius 0.88 here is imaging's 0.44).
    """
    m = fov_mask(max(h, w), shape, radius)
    if (h, w) != m.shape:
        m = resize_mask(m.astype(np.uint8), (h, w)).astype(bool)
    return m


def real_fov(image: np.ndarray, *, radius: float = REAL_FOV_RADIUS, dark: int = DARK) -> np.ndarray:
    """Where a real frame's statistics are taken: the centred circle, off black overlay pixels.

    Falls back to the whole circle when almost nothing is left (a nearly black frame).
    """
    h, w = image.shape[:2]
    circle = _square_mask(h, w, "circle", radius)
    if not dark:
        return circle
    black = (_channels(image).max(axis=2) < dark).astype(np.uint8)
    keep = circle & ~cv2.dilate(black, np.ones((5, 5), np.uint8)).astype(bool)
    return keep if keep.sum() >= max(16, circle.sum() // 20) else circle


def render_fov(image: np.ndarray, spec: dict | None = None) -> np.ndarray:
    """The render's field of view: from its spec (the shape post.py cut) or, without one, every
    pixel except the exactly-black region connected to the image edge (the scope's border)."""
    h, w = image.shape[:2]
    art = (spec or {}).get("artefacts") or {}
    if "fov_shape" in art and "fov_radius" in art:
        return _square_mask(h, w, art["fov_shape"], float(art["fov_radius"]))
    black = (_channels(image).max(axis=2) == 0).astype(np.uint8)
    if not black.any():
        return np.ones((h, w), bool)
    # Components of black pixels (label 0 is everything else) that touch the image edge.
    _, lab = cv2.connectedComponents(black, connectivity=4)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return ~np.isin(lab, edge[edge > 0])


# --------------------------------------------------------------------------- the methods


def _channels(image: np.ndarray) -> np.ndarray:
    return image[..., None] if image.ndim == 2 else image


def _prepare(render, style, style_fov, rfov):
    """Check inputs; the style frame (and its field of view) at the render's size."""
    render = _channels(np.asarray(render))
    style = _channels(np.asarray(style))
    if render.dtype != np.uint8 or style.dtype != np.uint8:
        raise ValueError("restyle works on uint8 images")
    if render.shape[2] != style.shape[2]:
        raise ValueError(f"render has {render.shape[2]} channels, style frame {style.shape[2]}")
    h, w = render.shape[:2]
    if style.shape[:2] != (h, w):
        style = resize_image(style, (h, w)).reshape(h, w, style.shape[2])
        if style_fov is not None:
            style_fov = resize_mask(np.asarray(style_fov, np.uint8), (h, w)).astype(bool)
    sfov = real_fov(style) if style_fov is None else np.asarray(style_fov, bool)
    rfov = render_fov(render) if rfov is None else np.asarray(rfov, bool)
    if sfov.shape != (h, w) or rfov.shape != (h, w):
        raise ValueError("a field-of-view mask does not match its image")
    if not rfov.any() or not sfov.any():
        raise ValueError("an empty field of view: nothing to take statistics from")
    return render, style, sfov, rfov


def _finish(render: np.ndarray, out: np.ndarray, rfov: np.ndarray, strength: float) -> np.ndarray:
    """Blend by `strength` inside the render's field of view; outside, the render unchanged."""
    out = render + strength * (out - render.astype(np.float64)) if strength != 1.0 else out
    res = render.copy()
    res[rfov] = np.clip(np.rint(out[rfov]), 0, 255).astype(np.uint8)
    return res


def _to_lab(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    return cv2.cvtColor(x, cv2.COLOR_RGB2Lab) if img.shape[2] == 3 else x


def _from_lab(lab: np.ndarray) -> np.ndarray:
    x = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) if lab.shape[2] == 3 else lab
    return np.clip(x, 0.0, 1.0).astype(np.float64) * 255.0


def reinhard(render, style, style_fov=None, *, render_fov=None, strength: float = 1.0) -> np.ndarray:
    """Lab mean/std colour transfer of `render` to `style` (uint8 RGB, any sizes)."""
    r, s, sfov, rfov = _prepare(render, style, style_fov, render_fov)
    rl, sl = _to_lab(r), _to_lab(s)
    src, ref = rl[rfov].astype(np.float64), sl[sfov].astype(np.float64)
    mu_s, sd_s = src.mean(0), src.std(0)
    mu_t, sd_t = ref.mean(0), ref.std(0)
    scale = np.where(sd_s > 1e-6, sd_t / np.maximum(sd_s, 1e-6), 1.0)  # a flat channel only moves
    lab = rl.copy()
    lab[rfov] = ((src - mu_s) * scale + mu_t).astype(np.float32)
    return _finish(r, _from_lab(lab), rfov, strength).reshape(np.shape(render))


def _match_channel(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Map src values so their quantiles match ref's (skimage's _match_cumulative_cdf)."""
    s_vals, s_inv, s_cnt = np.unique(src, return_inverse=True, return_counts=True)
    r_vals, r_cnt = np.unique(ref, return_counts=True)
    s_q = np.cumsum(s_cnt) / src.size
    r_q = np.cumsum(r_cnt) / ref.size
    return np.interp(s_q, r_q, r_vals)[s_inv.reshape(-1)]


def histogram(render, style, style_fov=None, *, render_fov=None, strength: float = 1.0) -> np.ndarray:
    """Per-channel histogram matching of the render's field of view to the style frame's."""
    r, s, sfov, rfov = _prepare(render, style, style_fov, render_fov)
    out = r.astype(np.float64)
    for c in range(r.shape[2]):
        out[..., c][rfov] = _match_channel(r[..., c][rfov], s[..., c][sfov])
    return _finish(r, out, rfov, strength).reshape(np.shape(render))


def fda_band(shape: tuple[int, int], beta: float) -> int:
    """Half-size of FDA's low-frequency square: floor(beta x min(H, W)), as in the paper's code."""
    return int(np.floor(beta * min(shape)))


def fda(render, style, style_fov=None, *, render_fov=None, beta: float = DEFAULT_BETA,
        strength: float = 1.0) -> np.ndarray:
    """Fourier domain adaptation: the style frame's low-frequency amplitude, the render's phase."""
    if not 0.0 < beta <= 0.5:
        raise ValueError(f"beta must be in (0, 0.5], got {beta}")
    r, s, sfov, rfov = _prepare(render, style, style_fov, render_fov)
    src = r.astype(np.float64)
    trg = s.astype(np.float64)
    # Outside each field of view, the in-view mean: the border adds no low-frequency energy.
    src[~rfov] = src[rfov].mean(0)
    trg[~sfov] = trg[sfov].mean(0)
    f_src = np.fft.fftshift(np.fft.fft2(src, axes=(0, 1)), axes=(0, 1))
    f_trg = np.fft.fftshift(np.fft.fft2(trg, axes=(0, 1)), axes=(0, 1))
    amp, phase = np.abs(f_src), np.angle(f_src)
    h, w = r.shape[:2]
    b = fda_band((h, w), beta)
    cy, cx = h // 2, w // 2  # where fftshift puts the zero frequency
    win = (slice(max(0, cy - b), cy + b + 1), slice(max(0, cx - b), cx + b + 1))
    amp[win] = np.abs(f_trg)[win]
    out = np.fft.ifft2(np.fft.ifftshift(amp * np.exp(1j * phase), axes=(0, 1)), axes=(0, 1)).real
    return _finish(r, out, rfov, strength).reshape(np.shape(render))


def restyle(method: str, render, style, style_fov=None, *, render_fov=None, beta: float = DEFAULT_BETA,
            strength: float = 1.0) -> np.ndarray:
    """Apply one of METHODS (uint8 in, uint8 out, same shape as `render`)."""
    if method == "fda":
        return fda(render, style, style_fov, render_fov=render_fov, beta=beta, strength=strength)
    if method == "reinhard":
        return reinhard(render, style, style_fov, render_fov=render_fov, strength=strength)
    if method == "histogram":
        return histogram(render, style, style_fov, render_fov=render_fov, strength=strength)
    raise ValueError(f"unknown restyle method {method!r}; choose one of {', '.join(METHODS)}")


def style_choice(seed: int, frame_index: int, n: int) -> int:
    """Index of the style frame (among n) for frame `frame_index`; depends only on (seed, index)."""
    if n <= 0:
        raise ValueError("no style frames to choose from")
    rng = np.random.default_rng(np.random.SeedSequence([seed, STYLE_STREAM, frame_index]))
    return int(rng.integers(n))


def style_rng(seed: int, *stream: int) -> np.random.Generator:
    """A Generator for drawing styles on the fly (classify), apart from style_choice's stream."""
    return np.random.default_rng(np.random.SeedSequence([seed, STYLE_STREAM, 1, *stream]))
