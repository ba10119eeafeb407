"""Seeded sampling of frame specs: everything random about a frame, decided before Blender runs.

Pure numpy, no bpy. Frame i is a pure function of (config, seed, i): its generator is seeded with
`np.random.SeedSequence([seed, STREAM, i])`, never with global state, so any frame can be
sampled (and rendered) alone, in any worker, in any order. Frames are grouped into scenes of
`frames_per_scene` consecutive frames that share one lumen (building geometry is the expensive
part in Blender); the scene's numbers come from its own stream keyed by the scene index.

A spec is a JSON-able dict. Rendering a spec gives the same frame, so it is written next to every
frame as `specs/ID.json`.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from synth.generator.config import RenderConfig
from synth.generator.lumen import LumenSampler, LumenShape, TAU

# 2: camera starts 8-13 cm into the 30 cm lumen (from 1-6 cm, where a wide lens turned toward the
# wall could see past the open start of the tube).
# 3: redder, lower-contrast vessels.
# 4: the look of real frames: baked vessel trees, patches and mucus, wet speckle, an endoscope
#    processor's tone curve, close views of the wall, lesions of the mucosa's own tissue, Paris
#    types, overlays, Kvasir-sized lesions by default.
SPEC_VERSION = 4
SCENE_STREAM, FRAME_STREAM, LESION_STREAM = 0, 1, 2


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# --------------------------------------------------------------------------- scene


def sample_scene(seed: int, scene_index: int) -> dict:
    """The lumen and its mucosa, shared by the frames of one scene."""
    rng = _rng(seed, SCENE_STREAM, scene_index)
    length = 30.0
    n_bends = 2
    # Haustral folds: roughly periodic ring ridges with jitter.
    spacing = _u(rng, 1.2, 2.6)  # v4: more numerous folds
    fold_s, s = [], _u(rng, 1.0, 2.5)
    while s < length - 1.0:
        fold_s.append(s)
        s += spacing * _u(rng, 0.75, 1.3)
    nf = len(fold_s)
    lumen = {
        "length": length,
        "radius": _u(rng, 1.6, 2.6),
        "radius_var": _u(rng, 0.0, 0.18),
        "radius_wavelength": _u(rng, 6.0, 14.0),
        "radius_phase": _u(rng, 0, TAU),
        "bend_amp": [_u(rng, 0.5, 3.0) for _ in range(2 * n_bends)],
        "bend_wavelength": [_u(rng, 12.0, 40.0) for _ in range(2 * n_bends)],
        "bend_phase": [_u(rng, 0, TAU) for _ in range(2 * n_bends)],
        "taeniae": _u(rng, 0.0, 0.14) if rng.random() < 0.6 else 0.0,
        "taeniae_phase": _u(rng, 0, TAU),
        "fold_s": fold_s,
        "fold_depth": [_u(rng, 0.12, 0.5) for _ in range(nf)],
        "fold_width": [_u(rng, 0.15, 0.45) for _ in range(nf)],
        "fold_sharpness": [_u(rng, 1.5, 4.0) for _ in range(nf)],
        "fold_arc": [_u(rng, 0.0, 0.9) for _ in range(nf)],
        "wall_noise": _u(rng, 0.0, 0.05),
        "wall_noise_phase": [_u(rng, 0, TAU) for _ in range(3)],
    }
    # Mucosa colour: orange-red to yellowish pink in HSV (real frames, measured in the field of view:
    # hue 11-25 deg, saturation 0.4-0.7); patches redder, vessels red to purple.
    hue = _u(rng, 0.02, 0.065)
    base = colorsys.hsv_to_rgb(hue, _u(rng, 0.3, 0.55), _u(rng, 0.6, 0.9))
    patch = colorsys.hsv_to_rgb((hue - _u(rng, 0.0, 0.03)) % 1.0, _u(rng, 0.5, 0.75), _u(rng, 0.5, 0.8))
    vessel = colorsys.hsv_to_rgb(_u(rng, -0.02, 0.01) % 1.0, _u(rng, 0.75, 0.95), _u(rng, 0.45, 0.75))
    deep = colorsys.hsv_to_rgb(_u(rng, -0.08, -0.01) % 1.0, _u(rng, 0.4, 0.7), _u(rng, 0.35, 0.6))
    mucus = colorsys.hsv_to_rgb(_u(rng, 0.08, 0.15), _u(rng, 0.15, 0.5), _u(rng, 0.8, 0.95))
    mucosa = {
        "base_color": [float(c) for c in base],
        "patch_color": [float(c) for c in patch],
        "color_variation": _u(rng, 0.1, 0.45),
        # Baked surface (generator/texture.py): vessel trees at two depths, patches, mucus strands.
        "texture_seed": int(rng.integers(0, 2**31 - 1)),
        "vessels": {
            "count": int(rng.integers(60, 320)),
            "width_px": _u(rng, 1.0, 2.2),
            "color": [float(c) for c in vessel],
            "contrast": _u(rng, 0.2, 0.7),
            "deep_count": int(rng.integers(10, 50)),
            "deep_width_px": _u(rng, 3.0, 7.0),
            "deep_blur_px": _u(rng, 2.0, 5.0),
            "deep_color": [float(c) for c in deep],
            "deep_contrast": _u(rng, 0.15, 0.45),
        },
        "mucus": _u(rng, 0.2, 0.6) if rng.random() < 0.35 else 0.0,
        "mucus_strands": int(rng.integers(3, 25)),
        "mucus_color": [float(c) for c in mucus],
        "roughness": _u(rng, 0.3, 0.6),
        "coat_weight": _u(rng, 0.6, 1.0),
        "coat_roughness": _u(rng, 0.02, 0.15),
        "subsurface_weight": _u(rng, 0.05, 0.3),
        "bump_strength": _u(rng, 0.05, 0.3),
        "bump_scale": _u(rng, 3.0, 12.0),
        # Wet speckle: a fine droplet relief whose normals face the scope light glint (an AOV that
        # post-processing adds after denoising, so the denoiser cannot smear the specks away).
        "glint_scale": _u(rng, 4.0, 14.0),  # droplets per cm
        "glint_relief": _u(rng, 0.3, 0.7),  # bump strength of the droplets: how far their normals tilt
        "glint_threshold": _u(rng, 0.993, 0.999),  # |cos| between relief normal and view above which it glints
        "texture_offset": [_u(rng, 0, 100) for _ in range(3)],
    }
    return {"index": scene_index, "lumen": lumen, "mucosa": mucosa}


# --------------------------------------------------------------------------- camera


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return (v * math.cos(angle) + np.cross(axis, v) * math.sin(angle)
            + axis * (axis @ v) * (1 - math.cos(angle)))


def camera_basis(cam: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, right and up unit vectors of a camera spec."""
    f = np.asarray(cam["forward"], float)
    up = np.asarray(cam["up"], float)
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    return f, r, np.cross(r, f)


