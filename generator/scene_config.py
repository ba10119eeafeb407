"""Scene files: the distributions the frame sampler draws from, in one TOML file users can edit.

Pure Python (stdlib tomllib), no numpy, no bpy. generator/spec.py keeps the sampling logic (what
is drawn, in which order, how it combines); this module holds the schema of the numbers it draws
from, and `default_scene.toml` next to it holds the numbers. The default file gives exactly the
specs the sampler gave when those numbers were literals in spec.py (tests/test_scene_pins.py).

A scene file may give only the keys it changes: everything else comes from the default scene.
`--set KEY=VALUE` changes one key after that (`camera.views.wall=0.4`, `lesion.size_cm.flat=0.3,2.5`).
What is not in the file: uniform angles over a full turn, seeds and texture offsets (nothing to
tune) and the geometry rules of lesion placement (they keep lesions visible, not a distribution).

Conventions of the file: a range `[min, max]` is drawn uniformly unless its comment says
otherwise; integer ranges include both ends; a table of probabilities sums to 1. Every field's
one-line comment lives in its `doc` here, and the writer puts it above the key, so the packaged
file, `synth scene show` and a calibrated scene all carry the same comments.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from synth import UserError

DEFAULT_SCENE_FILE = "default_scene.toml"

# Names the sampling code knows how to build; the file gives their shares and sizes.
VIEW_TYPES = ("lumen", "oblique", "wall")
PARIS_TYPES = ("0-Ip", "0-Isp", "0-Is", "0-IIa", "0-IIc")
LESION_TYPES = ("sessile", "pedunculated", "flat")
STALKED = ("0-Ip", "0-Isp")
RGB = ("r", "g", "b")
LESION_COUNTS = tuple(str(k) for k in range(1, 9))  # a frame holds at most 8 drawn lesions


class SceneError(UserError):
    """A scene file or --set that does not parse or does not validate."""


# --------------------------------------------------------------------------- schema

# Kinds of value: a number, an integer, a probability, a [min, max] range of numbers or of
# integers, a table of probabilities over named outcomes, a table of ranges per name.
NUM, INT, PROB, RANGE, INT_RANGE, TABLE, RANGE_TABLE = "num", "int", "prob", "range", "int_range", "table", "range_table"


def _f(doc: str, kind: str, lo: float | None = None, hi: float | None = None, keys: tuple[str, ...] | None = None,
       positive: bool = False):
    """A scene field: its one-line comment, kind, bounds (inclusive; `positive`: above 0) and table keys."""
    return field(metadata={"doc": doc, "kind": kind, "lo": lo, "hi": hi, "keys": keys, "positive": positive})


@dataclass
class Lumen:
    """The colon lumen: a tube swept along a smooth random curve, with haustral folds."""

    radius_cm: tuple = _f("Mean radius of the lumen (cm).", RANGE, positive=True)
    radius_variation: tuple = _f("Slow variation of the radius along the lumen, relative to it.", RANGE, lo=0.0, hi=0.9)
    radius_wavelength_cm: tuple = _f("Wavelength of that variation (cm).", RANGE, positive=True)
    bend_amplitude_cm: tuple = _f("Sideways amplitude of each of the centreline's four sinusoids (cm).", RANGE)
    bend_wavelength_cm: tuple = _f("Wavelength of each of those sinusoids (cm).", RANGE, positive=True)
    taeniae_prob: float = _f("Share of scenes with a triangular cross-section (taeniae coli).", PROB)
    taeniae: tuple = _f("Strength of that triangular cross-section (0: round).", RANGE, lo=0.0, hi=0.9)
    fold_spacing_cm: tuple = _f("Mean distance between haustral folds in a scene (cm).", RANGE, lo=0.1)
    fold_start_cm: tuple = _f("Position of the first fold (cm from the start of the 30 cm lumen).", RANGE, lo=0.0)
    fold_jitter: tuple = _f("Each gap between folds is the mean spacing times a factor from this range.", RANGE, lo=0.1)
    fold_depth: tuple = _f("Depth of each fold, fraction of the radius.", RANGE, lo=0.0, hi=1.0)
    fold_width_cm: tuple = _f("Half-width of each fold (cm).", RANGE, positive=True)
    fold_sharpness: tuple = _f("Profile exponent of each fold: 1 soft, 3 and more a sharp ridge.", RANGE, positive=True)
    fold_arc: tuple = _f("0 a full ring fold, 1 a semilunar fold only between the taeniae.", RANGE, lo=0.0, hi=1.0)
    wall_noise: tuple = _f("Small irregularity of the wall, relative to the radius.", RANGE, lo=0.0, hi=0.5)


@dataclass
class Vessels:
    """Vessel trees baked into the mucosa texture: thin sharp superficial ones over wide blurred deep ones."""

    hue: tuple = _f("Hue of the superficial vessels (HSV turns; negative wraps to purple).", RANGE)
    saturation: tuple = _f("Saturation of the superficial vessels.", RANGE, lo=0.0, hi=1.0)
    value: tuple = _f("Value (brightness) of the superficial vessels.", RANGE, lo=0.0, hi=1.0)
    count: tuple = _f("Number of superficial vessel trees per scene (density).", INT_RANGE, lo=0)
    width_px: tuple = _f("Width of a superficial vessel (texels, about 0.14 mm each).", RANGE, positive=True)
    contrast: tuple = _f("Opacity of the superficial vessels over the mucosa.", RANGE, lo=0.0, hi=1.0)
    deep_hue: tuple = _f("Hue of the deep vessels.", RANGE)
    deep_saturation: tuple = _f("Saturation of the deep vessels.", RANGE, lo=0.0, hi=1.0)
    deep_value: tuple = _f("Value of the deep vessels.", RANGE, lo=0.0, hi=1.0)
    deep_count: tuple = _f("Number of deep vessel trees per scene.", INT_RANGE, lo=0)
    deep_width_px: tuple = _f("Width of a deep vessel (texels).", RANGE, positive=True)
    deep_blur_px: tuple = _f("Blur of the deep vessels (texels): how far under the surface they seem.", RANGE, lo=0.0)
    deep_contrast: tuple = _f("Opacity of the deep vessels.", RANGE, lo=0.0, hi=1.0)


@dataclass
class Mucosa:
    """The wet mucosa: base colour in HSV (hue in turns: 0 red, 0.083 orange), patches, mucus, gloss."""

    hue: tuple = _f("Base colour hue (HSV turns; real frames measure about 0.03-0.07).", RANGE)
    saturation: tuple = _f("Base colour saturation.", RANGE, lo=0.0, hi=1.0)
    value: tuple = _f("Base colour value (brightness).", RANGE, lo=0.0, hi=1.0)
    patch_hue_shift: tuple = _f("How much lower (redder) the hue of the colour patches is than the base hue.", RANGE)
    patch_saturation: tuple = _f("Saturation of the colour patches.", RANGE, lo=0.0, hi=1.0)
    patch_value: tuple = _f("Value of the colour patches.", RANGE, lo=0.0, hi=1.0)
    color_variation: tuple = _f("Strength of the patchy colour (0: uniform mucosa).", RANGE, lo=0.0, hi=1.0)
    mottle: tuple = _f("Fine granular colour of the whole surface, lesions too: grains of 0.5-1.2 mm (0: none).",
                       RANGE, lo=0.0, hi=1.0)
    mucus_prob: float = _f("Share of scenes with strands of mucus.", PROB)
    mucus: tuple = _f("Opacity of the mucus strands where there are any.", RANGE, lo=0.0, hi=1.0)
    mucus_strands: tuple = _f("Number of mucus strands per scene.", INT_RANGE, lo=0)
    mucus_hue: tuple = _f("Hue of the mucus (yellowish).", RANGE)
    mucus_saturation: tuple = _f("Saturation of the mucus.", RANGE, lo=0.0, hi=1.0)
    mucus_value: tuple = _f("Value of the mucus.", RANGE, lo=0.0, hi=1.0)
    roughness: tuple = _f("Roughness of the base layer (the clear coat makes the sharp highlights).", RANGE, lo=0.0, hi=1.0)
    coat_weight: tuple = _f("Weight of the wet clear coat.", RANGE, lo=0.0, hi=1.0)
    coat_roughness: tuple = _f("Roughness of the clear coat: lower gives smaller, sharper highlights.", RANGE, lo=0.0, hi=1.0)
    subsurface_weight: tuple = _f("Subsurface scattering weight (translucent tissue).", RANGE, lo=0.0, hi=1.0)
    bump_strength: tuple = _f("Strength of the fine surface bump.", RANGE, lo=0.0)
    bump_scale: tuple = _f("Scale of the fine surface bump (features per cm).", RANGE, positive=True)
    glint_scale: tuple = _f("Wet speckle: droplets per cm.", RANGE, positive=True)
    glint_relief: tuple = _f("Wet speckle: how far the droplets' normals tilt (bump strength).", RANGE, lo=0.0)
    glint_threshold: tuple = _f("Wet speckle: |cos| between droplet normal and view above which it glints.", RANGE,
                                lo=0.0, hi=1.0)
    vessels: Vessels = field(default=None, metadata={"doc": Vessels.__doc__, "kind": "section"})


@dataclass
class Camera:
    """The endoscope: where it sits in the lumen, where it looks, and its lens."""

    depth_cm: tuple = _f("How far into the 30 cm lumen the scope is (cm); under 8 a wide lens may see out of its open "
                         "start.", RANGE, lo=0.5, hi=28.0)
    views: dict = _f("View mix (sum 1): down the lumen, oblique, or close to the wall.", TABLE, keys=VIEW_TYPES)
    lumen_tilt_sd_deg: float = _f("Lumen views: tilt off the lumen axis is |normal(0, this)| degrees.", NUM, lo=0.0)
    oblique_tilt_deg: tuple = _f("Oblique views: tilt off the lumen axis (degrees).", RANGE, lo=0.0, hi=180.0)
    wall_tilt_deg: tuple = _f("Wall views: tilt off the lumen axis (degrees).", RANGE, lo=0.0, hi=180.0)
    lumen_offset: tuple = _f("Lumen views: distance from the centreline, fraction of the local radius.", RANGE,
                             lo=0.0, hi=0.95)
    oblique_offset: tuple = _f("Oblique views: distance from the centreline toward the wall in view, fraction of "
                               "the radius.", RANGE, lo=0.0, hi=0.95)
    wall_offset: tuple = _f("Wall views: distance from the centreline toward the wall in view (nearer: closer "
                            "views).", RANGE, lo=0.0, hi=0.95)
    fisheye_prob: float = _f("Share of frames with an equidistant fisheye lens (the rest: wide perspective).", PROB)
    fisheye_fov_deg: tuple = _f("Field of view of the fisheye lens (degrees).", RANGE, lo=1.0, hi=360.0)
    perspective_fov_deg: tuple = _f("Field of view of the perspective lens (degrees).", RANGE, lo=1.0, hi=179.0)


@dataclass
class Light:
    """The scope's lights at its tip (inverse-square falloff darkens the far lumen)."""

    power_w: tuple = _f("Power of each light (W, scene units cm).", RANGE, positive=True)
    radius_cm: tuple = _f("Radius of each light (cm): larger gives softer highlights.", RANGE, positive=True)
    offset_cm: tuple = _f("Offset of the lights from the lens, each of x and y (cm).", RANGE)
    count: tuple = _f("Number of lights.", INT_RANGE, lo=1, hi=8)
    warmth: tuple = _f("Colour of the light: 0 neutral white, 1 slightly warm.", RANGE, lo=0.0, hi=1.0)


