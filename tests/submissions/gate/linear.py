"""A linear classifier whose weights file sits beside this file (the gate tests copy it next to fitted weights)."""

from torch import nn

from irob_bench.plugin import SubmissionMetadata, load_weights

METADATA = SubmissionMetadata(
    name="gate-linear",
    authors=["irob-bench tests"],
    datasets=["gate-mnist"],
    training="nearest class mean on generated train images",
    description="Test fixture for irob-bench gate.",
    weights=["linear.pt"],
)


def load_model() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    model.load_state_dict(load_weights(__file__, "linear.pt"))
    return model
