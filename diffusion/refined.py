"""The output of `synth refine`, whatever the method: refined frames that carry the rendered frame's
label, mask, depth and spec, and the manifest that says where they came from. No torch, no bpy.

Every refine method (diffusion SDEdit/DDIB in refine.py, Stable Diffusion img2img in stable.py,
the no-training restylers) writes through these two functions, so a refined folder reads alike
whichever made it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.generator.dataset import Dataset, DatasetWriter
from synth.generator.imaging import resize_mask


def write_refined(writer: DatasetWriter, rendered: Dataset, r, img: np.ndarray, mask, *, seed, extra):
    """Write one refined frame carrying over the rendered frame's label, mask, depth and spec."""
    res = img.shape[0]
    raw = rendered.depth_raw(r)
    depth = None if raw is None else resize_mask(raw, res)
    writer.write_frame(r.id, image=img, label=r.label, mask=mask, depth=depth, spec=rendered.spec(r), seed=seed,
                       source=f"{rendered.root}:{r.id}", extra=extra)


def finish(writer, rendered: Dataset, records, config: dict, seed: int, model: str | None, **more) -> Path:
    """The refined folder's manifest (kind `refined`, its source, model and depth scale); returns the folder."""
    manifest = {"command": "synth refine", "config": config, "seed": seed, "kind": "refined",
                "source": str(rendered.root), "model": model, **more}
    if "depth_scale" in rendered.manifest:
        manifest["depth_scale"] = rendered.manifest["depth_scale"]
    writer.finalize(manifest=manifest, expected_ids=[r.id for r in records])
    return writer.root
