"""The frozen benchmark distributions: cards, stored latents, hashes, builds and the datasets commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from irob_bench import datasets
from irob_bench.artifacts import read_npz, write_npz
from irob_bench.cli import main
from irob_bench.datasets.build import build_split, verify
from irob_bench.datasets.frozen import sample_latents, tensor_sha256
from irob_bench.errors import IrobError

from .conftest import SHARED_DATA


def test_mnist_is_shipped_with_a_complete_card():
    assert "mnist" in datasets.available()
    card = datasets.load_card("mnist")
    test = card.splits["test"]
    assert (card.latent_dim, card.image_shape, card.num_classes) == (100, (1, 28, 28), 10)
    assert card.eps_grid == [1.0, 2.0, 3.0] and card.threat_model == "L2"
    assert (card.splits["train"].size, test.size) == (60_000, 10_000)
    assert card.priors == [0.1] * 10
    for digest in (card.generator.weights_sha256, test.latents_sha256, test.labels_sha256, test.images_sha256):
        assert digest is not None and len(digest) == 64


def test_api_shapes_ranges_and_frozen_generator():
    data = datasets.load("mnist")
    assert data.latents("test").shape == (10_000, 100)
    assert data.labels("test").dtype == torch.int64
    images = data.images("test", indices=[0, 5, 9_999])
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    gen = data.generator
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())


def test_stored_test_latents_are_the_seeded_draw():
    data = datasets.load("mnist")
    test = data.card.splits["test"]
    z, y = sample_latents(test.seed, test.size, data.card.latent_dim, data.card.priors)
    assert torch.equal(z, data.latents("test")) and torch.equal(y, data.labels("test"))
    assert tensor_sha256(z) == test.latents_sha256


def test_train_split_is_regenerated_from_its_own_seed():
    data = datasets.load("mnist")
    z1, z2 = data.latents("train"), data.latents("train")
    assert z1.shape == (60_000, 100) and torch.equal(z1, z2)
    assert not torch.equal(z1[:10_000], data.latents("test"))
    counts = np.bincount(data.labels("train").numpy(), minlength=10)
    assert counts.min() > 5_500 and counts.max() < 6_500  # i.i.d. uniform prior


def test_verify_passes_on_the_shipped_mnist():
    checks = verify(datasets.load("mnist"))
    assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_two_builds_are_byte_identical(random_mnist, tmp_path):
    first = build_split(random_mnist, "test", tmp_path / "a")
    second = build_split(random_mnist, "test", tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    arrays = read_npz(first)
    assert arrays["images"].shape == (256, 1, 28, 28) and arrays["latents"].shape == (256, 100)
    assert tensor_sha256(torch.from_numpy(arrays["images"])) == random_mnist.card.splits["test"].images_sha256


def _copy_card(dataset, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(dataset.root, root)
    return root


def test_corrupted_weights_fail_with_hash_mismatch(random_mnist, tmp_path, capsys):
    root = _copy_card(random_mnist, tmp_path)
    weights = root / random_mnist.card.generator.weights_file
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IrobError, match="hash mismatch"):
        _ = datasets.load(root).generator
    assert main(["datasets", "verify", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  generator weights" in out and "generator weights" in err


def test_verify_names_a_tampered_latent_file(random_mnist, tmp_path, capsys):
    root = _copy_card(random_mnist, tmp_path)
    arrays = read_npz(root / "test_latents.npz")
    arrays["latents"][0, 0] += 1.0
    write_npz(root / "test_latents.npz", arrays)
    assert main(["datasets", "verify", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  stored latents = seed" in out and "test latents hash" in err and "test labels hash" not in err


def test_unknown_dataset_is_one_clear_line(capsys):
    assert main(["datasets", "show", "no-such-data"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown dataset 'no-such-data'" in err and "mnist" in err


def test_show_and_list(capsys):
    assert main(["datasets", "list"]) == 0
    assert "mnist" in capsys.readouterr().out
    assert main(["datasets", "show", "mnist"]) == 0
    out = capsys.readouterr().out
    assert "acgan-mnist-v1" in out and "10000 points" in out
    assert main(["datasets", "show", "mnist", "--json"]) == 0
    assert datasets.DatasetCard.model_validate_json(capsys.readouterr().out) == datasets.load_card("mnist")


def test_build_writes_nothing_partial_on_failure(random_mnist, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", explode)
    with pytest.raises(RuntimeError):
        build_split(random_mnist, "test", out)
    assert list(out.iterdir()) == []


def test_training_needs_its_data_directory(tmp_path, capsys):
    code = main(["generators", "train", "mnist", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "g")])
    assert code == 2
    assert "MNIST data directory not found" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_generator_training_runs_and_writes_loadable_weights(tmp_path, monkeypatch):
    """One tiny epoch on a slice of real MNIST: the trainer wires up end to end and is seeded."""
    import dataclasses

    from irob_bench.generators import train as train_module

    recipe = train_module.RECIPES["mnist"]

    def small(data_dir, split="train"):
        x, y = recipe.load(data_dir, split)
        return x[:256], y[:256]

    monkeypatch.setitem(train_module.RECIPES, "mnist", dataclasses.replace(recipe, load=small))
    first = train_module.train_generator("mnist", SHARED_DATA / "mnist", tmp_path / "a", epochs=1, batch_size=64, seed=3, quiet=True)
    second = train_module.train_generator("mnist", SHARED_DATA / "mnist", tmp_path / "b", epochs=1, batch_size=64, seed=3, quiet=True)
    assert first.weights_sha256 == second.weights_sha256 and first.train_images == 256
    real_only = train_module.train_generator(
        "mnist", SHARED_DATA / "mnist", tmp_path / "c", epochs=1, batch_size=64, seed=3, fake_class_weight=0.0, quiet=True
    )
    assert real_only.fake_class_weight == 0.0 and first.fake_class_weight == 1.0
    assert real_only.weights_sha256 != first.weights_sha256, "D's class loss on fakes must change the training"
    state = torch.load(tmp_path / "a" / "generator.pt", weights_only=True)
    assert state["fc.0.weight"].dtype == torch.float16


def test_images_check_tolerates_float_noise_but_not_a_changed_generator():
    from irob_bench.datasets.build import images_check
    from irob_bench.datasets.card import SplitSpec
    from irob_bench.datasets.frozen import image_signature, tensor_sha256

    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28)
    test = SplitSpec(size=64, seed=0, images_sha256=tensor_sha256(images), images_signature=image_signature(images))
    exact = images_check(images, test)
    assert exact.ok and "bytes identical" in exact.detail
    noisy = images_check(images + 1e-6 * torch.randn_like(images), test)
    assert noisy.ok and "bytes differ" in noisy.detail, "float noise of another CPU or build passes"
    changed = images_check((images * 1.01).clamp(0, 1), test)
    assert not changed.ok, "control: a 1% change of the generator's output fails"
    legacy = SplitSpec(size=64, seed=0, images_sha256=test.images_sha256)
    assert images_check(images, legacy).ok and not images_check(images + 1e-6, legacy).ok, "no signature: bytes decide"


def test_preview_refuses_more_per_class_than_the_smallest_class_has(tmp_path, capsys):
    """1,100 per class on mnist (smallest class 951) wrote rows that spilled into the next class's row, unsaid.
    Control: test_preview writes a grid."""
    from irob_bench.cli import main

    out = tmp_path / "grid.png"
    assert main(["datasets", "preview", "mnist", "--out", str(out), "--per-class", "1100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the smallest class of mnist has 951 test images" in err and not out.exists()


def test_verify_takes_several_cards_and_fails_if_any_fails(random_mnist, tmp_path, capsys):
    good = _copy_card(random_mnist, tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    arrays = read_npz(bad / "test_latents.npz")
    arrays["latents"][0, 0] += 1.0
    write_npz(bad / "test_latents.npz", arrays)
    assert main(["datasets", "verify", str(good), str(good)]) == 0  # control: one card twice passes
    assert capsys.readouterr().out.count("checks passed") == 1  # named once, verified once
    assert main(["datasets", "verify", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "checks passed" in out and "FAIL  stored latents = seed" in out and "verify failed" in err


def test_verify_glob_matching_nothing_is_one_clear_line(capsys):
    assert main(["datasets", "verify", "no-such-*"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no dataset matches 'no-such-*'" in err and "saturated-cifar-p8" in err
