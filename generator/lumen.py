"""Colon lumen geometry as pure numpy: centreline, wall radius, mesh arrays and ray casting.

No bpy. The same functions build the Blender mesh (blender_assets.lumen) and place lesions
where the camera sees them (generator.spec), so what the sampler aims at is what is rendered.

Units are centimetres. The lumen runs along +z from z=0 to z=`length`; the centreline wanders
sideways as a sum of sinusoids. A wall point is addressed by (s, theta): s the arc parameter
along z, theta the angle around the centreline in its parallel-transported frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

TAU = 2.0 * np.pi


@dataclass(frozen=True)
class LumenShape:
    """The numbers that define one lumen (a sub-dict of the frame spec)."""

    length: float
    radius: float  # mean radius (cm)
    radius_var: float  # relative slow variation of the radius along the lumen
    radius_wavelength: float
    radius_phase: float
    bend_amp: tuple[float, ...]  # sideways amplitude per sinusoid, x then y
    bend_wavelength: tuple[float, ...]
    bend_phase: tuple[float, ...]
    taeniae: float  # strength of the triangular cross-section (0: round)
    taeniae_phase: float
    fold_s: tuple[float, ...]  # positions of the haustral folds along the lumen
    fold_depth: tuple[float, ...]  # relative depth of each fold (fraction of radius)
    fold_width: tuple[float, ...]  # half-width (cm)
    fold_sharpness: tuple[float, ...]  # exponent: 1 soft, 3 sharp ridge
    fold_arc: tuple[float, ...]  # 0: full ring, 1: fold only between taeniae (semilunar)
    wall_noise: float  # small irregularity of the wall, relative
    wall_noise_phase: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: dict) -> "LumenShape":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def centreline(shape: LumenShape, s: np.ndarray) -> np.ndarray:
    """Points (len(s), 3) of the centreline at arc parameters s."""
    s = np.asarray(s, dtype=np.float64)
    half = len(shape.bend_amp) // 2
    x = np.zeros_like(s)
    y = np.zeros_like(s)
    for i, (a, w, p) in enumerate(zip(shape.bend_amp, shape.bend_wavelength, shape.bend_phase)):
        # Amplitude ramps in over the first few cm so the camera starts near the axis.
        term = a * (np.sin(TAU * s / w + p) - np.sin(p)) * np.clip(s / 4.0, 0, 1)
        if i < half:
            x = x + term
        else:
            y = y + term
    return np.stack([x, y, s], axis=-1)


def frames(shape: LumenShape, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent, normal and binormal at each s (parallel transport: no twist, so theta is stable)."""
    s = np.asarray(s, dtype=np.float64)
    eps = 1e-3
    t = centreline(shape, s + eps) - centreline(shape, s - eps)
    t /= np.linalg.norm(t, axis=-1, keepdims=True)
    n = np.empty_like(t)
    b = np.empty_like(t)
    ref = np.array([1.0, 0.0, 0.0])
    prev = ref - t[0] * (ref @ t[0])
    prev /= np.linalg.norm(prev)
    for i in range(len(s)):
        v = prev - t[i] * (prev @ t[i])
        v /= np.linalg.norm(v)
        n[i] = v
        b[i] = np.cross(t[i], v)
        prev = v
    return t, n, b


