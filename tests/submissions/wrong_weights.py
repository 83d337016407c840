from torch import nn

from irob_bench.plugin import SubmissionMetadata, load_weights

METADATA = SubmissionMetadata(
    name="wrong-weights", authors=["t"], datasets=["mnist"], training="none", weights=["wrong_weights.pt"]
)


def load_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    model.load_state_dict(load_weights(__file__, "wrong_weights.pt"))
    return model
