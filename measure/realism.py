"""Realism statistics: what differs between synthetic and real frames, in numbers that say what to change.

No torch, no bpy (numpy, OpenCV, scipy). Three layers:

1. `image_statistics(image, mask)`: one number per statistic for one frame, measured inside the
   scope's field of view (`field_of_view`): a centred circle of radius 0.44 x side (the circle
   `synth classify` puts every image behind), minus black pixels joined to the outside of that
   circle (the rest of a scope's border and the black position-guide box Kvasir-SEG frames
   carry). A dark lumen inside the view is enclosed by mucosa, so it stays in.
2. `folder_statistics(images, masks)`: the per-frame values of a folder (a distribution per
   statistic), its mean radial brightness profile and its pooled Lab pixel histograms.
3. `compare(synthetic, real)`: per statistic the gap between the two distributions: the mean
   difference, the standardised mean difference (difference over the pooled standard
   deviation: 0.2 small, 0.8 large), the 1-D Wasserstein distance (scipy, in the statistic's
   own units), and a plain-words reading ("synthetic is 3.1 bluer in b*", "synthetic has 3.0x
   fewer specular highlights per frame"). Two identical folders give exactly zero everywhere.

Frames should come at one size (the caller resizes): counts and sizes of highlights, edge and
texture measures depend on the pixel scale. Kernels are defined at 128 px and scaled with the side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from synth.generator import imaging

FOV_RADIUS = 0.44  # x side: the field-of-view circle of `synth classify` (--fov-radius)
BORDER_DARK = 10  # a pixel with every channel below this is black (border, overlay box)
SPECULAR_MIN = 230  # a pixel with every channel at or above this is a saturated highlight
LUMEN_L = 25.0  # L* below this is dark lumen (a hole the light does not reach)
VESSEL_DEPTH = 12  # green-channel black-hat response (grey levels) that counts as a dark line
RINGS = 8  # rings of the radial brightness profile, from the centre to the field-of-view edge
REF_SIDE = 128  # kernel sizes below are for this side and scale with it

HIST_BINS = {"L": (0.0, 100.0, 50), "a": (-40.0, 80.0, 60), "b": (-40.0, 80.0, 60)}


@dataclass(frozen=True)
class Statistic:
    """One per-frame statistic and how to read a gap in it.

    kind "diff": a signed quantity; the reading gives the difference of means (`more`/`less` take
    {x}, the absolute difference). kind "ratio": a non-negative amount; the reading gives the ratio
    of means ({x}, always >= 1, "3.0x more" / "3.0x fewer"). kind "points": a fraction; the reading
    gives the difference in percentage points.
    """

    name: str
    title: str
    unit: str
    kind: str
    more: str
    less: str
    group: str = "image"  # "image": every frame; "lesion": frames with a visible lesion (needs masks)


STATISTICS: tuple[Statistic, ...] = (
    Statistic("L_mean", "brightness (mean L*)", "L*", "diff",
              "synthetic is {x} brighter in L*", "synthetic is {x} darker in L*"),
    Statistic("a_mean", "red-green (mean a*)", "a*", "diff",
              "synthetic is {x} redder in a*", "synthetic is {x} greener in a*"),
    Statistic("b_mean", "yellow-blue (mean b*)", "b*", "diff",
              "synthetic is {x} yellower in b*", "synthetic is {x} bluer in b*"),
    Statistic("chroma_mean", "colourfulness (mean C*)", "C*", "diff",
              "synthetic is {x} more saturated in C*", "synthetic is {x} less saturated in C*"),
    Statistic("L_std", "brightness spread in a frame (std L*)", "L*", "diff",
              "synthetic has {x} more brightness contrast (std L*)",
              "synthetic is {x} flatter in brightness (std L*)"),
    Statistic("ab_spread", "colour spread in a frame (std a*b*)", "a*b*", "diff",
              "synthetic varies {x} more in colour within a frame (a*b* spread)",
              "synthetic varies {x} less in colour within a frame (a*b* spread)"),
    Statistic("centre_minus_edge", "centre minus edge brightness (L*)", "L*", "diff",
              "synthetic's centre is {x} brighter relative to its edge (L*)",
              "synthetic's centre is {x} darker relative to its edge (L*)"),
    Statistic("dark_lumen", "dark lumen (share of view with L* < 25)", "share", "points",
              "synthetic shows {x} points more dark lumen (L* < 25)",
              "synthetic shows {x} points less dark lumen (L* < 25)"),
    Statistic("specular_fraction", "specular highlights (share of view)", "share", "ratio",
              "synthetic has {x}x more specular highlight area", "synthetic has {x}x less specular highlight area"),
    Statistic("specular_blobs", "specular highlights per frame (count)", "count", "ratio",
              "synthetic has {x}x more specular highlights per frame",
              "synthetic has {x}x fewer specular highlights per frame"),
    Statistic("specular_blob_size", "size of a specular highlight (% of view)", "%", "ratio",
              "synthetic's specular highlights are {x}x larger", "synthetic's specular highlights are {x}x smaller"),
    Statistic("high_freq", "fine texture (high-frequency energy, L*)", "L*", "ratio",
              "synthetic has {x}x more fine texture (high-frequency energy)",
              "synthetic has {x}x less fine texture (high-frequency energy)"),
    Statistic("edge_density", "edges (share of view on a Canny edge)", "share", "ratio",
              "synthetic has {x}x more edges", "synthetic has {x}x fewer edges"),
    Statistic("vessel_density", "vessel-like dark lines (share of view)", "share", "ratio",
              "synthetic has {x}x more vessel-like dark lines", "synthetic has {x}x fewer vessel-like dark lines"),
    Statistic("lesion_area", "lesion area (share of frame)", "share", "ratio",
              "synthetic lesions are {x}x larger", "synthetic lesions are {x}x smaller", "lesion"),
    Statistic("lesion_r", "lesion distance from the centre (x half side)", "half side", "diff",
              "synthetic lesions sit {x} further from the centre (x half side)",
              "synthetic lesions sit {x} nearer the centre (x half side)", "lesion"),
    Statistic("lesion_x", "lesion position left-right (0 left, 1 right)", "side", "diff",
              "synthetic lesions sit {x} further right (x side)", "synthetic lesions sit {x} further left (x side)",
              "lesion"),
    Statistic("lesion_y", "lesion position top-bottom (0 top, 1 bottom)", "side", "diff",
              "synthetic lesions sit {x} lower (x side)", "synthetic lesions sit {x} higher (x side)", "lesion"),
    Statistic("lesion_dL", "lesion minus surround brightness (L*)", "L*", "diff",
              "synthetic lesions are {x} brighter against their surround (L*)",
              "synthetic lesions are {x} darker against their surround (L*)", "lesion"),
    Statistic("lesion_da", "lesion minus surround red-green (a*)", "a*", "diff",
              "synthetic lesions are {x} redder against their surround (a*)",
              "synthetic lesions are {x} greener against their surround (a*)", "lesion"),
    Statistic("lesion_db", "lesion minus surround yellow-blue (b*)", "b*", "diff",
              "synthetic lesions are {x} yellower against their surround (b*)",
              "synthetic lesions are {x} bluer against their surround (b*)", "lesion"),
    Statistic("lesion_dE", "lesion-to-surround colour contrast (ΔE)", "ΔE", "ratio",
              "synthetic lesions contrast {x}x more with their surround (ΔE)",
              "synthetic lesions contrast {x}x less with their surround (ΔE)", "lesion"),
)
BY_NAME = {s.name: s for s in STATISTICS}


# --------------------------------------------------------------------------- one frame


def circle(h: int, w: int, radius: float = FOV_RADIUS) -> np.ndarray:
    """True inside the centred circle of `radius` x the shorter side (synth.generator.imaging's
    one field-of-view convention, the circle of `synth classify --fov-radius`)."""
    return imaging.circle(h, w, radius)


def field_of_view(image: np.ndarray, radius: float = FOV_RADIUS, dark: int = BORDER_DARK) -> np.ndarray:
    """Where a frame shows the scene: inside the circle, minus black pixels joined to its outside.

    Black regions that touch the outside of the circle are border or overlay (a scope's octagon
    corners, Kvasir-SEG's position-guide box); black enclosed by mucosa (a dark lumen) stays.
    """
    import cv2

    h, w = image.shape[:2]
    inside = circle(h, w, radius)
    region = (image.max(axis=2) < dark) | ~inside
    _, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    outside = np.unique(labels[~inside])
    border = np.isin(labels, outside[outside > 0])
    return inside & ~border


def _odd(x: float) -> int:
    k = max(3, int(round(x)))
    return k if k % 2 else k + 1


def lab(image: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (L in 0-100, a and b about -128..127) of an sRGB uint8 (H, W, 3) image."""
    import cv2

    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


@dataclass
class FrameMeasures:
    """What one frame contributes: its statistics, radial profile and pixel histograms."""

    values: dict[str, float]
    radial: np.ndarray  # (RINGS,) mean L* per ring, NaN for rings outside the view
    hist: dict[str, np.ndarray]  # pixel counts per Lab channel inside the view


def image_statistics(image: np.ndarray, mask: np.ndarray | None = None, *, radius: float = FOV_RADIUS) -> FrameMeasures:
    """Every statistic of STATISTICS for one RGB uint8 frame (and its lesion mask, if any).

    Undefined values are NaN: lesion statistics of a frame without a visible lesion, the
    highlight size of a frame without highlights, everything of a frame with no view at all.
    """
    import cv2

    h, w = image.shape[:2]
    side = min(h, w)
    scale = side / REF_SIDE
    vals = {s.name: math.nan for s in STATISTICS}
    hist = {c: np.zeros(HIST_BINS[c][2], np.int64) for c in HIST_BINS}
    view = field_of_view(image, radius)
    n_view = int(view.sum())
    if n_view < 0.02 * h * w:  # a black frame: nothing to measure
        return FrameMeasures(vals, np.full(RINGS, math.nan), hist)
    Lab = lab(image)
    L, a, b = Lab[..., 0], Lab[..., 1], Lab[..., 2]
    Lv, av, bv = L[view], a[view], b[view]
    for c, ch in (("L", Lv), ("a", av), ("b", bv)):
        lo, hi, n = HIST_BINS[c]
        hist[c] = np.histogram(np.clip(ch, lo, hi), bins=n, range=(lo, hi))[0]
    vals["L_mean"], vals["a_mean"], vals["b_mean"] = float(Lv.mean()), float(av.mean()), float(bv.mean())
    vals["chroma_mean"] = float(np.sqrt(av ** 2 + bv ** 2).mean())
    vals["L_std"] = float(Lv.std())
    vals["ab_spread"] = float(np.sqrt(av.var() + bv.var()))
    vals["dark_lumen"] = float((Lv < LUMEN_L).mean())

    # Brightness against distance from the centre, r = 1 at the edge of the circle.
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt((yy - (h - 1) / 2.0) ** 2 + (xx - (w - 1) / 2.0) ** 2) / (radius * side)
    ring = np.minimum((r * RINGS).astype(np.int64), RINGS - 1)
    sums = np.bincount(ring[view], weights=L[view], minlength=RINGS)
    counts = np.bincount(ring[view], minlength=RINGS)
    radial = np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)
    centre, edge = view & (r < 0.3), view & (r >= 0.7)
    if centre.any() and edge.any():
        vals["centre_minus_edge"] = float(L[centre].mean() - L[edge].mean())

    # Saturated specular highlights: every channel near white; blobs are 8-connected groups.
    spec = (image.min(axis=2) >= SPECULAR_MIN) & view
    vals["specular_fraction"] = float(spec.sum() / n_view)
    n_blobs, _, stats, _ = cv2.connectedComponentsWithStats(spec.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    vals["specular_blobs"] = float(len(areas))
    if len(areas):
        vals["specular_blob_size"] = float(100.0 * areas.mean() / n_view)

    # Texture and edges away from the view's edge (its border is not texture).
    inner = cv2.erode(view.astype(np.uint8), np.ones((_odd(5 * scale),) * 2, np.uint8)).astype(bool)
    if inner.sum() >= 16:
        sigma = 1.0 * scale
        high = L - cv2.GaussianBlur(L, (0, 0), sigma)
        vals["high_freq"] = float(high[inner].std())
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        edges = cv2.Canny(cv2.GaussianBlur(grey, (0, 0), sigma), 30, 90)
        vals["edge_density"] = float((edges[inner] > 0).mean())
        # Vessels are thin dark lines, strongest in the green channel: a black-hat (closing
        # minus image) with a disc a little wider than a vessel picks them out.
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(7 * scale),) * 2)
        blackhat = cv2.morphologyEx(np.ascontiguousarray(image[..., 1]), cv2.MORPH_BLACKHAT, k)
        vals["vessel_density"] = float((blackhat[inner] >= VESSEL_DEPTH).mean())

    if mask is not None:
        lesion = mask > 0
        seen = lesion & view
        if seen.sum() >= max(4, 0.001 * h * w):
            vals["lesion_area"] = float(lesion.sum() / (h * w))
            ys, xs = np.nonzero(lesion)
            cx, cy = xs.mean() / max(1, w - 1), ys.mean() / max(1, h - 1)
            vals["lesion_x"], vals["lesion_y"] = float(cx), float(cy)
            vals["lesion_r"] = float(math.hypot(cx - 0.5, cy - 0.5) / 0.5)
            grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(0.16 * side),) * 2)
            around = cv2.dilate(lesion.astype(np.uint8), grow).astype(bool) & ~lesion & view
            if around.sum() >= 4:
                d = Lab[seen].mean(0) - Lab[around].mean(0)
                vals["lesion_dL"], vals["lesion_da"], vals["lesion_db"] = float(d[0]), float(d[1]), float(d[2])
                vals["lesion_dE"] = float(np.sqrt((d ** 2).sum()))
    return FrameMeasures(vals, radial, hist)


