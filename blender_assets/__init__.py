"""Everything that imports bpy: the scene a frame spec becomes (`scene`: build, render, read the passes
back) and its procedural geometry, materials and optics as code (bpy node trees).

The only package that imports bpy (and Blender's mathutils); rendering processes import it
(generator/worker.py, inside the function that renders), never the CLI process or torch code.
No randomness here: every number comes from the frame spec."""