def pixel_direction(cam: dict, x: float, y: float) -> np.ndarray:
    """World direction of the ray through normalised image point (x, y) in [-1, 1] (y up)."""
    f, r, u = camera_basis(cam)
    rho = math.hypot(x, y)
    if cam["lens"] == "fisheye":
        alpha = rho * math.radians(cam["fov_deg"]) / 2.0  # equidistant: angle grows linearly
    else:
        alpha = math.atan(rho * math.tan(math.radians(cam["fov_deg"]) / 2.0))
    if rho < 1e-9:
        return f
    phi = math.atan2(y, x)
    side = math.cos(phi) * r + math.sin(phi) * u
    return math.cos(alpha) * f + math.sin(alpha) * side


def pixels_per_radian(cam: dict, resolution: int, rho: float) -> float:
    """Image scale (pixels per radian of view angle) at normalised radius rho."""
    half = resolution / 2.0
    if cam["lens"] == "fisheye":
        return half / (math.radians(cam["fov_deg"]) / 2.0)
    t = math.tan(math.radians(cam["fov_deg"]) / 2.0)
    alpha = math.atan(rho * t)
    return half / t / math.cos(alpha) ** 2


VIEW_TYPES = ("lumen", "oblique", "wall")
VIEW_TYPE_P = (0.4, 0.3, 0.3)


