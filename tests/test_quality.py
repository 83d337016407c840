"""Generator quality: a CNN trained on real MNIST recognises the generated test images' labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from irob_bench import datasets
from irob_bench.errors import IrobError
from irob_bench.generators.quality import frechet_distance, label_agreement, load_checker, real_accuracy
from irob_bench.generators.real_mnist import load_real_mnist

from .conftest import SHARED_DATA


@pytest.fixture(scope="module")
def mnist_checker():
    return load_checker(datasets.load("mnist"))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_checker_is_a_real_mnist_classifier(mnist_checker):
    images, labels = load_real_mnist(SHARED_DATA / "mnist", "test")
    assert real_accuracy(mnist_checker, images, labels) >= 0.98


def test_generated_test_set_agrees_with_its_labels(mnist_checker):
    result = label_agreement(datasets.load("mnist"), mnist_checker)
    assert result.n == 10_000
    assert result.agreement >= 0.95, result
    assert min(result.per_class) >= 0.85, result.per_class


def test_checker_is_not_fooled_by_a_random_generator(random_mnist, mnist_checker):
    """Control: the agreement check can fail; a random-weight generator's images are not recognised."""
    assert label_agreement(random_mnist, mnist_checker).agreement < 0.5


def test_flip_and_shift_only_flips_and_translates() -> None:
    from irob_bench.reference.training import flip_and_shift

    x = torch.rand(16, 3, 32, 32)
    same_place = flip_and_shift(x, torch.Generator().manual_seed(0), max_shift=0)
    for original, out in zip(x, same_place):
        assert torch.equal(out, original) or torch.equal(out, original.flip(2))
    shifted = flip_and_shift(x, torch.Generator().manual_seed(0), max_shift=4)
    assert shifted.shape == x.shape
    assert not torch.equal(shifted, same_place), "some image must move"
    pixels = set(x.flatten().tolist()) | {0.0}
    assert set(shifted.flatten().tolist()) <= pixels, "nearest sampling copies pixels, it never blends them"


def test_generators_refuse_width_for_the_fixed_mnist_generator(tmp_path, capsys) -> None:
    from irob_bench.cli import main

    assert main(["generators", "train", "mnist", "--width", "8", "--out", str(tmp_path / "g")]) == 2
    assert "fixed width" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="needs ../shared/data/cifar10")
