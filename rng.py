"""Named random streams: which keys are taken, and `fork_rng` for code that needs torch's global generator.

Every random draw in synth comes from a generator made from the command's `--seed` and a
stream key, never from global state, so the same seed gives the same result and one stream
can change without moving another:

- numpy: `np.random.default_rng(np.random.SeedSequence([seed, STREAM, *more]))`;
- torch: `torch.Generator().manual_seed(seed_for(seed, STREAM, *more))` (diffusion/sample.py),
  which is the same SeedSequence turned into a 63-bit seed, so both share one key space;
- the classifier's training loop (an older scheme, kept so reports do not move):
  `torch.Generator().manual_seed(seed * 1000 + offset)`, offset 0 for a first training and 1
  for the second of a protocol (`seed_offset` in classifier/train.py). `--protocol augment`
  trains each row with training seeds seed, seed+1, ... through the same scheme (the data split
  stays with --seed), each training inside its own `fork_rng(training seed)`.

Two streams drawn in one command need different keys; a key may be shared on purpose only
where two commands must draw the same numbers (PATCH_STREAM). The numbers are part of every
seeded result (tests/test_scene_pins.py pins the frame specs): never renumber a key, add new ones.

Some code cannot take a generator (torchvision's v2 transforms, a model's initial weights):
`fork_rng(seed)` seeds torch's global generator inside a `with` block and puts it back after,
so nothing outside sees the change. numpy only at module level; torch is imported by fork_rng.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

# ---- synth render: frame specs (generator/spec.py). Pinned; never renumber.
SCENE_STREAM = 0  # a built lumen: shape, wall, materials (seed, SCENE_STREAM, scene index)
FRAME_STREAM = 1  # one frame's camera, lighting and artefacts (seed, FRAME_STREAM, frame index)
LESION_STREAM = 2  # which frames of a block carry a lesion (seed, LESION_STREAM, block)

# ---- the data layer (generator/)
SPLIT_STREAM = 7919  # stratified_split; holdout_split of patch folders draws (SPLIT_STREAM, 1)
PATCH_STREAM = 31  # synth data patches: the windows of frame n; synth evaluate cuts the same patches
STYLE_STREAM = 4041  # restyle: which real frame lends its style; (STYLE_STREAM, 1, ...) classify's on-the-fly styles

# ---- measure/
C2ST_STREAM = 8  # C2ST: subsampling and folds

# ---- classifier/ (synth classify, synth evaluate)
CLASSICAL_AUGMENT_STREAM = 20_03  # classify --augment: which frames are copied, and their transforms
REALISM_SAMPLE_STREAM = 11_01  # evaluate: the frames measured for realism
JUDGE_SAMPLE_STREAM = 11_02  # evaluate: the held-out real and synthetic patches the judge compares

# ---- diffusion/ (SeedSequence and seed_for alike)
EPOCH_ORDER_STREAM = 1  # train: the data order of epoch e
TRAIN_NOISE_STREAM = 2  # train: noise, timesteps, label dropout, flips of micro-step s
TRAIN_SAMPLES_STREAM = 3  # train: the sample grid of each checkpoint
AUGMENT_SAMPLES_STREAM = 4  # augment / diffusion sample: the noise of sample i
AUGMENT_MASK_STREAM = 5  # augment --masks-from: which mask sample i follows
REFINE_STREAM = 6  # refine sdedit/ddib: the noise of frame i
IMG2IMG_STREAM = 7  # refine --method img2img: the noise of frame i
EVALUATE_SELECT_STREAM = 9  # diffusion evaluate: which real frames are compared
EVALUATE_SAMPLES_STREAM = 10  # diffusion evaluate: the samples of each checkpoint
CLASS_IMAGES_STREAM = 11  # dreambooth: the class images for prior preservation
LORA_INIT_STREAM = 12  # dreambooth: the LoRA weights' initialisation
DREAMBOOTH_NOISE_STREAM = 13  # dreambooth: latents, noise and timesteps of step s
DREAMBOOTH_BATCH_STREAM = 14  # dreambooth: which instance images step s trains on
ANOMALY_STREAM = 15  # diffusion anomaly: the noise of frame i, repeat k
GENERATIVE_INIT_STREAM = 16  # vae / gan train: the initial weights
GENERATIVE_EPOCH_STREAM = 17  # vae / gan train: the data order of epoch e
GENERATIVE_NOISE_STREAM = 18  # vae / gan train: latents, encoder noise and flips of step s
GENERATIVE_GRID_STREAM = 19  # vae / gan train: the sample grid of each checkpoint
BENCHMARK_STREAM = 20  # benchmarks/: draws of the measurement scripts

# ---- synth calibrate (it also renders and measures: the render and evaluate streams above)
CALIBRATE_SAMPLER_STREAM = 7_14  # the TPE sampler's seed of trial k

# The streams drawn within one command (where the keys must differ).
COMMANDS = {
    "render": (SCENE_STREAM, FRAME_STREAM, LESION_STREAM),
    "data patches": (PATCH_STREAM,),
    "classify": (SPLIT_STREAM, CLASSICAL_AUGMENT_STREAM, STYLE_STREAM, C2ST_STREAM),  # C2ST: --protocol augment
    "evaluate": (SPLIT_STREAM, PATCH_STREAM, REALISM_SAMPLE_STREAM, JUDGE_SAMPLE_STREAM, C2ST_STREAM),
    "refine": (SPLIT_STREAM, STYLE_STREAM, REFINE_STREAM, IMG2IMG_STREAM,
               EPOCH_ORDER_STREAM, TRAIN_NOISE_STREAM, TRAIN_SAMPLES_STREAM),  # refine may train a model
    "diffusion train": (EPOCH_ORDER_STREAM, TRAIN_NOISE_STREAM, TRAIN_SAMPLES_STREAM),
    "augment": (AUGMENT_SAMPLES_STREAM, AUGMENT_MASK_STREAM),
    "diffusion evaluate": (EVALUATE_SELECT_STREAM, EVALUATE_SAMPLES_STREAM, C2ST_STREAM),
    "diffusion dreambooth": (CLASS_IMAGES_STREAM, LORA_INIT_STREAM, DREAMBOOTH_NOISE_STREAM, DREAMBOOTH_BATCH_STREAM),
    "diffusion anomaly": (ANOMALY_STREAM,),
    "vae train": (GENERATIVE_INIT_STREAM, GENERATIVE_EPOCH_STREAM, GENERATIVE_NOISE_STREAM, GENERATIVE_GRID_STREAM),
    "gan train": (GENERATIVE_INIT_STREAM, GENERATIVE_EPOCH_STREAM, GENERATIVE_NOISE_STREAM, GENERATIVE_GRID_STREAM),
    "calibrate": (SCENE_STREAM, FRAME_STREAM, LESION_STREAM, REALISM_SAMPLE_STREAM, CALIBRATE_SAMPLER_STREAM),
}


@contextlib.contextmanager
def fork_rng(seed: int) -> Iterator[None]:
    """Seed torch's global generator (CPU and, where present, CUDA) for the `with` block only.

    For code that draws from global state and takes no generator: torchvision's v2 transforms,
    the initial weights of a model. The state before the block is restored after it (also on an
    exception), so a seeded block neither depends on nor changes anything drawn outside it.
    """
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        yield