def sample_camera(rng: np.random.Generator, sampler: LumenSampler) -> dict:
    shape = sampler.shape
    # Far enough in that no ray of a 170 deg lens tilted 65 deg can leave through the open start
    # (that needs a ray within ~15 deg of straight back), and 17+ cm of lumen ahead.
    s_cam = _u(rng, 8.0, 13.0)
    k = int(np.searchsorted(sampler.s, s_cam))
    c, t, n, b = sampler.c[k], sampler.t[k], sampler.n[k], sampler.b[k]
    r_local = float(sampler.inside(c))  # wall distance at the centreline
    # View mix of real frames: down the lumen, oblique, or close to the wall (the scope is often
    # under 2 cm from the mucosa, and many frames are close-ups of the wall or of a lesion).
    view = str(rng.choice(VIEW_TYPES, p=VIEW_TYPE_P))
    tilt_deg, off_range = {"lumen": (abs(rng.normal(0, 10)), (0.0, 0.45)),
                           "oblique": (_u(rng, 25, 50), (0.2, 0.6)),
                           "wall": (_u(rng, 50, 80), (0.45, 0.8))}[view]
    tilt = math.radians(tilt_deg)
    tilt_dir = _u(rng, 0, TAU)
    axis = math.cos(tilt_dir) * n + math.sin(tilt_dir) * b
    forward = _rotate(t, axis, tilt)
    off = _u(rng, *off_range)
    if view == "lumen":
        ang = _u(rng, 0, TAU)
        side = math.cos(ang) * n + math.sin(ang) * b
    else:
        # Move toward the wall the scope looks at.
        side = forward - t * float(t @ forward)
        side = side / max(float(np.linalg.norm(side)), 1e-9)
    pos = c + off * r_local * side
    toward_wall = view != "lumen"
    roll = _u(rng, 0, TAU)
    up = _rotate(n - forward * (n @ forward), forward, roll)
    up /= np.linalg.norm(up)
    fisheye = rng.random() < 0.7
    return {
        "location": pos.tolist(),
        "forward": (forward / np.linalg.norm(forward)).tolist(),
        "up": up.tolist(),
        "view": view,
        "toward_wall": bool(toward_wall),
        "lens": "fisheye" if fisheye else "perspective",
        "fov_deg": _u(rng, 140, 170) if fisheye else _u(rng, 100, 125),
        "clip_start": 0.05,
    }


# --------------------------------------------------------------------------- lesions

# Paris classification of superficial colorectal lesions and the mesh each is built as. Shares:
# roughly those of screening colonoscopy series: polypoid 0-I about two thirds (mostly sessile),
# non-polypoid mostly flat elevated 0-IIa, depressed 0-IIc rare (The Paris endoscopic classification
# of superficial neoplastic lesions, Gastrointest Endosc 2003; 58(6 Suppl): S3-S43).
PARIS_TYPES = ("0-Ip", "0-Isp", "0-Is", "0-IIa", "0-IIc")
PARIS_TYPE_P = (0.12, 0.12, 0.40, 0.30, 0.06)
PARIS_KIND = {"0-Ip": "pedunculated", "0-Isp": "pedunculated", "0-Is": "sessile", "0-IIa": "flat", "0-IIc": "flat"}
LESION_TYPES = ("sessile", "pedunculated", "flat")


def _lesion_color(rng: np.random.Generator, paris: str) -> dict:
    """A tint multiplying the mucosa's own albedo: lesions are the same tissue, a little redder
    (adenomas, congested surface) or paler (serrated lesions with a yellowish mucus cap)."""
    if paris == "0-IIa" and rng.random() < 0.5:
        tint = [_u(rng, 1.0, 1.15), _u(rng, 1.0, 1.15), _u(rng, 0.75, 0.95)]  # pale, yellowish
    elif rng.random() < 0.65:
        r = _u(rng, 0.95, 1.05)
        tint = [r, _u(rng, 0.65, 0.92), _u(rng, 0.65, 0.95)]  # redder
    else:
        g = _u(rng, 1.0, 1.2)
        tint = [g, g * _u(rng, 0.95, 1.05), g * _u(rng, 0.9, 1.05)]  # paler
    return {"color": [float(c) for c in tint], "tint": _u(rng, 0.6, 1.0)}


