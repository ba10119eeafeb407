"""Mucosa and lesion materials as Cycles node trees. Imports bpy.

The mucosa is a wet, slightly translucent tissue: an albedo map baked in numpy per scene
(generator/texture.py: vessel trees at two depths, colour patches, mucus), a fine bump, subsurface
scattering, a glossy clear coat for the broad highlights, and a wet-speckle pass (an AOV, added in
post-processing after the denoiser) for the many small sharp glints of real endoscopy. Lesions are
the same tissue tinted by their colour, with a pit pattern (Voronoi bump); spec version 6 adds
two options, off in the default scene because they lowered transfer to real frames: a surface
without the vessel network (generator/texture.py bakes it) and nodules that shade and glint.
Trees are rebuilt per scene (mucosa) or per frame (lesions): Cycles' SVM shaders are cheap to
rebuild, and rebuilding keeps every value traceable to the spec.
"""

from __future__ import annotations

import bpy
import numpy as np


def _new_material(name: str) -> tuple[bpy.types.Material, bpy.types.NodeTree]:
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    tree = mat.node_tree
    tree.nodes.clear()
    return mat, tree


GLINT_AOV = "glint"


def albedo_image(m: dict) -> bpy.types.Image:
    """The scene's baked mucosa albedo (generator/texture.py) as a float image, replacing the last one
    (and dropping the last scene's lesion surface)."""
    from synth.generator.texture import bake_mucosa

    if bpy.data.images.get("lesion_albedo") is not None:  # the last scene's; baked again when needed
        bpy.data.images.remove(bpy.data.images["lesion_albedo"])
    return _float_image("mucosa_albedo", bake_mucosa(m))


def lesion_surface_image(m: dict) -> bpy.types.Image:
    """The scene's lesion surface (spec version 6), baked on the first lesion that shows less than all
    of the mucosa's vessels (the default scene shows them all, so it never pays for the bake)."""
    from synth.generator.texture import bake_lesion_surface

    return bpy.data.images.get("lesion_albedo") or _float_image("lesion_albedo", bake_lesion_surface(m))


def _float_image(name: str, rgb: np.ndarray) -> bpy.types.Image:
    """A packed linear float image from an (H, W, 3) array, replacing one of the same name."""
    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    h, w = rgb.shape[:2]
    img = bpy.data.images.new(name, w, h, alpha=False, float_buffer=True)
    try:
        img.colorspace_settings.name = "Linear Rec.709"
    except TypeError:  # older colour-management names
        img.colorspace_settings.name = "Linear"
    rgba = np.concatenate([rgb, np.ones((h, w, 1), np.float32)], axis=-1)
    img.pixels.foreach_set(rgba.ravel())  # Blender images start at the bottom row: row 0 is s = 0
    img.pack()
    return img


def _albedo_lookup(nodes, links, image: bpy.types.Image, vector_socket, scale: tuple[float, float, float]):
    """Image texture node sampling `image` at `vector_socket` times `scale` (wrapping)."""
    mul = nodes.new("ShaderNodeVectorMath")
    mul.operation = "MULTIPLY"
    mul.inputs[1].default_value = scale
    links.new(vector_socket, mul.inputs[0])
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.interpolation = "Linear"
    tex.extension = "REPEAT"
    links.new(mul.outputs["Vector"], tex.inputs["Vector"])
    return tex