@pytest.mark.parametrize("architecture", [[], ["--architecture", "resnet9", "--width", "4", "--optimizer", "sgd"]])
def test_checker_command_trains_with_augmentation_and_reports_real_accuracy(
    tmp_path, monkeypatch, capsys, architecture
) -> None:
    """`generators checker cifar --augment` on a slice of real CIFAR-10: writes loadable weights (with their
    architecture), prints real accuracy."""
    from irob_bench.cli import main
    from irob_bench.generators import train as train_module
    from irob_bench.generators.quality import load_checker_file

    recipe = train_module.RECIPES["cifar"]

    def small(data_dir, split="train"):
        x, y = recipe.load(data_dir, split)
        return x[::50], y[::50]

    monkeypatch.setitem(train_module.RECIPES, "cifar", dataclasses.replace(recipe, load=small))
    out = tmp_path / "checker.pt"
    args = ["generators", "checker", "cifar", "--data", str(SHARED_DATA / "cifar10"), "--out", str(out), "--epochs", "1"]
    assert main([*args, *architecture, "--augment", "--quiet"]) == 0
    assert "real cifar test accuracy" in capsys.readouterr().out
    checker = load_checker_file(out, 3, 32)
    assert checker(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_frechet_distance_matches_the_closed_form_for_gaussians() -> None:
    """N(0, I) vs N(m, 4 I) in d dimensions: ||m||^2 + d (1 + 4 - 2 * 2) = ||m||^2 + d."""
    rng = np.random.default_rng(0)
    d, m = 8, np.full(8, 0.5)
    a = rng.normal(size=(200_000, d))
    b = m + 2 * rng.normal(size=(200_000, d))
    assert frechet_distance(a, b) == pytest.approx(float(m @ m) + d, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    dead = np.hstack([a, np.zeros((len(a), 3))])  # constant features make the covariance singular
    assert frechet_distance(dead, dead) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_generators_quality_reports_agreement_and_a_frechet_distance_above_the_real_floor(capsys) -> None:
    import json

    from irob_bench.cli import main

    assert main(["generators", "quality", "mnist", "--data", str(SHARED_DATA / "mnist"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agreement"]["agreement"] >= 0.95
    assert report["fidelity"]["n"] == 5_000
    assert report["fidelity"]["generated"] > report["fidelity"]["real_floor"] > 0


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_generators_quality_hardness_is_the_written_references_clean_accuracy(capsys, tmp_path) -> None:
    """--hardness trains the standard reference on generated train points and reports its clean test accuracy: the
    number is the written model's own (recomputed here), and it tells a trained model from an untrained one."""
    import json

    import torch

    from irob_bench import datasets
    from irob_bench.cli import main
    from irob_bench.models import SmallCNN
    from irob_bench.reference.training import accuracy

    ref = tmp_path / "ref"
    args = ["generators", "quality", "mnist", "--data", str(SHARED_DATA / "mnist"), "--json", "--quiet",
            "--hardness", str(ref), "--hardness-epochs", "1", "--hardness-train-points", "2000"]  # fmt: skip
    assert main(args) == 0
    hardness = json.loads(capsys.readouterr().out)["hardness"]
    assert (hardness["epochs"], hardness["train_points"], hardness["seed"]) == (1, 2000, 0)
    data = datasets.load("mnist")
    x, y = data.generate(data.latents("test"), data.labels("test")), data.labels("test")
    model = SmallCNN(in_channels=1, num_classes=10, image_size=28)
    torch.manual_seed(0)
    untrained = accuracy(model, x, y)  # control: what a model that learned nothing scores
    model.load_state_dict(torch.load(ref / "model.pt"))
    assert hardness["clean_accuracy"] == pytest.approx(accuracy(model, x, y), abs=1e-4)
    assert hardness["clean_accuracy"] > untrained + 0.3


def test_generators_quality_hardness_into_a_file_is_refused_before_any_work(capsys, tmp_path) -> None:
    from irob_bench.cli import main

    taken = tmp_path / "model.pt"
    taken.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main(["generators", "quality", "mnist", "--hardness", str(taken)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "is a file" in err and err.count("\n") == 1


def test_quality_finds_the_real_data_of_every_shipped_generator_architecture() -> None:
    """`generators quality` compares with the real data a generator learned: the SNGAN (trained by its own command)
    with CIFAR-10's, like the ACGAN it replaces; an architecture nobody trained on real data is refused by name."""
    from irob_bench.generators import acgan, biggan, cifar, sngan
    from irob_bench.generators.train import RECIPES, real_data_for

    assert real_data_for(sngan.ARCHITECTURE_ID) is RECIPES["cifar"].load
    assert real_data_for(cifar.ARCHITECTURE_ID) is RECIPES["cifar"].load
    assert real_data_for(acgan.ARCHITECTURE_ID) is RECIPES["mnist"].load
    with pytest.raises(IrobError, match="no real data known for generator architecture 'biggan-deep-128-imagenet10-v1'"):
        real_data_for(biggan.ARCHITECTURE_ID)


def test_generators_quality_refuses_a_missing_real_data_folder_before_generating(capsys, tmp_path, monkeypatch) -> None:
    """A wrong --data was found after generating and scoring the 10,000 test images. Control: the quality test above
    reads the real data and reports."""
    from irob_bench.cli import main
    from irob_bench.datasets.distribution import BenchmarkDataset

    def no_images(*_args, **_kwargs):
        raise AssertionError("the test images were generated")

    monkeypatch.setattr(BenchmarkDataset, "generate", no_images)
    assert main(["generators", "quality", "mnist", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data directory not found" in err, err


@pytest.mark.parametrize("bad", ["cifar_checker", "not_torch", "missing"])
def test_a_checker_file_that_does_not_fit_is_one_line(bad, tmp_path, capsys):
    """A wrong checker (CIFAR's for mnist), a file that is not torch's, or none: one line and exit 2 (each was a
    traceback and 'internal error'). Control: the shipped checker loads."""
    from irob_bench.cli import main

    path = {"cifar_checker": datasets.DATA_DIR / "cifar-generator" / "checker.pt",
            "not_torch": tmp_path / "checker.pt", "missing": tmp_path / "none.pt"}[bad]
    if bad == "not_torch":
        path.write_text("not a checker")
    with pytest.raises(IrobError, match="not a checker for 1x28x28 images and 10 classes"):
        load_checker(datasets.load("mnist"), path)
    assert main(["generators", "quality", "mnist", "--checker", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a checker" in err, err
    assert load_checker(datasets.load("mnist")) is not None
