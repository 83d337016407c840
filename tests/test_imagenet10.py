"""imagenet10: the BigGAN wrapper, weight resolution, the shipped card, and the pipeline on a tiny random BigGAN."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig, file_utils
from torch.nn import functional as F

from irob_bench import datasets
from irob_bench.artifacts import read_npz, sha256_file
from irob_bench.cli import main
from irob_bench.datasets.build import freeze, freeze_latents
from irob_bench.datasets.card import SplitSpec
from irob_bench.datasets.drafts import IMAGENET10_PENDING, imagenet10_draft
from irob_bench.datasets.frozen import sample_latents, tensor_sha256
from irob_bench.errors import IrobError
from irob_bench.generators import biggan
from tests.factories import apgd_stages

TEST_SIZE = 64
TINY_SIDE = 32  # the tiny BigGAN's output side (4x4 -> 3 upsampling blocks), already the card's 32x32


def tiny_biggan(seed: int = 0, lanczos_steps: int = 50) -> BigGAN:
    """A randomly initialised BigGAN-deep with the real class count (1000) and latent size (128), but 4 channels."""
    config = BigGANConfig(
        output_dim=TINY_SIDE,
        channel_width=4,
        layers=[(False, 16, 8), (True, 8, 4), (True, 4, 2), (True, 2, 1)],
        attention_layer_position=2,
        n_stats=51,
    )
    torch.manual_seed(seed)
    model = BigGAN(config).eval()
    with torch.no_grad():  # what a trained checkpoint holds: a set final BN and converged spectral-norm vectors
        model.generator.bn.weight.fill_(1.0)
        model.generator.bn.bias.zero_()
        for module in model.modules():
            if hasattr(module, "weight_orig"):
                matrix = module.weight_orig.flatten(1)
                for _ in range(lanczos_steps):
                    module.weight_u.copy_(F.normalize(matrix @ module.weight_v, dim=0))
                    module.weight_v.copy_(F.normalize(matrix.T @ module.weight_u, dim=0))
    return model


def save_biggan(model: BigGAN, folder: Path) -> Path:
    """Write the two files BigGAN.from_pretrained reads from a folder."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / biggan.WEIGHTS_NAME)
    (folder / biggan.CONFIG_NAME).write_text(model.config.to_json_string())
    return folder


@pytest.fixture(scope="module")
def tiny() -> BigGAN:
    return tiny_biggan()


