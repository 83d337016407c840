"""Reference classifier architectures (CPU-sized) used by `irob-bench train` and the quality checkers."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """A LeNet-sized CNN for 28x28 or 32x32 images in [0, 1]: three convs and two linear layers."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 32) -> None:
        super().__init__()
        side = (image_size + 3) // 4
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x):
        """Logits of images x."""
        return self.net(x)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class _Residual(nn.Module):
    """x + two conv-BN-ReLU blocks of x."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(channels, channels), _conv_bn_relu(channels, channels))

    def forward(self, x):
        """x plus the block's output."""
        return x + self.body(x)


class ResNet9(nn.Module):
    """The DAWNBench ResNet-9 layout (prep, three stages, two residual blocks) at `width` channels in the prep layer
    (the original has 64): at width 16 (0.4M parameters) a real-CIFAR-10 checker that is accurate and CPU-trainable."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: int = 16) -> None:
        super().__init__()
        del image_size  # global pooling: any input size
        w = width
        self.net = nn.Sequential(
            _conv_bn_relu(in_channels, w),
            _conv_bn_relu(w, 2 * w),
            nn.MaxPool2d(2),
            _Residual(2 * w),
            _conv_bn_relu(2 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv_bn_relu(4 * w, 8 * w),
            nn.MaxPool2d(2),
            _Residual(8 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(8 * w, num_classes),
        )

    def forward(self, x):
        """Logits of images x."""
        return self.net(x)


class MaxMin(nn.Module):
    """GroupSort with groups of two (Anil et al. 2019): channel pairs (a_i, b_i) -> (max, min).

    It sorts each pair, so it is 1-Lipschitz in L2 and, unlike ReLU, preserves the gradient norm."""

    def forward(self, x):
        """The channel pairs sorted (max, min): a 1-Lipschitz, gradient-norm-preserving activation."""
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)


class LipschitzMLP(nn.Sequential):
    """Flatten, then `depth` hidden Linear+MaxMin layers of `width`, then a Linear head: a plain Sequential the
    benchmark's certifier can bound layer by layer; `irob-bench train lipschitz` makes its weights orthonormal."""

    def __init__(self, in_features: int = 784, num_classes: int = 10, width: int = 256, depth: int = 3) -> None:
        if width % 2:
            raise ValueError(f"width must be even for MaxMin, got {width}")
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width), MaxMin()]
        super().__init__(*layers, nn.Linear(width, num_classes))
