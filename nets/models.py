"""The models `synth classify` trains, by name, and where their pretrained weights come from (torch inside
the functions, no bpy; the judge in `synth.measure` builds them too).

- ``smallcnn``: the small CNN of the synthetic-colonoscopy proof of concept: three conv layers
  with 2x2 kernels, a 512-unit dense layer, one output per class.
- ``resnet18``: torchvision's ResNet-18. Pretrained ImageNet weights are used only when asked
  (``--pretrained``: from the standard torch hub cache) or given (``--weights FILE``); there is
  no download at run time. ``--freeze-backbone`` trains only the last layer (the frozen-backbone
  baseline). Inputs smaller than 64 px get a 3x3 stride-1 first convolution (the max-pool
  stays), so 28x28 images reach the last block at 2x2 rather than 1x1 at a quarter of the cost
  of the CIFAR-style stem without pooling (which is 3x slower on CPU).
- ``vit-tiny`` (timm ViT-Ti: patch 16, dim 192, depth 12) and ``vit-micro`` (patch 8, dim 32,
  depth 2: for tests and quick runs).
- ``unet``: segmentation_models_pytorch U-Net with a ResNet-18 encoder (no encoder download).
"""

from __future__ import annotations

from pathlib import Path

from synth.nets import NetworkError

CLASSIFIERS = ("smallcnn", "resnet18", "vit-tiny", "vit-micro")
SEGMENTERS = ("unet",)
MODELS = CLASSIFIERS + SEGMENTERS

# torchvision's file name for ResNet-18 ImageNet weights in the torch hub cache.
RESNET18_FILE = "resnet18-f37072fd.pth"


def build_small_cnn(n_classes: int, size: int):
    import torch
    from torch import nn

    features = nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, kernel_size=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )
    with torch.no_grad():
        n_flat = features(torch.zeros(1, 3, size, size)).numel()
    return nn.Sequential(
        features, nn.Flatten(),
        nn.Linear(n_flat, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, n_classes),
    )


def build_model(name: str, n_classes: int, size: int, *, pretrained: bool = False, weights: str | None = None,
                freeze_backbone: bool = False, log=print):
    """Build model `name`. Returns (model, info dict for the report)."""
    from torch import nn

    info = {"model": name, "init": "random"}
    if name == "smallcnn":
        model = build_small_cnn(n_classes, size)
        head = model[-1]
    elif name == "resnet18":
        from torchvision.models import resnet18

        model = resnet18(weights=None)
        state, where = _resnet_weights(pretrained, weights, log)
        if size < 64:
            # Small inputs: a 7x7 stride-2 stem and max-pool would leave 1x1 feature maps.
            model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            info["stem"] = "3x3 stride 1 conv, then max-pool (input < 64 px)"
        model.fc = nn.Linear(model.fc.in_features, n_classes)
        head = model.fc
        if state is not None:
            _load_state(model, state, where, info)
    elif name in ("vit-tiny", "vit-micro"):
        import timm

        if name == "vit-tiny":
            patch = 16 if size % 16 == 0 else 4 if size % 4 == 0 else 1
            kw = dict(patch_size=patch, embed_dim=192, depth=12, num_heads=3)
        else:
            patch = 8 if size % 8 == 0 else 4 if size % 4 == 0 else 1
            kw = dict(patch_size=patch, embed_dim=32, depth=2, num_heads=2)
        model = timm.models.vision_transformer.VisionTransformer(img_size=size, num_classes=n_classes, **kw)
        if weights:
            _load_file(model, weights, info)
        head = model.head
    else:
        raise NetworkError(f"unknown --model {name!r}; choose one of {', '.join(CLASSIFIERS)}")
    if name != "resnet18" and pretrained and not weights:
        log(f"no pretrained weights for {name} are available here; training from random init")
    if freeze_backbone:
        if info["init"] == "random":
            log("--freeze-backbone with a randomly initialised backbone: only the last layer learns")
        for p in model.parameters():
            p.requires_grad = False
        for p in head.parameters():
            p.requires_grad = True
        if name == "resnet18" and size < 64:
            for p in model.conv1.parameters():  # the new stem has no pretrained weights to keep
                p.requires_grad = True
        info["frozen_backbone"] = True
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, info


def split_head(model, name: str):
    """(body, head) of a classifier built by `build_model`: the network up to its penultimate
    features (B, F), and the last linear layer. The judge's Fréchet distance uses the body."""
    from torch import nn

    if name == "resnet18":
        return nn.Sequential(*list(model.children())[:-1], nn.Flatten()), model.fc
    if name == "smallcnn":  # features, flatten, linear 512, relu, dropout, linear out
        return nn.Sequential(*list(model.children())[:-1]), model[-1]
    raise NetworkError(f"penultimate features are defined for resnet18 and smallcnn, not {name}")


def build_segmenter(name: str, *, weights: str | None = None, log=print):
    """A binary segmenter (one logit per pixel)."""
    if name != "unet":
        raise NetworkError(f"unknown segmentation model {name!r}; choose unet")
    import segmentation_models_pytorch as smp

    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=1)
    info = {"model": "unet (resnet18 encoder)", "init": "random"}
    if weights:
        _load_file(model, weights, info)
    info["parameters"] = sum(p.numel() for p in model.parameters())
    return model, info


def _resnet_weights(pretrained: bool, weights: str | None, log):
    import torch

    if weights:
        return _read_state(weights), weights
    if not pretrained:
        return None, None
    path = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_FILE
    if path.exists():
        return _read_state(str(path)), str(path)
    log(f"no pretrained ResNet-18 weights at {path} (no download here; use --weights FILE); "
        "training from random init")
    return None, None


def _read_state(path: str) -> dict:
    import torch

    if not Path(path).is_file():
        raise NetworkError(f"--weights {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a file that is not a torch state dict
        raise NetworkError(f"--weights {path} is not a readable torch weights file ({type(e).__name__})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise NetworkError(f"--weights {path} holds no state dict")
    return state


def _load_file(model, path: str, info: dict) -> None:
    _load_state(model, _read_state(path), path, info)


def _load_state(model, state: dict, path: str, info: dict) -> None:
    own = model.state_dict()
    # Keep only tensors whose shapes fit (a head for another number of classes is skipped).
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fit:
        raise NetworkError(f"--weights {path} has no tensors that fit this model")
    model.load_state_dict(fit, strict=False)
    info["init"] = f"weights from {path} ({len(fit)}/{len(own)} tensors)"
