"""The drafts of the shipped benchmark distributions: what is chosen by hand before `freeze` adds hashes."""

from __future__ import annotations

from collections.abc import Callable

from irob_bench.datasets.card import DatasetCard, GeneratorSpec, SplitSpec
from irob_bench.generators import biggan, sngan
from irob_bench.generators.acgan import ARCHITECTURE_ID as ACGAN_ID
from irob_bench.registry import Registry

MNIST_CLASSES = [str(d) for d in range(10)]


def mnist_draft() -> DatasetCard:
    """Generated MNIST: the ACGAN of docs/science.md §1, trained by `irob-bench generators train mnist`."""
    return DatasetCard(
        name="mnist",
        version="1.1.0",
        description="Generated MNIST: ACGAN (paper architecture) trained on real MNIST; images (tanh+1)/2 in [0,1].",
        generator=GeneratorSpec(architecture=ACGAN_ID, kwargs={"latent_dim": 100, "num_classes": 10}, weights_file="generator.pt"),
        latent_dim=100,
        classes=MNIST_CLASSES,
        priors=[0.1] * 10,
        image_shape=(1, 28, 28),
        eps_grid=[1.0, 2.0, 3.0],
        reference_alpha=0.015,
        splits={"train": SplitSpec(size=60_000, seed=20261121), "test": SplitSpec(size=10_000, seed=20261122)},
    )


def imagenet10_draft() -> DatasetCard:
    """imagenet10: pretrained BigGAN-deep-128 on 10 ImageNet classes mirroring CIFAR-10, 32x32 (docs/science.md §1)."""
    ids = ", ".join(f"{name} {i}" for name, i in zip(biggan.CLASS_NAMES, biggan.IMAGENET_CLASSES))
    return DatasetCard(
        name="imagenet10",
        version="1.0.0",
        description="BigGAN-deep-128 (pytorch-pretrained-biggan) on 10 CIFAR-10-like ImageNet classes, truncation 1, "
        "(x+1)/2 area-pooled 128->32.",
        generator=GeneratorSpec(
            architecture=biggan.ARCHITECTURE_ID, kwargs={"downsample": "area", "image_size": 32}, weights_dtype="float32"
        ),
        latent_dim=128,
        classes=list(biggan.CLASS_NAMES),
        priors=[0.1] * 10,
        image_shape=(3, 32, 32),
        eps_grid=[1.0, 2.0, 3.0],
        reference_alpha=0.15,
        splits={"train": SplitSpec(size=50_000, seed=20261123), "test": SplitSpec(size=10_000, seed=20261124)},
        generation_batch_size=50,
        notes={
            "imagenet classes": ids,
            "sampling": "z ~ N(0, I_128) untruncated (truncation 1.0); image = clamp((x + 1) / 2, 0, 1) of the 128x128 "
            "output, downsampled to 32x32 by area pooling (4x4 means, antialiased; the reference used nearest, "
            "generator kwarg downsample='nearest')",
            "weights": f"not shipped: the generator loads pytorch_model.bin + config.json from ${biggan.WEIGHTS_ENV}, "
            "else from <IROB_BENCH_CACHE or ~/.cache/irob-bench>/biggan (downloaded by pytorch-pretrained-biggan); "
            "see docs/imagenet10.md",
            "cost": "22.6 GFLOP per image: generating the 10,000 test images (freeze, verify) runs on the CPU because the "
            "images hash is defined by CPU float32 output; measured 1-3 s/image on a 2-core machine shared with another "
            "job (3-8 h), estimated 10-30 min on a free 16-core workstation; peak memory ~2.3 GB at the generation "
            "batch of 50 (a batch of 500 would need ~23 GB)",
        },
    )


IMAGENET10_PENDING = (
    "test images sha256 and generator weights sha256 are null: this card was made where the BigGAN-deep-128 weights "
    "were unavailable. To complete it, obtain them (docs/imagenet10.md) and run `irob-bench datasets freeze imagenet10 "
    "--weights <folder with pytorch_model.bin and config.json>` (hashes the weights, regenerates the 10,000 test images "
    "on the CPU, see cost), `irob-bench datasets verify imagenet10` (same cost), then `irob-bench lipschitz estimate "
    "imagenet10 --method gradient --write` and `--method sampling --write` (CPU hours to days: docs/imagenet10.md)"
)


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SATURATION_LEVELS = ["2", "4", "8", "16", "64", "inf"]
SHARED_CIFAR = "../cifar-generator"
# sigma_max of the exact Jacobian of s_p o g at 200 anchors of class cat (seed 1): median / 0.99 quantile / max.
# Measured on v1.0's SNGAN (2026-12-06; no anchor of 200 infinite at these levels).
SATURATED_SLOPES: dict[str, str] = {
    "4": "46 / 219 / 271", "8": "113 / 2,642 / 2,829", "16": "148 / 6,521 / 7,289", "64": "78 / 5,396 / 6,544",
}


