"""Lesion and mound meshes as vertex arrays, from their spec numbers. Pure numpy, no bpy.

blender_assets/geometry.py turns these arrays into Blender objects; keeping them here lets tests and
tools check a mesh's shape without Blender. No randomness: everything is read from the frame spec.
Lesion-local coordinates: origin on the wall at the lesion's centre, z along the inward wall normal.
"""

from __future__ import annotations

import math

import numpy as np

from synth.generator.lumen import TAU, LumenSampler


def _grid_faces(n_rows: int, n_cols: int, wrap: bool = True) -> np.ndarray:
    i = np.arange(n_rows - 1)[:, None]
    j = np.arange(n_cols if wrap else n_cols - 1)[None, :]
    jn = (j + 1) % n_cols
    return np.stack([i * n_cols + j, (i + 1) * n_cols + j, (i + 1) * n_cols + jn, i * n_cols + jn],
                    axis=-1).reshape(-1, 4)


def _outline(les: dict, u: np.ndarray) -> np.ndarray:
    """Lobulated, elongated base outline radius as a function of angle u."""
    r = 1.0 + les["lobulation"] * np.sin(les["lobes"] * u + les["spin"])
    e = les["elongation"]
    return r / np.sqrt((np.cos(u) / e) ** 2 + (np.sin(u) * e) ** 2)


def dome_arrays(les: dict, n_u: int = 40, n_v: int = 14, skirt: float = 0.45):
    """A dome (sessile or flat lesion) in lesion-local coordinates: z along the wall normal.

    The skirt continues below z=0 so the lesion sinks into a curved wall without a gap.
    """
    u = np.linspace(0, TAU, n_u, endpoint=False)
    v = np.linspace(0.0, 1.0, n_v)  # 0 at the apex, 1 at the bottom of the skirt
    phi = v * (math.pi / 2 + skirt)
    size, height = les["size"], les["height"]
    rad = np.sin(np.minimum(phi, math.pi / 2))[:, None] * _outline(les, u)[None, :] * size
    rad = rad * (1.0 + np.maximum(phi - math.pi / 2, 0)[:, None] * 0.2)
    z = height * size * np.cos(phi)[:, None] * np.ones_like(u)[None, :]
    z = np.where(phi[:, None] > math.pi / 2, -size * (phi[:, None] - math.pi / 2) * 0.9, z)
    verts = np.stack([rad * np.cos(u)[None, :], rad * np.sin(u)[None, :], z], axis=-1).reshape(-1, 3)
    # Collapse the apex ring to one point (tiny ring keeps the grid regular).
    return verts, _grid_faces(n_v, n_u)


def pedunculated_arrays(les: dict, n_u: int = 32):
    """A stalk (tilted cylinder sunk into the wall) topped by a lobulated head."""
    size = les["size"]
    L, sr = les["stalk_length"], les["stalk_radius"] * size
    tilt, tdir = les["stalk_tilt"], les["stalk_tilt_dir"]
    axis = np.array([math.sin(tilt) * math.cos(tdir), math.sin(tilt) * math.sin(tdir), math.cos(tilt)])
    u = np.linspace(0, TAU, n_u, endpoint=False)
    # Stalk: from below the wall up to inside the head.
    ts = np.linspace(-0.3, L + 0.5 * size, 6)
    ref = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(axis, ref)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    flare = 1.0 + 0.6 * np.exp(-np.maximum(ts, 0) / 0.15)  # broader where it meets the wall
    ring = np.cos(u)[None, :, None] * e1 + np.sin(u)[None, :, None] * e2
    stalk = ts[:, None, None] * axis + (sr * flare)[:, None, None] * ring
    stalk_v = stalk.reshape(-1, 3)
    stalk_f = _grid_faces(len(ts), n_u)
    # Head: a lobulated ellipsoid centred past the top of the stalk.
    n_v = 16
    v = np.linspace(0, math.pi, n_v)
    out = _outline(les, u)
    hx = np.sin(v)[:, None] * out[None, :] * size
    hz = np.cos(v)[:, None] * size * les["height"] * np.ones_like(u)[None, :]
    centre = axis * (L + size * 0.8 * les["height"])
    head = (centre + hx[..., None] * (np.cos(u)[None, :, None] * e1 + np.sin(u)[None, :, None] * e2)
            + hz[..., None] * axis)
    head_v = head.reshape(-1, 3)
    head_f = _grid_faces(n_v, n_u) + len(stalk_v)
    return np.concatenate([stalk_v, head_v]), np.concatenate([stalk_f, head_f])


