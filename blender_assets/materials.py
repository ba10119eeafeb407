"""Mucosa and lesion materials as Cycles node trees. Imports bpy.

The mucosa is a wet, slightly translucent tissue: a pink-to-orange base colour with slow colour
variation, a vessel network (ridged noise: thin lines where the noise crosses 0.5), a fine bump,
subsurface scattering, and a glossy clear coat that gives the small sharp highlights of real
endoscopy. Lesions reuse the same recipe with their own colour and a pit pattern (Voronoi bump).
Trees are rebuilt per scene (mucosa) or per frame (lesions): Cycles' SVM shaders are cheap to
rebuild, and rebuilding keeps every value traceable to the spec.
"""

from __future__ import annotations

import bpy


def _new_material(name: str) -> tuple[bpy.types.Material, bpy.types.NodeTree]:
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    tree = mat.node_tree
    tree.nodes.clear()
    return mat, tree


def mucosa_material(m: dict) -> bpy.types.Material:
    mat, tree = _new_material("mucosa")
    nodes, links = tree.nodes, tree.links
    out = nodes.new("ShaderNodeOutputMaterial")
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])

    coord = nodes.new("ShaderNodeTexCoord")
    shift = nodes.new("ShaderNodeVectorMath")
    shift.operation = "ADD"
    shift.inputs[1].default_value = m["texture_offset"]
    links.new(coord.outputs["Object"], shift.inputs[0])

    # Slow colour variation of the mucosa.
    var = nodes.new("ShaderNodeTexNoise")
    var.inputs["Scale"].default_value = m["color_variation_scale"]
    var.inputs["Detail"].default_value = 2.0
    links.new(shift.outputs["Vector"], var.inputs["Vector"])
    base_rgb = nodes.new("ShaderNodeRGB")
    base_rgb.outputs[0].default_value = (*m["base_color"], 1.0)
    darker = nodes.new("ShaderNodeMix")
    darker.data_type = "RGBA"
    darker.blend_type = "MULTIPLY"
    darker.inputs["Factor"].default_value = m["color_variation"]
    links.new(base_rgb.outputs[0], darker.inputs["A"])
    links.new(var.outputs["Color"], darker.inputs["B"])

    # Vessel network: ridged noise, thin where |noise - 0.5| is small.
    vn = nodes.new("ShaderNodeTexNoise")
    vn.inputs["Scale"].default_value = m["vessel_density"]
    vn.inputs["Detail"].default_value = 4.0
    vn.inputs["Roughness"].default_value = 0.55
    vn.inputs["Distortion"].default_value = m["vessel_distortion"]
    links.new(shift.outputs["Vector"], vn.inputs["Vector"])
    sub = nodes.new("ShaderNodeMath")
    sub.operation = "SUBTRACT"
    sub.inputs[1].default_value = 0.5
    links.new(vn.outputs["Fac"], sub.inputs[0])
    ab = nodes.new("ShaderNodeMath")
    ab.operation = "ABSOLUTE"
    links.new(sub.outputs[0], ab.inputs[0])
    ridge = nodes.new("ShaderNodeMapRange")
    ridge.inputs["From Min"].default_value = 0.0
    ridge.inputs["From Max"].default_value = m["vessel_width"]
    ridge.inputs["To Min"].default_value = m["vessel_contrast"]
    ridge.inputs["To Max"].default_value = 0.0
    links.new(ab.outputs[0], ridge.inputs["Value"])
    vessel_rgb = nodes.new("ShaderNodeRGB")
    vessel_rgb.outputs[0].default_value = (*m["vessel_color"], 1.0)
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    links.new(ridge.outputs["Result"], mix.inputs["Factor"])
    links.new(darker.outputs["Result"], mix.inputs["A"])
    links.new(vessel_rgb.outputs[0], mix.inputs["B"])
    links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])

    # Fine bump of the tissue surface, shared by base and coat.
    bn = nodes.new("ShaderNodeTexNoise")
    bn.inputs["Scale"].default_value = m["bump_scale"]
    bn.inputs["Detail"].default_value = 3.0
    links.new(shift.outputs["Vector"], bn.inputs["Vector"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = m["bump_strength"]
    bump.inputs["Distance"].default_value = 0.02
    links.new(bn.outputs["Fac"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])

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


def lesion_material(les: dict, coat: float, coat_roughness: float, sss: float) -> bpy.types.Material:
    mat, tree = _new_material(f"lesion_{les['instance']}")
    nodes, links = tree.nodes, tree.links
    out = nodes.new("ShaderNodeOutputMaterial")
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = (*les["color"], 1.0)
    coord = nodes.new("ShaderNodeTexCoord")
    # Pit pattern: cell-like dimples of the lesion surface.
    vor = nodes.new("ShaderNodeTexVoronoi")
    vor.inputs["Scale"].default_value = les["pit_scale"]
    links.new(coord.outputs["Object"], vor.inputs["Vector"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = les["pit_strength"]
    bump.inputs["Distance"].default_value = 0.01
    links.new(vor.outputs["Distance"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    _wet(bsdf, les["roughness"], coat, coat_roughness, sss)
    return mat
