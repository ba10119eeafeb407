"""The endoscope: a wide-angle camera with its light source(s) at the tip. Imports bpy.

Endoscopes carry their own light next to the lens, so the scene has no other light: point lights
with physical inverse-square falloff make the near wall bright and the far lumen dark, as in real
frames. Lens: an equidistant fisheye (Cycles panoramic camera) or a wide perspective lens.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix

from synth.generator.spec import camera_basis


def camera_matrix(cam: dict) -> Matrix:
    """World matrix of a Blender camera (looks down its -Z, +Y up) from a camera spec."""
    f, r, u = camera_basis(cam)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, u, -f, cam["location"]
    return Matrix(m.tolist())


def setup_camera(cam: dict) -> bpy.types.Object:
    scene = bpy.context.scene
    obj = scene.objects.get("endoscope")
    if obj is None:
        data = bpy.data.cameras.new("endoscope")
        obj = bpy.data.objects.new("endoscope", data)
        scene.collection.objects.link(obj)
        scene.camera = obj
    data = obj.data
    if cam["lens"] == "fisheye":
        data.type = "PANO"
        data.panorama_type = "FISHEYE_EQUIDISTANT"
        data.fisheye_fov = math.radians(cam["fov_deg"])
    else:
        data.type = "PERSP"
        data.sensor_fit = "HORIZONTAL"
        data.angle = math.radians(cam["fov_deg"])
    data.clip_start = cam["clip_start"]
    data.clip_end = 100.0
    obj.matrix_world = camera_matrix(cam)
    return obj


def setup_lights(cam: dict, light: dict) -> list[bpy.types.Object]:
    """Point lights beside the lens, in the camera plane; old lights are replaced."""
    for old in [o for o in bpy.data.objects if o.name.startswith("tip_light")]:
        data = old.data
        bpy.data.objects.remove(old, do_unlink=True)
        bpy.data.lights.remove(data)
    f, r, u = camera_basis(cam)
    loc = np.asarray(cam["location"], float)
    warm = light["color_temp"]
    colour = (1.0, 1.0 - 0.08 * warm, 1.0 - 0.2 * warm)
    lights = []
    n = light["count"]
    for k in range(n):
        # Two light guides sit either side of the lens; one sits at the given offset.
        side = 0.0 if n == 1 else (1.0 if k == 0 else -1.0)
        off = light["offset"][0] * r + light["offset"][1] * u + side * 0.25 * r
        data = bpy.data.lights.new(f"tip_light_{k}", type="POINT")
        data.energy = light["power"] / n
        data.shadow_soft_size = light["radius"]
        data.color = colour
        obj = bpy.data.objects.new(f"tip_light_{k}", data)
        obj.location = (loc + off).tolist()
        bpy.context.scene.collection.objects.link(obj)
        lights.append(obj)
    return lights