@dataclass
class LesionColor:
    """Lesion colour: a tint multiplying the mucosa's own albedo (lesions are the same tissue)."""

    pale_flat_prob: float = _f("Share of flat elevated (0-IIa) lesions with the pale yellowish tint of serrated ones.", PROB)
    pale_flat_tint: dict = _f("That pale tint, per channel (multiplies the albedo).", RANGE_TABLE, keys=RGB, lo=0.0)
    red_prob: float = _f("Share of the other lesions that are redder than the mucosa (the rest: paler).", PROB)
    red_tint: dict = _f("The redder tint, per channel.", RANGE_TABLE, keys=RGB, lo=0.0)
    pale_tint: dict = _f("The paler tint: a gain, then green and blue relative to it.", RANGE_TABLE,
                         keys=("gain", "g", "b"), lo=0.0)
    strength: tuple = _f("How fully the tint applies (0: the mucosa's colour).", RANGE, lo=0.0, hi=1.0)


@dataclass
class Lesion:
    """Lesions (polyps) in lesion frames: how many, their Paris type, apparent size, shape and colour."""

    count: dict = _f("Lesions drawn in a lesion frame (probabilities of 1, 2, 3 ..., sum 1).", TABLE, keys=LESION_COUNTS)
    area: tuple = _f("Apparent area of each lesion, fraction of the frame, drawn log-uniformly (--lesion-area).",
                     RANGE, lo=1e-6, hi=1.0, positive=True)
    paris: dict = _f("Paris type shares (sum 1): 0-Ip pedunculated, 0-Isp subpedunculated, 0-Is sessile, 0-IIa "
                     "flat elevated, 0-IIc depressed.", TABLE, keys=PARIS_TYPES)
    size_cm: dict = _f("Base radius each mesh type may take (cm); it stretches within this to meet the area.",
                       RANGE_TABLE, keys=LESION_TYPES, positive=True)
    height: dict = _f("Height over base radius per Paris type (negative: depressed).", RANGE_TABLE, keys=PARIS_TYPES)
    stalk_length_cm: dict = _f("Stalk length of the stalked types (cm).", RANGE_TABLE, keys=STALKED, lo=0.0)
    stalk_radius: dict = _f("Stalk radius of the stalked types, fraction of the head radius.", RANGE_TABLE,
                            keys=STALKED, positive=True)
    stalk_tilt: tuple = _f("Stalk tilt (radians).", RANGE, lo=0.0, hi=1.5)
    position_r2: tuple = _f("Where lesions are aimed: squared distance from the image centre, fraction of the "
                            "field of view (uniform over the disc).", RANGE, lo=0.0, hi=1.0)
    elongation: tuple = _f("Ratio of the base's two axes.", RANGE, positive=True)
    lobes: tuple = _f("Number of lobes around the base.", INT_RANGE, lo=1, hi=32)
    lobulation: tuple = _f("Depth of the lobes (0: smooth outline).", RANGE, lo=0.0, hi=1.0)
    pit_scale: tuple = _f("Pit pattern: pits per cm.", RANGE, positive=True)
    pit_strength: tuple = _f("Pit pattern: relief strength.", RANGE, lo=0.0)
    nodule_scale: tuple = _f("Nodules of the lesion surface (lobulated, granular tissue): nodules per cm.",
                             RANGE, positive=True)
    nodule_strength: tuple = _f("Relief of the nodules (0: a smooth surface; the default: nodular lesions "
                                "lowered transfer, docs/RESULTS.md).", RANGE, lo=0.0)
    vessel_visibility: tuple = _f("How much of the mucosa's vessel network shows through a lesion (0: none, as "
                                  "on many adenomas; the default 1 transferred best, docs/RESULTS.md).", RANGE,
                                  lo=0.0, hi=1.0)
    mottle: tuple = _f("Mottling of the lesion surface: fine paler and redder spots (0: none).", RANGE,
                       lo=0.0, hi=1.0)
    roughness: tuple = _f("Surface roughness of the lesion.", RANGE, lo=0.0, hi=1.0)
    dome_prob: float = _f("Share of sessile lesions that keep a smooth dome over the wall (0: draped along its "
                          "normals, which creases tall domes; creased transferred better, docs/RESULTS.md).", PROB)
    color: LesionColor = field(default=None, metadata={"doc": LesionColor.__doc__, "kind": "section"})


