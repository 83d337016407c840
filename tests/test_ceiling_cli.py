"""`irob-bench ceiling`: the table, the JSON shape, default priors and one-line errors."""

from __future__ import annotations

import json
from statistics import NormalDist

import pytest

from irob_bench.cli import main

N = NormalDist()
BASE = ["ceiling", "--alpha", "0.015", "--delta", "0.001"]


def per_class_ceiling(eps: float, lipschitz: float, alpha: float = 0.015, delta: float = 0.001) -> float:
    """Thm 4.4 second form written out: priors sum to 1, so the sum over classes is one Phi term."""
    return 1 + delta - N.cdf(N.inv_cdf(alpha) + eps / lipschitz)


def run_json(capsys, *args: str) -> dict:
    assert main([*BASE, *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_table_rows_are_eps_columns_are_forms(capsys):
    assert main([*BASE, "--lipschitz", "2", "--eps", "0", "1", "3", "--radius", "0.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("eps"))
    assert "classifier (Thm 4.3)" in out[header] and "overall (Thm 4.4)" in out[header] and "per-class (Thm 4.4)" in out[header]
    rows = {line.split()[0]: line for line in out[header + 1 : header + 4]}
    assert set(rows) == {"0", "1", "3"}
    assert rows["0"].count(f"{100 * (1 + 0.001 - 0.015):.2f}%") == 3
    assert f"{100 * per_class_ceiling(1.0, 2.0):.2f}%" in rows["1"]
    assert rows["3"].count("not established: ") == 3 and "r * L = 0.5 * 2 = 1 < eps = 3" in rows["3"]
    assert "K = 10 classes" in out[0]


def test_json_shape_and_values(capsys):
    data = run_json(capsys, "--lipschitz", "2", "--eps", "0.5", "1", "3", "--radius", "0.5")
    assert data["settings"]["priors"] == pytest.approx([0.1] * 10)
    assert [row["eps"] for row in data["ceilings"]] == [0.5, 1.0, 3.0]
    for row in data["ceilings"]:
        assert set(row) == {"eps", "classifier", "dataset_overall", "dataset_per_class"}
        for bound in (row[k] for k in row if k != "eps"):
            if bound["value"] is None:
                assert isinstance(bound["reason"], str) and bound["reason"]
            else:
                assert 0.0 <= bound["value"] <= 1.0 and bound["reason"] is None
    assert data["ceilings"][1]["dataset_per_class"]["value"] == pytest.approx(per_class_ceiling(1.0, 2.0), abs=1e-12)
    assert all(data["ceilings"][2][k]["value"] is None for k in ("classifier", "dataset_overall", "dataset_per_class"))


def test_one_constant_per_class_sets_k_and_classifier_form_uses_alpha_for_every_class(capsys):
    data = run_json(capsys, "--lipschitz", "1", "2", "4", "--eps", "1", "--form", "classifier")
    assert data["settings"]["priors"] == pytest.approx([1 / 3] * 3)
    row = data["ceilings"][0]
    assert set(row) == {"eps", "classifier"}
    direct = 1.001 - sum(N.cdf(N.inv_cdf(0.015) + 1 / L) for L in (1, 2, 4)) / 3
    assert row["classifier"]["value"] == pytest.approx(direct, abs=1e-12)


def test_priors_set_k_with_a_single_constant(capsys):
    data = run_json(capsys, "--lipschitz", "2", "--priors", "0.25", "0.75", "--eps", "1", "--form", "overall")
    assert data["settings"]["priors"] == [0.25, 0.75]
    direct = 1.001 - min(p * N.cdf(N.inv_cdf(0.015 / p) + 0.5) for p in (0.25, 0.75))
    assert data["ceilings"][0]["dataset_overall"]["value"] == pytest.approx(direct, abs=1e-12)


def test_overall_form_not_established_when_alpha_exceeds_a_prior(capsys):
    assert main(["ceiling", "--lipschitz", "2", "--alpha", "0.15", "--delta", "0.001", "--eps", "1", "--form", "overall"]) == 0
    assert "not established: class 0: alpha / p_y = 0.15 / 0.1 = 1.5 > 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lipschitz", "-2", "--eps", "1"], "Lipschitz constants must be positive"),
        (["--lipschitz", "2", "--eps", "1", "--alpha", "1.5"], "alpha must be in [0, 1]"),
        (["--lipschitz", "2", "--eps", "1", "--priors", "0.5", "0.6"], "priors must sum to 1"),
        (["--lipschitz", "1", "2", "--eps", "1", "--priors", "0.2", "0.3", "0.5"], "2 Lipschitz constants for 3 classes"),
        (["--lipschitz", "2", "--eps", "-1"], "eps must be >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, args, message):
    assert main([*BASE, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("irob-bench: error: ") and message in captured.err


def test_zhang_table_3_is_reproduced_and_says_what_it_rests_on(capsys):
    argv = ["ceiling", "--lipschitz", "11.0", "--alpha", "0.015", "--delta", "0.001", "--eps", "1", "2", "3",
            "--radius", "0.5", "--form", "per-class"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [row[1] for row in rows] == ["98.22%", "97.76%", "97.21%"]  # Zhang et al. Table 3: 98.2 / 97.8 / 97.2
    assert "at alpha = 0.015" in out and "holds with probability >= 1 - 0.001 over the latent space" in out
    assert "no confidence over a sample of anchors is stated" in out


def test_anchors_state_the_confidence_and_too_few_use_delta_prime(capsys):
    """One constant for every class of K = 10: all ten must hold at once, so delta = 0.001 needs S >= 5,273."""
    enough = run_json(capsys, "--lipschitz", "2", "--eps", "1", "--form", "per-class", "--anchors", "5273")
    assert enough["settings"]["delta"] == 0.001 and enough["settings"]["statistic"]["rank"] == 5273
    assert "confidence 0.95 over the anchors for all 10 classes at once (L_y = the maximum of S = 5,273" in enough["settings"]["basis"]
    assert enough["ceilings"][0]["dataset_per_class"]["value"] == pytest.approx(per_class_ceiling(1.0, 2.0), abs=1e-12)
    few = run_json(capsys, "--lipschitz", "2", "--eps", "1", "--form", "per-class", "--anchors", "300")
    delta_prime = 1 - (1 - 0.95 ** (1 / 10)) ** (1 / 300)
    assert few["settings"]["delta"] == pytest.approx(delta_prime) and not few["settings"]["statistic"]["established"]
    value = few["ceilings"][0]["dataset_per_class"]["value"]
    assert value == pytest.approx(per_class_ceiling(1.0, 2.0, delta=delta_prime), abs=1e-12)
    assert main([*BASE, "--lipschitz", "2", "--eps", "1", "--anchors", "300"]) == 0
    assert "delta = 0.001 is not supported: S = 300 anchors" in capsys.readouterr().out


def test_beta_without_anchors_is_refused_not_ignored(capsys):
    """--beta states the confidence over the anchors behind L; without --anchors there are none, and it used to be
    dropped in silence. Control: with --anchors it is used (a lower beta lets fewer anchors hold at the same delta)."""
    assert main([*BASE, "--lipschitz", "2", "--eps", "1", "--beta", "0.9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--beta is the confidence over the anchors behind L: give --anchors S" in err
    low, default = (run_json(capsys, "--lipschitz", "2", "--eps", "1", "--anchors", "300", *extra)
                    for extra in (["--beta", "0.5"], []))  # fmt: skip
    assert low != default
