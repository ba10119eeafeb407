"""Camera and scope effects applied to rendered passes: exposure, tone, field of view, artefacts.

Pure numpy + OpenCV, no bpy. Every number comes from the spec's `artefacts` (with its own
`post_seed` for noise), so post-processing is as reproducible as the render. The mask is kept
pixel-exact with what is visible: pixels outside the field of view or under opaque residue are
removed from it, and the label is decided on the final mask.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

TAU = 2.0 * math.pi


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def fov_mask(size: int, shape: str, radius: float) -> np.ndarray:
    """Boolean (size, size): True inside the scope's circular or octagonal field of view.

    Deliberately not synth.generator.imaging's circle: the renderer cuts octagons too, and its
    radius is in units of half the side (1 = the inscribed circle), as every frame's spec
    records it (artefacts.fov_radius); the numbers of rendered frames depend on this formula.
    """
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    x, y = (xx - c) / (size / 2.0), (yy - c) / (size / 2.0)
    if shape == "circle":
        return x * x + y * y <= radius * radius
    # Regular octagon: |x|, |y| <= r and |x| + |y| <= r * sqrt(2) * cos(pi/8) * ... (clipped corners)
    return (np.abs(x) <= radius) & (np.abs(y) <= radius) & (np.abs(x) + np.abs(y) <= radius * 1.38)


def _disc(size: int, x: float, y: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Squared normalised distance to a disc centre (x, y in [-1, 1]) and the disc radius in pixels."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = c + x * size / 2.0, c - y * size / 2.0
    rp = max(1.0, r * size)
    return ((xx - cx) ** 2 + (yy - cy) ** 2) / (rp * rp), rp


def apply(rgb_linear: np.ndarray, index: np.ndarray, art: dict,
          glint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Final uint8 RGB image and uint8 instance mask from linear RGB, the object-index pass and the
    wet-speckle pass (`glint`, 0..1; spec version 4 on)."""
    size = rgb_linear.shape[0]
    rng = np.random.default_rng(art["post_seed"])
    # Auto gain, as endoscope processors do: the bright end of the view lands near white,
    # then the spec's exposure bias moves it a little either way.
    inside = fov_mask(size, art["fov_shape"], art["fov_radius"])
    lum = rgb_linear[inside].mean(axis=1) if inside.any() else rgb_linear.reshape(-1, 3).mean(axis=1)
    level = float(np.percentile(lum, 97)) if lum.size else 1.0
    img = rgb_linear * (0.85 / max(level, 1e-4)) * (2.0 ** art["exposure"])
    if glint is not None and art.get("glint_strength"):
        # The water film mirrors the scope's light: as bright as the light falling there (which the
        # diffuse level shows) times a gain, so near specks saturate and far ones stay faint.
        near = np.clip(img.mean(axis=2), 0.0, 1.0)
        img = img + (np.clip(glint, 0.0, 1.0) * art["glint_strength"] * near)[..., None]
    tone = art.get("tone")
    if tone:
        # Processor black level: the far lumen, which the scope's light barely reaches, goes black.
        img = np.maximum(img - tone["black"], 0.0) / (1.0 - tone["black"])
    # Vignetting of the optics: radial cos^4-like falloff.
    yy, xx = np.mgrid[0:size, 0:size]
    r2 = ((xx - (size - 1) / 2) ** 2 + (yy - (size - 1) / 2) ** 2) / (size / 2) ** 2
    img = img * (1.0 - art["vignetting"] * np.clip(r2, 0, 1.5) ** 1.5)[..., None]
    img = srgb_encode(img) ** art["gamma"]
    if tone:
        # Colour enhancement of endoscope processors: more saturated reds.
        grey = img.mean(axis=2, keepdims=True)
        img = np.clip(grey + (img - grey) * tone["saturation"], 0.0, 1.0)
    if art.get("chromatic_aberration"):
        img = _chromatic_aberration(img, art["chromatic_aberration"])
    if art.get("sharpen"):
        img = _structure_enhancement(img, art["sharpen"]["gain"], art["sharpen"]["radius"] * size)

    mask = np.rint(index).astype(np.int32)
    mask = np.clip(mask, 0, 255).astype(np.uint8)

    if art.get("fluid"):
        f = art["fluid"]
        # A pool of murky fluid on one side of the view: its surface line is curved (it lies along
        # the wall) and wavy, with a soft edge, and it gets more opaque with depth.
        # Its shape comes from the frame's post seed, so the spec fixes it.
        frng = np.random.default_rng([art["post_seed"], 1])
        ca, sa = math.cos(f["angle"]), math.sin(f["angle"])
        u = ((xx - size / 2) * ca + (yy - size / 2) * sa) / size  # toward the pool
        v = (-(xx - size / 2) * sa + (yy - size / 2) * ca) / size  # along its edge
        bend = frng.uniform(0.3, 1.2)
        wave = frng.uniform(0.004, 0.02) * np.sin(TAU * frng.uniform(1.5, 4.0) * v + frng.uniform(0, TAU))
        depth_in = u - (0.5 - f["extent"]) + bend * v * v + wave  # > 0 inside the pool
        alpha = np.clip(depth_in / 0.03, 0, 1) * f["opacity"] * (0.5 + 0.5 * np.clip(depth_in / 0.25, 0, 1))
        img = img * (1 - alpha[..., None]) + np.asarray(f["color"]) * alpha[..., None]
    for blob in art.get("residue", []):
        d2, rp = _disc(size, blob["x"], blob["y"], blob["r"])
        wobble = 1.0 + 0.25 * np.sin(np.arctan2(yy - size / 2, xx - size / 2) * 5 + blob["x"] * 10)
        alpha = np.clip((1.0 - d2 / wobble) * 4.0, 0, 1)
        shade = 0.7 + 0.3 * np.clip(1 - d2, 0, 1)
        img = img * (1 - alpha[..., None]) + (np.asarray(blob["color"]) * shade[..., None]) * alpha[..., None]
        mask[alpha > 0.5] = 0  # opaque residue hides what is under it
    for b in art.get("bubbles", []):
        d2, rp = _disc(size, b["x"], b["y"], b["r"])
        d = np.sqrt(d2)
        rim = np.exp(-((d - 1.0) ** 2) / (2 * (0.6 / rp + 0.06) ** 2)) * 0.35
        glint_d2, _ = _disc(size, b["x"] - 0.4 * b["r"] * 2, b["y"] + 0.4 * b["r"] * 2, b["r"] * 0.25)
        glint = np.exp(-glint_d2 * 2.0) * 0.8
        img = img + (rim + glint)[..., None]

    if art.get("motion_blur"):
        mb = art["motion_blur"]
        length = max(2, int(round(mb["length"] * size)))
        k = np.zeros((length, length), np.float32)
        k[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), mb["angle"], 1.0)
        k = cv2.warpAffine(k, rot, (length, length))
        k /= max(k.sum(), 1e-6)
        img = cv2.filter2D(img.astype(np.float32), -1, k, borderType=cv2.BORDER_REFLECT)
    if art.get("defocus"):
        sigma = art["defocus"]["sigma"] * size
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)

    img = img + rng.normal(0.0, art["noise_sigma"], img.shape) * (0.5 + 0.5 * np.sqrt(np.clip(img, 0, 1)))
    img = np.where(inside[..., None], img, 0.0)
    mask[~inside] = 0
    if art.get("overlay"):
        img, covered = draw_overlay(img, art["overlay"])
        mask[covered] = 0  # what the processor's graphics hide is not visible lesion
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if art.get("jpeg_quality"):
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(art["jpeg_quality"])])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return out, mask