# Base radius in cm each lesion type may take: sizes stretch within these to meet the frame's
# apparent-size target, so a lesion never becomes implausibly large to look big.
LESION_SIZE_CM = {"sessile": (0.15, 1.5), "pedunculated": (0.2, 1.1), "flat": (0.25, 2.0)}
# Default apparent area of one lesion as a fraction of the frame, drawn log-uniformly: from a
# small lesion down the lumen to a close-up like the polyp-centred frames of Kvasir-SEG.
DEFAULT_LESION_AREA = RenderConfig.lesion_area
DEFAULT_OVERLAY_PROB = RenderConfig.overlay_prob


def sample_lesion(rng: np.random.Generator, sampler: LumenSampler, cam: dict, mucosa: dict,
                  resolution: int, min_pixels: int, fov_radius: float, instance: int,
                  area: tuple[float, float] = DEFAULT_LESION_AREA) -> dict | None:
    """A lesion on a wall point the camera sees directly, of a drawn apparent size; None if none fits.

    The apparent area (fraction of the frame) is drawn log-uniformly from `area`. Candidate wall
    points come from rays through random image points; at each, the base radius is stretched
    (within `LESION_SIZE_CM` of its type) toward the target, and the candidate closest to the
    target on a log scale wins. Occlusion by folds and the lesion's own shape make the rendered
    area differ from the target: the mask, not this estimate, decides the label.
    """
    paris = str(rng.choice(PARIS_TYPES, p=PARIS_TYPE_P))
    kind = PARIS_KIND[paris]
    height = {"0-Ip": (0.8, 1.0), "0-Isp": (0.7, 1.0), "0-Is": (0.35, 0.95), "0-IIa": (0.05, 0.22),
              "0-IIc": (-0.08, -0.02)}[paris]
    height = _u(rng, *height)
    size_lo, size_hi = LESION_SIZE_CM[kind]
    origin = np.asarray(cam["location"], float)
    les_stalk = {"0-Ip": (0.3, 1.0), "0-Isp": (0.05, 0.25)}.get(paris)
    les_stalk = _u(rng, *les_stalk) if les_stalk else 0.0
    target_area = math.exp(_u(rng, math.log(area[0]), math.log(area[1])))
    target_px = math.sqrt(target_area / math.pi) * resolution  # radius in pixels of that area
    # The label needs visible pixels: never aim below comfortably above the threshold.
    need_px = max(3.0, 1.5 * math.sqrt(min_pixels / math.pi))
    target_px = max(target_px, need_px)
    best, best_err = None, math.inf
    for _ in range(64):
        rho = fov_radius * math.sqrt(_u(rng, 0.02, 0.75))
        phi = _u(rng, 0, TAU)
        x, y = rho * math.cos(phi), rho * math.sin(phi)
        ray = pixel_direction(cam, x, y)
        hit = sampler.ray_cast(origin, ray, max_dist=14.0)
        if hit is None:
            continue
        dist, s_hit, th_hit = hit
        facing = abs(float(ray @ sampler.wall_normal(s_hit, th_hit)))
        ppr = pixels_per_radian(cam, resolution, rho) * math.sqrt(max(facing, 0.05))
        # Base radius whose projection (a disc at `dist`, seen at incidence `facing`) meets the target.
        want = dist * math.tan(min(target_px / ppr, 1.4))
        s = min(max(want, size_lo), size_hi)
        # Keep clear of the lens: a lesion (or a stalk) almost touching the scope fills the view.
        stalk = les_stalk
        if kind == "pedunculated":
            stalk = min(les_stalk, max(0.05, (dist - 0.5) / 1.2 - s * height))
        if dist < 0.5 + 1.2 * (s * max(height, 0.0) + stalk):
            continue
        px = math.atan(s / dist) * ppr
        if px < need_px:
            continue
        err = abs(math.log(px / target_px))
        if err < best_err:
            best, best_err = (dist, s_hit, th_hit, x, y, s, stalk), err
            if err < 0.1:
                break
    if best is None:
        return None
    dist, s_hit, th_hit, x, y, size, les_stalk = best
    pos = sampler.wall_point(s_hit, th_hit)
    normal = sampler.wall_normal(s_hit, th_hit)
    lesion = {
        "instance": instance,
        "type": kind,
        "paris": paris,
        "s": s_hit,
        "theta": th_hit,
        "location": pos.tolist(),
        "normal": normal.tolist(),
        "spin": _u(rng, 0, TAU),
        "size": size,  # base radius, cm
        "height": height,  # height / base radius
        "elongation": _u(rng, 0.75, 1.3),
        "lobes": int(rng.integers(3, 8)),
        "lobulation": _u(rng, 0.0, 0.25),
        "image_xy": [x, y],
        "distance": dist,
        "target_area": target_area,  # drawn apparent area (fraction of the frame); the mask has the real one
        "pit_scale": _u(rng, 15.0, 50.0),
        "pit_strength": _u(rng, 0.1, 0.6),
        "roughness": _u(rng, 0.25, 0.55),
        **_lesion_color(rng, paris),
    }
    if kind == "pedunculated":
        lesion["stalk_length"] = les_stalk
        lesion["stalk_radius"] = _u(rng, 0.2, 0.4) if paris == "0-Ip" else _u(rng, 0.45, 0.75)  # of the head radius
        lesion["stalk_tilt"] = _u(rng, 0.0, 0.7)
        lesion["stalk_tilt_dir"] = _u(rng, 0, TAU)
    return lesion


