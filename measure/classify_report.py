"""The one reader of a `synth classify` report folder (report.json, model.pt): no torch, no bpy.

`synth classify` (classifier/report.py) writes the folder; everything else that needs what a
classify run was (the judge loading a trained classifier, scripts collecting figures) reads it
here, so the folder's layout is known in two places only: its writer and this reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from synth.measure import MetricError


@dataclass(frozen=True)
class ClassifyReport:
    """What a classify run was: its folder, config (as written), classes and result payload."""

    folder: Path
    config: dict
    class_names: list[str]
    payload: dict

    @property
    def model_path(self) -> Path:
        """The trained weights (`--save-model`); may not exist."""
        return self.folder / "model.pt"

    @property
    def model(self) -> str:
        return str(self.config["model"])

    def input_view(self) -> tuple[int, str, float]:
        """(size, fov, fov_radius): how the run's images were prepared, so a reader can do the same."""
        c = self.config
        return int(c["size"]), str(c["fov"]), float(c["fov_radius"])


def read_classify_report(folder: str | Path) -> ClassifyReport:
    """A classify report folder, or a one-line MetricError saying what is missing."""
    folder = Path(folder)
    path = folder / "report.json"
    if not path.is_file():
        raise MetricError(f"{folder} is not a `synth classify` report folder (no report.json)")
    try:
        payload = json.loads(path.read_text())
        config, names = dict(payload["config"]), list(payload["class_names"])
        missing = [k for k in ("model", "size", "fov", "fov_radius") if k not in config]
        if missing:
            raise KeyError(", ".join(missing))
    except (ValueError, KeyError, TypeError) as e:
        raise MetricError(f"{path} is not a complete classify report ({type(e).__name__}: {e}); "
                          "run synth classify again") from None
    return ClassifyReport(folder, config, names, payload)