# --------------------------------------------------------------------------- one folder


@dataclass
class FolderStatistics:
    """The distributions of one folder: per-frame values of every statistic, radial profiles,
    pooled Lab pixel histograms."""

    values: dict[str, np.ndarray]  # statistic -> (N,) per-frame values (NaN: undefined there)
    radial: np.ndarray  # (N, RINGS)
    hist: dict[str, np.ndarray]  # channel -> pooled pixel counts
    frames: int = 0
    masks: bool = False  # lesion masks were given (lesion statistics are measured)
    ids: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-able: per statistic n, mean, std, median, 10th/90th percentile; radial profile; histograms."""
        out = {"frames": self.frames, "masks": self.masks, "statistics": {}}
        for name, v in self.values.items():
            ok = v[~np.isnan(v)]
            out["statistics"][name] = (
                {"n": int(len(ok)), "mean": float(ok.mean()), "std": float(ok.std()), "median": float(np.median(ok)),
                 "p10": float(np.percentile(ok, 10)), "p90": float(np.percentile(ok, 90))}
                if len(ok) else {"n": 0})
        prof = mean_profile(self.radial)
        out["radial_profile_L"] = [None if np.isnan(x) else float(x) for x in prof]
        out["pixel_histograms"] = {c: {"range": list(HIST_BINS[c][:2]), "counts": h.tolist()} for c, h in self.hist.items()}
        return out


def mean_profile(radial: np.ndarray) -> np.ndarray:
    """The mean radial profile over frames (NaN for a ring no frame reaches)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rings are expected, not an error
        return np.nanmean(radial, axis=0) if len(radial) else np.full(RINGS, np.nan)