@dataclass
class Mounds:
    """Hard negatives: unlabelled bulges of the normal wall (a fold's knuckle, a submucosal swelling), never in the mask."""

    prob: float = _f("Share of frames with mounds, with or without a lesion (0: none).", PROB)
    count: tuple = _f("Mounds in such a frame.", INT_RANGE, lo=0, hi=8)
    size_cm: tuple = _f("Base radius of a mound (cm).", RANGE, positive=True)
    height: tuple = _f("Height over base radius.", RANGE, lo=0.0, hi=2.0)
    elongation: tuple = _f("Ratio of the base's two axes.", RANGE, positive=True)
    lobulation: tuple = _f("Depth of the base's lobes (0: a round outline).", RANGE, lo=0.0, hi=1.0)
    position_r2: tuple = _f("Where mounds are aimed: squared distance from the image centre, fraction of the "
                            "field of view.", RANGE, lo=0.0, hi=1.0)


@dataclass
class Overlay:
    """The processor's on-screen graphics: lines of text and a thumbnail box (their pixels leave the mask)."""

    lines: tuple = _f("Lines of text.", INT_RANGE, lo=0, hi=20)
    line_chars: tuple = _f("Characters per line.", INT_RANGE, lo=1, hi=40)
    text_grey: tuple = _f("Brightness of the text.", RANGE, lo=0.0, hi=1.0)
    text_blue: tuple = _f("Blue of the text relative to its brightness.", RANGE, lo=0.0, hi=1.0)
    box_prob: float = _f("Share of overlays with a thumbnail box at the bottom left.", PROB)
    box_width: tuple = _f("Box width, fraction of the frame.", RANGE, lo=0.0, hi=1.0)
    box_height: tuple = _f("Box height, fraction of the frame.", RANGE, lo=0.0, hi=1.0)
    guide_prob: float = _f("Share of boxes with the green scope-position guide.", PROB)


