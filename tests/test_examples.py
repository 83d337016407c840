"""The few example points kept beside a run's outcomes (clean, PGD and on-manifold adversarials, predicted labels)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from irob_bench.artifacts import read_npz, write_npz
from irob_bench.attacks.config import AttackSuiteConfig, LatentAttackConfig, MinimalConfig
from irob_bench.attacks.examples import Examples
from irob_bench.attacks.outcomes import load_outcomes, save_outcomes
from irob_bench.attacks.suite import run_attacks
from irob_bench.cli import main
from tests.factories import apgd_stages
from tests.test_attacks_checks import ShiftGenerator, Threshold


def _run():
    gen = ShiftGenerator()
    # values 0.4, 0.7, 0.45, 0.9, 0.2: flipping needs an L2 distance of 4 |v - 0.5| = 0.4, 0.8, 0.2, 1.6, 1.2
    z = torch.tensor([[-0.1, 0.0], [0.2, 0.0], [-0.05, 0.0], [0.4, 0.0], [-0.3, 0.0]])
    x = gen(z, None)
    y = (z[:, 0] > 0).long()
    y[2] = 1  # point 2 is misclassified: never an example
    config = AttackSuiteConfig(
        unconstrained=apgd_stages(10), latent=LatentAttackConfig(inner_steps=60, lr=0.02), minimal=MinimalConfig(steps=20)
    )
    return run_attacks(Threshold(), x, y, [0.5, 1.0], config, generator=gen, z=z, seed=0, batch_size=2, progress=False)


def test_examples_show_verified_adversarials_with_their_predictions() -> None:
    out = _run()
    ex = out.examples
    assert ex is not None
    assert ex.indices.tolist() == [0, 1, 3, 4]  # the correctly classified points, in order
    assert ex.clean.dtype == np.uint8 and ex.clean.shape == (4, 1, 4, 4)
    assert (ex.predicted[:, 0] == ex.labels).all()  # clean: right by construction
    found = np.isfinite(ex.distance)
    # PGD searches within the largest eps (1.0): the points at 0.4 and 0.7 break (0.4, 0.8), 0.9 and 0.2 cannot
    # (1.6, 1.2); the on-manifold search is unbounded and finds each point's minimal on-manifold adversarial
    assert found[:, 0].tolist() == [True, True, False, False] and found[:, 1].all()
    np.testing.assert_allclose(ex.distance[:, 1], [0.4, 0.8, 1.6, 1.2], rtol=0.15)
    assert (ex.predicted[found[:, 0], 1] != ex.labels[found[:, 0]]).all()
    assert (ex.predicted[~found[:, 0], 1] == -1).all() and (ex.predicted[~found[:, 1], 2] == -1).all()
    moved = np.abs(ex.pgd.astype(int) - ex.clean.astype(int)).sum(axis=(1, 2, 3))
    assert (moved[found[:, 0]] > 0).all()  # the adversarial image is not the clean one
    assert ex.matches.all()  # made by the run itself


def test_examples_round_trip_through_the_outcomes_file(tmp_path) -> None:
    out = _run()
    path = tmp_path / "run.outcomes.npz"
    save_outcomes(out, path)
    back = load_outcomes(path).examples
    assert back is not None
    for name, value in out.examples.arrays().items():  # type: ignore[union-attr]
        np.testing.assert_array_equal(getattr(back, name.removeprefix("example_")), value)
    save_outcomes(out, tmp_path / "again.npz")
    assert path.read_bytes() == (tmp_path / "again.npz").read_bytes()  # deterministic bytes
    assert path.stat().st_size < 20_000


def test_control_a_file_without_examples_reads_as_none(tmp_path) -> None:
    out = _run()
    arrays = {k: v for k, v in read_npz_after_save(out, tmp_path).items() if not k.startswith("example_")}
    assert Examples.from_arrays(arrays) is None
    assert Examples.from_arrays({**arrays, **out.examples.arrays()}) is not None  # type: ignore[union-attr]


def read_npz_after_save(out, tmp_path):
    save_outcomes(out, tmp_path / "x.npz")
    return read_npz(tmp_path / "x.npz")


# ---- runs examples: the examples of a run made before they were kept ----------------------------------------------

SUBMISSIONS = Path(__file__).parent / "submissions"
TOY = Path(__file__).parents[1] / "submissions" / "mnist" / "standard" / "submission.py"  # accurate: it has examples


@pytest.fixture(scope="module")
def old_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A toy evaluation whose outcomes file then loses its examples (as runs made before they were kept); returns
    the result path and the examples it had."""
    tmp = tmp_path_factory.mktemp("old")
    result = tmp / "toy.json"
    assert main(["evaluate", str(TOY), "--n-examples", "16", "--eps", "1", "2", "--attacks", "quick", "--quiet",
                 "--no-store", "--json", str(result)]) == 0  # fmt: skip
    outcomes = Path(f"{result}.outcomes.npz")
    arrays = read_npz(outcomes)
    original = {k: v for k, v in arrays.items() if k.startswith("example_")}
    assert original
    write_npz(outcomes, {k: v for k, v in arrays.items() if not k.startswith("example_")})
    return result, original


def test_backfilled_examples_are_the_ones_the_run_made(old_run) -> None:
    result, original = old_run
    before = read_npz(f"{result}.outcomes.npz")
    assert main(["runs", "examples", str(result), "--submission", str(TOY), "--quiet"]) == 0
    after = read_npz(f"{result}.outcomes.npz")
    for key, value in before.items():  # every array the run had is unchanged
        np.testing.assert_array_equal(after[key], value)
    # Per-point keyed randomness: the same points, attacked the same way. Bit for bit only on one torch thread: with
    # more, a batch's floats depend on its composition (10 points here, the whole run there), so images and distances
    # are compared within a tolerance, and the outcomes (which points, labels, predictions) exactly.
    for key in ("example_indices", "example_labels", "example_predicted", "example_matches"):
        np.testing.assert_array_equal(after[key], original[key])
    np.testing.assert_allclose(after["example_clean"].astype(int), original["example_clean"].astype(int), atol=1)
    np.testing.assert_allclose(after["example_distance"], original["example_distance"], rtol=0.1)
    assert after["example_matches"].all()


def test_control_a_stored_outcome_that_does_not_reproduce_is_marked(old_run, tmp_path: Path) -> None:
    result, _ = old_run
    copy = tmp_path / "toy.json"
    shutil.copy(result, copy)
    arrays = read_npz(f"{result}.outcomes.npz")
    arrays = {k: v for k, v in arrays.items() if not k.startswith("example_")}
    first = int(np.flatnonzero(arrays["clean_correct"])[0])
    forged = arrays["robust_pgd"].copy()
    forged.reshape(len(arrays["clean_correct"]), -1)[first, -1] ^= True  # claim the opposite at the largest eps
    write_npz(f"{copy}.outcomes.npz", {**arrays, "robust_pgd": forged})
    assert main(["runs", "examples", str(copy), "--submission", str(TOY), "--quiet"]) == 0
    matches = read_npz(f"{copy}.outcomes.npz")["example_matches"]
    assert matches.tolist() == [False] + [True] * (len(matches) - 1)


def test_control_another_submission_is_refused(old_run, capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = old_run
    other = SUBMISSIONS / "toy.py"
    assert main(["runs", "examples", str(result), "--submission", str(other), "--quiet"]) == 2
    assert "is not the submission of this run" in capsys.readouterr().err
