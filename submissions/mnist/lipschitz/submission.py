"""mnist lipschitz: a reference irob-bench submission written by `irob-bench train lipschitz`."""

from irob_bench.models import LipschitzMLP
from irob_bench.plugin import SubmissionMetadata, load_weights

METADATA = SubmissionMetadata(
    name='mnist-lipschitz-eps2',
    authors=["irob-bench maintainers"],
    datasets=['mnist'],
    training='Lipschitz-margin training (Tsuzuku et al.) of an orthonormal MaxMin MLP, eps=2',
    description='LipschitzMLP (width 256) trained for 10 epochs on 60000 generated mnist train points (seed 0).',
    paper_url='https://arxiv.org/abs/1802.04034',
    weights=["model.pt"],
)


def load_model():
    model = LipschitzMLP(in_features=784, num_classes=10, width=256)
    model.load_state_dict(load_weights(__file__, "model.pt"))
    return model
