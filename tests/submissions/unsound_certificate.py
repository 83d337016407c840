"""An UNSOUND certificate (a test control): the toy linear model claiming every point certified at every eps."""

import torch
from torch import nn

from irob_bench.plugin import SubmissionMetadata

METADATA = SubmissionMetadata(
    name="toy-unsound-certificate",
    authors=["irob-bench tests"],
    datasets=["mnist"],
    training="none (random init, seed 0)",
    description="Test fixture: certify() says yes to everything.",
)


class AlwaysCertified(nn.Sequential):
    def certify(self, x, y, eps):
        return torch.ones(len(x), dtype=torch.bool)


def load_model() -> nn.Module:
    torch.manual_seed(0)
    return AlwaysCertified(nn.Flatten(), nn.Linear(784, 10))
