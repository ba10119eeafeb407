"""A small class-conditional convolutional VAE (`synth vae train`), and the decoder it shares with the GAN.

The encoder sees the image with its class embedding broadcast as extra input channels and
gives the mean and log variance of a Gaussian latent; the decoder sees the latent with the
class embedding appended. Each of the `len(channels)` levels halves (encoder) or doubles
(decoder) the image side, so the side must be a multiple of 2 ** levels (28 px BloodMNIST with
two levels: 28 -> 14 -> 7). Images are in [-1, 1] with 1 or 3 channels.

Loss per image: the summed squared error of the pixels (a Gaussian decoder of fixed variance)
plus `kl_weight` times the KL divergence from the N(0, I) prior. Sampling decodes z ~ N(0, I)
under a class, so a sample depends only on its latent (its seed) and class.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EMBED_DIM = 16  # width of the class embeddings (classes are few: 2 to a few dozen)


def norm_layer(kind: str, width: int) -> nn.Module:
    # GroupNorm needs groups dividing the width; 8 or fewer keeps tiny test widths valid.
    return nn.BatchNorm2d(width) if kind == "batch" else nn.GroupNorm(math.gcd(8, width), width)


class ConvDecoder(nn.Module):
    """A vector -> image: a linear layer to the lowest level, then one 2x transposed convolution
    per level, then a 3x3 convolution to the image channels and tanh (the [-1, 1] range)."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], image_channels: int, resolution: int,
                 norm: str = "group", act: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.base = resolution // 2 ** len(widths)
        top = widths[-1]
        self.fc = nn.Linear(in_dim, top * self.base * self.base)
        layers: list[nn.Module] = [norm_layer(norm, top), act()]
        rev = list(reversed(widths))
        for i, w in enumerate(rev):
            nxt = rev[i + 1] if i + 1 < len(rev) else rev[-1]
            layers += [nn.ConvTranspose2d(w, nxt, 4, 2, 1), norm_layer(norm, nxt), act()]
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[0], image_channels, 3, 1, 1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = self.fc(v).view(v.shape[0], -1, self.base, self.base)
        return torch.tanh(self.out(self.up(h)))


class ConditionalVAE(nn.Module):
    def __init__(self, image_channels: int, resolution: int, num_classes: int, widths: tuple[int, ...],
                 latent_dim: int):
        super().__init__()
        self.resolution, self.latent_dim = resolution, latent_dim
        self.embed_enc = nn.Embedding(num_classes, EMBED_DIM)
        layers: list[nn.Module] = []
        cin = image_channels + EMBED_DIM
        for w in widths:
            layers += [nn.Conv2d(cin, w, 4, 2, 1), norm_layer("group", w), nn.SiLU()]
            cin = w
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        base = resolution // 2 ** len(widths)
        self.to_stats = nn.Linear(widths[-1] * base * base, 2 * latent_dim)
        self.embed_dec = nn.Embedding(num_classes, EMBED_DIM)
        self.decoder = ConvDecoder(latent_dim + EMBED_DIM, widths, image_channels, resolution)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log variance of q(z | x, y)."""
        s = self.resolution
        e = self.embed_enc(y)[:, :, None, None].expand(-1, -1, s, s)
        mu, logvar = self.to_stats(self.encoder(torch.cat([x, e], 1))).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # exp() stays finite early in training

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, self.embed_dec(y)], 1))

    sample = decode  # the generator interface of diffusion/generative.py: (latent, class) -> image


class VAETrainer:
    """One optimizer step of the VAE per `step`; its state is what a checkpoint needs to resume."""

    def __init__(self, net: ConditionalVAE, cfg, device: torch.device):
        self.net, self.cfg, self.device = net.to(device).train(), cfg, device
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)

    def step(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> dict:
        mu, logvar = self.net.encode(x, y)
        eps = torch.randn(mu.shape, generator=g).to(self.device)  # drawn on the CPU: the same on every device
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = (self.net.decode(z, y) - x).pow(2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss = recon + self.cfg.kl_weight * kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), "recon": float(recon.detach()), "kl": float(kl.detach())}

    def sampling_net(self) -> nn.Module:
        return self.net

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