def saturated_ceiling_note(p: str) -> dict[str, str]:
    """Why a level has no ceiling (p = inf, and p > 2 where the slope's tail is dominated by pixels at 1/2)."""
    if p == "inf":
        return {"ceiling": "not established: s_p at p = inf (binarisation) is not Lipschitz"}
    if p == "2":
        return {}
    measured = (
        f" (sigma_max of its Jacobian, median / 0.99 quantile / max over 200 anchors of class cat: {SATURATED_SLOPES[p]})"
        if p in SATURATED_SLOPES else ""
    )
    return {
        "ceiling": f"not established: s_{p} has an infinite slope at a pixel value of 1/2, and within a latent ball some "
        f"pixel can almost always be pushed across 1/2; the exact local slope of s_{p} o g{measured} has a tail "
        "dominated by pixels at 1/2, so no finite (1 - delta)-local constant is established"
    }


def saturated_cifar_draft(p: str) -> DatasetCard:
    """saturated-cifar-p{p}: our CIFAR-10 SNGAN composed with the saturation map s_p (docs/science.md §1, Ding et al.).

    Every level shares one generator file and one set of test latents (in datasets/cifar-generator/).
    """
    return DatasetCard(
        name=f"saturated-cifar-p{p}",
        version="1.0.0",
        description=f"CIFAR-10-like images from a class-conditional SNGAN trained on real CIFAR-10, through the "
        f"saturation map s_p, p = {p}" + (" (binarisation: an evaluation variant, not Lipschitz)" if p == "inf" else ""),
        generator=GeneratorSpec(
            architecture=sngan.ARCHITECTURE_ID,
            kwargs={"latent_dim": 128, "num_classes": 10, "width": 64},
            weights_file=f"{SHARED_CIFAR}/generator.pt",
            output_transform={"saturation_p": p},
        ),
        latent_dim=128,
        classes=CIFAR_CLASSES,
        priors=[0.1] * 10,
        image_shape=(3, 32, 32),
        eps_grid=[0.25, 0.5, 1.0],
        reference_alpha=0.01,  # no paper value here; the per-class risk of classifiers that fit this data
        splits={
            "train": SplitSpec(size=50_000, seed=20261123),
            "test": SplitSpec(size=10_000, seed=20261124, latents_file=f"{SHARED_CIFAR}/test_latents.npz"),
        },
        notes={
            "eps grid": "L2 eps 0.25 / 0.5 / 1.0: the usual CIFAR-10 L2 radii (0.5 is RobustBench's)",
            "generator": "SNGAN-style ResNet generator (0.38M parameters) with a projection discriminator and a class "
            "head that learns from real images only, 28,000 iterations on real CIFAR-10, EMA weights (docs/saturation.md)",
            "quality": "a real-CIFAR ResNet-9 checker (90.61% on real test images) agrees with 83.29% of the p = 2 test "
            "labels, every class at least 60.95% (cat); checker Frechet distance 5.14 at n = 5,000 (v0.4: 62.5%, "
            "32.1%, 19.0)",
            "hardness": "not met: the standard reference trained on the generated train split scores 99.94% clean at "
            "p = 2 (the gate asks at most 97%); GAN samples at this scale are easier to separate than real CIFAR-10",
            **saturated_ceiling_note(p),
        },
    )


DRAFTS: Registry[Callable[[], DatasetCard]] = Registry("dataset draft")
"""Dataset name -> its draft card (what `irob-bench datasets freeze NAME` freezes)."""
DRAFTS.add("mnist", mnist_draft)
DRAFTS.add("imagenet10", imagenet10_draft)
for _p in SATURATION_LEVELS:
    DRAFTS.add(f"saturated-cifar-p{_p}", lambda p=_p: saturated_cifar_draft(p))
