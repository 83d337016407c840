"""A randomized toy submission: a seeded linear model behind fresh Gaussian input noise on every forward pass."""

import torch
from torch import nn

from irob_bench.plugin import SubmissionMetadata

METADATA = SubmissionMetadata(name="toy-randomized", authors=["irob-bench tests"], datasets=["mnist"],
                              training="none (random init, seed 0)", randomized=True)


class NoisyLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1) + 0.05 * torch.randn_like(x.flatten(1)))


def load_model() -> nn.Module:
    torch.manual_seed(0)
    return NoisyLinear()
