"""A valid toy submission: a tiny seeded linear model (no weights file)."""

import torch
from torch import nn

from irob_bench.plugin import SubmissionMetadata

METADATA = SubmissionMetadata(
    name="toy-linear",
    authors=["irob-bench tests"],
    datasets=["mnist"],
    training="none (random init, seed 0)",
    description="Test fixture.",
)


def load_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
