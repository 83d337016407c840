"""`irob-bench gate`: paired McNemar statistics, baseline resolution, settings checks, reports and exit codes.

The data is a tiny frozen benchmark whose (random-weight) ACGAN is made class-separable by scaling its
class inputs, so a nearest-class-mean linear classifier is accurate with margins around eps 0.3-0.4;
weakened copies add seeded noise to its weights. Attacks run with a cheap config on 120 test points.
"""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from irob_bench import datasets
from irob_bench.attacks.config import AttackSuiteConfig, FlagsConfig, LatentAttackConfig, MinimalConfig
from irob_bench.cli import main
from irob_bench.datasets.build import freeze
from irob_bench.datasets.card import SplitSpec
from irob_bench.evaluate import EvaluateOptions, evaluate
from irob_bench.gate.compare import compare_metrics, compare_one, discordant, mcnemar_worse
from irob_bench.gate.outcomes import PerExample, common_eps
from irob_bench.gate.report import GateReport, github_annotations
from irob_bench.generators.acgan import ACGANGenerator
from irob_bench.generators.train import save_frozen_generator
from irob_bench.leaderboard.store import Store
from irob_bench.persist import persist
from irob_bench.results import EvaluationResult
from tests.factories import apgd_stages

from .conftest import freeze_random_mnist

TEMPLATE = Path(__file__).parent / "submissions" / "gate" / "linear.py"
EPS = [0.3, 0.4]
N = 120
CHEAP = AttackSuiteConfig(
    unconstrained=apgd_stages(10, 1),
    latent=LatentAttackConfig(steps=1),
    minimal=MinimalConfig(enabled=False),
    flags=FlagsConfig(noise_draws=0, random_search_queries=0),
)


# ---------------------------------------------------------------- statistics (no evaluation)


def binomial_tail(lost: int, gained: int) -> float:
    """P(X >= lost) for X ~ Binomial(lost + gained, 1/2), summed exactly."""
    m = lost + gained
    return sum(math.comb(m, k) for k in range(lost, m + 1)) / 2**m


@pytest.mark.parametrize("lost, gained", [(5, 0), (7, 3), (3, 7), (12, 2), (1, 1)])
def test_mcnemar_is_the_exact_one_sided_binomial_tail(lost, gained):
    assert mcnemar_worse(lost, gained) == pytest.approx(binomial_tail(lost, gained), rel=1e-9)


def test_mcnemar_without_discordant_pairs_is_one_and_improvements_are_not_significant():
    assert mcnemar_worse(0, 0) == 1.0
    assert mcnemar_worse(0, 40) == 1.0
    assert mcnemar_worse(40, 0) < 1e-11


def test_discordant_counts_each_direction():
    base = np.array([1, 1, 1, 0, 0, 1], dtype=bool)
    new = np.array([1, 0, 0, 1, 0, 1], dtype=bool)
    assert discordant(base, new) == (2, 1)


