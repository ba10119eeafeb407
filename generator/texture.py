"""Mucosa surface maps baked in numpy from a scene spec: albedo with vessels, patches, fine mottling
(spec version 8) and mucus, and (spec version 6) the lesions' surface: the same tissue without the
vessel network, mottled.

Pure numpy + OpenCV, no bpy. Real colonic mucosa shows red branching submucosal vessels (thin
sharp ones over wider blurred deeper ones), patchy colour and strands of mucus; procedural noise
in a shader gives worm-like ridges instead. So the surface is drawn here, as an image laid over the
lumen's (theta, s) texture coordinates, and handed to Blender as an image texture. Every stroke
comes from a generator seeded with the spec's `texture_seed`: the same spec gives the same texels.

Layout: columns run around the lumen (u = theta / 2 pi, wrapping), rows along it (s in cm).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Texels: about 0.13 mm around a 2 cm radius lumen and 0.15 mm along it (a 128-256 px frame of a
# wall 1-3 cm away sees 0.2-0.6 mm per pixel, so vessels a pixel wide stay sharp).
TEX_W, TEX_H = 1024, 2048


def _noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [-1, 1] that wraps around the lumen (columns)."""
    h, w = shape
    grid = rng.uniform(-1, 1, (cells[0] + 3, cells[1])).astype(np.float32)
    grid = np.concatenate([grid, grid[:, :3]], axis=1)  # wrap columns
    big = cv2.resize(grid, (int(w * (cells[1] + 3) / cells[1]), h), interpolation=cv2.INTER_CUBIC)
    return big[:, :w]


def _vessel_tree(rng: np.random.Generator, canvas: np.ndarray, x: float, y: float, angle: float,
                 width: float, length: float, depth: int) -> None:
    """Draw one branching vessel as antialiased polylines (a random walk that forks and thins)."""
    pts = [(x, y)]
    step = 6.0
    n = max(2, int(length / step))
    for k in range(n):
        angle += rng.normal(0, 0.22)
        x += step * math.cos(angle)
        y += step * math.sin(angle)
        pts.append((x, y))
        if depth > 0 and rng.random() < 0.07:
            side = 1 if rng.random() < 0.5 else -1
            _vessel_tree(rng, canvas, x, y, angle + side * rng.uniform(0.4, 1.2), width * rng.uniform(0.55, 0.8),
                         length * rng.uniform(0.3, 0.6), depth - 1)
    poly = np.round(np.asarray(pts) * 4).astype(np.int32)  # 2 fractional bits for antialiasing
    cv2.polylines(canvas, [poly], False, 1.0, thickness=max(1, int(round(width))), lineType=cv2.LINE_AA, shift=2)


def vessel_layer(rng: np.random.Generator, count: int, width_px: float, length_px: float,
                 blur_px: float) -> np.ndarray:
    """A (TEX_H, TEX_W) map in [0, 1] of `count` vessel trees, wrapped around the lumen."""
    pad = int(length_px * 0.6) + 8
    canvas = np.zeros((TEX_H, TEX_W + 2 * pad), np.float32)
    for _ in range(count):
        _vessel_tree(rng, canvas, rng.uniform(pad, TEX_W + pad), rng.uniform(0, TEX_H), rng.uniform(0, math.tau),
                     width_px * rng.uniform(0.7, 1.4), length_px * rng.uniform(0.6, 1.4), depth=3)
    out = canvas[:, pad:pad + TEX_W].copy()
    out[:, :pad] += canvas[:, TEX_W + pad:]  # what ran past the right edge re-enters on the left
    out[:, TEX_W - pad:] += canvas[:, :pad]
    if blur_px > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_px)
    return np.clip(out, 0.0, 1.0)