@pytest.fixture(scope="module")
def weights_dir(tiny: BigGAN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_biggan(tiny, tmp_path_factory.mktemp("biggan") / "tiny")


@pytest.fixture(scope="module")
def card_root(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The imagenet10 draft with a 64-point test split, frozen against the tiny BigGAN."""
    draft = imagenet10_draft().model_copy(
        update={"splits": {"train": SplitSpec(size=128, seed=1), "test": SplitSpec(size=TEST_SIZE, seed=2)}}
    )
    root = tmp_path_factory.mktemp("imagenet10") / "imagenet10"
    freeze(draft, root, weights_dir)
    return root


@pytest.fixture
def use_weights(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(biggan.WEIGHTS_ENV, str(weights_dir))
    return weights_dir


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No weights variable, a fresh download cache, and a network that refuses every download."""

    def refuse(url, cache_dir=None):
        raise requests.exceptions.ConnectionError(f"no route to host for {url}")

    monkeypatch.delenv(biggan.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("IROB_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(file_utils, "cached_path", refuse)
    return tmp_path / "biggan"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


# --- the wrapper: class mapping, output range, downsampling ---------------------------------------------------


def test_labels_select_the_science_md_imagenet_classes(tiny):
    net = biggan.ImageNet10BigGAN(tiny)
    vectors = net.class_vectors(torch.arange(10))
    assert vectors.shape == (10, 1000) and torch.equal(vectors.sum(1), torch.ones(10))
    assert vectors.argmax(1).tolist() == [404, 609, 11, 281, 351, 153, 30, 339, 724, 717]
    assert net.class_vectors(torch.tensor([3])).argmax().item() == 281


def test_label_3_generates_tabby_cat_through_biggan(tiny):
    model = tiny
    net = biggan.ImageNet10BigGAN(model, image_size=TINY_SIDE)  # no resizing: the raw BigGAN image, rescaled
    z = torch.randn(4, 128, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = net(z, torch.full((4,), 3))
        cat = model(z, F.one_hot(torch.full((4,), 281), 1000).float(), 1.0)
        lynx = model(z, F.one_hot(torch.full((4,), 282), 1000).float(), 1.0)
    assert torch.equal(ours, ((cat + 1) / 2).clamp(0, 1))
    assert not torch.allclose(ours, ((lynx + 1) / 2).clamp(0, 1))


def test_downsampling_modes(tiny):
    """Halving the side here stands for the real 4x (128 -> 32): area = block means, nearest = every k-th pixel."""
    model, side = tiny, TINY_SIDE // 2
    z, y = torch.randn(3, 128, generator=torch.Generator().manual_seed(6)), torch.tensor([0, 4, 9])
    with torch.no_grad():
        full = biggan.ImageNet10BigGAN(model, image_size=TINY_SIDE)(z, y)
        area = biggan.ImageNet10BigGAN(model, downsample="area", image_size=side)(z, y)
        nearest = biggan.ImageNet10BigGAN(model, downsample="nearest", image_size=side)(z, y)
    assert area.shape == nearest.shape == (3, 3, side, side)
    torch.testing.assert_close(area, F.avg_pool2d(full, 2))
    assert torch.equal(nearest, full[..., ::2, ::2])
    assert not torch.allclose(area, nearest)
    for x in (area, nearest):
        assert x.min() >= 0 and x.max() <= 1
    with pytest.raises(IrobError, match="downsample must be 'area' or 'nearest'"):
        biggan.ImageNet10BigGAN(model, downsample="bilinear")


# --- weight resolution ------------------------------------------------------------------------------------------


def test_missing_weights_folder_is_one_line_naming_both_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(biggan.WEIGHTS_ENV, str(tmp_path / "empty"))
    assert main(["datasets", "verify", "imagenet10"]) == 2
    err = _one_line_error(capsys)
    assert f"{biggan.WEIGHTS_ENV}={tmp_path / 'empty'} lacks pytorch_model.bin and config.json" in err
    weights_url, config_url = biggan.pretrained_urls()
    assert weights_url in err and config_url in err and f"set {biggan.WEIGHTS_ENV}=" in err


def test_failed_download_is_one_line_and_names_the_cause(offline_cache, capsys):
    assert main(["datasets", "verify", "imagenet10"]) == 2
    err = _one_line_error(capsys)
    assert f"{biggan.WEIGHTS_ENV} is not set and the download into {offline_cache} failed" in err
    assert "ConnectionError: no route to host" in err and "as pytorch_model.bin" in err and "as config.json" in err


def test_a_previous_download_in_the_cache_is_used_offline(offline_cache, weights_dir):
    offline_cache.mkdir(parents=True)
    weights_url, config_url = biggan.pretrained_urls()
    for url, name in ((weights_url, biggan.WEIGHTS_NAME), (config_url, biggan.CONFIG_NAME)):
        cached = offline_cache / file_utils.url_to_filename(url, etag='"some-etag"')
        shutil.copyfile(weights_dir / name, cached)
        Path(f"{cached}.json").write_text(json.dumps({"url": url, "etag": '"some-etag"'}))
    files = biggan.find_weights()
    assert files.weights.read_bytes() == (weights_dir / biggan.WEIGHTS_NAME).read_bytes()
    assert biggan.weights_sha256() == sha256_file(weights_dir / biggan.WEIGHTS_NAME)
    assert isinstance(biggan.load_imagenet10_biggan(), biggan.ImageNet10BigGAN)


def test_weights_that_do_not_fit_the_config_are_refused(weights_dir, tmp_path):
    folder = tmp_path / "mismatch"
    shutil.copytree(weights_dir, folder)
    state = torch.load(folder / biggan.WEIGHTS_NAME, weights_only=True)
    del state["embeddings.weight"]
    torch.save(state, folder / biggan.WEIGHTS_NAME)
    with pytest.raises(IrobError, match="does not fit the BigGAN described by .*embeddings.weight"):
        biggan.load_imagenet10_biggan(folder)


# --- the shipped card --------------------------------------------------------------------------------------------


def test_shipped_card_is_the_draft_with_stored_seeded_latents_and_null_generator_hashes(tmp_path):
    card = datasets.load_card("imagenet10")
    test = card.splits["test"]
    assert (card.latent_dim, card.image_shape, card.num_classes) == (128, (3, 32, 32), 10)
    assert card.priors == [0.1] * 10 and card.eps_grid == [1.0, 2.0, 3.0] and card.reference_alpha == 0.15
    assert (card.splits["train"].size, test.size) == (50_000, 10_000)
    assert card.generator.kwargs["downsample"] == "area"
    assert card.generator.weights_sha256 is None and test.images_sha256 is None and "pending" in card.notes
    data = datasets.load("imagenet10")
    z, y = sample_latents(test.seed, test.size, 128, card.priors)
    assert torch.equal(data.latents("test"), z) and torch.equal(data.labels("test"), y)
    assert (tensor_sha256(z), tensor_sha256(y)) == (test.latents_sha256, test.labels_sha256)
    rebuilt = freeze_latents(imagenet10_draft(), tmp_path, IMAGENET10_PENDING)
    assert rebuilt == card, "the shipped card is out of date with datasets/definitions.py: re-run freeze_latents"
    assert (tmp_path / test.latents_file).read_bytes() == (data.root / test.latents_file).read_bytes()


def test_show_works_without_the_weights(offline_cache, capsys):
    assert main(["datasets", "show", "imagenet10"]) == 0
    out = capsys.readouterr().out
    assert "biggan-deep-128-imagenet10-v1" in out and "10000 points" in out and "pending" in out


# --- the pipeline on the tiny BigGAN -----------------------------------------------------------------------------


def test_freeze_records_the_weights_hash_and_verify_passes(card_root, weights_dir, use_weights, capsys):
    card = datasets.load_card(card_root)
    assert card.generator.weights_sha256 == sha256_file(weights_dir / biggan.WEIGHTS_NAME)
    assert card.generator.weights_file is None and not list(card_root.glob("*.bin"))  # hashed, not copied
    assert "pending" not in card.notes
    data = datasets.load(card_root)
    images = data.images("test")
    assert images.shape == (TEST_SIZE, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert tensor_sha256(images) == card.splits["test"].images_sha256
    assert main(["datasets", "verify", str(card_root)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "ok    generator weights" in out and "ok    test images\n" in out


def test_other_weights_fail_verify_and_loading(card_root, tiny, tmp_path, monkeypatch, capsys):
    other = save_biggan(tiny_biggan(seed=1, lanczos_steps=1), tmp_path / "other")
    monkeypatch.setenv(biggan.WEIGHTS_ENV, str(other))
    assert main(["datasets", "verify", str(card_root)]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  generator weights" in out and "generator weights" in err
    with pytest.raises(IrobError, match="BigGAN weights hash mismatch"):
        _ = datasets.load(card_root).generator


def test_tampered_latents_fail_verify(card_root, use_weights, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(card_root, root)
    from irob_bench.artifacts import write_npz

    arrays = read_npz(root / "test_latents.npz")
    arrays["latents"][3, 7] += 0.5
    write_npz(root / "test_latents.npz", arrays)
    assert main(["datasets", "verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  stored latents = seed" in out and "FAIL  test images:" in out and "ok    test labels hash" in out


def test_lipschitz_estimates_run_on_the_tiny_biggan_and_complete_its_card(card_root, use_weights, tmp_path):
    """A tiny gradient estimate (forward- and reverse-mode autodiff through BigGAN) on one class, and a tiny
    sampling estimate over all 10 written into a copy of the card, which still verifies."""
    from irob_bench.datasets.build import verify
    from irob_bench.lipschitz import estimate, make_settings, write_estimate

    root = tmp_path / "copy"
    shutil.copytree(card_root, root)
    data = datasets.load(root)
    gradient = make_settings("gradient", samples=1, lanczos_steps=1, starts=1, ascent_steps=1)
    slope = estimate(data.generator, data.card.latent_dim, gradient, labels=[3]).classes[0]
    assert np.isfinite(slope.constant) and slope.constant > 0 and slope.generator_evaluations > 0
    sampling = make_settings("sampling", samples=2, neighbors=4)
    run = estimate(data.generator, data.card.latent_dim, sampling, labels=range(10), names=data.card.classes)
    constants = [c.constant for c in run.classes]
    assert all(np.isfinite(constants)) and min(constants) > 0
    updated = write_estimate(root, run.to_card_estimate(10))
    assert updated.lipschitz is not None and updated.lipschitz.constants == constants
    assert all(c.ok for c in verify(datasets.load(root)))


def test_evaluate_a_toy_submission_on_the_tiny_card(card_root, use_weights, tmp_path):
    evaluate_module = pytest.importorskip("irob_bench.evaluate", reason="irob_bench.evaluate is not importable yet")
    submission = tmp_path / "toy_imagenet10.py"
    submission.write_text(
        "import torch\nfrom torch import nn\nfrom irob_bench.plugin import SubmissionMetadata\n\n"
        "METADATA = SubmissionMetadata(name='toy-imagenet10', authors=['tests'], datasets=['imagenet10'], training='none')\n\n"
        "def load_model():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))\n"
    )
    from irob_bench.attacks.config import AttackSuiteConfig, FlagsConfig, LatentAttackConfig, MinimalConfig

    cheap = AttackSuiteConfig(
        unconstrained=apgd_stages(5, 1),
        latent=LatentAttackConfig(steps=3),
        minimal=MinimalConfig(steps=5),
        flags=FlagsConfig(noise_draws=1, random_search_queries=2),
    )
    options = evaluate_module.EvaluateOptions(dataset=str(card_root), n_examples=8, eps=[1.0], attacks=cheap, progress=False)
    evaluation = evaluate_module.evaluate(submission, options)
    result = evaluation.result
    assert result.dataset.name == "imagenet10" and result.settings.n_examples == 8 and len(evaluation.outcomes.indices) == 8
    assert result.dataset.generator_sha256 == datasets.load_card(card_root).generator.weights_sha256