# --------------------------------------------------------------------------- artefacts


OVERLAY_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/:. "


def _overlay(rng: np.random.Generator) -> dict:
    """The processor's on-screen graphics (see post.draw_overlay): text lines and a thumbnail box."""
    lines = ["".join(rng.choice(list(OVERLAY_CHARS), size=int(rng.integers(4, 11)))).strip() or "0"
             for _ in range(int(rng.integers(0, 6)))]
    grey = _u(rng, 0.75, 1.0)
    box = None
    if rng.random() < 0.6:
        box = {"w": _u(rng, 0.2, 0.36), "h": _u(rng, 0.18, 0.34), "color": [0.0, 0.0, 0.0],
               "guide": _u(rng, 0, TAU) if rng.random() < 0.6 else None}
    return {"text_lines": lines, "text_color": [grey, grey, grey * _u(rng, 0.85, 1.0)], "box": box}


def sample_artefacts(rng: np.random.Generator, overlay_prob: float = RenderConfig.overlay_prob) -> dict:
    """2-D effects applied after rendering; sizes are fractions of the image width."""
    a: dict = {
        "fov_shape": "circle" if rng.random() < 0.6 else "octagon",
        "fov_radius": _u(rng, 0.9, 1.02),
        "vignetting": _u(rng, 0.1, 0.4),
        # Real processors expose for the near wall, which often clips to white.
        "exposure": _u(rng, -0.4, 0.4),
        "gamma": _u(rng, 0.95, 1.25),
        "noise_sigma": _u(rng, 0.003, 0.025),
        "post_seed": int(rng.integers(0, 2**31 - 1)),
        "tone": {"black": _u(rng, 0.006, 0.04), "saturation": _u(rng, 0.9, 1.15)},
        "glint_strength": _u(rng, 3.0, 14.0),
        "chromatic_aberration": _u(rng, 0.0, 0.008),
    }
    a["overlay"] = _overlay(rng) if rng.random() < overlay_prob else None
    a["motion_blur"] = {"length": _u(rng, 0.008, 0.04), "angle": _u(rng, 0, 180)} if rng.random() < 0.25 else None
    a["defocus"] = {"sigma": _u(rng, 0.002, 0.008)} if rng.random() < 0.25 else None
    a["jpeg_quality"] = int(rng.integers(55, 96)) if rng.random() < 0.6 else None
    a["bubbles"] = (
        [{"x": _u(rng, -0.7, 0.7), "y": _u(rng, -0.7, 0.7), "r": _u(rng, 0.006, 0.05)}
         for _ in range(int(rng.integers(1, 10)))]
        if rng.random() < 0.08 else []
    )
    a["fluid"] = (
        {"angle": _u(rng, 0, TAU), "extent": _u(rng, 0.15, 0.45), "color": [_u(rng, 0.55, 0.8), _u(rng, 0.45, 0.65),
                                                                              _u(rng, 0.15, 0.3)],
         "opacity": _u(rng, 0.25, 0.6)}
        if rng.random() < 0.15 else None
    )
    a["residue"] = (
        [{"x": _u(rng, -0.75, 0.75), "y": _u(rng, -0.75, 0.75), "r": _u(rng, 0.01, 0.05),
          "color": [_u(rng, 0.45, 0.7), _u(rng, 0.35, 0.55), _u(rng, 0.1, 0.25)]}
         for _ in range(int(rng.integers(1, 6)))]
        if rng.random() < 0.12 else []
    )
    return a