def folder_statistics(images: Iterable[np.ndarray], masks: Iterable[np.ndarray | None] | None = None, *,
                      radius: float = FOV_RADIUS, ids: Sequence[str] | None = None) -> FolderStatistics:
    """Measure every frame of a folder (RGB uint8 images at one size; masks or None)."""
    images = list(images)
    masks = list(masks) if masks is not None else [None] * len(images)
    per = [image_statistics(img, m, radius=radius) for img, m in zip(images, masks)]
    values = {s.name: np.array([p.values[s.name] for p in per], np.float64) for s in STATISTICS}
    radial = np.stack([p.radial for p in per]) if per else np.zeros((0, RINGS))
    hist = {c: (np.sum([p.hist[c] for p in per], axis=0) if per else np.zeros(HIST_BINS[c][2], np.int64))
            for c in HIST_BINS}
    return FolderStatistics(values, radial, hist, frames=len(images), masks=any(m is not None for m in masks),
                            ids=list(ids or []))


# --------------------------------------------------------------------------- gaps


def severity(smd: float | None) -> str:
    """Cohen's conventions for a standardised mean difference."""
    if smd is None:
        return "n/a"
    d = abs(smd)
    return "close" if d < 0.2 else "small" if d < 0.5 else "medium" if d < 0.8 else "large"


