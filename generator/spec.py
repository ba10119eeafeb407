"""Seeded sampling of frame specs: everything random about a frame, decided before Blender runs.

Pure numpy, no bpy. Frame i is a pure function of (config, seed, i): its generator is seeded with
`np.random.SeedSequence([seed, STREAM, i])`, never with global state, so any frame can be
sampled (and rendered) alone, in any worker, in any order. Frames are grouped into scenes of
`frames_per_scene` consecutive frames that share one lumen (building geometry is the expensive
part in Blender); the scene's numbers come from its own stream keyed by the scene index.

A spec is a JSON-able dict. Rendering a spec gives the same frame, so it is written next to every
frame as `specs/ID.json`.

The numbers drawn from (ranges, probabilities, choice tables) come from a scene config
(generator/scene_config.py; the packaged default_scene.toml unless a run gives its own): this
module keeps what is drawn, in which order, and how it combines. The default scene gives exactly
the specs these functions gave when the numbers were literals here (tests/test_scene_pins.py), so
the order of rng calls below is part of the format: change it only with SPEC_VERSION.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from synth.generator.lumen import LumenSampler, LumenShape, TAU
from synth.generator.scene_config import PARIS_TYPES, VIEW_TYPES, SceneConfig, default_scene
from synth.rng import FRAME_STREAM, LESION_STREAM, SCENE_STREAM  # the stream keys of frame specs

# 2: camera starts 8-13 cm into the 30 cm lumen (from 1-6 cm, where a wide lens turned toward the
# wall could see past the open start of the tube).
# 3: redder, lower-contrast vessels.
# 4: the look of real frames: baked vessel trees, patches and mucus, wet speckle, an endoscope
#    processor's tone curve, close views of the wall, lesions of the mucosa's own tissue, Paris
#    types, overlays, Kvasir-sized lesions by default.
# 5: the scope kept clear of the wall and of lesions; the default scene refitted to Kvasir-SEG.
# 6: processor structure enhancement; fewer glints; lesions nearer the centre; nodular and
#    vessel-free mottled lesion surfaces as scene options (off by default: they lowered transfer).
# 7: the default scene's tone, vessels, glints and views fitted by `synth calibrate` on CP-CHILD's
#    normal frames (the mucosa colour kept): darker, flatter frames with fainter, thinner vessels
#    and fewer glints raised rendered-only transfer to Kvasir-SEG (docs/RESULTS.md). Same draws.
# 8: `mucosa.mottle`, a fine granular colour of the whole surface, drawn last in the scene stream:
#    off in the default scene (it brought realism statistics closer but not transfer, docs/RESULTS.md),
#    so the default frames are spec 7's, pixel for pixel; the specs gain the key.
# 9: `mounds`, hard negatives (unlabelled bulges of the normal wall), and per lesion `keep_dome`, a
#    sessile lesion's smooth dome instead of one draped along the wall's converging normals (which
#    creases tall domes), both drawn last in the frame stream and both off in the default scene (they
#    did not raise transfer, docs/RESULTS.md), so its frames are spec 8's; the specs gain the keys.
SPEC_VERSION = 9


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _ur(rng: np.random.Generator, r: tuple[float, float]) -> float:
    """A uniform draw from a scene range [min, max]."""
    return float(rng.uniform(r[0], r[1]))


def _ir(rng: np.random.Generator, r: tuple[int, int]) -> int:
    """An integer draw from a scene integer range (both ends included)."""
    return int(rng.integers(r[0], r[1] + 1))


# --------------------------------------------------------------------------- scene


def sample_scene(seed: int, scene_index: int, sc: SceneConfig | None = None) -> dict:
    """The lumen and its mucosa, shared by the frames of one scene."""
    sc = sc or default_scene()
    L, M = sc.lumen, sc.mucosa
    V = M.vessels
    rng = _rng(seed, SCENE_STREAM, scene_index)
    length = 30.0
    n_bends = 2
    # Haustral folds: roughly periodic ring ridges with jitter.
    spacing = _ur(rng, L.fold_spacing_cm)
    fold_s, s = [], _ur(rng, L.fold_start_cm)
    while s < length - 1.0:
        fold_s.append(s)
        s += spacing * _ur(rng, L.fold_jitter)
    nf = len(fold_s)
    lumen = {
        "length": length,
        "radius": _ur(rng, L.radius_cm),
        "radius_var": _ur(rng, L.radius_variation),
        "radius_wavelength": _ur(rng, L.radius_wavelength_cm),
        "radius_phase": _u(rng, 0, TAU),
        "bend_amp": [_ur(rng, L.bend_amplitude_cm) for _ in range(2 * n_bends)],
        "bend_wavelength": [_ur(rng, L.bend_wavelength_cm) for _ in range(2 * n_bends)],
        "bend_phase": [_u(rng, 0, TAU) for _ in range(2 * n_bends)],
        "taeniae": _ur(rng, L.taeniae) if rng.random() < L.taeniae_prob else 0.0,
        "taeniae_phase": _u(rng, 0, TAU),
        "fold_s": fold_s,
        "fold_depth": [_ur(rng, L.fold_depth) for _ in range(nf)],
        "fold_width": [_ur(rng, L.fold_width_cm) for _ in range(nf)],
        "fold_sharpness": [_ur(rng, L.fold_sharpness) for _ in range(nf)],
        "fold_arc": [_ur(rng, L.fold_arc) for _ in range(nf)],
        "wall_noise": _ur(rng, L.wall_noise),
        "wall_noise_phase": [_u(rng, 0, TAU) for _ in range(3)],
    }
    # Mucosa colour in HSV (the default: orange-red to yellowish pink, as real frames measured in the
    # field of view, hue 11-25 deg, saturation 0.4-0.7); patches redder, vessels red to purple.
    hue = _ur(rng, M.hue)
    base = colorsys.hsv_to_rgb(hue % 1.0, _ur(rng, M.saturation), _ur(rng, M.value))
    patch = colorsys.hsv_to_rgb((hue - _ur(rng, M.patch_hue_shift)) % 1.0, _ur(rng, M.patch_saturation),
                                _ur(rng, M.patch_value))
    vessel = colorsys.hsv_to_rgb(_ur(rng, V.hue) % 1.0, _ur(rng, V.saturation), _ur(rng, V.value))
    deep = colorsys.hsv_to_rgb(_ur(rng, V.deep_hue) % 1.0, _ur(rng, V.deep_saturation), _ur(rng, V.deep_value))
    mucus = colorsys.hsv_to_rgb(_ur(rng, M.mucus_hue) % 1.0, _ur(rng, M.mucus_saturation), _ur(rng, M.mucus_value))
    mucosa = {
        "base_color": [float(c) for c in base],
        "patch_color": [float(c) for c in patch],
        "color_variation": _ur(rng, M.color_variation),
        # Baked surface (generator/texture.py): vessel trees at two depths, patches, mucus strands.
        "texture_seed": int(rng.integers(0, 2**31 - 1)),
        "vessels": {
            "count": _ir(rng, V.count),
            "width_px": _ur(rng, V.width_px),
            "color": [float(c) for c in vessel],
            "contrast": _ur(rng, V.contrast),
            "deep_count": _ir(rng, V.deep_count),
            "deep_width_px": _ur(rng, V.deep_width_px),
            "deep_blur_px": _ur(rng, V.deep_blur_px),
            "deep_color": [float(c) for c in deep],
            "deep_contrast": _ur(rng, V.deep_contrast),
        },
        "mucus": _ur(rng, M.mucus) if rng.random() < M.mucus_prob else 0.0,
        "mucus_strands": _ir(rng, M.mucus_strands),
        "mucus_color": [float(c) for c in mucus],
        "roughness": _ur(rng, M.roughness),
        "coat_weight": _ur(rng, M.coat_weight),
        "coat_roughness": _ur(rng, M.coat_roughness),
        "subsurface_weight": _ur(rng, M.subsurface_weight),
        "bump_strength": _ur(rng, M.bump_strength),
        "bump_scale": _ur(rng, M.bump_scale),
        # Wet speckle: a fine droplet relief whose normals face the scope light glint (an AOV that
        # post-processing adds after denoising, so the denoiser cannot smear the specks away).
        "glint_scale": _ur(rng, M.glint_scale),  # droplets per cm
        "glint_relief": _ur(rng, M.glint_relief),  # bump strength of the droplets: how far their normals tilt
        "glint_threshold": _ur(rng, M.glint_threshold),  # |cos| between relief normal and view above which it glints
        "texture_offset": [_u(rng, 0, 100) for _ in range(3)],
        # Lesion surface (spec version 6; generator/texture.bake_lesion_surface): the scene's tissue
        # without its submucosal vessel network, which a polyp's thickened surface hides, mottled.
        "lesion_mottle": _ur(rng, sc.lesion.mottle),
        # Fine granular colour of the whole surface (spec version 8; generator/texture.bake_mucosa).
        "mottle": _ur(rng, M.mottle),
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


# Least distance (cm) from the scope's lens to the wall or to a lesion (its lights sit up to
# 0.15 cm off the lens and are up to 0.2 cm wide).
CAMERA_CLEARANCE_CM = 0.35


def sample_camera(rng: np.random.Generator, sampler: LumenSampler, sc: SceneConfig | None = None) -> dict:
    C = (sc or default_scene()).camera
    # The default 8-13 cm is far enough in that no ray of a 170 deg lens tilted 65 deg can leave
    # through the open start (that needs a ray within ~15 deg of straight back), and 17+ cm of lumen ahead.
    s_cam = _ur(rng, C.depth_cm)
    k = int(np.searchsorted(sampler.s, s_cam))
    c, t, n, b = sampler.c[k], sampler.t[k], sampler.n[k], sampler.b[k]
    r_local = float(sampler.inside(c))  # wall distance at the centreline
    # View mix of real frames: down the lumen, oblique, or close to the wall (the scope is often
    # under 2 cm from the mucosa, and many frames are close-ups of the wall or of a lesion).
    view = str(rng.choice(VIEW_TYPES, p=[C.views[v] for v in VIEW_TYPES]))
    # All three tilts are drawn whatever the view (the order of draws is part of the spec format).
    tilt_deg, off_range = {"lumen": (abs(rng.normal(0, C.lumen_tilt_sd_deg)), C.lumen_offset),
                           "oblique": (_ur(rng, C.oblique_tilt_deg), C.oblique_offset),
                           "wall": (_ur(rng, C.wall_tilt_deg), C.wall_offset)}[view]
    tilt = math.radians(tilt_deg)
    tilt_dir = _u(rng, 0, TAU)
    axis = math.cos(tilt_dir) * n + math.sin(tilt_dir) * b
    forward = _rotate(t, axis, tilt)
    off = _ur(rng, off_range)
    if view == "lumen":
        ang = _u(rng, 0, TAU)
        side = math.cos(ang) * n + math.sin(ang) * b
    else:
        # Move toward the wall the scope looks at.
        side = forward - t * float(t @ forward)
        side = side / max(float(np.linalg.norm(side)), 1e-9)
    pos = c + off * r_local * side
    # r_local is the wall distance at one angle; toward `side` the wall may be nearer (taeniae,
    # noise, a fold beside). Keep the scope and its lights (up to 0.15 cm off the lens, 0.2 cm wide)
    # inside the lumen: a light behind the wall leaves the frame black but for a lit crescent.
    clearance = min(CAMERA_CLEARANCE_CM, 0.5 * r_local)
    for _ in range(24):
        if sampler.inside(pos) >= clearance:
            break
        off *= 0.85
        pos = c + off * r_local * side
    toward_wall = view != "lumen"
    roll = _u(rng, 0, TAU)
    up = _rotate(n - forward * (n @ forward), forward, roll)
    up /= np.linalg.norm(up)
    fisheye = rng.random() < C.fisheye_prob
    return {
        "location": pos.tolist(),
        "forward": (forward / np.linalg.norm(forward)).tolist(),
        "up": up.tolist(),
        "view": view,
        "toward_wall": bool(toward_wall),
        "lens": "fisheye" if fisheye else "perspective",
        "fov_deg": _ur(rng, C.fisheye_fov_deg) if fisheye else _ur(rng, C.perspective_fov_deg),
        "clip_start": 0.05,
    }


# --------------------------------------------------------------------------- lesions

# Paris classification of superficial colorectal lesions and the mesh each is built as. Shares:
# roughly those of screening colonoscopy series: polypoid 0-I about two thirds (mostly sessile),
# non-polypoid mostly flat elevated 0-IIa, depressed 0-IIc rare (The Paris endoscopic classification
# of superficial neoplastic lesions, Gastrointest Endosc 2003; 58(6 Suppl): S3-S43).
# (The shares are the default scene's lesion.paris.)
PARIS_KIND = {"0-Ip": "pedunculated", "0-Isp": "pedunculated", "0-Is": "sessile", "0-IIa": "flat", "0-IIc": "flat"}
LESION_TYPES = ("sessile", "pedunculated", "flat")


def _lesion_color(rng: np.random.Generator, paris: str, sc: SceneConfig) -> dict:
    """A tint multiplying the mucosa's own albedo: lesions are the same tissue, a little redder
    (adenomas, congested surface) or paler (serrated lesions with a yellowish mucus cap)."""
    K = sc.lesion.color
    if paris == "0-IIa" and rng.random() < K.pale_flat_prob:
        t = K.pale_flat_tint
        tint = [_ur(rng, t["r"]), _ur(rng, t["g"]), _ur(rng, t["b"])]  # pale, yellowish
    elif rng.random() < K.red_prob:
        t = K.red_tint
        r = _ur(rng, t["r"])
        tint = [r, _ur(rng, t["g"]), _ur(rng, t["b"])]  # redder
    else:
        t = K.pale_tint
        g = _ur(rng, t["gain"])
        tint = [g, g * _ur(rng, t["g"]), g * _ur(rng, t["b"])]  # paler
    return {"color": [float(c) for c in tint], "tint": _ur(rng, K.strength)}


# Of the default scene (lesion.size_cm, lesion.area, artefacts.overlay_prob). Base radii stretch
# within a type's size range to meet the frame's apparent-size target, so a lesion never becomes
# implausibly large to look big; the apparent area is drawn log-uniformly, from a small lesion down
# the lumen to a close-up like the polyp-centred frames of Kvasir-SEG.
LESION_SIZE_CM = {k: tuple(v) for k, v in default_scene().lesion.size_cm.items()}
DEFAULT_LESION_AREA = default_scene().lesion.area
DEFAULT_OVERLAY_PROB = default_scene().artefacts.overlay_prob


def _camera_in_lesion(origin: np.ndarray, sampler: LumenSampler, s_hit: float, th_hit: float,
                      size: float, height: float, stalk: float) -> bool:
    """Whether the scope would sit inside (or within CAMERA_CLEARANCE_CM of) a lesion based at the
    wall point (s_hit, th_hit). The distance along the viewing ray misses this on grazing views:
    a wide lesion beside a scope close to the wall can swallow the lens (a black frame)."""
    base = sampler.wall_point(s_hit, th_hit)
    normal = sampler.wall_normal(s_hit, th_hit)
    rel = origin - base
    above = float(rel @ normal)
    aside = float(np.linalg.norm(rel - above * normal))
    # The lesion's extent: up to 1.3 x elongation, lobes and a tilted stalk (sin 0.7 rad ~ 0.65) widen it.
    top = stalk + size * max(height, 0.0) * 1.3 + size * (stalk > 0)
    reach = 1.4 * size + 0.65 * stalk
    return above < top + CAMERA_CLEARANCE_CM and aside < reach + CAMERA_CLEARANCE_CM


def sample_lesion(rng: np.random.Generator, sampler: LumenSampler, cam: dict, mucosa: dict,
                  resolution: int, min_pixels: int, fov_radius: float, instance: int,
                  area: tuple[float, float] | None = None, sc: SceneConfig | None = None) -> dict | None:
    """A lesion on a wall point the camera sees directly, of a drawn apparent size; None if none fits.

    The apparent area (fraction of the frame) is drawn log-uniformly from `area`. Candidate wall
    points come from rays through random image points; at each, the base radius is stretched
    (within `LESION_SIZE_CM` of its type) toward the target, and the candidate closest to the
    target on a log scale wins. Occlusion by folds and the lesion's own shape make the rendered
    area differ from the target: the mask, not this estimate, decides the label.
    """
    sc = sc or default_scene()
    S = sc.lesion
    area = S.area if area is None else area
    paris = str(rng.choice(PARIS_TYPES, p=[S.paris[t] for t in PARIS_TYPES]))
    kind = PARIS_KIND[paris]
    height = _ur(rng, S.height[paris])
    size_lo, size_hi = S.size_cm[kind]
    origin = np.asarray(cam["location"], float)
    les_stalk = S.stalk_length_cm.get(paris)
    les_stalk = _ur(rng, les_stalk) if les_stalk else 0.0
    target_area = math.exp(_u(rng, math.log(area[0]), math.log(area[1])))
    target_px = math.sqrt(target_area / math.pi) * resolution  # radius in pixels of that area
    # The label needs visible pixels: never aim below comfortably above the threshold.
    need_px = max(3.0, 1.5 * math.sqrt(min_pixels / math.pi))
    target_px = max(target_px, need_px)
    best, best_err = None, math.inf
    for _ in range(64):
        rho = fov_radius * math.sqrt(_ur(rng, S.position_r2))
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
        # Keep clear of the lens: a lesion (or a stalk) almost touching the scope fills the view,
        # and one grown around the scope (a close, grazing view) leaves the frame black. Shrink the
        # lesion toward its smallest size until it is clear; skip the candidate if it never is.
        while True:
            stalk = les_stalk
            if kind == "pedunculated":
                stalk = min(les_stalk, max(0.05, (dist - 0.5) / 1.2 - s * height))
            clear = (dist >= 0.5 + 1.2 * (s * max(height, 0.0) + stalk)
                     and not _camera_in_lesion(origin, sampler, s_hit, th_hit, s, height, stalk))
            if clear or s <= size_lo:
                break
            s = max(size_lo, 0.8 * s)
        if not clear:
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
        "elongation": _ur(rng, S.elongation),
        "lobes": _ir(rng, S.lobes),
        "lobulation": _ur(rng, S.lobulation),
        "image_xy": [x, y],
        "distance": dist,
        "target_area": target_area,  # drawn apparent area (fraction of the frame); the mask has the real one
        "pit_scale": _ur(rng, S.pit_scale),
        "pit_strength": _ur(rng, S.pit_strength),
        "roughness": _ur(rng, S.roughness),
        **_lesion_color(rng, paris, sc),
        "nodule_scale": _ur(rng, S.nodule_scale),
        "nodule_strength": _ur(rng, S.nodule_strength),
        # How much of the mucosa's vessel network shows through the lesion (0: none).
        "vessel_visibility": _ur(rng, S.vessel_visibility),
    }
    if kind == "pedunculated":
        lesion["stalk_length"] = les_stalk
        lesion["stalk_radius"] = _ur(rng, S.stalk_radius[paris])  # of the head radius
        lesion["stalk_tilt"] = _ur(rng, S.stalk_tilt)
        lesion["stalk_tilt_dir"] = _u(rng, 0, TAU)
    return lesion


def _reach(o: dict) -> float:
    """How far a lesion's or mound's body may reach along the wall from its base point (cm): the
    base outline's largest radius (elongation, lobes) and a tilted stalk's lean."""
    return (1.15 * o["size"] * max(o["elongation"], 1.0 / o["elongation"]) * (1.0 + o["lobulation"])
            + 0.65 * o.get("stalk_length", 0.0))


def sample_mounds(rng: np.random.Generator, sampler: LumenSampler, cam: dict, lesions: list[dict],
                  fov_radius: float, sc: SceneConfig) -> list[dict]:
    """Hard negatives: bulges of the normal wall the camera sees, clear of the scope and of the lesions.

    A mound is the wall's own surface raised (blender_assets.geometry.build_mound): same texels,
    vessels, speckle and coat as the wall around it, and never in the mask. A U-Net trained on frames
    where every bulge is a lesion marks real folds and swellings as lesions; with mounds, a bulge
    alone no longer tells it so.
    """
    M = sc.mounds
    if not rng.random() < M.prob:
        return []
    origin = np.asarray(cam["location"], float)
    mounds = []
    for _ in range(_ir(rng, M.count)):
        size, height = _ur(rng, M.size_cm), _ur(rng, M.height)
        shape = {"spin": _u(rng, 0, TAU), "elongation": _ur(rng, M.elongation), "lobes": _ir(rng, sc.lesion.lobes),
                 "lobulation": _ur(rng, M.lobulation)}
        for _ in range(16):
            rho = fov_radius * math.sqrt(_ur(rng, M.position_r2))
            phi = _u(rng, 0, TAU)
            hit = sampler.ray_cast(origin, pixel_direction(cam, rho * math.cos(phi), rho * math.sin(phi)),
                                   max_dist=14.0)
            if hit is None:
                continue
            dist, s_hit, th_hit = hit
            if dist < 0.5 + 1.2 * size * height or _camera_in_lesion(origin, sampler, s_hit, th_hit, size, height, 0.0):
                continue
            pos = sampler.wall_point(s_hit, th_hit)
            mound = {"s": s_hit, "theta": th_hit, "location": pos.tolist(),
                     "normal": sampler.wall_normal(s_hit, th_hit).tolist(), "size": size, "height": height,
                     "distance": dist, **shape}
            # Apart from lesions (and earlier mounds): a bulge grown into a lesion would change its outline.
            if any(np.linalg.norm(pos - np.asarray(o["location"])) < _reach(o) + _reach(mound)
                   for o in lesions + mounds):
                continue
            mounds.append(mound)
            break
    return mounds


# --------------------------------------------------------------------------- artefacts


OVERLAY_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/:. "


def _overlay(rng: np.random.Generator, sc: SceneConfig) -> dict:
    """The processor's on-screen graphics (see post.draw_overlay): text lines and a thumbnail box."""
    O = sc.artefacts.overlay
    lines = ["".join(rng.choice(list(OVERLAY_CHARS), size=_ir(rng, O.line_chars))).strip() or "0"
             for _ in range(_ir(rng, O.lines))]
    grey = _ur(rng, O.text_grey)
    box = None
    if rng.random() < O.box_prob:
        box = {"w": _ur(rng, O.box_width), "h": _ur(rng, O.box_height), "color": [0.0, 0.0, 0.0],
               "guide": _u(rng, 0, TAU) if rng.random() < O.guide_prob else None}
    return {"text_lines": lines, "text_color": [grey, grey, grey * _ur(rng, O.text_blue)], "box": box}


