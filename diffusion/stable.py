"""The Stable Diffusion path: img2img refinement and DreamBooth-style LoRA fine-tuning.

Both work from a *local* diffusers Stable Diffusion folder (`model_index.json` plus unet/,
vae/, text_encoder/, tokenizer/, scheduler/): nothing is downloaded at run time.

- `refine_img2img` (`synth refine --method img2img --model SD_FOLDER [--lora DIR]`) runs
  `StableDiffusionImg2ImgPipeline` on every rendered frame with the real-domain prompt. The
  frame's mask and label are carried over unchanged (the image keeps its size, rounded down to
  a multiple of 8 as the VAE requires).
- `dreambooth` (`synth diffusion dreambooth`) adapts the pipeline to a user's images as in
  DreamBooth (Ruiz et al. 2023): an instance prompt with a rare token for the user's images,
  and prior preservation with a class prompt, whose images the frozen pipeline generates first
  unless a folder of them is given. Only LoRA adapters on the U-Net attention (peft) are
  trained; they are saved with `save_lora_weights` (safetensors) and loaded by img2img with
  `--lora`. The loop follows diffusers' examples/dreambooth/train_dreambooth_lora.py.
- `make_tiny_pipeline` writes a small randomly initialised pipeline (tiny U-Net, VAE and CLIP
  text encoder, and a byte-level CLIP tokenizer built from scratch), so both paths can be
  tested and demonstrated offline.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synth import UserError
from synth.diffusion.data import resize_image, resize_mask
from synth.diffusion.refined import finish, write_refined
from synth.diffusion.sample import pick_device, seed_for
from synth.generator.dataset import Dataset, DatasetWriter
from synth.generator.run_folder import RunFolder
from synth.rng import (CLASS_IMAGES_STREAM, DREAMBOOTH_BATCH_STREAM, DREAMBOOTH_NOISE_STREAM, IMG2IMG_STREAM,
                       LORA_INIT_STREAM)


class StableError(UserError):
    """A Stable Diffusion checkpoint or option that cannot be used."""


def check_pipeline_folder(path: str | Path) -> Path:
    p = Path(path)
    if not (p / "model_index.json").is_file():
        raise StableError(f"{p} is not a local Stable Diffusion folder (no model_index.json); "
                          "give the folder a diffusers `save_pretrained` wrote")
    return p


# --------------------------------------------------------------------------- tiny pipeline


def _byte_level_vocab() -> dict[str, int]:
    """A CLIP BPE vocabulary of single bytes only (no merges): tokenizes any text, offline."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def make_tiny_pipeline(path: str | Path, *, seed: int = 0, sample_size: int = 32) -> Path:
    """Write a tiny random Stable Diffusion pipeline (img2img-capable) to `path`."""
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=sample_size // 4, in_channels=4,
            out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=4,
            attention_head_dim=4,
        )
        vae = AutoencoderKL(
            block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            sample_size=sample_size,
        )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "vocab.json").write_text(json.dumps(_byte_level_vocab()))
            (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
            tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                                      model_max_length=32)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=32,
        ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return Path(path)


# --------------------------------------------------------------------------- img2img refine


def load_img2img(path: str | Path, lora: str | None = None):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(check_pipeline_folder(path), safety_checker=None,
                                                          requires_safety_checker=False)
    if lora:
        if not Path(lora).exists():
            raise StableError(f"--lora {lora} does not exist; train one with `synth diffusion dreambooth`")
        pipe.load_lora_weights(lora)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(pick_device())