def _number(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 1 else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def reading(stat: Statistic, mean_syn: float, mean_real: float) -> str:
    """The gap in plain words, from the means of the two folders."""
    delta = mean_syn - mean_real
    if delta == 0:
        return f"synthetic matches real in {stat.title}"
    if stat.kind == "ratio":
        if mean_real <= 0:
            return f"synthetic has {stat.title.split(' (')[0]}, real has none"
        if mean_syn <= 0:
            return f"synthetic has no {stat.title.split(' (')[0]}, real has some"
        ratio = mean_syn / mean_real
        x = ratio if ratio >= 1 else 1 / ratio
        return (stat.more if ratio >= 1 else stat.less).format(x=f"{x:.2f}" if x < 2 else f"{x:.1f}" if x < 10
                                                                else f"{x:.0f}")
    x = abs(delta) * (100.0 if stat.kind == "points" else 1.0)
    return (stat.more if delta > 0 else stat.less).format(x=_number(x))


def gap(stat: Statistic, syn: np.ndarray, real: np.ndarray) -> dict:
    """The gap between two folders' per-frame values of one statistic (NaNs left out)."""
    from scipy.stats import wasserstein_distance

    s, r = syn[~np.isnan(syn)], real[~np.isnan(real)]
    out = {"statistic": stat.name, "title": stat.title, "unit": stat.unit, "group": stat.group,
           "n_synthetic": int(len(s)), "n_real": int(len(r))}
    if not len(s) or not len(r):
        where = "synthetic" if not len(s) else "real"
        why = "frames with a visible lesion (and a mask)" if stat.group == "lesion" else "measurable frames"
        out.update(mean_synthetic=None, mean_real=None, difference=None, smd=None, wasserstein=None,
                   severity="n/a", reading=f"not measured: the {where} folder has no {why}")
        return out
    ms, mr = float(s.mean()), float(r.mean())
    delta = ms - mr
    # Population variances: two identical folders give exactly 0 (and 0/0 is read as 0).
    sd = math.sqrt((s.var() + r.var()) / 2.0)
    smd = delta / sd if sd > 0 else 0.0 if delta == 0 else None
    out.update(mean_synthetic=ms, mean_real=mr, difference=delta, ratio=(ms / mr if mr > 0 else None),
               smd=smd, wasserstein=float(wasserstein_distance(s, r)), severity=severity(smd),
               reading=reading(stat, ms, mr))
    if smd is None:
        out["severity"] = "large"  # both constant and different: as far apart as it gets
    return out


def pixel_gap(syn_hist: np.ndarray, real_hist: np.ndarray, channel: str) -> float | None:
    """Wasserstein distance between two pooled pixel histograms of a Lab channel (in its units)."""
    from scipy.stats import wasserstein_distance

    lo, hi, n = HIST_BINS[channel]
    if syn_hist.sum() == 0 or real_hist.sum() == 0:
        return None
    centres = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    return float(wasserstein_distance(centres, centres, syn_hist, real_hist))


def compare(syn: FolderStatistics, real: FolderStatistics) -> dict:
    """Every statistic's gap (synthetic vs real), largest standardised gap first, and the
    Wasserstein distances of the pooled L*, a*, b* pixel distributions."""
    gaps = [gap(s, syn.values[s.name], real.values[s.name]) for s in STATISTICS]
    order = sorted(gaps, key=lambda g: -1.0 if g["smd"] is None and g["mean_synthetic"] is None
                   else math.inf if g["smd"] is None else abs(g["smd"]), reverse=True)
    pixels = {c: pixel_gap(syn.hist[c], real.hist[c], c) for c in HIST_BINS}
    radial = mean_profile(syn.radial) - mean_profile(real.radial)
    return {"gaps": order, "pixel_wasserstein": pixels,
            "radial_difference_L": [None if np.isnan(x) else float(x) for x in radial]}