@dataclass
class Artefacts:
    """2-D camera and scope effects after rendering; sizes are fractions of the image width."""

    circle_fov_prob: float = _f("Share of frames with a circular field of view (the rest: octagonal).", PROB)
    fov_radius: tuple = _f("Field-of-view radius, fraction of half the frame.", RANGE, lo=0.1, hi=1.5)
    vignetting: tuple = _f("Radial darkening of the optics toward the edge.", RANGE, lo=0.0, hi=1.0)
    exposure: tuple = _f("Exposure bias after the processor's auto gain (stops).", RANGE, lo=-4.0, hi=4.0)
    gamma: tuple = _f("Gamma applied after sRGB encoding (above 1: darker mid-tones).", RANGE, positive=True)
    noise_sigma: tuple = _f("Sensor noise standard deviation (0-1 intensity).", RANGE, lo=0.0, hi=0.5)
    black_level: tuple = _f("Processor black level: intensities below it go black (dark far lumen).", RANGE,
                            lo=0.0, hi=0.9)
    saturation: tuple = _f("Processor colour enhancement: saturation gain.", RANGE, lo=0.0, hi=4.0)
    glint_strength: tuple = _f("Gain of the wet speckle highlights.", RANGE, lo=0.0)
    sharpen: tuple = _f("Processor structure enhancement: unsharp-mask gain (0: none).", RANGE, lo=0.0)
    sharpen_radius: tuple = _f("Radius of the structure enhancement, fraction of the image width.", RANGE,
                               positive=True)
    chromatic_aberration: tuple = _f("Lateral colour of the lens: red larger, blue smaller by this fraction.",
                                     RANGE, lo=0.0, hi=0.1)
    overlay_prob: float = _f("Share of frames with on-screen text and thumbnail box (--overlay-prob).", PROB)
    motion_blur_prob: float = _f("Share of frames with motion blur.", PROB)
    motion_blur_length: tuple = _f("Motion blur length.", RANGE, lo=0.0, hi=0.5)
    defocus_prob: float = _f("Share of frames out of focus.", PROB)
    defocus_sigma: tuple = _f("Defocus blur sigma.", RANGE, lo=0.0, hi=0.2)
    jpeg_prob: float = _f("Share of frames with JPEG compression.", PROB)
    jpeg_quality: tuple = _f("JPEG quality.", INT_RANGE, lo=1, hi=100)
    bubbles_prob: float = _f("Share of frames with air bubbles.", PROB)
    bubbles_count: tuple = _f("Bubbles in such a frame.", INT_RANGE, lo=0)
    bubbles_position: tuple = _f("Bubble centre, each of x and y (-1..1 across the frame).", RANGE, lo=-1.0, hi=1.0)
    bubbles_radius: tuple = _f("Bubble radius.", RANGE, lo=0.0, hi=1.0)
    fluid_prob: float = _f("Share of frames with a pool of murky fluid.", PROB)
    fluid_extent: tuple = _f("How far the pool reaches into the frame.", RANGE, lo=0.0, hi=1.0)
    fluid_color: dict = _f("Fluid colour, per channel (sRGB 0-1).", RANGE_TABLE, keys=RGB, lo=0.0, hi=1.0)
    fluid_opacity: tuple = _f("Fluid opacity.", RANGE, lo=0.0, hi=1.0)
    residue_prob: float = _f("Share of frames with opaque residue (hides lesion pixels).", PROB)
    residue_count: tuple = _f("Residue blobs in such a frame.", INT_RANGE, lo=0)
    residue_position: tuple = _f("Residue centre, each of x and y (-1..1 across the frame).", RANGE, lo=-1.0, hi=1.0)
    residue_radius: tuple = _f("Residue blob radius.", RANGE, lo=0.0, hi=1.0)
    residue_color: dict = _f("Residue colour, per channel (sRGB 0-1).", RANGE_TABLE, keys=RGB, lo=0.0, hi=1.0)
    overlay: Overlay = field(default=None, metadata={"doc": Overlay.__doc__, "kind": "section"})