def _glint(nodes, links, bsdf_normal_socket, coords_socket, m: dict) -> None:
    """Wet speckle: a fine droplet relief; where its normal faces the scope (light beside the lens)
    the film of water mirrors the light. Written to the GLINT_AOV pass, 0..1, antialiased."""
    dn = nodes.new("ShaderNodeTexNoise")
    dn.inputs["Scale"].default_value = m["glint_scale"]
    dn.inputs["Detail"].default_value = 1.0
    links.new(coords_socket, dn.inputs["Vector"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = m["glint_relief"]
    bump.inputs["Distance"].default_value = 0.06
    links.new(dn.outputs["Fac"], bump.inputs["Height"])
    if bsdf_normal_socket is not None:
        links.new(bsdf_normal_socket, bump.inputs["Normal"])
    geo = nodes.new("ShaderNodeNewGeometry")
    dot = nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    links.new(bump.outputs["Normal"], dot.inputs[0])
    links.new(geo.outputs["Incoming"], dot.inputs[1])
    ab = nodes.new("ShaderNodeMath")
    ab.operation = "ABSOLUTE"
    links.new(dot.outputs["Value"], ab.inputs[0])
    ramp = nodes.new("ShaderNodeMapRange")
    ramp.interpolation_type = "SMOOTHSTEP"
    ramp.inputs["From Min"].default_value = m["glint_threshold"]
    ramp.inputs["From Max"].default_value = min(1.0, m["glint_threshold"] + 0.25 * (1.0 - m["glint_threshold"]))
    links.new(ab.outputs[0], ramp.inputs["Value"])
    aov = nodes.new("ShaderNodeOutputAOV")
    aov.aov_name = GLINT_AOV
    links.new(ramp.outputs["Result"], aov.inputs["Value"])


def mucosa_material(m: dict, length: float) -> bpy.types.Material:
    mat, tree = _new_material("mucosa")
    nodes, links = tree.nodes, tree.links
    out = nodes.new("ShaderNodeOutputMaterial")
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    coord = nodes.new("ShaderNodeTexCoord")

    # Albedo: the baked map over the lumen's (theta / 2 pi, s in cm) texture coordinates.
    tex = _albedo_lookup(nodes, links, albedo_image(m), coord.outputs["UV"], (1.0, 1.0 / length, 1.0))
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])

    # Fine bump of the tissue surface, shared by base and coat.
    bn = nodes.new("ShaderNodeTexNoise")
    bn.inputs["Scale"].default_value = m["bump_scale"]
    bn.inputs["Detail"].default_value = 3.0
    links.new(coord.outputs["Object"], bn.inputs["Vector"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = m["bump_strength"]
    bump.inputs["Distance"].default_value = 0.02
    links.new(bn.outputs["Fac"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    _glint(nodes, links, bump.outputs["Normal"], coord.outputs["Object"], m)

    _wet(bsdf, m["roughness"], m["coat_weight"], m["coat_roughness"], m["subsurface_weight"])
    return mat


def _wet(bsdf, roughness: float, coat: float, coat_roughness: float, sss: float) -> None:
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Coat Weight"].default_value = coat
    bsdf.inputs["Coat Roughness"].default_value = coat_roughness
    bsdf.inputs["Coat IOR"].default_value = 1.33  # a film of water
    bsdf.inputs["Subsurface Weight"].default_value = sss
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
    bsdf.inputs["Subsurface Scale"].default_value = 0.08  # cm: light spreads a millimetre or so


def lesion_material(les: dict, m: dict) -> bpy.types.Material:
    """The mucosa's own tissue (its baked map, speckle and coat) tinted by the lesion's colour, with a pit
    pattern. Call after `mucosa_material` of the scene (it reuses the scene's albedo image)."""
    mat, tree = _new_material(f"lesion_{les['instance']}")
    nodes, links = tree.nodes, tree.links
    out = nodes.new("ShaderNodeOutputMaterial")
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    coord = nodes.new("ShaderNodeTexCoord")
    tex = _albedo_lookup(nodes, links, bpy.data.images["mucosa_albedo"], coord.outputs["Object"],
                         (0.08, 0.033, 1.0))
    surface = tex.outputs["Color"]
    if les.get("vessel_visibility", 1.0) < 1.0 and "lesion_mottle" in m:
        # Spec version 6 option: the lesion's own surface (no vessel network, mottled), with only
        # `vessel_visibility` of the mucosa's vessels showing through.
        ltex = _albedo_lookup(nodes, links, lesion_surface_image(m), coord.outputs["Object"],
                              (0.08, 0.033, 1.0))
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.inputs["Factor"].default_value = les["vessel_visibility"]
        links.new(ltex.outputs["Color"], mix.inputs["A"])
        links.new(tex.outputs["Color"], mix.inputs["B"])
        surface = mix.outputs["Result"]
    # Tint: the lesion colour over the tissue, keeping the tissue's patches.
    tint = nodes.new("ShaderNodeMix")
    tint.data_type = "RGBA"
    tint.blend_type = "COLOR" if les.get("tint_mode") == "color" else "MULTIPLY"
    tint.inputs["Factor"].default_value = les.get("tint", 1.0)
    links.new(surface, tint.inputs["A"])
    rgb = nodes.new("ShaderNodeRGB")
    rgb.outputs[0].default_value = (*les["color"], 1.0)
    links.new(rgb.outputs[0], tint.inputs["B"])
    links.new(tint.outputs["Result"], bsdf.inputs["Base Color"])
    # Nodules (spec version 6 option): adenomas are lobulated and granular at a scale of a millimetre
    # or so, so each nodule shades and, facing the scope, glints. Inverted Voronoi cells are domes
    # with creases between them. Off by default: at 128 px most real polyps read as smooth glossy
    # bodies, and a U-Net taught "granular = lesion" missed them (docs/RESULTS.md, spec 6).
    normal_in = None
    if les.get("nodule_strength"):
        nod = nodes.new("ShaderNodeTexVoronoi")
        nod.feature = "SMOOTH_F1"
        nod.inputs["Scale"].default_value = les["nodule_scale"]
        nod.inputs["Smoothness"].default_value = 0.3
        nod.inputs["Randomness"].default_value = 0.9
        links.new(coord.outputs["Object"], nod.inputs["Vector"])
        nbump = nodes.new("ShaderNodeBump")
        nbump.invert = True
        nbump.inputs["Strength"].default_value = les["nodule_strength"]
        nbump.inputs["Distance"].default_value = 0.6 / les["nodule_scale"]  # cm: height ~ cell size
        links.new(nod.outputs["Distance"], nbump.inputs["Height"])
        normal_in = nbump.outputs["Normal"]
    # Pit pattern: cell-like dimples of the lesion surface.
    vor = nodes.new("ShaderNodeTexVoronoi")
    vor.inputs["Scale"].default_value = les["pit_scale"]
    links.new(coord.outputs["Object"], vor.inputs["Vector"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = les["pit_strength"]
    bump.inputs["Distance"].default_value = 0.01
    links.new(vor.outputs["Distance"], bump.inputs["Height"])
    if normal_in is not None:
        links.new(normal_in, bump.inputs["Normal"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    _glint(nodes, links, bump.outputs["Normal"], coord.outputs["Object"], m)
    _wet(bsdf, les["roughness"], m["coat_weight"], m["coat_roughness"], m["subsurface_weight"])
    return mat
