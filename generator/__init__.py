"""Scene specs and their seeded sampling (pure numpy), building and rendering bpy scenes, running many frames.

Only `synth.generator.blender_scene` and `synth.generator.worker` import bpy."""
