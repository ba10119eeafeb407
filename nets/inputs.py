"""uint8 images to the normalised float tensors synth's networks read: torch inside the functions, no bpy.

Every network here (classifiers, the U-Net, the judge) sees ImageNet-normalised RGB in [0, 1]
first, so a pretrained ResNet-18 starts from what it was trained on and a model trained by
`synth classify` is scored by the judge exactly as it was trained.
"""

from __future__ import annotations

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_unit(images_u8):
    """uint8 (N, 3, S, S) numpy -> float tensor in [0, 1] (a new tensor: augmentations may work in place)."""
    import torch

    return torch.from_numpy(images_u8).float().div_(255.0)


def normalise(x):
    """Float (N, 3, S, S) in [0, 1] -> ImageNet-normalised."""
    import torch

    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
