"""reference.training.fit: resumable from its per-epoch checkpoint, with the same weights as an uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from irob_bench.errors import IrobError
from irob_bench.reference.models import ResNet9
from irob_bench.reference.training import clean_cross_entropy, fit


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(64, 3, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)


def _fit(checkpoint, loss_fn=clean_cross_entropy, epochs: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = ResNet9(width=2)
    x, y = _data()
    fit(model, x, y, epochs=epochs, seed=0, batch_size=16, lr=0.05, optimizer="sgd", weight_decay=5e-4,
        loss_fn=loss_fn, progress=False, checkpoint=checkpoint)
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_fit_resumes_after_a_crash_and_ends_with_the_weights_of_an_uninterrupted_run(tmp_path) -> None:
    whole = _fit(None)
    calls = {"n": 0}

    def crash_in_epoch_3(model, x, y, gen):
        calls["n"] += 1
        if calls["n"] > 8:  # 4 batches an epoch: epochs 1 and 2 finish, epoch 3 dies
            raise KeyboardInterrupt
        return clean_cross_entropy(model, x, y, gen)

    ckpt = tmp_path / "fit.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(ckpt, crash_in_epoch_3)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed_calls = {"n": 0}

    def counted(model, x, y, gen):
        resumed_calls["n"] += 1
        return clean_cross_entropy(model, x, y, gen)

    resumed = _fit(ckpt, counted)
    assert resumed_calls["n"] == 4  # only epoch 3 was trained again
    assert _same(resumed, whole)
    assert not _same(_fit(None, epochs=2), whole)  # control: the comparison sees a missing epoch


def test_fit_refuses_a_checkpoint_made_with_other_settings(tmp_path) -> None:
    ckpt = tmp_path / "fit.pt"
    _fit(ckpt, epochs=1)
    with pytest.raises(IrobError, match="other settings"):
        _fit(ckpt, epochs=2)


def test_fit_names_an_unknown_optimizer() -> None:
    x, y = _data()
    with pytest.raises(IrobError, match=r"unknown optimizer 'lbfgs' \(available: adam, sgd\)"):
        fit(ResNet9(width=2), x, y, epochs=1, seed=0, optimizer="lbfgs", progress=False)


def test_train_reference_resumes_its_own_checkpoint_and_refuses_another_methods(random_mnist, tmp_path) -> None:
    """`irob-bench train --checkpoint`: the same run given its finished checkpoint resumes there (the control: no
    error, the same weights); a PGD-AT run given the standard run's checkpoint is refused, naming the settings."""
    from irob_bench.reference.baselines import train_reference

    ckpt = tmp_path / "train.pt"
    first = train_reference("standard", random_mnist, tmp_path / "a", epochs=1, width=4, progress=False, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["settings"]["method"] == "standard"
    again = train_reference("standard", random_mnist, tmp_path / "b", epochs=1, width=4, progress=False, checkpoint=ckpt)
    assert again.weights_sha256 == first.weights_sha256
    with pytest.raises(IrobError, match="other settings.*'method': 'standard'"):
        train_reference("pgd", random_mnist, tmp_path / "c", eps=2.0, epochs=1, width=4, progress=False, checkpoint=ckpt)


def test_train_reference_is_reproducible_from_its_seed(random_mnist, tmp_path) -> None:
    """The same command twice gives the same weights, byte for byte (the initial weights were drawn before the seed
    was set, so every run differed); control: another seed gives other weights. The caller's RNG is left alone."""
    from irob_bench.artifacts import sha256_file
    from irob_bench.reference.baselines import train_reference

    def weights(folder: str, seed: int) -> str:
        train_reference("standard", random_mnist, tmp_path / folder, epochs=1, width=4, train_points=256, seed=seed,
                        progress=False)
        return sha256_file(tmp_path / folder / "model.pt")

    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = weights("a", 0)
    torch.manual_seed(999)  # another global state: must not matter
    assert weights("b", 0) == first
    assert weights("c", 1) != first
    torch.manual_seed(123)
    weights("d", 0)
    assert torch.equal(torch.get_rng_state(), before), "the caller's global RNG is unchanged"


@pytest.mark.parametrize(("args", "message"), [
    (["--eps", "2"], "--eps is a training radius of pgd, trades and lipschitz; standard training has none"),
    (["--train-points", "100"], "--train-points must be at least one batch (128), got 100"),
    (["--name", "bad name!"], "--name 'bad name!': a leaderboard name is"),
])
def test_train_refuses_settings_it_would_ignore_or_fail_on_before_any_work(tmp_path, capsys, args, message) -> None:
    """Each was accepted (an ignored eps in the name, a train split sliced from the end, a plugin that then failed
    validate) or failed after generating the data. Control: test_train_reference_is_reproducible_from_its_seed trains."""
    from irob_bench.cli import main

    assert main(["train", "standard", "--out", str(tmp_path / "out"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_foreign_checkpoint_is_one_line_before_the_data_is_generated(random_mnist, tmp_path, monkeypatch) -> None:
    """A file that is not a checkpoint was a KeyError traceback; another run's checkpoint was refused only after the
    train split was generated (31 s for mnist). Control: the run's own checkpoint resumes
    (test_train_reference_resumes_its_own_checkpoint_and_refuses_another_methods)."""
    from irob_bench.datasets.distribution import BenchmarkDataset
    from irob_bench.errors import IrobError
    from irob_bench.reference.baselines import train_reference

    other = tmp_path / "other.pt"
    train_reference("standard", random_mnist, tmp_path / "a", epochs=1, width=4, train_points=256, progress=False,
                    checkpoint=other)
    junk = tmp_path / "junk.pt"
    junk.write_text("junk\n")

    def no_data(*_args, **_kwargs):
        raise AssertionError("the train split was generated")

    monkeypatch.setattr(BenchmarkDataset, "generate", no_data)
    with pytest.raises(IrobError, match="junk.pt is not a training checkpoint"):
        train_reference("standard", random_mnist, tmp_path / "b", epochs=1, width=4, train_points=256, checkpoint=junk)
    with pytest.raises(IrobError, match="was made with other settings"):
        train_reference("standard", random_mnist, tmp_path / "c", epochs=2, width=4, train_points=256, checkpoint=other)