def refine_img2img(cfg, rendered: Dataset, *, overwrite: bool = False, log=print) -> Path:
    """`synth refine --method img2img`: every rendered frame through SD img2img with the real prompt."""
    pipe = load_img2img(cfg.model, getattr(cfg, "lora", None))
    records = rendered.records[: cfg.limit]
    config = {"command": "refine", **asdict(cfg)}
    writer = DatasetWriter(Path(cfg.out), config=config, class_names=rendered.class_names, overwrite=overwrite)
    done = writer.done_ids()
    todo = [(i, r) for i, r in enumerate(records) if r.id not in done]
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start:start + cfg.batch_size]
        imgs, masks = [], []
        for _, r in chunk:
            size = max(8, (min(r.width, r.height) // 8) * 8)
            imgs.append(resize_image(rendered.image(r), size).astype(np.float32) / 255.0)
            masks.append(resize_mask(rendered.mask(r), size))
        if len({i.shape for i in imgs}) > 1:
            raise StableError("rendered frames have mixed sizes; img2img refines one size per run")
        seeds = [seed_for(cfg.seed, IMG2IMG_STREAM, i) for i, _ in chunk]
        gens = [torch.Generator(device=pipe.device).manual_seed(s) for s in seeds]
        out = pipe(prompt=[cfg.prompt] * len(chunk), image=np.stack(imgs), strength=cfg.strength,
                   num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, generator=gens, output_type="np").images
        out = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
        for (i, r), img, k, s in zip(chunk, out, masks, seeds):
            write_refined(writer, rendered, r, img, k if r.mask else None, seed=s, extra={
                "method": "img2img", "strength": cfg.strength, "steps": cfg.steps, "guidance": cfg.guidance,
                "prompt": cfg.prompt, "model": str(cfg.model), "lora": getattr(cfg, "lora", None)})
        log(f"{len(done) + start + len(chunk)}/{len(records)} frames refined")
    return finish(writer, rendered, records, config, cfg.seed, str(cfg.model))


# --------------------------------------------------------------------------- DreamBooth LoRA


@dataclass
class DreamBoothConfig:
    pretrained: str
    instance_data: str  # dataset folder of the user's images
    out: str  # folder for the LoRA weights
    instance_prompt: str = "a photo of sks polyp"
    class_prompt: str | None = "a photo of a polyp"  # None: no prior preservation
    class_data: str | None = None  # dataset folder of class images (default: generate them)
    num_class_images: int = 50
    prior_weight: float = 1.0
    labels: list[str] | None = None  # only instance frames with these labels
    resolution: int = 512
    rank: int = 4
    steps: int = 400
    batch_size: int = 1
    lr: float = 1e-4
    class_steps: int = 25  # sampling steps for generated class images
    seed: int = 0


def _encode_prompt(pipe, prompt: str, n: int, device):
    ids = pipe.tokenizer([prompt] * n, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(device)
    return pipe.text_encoder(ids)[0]


def dreambooth(cfg: DreamBoothConfig, log=print) -> Path:
    """LoRA DreamBooth fine-tune of a local SD pipeline; returns the folder holding the LoRA weights."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    if cfg.steps <= 0 or cfg.batch_size <= 0 or cfg.rank <= 0:
        raise StableError("--steps, --batch-size and --rank must be positive")
    if cfg.resolution % 8:
        raise StableError(f"--resolution must be a multiple of 8, got {cfg.resolution}")
    RunFolder(cfg.out, error=StableError).check()  # a file as --out fails now, not after the training
    dev = pick_device()
    pipe = StableDiffusionPipeline.from_pretrained(check_pipeline_folder(cfg.pretrained), safety_checker=None,
                                                   requires_safety_checker=False).to(dev)
    pipe.set_progress_bar_config(disable=True)
    ds = Dataset.open(cfg.instance_data)
    recs = [r for r in ds if cfg.labels is None or r.label in cfg.labels]
    if not recs:
        raise StableError(f"{cfg.instance_data} has no frames with labels {cfg.labels}")
    instance = np.stack([resize_image(ds.image(r), cfg.resolution) for r in recs])

    prior = cfg.class_prompt is not None
    class_imgs = None
    if prior:
        if cfg.class_data:
            class_imgs = np.stack([resize_image(Dataset.open(cfg.class_data).image(r), cfg.resolution)
                                   for r in Dataset.open(cfg.class_data)])
        else:  # the frozen model's own idea of the class: what prior preservation keeps
            log(f"generating {cfg.num_class_images} class images for prior preservation")
            gens = [torch.Generator(device=dev).manual_seed(seed_for(cfg.seed, CLASS_IMAGES_STREAM, i))
                    for i in range(cfg.num_class_images)]
            out = []
            for s in range(0, cfg.num_class_images, 8):
                g = gens[s:s + 8]
                out.append(pipe([cfg.class_prompt] * len(g), height=cfg.resolution, width=cfg.resolution,
                                num_inference_steps=cfg.class_steps, generator=g, output_type="np").images)
            class_imgs = (np.clip(np.concatenate(out), 0, 1) * 255).round().astype(np.uint8)

    unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(cfg.seed, LORA_INIT_STREAM))  # LoRA init is random too
        unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.rank, init_lora_weights="gaussian",
                                    target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    noise_scheduler = DDPMScheduler.from_pretrained(cfg.pretrained, subfolder="scheduler")
    with torch.no_grad():
        inst_emb = _encode_prompt(pipe, cfg.instance_prompt, 1, dev)
        cls_emb = _encode_prompt(pipe, cfg.class_prompt, 1, dev) if prior else None

    def to_latents(u8: np.ndarray, g: torch.Generator):
        x = torch.from_numpy(u8).permute(0, 3, 1, 2).float().to(dev) / 127.5 - 1
        return vae.encode(x).latent_dist.sample(generator=g) * vae.config.scaling_factor

    unet.train()
    history = []
    for step in range(cfg.steps):
        g = torch.Generator(device=dev).manual_seed(seed_for(cfg.seed, DREAMBOOTH_NOISE_STREAM, step))
        gi = torch.Generator().manual_seed(seed_for(cfg.seed, DREAMBOOTH_BATCH_STREAM, step))
        idx = torch.randint(len(instance), (cfg.batch_size,), generator=gi).numpy()
        batch = instance[idx]
        emb = inst_emb.expand(cfg.batch_size, -1, -1)
        if prior:
            cidx = torch.randint(len(class_imgs), (cfg.batch_size,), generator=gi).numpy()
            batch = np.concatenate([batch, class_imgs[cidx]])
            emb = torch.cat([emb, cls_emb.expand(cfg.batch_size, -1, -1)])
        if torch.rand(1, generator=gi).item() < 0.5:  # horizontal flip: cheap, label-preserving
            batch = batch[:, :, ::-1].copy()
        with torch.no_grad():
            latents = to_latents(batch, g)
        noise = torch.randn(latents.shape, generator=g, device=dev)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), generator=g,
                          device=dev)
        noisy = noise_scheduler.add_noise(latents, noise, t)
        pred = unet(noisy, t, emb).sample
        target = noise if noise_scheduler.config.prediction_type == "epsilon" else \
            noise_scheduler.get_velocity(latents, noise, t)
        if prior:
            p_inst, p_cls = pred.chunk(2)
            t_inst, t_cls = target.chunk(2)
            loss = F.mse_loss(p_inst.float(), t_inst.float()) + cfg.prior_weight * F.mse_loss(p_cls.float(),
                                                                                            t_cls.float())
        else:
            loss = F.mse_loss(pred.float(), target.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(float(loss.detach()))
        if (step + 1) % max(1, cfg.steps // 10) == 0:
            log(f"step {step + 1}/{cfg.steps} loss {history[-1]:.4f}")

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    lora_state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=lora_state, safe_serialization=True)
    (out / "dreambooth_config.json").write_text(json.dumps({**asdict(cfg), "loss": history}, indent=2) + "\n")
    return out
