"""The ACGAN of docs/science.md §1: the conditional generator g(z, y) behind the mnist benchmark.

The generator follows the paper architecture exactly; the discriminator (only needed for
training) mirrors it with a real/fake head and a class head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ARCHITECTURE_ID = "acgan-mnist-v1"


class ACGANGenerator(nn.Module):
    """z ++ one-hot(y) -> 28x28x1 image in [0, 1]."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 10) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, 128 * 7 * 7),
            nn.BatchNorm1d(128 * 7 * 7),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from latents z and labels y."""
        onehot = F.one_hot(y.long(), self.num_classes).to(z.dtype)
        h = self.fc(torch.cat([z, onehot], dim=1)).view(-1, 128, 7, 7)
        return (self.deconv(h) + 1) / 2


class ACGANDiscriminator(nn.Module):
    """Image -> (real/fake logit, class logits)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, 1024),
            nn.BatchNorm1d(1024),
            nn.LeakyReLU(0.2),
        )
        self.adv_head = nn.Linear(1024, 1)
        self.cls_head = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The real/fake logit and the class logits of images in [0, 1]."""
        h = self.features(x * 2 - 1)
        return self.adv_head(h).squeeze(1), self.cls_head(h)
