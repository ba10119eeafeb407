"""A small class-conditional GAN (`synth gan train`): DCGAN-style generator, projection discriminator.

- Generator: z ~ N(0, I) with the class embedding appended, then the VAE's decoder shape
  (diffusion/vae.py `ConvDecoder`) with BatchNorm and ReLU, as in DCGAN.
- Discriminator: strided convolutions with spectral norm
  (`torch.nn.utils.parametrizations.spectral_norm`) and LeakyReLU, summed over the image, then
  a linear output plus the projection of a class embedding (Miyato & Koyama 2018): the class
  enters as an inner product with the features, which keeps conditional training stable.
- Hinge loss, Adam with betas (0, 0.9), one discriminator step per generator step.
- An EMA copy of the generator (`torch.optim.swa_utils.AveragedModel`, BatchNorm statistics
  averaged too) is what gets saved and sampled: its samples are steadier than the raw
  generator's. Its decay warms up as diffusers' EMAModel does, min(decay, (1 + n) / (10 + n)),
  so a short run is not dominated by the initial weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from synth.diffusion.vae import EMBED_DIM, ConvDecoder


class Generator(nn.Module):
    def __init__(self, image_channels: int, resolution: int, num_classes: int, widths: tuple[int, ...],
                 latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.embed = nn.Embedding(num_classes, EMBED_DIM)
        self.decoder = ConvDecoder(latent_dim + EMBED_DIM, widths, image_channels, resolution, norm="batch",
                                   act=nn.ReLU)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, self.embed(y)], 1))

    sample = forward  # the generator interface of diffusion/generative.py: (latent, class) -> image


class Discriminator(nn.Module):
    def __init__(self, image_channels: int, num_classes: int, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        cin = image_channels
        for w in widths:
            layers += [spectral_norm(nn.Conv2d(cin, w, 3, 1, 1)), nn.LeakyReLU(0.2),
                       spectral_norm(nn.Conv2d(w, w, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = w
        self.body = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def _ema_update(decay: float):
    """AveragedModel's multi_avg_fn: torch's EMA with diffusers' warm-up of the decay."""
    from torch.optim.swa_utils import get_ema_multi_avg_fn

    @torch.no_grad()
    def update(ema_params, params, n_averaged):
        n = float(n_averaged)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(ema_params, params, n_averaged)

    return update


class GANTrainer:
    """One discriminator and one generator step per `step`; its state is what a checkpoint needs."""

    def __init__(self, net: Generator, cfg, device: torch.device, discriminator: Discriminator):
        from torch.optim.swa_utils import AveragedModel

        self.cfg, self.device = cfg, device
        self.g = net.to(device).train()
        self.d = discriminator.to(device).train()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr, betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr, betas=(0.0, 0.9))
        self.ema = AveragedModel(self.g, multi_avg_fn=_ema_update(cfg.ema_decay), use_buffers=True)

    def step(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> dict:
        b, zd = x.shape[0], self.g.latent_dim
        # Latents drawn on the CPU from the step's generator: the same numbers on every device.
        z_d, z_g = (torch.randn(b, zd, generator=g).to(self.device) for _ in range(2))
        with torch.no_grad():
            fake = self.g(z_d, y)
        d_loss = F.relu(1 - self.d(x, y)).mean() + F.relu(1 + self.d(fake, y)).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = -self.d(self.g(z_g, y), y).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.ema.update_parameters(self.g)
        return {"loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())}

    def sampling_net(self) -> nn.Module:
        return self.ema.module

    def state_dict(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict(), "ema": self.ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
