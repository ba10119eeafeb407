"""Turn frame specs into Blender scenes and render them: RGB, depth and object index in one pass.

Imports bpy: only rendering processes import this module (never the CLI process, never torch code).
One `FrameRenderer` lives per process; it rebuilds the lumen only when the scene index changes and
swaps camera, lights and lesions per frame. Each render writes one multilayer EXR (linear RGB,
Z depth, IndexOB) to a private temp folder; the passes are read back with OpenEXR, so the mask is
the object-index pass of the very samples that made the RGB: pixel-exact by construction.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

from synth.blender_assets.geometry import build_lesion, build_lumen, build_mound, remove_object
from synth.blender_assets.materials import GLINT_AOV, lesion_material, mucosa_material
from synth.blender_assets.optics import setup_camera, setup_lights
from synth.generator.lumen import LumenSampler, LumenShape


def reset_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def configure_render(resolution: int, render: dict, threads: int, device: str = "cpu") -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cy = scene.cycles
    if device == "gpu":
        enable_gpu()
        cy.device = "GPU"
    else:
        cy.device = "CPU"
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.threads_mode = "FIXED"
    scene.render.threads = threads
    # Keep the BVH/shaders of unchanged objects between frames of a scene.
    scene.render.use_persistent_data = True
    cy.samples = int(render["samples"])
    cy.use_adaptive_sampling = False
    cy.seed = 0  # the noise pattern is part of the frame: fixed so re-renders match
    cy.max_bounces = int(render["max_bounces"])
    cy.diffuse_bounces = min(2, cy.max_bounces)
    cy.glossy_bounces = min(2, cy.max_bounces)
    cy.transmission_bounces = 0
    cy.volume_bounces = 0
    cy.transparent_max_bounces = 2
    cy.caustics_reflective = False
    cy.caustics_refractive = False
    cy.blur_glossy = 1.0
    cy.use_denoising = bool(render["denoise"])
    if cy.use_denoising:
        cy.denoiser = "OPENIMAGEDENOISE"
        cy.denoising_input_passes = "RGB_ALBEDO_NORMAL"
        cy.denoising_prefilter = "FAST"
        cy.denoising_quality = render.get("denoising_quality", "BALANCED")
    # A narrow pixel filter keeps RGB edges where the object-index pass puts them.
    cy.filter_width = 0.75
    # Inside the body the scope's lights are the only light. A new world in Blender 5 has a grey
    # (0.05) background node that would light the lumen through its open ends and show as a bright
    # spot at the far end: switch its emission off.
    scene.world = bpy.data.worlds.get("black") or bpy.data.worlds.new("black")
    scene.world.color = (0.0, 0.0, 0.0)
    for node in scene.world.node_tree.nodes:
        if node.bl_idname == "ShaderNodeBackground":
            node.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
            node.inputs["Strength"].default_value = 0.0
    vl = scene.view_layers[0]
    vl.use_pass_z = True
    vl.use_pass_object_index = True
    # Wet speckle is its own pass (not denoised; post-processing adds it): see materials.GLINT_AOV.
    if GLINT_AOV not in [a.name for a in vl.aovs]:
        aov = vl.aovs.add()
        aov.name = GLINT_AOV
        aov.type = "VALUE"
    scene.render.image_settings.media_type = "MULTI_LAYER_IMAGE"
    scene.render.image_settings.file_format = "OPEN_EXR_MULTILAYER"
    scene.render.image_settings.color_depth = "32"
    scene.render.image_settings.exr_codec = "NONE"  # fastest to write and read; the file is temporary
    scene.render.use_compositing = False
    scene.render.use_sequencer = False


def enable_gpu() -> str:
    """Switch Cycles to the best GPU backend present; raise RuntimeError with a clear message if none."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            return backend
    raise RuntimeError("--device gpu: Cycles found no GPU (CUDA/OptiX/HIP/oneAPI/Metal) on this machine; "
                       "use --device cpu")


