"""Local Lipschitz estimation (docs/science.md §3): estimators on analytic generators, statistics, card merge, CLI."""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from irob_bench import cli, datasets
from irob_bench.datasets.card import LipschitzEstimate
from irob_bench.errors import IrobError
from irob_bench.lipschitz import (
    check_radius,
    estimate,
    make_settings,
    merge_estimate,
    smallest_radius,
    write_estimate,
)
from irob_bench.lipschitz.estimate import anchor_slopes
from irob_bench.lipschitz.geometry import class_map, project_to_shell, uniform_in_ball
from irob_bench.lipschitz.gradient import ascent_evaluations, top_singular

LATENT_DIM = 6


class LinearGenerator(nn.Module):
    """g(z, y) = A_y z as a 1x4x4 image, with A_y of known singular values (top: 3 + y); counts latent points."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(0)
        mats = []
        for y in range(classes):
            left, _ = torch.linalg.qr(torch.randn(16, LATENT_DIM, generator=rng))
            right, _ = torch.linalg.qr(torch.randn(LATENT_DIM, LATENT_DIM, generator=rng))
            singular = torch.tensor([3.0 + y, 1.5, 1.0, 0.7, 0.3, 0.1])
            mats.append(left @ torch.diag(singular) @ right.T)
        self.register_buffer("mats", torch.stack(mats))
        self.points = 0

    def top_singular(self, y: int) -> float:
        return float(torch.linalg.matrix_norm(self.mats[y], ord=2))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.points += z.shape[0]
        return torch.einsum("bpd,bd->bp", self.mats[y], z).view(-1, 1, 4, 4)


class TanhGenerator(LinearGenerator):
    """g(z, y) = tanh(A_y z): nonlinear, globally Lipschitz with constant ||A_y||_2."""

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(z, y))


def small(method: str, **values):
    """Settings small enough for a unit test."""
    base = {"samples": 8}
    base |= {"neighbors": 50} if method == "sampling" else {"lanczos_steps": 8, "starts": 2, "ascent_steps": 6}
    return make_settings(method, **{**base, **values})


def results(run) -> list[tuple[float, float, float, int]]:
    """Everything of a run but its timings."""
    return [(c.constant, c.largest, c.generator_evaluations) for c in run.classes]


# --- estimators on analytic generators ---------------------------------------------------------------


def test_gradient_recovers_top_singular_value_and_sampling_stays_below():
    gen = LinearGenerator()
    for y in (0, 1):
        sigma = gen.top_singular(y)
        gradient = estimate(gen, LATENT_DIM, small("gradient"), [y]).classes[0]
        sampling = estimate(gen, LATENT_DIM, small("sampling"), [y]).classes[0]
        assert gradient.constant == pytest.approx(sigma, rel=1e-4)
        assert sampling.constant <= sigma * (1 + 1e-5)
        assert sampling.constant < gradient.constant


def test_gradient_beats_sampling_on_the_same_anchors_of_a_nonlinear_generator():
    gen = TanhGenerator()
    for y in (0, 1):
        grad = anchor_slopes(gen, LATENT_DIM, y, small("gradient", radius=1.0)).values
        samp = anchor_slopes(gen, LATENT_DIM, y, small("sampling", radius=1.0)).values
        assert torch.all(grad >= samp - 1e-6)
        assert torch.all(grad <= gen.top_singular(y) * (1 + 1e-5))


def test_a_constant_generator_has_constant_zero():
    flat = lambda z, y: torch.zeros(len(z), 1, 4, 4) + 0.5  # noqa: E731
    for method in ("sampling", "gradient"):
        assert estimate(flat, LATENT_DIM, small(method), [0]).classes[0].constant == 0.0


def test_evaluation_counts_match_the_generator_calls():
    gen = LinearGenerator()
    sampling = small("sampling", samples=5, neighbors=30)
    assert anchor_slopes(gen, LATENT_DIM, 0, sampling).evaluations == gen.points == 5 * 31
    gradient = small("gradient", samples=5, lanczos_steps=4, lanczos_tolerance=0.0)  # no early stop: exactly k steps
    k = gradient.lanczos_steps
    gen.points = 0
    slopes = anchor_slopes(gen, LATENT_DIM, 0, gradient)
    starts, steps = gradient.starts, gradient.ascent_steps
    forwards = 1 + k + 1 + 2 * starts * (steps + 1)  # vjp, jvp primals (k steps + final push), ascent steps + check
    assert gen.points == 5 * forwards
    assert slopes.evaluations == 5 * (3 + 3 * k + ascent_evaluations(gradient)) == 5 * (forwards + 2 * k + 1 + 2 * starts * steps)


def test_lanczos_stops_when_converged_and_matches_the_svd():
    gen = LinearGenerator()
    anchors, start = torch.randn(4, LATENT_DIM), torch.randn(4, LATENT_DIM)
    converged = top_singular(class_map(gen, 1), anchors, start, 100, 1e-6)
    assert 1 < converged.iterations <= LATENT_DIM  # never more steps than the latent dimension
    assert torch.allclose(converged.sigma, torch.full((4,), gen.top_singular(1)), rtol=1e-5)
    assert torch.allclose(converged.direction.norm(dim=1), torch.ones(4))
    one = top_singular(class_map(gen, 1), anchors, start, 1, 1e-6)
    assert one.iterations == 1 and torch.all(one.sigma < converged.sigma)  # control: one step is not converged


def test_estimates_are_seeded_and_independent_of_batching_and_class_subsets():
    gen = TanhGenerator()
    both = estimate(gen, LATENT_DIM, small("sampling"), [0, 1])
    again = estimate(gen, LATENT_DIM, small("sampling", batch_size=7), [1])
    assert results(again) == results(both)[1:]
    assert results(estimate(gen, LATENT_DIM, small("sampling", seed=1), [1])) != results(again)
    gradient = results(estimate(gen, LATENT_DIM, small("gradient"), [0, 1]))
    assert results(estimate(gen, LATENT_DIM, small("gradient"), [0, 1])) == gradient
    assert results(estimate(gen, LATENT_DIM, small("gradient", seed=5), [0, 1])) != gradient


# --- ball geometry -----------------------------------------------------------------------------------


def test_points_are_uniform_in_the_ball():
    dim, radius, center = 5, 0.7, torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0])
    points = uniform_in_ball(center, 4000, radius, torch.Generator().manual_seed(3))
    offsets = points - center
    scaled = (offsets.norm(dim=1) / radius).double().numpy()
    assert scaled.max() <= 1.0
    assert stats.kstest(scaled**dim, "uniform").pvalue > 0.01  # P(||x - c|| <= t r) = t^d
    assert stats.kstest(scaled, "uniform").pvalue < 1e-6  # a naive uniform radius would pass this instead
    mean_direction = (offsets / offsets.norm(dim=1, keepdim=True)).mean(0)
    assert mean_direction.norm() < 4 / np.sqrt(4000)


def test_projection_keeps_offsets_in_the_shell():
    offsets = torch.tensor([[3.0, 4.0], [0.001, 0.0], [0.3, 0.4]])
    norms = project_to_shell(offsets, 0.01, 1.0).norm(dim=1)
    assert torch.allclose(norms, torch.tensor([1.0, 0.01, 0.5]))


# --- settings, card merge, radius --------------------------------------------------------------------


def test_bad_settings_are_one_line_errors():
    with pytest.raises(IrobError, match="samples"):
        make_settings("sampling", samples=0)
    with pytest.raises(IrobError, match="delta"):
        make_settings("gradient", delta=1.5)
    with pytest.raises(IrobError, match="no setting neighbors"):
        make_settings("gradient", neighbors=10)
    with pytest.raises(IrobError, match="unknown Lipschitz estimator"):
        make_settings("exhaustive")


def card_estimate(method: str, per_class: list[float], radius: float = 0.5, beta: float = 0.95) -> LipschitzEstimate:
    return LipschitzEstimate(
        method=method, radius=radius, delta=0.001, beta=beta, samples=10, rank=10, delta_prime=0.3076,
        established=False, per_class=per_class, generator_evaluations=1, seconds=0.1,
    )  # fmt: skip


def test_merge_takes_the_max_per_class_and_rejects_another_radius():
    section = merge_estimate(None, card_estimate("sampling", [1.0, 4.0]))
    section = merge_estimate(section, card_estimate("gradient", [2.0, 3.0]))
    assert section.constants == [2.0, 4.0]
    section = merge_estimate(section, card_estimate("sampling", [0.5, 0.5]))  # a newer sampling run replaces the old
    assert [e.method for e in section.estimates] == ["gradient", "sampling"]
    assert section.constants == [2.0, 3.0]
    with pytest.raises(IrobError, match="cannot merge"):
        merge_estimate(section, card_estimate("gradient", [2.0, 3.0], radius=0.8))
    with pytest.raises(IrobError, match="beta = 0.9 into"):
        merge_estimate(section, card_estimate("gradient", [2.0, 3.0], beta=0.9))
    with pytest.raises(IrobError, match="classes"):
        merge_estimate(section, card_estimate("gradient", [2.0, 3.0, 1.0]))


def test_a_card_estimate_needs_every_class():
    run = estimate(LinearGenerator(), LATENT_DIM, small("sampling", samples=2), [1])
    with pytest.raises(IrobError, match="needs all 2 classes"):
        run.to_card_estimate(2)
    full = estimate(LinearGenerator(), LATENT_DIM, small("sampling", samples=2), [1, 0]).to_card_estimate(2)
    assert full.per_class[0] < full.per_class[1] and full.settings["neighbors"] == 50


def test_radius_check_and_search_on_a_linear_generator():
    check = check_radius([4.0, 10.0], radius=0.5, eps=3.0)
    assert check.products == [2.0, 5.0] and check.ok == [False, True] and not check.passed
    gen = LinearGenerator()
    needed = 3.0 / min(gen.top_singular(0), gen.top_singular(1))  # L(r) = sigma_max for every r
    for start in (0.1, 5.0):
        settings = small("gradient", samples=2, radius=start, ascent_steps=1)
        search = smallest_radius(gen, LATENT_DIM, [0, 1], settings, eps=3.0, refinements=5)
        assert needed * (1 - 1e-4) <= search.radius <= needed * 1.03
        assert len(search.trials) >= 6


# --- the CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def card_copy(random_mnist, tmp_path):
    shutil.copytree(random_mnist.root, tmp_path / "random-mnist")
    return tmp_path / "random-mnist"


def test_cli_writes_estimates_that_revalidate(card_copy, capsys):
    folder = str(card_copy)
    assert cli.main(["lipschitz", "estimate", folder, "--samples", "3", "--neighbors", "8", "--write", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sampling estimator: r = 0.5" in out and "wrote the sampling estimate" in out
    argv = ["lipschitz", "estimate", folder, "--method", "gradient", "--samples", "2", "--lanczos-steps", "2",
            "--starts", "1", "--ascent-steps", "1", "--write", "--quiet", "--json"]  # fmt: skip
    assert cli.main(argv) == 0
    card = datasets.load_card(card_copy)
    section = card.lipschitz
    assert [e.method for e in section.estimates] == ["sampling", "gradient"]
    assert section.radius == 0.5 and section.delta == 0.001 and len(section.constants) == 10
    assert section.constants == [max(a, b) for a, b in zip(*(e.per_class for e in section.estimates))]
    assert datasets.load(card_copy).card == card


def test_cli_table_for_some_classes(card_copy, capsys):
    argv = ["lipschitz", "estimate", str(card_copy), "--classes", "3", "7", "--samples", "2", "--neighbors", "4", "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.split()[0] == "class")
    assert [line.split()[0] for line in out[header + 1 : header + 3]] == ["3", "7"]
    assert "delta = 0.001 not established: S = 2 anchors" in out[1] and "holds with probability >= 1 - 0.841" in out[2]
    assert "at confidence 0.95 over the anchors for all 2 classes at once" in out[2]  # 0.95^(1/2) per class


def fails_in_one_line(argv: list[str], message: str, capsys) -> None:
    """The CLI exits 2 with `message` in a single line on stderr, whether the parser or the command refused it."""
    try:
        code = cli.main(["lipschitz", *argv])
    except SystemExit as refused:  # a bad value of an argument: refused while parsing, before any torch import
        code = refused.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--samples", "0"], "samples"),
        (["--delta", "2"], "delta"),
        (["--classes", "11"], "no class '11'"),
        (["--classes", "1", "--write"], "--write needs every class"),
        (["--replace"], "--replace only makes sense with --write"),
    ],
)
def test_cli_bad_input_is_one_line(random_mnist, capsys, extra, message):
    fails_in_one_line(["estimate", str(random_mnist.root), "--samples", "2", "--neighbors", "2", "--quiet", *extra], message, capsys)


def test_cli_refuses_to_mix_radii_and_unknown_datasets(card_copy, capsys):
    write = ["estimate", str(card_copy), "--samples", "2", "--neighbors", "2", "--write", "--quiet"]
    assert cli.main(["lipschitz", *write]) == 0
    capsys.readouterr()
    fails_in_one_line([*write, "--radius", "0.7"], "cannot merge", capsys)
    fails_in_one_line(["estimate", "no-such-dataset", "--quiet"], "unknown dataset", capsys)


def test_write_estimate_replace_changes_the_radius(card_copy):
    write_estimate(card_copy, card_estimate("sampling", [1.0] * 10))
    with pytest.raises(IrobError, match="cannot merge"):
        write_estimate(card_copy, card_estimate("gradient", [2.0] * 10, radius=0.9))
    card = write_estimate(card_copy, card_estimate("gradient", [2.0] * 10, radius=0.9), replace=True)
    assert card.lipschitz.radius == 0.9 and [e.method for e in card.lipschitz.estimates] == ["gradient"]
    assert datasets.load_card(card_copy) == card


def test_gradient_estimator_refuses_a_generator_not_differentiable_everywhere() -> None:
    """s_p (p > 2) has an infinite slope at a pixel of 1/2: the estimate must fail loudly, never reach a card as NaN."""
    from irob_bench.datasets.card import LipschitzSection
    from irob_bench.generators.transforms import saturate

    def at_half(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        v = torch.sigmoid(z[:, :4] - z[:, :4].detach())  # exactly 1/2 for every z, with a gradient path
        return saturate(v, 4.0).view(-1, 1, 2, 2)

    with pytest.raises(IrobError, match="non-finite slopes.*no finite local constant"):
        estimate(at_half, 8, make_settings("gradient", samples=4, radius=0.5), [0])
    with pytest.raises(ValueError, match="finite number"):
        LipschitzSection(radius=0.5, delta=0.001, estimates=[], constants=[float("nan")])


def test_a_checkpointed_run_resumes_without_calling_the_generator_and_refuses_other_settings(tmp_path):
    gen = TanhGenerator()
    settings = small("gradient")
    first = estimate(gen, LATENT_DIM, settings, [0, 1], checkpoint=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradient-class0.npz", "gradient-class1.npz"]
    gen.points = 0
    again = estimate(gen, LATENT_DIM, settings.model_copy(update={"batch_size": 3}), [0, 1], checkpoint=tmp_path)
    assert gen.points == 0 and results(again) == results(first)
    estimate(gen, LATENT_DIM, settings, [0, 1])
    assert gen.points > 0  # control: without the checkpoint the generator runs
    with pytest.raises(IrobError, match="other settings"):
        estimate(gen, LATENT_DIM, small("gradient", seed=3), [0], checkpoint=tmp_path)


def test_the_run_reports_the_order_statistic_and_the_card_records_it():
    run = estimate(LinearGenerator(), LATENT_DIM, small("sampling", samples=40, delta=0.1), [0, 1])
    assert run.statistic.established and run.statistic.rank == 40  # P(B <= 39) = 0.985 >= 0.95 > P(B <= 38) = 0.92
    card = run.to_card_estimate(2)
    assert (card.samples, card.rank, card.beta, card.delta, card.established) == (40, 40, 0.95, 0.1, True)
    assert card.holds_at == 0.1 and card.per_class == [c.largest for c in run.classes]
    short = estimate(LinearGenerator(), LATENT_DIM, small("sampling", samples=20, delta=0.1), [0, 1]).to_card_estimate(2)
    assert not short.established and short.holds_at == pytest.approx(1 - (1 - 0.95 ** (1 / 2)) ** (1 / 20))


def test_a_section_holds_where_its_strongest_estimate_does_and_says_so():
    weak = card_estimate("sampling", [1.0, 4.0])  # S = 10, both classes at once: only delta' = 0.31
    strong = type(weak).model_validate({**weak.model_dump(), "method": "gradient", "samples": 4000, "rank": 4000})
    assert strong.established  # 1 - 0.999^4000 = 0.982 >= 0.95^(1/2); S = 3,000 (0.950) would not be, for 2 classes
    section = merge_estimate(merge_estimate(None, weak), strong)
    assert section.basis.method == "gradient" and section.holds_at == 0.001
    text = section.statement()
    assert "1 - 0.001 over the latent space" in text and "radius r = 0.5" in text and "confidence 0.95" in text
    assert "the maximum of S = 4,000 gradient slopes" in text and "found each anchor's sup" in text
    alone = merge_estimate(None, weak)
    assert alone.holds_at == pytest.approx(0.3076, abs=1e-4) and "1 - 0.308 over" in alone.statement()  # control: the weak one alone


def test_write_refuses_another_radius_and_a_card_without_constants_before_the_estimate(card_copy, capsys, monkeypatch):
    """Both were refused only after the whole estimate (about 30 minutes at S = 3,000), and a saturated card at p > 2,
    whose notes say no constant exists, took one. Control: test_cli_writes_estimates_that_revalidate writes."""
    folder = str(card_copy)
    assert cli.main(["lipschitz", "estimate", folder, "--samples", "3", "--neighbors", "8", "--write", "--quiet"]) == 0

    def no_estimate(*_args, **_kwargs):
        raise AssertionError("the estimate ran")

    monkeypatch.setattr("irob_bench.lipschitz.estimate", no_estimate)
    capsys.readouterr()
    assert cli.main(["lipschitz", "estimate", folder, "--samples", "3", "--radius", "0.3", "--write", "--quiet"]) == 2
    assert "cannot merge a sampling estimate at r = 0.3" in capsys.readouterr().err
    card = json.loads((card_copy / "card.json").read_text())
    card["notes"]["ceiling"] = "not established: a saturation map with an infinite slope"
    (card_copy / "card.json").write_text(json.dumps(card))
    assert cli.main(["lipschitz", "estimate", folder, "--samples", "3", "--write", "--replace", "--quiet"]) == 2
    assert "no constant to write: not established: a saturation map" in capsys.readouterr().err


def test_a_radius_search_that_never_fails_says_the_smallest_is_below_it():
    """Every radius tried passing used to be reported as 'the smallest radius'. Control: the bracketed search of
    test_radius_check_and_search_on_a_linear_generator."""
    settings = small("gradient", samples=2, radius=5.0, ascent_steps=1)
    search = smallest_radius(LinearGenerator(), LATENT_DIM, [0, 1], settings, eps=1e-6, doublings=2)
    assert not search.bracketed and search.radius == pytest.approx(5.0 / 4)


def test_every_checkpoint_file_is_checked_before_any_class_is_computed(card_copy, tmp_path, capsys, monkeypatch):
    """A class file of other settings was found only when its class came up (after computing the ones before it,
    leaving a folder of mixed settings), and a damaged file was a ValueError traceback. Control: the same
    settings resume (test_cli_writes_estimates_that_revalidate's files are reused there)."""
    folder, ckpt = str(card_copy), tmp_path / "ckpt"
    assert cli.main(["lipschitz", "estimate", folder, "--samples", "3", "--neighbors", "8", "--classes", "0",
                     "--checkpoint", str(ckpt), "--quiet"]) == 0

    def no_slopes(*_args, **_kwargs):
        raise AssertionError("a class was computed")

    monkeypatch.setattr(importlib.import_module("irob_bench.lipschitz.estimate"), "anchor_slopes", no_slopes)
    capsys.readouterr()
    args = ["lipschitz", "estimate", folder, "--samples", "3", "--neighbors", "9", "--classes", "1", "0",
            "--checkpoint", str(ckpt), "--quiet"]
    assert cli.main(args) == 2 and "holds slopes of other settings" in capsys.readouterr().err
    (ckpt / "sampling-class0.npz").write_text("junk")
    assert cli.main(args) == 2 and "not a slopes checkpoint" in capsys.readouterr().err