@dataclass
class SceneConfig:
    """Everything the frame sampler draws from."""

    lumen: Lumen = field(default=None, metadata={"doc": Lumen.__doc__, "kind": "section"})
    mucosa: Mucosa = field(default=None, metadata={"doc": Mucosa.__doc__, "kind": "section"})
    camera: Camera = field(default=None, metadata={"doc": Camera.__doc__, "kind": "section"})
    light: Light = field(default=None, metadata={"doc": Light.__doc__, "kind": "section"})
    lesion: Lesion = field(default=None, metadata={"doc": Lesion.__doc__, "kind": "section"})
    mounds: Mounds = field(default=None, metadata={"doc": Mounds.__doc__, "kind": "section"})
    artefacts: Artefacts = field(default=None, metadata={"doc": Artefacts.__doc__, "kind": "section"})

    @classmethod
    def from_dict(cls, data: dict, source: str = "scene") -> "SceneConfig":
        """A complete, validated scene from a nested dict (every key present)."""
        return _build(cls, data, source, "")

    def to_dict(self) -> dict:
        """Nested plain dict (ranges as lists), JSON- and TOML-able."""
        return _to_dict(self)

    def get(self, key: str) -> Any:
        """The value at a dotted key (`camera.views.wall`)."""
        obj: Any = self.to_dict()
        for part in key.split("."):
            obj = obj[part]
        return obj