def read_exr(path: Path) -> dict[str, np.ndarray]:
    """The passes of a multilayer EXR: 'rgb' (H, W, 3) linear, 'depth', 'index' and 'glint' (H, W)."""
    import OpenEXR

    # Blender 5 writes each pass as its own part of a multi-part EXR.
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = {name: c for part in f.parts for name, c in part.channels.items()}

    def get(suffix: str) -> np.ndarray:
        for name, c in ch.items():
            if name.endswith(suffix):
                return np.asarray(c.pixels)
        raise KeyError(f"pass {suffix} missing in {path}: {sorted(ch)}")

    rgb = np.stack([get("Combined.R"), get("Combined.G"), get("Combined.B")], axis=-1)
    return {"rgb": rgb.astype(np.float32), "depth": get("Depth.Z").astype(np.float32),
            "index": get("Object Index.X").astype(np.float32),
            # A value AOV comes back as one channel named "<layer>.<aov>.X".
            "glint": get(f"{GLINT_AOV}.X").astype(np.float32)}


class FrameRenderer:
    """Renders specs one after another in this process, reusing the lumen within a scene."""

    def __init__(self, resolution: int, render: dict, threads: int, device: str = "cpu"):
        reset_scene()
        configure_render(resolution, render, threads, device)
        self.resolution = resolution
        self.render_settings = dict(render)
        self._scene_key = None
        self._lumen = None
        self._lesions: list = []
        self._tmp = Path(tempfile.mkdtemp(prefix="synth-render-"))
        self.last_render_seconds = 0.0

    def _set_scene(self, scene_spec: dict) -> bool:
        """Build the scene's lumen unless it is the one already built; True when it was rebuilt."""
        key = (scene_spec["index"], repr(scene_spec["lumen"]), repr(scene_spec["mucosa"]))
        if key == self._scene_key:
            return False
        if self._lumen is not None:
            remove_object(self._lumen)
        self._lumen = build_lumen(scene_spec["lumen"])
        self._sampler = LumenSampler(LumenShape.from_dict(scene_spec["lumen"]))
        self._mucosa = mucosa_material(scene_spec["mucosa"], scene_spec["lumen"]["length"])
        self._lumen.data.materials.append(self._mucosa)
        self._scene_key = key
        return True

    def _set_lesions(self, lesions: list[dict], mucosa: dict, mounds: list[dict]) -> None:
        """Replace the previous frame's lesions and mounds (both kept in self._lesions) with this frame's."""
        for obj in self._lesions:
            remove_object(obj)
        self._lesions = []
        for les in lesions:
            obj = build_lesion(les, self._sampler)
            obj.data.materials.append(lesion_material(les, mucosa))
            self._lesions.append(obj)
        for k, mound in enumerate(mounds):
            obj = build_mound(mound, self._sampler, f"mound_{k}")
            obj.data.materials.append(self._mucosa)  # the wall's own material: same tissue, same texels
            self._lesions.append(obj)

    def render(self, spec: dict) -> dict[str, np.ndarray]:
        """Render one frame spec; returns the raw passes (see `read_exr`)."""
        if spec["resolution"] != self.resolution:
            raise ValueError("spec resolution differs from this renderer's")
        rebuilt = self._set_scene(spec["scene"])
        # Persistent data keeps Cycles' copy of the scene between renders, which is what makes the
        # frames of one lumen cheap; across a rebuilt lumen it let the previous scene leak into the
        # first frames of the next (a frame differed from the same spec rendered alone, and between
        # runs). A new lumen renders without it, which frees the old copy.
        bpy.context.scene.render.use_persistent_data = not rebuilt
        self._set_lesions(spec["lesions"], spec["scene"]["mucosa"], spec.get("mounds", []))
        setup_camera(spec["camera"])
        setup_lights(spec["camera"], spec["light"])
        out = self._tmp / "frame.exr"
        bpy.context.scene.render.filepath = str(out)
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        self.last_render_seconds = time.perf_counter() - t0
        passes = read_exr(out)
        os.unlink(out)
        return passes

    def close(self) -> None:
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)
