"""saturated-cifar-p64 pgd: a reference irob-bench submission written by `irob-bench train pgd`."""

from irob_bench.models import SmallCNN
from irob_bench.plugin import SubmissionMetadata, load_weights

METADATA = SubmissionMetadata(
    name='saturated-cifar-p64-pgd-eps0.5',
    authors=["irob-bench maintainers"],
    datasets=['saturated-cifar-p64'],
    training='PGD-L2 adversarial training (Madry et al.), eps=0.5, 7 steps',
    description='SmallCNN (width 32) trained for 8 epochs on 50000 generated saturated-cifar-p64 train points (seed 0).',
    paper_url='https://arxiv.org/abs/1706.06083',
    weights=["model.pt"],
)


def load_model():
    model = SmallCNN(in_channels=3, num_classes=10, image_size=32, width=32)
    model.load_state_dict(load_weights(__file__, "model.pt"))
    return model