def radius(shape: LumenShape, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Wall distance from the centreline at (s, theta); broadcasts."""
    s = np.asarray(s, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    r = shape.radius * (1.0 + shape.radius_var * np.sin(TAU * s / shape.radius_wavelength + shape.radius_phase))
    tri = np.cos(3.0 * (theta - shape.taeniae_phase))
    r = r * (1.0 + shape.taeniae * tri)
    fold = np.zeros(np.broadcast(s, theta).shape)
    for fs, fd, fw, fp, fa in zip(shape.fold_s, shape.fold_depth, shape.fold_width, shape.fold_sharpness,
                                  shape.fold_arc):
        profile = np.exp(-np.abs((s - fs) / fw) ** (2.0 * fp) * 0.5 * fp)
        # Semilunar folds are deepest between the taeniae (where tri is lowest).
        around = 1.0 - fa * 0.5 * (1.0 + tri)
        fold = np.maximum(fold, fd * profile * around)
    r = r * (1.0 - fold)
    p = shape.wall_noise_phase
    noise = (np.sin(2.1 * theta + 0.9 * s + p[0]) * np.sin(1.3 * s + p[1]) + np.sin(5.0 * theta - 0.7 * s + p[2]) * 0.5)
    return r * (1.0 + shape.wall_noise * noise)


def mesh_arrays(shape: LumenShape, n_rings: int = 180, n_sides: int = 96):
    """Vertices (n_rings*n_sides, 3), quad faces (…, 4) and UVs per vertex of the lumen wall.

    UVs: u = theta / 2pi (wraps), v = s in cm, so textures have a physical scale.
    """
    s = np.linspace(0.0, shape.length, n_rings)
    theta = np.linspace(0.0, TAU, n_sides, endpoint=False)
    c = centreline(shape, s)
    _, n, b = frames(shape, s)
    r = radius(shape, s[:, None], theta[None, :])
    offs = np.cos(theta)[None, :, None] * n[:, None, :] + np.sin(theta)[None, :, None] * b[:, None, :]
    verts = c[:, None, :] + r[..., None] * offs
    i = np.arange(n_rings - 1)[:, None]
    j = np.arange(n_sides)[None, :]
    jn = (j + 1) % n_sides
    # Wound so normals point into the lumen (towards the camera).
    faces = np.stack([i * n_sides + j, i * n_sides + jn, (i + 1) * n_sides + jn, (i + 1) * n_sides + j], axis=-1)
    uv = np.stack(np.broadcast_arrays(theta[None, :] / TAU, s[:, None]), axis=-1)
    return verts.reshape(-1, 3), faces.reshape(-1, 4), uv.reshape(-1, 2)


class LumenSampler:
    """Fast look-ups on one lumen: wall points, normals and ray casts, on a dense centreline table."""

    def __init__(self, shape: LumenShape, step: float = 0.02):
        self.shape = shape
        self.s = np.arange(0.0, shape.length + step, step)
        self.c = centreline(shape, self.s)
        self.t, self.n, self.b = frames(shape, self.s)
        self._tree = cKDTree(self.c)

    def _nearest(self, p: np.ndarray) -> np.ndarray:
        """Index of the nearest centreline sample for each point of p (m, 3)."""
        return self._tree.query(p)[1]

    def local_many(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, theta, distance from centreline) of each point of p (m, 3)."""
        k = self._nearest(p)
        t, n, b = self.t[k], self.n[k], self.b[k]
        v = p - self.c[k]
        v = v - t * np.einsum("ij,ij->i", v, t)[:, None]
        theta = np.arctan2(np.einsum("ij,ij->i", v, b), np.einsum("ij,ij->i", v, n)) % TAU
        return self.s[k], theta, np.linalg.norm(v, axis=1)

    def local(self, p: np.ndarray) -> tuple[float, float, float]:
        """(s, theta, distance from centreline) of a point."""
        s, theta, d = self.local_many(np.asarray(p, float)[None, :])
        return float(s[0]), float(theta[0]), float(d[0])

    def inside(self, p: np.ndarray) -> float:
        """Positive while p is inside the lumen: wall radius minus distance from the centreline."""
        return float(self.inside_many(np.asarray(p, float)[None, :])[0])

    def inside_many(self, p: np.ndarray) -> np.ndarray:
        """`inside` for each point of p (m, 3)."""
        s, theta, d = self.local_many(p)
        return radius(self.shape, s, theta) - d

    def wall_points(self, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Wall points (m, 3) at arrays of (s, theta)."""
        k = np.clip(np.searchsorted(self.s, s), 0, len(self.s) - 1)
        r = radius(self.shape, self.s[k], theta)
        return self.c[k] + r[:, None] * (np.cos(theta)[:, None] * self.n[k] + np.sin(theta)[:, None] * self.b[k])

    def wall_normals(self, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Unit normals (m, 3) of the wall at arrays of (s, theta), pointing into the lumen."""
        ds, dt = 0.05, 0.02
        p0 = self.wall_points(s, theta)
        ps = self.wall_points(s + ds, theta) - self.wall_points(s - ds, theta)
        pt = self.wall_points(s, theta + dt) - self.wall_points(s, theta - dt)
        n = np.cross(ps, pt)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        k = np.clip(np.searchsorted(self.s, s), 0, len(self.s) - 1)
        outward = np.einsum("ij,ij->i", n, self.c[k] - p0) < 0
        n[outward] *= -1
        return n

    def wall_point(self, s: float, theta: float) -> np.ndarray:
        return self.wall_points(np.array([s], float), np.array([theta], float))[0]

    def wall_normal(self, s: float, theta: float) -> np.ndarray:
        """Unit normal of the wall at (s, theta), pointing into the lumen."""
        return self.wall_normals(np.array([s], float), np.array([theta], float))[0]

    def ray_cast(self, origin: np.ndarray, direction: np.ndarray, max_dist: float = 30.0, step: float = 0.1,
                 chunk: int = 40):
        """First wall hit of a ray from inside the lumen: (distance, s, theta) or None.

        Marches in steps of `step`, `chunk` steps per vectorised batch (most rays hit within a
        few centimetres), then narrows the crossing down on finer grids.
        """
        d = direction / np.linalg.norm(direction)
        if self.inside(origin) <= 0:
            return None
        ts = np.arange(1, int(max_dist / step + 1e-9) + 1) * step
        for k in range(0, len(ts), chunk):
            tc = ts[k:k + chunk]
            p = origin + tc[:, None] * d
            outside_tube = (p[:, 2] < 0) | (p[:, 2] > self.shape.length)
            hit = self.inside_many(p) <= 0
            first_out = int(np.argmax(outside_tube)) if outside_tube.any() else len(tc)
            first_hit = int(np.argmax(hit)) if hit.any() else len(tc)
            if first_out <= first_hit and first_out < len(tc):
                return None  # left through an open end of the tube first
            if first_hit < len(tc):
                j = k + first_hit
                lo, hi = (ts[j - 1] if j > 0 else 0.0), ts[j]
                for _ in range(3):  # refine the crossing 32-fold per round: to ~3e-6 of a step
                    sub = np.linspace(lo, hi, 33)[1:]
                    first = int(np.argmax(self.inside_many(origin + sub[:, None] * d) <= 0))
                    lo, hi = (sub[first - 1] if first > 0 else lo), sub[first]
                s, theta, _ = self.local(origin + hi * d)
                return hi, s, theta
        return None
