"""The leaderboard plots: robust accuracy against eps, and accuracy and ceilings against the saturation level p."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.axes import Axes

from irob_bench import datasets
from irob_bench.datasets.card import DatasetCard, LipschitzEstimate, LipschitzSection
from irob_bench.errors import IrobError
from irob_bench.leaderboard.intervals import accuracy_interval
from irob_bench.leaderboard.plot import INF_STEP, plot_saturation, saturation_p

from .factories import make_result

SATURATION = [f"saturated-cifar-p{p}" for p in ("2", "8", "inf")]


def test_saturation_p_reads_the_card_transform() -> None:
    assert [saturation_p(datasets.load_card(n)) for n in SATURATION] == [2.0, 8.0, float("inf")]
    assert saturation_p(datasets.load_card("mnist")) is None


def with_constants(card: DatasetCard, constant: float) -> DatasetCard:
    """The card with every class's Lipschitz constant set (radius large enough for the ceilings to hold)."""
    per_class = [constant] * card.num_classes
    estimate = LipschitzEstimate(
        method="gradient", radius=1.0, delta=0.001, beta=0.95, samples=6000, rank=6000, delta_prime=0.000879,
        established=True, per_class=per_class, generator_evaluations=1, seconds=1.0,
    )  # fmt: skip
    section = LipschitzSection(radius=1.0, delta=0.001, beta=0.95, estimates=[estimate], constants=per_class)
    return card.model_copy(update={"lipschitz": section})


def _spy_on(monkeypatch: pytest.MonkeyPatch, method: str) -> list[tuple[list, list, dict]]:
    """Record every (xs, ys, keyword arguments) drawn with Axes.<method>, and still draw it."""
    drawn: list[tuple[list, list, dict]] = []
    real = getattr(Axes, method)

    def spy(self, xs, ys, *args, **kwargs):
        drawn.append((list(xs), list(ys), kwargs))
        return real(self, xs, ys, *args, **kwargs)

    monkeypatch.setattr(Axes, method, spy)
    return drawn


def test_plot_saturation_draws_ceilings_and_runs_with_wilson_intervals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p2, p8, pinf = (datasets.load_card(n) for n in SATURATION)
    cards = [with_constants(p2, 5.0), with_constants(p8, 20.0), pinf]
    runs = [make_result(f"{n}-pgd", dataset=n, eps=(0.25, 0.5, 1.0)) for n in SATURATION]
    drawn, bars = _spy_on(monkeypatch, "plot"), _spy_on(monkeypatch, "errorbar")
    out = plot_saturation(runs, cards, 0.5, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = {kwargs.get("label", ""): (xs, ys) for xs, ys, kwargs in drawn}
    clean = labels["pgd-l2 eps=2: clean"]
    assert clean[0] == [2.0, 8.0, 8.0 * INF_STEP], "p = inf is drawn right of the largest finite level (one method: no dodge)"
    assert clean[1] == [r.metrics.clean_accuracy for r in runs]
    assert labels["pgd-l2 eps=2: PGD @ 0.5"][1] == [0.655] * 3  # the factory's PGD at its second eps
    assert labels["pgd-l2 eps=2: in-distribution @ 0.5"][1] == [0.802] * 3
    ceiling = next(v for k, v in labels.items() if k.startswith("dataset ceiling"))
    assert ceiling[0] == [2.0, 8.0], "one point per finite level with Lipschitz constants; never p = inf"
    assert ceiling[1][0] < ceiling[1][1], "a larger Lipschitz constant loosens (raises) the ceiling"
    n = runs[0].settings.n_examples
    pgd_bars = next(kwargs["yerr"] for xs, ys, kwargs in bars if ys == [0.655] * 3)
    expected = accuracy_interval(0.655, n)
    assert pgd_bars[0][0] == pytest.approx(0.655 - expected.low) and pgd_bars[1][0] == pytest.approx(expected.high - 0.655)
    assert len(bars) == 3, "clean, PGD and in-distribution each carry their intervals"


def test_control_fewer_points_draw_wider_intervals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bars are the intervals of each run's own n: the same accuracy on 10x fewer points has wider bars."""
    card = with_constants(datasets.load_card("saturated-cifar-p2"), 5.0)
    widths = []
    for n in (1000, 100):
        run = make_result("p2-pgd", dataset="saturated-cifar-p2", eps=(0.25, 0.5, 1.0))
        run = run.model_copy(update={"settings": run.settings.model_copy(update={"n_examples": n})})
        bars = _spy_on(monkeypatch, "errorbar")
        plot_saturation([run], [card], 0.5, tmp_path / f"p{n}.png")
        yerr = next(kwargs["yerr"] for xs, ys, kwargs in bars if ys == [0.655])
        widths.append(yerr[0][0] + yerr[1][0])
        monkeypatch.undo()
    assert widths[1] > 2.5 * widths[0]


def test_a_perfect_accuracy_plots_with_a_bar_that_ends_at_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """100% clean on 2,000 points (the v1.0 p2 rows): the interval's upper end is 1 exactly, so matplotlib is not
    handed a negative error bar (it refused -1e-16, and the leaderboard command failed)."""
    card = with_constants(datasets.load_card("saturated-cifar-p2"), 5.0)
    run = make_result("p2-standard", dataset="saturated-cifar-p2", eps=(0.25, 0.5, 1.0))
    run = run.model_copy(update={"settings": run.settings.model_copy(update={"n_examples": 2000}),
                                 "metrics": run.metrics.model_copy(update={"clean_accuracy": 1.0})})
    bars = _spy_on(monkeypatch, "errorbar")
    assert plot_saturation([run], [card], 0.5, tmp_path / "p.png").exists()
    below, above = next(kwargs["yerr"] for xs, ys, kwargs in bars if ys == [1.0])
    assert above == [0.0] and below[0] == pytest.approx(1 - accuracy_interval(1.0, 2000).low) and below[0] > 0


def test_plot_saturation_refuses_an_empty_plot(tmp_path: Path) -> None:
    with pytest.raises(IrobError, match="nothing to plot"):
        plot_saturation([], [datasets.load_card("saturated-cifar-pinf")], 0.5, tmp_path / "p.png")
