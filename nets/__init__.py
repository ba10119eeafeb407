"""The networks synth trains and the input normalisation they share: torch, no bpy.

Below both command packages that train networks (`classifier`, `diffusion` through the judge)
and below `measure` (the judge loads a classifier to score image sets), so none of them imports
another to build a model:

- `models`: the classifiers and segmenters `synth classify` trains, by name, their pretrained
  weights and the split of a classifier into feature body and head.
- `inputs`: uint8 images to the normalised float tensors those networks read (ImageNet mean and
  standard deviation), the one normalisation every trainer and the judge use.

torch is imported inside the functions, so importing this package stays light.
"""

from synth import UserError


class NetworkError(UserError):
    """A network that cannot be built or loaded as asked (unknown name, unreadable weights)."""
