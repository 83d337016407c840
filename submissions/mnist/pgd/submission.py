"""mnist pgd: a reference irob-bench submission written by `irob-bench train pgd`."""

from irob_bench.models import SmallCNN
from irob_bench.plugin import SubmissionMetadata, load_weights

METADATA = SubmissionMetadata(
    name='mnist-pgd-eps3',
    authors=["irob-bench maintainers"],
    datasets=['mnist'],
    training='PGD-L2 adversarial training (Madry et al.), eps=3, 7 steps',
    description='SmallCNN (width 32) trained for 6 epochs on 60000 generated mnist train points (seed 0).',
    paper_url='https://arxiv.org/abs/1706.06083',
    weights=["model.pt"],
)


def load_model():
    model = SmallCNN(in_channels=1, num_classes=10, image_size=28, width=32)
    model.load_state_dict(load_weights(__file__, "model.pt"))
    return model