def lesion_basis(les: dict) -> np.ndarray:
    """4x4 world matrix: origin on the wall, z along the inward wall normal, x turned by `spin`."""
    z = np.asarray(les["normal"], float)
    ref = np.array([0, 0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0, 0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(les["spin"]), math.sin(les["spin"])
    x, y = c * x + s * y, -s * x + c * y
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, les["location"]
    return m


def wall_under(q: np.ndarray, sampler: LumenSampler):
    """Wall points, unit normals, s and theta under points q (m, 3) near the wall, interpolated along
    the lumen between the sampler's centreline samples (0.2 mm apart): its own look-ups snap to the
    nearest sample, a staircase that, offset along the normals, cracked lesion tops into facets."""
    s_near, theta, _ = sampler.local_many(q)
    k = np.clip(np.searchsorted(sampler.s, s_near), 0, len(sampler.s) - 1)
    s = sampler.s[k] + np.einsum("ij,ij->i", q - sampler.c[k], sampler.t[k])
    lo = np.clip(np.searchsorted(sampler.s, s, side="right") - 1, 0, len(sampler.s) - 2)
    f = np.clip((s - sampler.s[lo]) / (sampler.s[lo + 1] - sampler.s[lo]), 0.0, 1.0)[:, None]
    s_lo, s_hi = sampler.s[lo], sampler.s[lo + 1]
    points = (1 - f) * sampler.wall_points(s_lo, theta) + f * sampler.wall_points(s_hi, theta)
    normals = (1 - f) * sampler.wall_normals(s_lo, theta) + f * sampler.wall_normals(s_hi, theta)
    return points, normals / np.linalg.norm(normals, axis=1, keepdims=True), s, theta


def conform_to_wall(verts: np.ndarray, les: dict, sampler: LumenSampler, keep_dome: bool = False) -> np.ndarray:
    """World positions of lesion-local vertices draped over the curved wall.

    (x, y) are taken along the wall from the lesion's centre and z along the local wall normal, so a
    flat lesion follows the wall instead of being buried by its curvature. The wall's normals converge
    toward the lumen's axis, and sharply over a fold, so a tall dome offset along them folds its own
    top over: creases with bright facets on most sessile polyps. With `keep_dome` (a spec-9 option for
    sessile lesions) only the foot follows the wall exactly: higher up, the vertices blend into the
    same dome over a smooth fit of the wall (a quadric of its heights under the lesion).
    """
    m = lesion_basis(les)
    q = m[:3, 3] + verts[:, :1] * m[:3, 0] + verts[:, 1:2] * m[:3, 1]
    top = float(verts[:, 2].max())
    if not keep_dome or top <= 0:
        s, theta, _ = sampler.local_many(q)
        return sampler.wall_points(s, theta) + verts[:, 2:3] * sampler.wall_normals(s, theta)
    base, normals, _, _ = wall_under(q, sampler)
    draped = base + verts[:, 2:3] * normals
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    heights = (base - m[:3, 3]) @ m[:3, 2]  # the wall over the lesion's tangent plane, folds and all
    fit = terms @ np.linalg.lstsq(terms, heights, rcond=None)[0]  # ... and without its folds
    smooth = q + (fit + z)[:, None] * m[:3, 2]
    w = np.sqrt(np.clip(z / top, 0.0, 1.0))[:, None]  # 0 at the wall (and in the skirt), 1 at the apex
    return (1.0 - w) * draped + w * smooth


def mound_arrays(mound: dict, n_u: int = 40, n_v: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """A smooth bulge in local coordinates (z along the wall normal): height (1 - r^2)^2, which meets the
    wall with zero slope (no crease at its foot, unlike a lesion's dome), then a short skirt below it."""
    u = np.linspace(0, TAU, n_u, endpoint=False)
    r = np.concatenate([np.linspace(0.0, 1.0, n_v - 2), [1.08, 1.15]])
    z = np.where(r <= 1.0, mound["height"] * mound["size"] * (1.0 - np.minimum(r, 1.0) ** 2) ** 2,
                 -0.03 * mound["size"] * (r - 1.0) / 0.15)
    rad = r[:, None] * _outline(mound, u)[None, :] * mound["size"]
    verts = np.stack([rad * np.cos(u)[None, :], rad * np.sin(u)[None, :], z[:, None] * np.ones_like(u)[None, :]],
                     axis=-1).reshape(-1, 3)
    return verts, _grid_faces(len(r), n_u)
