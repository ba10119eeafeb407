"""The pure layer: the dataset format, image primitives, scene files and the seeded spec sampler,
post-processing, and running renders (numpy and OpenCV; no torch).

Nothing here imports bpy; `generator.worker` imports the Blender package (`synth.blender_assets`)
inside the function that renders, in a spawned process."""
