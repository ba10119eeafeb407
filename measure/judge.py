"""Quality scores from a classifier trained on real images: a graded, offline stand-in for FID.

No bpy; torch inside the functions (the networks come from `synth.nets`, the report from
`measure.classify_report`, so neither command package is imported). The C2ST realism score saturates at 1.0 for every model that is not yet close to the
real images, and FID needs Inception weights that cannot be had offline. A classifier that
`synth classify --save-model` trained on the real images of the same modality gives two
scores that keep moving while a model improves:

- **FD (classifier features)**: the Fréchet distance between real and generated images in the
  space of the classifier's penultimate layer (512 features for ResNet-18 and the small CNN),
  computed by torchmetrics' `FrechetInceptionDistance` with that network as its feature
  extractor (and KID with `KernelInceptionDistance` the same way). Like FID, 0 means the two sets have the same feature mean and covariance; unlike
  FID, its scale depends on the classifier, so compare values from one judge only.
- **class agreement**: for class-conditional samples, the fraction the classifier assigns to
  the class they were generated for, next to its accuracy on the real images with the same
  class mix (the ceiling a perfect generator would reach).

Images are prepared exactly as `synth classify` prepared its inputs (resize to its --size,
the same field-of-view mask, ImageNet normalisation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.generator.imaging import fov_mask, model_view
from synth.measure import MetricError
from synth.measure.fid import fid_kid
from synth.measure.classify_report import read_classify_report
from synth.nets.inputs import normalise, to_unit
from synth.nets.models import build_model, split_head


class Judge:
    """A trained `synth classify` model: features and class probabilities of uint8 images."""

    def __init__(self, report: str | Path):
        import torch

        rep = read_classify_report(report)
        state_path = rep.model_path
        if not state_path.is_file():
            raise MetricError(f"{report} has no model.pt; train the judge with `synth classify ... --save-model`")
        self.model_name = rep.model
        self.size, self.fov, self.fov_radius = rep.input_view()
        self.class_names: list[str] = rep.class_names
        if self.model_name not in ("resnet18", "smallcnn"):
            raise MetricError(f"the judge must be a resnet18 or smallcnn classifier, {report} holds {self.model_name}")
        model, _ = build_model(self.model_name, len(self.class_names), self.size, log=lambda *_: None)
        try:
            model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
        except Exception as e:  # a truncated file or weights of another model
            raise MetricError(f"{state_path} does not hold the weights of the model its report describes "
                              f"({type(e).__name__}); train the judge again with --save-model") from None
        self.model = model.eval()

    def _prepare(self, images_u8: np.ndarray):
        """uint8 (N, H, W, 3) -> the normalised (N, 3, S, S) tensor the classifier was trained on."""
        s = self.size
        keep = fov_mask(s, self.fov_radius) if self.fov == "circle" else None
        out = np.stack([model_view(img, s, keep).transpose(2, 0, 1) for img in images_u8])
        return normalise(to_unit(out))

    def _split(self):
        """(body, head): the network up to its penultimate features, and the last linear layer."""
        return split_head(self.model, self.model_name)

    def feature_module(self):
        """An nn.Module: uint8 (B, 3, H, W) -> (B, F) penultimate features, for torchmetrics' FID/KID."""
        import torch
        from torch import nn

        judge, (body, _) = self, self._split()

        with torch.no_grad():
            width = int(body(judge._prepare(np.zeros((1, 8, 8, 3), np.uint8))).shape[-1])

        class Features(nn.Module):
            num_features = width  # tells torchmetrics the size without a dummy 299 px forward pass

            def forward(self, x):
                with torch.no_grad():
                    return body(judge._prepare(x.permute(0, 2, 3, 1).numpy().astype(np.uint8)))

        return Features()

    def features_and_probs(self, images_u8: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        import torch

        body, head = self._split()
        feats, probs = [], []
        with torch.no_grad():
            for i in range(0, len(images_u8), batch_size):
                f = body(self._prepare(images_u8[i:i + batch_size]))
                feats.append(f.numpy())
                probs.append(torch.softmax(head(f), dim=1).numpy())
        return np.concatenate(feats), np.concatenate(probs)


def judge_scores(judge: Judge, real: np.ndarray, fake: np.ndarray, *, real_labels: list[str] | None = None,
                 fake_labels: list[str] | None = None) -> dict:
    """FD on the judge's features; class agreement when the labels of both sets are given."""
    d = fid_kid(real, fake, judge.feature_module())
    out = {"fd_judge": d["fid"], "kid_judge": d["kid_mean"]}
    if fake_labels is not None:
        _, pf = judge.features_and_probs(fake)
        unknown = sorted(set(fake_labels) - set(judge.class_names))
        if unknown:
            raise MetricError(f"classes {unknown} are not classes of the judge ({', '.join(judge.class_names)})")
        idx = np.array([judge.class_names.index(c) for c in fake_labels])
        out["class_agreement"] = float((pf.argmax(1) == idx).mean())
    if real_labels is not None:
        _, pr = judge.features_and_probs(real)
        idx = np.array([judge.class_names.index(c) for c in real_labels])
        out["class_agreement_real"] = float((pr.argmax(1) == idx).mean())
    return out