# --------------------------------------------------------------------------- frame

LESION_BLOCK = 20


def lesion_frame(seed: int, index: int, lesion_prob: float) -> bool:
    """Whether frame `index` gets a lesion: stratified in blocks of LESION_BLOCK frames.

    Independent coin flips would give a lesion fraction of p +/- 0.035 over 200 frames; instead
    each block of 20 consecutive frames holds round(20 p) lesion frames (randomised rounding) at
    places drawn from the block's own seeded stream. Still a pure function of (seed, index).
    """
    block, pos = divmod(index, LESION_BLOCK)
    rng = _rng(seed, LESION_STREAM, block)
    exact = lesion_prob * LESION_BLOCK
    k = int(exact) + int(rng.random() < exact - int(exact))
    return bool(rng.permutation(LESION_BLOCK)[pos] < k)



def frame_spec(*, seed: int, index: int, lesion_prob: float, resolution: int, frames_per_scene: int,
               min_lesion_pixels: int, render: dict, scene: dict | None = None,
               sampler: LumenSampler | None = None,
               lesion_area: tuple[float, float] = DEFAULT_LESION_AREA,
               overlay_prob: float = DEFAULT_OVERLAY_PROB) -> dict:
    """The complete spec of frame `index`. `scene`/`sampler` may be passed in to reuse work."""
    scene_index = index // frames_per_scene
    if scene is None:
        scene = sample_scene(seed, scene_index)
    if sampler is None:
        sampler = LumenSampler(LumenShape.from_dict(scene["lumen"]))
    rng = _rng(seed, FRAME_STREAM, index)
    wants_lesion = lesion_frame(seed, index, lesion_prob)
    n_lesions = int(rng.choice([1, 2, 3], p=[0.8, 0.15, 0.05])) if wants_lesion else 0
    cam = sample_camera(rng, sampler)
    art = sample_artefacts(rng, overlay_prob)
    lesions = []
    for k in range(n_lesions):
        les = sample_lesion(rng, sampler, cam, scene["mucosa"], resolution, min_lesion_pixels,
                            min(art["fov_radius"], 1.0) * 0.85, instance=k + 1, area=tuple(lesion_area))
        if les is not None:
            lesions.append(les)
    light = {
        "power": _u(rng, 25.0, 70.0),  # W; scene units are cm, inverse-square falloff darkens the far lumen
        "radius": _u(rng, 0.05, 0.2),
        "offset": [_u(rng, -0.15, 0.15), _u(rng, -0.15, 0.15)],
        "count": int(rng.integers(1, 3)),
        "color_temp": _u(rng, 0.0, 1.0),  # 0 neutral white, 1 slightly warm
    }
    return {
        "spec_version": SPEC_VERSION,
        "seed": seed,
        "index": index,
        "resolution": resolution,
        "render": dict(render),
        "wants_lesion": wants_lesion,
        "scene": scene,
        "camera": cam,
        "light": light,
        "lesions": lesions,
        "artefacts": art,
    }


def frame_specs(*, seed: int, indices, lesion_prob: float, resolution: int, frames_per_scene: int,
                min_lesion_pixels: int, render: dict, lesion_area: tuple[float, float] = DEFAULT_LESION_AREA,
                overlay_prob: float = DEFAULT_OVERLAY_PROB):
    """Specs for many frames, reusing each scene's lumen tables (same result as one at a time)."""
    cache: dict[int, tuple[dict, LumenSampler]] = {}
    for i in indices:
        si = i // frames_per_scene
        if si not in cache:
            cache.clear()
            sc = sample_scene(seed, si)
            cache[si] = (sc, LumenSampler(LumenShape.from_dict(sc["lumen"])))
        sc, sm = cache[si]
        yield frame_spec(seed=seed, index=i, lesion_prob=lesion_prob, resolution=resolution,
                         frames_per_scene=frames_per_scene, min_lesion_pixels=min_lesion_pixels,
                         render=render, scene=sc, sampler=sm, lesion_area=lesion_area, overlay_prob=overlay_prob)
