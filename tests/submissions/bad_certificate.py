"""A certify() that returns floats instead of a bool tensor: refused before any attack runs."""

import torch
from torch import nn

from irob_bench.plugin import SubmissionMetadata

METADATA = SubmissionMetadata(
    name="toy-bad-certificate",
    authors=["irob-bench tests"],
    datasets=["mnist"],
    training="none (random init, seed 0)",
    description="Test fixture: certify() returns a float tensor.",
)


class FloatCertificate(nn.Sequential):
    def certify(self, x, y, eps):
        return torch.ones(len(x))


def load_model() -> nn.Module:
    torch.manual_seed(0)
    return FloatCertificate(nn.Flatten(), nn.Linear(784, 10))
