"""Measurements of image sets: how far synthetic frames are from real ones, and in what.

Below both `classifier` and `diffusion` (they import it, it imports neither), with numpy, OpenCV,
scipy and scikit-learn only (no torch at module level, no bpy):

- `realism`: interpretable per-image statistics inside the scope's field of view (Lab colour,
  brightness against distance from the centre, specular highlights, fine texture, edges and
  vessel-like lines, dark lumen, lesion size, position and contrast), their per-folder
  distributions, and the synthetic-vs-real gap of each with a plain-words reading.
- `c2st`: the classifier two-sample test (a weight-free realism score).
- `frechet`: the Fréchet distance between two sets of feature vectors (the judge's score).
"""

from synth import UserError


class MetricError(UserError):
    """A metric that cannot be computed with what is available."""