def _pair(n: int, lost: int, gained: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired outcomes over n examples with the given discordant counts (the rest right in both)."""
    base, new = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    new[:lost] = False
    base[lost : lost + gained] = False
    return base, new


def test_a_regression_needs_a_drop_beyond_tolerance_and_significance():
    significant = compare_one("pgd", 1.0, *_pair(200, 20, 2), tolerance_pp=0.5, alpha=0.05)
    assert significant.verdict == "regression" and significant.drop_pp == pytest.approx(9.0)
    noisy = compare_one("pgd", 1.0, *_pair(20, 2, 0), tolerance_pp=0.5, alpha=0.05)  # 10 pp, p = 0.25
    assert noisy.verdict == "pass" and "not significant" in noisy.reason and noisy.p_value == pytest.approx(0.25)
    small = compare_one("clean", None, *_pair(2000, 9, 0), tolerance_pp=0.5, alpha=0.05)  # 0.45 pp, p = 0.002
    assert small.verdict == "pass" and small.p_value < 0.05 and "within tolerance" in small.reason
    better = compare_one("clean", None, *_pair(100, 0, 30), tolerance_pp=0.0, alpha=0.05)
    assert better.verdict == "pass" and better.drop_pp == pytest.approx(-30.0) and better.p_value == 1.0


def test_outcomes_are_paired_by_test_set_index_on_common_eps():
    base = PerExample(
        indices=np.array([7, 3, 5]),
        eps=(1.0, 2.0),
        clean=np.array([True, True, False]),
        pgd=np.array([[True, False], [True, True], [False, False]]),
        in_distribution=None,
    )
    new = PerExample(
        indices=np.array([5, 7]), eps=(2.0,), clean=np.array([True, True]), pgd=np.array([[True], [False]]), in_distribution=None
    )
    eps = common_eps(base, new)
    aligned = base.restrict(new.indices, eps)
    assert eps == [2.0] and aligned.indices.tolist() == [5, 7] and aligned.pgd[:, 0].tolist() == [False, False]
    metrics = compare_metrics(aligned, new.restrict(new.indices, eps), tolerance_pp=0.5, alpha=0.05)
    assert [m.name for m in metrics] == ["clean", "pgd@eps=2"]
    assert (metrics[0].lost, metrics[0].gained, metrics[1].gained) == (0, 1, 1)


# ---------------------------------------------------------------- fixtures: data, models, baseline


@pytest.fixture(scope="module")
def gate_data(tmp_path_factory) -> Path:
    """A 300-point benchmark from a random ACGAN whose class inputs are scaled x10: classes become separable."""
    root = tmp_path_factory.mktemp("gate_data")
    base = freeze_random_mnist(root / "random", test_size=300)
    gen = ACGANGenerator()
    gen.load_state_dict({k: v.float() for k, v in torch.load(base.weights_path(), weights_only=True).items()})
    with torch.no_grad():
        gen.fc[0].weight[:, gen.latent_dim :] *= 10
    save_frozen_generator(gen.eval(), root / "separable.pt")
    splits = {**base.card.splits, "train": SplitSpec(size=1000, seed=1)}
    freeze(base.card.model_copy(update={"name": "gate-mnist", "splits": splits}), root / "gate-mnist", root / "separable.pt")
    return root / "gate-mnist"


@pytest.fixture(scope="module")
def models(gate_data, tmp_path_factory) -> dict[str, Path]:
    """Submission files: a nearest-class-mean classifier fitted on generated train images, and noisy copies of it."""
    data = datasets.load(gate_data)
    x, y = data.images("train").flatten(1), data.labels("train")
    means = torch.stack([x[y == k].mean(0) for k in range(data.num_classes)])
    noise = torch.randn(means.shape, generator=torch.Generator().manual_seed(0))
    root = tmp_path_factory.mktemp("gate_models")
    paths = {}
    for name, scale in [("fitted", 0.0), ("jittered", 0.0008), ("weakened", 0.002)]:
        folder = root / name
        folder.mkdir()
        shutil.copy(TEMPLATE, folder / "linear.py")
        torch.save({"1.weight": means + scale * noise, "1.bias": -(means**2).sum(1) / 2}, folder / "linear.pt")
        paths[name] = folder / "linear.py"
    return paths


def write_baseline(path: Path, json_path: Path, dataset: Path, n: int = N) -> Path:
    """Evaluate with the cheap attacks and save the result JSON with its outcomes beside it, as `evaluate --json` does."""
    evaluation = evaluate(path, EvaluateOptions(dataset=str(dataset), eps=EPS, n_examples=n, attacks=CHEAP, progress=False))
    persist(evaluation, json_path=json_path)
    return json_path


@pytest.fixture(scope="module")
def baseline(models, gate_data, tmp_path_factory) -> Path:
    return write_baseline(models["fitted"], tmp_path_factory.mktemp("gate_baseline") / "baseline.json", gate_data)


@pytest.fixture
def gate(gate_data, tmp_path, monkeypatch, capsys):
    """Run `irob-bench gate` on a submission; returns (exit code, stdout, stderr, report or None)."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

    def run(path: Path, ref: str | Path, *extra: str) -> tuple[int, str, str, GateReport | None]:
        out = tmp_path / "gate.json"
        out.unlink(missing_ok=True)
        code = main(["gate", str(path), "--baseline", str(ref), "--dataset", str(gate_data), "--quiet", "--json", str(out), *extra])
        captured = capsys.readouterr()
        report = GateReport.model_validate_json(out.read_text()) if out.exists() else None
        return code, captured.out, captured.err, report

    return run


# ---------------------------------------------------------------- the command end to end


def _ending(models, how: str) -> Path:
    """The fitted model, in a copy whose forward ends the process (`sys.exit(0)` or `os._exit(0)`) on its first call."""
    folder = models["fitted"].parent
    path = folder / f"ending_{how.replace('.', '_')}.py"
    path.write_text(TEMPLATE.read_text().replace("from torch import nn\n", "import os\nimport sys\n\nfrom torch import nn\n")
                    .replace("    return model\n", f"    model.register_forward_pre_hook(lambda *_: {how}(0))\n    return model\n"))
    return path


@pytest.mark.parametrize(("how", "isolation"), [("sys.exit", "none"), ("sys.exit", "process"), ("os._exit", "process")])
def test_a_submission_that_ends_the_process_is_an_error_never_a_pass(models, baseline, gate, how, isolation):
    """Run in-process, `sys.exit(0)` in a submission ended the gate with exit 0 and no report: CI went green. Now the
    submission runs in a worker (the default, sandboxed) and an early exit is one line, exit 2, no report; in process
    a SystemExit from the submission is caught the same way (os._exit cannot be, which is why the worker is the
    default). Control: test_the_same_model_passes_against_its_own_baseline, in a worker below."""
    code, out, err, report = gate(_ending(models, how), baseline, "--isolation", isolation)
    assert code == 2 and report is None and "PASS" not in out, (code, out, err)
    assert err.count("\n") == 1 and ("sys.exit(0)" in err or "ended without a result" in err), err


def test_the_gate_runs_the_submission_in_a_worker(models, baseline, gate):
    code, out, err, report = gate(models["fitted"], baseline, "--isolation", "process")
    assert code == 0 and not report.regressed, err
    assert all(m.lost == m.gained == 0 for m in report.metrics)  # the worker reproduces the baseline exactly


@pytest.mark.parametrize("damage", ["drop robust_pgd", "drop indices", "float robust_pgd", "short robust_pgd"])
def test_a_damaged_baseline_outcomes_file_is_one_line_and_exit_2(models, baseline, gate, tmp_path, damage):
    """A broken CI cache gave a KeyError or reshape traceback and exit 1, the code of a regression, or read floats as
    True. Control: the undamaged copy passes (test_the_same_model_passes_against_its_own_baseline)."""
    arrays = dict(np.load(f"{baseline}.outcomes.npz"))
    verb, name = damage.split()
    if verb == "drop":
        del arrays[name]
    else:
        arrays[name] = arrays[name].astype(float) * 0.5 if verb == "float" else arrays[name][:10]
    copy = tmp_path / "damaged.json"
    shutil.copy(baseline, copy)
    np.savez(f"{copy}.outcomes.npz", **arrays)
    code, out, err, report = gate(models["fitted"], copy)
    assert code == 2 and report is None and err.count("\n") == 1, err
    assert "not an attack outcomes file" in err and name in err


def test_nothing_to_compare_and_a_report_over_the_baseline_fail_before_any_work(models, baseline, gate, tmp_path,
                                                                                 monkeypatch):
    """Both were found only after the whole evaluation (and the report overwrote the baseline: lost). Control: the
    same baseline still gates (test_the_same_model_passes_against_its_own_baseline)."""
    def no_evaluation(*_args, **_kwargs):
        raise AssertionError("the submission was evaluated")

    monkeypatch.setattr("irob_bench.gate.run.evaluate_isolated", no_evaluation)
    code, _, err, _ = gate(models["fitted"], baseline, "--eps", "5", "--allow-settings-change")
    assert code == 2 and "nothing to compare: none of eps 5 is in the baseline" in err, err
    kept = baseline.read_bytes()
    code, _, err, _ = gate(models["fitted"], baseline, "--json", str(baseline))  # the later --json wins
    assert code == 2 and f"{baseline} is the baseline file" in err and err.count("\n") == 1, err
    assert baseline.read_bytes() == kept


def test_the_same_model_passes_against_its_own_baseline(models, baseline, gate, tmp_path):
    junit = tmp_path / "gate.xml"
    code, out, _, report = gate(models["fitted"], baseline, "--junit", str(junit))
    assert code == 0 and not report.regressed and "PASS" in out
    assert [m.name for m in report.metrics] == ["clean", "pgd@eps=0.3", "pgd@eps=0.4", "in-dist@eps=0.3", "in-dist@eps=0.4",
                                                "certified@eps=0.3", "certified@eps=0.4"]
    assert all(m.lost == m.gained == 0 and m.drop_pp == 0 and m.p_value == 1.0 for m in report.metrics)
    assert report.n_examples == N and report.eps == EPS and report.settings_changes == []
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "7" and suite.get("failures") == "0"
    assert len(suite.findall("./testsuite/testcase")) == 7 and not suite.findall(".//failure")
    assert "::" not in out  # no GitHub annotations outside GitHub Actions


def test_a_weakened_copy_fails_with_junit_failures_and_github_annotations(models, baseline, gate, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    junit = tmp_path / "gate.xml"
    code, out, _, report = gate(models["weakened"], baseline, "--junit", str(junit))
    assert code == 1 and report.regressed and "FAIL" in out and "REGRESSION" in out
    pgd = {m.eps: m for m in report.metrics if m.kind == "pgd"}
    assert pgd[0.4].verdict == "regression" and pgd[0.4].drop_pp > 5 and pgd[0.4].p_value < 0.05
    assert pgd[0.4].drop_pp == pytest.approx(100 * (pgd[0.4].baseline - pgd[0.4].new))
    assert pgd[0.4].drop_pp == pytest.approx(100 * (pgd[0.4].lost - pgd[0.4].gained) / N)
    failures = ET.parse(junit).getroot().findall(".//testcase[failure]")
    assert sorted(case.get("name") for case in failures) == sorted(m.name for m in report.regressions)
    errors = [line for line in out.splitlines() if line.startswith("::error title=")]
    assert len(errors) == len(report.regressions) and any("pgd@eps=0.4" in line for line in errors)
    assert out.splitlines()[-1].startswith("::notice title=irob-bench gate::FAIL")


def test_quick_mode_pairs_the_first_100_examples_and_tolerance_absorbs_drops(models, baseline, gate):
    code, out, _, report = gate(models["weakened"], baseline, "--quick", "--tolerance", "50")
    assert code == 0 and report.quick and report.n_examples == 100
    assert any(m.drop_pp > 5 and "within tolerance 50" in m.reason for m in report.metrics)
    assert "quick mode: the first 100 examples" in out


def test_a_drop_within_noise_is_not_significant(models, baseline, gate):
    code, _, _, report = gate(models["jittered"], baseline)
    dropped = [m for m in report.metrics if m.drop_pp > report.tolerance_pp]
    assert code == 0 and not report.regressed and dropped  # real drops of a few points, on few discordant pairs
    assert all(m.p_value >= 0.05 and "not significant" in m.reason for m in dropped)


def test_mismatched_settings_fail_in_one_line_naming_what_differs(models, baseline, gate, tmp_path):
    code, out, err, report = gate(models["fitted"], baseline, "--seed", "1")
    assert code == 2 and report is None and err.count("\n") == 1
    assert "seed (baseline 0, now 1)" in err and "--allow-settings-change" in err

    raw = json.loads(baseline.read_text())
    raw["dataset"]["version"] = "0.0-other"
    raw["dataset"]["labels_sha256"] = "0" * 64
    raw["settings"]["attacks"]["stride"] = 3
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(raw))
    shutil.copy(f"{baseline}.outcomes.npz", f"{edited}.outcomes.npz")
    code, _, err, _ = gate(models["fitted"], edited)
    assert code == 2 and err.count("\n") == 1
    assert "dataset version (baseline 0.0-other" in err and "attack config (the baseline's is not valid here: stride" in err

    raw = json.loads(baseline.read_text())
    del raw["settings"]["attacks"]["minimal"]["gamma"]  # e.g. a baseline from before an option existed
    edited.write_text(json.dumps(raw))
    code, _, err, _ = gate(models["fitted"], edited)
    assert code == 2 and "attack config (minimal.gamma (baseline unset, now 0.05))" in err


def test_a_version_bump_that_keeps_every_hash_is_not_a_settings_change(models, baseline, gate, tmp_path):
    """A card re-versioned for new Lipschitz constants evaluates the same examples: its baselines stay valid."""
    raw = json.loads(baseline.read_text())
    raw["dataset"]["version"] = "0.0-older-ceilings"
    edited = tmp_path / "older.json"
    edited.write_text(json.dumps(raw))
    shutil.copy(f"{baseline}.outcomes.npz", f"{edited}.outcomes.npz")
    code, _, _, report = gate(models["fitted"], edited)
    assert code == 0 and report.settings_changes == []


def test_allowed_settings_change_compares_the_common_examples(models, baseline, gate):
    code, out, _, report = gate(models["fitted"], baseline, "--n-examples", "150", "--allow-settings-change")
    assert code == 0 and report.n_examples == N  # the baseline's 120 are a prefix of the new 150
    assert report.settings_changes == ["n_examples (baseline 120, now 150)"]
    assert all(m.lost == m.gained == 0 for m in report.metrics)
    assert "settings changed (allowed)" in out and f"the {N} common examples" in out


def test_baseline_from_the_leaderboard_by_name_and_id_and_only_stored_on_request(models, baseline, gate, tmp_path):
    db = f"sqlite:///{tmp_path / 'board.db'}"
    with Store(db) as store:
        run_id = store.save(EvaluationResult.model_validate_json(baseline.read_text())).run_id
    code, _, _, report = gate(models["fitted"], "gate-linear", "--db", db, "--quick")
    assert code == 0 and report.baseline_source.startswith(f"run {run_id} ") and report.stored_run_id is None
    assert len(Store(db).rows()) == 1
    code, out, _, report = gate(models["weakened"], str(run_id), "--db", db, "--quick", "--store")
    assert code == 1 and report.stored_run_id is not None and f"stored as run {report.stored_run_id}" in out
    stored = Store(db).get(report.stored_run_id)
    assert stored.submission.weights_sha256 != Store(db).get(run_id).submission.weights_sha256
    assert Path(stored.outcomes_file).is_file()


def test_a_run_stored_with_json_keeps_its_own_outcomes_so_moving_the_json_cannot_orphan_it(models, gate_data, gate, tmp_path):
    db, json_path = f"sqlite:///{tmp_path / 'board.db'}", tmp_path / "run.json"
    evaluation = evaluate(models["fitted"], EvaluateOptions(dataset=str(gate_data), eps=EPS, n_examples=N, attacks=CHEAP, progress=False))
    with Store(db) as store:
        stored, saved = persist(evaluation, json_path=json_path, store=store)
    beside = Path(f"{json_path}.outcomes.npz")
    assert EvaluationResult.model_validate_json(json_path.read_text()).outcomes_file == str(beside.resolve())
    assert Path(stored.outcomes_file).parent == tmp_path / "outcomes" and Store(db).get(saved.run_id).outcomes_file == stored.outcomes_file
    json_path.unlink()
    beside.unlink()  # the user moves or deletes the JSON and its outcomes; the stored run is still a baseline
    code, _, err, report = gate(models["fitted"], str(saved.run_id), "--db", db, "--quick")
    assert code == 0 and report.baseline_source.startswith(f"run {saved.run_id} "), err


def test_a_baseline_without_outcomes_is_a_one_line_error(models, baseline, gate, tmp_path):
    raw = json.loads(baseline.read_text())
    raw["outcomes_file"] = str(tmp_path / "gone.npz")
    lonely = tmp_path / "lonely.json"
    lonely.write_text(json.dumps(raw))
    code, _, err, _ = gate(models["fitted"], lonely)
    assert code == 2 and "per-example outcomes file not found" in err and err.count("\n") == 1
    code, _, err, _ = gate(models["fitted"], tmp_path / "missing.json")
    assert code == 2 and "baseline file not found" in err


def test_github_annotations_escape_newlines_and_separators():
    metric = compare_one("pgd", 1.0, *_pair(200, 30, 0), tolerance_pp=0.5, alpha=0.05)
    report = GateReport(
        submission="m", baseline_source="a:b,c\nd", baseline_submission="m", dataset="d v1", quick=False, n_examples=200,
        eps=[1.0], tolerance_pp=0.5, alpha=0.05, metrics=[metric], regressed=True, seconds=1.0,
    )
    lines = github_annotations(report)
    assert lines[0].startswith("::error title=robustness regression%3A pgd@eps=1::PGD robust accuracy at eps 1: 100.0%25 -> 85.0%25")
    assert len(lines) == 2 and lines[-1].startswith("::notice title=irob-bench gate::FAIL")
    assert all("\n" not in line for line in lines) and lines[-1].endswith("(baseline a:b,c%0Ad)")


def test_a_sample_of_a_run_repeats_the_runs_spot_check_draws() -> None:
    """plan_run re-evaluates with the baseline's population: the spot-check rate spot_check / N of the whole run,
    not of the sample (which would re-attack other points and change the outcomes being compared)."""
    from irob_bench.gate.settings import GateOptions, plan_run

    from .factories import make_result

    baseline = make_result()
    card = datasets.load_card(baseline.dataset.name)
    plan, _ = plan_run(baseline, GateOptions(n_examples=10), card)
    assert plan.n_examples == 10 and plan.population == baseline.settings.n_examples != 10
    assert EvaluateOptions(n_examples=10).population is None  # control: a fresh evaluation uses its own size
