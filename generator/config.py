"""The configuration of a `synth render` run, its validation and quality presets. No bpy.

The config is written to the output folder as `config.json`; a resumed run must carry the same
config (the `FRAME_INDEPENDENT` keys aside), so frames of one folder always come from one recipe.
The recipe includes the resolved scene (generator/scene_config.py): every distribution the
sampler drew from, so a different scene file or --set is a different run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

from synth import UserError


class ConfigError(UserError):
    """An invalid option value."""


# Samples per pixel, denoising and light-path limits per preset. Chosen by quality per second
# (docs/BENCHMARKS.md): OpenImageDenoise on few samples beats many samples for the same time.
QUALITY_PRESETS: dict[str, dict] = {
    "draft": {"samples": 2, "denoise": False, "max_bounces": 2},
    "default": {"samples": 4, "denoise": True, "max_bounces": 2},
    "high": {"samples": 32, "denoise": True, "max_bounces": 6},
}

# Keys that may differ between runs writing one folder without changing any frame:
# how the work is spread, never what is rendered.
FRAME_INDEPENDENT = ("n", "out")


@dataclass
class RenderConfig:
    n: int = 16
    out: str = "synth-data"
    lesion_prob: float = 0.5
    seed: int = 0
    resolution: int = 256
    quality: str = "default"
    samples: int | None = None
    frames_per_scene: int = 4
    device: str = "cpu"
    min_lesion_pixels: int | None = None
    # Apparent area of one lesion, as fractions of the frame, drawn log-uniformly between the two:
    # a shorthand for the scene's lesion.area (None: the scene's; the default scene's 3-60 % gives a
    # rendered median of about 10 % of the frame, as Kvasir-SEG's polyps, p10-p90 3-32 %, median
    # 11 %; 0.5-30 % in spec v3 made them much smaller than public polyp sets).
    lesion_area: tuple[float, float] | None = None
    # Fraction of frames with the processor's on-screen text and thumbnail box (seeded; the mask
    # loses the pixels they cover): a shorthand for the scene's artefacts.overlay_prob.
    overlay_prob: float | None = None
    # The resolved scene (SceneConfig.to_dict()); None: the packaged default. `resolved()` fills it
    # in, and the two shorthands above with it, before a run writes config.json.
    scene: dict | None = None

    def validate(self) -> "RenderConfig":
        if not isinstance(self.n, int) or self.n <= 0:
            raise ConfigError(f"--n must be a positive number of frames, got {self.n}")
        if not 0.0 <= self.lesion_prob <= 1.0:
            raise ConfigError(f"--lesion-prob must be between 0 and 1, got {self.lesion_prob}")
        if self.resolution < 16 or self.resolution > 4096:
            raise ConfigError(f"--resolution must be between 16 and 4096 pixels, got {self.resolution}")
        if self.quality not in QUALITY_PRESETS:
            raise ConfigError(f"--quality must be one of {', '.join(QUALITY_PRESETS)}, got {self.quality!r}")
        if self.samples is not None and self.samples <= 0:
            raise ConfigError(f"--samples must be positive, got {self.samples}")
        if self.frames_per_scene <= 0:
            raise ConfigError(f"--frames-per-scene must be positive, got {self.frames_per_scene}")
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"--device must be cpu or gpu, got {self.device!r}")
        if self.min_lesion_pixels is not None and self.min_lesion_pixels <= 0:
            raise ConfigError(f"--min-lesion-pixels must be positive, got {self.min_lesion_pixels}")
        if self.lesion_area is not None:
            lo, hi = self.lesion_area
            if not 0.0 < lo <= hi <= 1.0:
                raise ConfigError(f"--lesion-area must be MIN,MAX with 0 < MIN <= MAX <= 1 (fractions of the frame), "
                                  f"got {lo},{hi}")
        if self.overlay_prob is not None and not 0.0 <= self.overlay_prob <= 1.0:
            raise ConfigError(f"--overlay-prob must be between 0 and 1, got {self.overlay_prob}")
        if self.scene is not None:
            from synth.generator.scene_config import SceneConfig

            SceneConfig.from_dict(self.scene, "the run's scene")
        if self.seed < 0:
            raise ConfigError(f"--seed must be zero or positive, got {self.seed}")
        return self

    @property
    def render_settings(self) -> dict:
        preset = dict(QUALITY_PRESETS[self.quality])
        if self.samples is not None:
            preset["samples"] = self.samples
        return preset

    @property
    def lesion_pixel_threshold(self) -> int:
        """Mask pixels needed to call a frame 'lesion': by default 0.2 % of the frame, at least 4."""
        if self.min_lesion_pixels is not None:
            return self.min_lesion_pixels
        return max(4, round(0.002 * self.resolution * self.resolution))

    def to_json(self) -> dict:
        return asdict(self)

    def scene_config(self):
        """The SceneConfig this run samples from (its `scene`, or the packaged default)."""
        from synth.generator.scene_config import SceneConfig, default_scene

        return SceneConfig.from_dict(self.scene, "the run's scene") if self.scene is not None else default_scene()

    def resolved(self) -> "RenderConfig":
        """This config with the scene written out in full and the --lesion-area / --overlay-prob
        shorthands folded into it (and mirrored back, so config.json shows one consistent recipe)."""
        from synth.generator.scene_config import SceneConfig

        data = self.scene_config().to_dict()
        if self.lesion_area is not None:
            data["lesion"]["area"] = [float(v) for v in self.lesion_area]
        if self.overlay_prob is not None:
            data["artefacts"]["overlay_prob"] = float(self.overlay_prob)
        sc = SceneConfig.from_dict(data, "the run's scene")
        return replace(self, scene=sc.to_dict(), lesion_area=tuple(sc.lesion.area),
                       overlay_prob=sc.artefacts.overlay_prob)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'K/N' -> (K, N), 0 <= K < N. None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        k_s, n_s = text.split("/")
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise ConfigError(f"--shard must look like K/N (for example 0/4), got {text!r}") from None
    if n <= 0 or not 0 <= k < n:
        raise ConfigError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def parse_area(text: str) -> tuple[float, float]:
    """'0.01,0.3' -> (0.01, 0.3); range checks are RenderConfig.validate's."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--lesion-area must look like MIN,MAX (for example 0.005,0.3), got {text!r}") from None
    return lo, hi


def default_threads(workers: int) -> int:
    """Cycles threads per process: the cores split evenly among workers."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))
