"""Lumen and lesion meshes as Blender objects. Imports bpy.

The lumen's vertex arrays come from `synth.generator.lumen` (pure numpy); lesion meshes are built
here from their spec numbers. No randomness: everything is read from the frame spec.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from synth.generator.lumen import LumenSampler, LumenShape, mesh_arrays

TAU = 2.0 * math.pi


def mesh_object(name: str, verts: np.ndarray, faces: np.ndarray, uv: np.ndarray | None = None,
                smooth: bool = True) -> bpy.types.Object:
    """A mesh object from numpy arrays (quads or triangles), linked to the scene, with smooth shading."""
    mesh = bpy.data.meshes.new(name)
    nv, nf, k = len(verts), len(faces), faces.shape[1]
    mesh.vertices.add(nv)
    mesh.vertices.foreach_set("co", verts.astype(np.float32).ravel())
    mesh.loops.add(nf * k)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(nf)
    mesh.polygons.foreach_set("loop_start", np.arange(0, nf * k, k, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.full(nf, smooth, dtype=bool))
    if uv is not None:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", uv[faces.ravel()].astype(np.float32).ravel())
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def remove_object(obj: bpy.types.Object) -> None:
    mesh = obj.data if obj.type == "MESH" else None
    bpy.data.objects.remove(obj, do_unlink=True)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)


def build_lumen(lumen: dict) -> bpy.types.Object:
    verts, faces, uv = mesh_arrays(LumenShape.from_dict(lumen))
    obj = mesh_object("lumen", verts, faces, uv)
    obj.pass_index = 0
    return obj


# --------------------------------------------------------------------------- lesions


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


def conform_to_wall(verts: np.ndarray, les: dict, sampler: LumenSampler) -> np.ndarray:
    """World positions of lesion-local vertices draped over the curved wall.

    (x, y) are taken along the wall from the lesion's centre and z along the local wall normal, so a
    flat lesion follows the wall instead of being buried by its curvature.
    """
    m = lesion_basis(les)
    q = m[:3, 3] + verts[:, :1] * m[:3, 0] + verts[:, 1:2] * m[:3, 1]
    s, theta, _ = sampler.local_many(q)
    return sampler.wall_points(s, theta) + verts[:, 2:3] * sampler.wall_normals(s, theta)


def build_lesion(les: dict, sampler: LumenSampler) -> bpy.types.Object:
    from mathutils import Matrix

    if les["type"] == "pedunculated":
        verts, faces = pedunculated_arrays(les)
        obj = mesh_object(f"lesion_{les['instance']}", verts, faces)
        obj.matrix_world = Matrix(lesion_basis(les).tolist())
    else:
        verts, faces = dome_arrays(les)
        obj = mesh_object(f"lesion_{les['instance']}", conform_to_wall(verts, les, sampler), faces)
    # The object-index pass writes this id into the mask: lesion k is mask value k.
    obj.pass_index = int(les["instance"])
    return obj