_SECTION_TYPES = {"vessels": Vessels, "color": LesionColor, "overlay": Overlay, "lumen": Lumen, "mucosa": Mucosa,
                  "camera": Camera, "light": Light, "lesion": Lesion, "mounds": Mounds,
                  "artefacts": Artefacts}


def _section_type(f) -> type:
    return _SECTION_TYPES[f.name]


# --------------------------------------------------------------------------- validation


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_bounds(v: float, meta: dict, where: str, key: str) -> None:
    lo, hi = meta["lo"], meta["hi"]
    if meta["positive"] and not v > 0:
        raise SceneError(f"{where}: {key} must be above 0, got {v}")
    if lo is not None and v < lo:
        raise SceneError(f"{where}: {key} must be at least {lo}, got {v}")
    if hi is not None and v > hi:
        raise SceneError(f"{where}: {key} must be at most {hi}, got {v}")


def _value(v: Any, meta: dict, where: str, key: str, kind: str | None = None) -> Any:
    kind = kind or meta["kind"]
    if kind in (NUM, PROB):
        if not _number(v):
            raise SceneError(f"{where}: {key} must be a number, got {v!r}")
        if kind == PROB and not 0.0 <= v <= 1.0:
            raise SceneError(f"{where}: {key} is a probability and must be between 0 and 1, got {v}")
        _check_bounds(v, meta, where, key)
        return float(v)
    if kind == INT:
        if not isinstance(v, int) or isinstance(v, bool):
            raise SceneError(f"{where}: {key} must be an integer, got {v!r}")
        _check_bounds(v, meta, where, key)
        return int(v)
    if kind in (RANGE, INT_RANGE):
        integer = kind == INT_RANGE
        ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(
            (isinstance(x, int) and not isinstance(x, bool)) if integer else _number(x) for x in v)
        if not ok:
            what = "integers" if integer else "numbers"
            raise SceneError(f"{where}: {key} must be a range [min, max] of two {what}, got {v!r}")
        lo, hi = v
        if lo > hi:
            raise SceneError(f"{where}: {key} has min {lo} > max {hi}; write it as [min, max]")
        for x in v:
            _check_bounds(x, meta, where, key)
        return (int(lo), int(hi)) if integer else (float(lo), float(hi))
    if kind in (TABLE, RANGE_TABLE):
        keys = meta["keys"]
        if not isinstance(v, dict):
            raise SceneError(f"{where}: {key} must be a table of {', '.join(keys)}, got {v!r}")
        extra = [k for k in v if k not in keys]
        if extra:
            raise SceneError(f"{where}: unknown key {key}.{extra[0]} (known: {', '.join(keys)})")
        if kind == RANGE_TABLE:
            missing = [k for k in keys if k not in v]
            if missing:
                raise SceneError(f"{where}: {key} lacks {key}.{missing[0]} (it needs {', '.join(keys)})")
            return {k: _value(v[k], meta, where, f"{key}.{k}", RANGE) for k in keys}
        # Probabilities: outcomes left out have probability 0 (kept in the code's order).
        out = {k: _value(v.get(k, 0.0), {**meta, "lo": None, "hi": None}, where, f"{key}.{k}", PROB) for k in keys}
        if meta["keys"] == LESION_COUNTS:
            out = {k: p for k, p in out.items() if k in v or p > 0}
        total = sum(out.values())
        if abs(total - 1.0) > 1e-6:
            raise SceneError(f"{where}: the probabilities of {key} sum to {total:.6g}, they must sum to 1")
        return out
    raise AssertionError(kind)


