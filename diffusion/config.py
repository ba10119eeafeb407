"""The configurations of a diffusion model and of its training, and of VAE and GAN training,
with their defaults and checks.

No torch at module level (it is imported only for the one check that needs it), so the CLI
reads the option defaults of `synth diffusion train`, `synth vae train` and `synth gan train`
from these dataclasses at start-up: each default is stated here once and cannot drift between
the command line and the code.
`synth.diffusion.model` and `synth.diffusion.train` re-export these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synth import UserError

SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"epsilon": "epsilon", "v": "v_prediction"}
# Crops of a texture model lie inside the central circle of this radius (fraction of half the side):
# Kvasir-SEG's octagonal border and on-screen text stay outside it.
CROP_RADIUS = 0.88


class ModelError(UserError):
    """A model folder or a model option that cannot be used."""


@dataclass
class ModelConfig:
    resolution: int = 32
    channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    # Self-attention at the lowest resolution: cheap there, and it helps global layout.
    attention: bool = True
    class_names: list[str] = field(default_factory=list)  # empty: unconditional
    image_channels: int = 3  # 3 RGB, 1 greyscale (models saved before this existed are RGB)
    mask_channels: int = 0  # 0 or 1: the lesion mask as an extra input channel
    learned_variance: bool = False
    # linear | cosine and epsilon | v. These two defaults differ from TrainConfig's on purpose:
    # they say what a model folder saved before the keys existed was trained with (DDPM's
    # linear schedule, epsilon target), so such a model loads as what it is. New models get
    # TrainConfig's cosine + v.
    schedule: str = "linear"
    prediction: str = "epsilon"
    timesteps: int = 1000
    # None: the model learned whole frames of `resolution` px. A size: it learned `resolution` px
    # crops cut from frames of this size, has no attention (fully convolutional), and so takes a
    # whole frame of this size at once (`synth refine` resizes frames to it).
    frame_resolution: int | None = None

    def validate(self) -> "ModelConfig":
        self.channels = tuple(int(c) for c in self.channels)
        if self.schedule not in SCHEDULES:
            raise ModelError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ModelError(f"--prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ModelError(f"--channels must be positive numbers, got {self.channels}")
        if any(c % self.norm_groups for c in self.channels):
            raise ModelError(f"--channels {self.channels} must all be multiples of {self.norm_groups}")
        factor = 2 ** (len(self.channels) - 1)
        if self.resolution <= 0 or self.resolution % factor:
            raise ModelError(
                f"resolution {self.resolution} must be a multiple of {factor} for {len(self.channels)} U-Net levels; "
                "pass --resolution or fewer --channels"
            )
        if self.image_channels not in (1, 3):
            raise ModelError(f"image_channels must be 1 (greyscale) or 3 (RGB), got {self.image_channels}")
        if self.mask_channels not in (0, 1):
            raise ModelError("mask_channels must be 0 or 1")
        if self.timesteps < 2:
            raise ModelError("--timesteps must be at least 2")
        if self.frame_resolution is not None:
            if self.frame_resolution < self.resolution or self.frame_resolution % factor:
                raise ModelError(f"frames of {self.frame_resolution} px cannot hold {self.resolution} px crops for "
                                 f"{len(self.channels)} U-Net levels (they must be at least the crop and a "
                                 f"multiple of {factor})")
            if self.attention:
                raise ModelError("a crop-trained model must be fully convolutional: no attention")
        return self

    @property
    def norm_groups(self) -> int:
        # GroupNorm needs groups dividing every width; diffusers' default 32 is too many for tiny models.
        return min(32, min(self.channels))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def null_class(self) -> int | None:
        """The label index meaning "no class" (classifier-free guidance), or None if unconditional."""
        return self.num_classes if self.class_names else None


class TrainError(UserError):
    """A training option or run folder that cannot be used."""


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    resolution: int | None = None
    condition: str = "label"  # label | domain | none
    # model: the network's defaults are ModelConfig's, stated once
    channels: tuple[int, ...] = ModelConfig.channels
    layers_per_block: int = ModelConfig.layers_per_block
    attention: bool = ModelConfig.attention
    mask: bool = False
    # Train on random crops of this many pixels cut from the frames at `resolution` (the texture
    # model of `synth refine`): only local appearance is learned, and the model, built without
    # attention, then takes whole frames. Crops lie wholly inside the central circle of radius
    # `crop_radius` x half the side, so a scope's black border, on-screen text and thumbnail box
    # are not learned as texture.
    crop: int | None = None
    crop_radius: float | None = None  # None: CROP_RADIUS (unset, so runs saved before crops existed resume)
    learned_variance: bool = ModelConfig.learned_variance
    schedule: str = "cosine"  # cosine + v: 22x lower FD than linear + epsilon at equal steps (docs/DIFFUSION.md)
    prediction: str = "v"
    timesteps: int = ModelConfig.timesteps
    # optimisation
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    class_dropout: float = 0.1
    vlb_weight: float = 0.001  # lambda of the hybrid loss (improved DDPM)
    flip: bool = True
    mixed_precision: str = "no"  # no | fp16 | bf16
    # bookkeeping
    checkpoint_every: int = 500
    sample_every_checkpoint: bool = True
    sample_steps: int = 25
    seed: int = 0
    limit: int | None = None  # frames per dataset, for quick runs

    def validate(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise TrainError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.lr <= 0:
            raise TrainError("--lr must be positive and --warmup-steps not negative")
        if not 0 <= self.class_dropout < 1:
            raise TrainError(f"--class-dropout must be in [0, 1), got {self.class_dropout}")
        if not 0 <= self.ema_decay < 1:
            raise TrainError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise TrainError(f"--mixed-precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.crop_radius is not None and not 0.0 < self.crop_radius <= 1.5:
            raise TrainError(f"--crop-radius must be in (0, 1.5] (fraction of half the side), got {self.crop_radius}")
        if self.crop is not None:
            if self.crop <= 0:
                raise TrainError(f"--crop must be a positive number of pixels, got {self.crop}")
            if self.resolution is not None:
                check_crop(self.crop, self.circle, self.resolution)
        if self.mixed_precision == "fp16":
            import torch

            if not torch.cuda.is_available():
                raise TrainError("--mixed-precision fp16 needs a GPU; use bf16 or no on a CPU")
        return self

    @property
    def circle(self) -> float:
        """The radius (fraction of half the side) that crops lie within."""
        return CROP_RADIUS if self.crop_radius is None else self.crop_radius

    def model_config(self, class_names: list[str], resolution: int, image_channels: int = 3) -> ModelConfig:
        """The network for frames of `resolution` px (the data's size); a crop-trained one is built at
        the crop size, without attention, and remembers the frame size."""
        if self.crop is not None:
            check_crop(self.crop, self.circle, resolution)
        return ModelConfig(
            resolution=self.crop or resolution, channels=tuple(self.channels), layers_per_block=self.layers_per_block,
            attention=self.attention and self.crop is None, class_names=list(class_names),
            image_channels=image_channels, mask_channels=int(self.mask),
            learned_variance=self.learned_variance, schedule=self.schedule, prediction=self.prediction,
            timesteps=self.timesteps, frame_resolution=resolution if self.crop is not None else None,
        ).validate()


def crop_reach(crop: int, radius: float, resolution: int) -> float:
    """How far (px) a crop's centre may lie from the frame's centre with all of the crop inside the
    circle of `radius` x half the side."""
    return radius * resolution / 2.0 - crop / 2.0 ** 0.5


def check_crop(crop: int, radius: float, resolution: int) -> None:
    if crop >= resolution or crop_reach(crop, radius, resolution) < 0:
        raise TrainError(f"--crop {crop} does not fit inside the central circle of {resolution} px frames "
                         f"(--crop-radius {radius}); use a smaller crop, a larger --resolution or --crop-radius")


# --------------------------------------------------------------------------- VAE and GAN

GENERATIVE_METHODS = ("vae", "gan")  # besides diffusion ("ddpm"): `synth vae train`, `synth gan train`


@dataclass
class GenerativeTrainConfig:
    """`synth vae train` / `synth gan train`: one run folder shape and one loop for both
    (diffusion/generative.py). `method` is set by the subclass and saved with the run."""

    data: list[str]
    out: str
    method: str = field(default="", init=False)
    resolution: int | None = None
    channels: tuple[int, ...] = (32, 64)  # conv widths per level; each level halves the image
    latent_dim: int = 64
    steps: int = 5000
    batch_size: int = 64
    lr: float = 2e-4
    flip: bool = True  # random horizontal flips of the training images
    checkpoint_every: int = 1000
    seed: int = 0
    limit: int | None = None  # frames per dataset, for quick runs

    def validate(self) -> "GenerativeTrainConfig":
        self.channels = tuple(int(c) for c in self.channels)
        for name in ("steps", "batch_size", "checkpoint_every", "latent_dim"):
            if getattr(self, name) <= 0:
                raise TrainError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise TrainError(f"--channels must be positive numbers, got {self.channels}")
        if self.lr <= 0:
            raise TrainError(f"--lr must be positive, got {self.lr}")
        return self


@dataclass
class VAETrainConfig(GenerativeTrainConfig):
    method: str = field(default="vae", init=False)
    lr: float = 1e-3
    # Weight of the KL term against the summed squared error of the pixels (in [-1, 1]):
    # lower gives sharper reconstructions and samples that follow the prior less closely.
    kl_weight: float = 1.0

    def validate(self) -> "VAETrainConfig":
        super().validate()
        if self.kl_weight < 0:
            raise TrainError(f"--kl-weight must not be negative, got {self.kl_weight}")
        return self


@dataclass
class GANTrainConfig(GenerativeTrainConfig):
    method: str = field(default="gan", init=False)
    lr: float = 2e-4
    ema_decay: float = 0.999  # the EMA generator is the one saved and sampled

    def validate(self) -> "GANTrainConfig":
        super().validate()
        if not 0 <= self.ema_decay < 1:
            raise TrainError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        return self


GENERATIVE_CONFIGS = {"vae": VAETrainConfig, "gan": GANTrainConfig}