def _strands(rng: np.random.Generator, count: int) -> np.ndarray:
    """Mucus: a few long, wavy, soft translucent strands."""
    canvas = np.zeros((TEX_H, TEX_W), np.float32)
    for _ in range(count):
        x, y, a = rng.uniform(0, TEX_W), rng.uniform(0, TEX_H), rng.uniform(0, math.tau)
        pts = []
        for _ in range(int(rng.integers(10, 40))):
            a += rng.normal(0, 0.15)
            x, y = x + 8 * math.cos(a), y + 8 * math.sin(a)
            pts.append((x % TEX_W, y))
        poly = np.round(np.asarray(pts) * 4).astype(np.int32)
        cv2.polylines(canvas, [poly], False, float(rng.uniform(0.4, 1.0)), thickness=int(rng.integers(2, 7)),
                      lineType=cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(canvas, (0, 0), 2.0)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _patchy_base(rng: np.random.Generator, m: dict) -> np.ndarray:
    """The tissue's colour with its redder and paler patches, before vessels and mucus."""
    base = srgb_to_linear(m["base_color"])
    # Patchy colour: two octaves of smooth noise, redder where positive, paler where negative.
    patch = (_noise(rng, (TEX_H, TEX_W), (12, 6)) * 0.65 + _noise(rng, (TEX_H, TEX_W), (60, 30)) * 0.35)
    patch *= m["color_variation"]
    red = srgb_to_linear(m["patch_color"])
    albedo = base[None, None, :] * (1.0 - np.clip(patch, 0, 1)[..., None]) + red * np.clip(patch, 0, 1)[..., None]
    return albedo * (1.0 + np.clip(patch, -1, 0)[..., None] * -0.6)  # paler patches


def _grain(rng: np.random.Generator) -> np.ndarray:
    """Fine value noise in about [-1, 1]: two octaves, cells of about 1.2 and 0.5 mm (8 and 3 texels)."""
    return _noise(rng, (TEX_H, TEX_W), (256, 128)) * 0.7 + _noise(rng, (TEX_H, TEX_W), (640, 320)) * 0.3


def bake_lesion_surface(m: dict) -> np.ndarray:
    """Linear RGB albedo (TEX_H, TEX_W, 3) of the scene's lesions (spec version 6): the mucosa's own
    patchy tissue without the submucosal vessel network (an adenoma's thickened surface hides it:
    endoscopists spot flat lesions by the interrupted vascular pattern), mottled with fine paler and
    redder spots about a millimetre across. Same patches as `bake_mucosa` (same seed), so a lesion's
    base blends into the wall around it."""
    albedo = _patchy_base(np.random.default_rng(int(m["texture_seed"])), m)
    rng = np.random.default_rng([int(m["texture_seed"]), 1])
    mottle = _grain(rng) * m.get("lesion_mottle", 0.0)
    pale = np.clip(-mottle, 0, 1)[..., None]
    red = np.clip(mottle, 0, 1)[..., None]
    albedo = albedo * (1.0 - pale) + pale * np.asarray([0.85, 0.5, 0.45], np.float32)  # pinkish-white spots
    albedo = albedo * (1.0 - red * np.asarray([0.1, 0.45, 0.45], np.float32))  # redder spots
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def bake_mucosa(m: dict) -> np.ndarray:
    """Linear RGB albedo (TEX_H, TEX_W, 3) float32 of a spec's `mucosa` (spec version 4)."""
    rng = np.random.default_rng(int(m["texture_seed"]))
    albedo = _patchy_base(rng, m)
    # Vessels: deep (wide, blurred, bluish) under superficial (thin, sharp, red) capillary trees.
    vd = m["vessels"]
    deep = vessel_layer(rng, int(vd["deep_count"]), vd["deep_width_px"], 320.0, vd["deep_blur_px"])
    thin = vessel_layer(rng, int(vd["count"]), vd["width_px"], 220.0, 0.4)
    for layer, colour, contrast in ((deep, vd["deep_color"], vd["deep_contrast"]), (thin, vd["color"], vd["contrast"])):
        a = (layer * contrast)[..., None]
        albedo = albedo * (1.0 - a) + srgb_to_linear(colour)[None, None, :] * a
    if m.get("mottle", 0.0) > 0:
        # Spec version 8: the whole mucosa's fine granular colour (real frames carry 1.5x the fine
        # texture of smooth renders): redder and lighter spots of about 1.2 and 0.5 mm over the
        # vessels, the tissue's own hue (not the lesion option's white spots). Its own stream, so a
        # scene without it bakes what spec 7 baked; lesions sample this map, so they share it.
        grain = _grain(np.random.default_rng([int(m["texture_seed"]), 2])) * m["mottle"]
        red = np.clip(grain, 0, 1)[..., None]
        light = np.clip(-grain, 0, 1)[..., None]
        albedo = albedo * (1.0 - red * np.asarray([0.05, 0.4, 0.4], np.float32)) * (1.0 + 0.6 * light)
    if m.get("mucus", 0.0) > 0:
        mu = (_strands(rng, int(m["mucus_strands"])) * m["mucus"])[..., None]
        albedo = albedo * (1.0 - mu) + srgb_to_linear(m["mucus_color"])[None, None, :] * mu
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)
