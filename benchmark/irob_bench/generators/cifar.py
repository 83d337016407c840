"""A CPU-sized class-conditional ACGAN for 32x32 RGB images: the base generator of saturated-cifar."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ARCHITECTURE_ID = "acgan-cifar32-v1"


class CifarGenerator(nn.Module):
    """z ++ one-hot(y) -> 4x4 -> 8x8 -> 16x16 -> 32x32x3 image in [0, 1] (DCGAN-style transposed convolutions)."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.width = latent_dim, num_classes, width
        self.fc = nn.Sequential(nn.Linear(latent_dim + num_classes, 4 * width * 16), nn.BatchNorm1d(4 * width * 16), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from latents z and labels y."""
        onehot = F.one_hot(y.long(), self.num_classes).to(z.dtype)
        h = self.fc(torch.cat([z, onehot], dim=1)).view(-1, 4 * self.width, 4, 4)
        return (self.deconv(h) + 1) / 2


class CifarDiscriminator(nn.Module):
    """32x32x3 image -> (real/fake logit, class logits)."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1),
            nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.adv_head = nn.Linear(4 * width * 16, 1)
        self.cls_head = nn.Linear(4 * width * 16, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The real/fake logit and the class logits of images in [0, 1]."""
        h = self.features(x * 2 - 1)
        return self.adv_head(h).squeeze(1), self.cls_head(h)
