"""Procedural geometry, materials and optics as code (bpy node trees). Imports bpy.

No randomness here: every number comes from the frame spec."""
