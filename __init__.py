"""synth: labelled synthetic medical images.

`synth render` makes procedural colonoscopy frames with pixel-exact masks (Blender),
`synth refine` / `synth augment` move them toward real images with diffusion models, and
`synth classify` measures how well what was learned on synthetic data transfers to real data.
This package file imports nothing heavy: `synth --help` must stay instant.
"""

__version__ = "0.1.0"


class UserError(ValueError):
    """A mistake in what the user asked for. The CLI prints it as one line and exits with code 2."""
