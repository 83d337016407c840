"""Reference classifier architectures (CPU-sized) used by `irob-bench train` and the quality checkers."""

from __future__ import annotations

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
        return self.net(x)
