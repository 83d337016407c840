"""A class-conditional ResNet GAN for 32x32 RGB (SNGAN-style): conditional-BatchNorm generator, projection discriminator.

Follows the descriptions of Miyato et al. 2018 (spectral normalisation), Miyato & Koyama 2018 (projection
discriminator) and Brock et al. 2019 (class-conditional BatchNorm); sized for a CPU by `width`."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

ARCHITECTURE_ID = "sngan-cifar32-v1"


def _glorot(module: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    """Xavier-uniform weights and zero bias (gain sqrt(2) inside residual branches, 1 elsewhere, as in SNGAN)."""
    nn.init.xavier_uniform_(module.weight, gain)
    nn.init.zeros_(module.bias)
    return module


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine map; the per-channel gain (1 + .) and bias are looked up by class."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Batch-normalised x with a gain and bias chosen by the labels y."""
        gain, bias = self.gain(y)[:, :, None, None], self.bias(y)[:, :, None, None]
        return self.norm(x) * (1 + gain) + bias


class UpBlock(nn.Module):
    """Residual block that doubles the resolution: CBN-ReLU-up-conv-CBN-ReLU-conv, plus up-conv1x1 shortcut."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(channels, num_classes), ConditionalBatchNorm(channels, num_classes)
        self.conv1 = _glorot(nn.Conv2d(channels, channels, 3, padding=1), math.sqrt(2))
        self.conv2 = _glorot(nn.Conv2d(channels, channels, 3, padding=1), math.sqrt(2))
        self.shortcut = _glorot(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The residual block at twice the resolution, normalised by the labels y."""
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class SNGANGenerator(nn.Module):
    """z (128) -> linear -> 4x4 -> three class-conditional residual up-blocks -> 32x32x3 image in [0, 1]."""

    def __init__(self, latent_dim: int = 128, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.width = latent_dim, num_classes, width
        self.fc = _glorot(nn.Linear(latent_dim, 16 * width))
        self.blocks = nn.ModuleList(UpBlock(width, num_classes) for _ in range(3))
        self.out_norm = nn.BatchNorm2d(width)
        self.out_conv = _glorot(nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from latents z and labels y."""
        y = y.long()
        h = self.fc(z).view(-1, self.width, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return (torch.tanh(self.out_conv(F.relu(self.out_norm(h)))) + 1) / 2


class DownBlock(nn.Module):
    """Spectrally normalised residual block: (ReLU-)conv-ReLU-conv(-avgpool), conv1x1(-avgpool) shortcut when needed.

    The first block (`first`) sees raw pixels, so it starts with a conv instead of a ReLU and pools before its
    shortcut conv (SNGAN's "optimized block")."""

    def __init__(self, in_channels: int, channels: int, *, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(_glorot(nn.Conv2d(in_channels, channels, 3, padding=1), math.sqrt(2)))
        self.conv2 = spectral_norm(_glorot(nn.Conv2d(channels, channels, 3, padding=1), math.sqrt(2)))
        needs_shortcut = down or in_channels != channels
        self.shortcut = spectral_norm(_glorot(nn.Conv2d(in_channels, channels, 1))) if needs_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual block, at half the resolution when it downsamples."""
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        skip = x
        if self.first:
            skip = self.shortcut(F.avg_pool2d(x, 2))
        elif self.shortcut is not None:
            skip = self.shortcut(x)
            skip = F.avg_pool2d(skip, 2) if self.down else skip
        return h + skip


class ProjectionDiscriminator(nn.Module):
    """Image in [0, 1] and class -> real/fake logit: psi(h) + <embed(y), h>, h = sum-pooled ReLU features."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            DownBlock(3, width, down=True, first=True),  # 16x16
            DownBlock(width, width, down=True),  # 8x8
            DownBlock(width, width, down=False),
            DownBlock(width, width, down=False),
        )
        self.linear = spectral_norm(_glorot(nn.Linear(width, 1)))
        embed = nn.Embedding(num_classes, width)
        nn.init.xavier_uniform_(embed.weight)
        self.embed = spectral_norm(embed)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h: the sum-pooled ReLU features of images in [0, 1] (what the score, and a class head, read)."""
        return F.relu(self.blocks(x * 2 - 1)).sum(dim=(2, 3))

    def score(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The real/fake logit of features h with class y."""
        return self.linear(h).squeeze(1) + (self.embed(y.long()) * h).sum(dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The projection discriminator's score of images x as class y."""
        return self.score(self.features(x), y)