def sample_artefacts(rng: np.random.Generator, overlay_prob: float | None = None,
                     sc: SceneConfig | None = None) -> dict:
    """2-D effects applied after rendering; sizes are fractions of the image width.
    `overlay_prob`, when given, replaces the scene's artefacts.overlay_prob."""
    sc = sc or default_scene()
    A = sc.artefacts
    overlay_prob = A.overlay_prob if overlay_prob is None else overlay_prob
    a: dict = {
        "fov_shape": "circle" if rng.random() < A.circle_fov_prob else "octagon",
        "fov_radius": _ur(rng, A.fov_radius),
        "vignetting": _ur(rng, A.vignetting),
        # Real processors expose for the near wall, which often clips to white.
        "exposure": _ur(rng, A.exposure),
        "gamma": _ur(rng, A.gamma),
        "noise_sigma": _ur(rng, A.noise_sigma),
        "post_seed": int(rng.integers(0, 2**31 - 1)),
        "tone": {"black": _ur(rng, A.black_level), "saturation": _ur(rng, A.saturation)},
        "glint_strength": _ur(rng, A.glint_strength),
        "chromatic_aberration": _ur(rng, A.chromatic_aberration),
        "sharpen": {"gain": _ur(rng, A.sharpen), "radius": _ur(rng, A.sharpen_radius)},
    }
    a["overlay"] = _overlay(rng, sc) if rng.random() < overlay_prob else None
    a["motion_blur"] = ({"length": _ur(rng, A.motion_blur_length), "angle": _u(rng, 0, 180)}
                        if rng.random() < A.motion_blur_prob else None)
    a["defocus"] = {"sigma": _ur(rng, A.defocus_sigma)} if rng.random() < A.defocus_prob else None
    a["jpeg_quality"] = _ir(rng, A.jpeg_quality) if rng.random() < A.jpeg_prob else None
    a["bubbles"] = (
        [{"x": _ur(rng, A.bubbles_position), "y": _ur(rng, A.bubbles_position), "r": _ur(rng, A.bubbles_radius)}
         for _ in range(_ir(rng, A.bubbles_count))]
        if rng.random() < A.bubbles_prob else []
    )
    fc, rc = A.fluid_color, A.residue_color
    a["fluid"] = (
        {"angle": _u(rng, 0, TAU), "extent": _ur(rng, A.fluid_extent),
         "color": [_ur(rng, fc["r"]), _ur(rng, fc["g"]), _ur(rng, fc["b"])],
         "opacity": _ur(rng, A.fluid_opacity)}
        if rng.random() < A.fluid_prob else None
    )
    a["residue"] = (
        [{"x": _ur(rng, A.residue_position), "y": _ur(rng, A.residue_position), "r": _ur(rng, A.residue_radius),
          "color": [_ur(rng, rc["r"]), _ur(rng, rc["g"]), _ur(rng, rc["b"])]}
         for _ in range(_ir(rng, A.residue_count))]
        if rng.random() < A.residue_prob else []
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
               lesion_area: tuple[float, float] | None = None,
               overlay_prob: float | None = None, scene_config: SceneConfig | None = None) -> dict:
    """The complete spec of frame `index`, drawn from `scene_config` (default: the packaged scene).

    `scene`/`sampler` may be passed in to reuse work. `lesion_area` and `overlay_prob`, when given,
    replace the scene config's lesion.area and artefacts.overlay_prob."""
    sc = scene_config or default_scene()
    scene_index = index // frames_per_scene
    if scene is None:
        scene = sample_scene(seed, scene_index, sc)
    if sampler is None:
        sampler = LumenSampler(LumenShape.from_dict(scene["lumen"]))
    rng = _rng(seed, FRAME_STREAM, index)
    wants_lesion = lesion_frame(seed, index, lesion_prob)
    counts = sc.lesion.count
    n_lesions = int(rng.choice([int(k) for k in counts], p=list(counts.values()))) if wants_lesion else 0
    cam = sample_camera(rng, sampler, sc)
    art = sample_artefacts(rng, overlay_prob, sc)
    lesions = []
    area = tuple(lesion_area) if lesion_area is not None else sc.lesion.area
    for k in range(n_lesions):
        les = sample_lesion(rng, sampler, cam, scene["mucosa"], resolution, min_lesion_pixels,
                            min(art["fov_radius"], 1.0) * 0.85, instance=k + 1, area=area, sc=sc)
        if les is not None:
            lesions.append(les)
    G = sc.light
    light = {
        "power": _ur(rng, G.power_w),  # W; scene units are cm, inverse-square falloff darkens the far lumen
        "radius": _ur(rng, G.radius_cm),
        "offset": [_ur(rng, G.offset_cm), _ur(rng, G.offset_cm)],
        "count": _ir(rng, G.count),
        "color_temp": _ur(rng, G.warmth),  # 0 neutral white, 1 slightly warm
    }
    # Spec version 9: drawn after everything else, so frames without mounds are spec 8's.
    mounds = sample_mounds(rng, sampler, cam, lesions, min(art["fov_radius"], 1.0) * 0.95, sc)
    for les in lesions:  # spec version 9, last of all: which sessile lesions keep a smooth dome
        les["keep_dome"] = bool(rng.random() < sc.lesion.dome_prob)
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
        "mounds": mounds,
        "artefacts": art,
    }


def frame_specs(*, seed: int, indices, lesion_prob: float, resolution: int, frames_per_scene: int,
                min_lesion_pixels: int, render: dict, lesion_area: tuple[float, float] | None = None,
                overlay_prob: float | None = None, scene_config: SceneConfig | None = None):
    """Specs for many frames, reusing each scene's lumen tables (same result as one at a time)."""
    sc = scene_config or default_scene()
    cache: dict[int, tuple[dict, LumenSampler]] = {}
    for i in indices:
        si = i // frames_per_scene
        if si not in cache:
            cache.clear()
            scene = sample_scene(seed, si, sc)
            cache[si] = (scene, LumenSampler(LumenShape.from_dict(scene["lumen"])))
        scene, sm = cache[si]
        yield frame_spec(seed=seed, index=i, lesion_prob=lesion_prob, resolution=resolution,
                         frames_per_scene=frames_per_scene, min_lesion_pixels=min_lesion_pixels,
                         render=render, scene=scene, sampler=sm, lesion_area=lesion_area, overlay_prob=overlay_prob,
                         scene_config=sc)