def _build(cls: type, data: Any, where: str, prefix: str):
    if not isinstance(data, dict):
        raise SceneError(f"{where}: {prefix.rstrip('.') or 'the scene'} must be a table of keys, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    for k in data:
        if k not in known:
            raise SceneError(f"{where}: unknown key {prefix}{k} (known keys{' of ' + prefix.rstrip('.') if prefix else ''}:"
                             f" {', '.join(known)})")
    values = {}
    for name, f in known.items():
        key = prefix + name
        if name not in data:
            raise SceneError(f"{where}: {key} is missing")
        if f.metadata["kind"] == "section":
            values[name] = _build(_section_type(f), data[name], where, key + ".")
        else:
            values[name] = _value(data[name], f.metadata, where, key)
    return cls(**values)


def _to_dict(obj: Any) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if f.metadata["kind"] == "section":
            out[f.name] = _to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        elif isinstance(v, dict):
            out[f.name] = {k: list(x) if isinstance(x, tuple) else x for k, x in v.items()}
        else:
            out[f.name] = v
    return out


def _merge(cls: type, base: dict, over: dict) -> dict:
    """A file's keys laid onto a complete scene dict: sections and range tables key by key, a table of
    probabilities as a whole (outcomes it leaves out get 0). Unknown keys stay for validation to name."""
    known = {f.name: f for f in fields(cls)}
    out = dict(base)
    for k, v in over.items():
        f = known.get(k)
        if f is not None and isinstance(v, dict) and isinstance(base.get(k), dict):
            if f.metadata["kind"] == "section":
                out[k] = _merge(_section_type(f), base[k], v)
                continue
            if f.metadata["kind"] == RANGE_TABLE:
                out[k] = {**base[k], **v}
                continue
        out[k] = v
    return out


# --------------------------------------------------------------------------- files


def parse_toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SceneError(f"{where} does not parse as TOML: {e}") from None


@lru_cache(maxsize=1)
def _default_dict() -> dict:
    text = resources.files("synth.generator").joinpath(DEFAULT_SCENE_FILE).read_text(encoding="utf-8")
    return parse_toml(text, f"the default scene file {DEFAULT_SCENE_FILE}")


def default_scene() -> SceneConfig:
    """The packaged default scene (a fresh object each call; the parsed file is cached)."""
    return SceneConfig.from_dict(_default_dict(), f"the default scene file {DEFAULT_SCENE_FILE}")


def load_scene(path: str | Path) -> SceneConfig:
    """A scene file laid over the default scene (a file may give only the keys it changes)."""
    path = Path(path)
    where = f"scene file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SceneError(f"{where} does not exist; pass an existing .toml file to --scene") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SceneError(f"{where} cannot be read: {e}") from None
    data = parse_toml(text, where)
    return SceneConfig.from_dict(_merge(SceneConfig, _default_dict(), data), where)


# --------------------------------------------------------------------------- --set


def field_at(key: str) -> tuple[dict, str | None]:
    """(metadata of the field at a dotted key, table entry or None); SceneError for an unknown key."""
    cls: type = SceneConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        known = {f.name: f for f in fields(cls)}
        if part not in known:
            where = ".".join(parts[:i])
            raise SceneError(f"--set: unknown scene key {key!r} (keys of {where or 'the scene'}: {', '.join(known)}; "
                             "`synth scene show` lists them all)")
        f = known[part]
        rest = parts[i + 1:]
        if f.metadata["kind"] == "section":
            if not rest:
                raise SceneError(f"--set: {key} is a section; set one of its keys ({key}.KEY=VALUE)")
            cls = _section_type(f)
            continue
        if f.metadata["kind"] in (TABLE, RANGE_TABLE):
            if len(rest) != 1:
                raise SceneError(f"--set: set one entry of the table {'.'.join(parts[:i + 1])} at a time, "
                                 f"e.g. {'.'.join(parts[:i + 1])}.{f.metadata['keys'][0]}=VALUE")
            if rest[0] not in f.metadata["keys"]:
                raise SceneError(f"--set: unknown scene key {key!r} (entries of {'.'.join(parts[:i + 1])}: "
                                 f"{', '.join(f.metadata['keys'])})")
            return f.metadata, rest[0]
        if rest:
            raise SceneError(f"--set: unknown scene key {key!r} ({'.'.join(parts[:i + 1])} has no entries)")
        return f.metadata, None
    raise AssertionError(key)


def _parse_value(text: str, kind: str, item: str) -> Any:
    """The text of --set KEY=VALUE as the field's kind wants it: 0.4, 3, or MIN,MAX."""
    t = text.strip().strip("[]")
    try:
        if kind in (RANGE, INT_RANGE, RANGE_TABLE):
            parts = [p.strip() for p in t.split(",")]
            if len(parts) != 2:
                raise ValueError
            conv = int if kind == INT_RANGE else float
            return [conv(p) for p in parts]
        if kind == INT:
            return int(t)
        return float(t)
    except ValueError:
        want = {RANGE: "MIN,MAX (two numbers)", RANGE_TABLE: "MIN,MAX (two numbers)",
                INT_RANGE: "MIN,MAX (two integers)", INT: "an integer"}.get(kind, "a number")
        raise SceneError(f"--set {item}: the value must be {want}, got {text!r}") from None


def parse_set(item: str) -> tuple[str, Any]:
    """'camera.views.wall=0.4' -> ('camera.views.wall', 0.4), checked against the schema."""
    if "=" not in item:
        raise SceneError(f"--set expects KEY=VALUE (e.g. camera.views.wall=0.4), got {item!r}")
    key, text = (s.strip() for s in item.split("=", 1))
    meta, entry = field_at(key)
    kind = meta["kind"]
    if kind == TABLE:
        kind = PROB
    return key, _parse_value(text, kind, item)


def apply_sets(scene: SceneConfig, sets: list[str] | tuple[str, ...]) -> SceneConfig:
    """The scene with each --set KEY=VALUE applied in turn, validated once at the end."""
    if not sets:
        return scene
    data = scene.to_dict()
    for item in sets:
        key, value = parse_set(item)
        node = data
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return SceneConfig.from_dict(data, "--set")


def resolve_scene(path: str | Path | None = None, sets: list[str] | tuple[str, ...] = ()) -> SceneConfig:
    """The scene a command uses: the default, or FILE laid over it, then each --set."""
    scene = load_scene(path) if path is not None else default_scene()
    return apply_sets(scene, list(sets))


def scene_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two scene dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += scene_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(prefix + k)
    return out


# --------------------------------------------------------------------------- writing

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

HEADER = """\
# synth scene file: the distributions frame specs are drawn from (`synth scene show` prints the
# resolved one; `synth render --scene FILE --set KEY=VALUE` uses one).
# A range [min, max] is drawn uniformly unless its comment says otherwise; integer ranges include
# both ends; tables of probabilities sum to 1. A file may give only the keys it changes: the rest
# comes from the packaged default scene.
"""


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_fmt(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else '"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dumps(scene: SceneConfig, header: str = HEADER) -> str:
    """The scene as TOML, a one-line comment above every key."""
    lines = [header.rstrip("\n")] if header else []

    def section(obj: Any, name: str, doc: str) -> None:
        lines.extend(["", f"# {doc}", f"[{name}]"])
        subs = []
        for f in fields(obj):
            v = getattr(obj, f.name)
            if f.metadata["kind"] == "section":
                subs.append((f, v))
                continue
            lines.append(f"# {f.metadata['doc']}")
            lines.append(f"{f.name} = {_fmt(v)}")
        for f, v in subs:
            section(v, f"{name}.{f.name}", f.metadata["doc"])

    for f in fields(scene):
        section(getattr(scene, f.name), f.name, f.metadata["doc"])
    return "\n".join(lines) + "\n"


def loads(text: str, where: str = "scene text") -> SceneConfig:
    """A complete scene from TOML text (used to read back a resolved scene.toml)."""
    return SceneConfig.from_dict(parse_toml(text, where), where)