def _structure_enhancement(img: np.ndarray, gain: float, sigma_px: float) -> np.ndarray:
    """The processor's structure (edge) enhancement: an unsharp mask on brightness only, so fine
    relief, vessel edges and speckle come out crisp without colour fringes."""
    img = img.astype(np.float32)
    lum = img.mean(axis=2)
    detail = lum - cv2.GaussianBlur(lum, (0, 0), max(sigma_px, 0.3))
    return np.clip(img + gain * detail[..., None], 0.0, 1.0)


def _chromatic_aberration(img: np.ndarray, amount: float) -> np.ndarray:
    """Lateral colour of the scope's lens: red imaged slightly larger, blue slightly smaller."""
    size = img.shape[0]
    c = (size - 1) / 2.0
    out = img.astype(np.float32).copy()
    for ch, k in ((0, 1.0 + amount), (2, 1.0 - amount)):
        m = np.float32([[k, 0, c * (1 - k)], [0, k, c * (1 - k)]])
        out[..., ch] = cv2.warpAffine(out[..., ch], m, (size, size), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
    return out


def draw_overlay(img: np.ndarray, ov: dict) -> tuple[np.ndarray, np.ndarray]:
    """The processor's on-screen graphics: lines of text at the top left and a thumbnail box at the
    bottom left, as in many Kvasir-SEG frames. Returns the image and the pixels they cover."""
    size = img.shape[0]
    layer = np.zeros((size, size), np.uint8)
    colour = np.zeros((size, size, 3), np.float32)
    if ov.get("box"):
        b = ov["box"]
        w, h = int(round(b["w"] * size)), int(round(b["h"] * size))
        cv2.rectangle(layer, (0, size - h), (w, size - 1), 255, -1)
        colour[size - h:, :w + 1] = b["color"]
        if b.get("guide"):
            # The scope position guide drawn inside the box: a green curve.
            pts = [(int(w * (0.2 + 0.6 * t)), int(size - h * (0.25 + 0.5 * abs(math.sin(3 * t + b["guide"])))))
                   for t in np.linspace(0, 1, 12)]
            cv2.polylines(colour, [np.asarray(pts, np.int32)], False, (0.2, 0.8, 0.3), max(1, size // 128))
    if ov.get("text_lines"):
        scale = max(0.2, size / 640.0)
        text_layer = np.zeros((size, size), np.uint8)
        for k, line in enumerate(ov["text_lines"]):
            y = int(size * (0.04 + 0.045 * k)) + int(10 * scale)
            cv2.putText(text_layer, line, (int(size * 0.01), y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                        max(1, int(round(scale))), cv2.LINE_AA)
        hit = text_layer > 64
        layer[hit] = 255
        colour[hit] = ov["text_color"]
    covered = layer > 0
    out = np.where(covered[..., None], colour, img)
    return out, covered


def depth_to_uint16(depth: np.ndarray, depth_scale_m: float, units_per_metre: float = 100.0) -> np.ndarray:
    """Scene depth (Blender units = cm) to uint16 in steps of `depth_scale_m`; no hit -> 0."""
    metres = depth / units_per_metre
    q = np.rint(metres / depth_scale_m)
    q[(depth > 1e5) | ~np.isfinite(depth)] = 0
    return np.clip(q, 0, 65535).astype(np.uint16)
