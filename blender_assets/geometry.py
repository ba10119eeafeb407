"""Lumen and lesion meshes as Blender objects. Imports bpy.

The lumen's vertex arrays come from `synth.generator.lumen`, the lesions' and mounds' from
`synth.generator.lesion_mesh` (both pure numpy). No randomness: everything is read from the frame spec.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from synth.generator.lesion_mesh import (conform_to_wall, dome_arrays, lesion_basis, mound_arrays,
                                         pedunculated_arrays, wall_under)
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


def build_mound(mound: dict, sampler: LumenSampler, name: str) -> bpy.types.Object:
    """A mound (spec version 9): the wall itself raised. Its texture coordinates are the wall's
    (theta / 2 pi, s) under each vertex, so it carries the wall's own texels, vessels and speckle
    (give it the scene's mucosa material); object index 0, so it never enters the mask."""
    verts, faces = mound_arrays(mound)
    m = lesion_basis(mound)
    q = m[:3, 3] + verts[:, :1] * m[:3, 0] + verts[:, 1:2] * m[:3, 1]
    base, normals, s, theta = wall_under(q, sampler)
    world = base + verts[:, 2:3] * normals
    # Unwrapped around the mound's own angle: the texture repeats, so u past 0 or 1 is the same texel.
    theta = mound["theta"] + (theta - mound["theta"] + math.pi) % TAU - math.pi
    obj = mesh_object(name, world, faces, np.stack([theta / TAU, s], axis=-1))
    obj.pass_index = 0
    return obj


def build_lesion(les: dict, sampler: LumenSampler) -> bpy.types.Object:
    from mathutils import Matrix

    if les["type"] == "pedunculated":
        verts, faces = pedunculated_arrays(les)
        obj = mesh_object(f"lesion_{les['instance']}", verts, faces)
        obj.matrix_world = Matrix(lesion_basis(les).tolist())
    else:
        verts, faces = dome_arrays(les)
        obj = mesh_object(f"lesion_{les['instance']}",
                          conform_to_wall(verts, les, sampler,
                                          keep_dome=les["type"] == "sessile" and les.get("keep_dome", False)),
                          faces)
    # The object-index pass writes this id into the mask: lesion k is mask value k.
    obj.pass_index = int(les["instance"])
    return obj
