"""`runs import` stores only results that check out against a known card and their own outcomes; `runs verify`
re-evaluates a sample and disputes outcomes the submission does not reproduce. Each refusal has an honest control."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from irob_bench import datasets
from irob_bench.artifacts import sha256_file
from irob_bench.attacks.outcomes import derive_flags, load_outcomes, save_outcomes
from irob_bench.attacks.presets import preset
from irob_bench.cli import main
from irob_bench.errors import IrobError
from irob_bench.leaderboard.store import Store, Verification
from irob_bench.metrics import measured_metrics, with_card_ceilings
from irob_bench.results import EvaluationResult

REPO = Path(__file__).resolve().parents[1]
RUNS = sorted((REPO / "leaderboard" / "runs").glob("*.json"))
TOY = REPO / "tests" / "submissions" / "toy.py"
LIPSCHITZ = REPO / "submissions" / "mnist" / "lipschitz" / "submission.py"
PGD_RUN = REPO / "leaderboard" / "runs" / "mnist-pgd.json"
_PGD_METRICS = json.loads(PGD_RUN.read_text())["metrics"]  # the committed row's numbers, which move when it is re-run
_LAST_PGD = _PGD_METRICS["per_eps"][-1]["robust_accuracy_pgd"]


def copy_run(source: Path, folder: Path) -> Path:
    """A committed run and its outcomes copied to `folder` (so a test can edit them)."""
    target = folder / source.name
    shutil.copy(source, target)
    shutil.copy(f"{source}.outcomes.npz", f"{target}.outcomes.npz")
    return target


def edit(path: Path, change) -> Path:
    """Apply `change(raw_json_dict)` to a result file in place."""
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def board(tmp_path: Path, capsys) -> Path:
    """A leaderboard holding one honest import (the control), closed, so refusals can be compared byte for byte."""
    db = tmp_path / "board" / "lb.db"
    code, out, err = run_cli(["runs", "import", str(copy_run(PGD_RUN, tmp_path)), "--db", str(db)], capsys)
    assert code == 0, err
    return db


def test_every_committed_run_imports_and_is_shown_as_imported(tmp_path, capsys):
    db = tmp_path / "lb.db"
    for path in RUNS:
        code, out, err = run_cli(["runs", "import", str(path), "--db", str(db)], capsys)
        assert code == 0, err
        assert "checked against" in out and "stored as run" in out
    code, out, _ = run_cli(["runs", "import", str(RUNS[0]), "--db", str(db)], capsys)
    assert code == 0 and "already in the leaderboard as run 1" in out
    with Store(str(db)) as store:
        rows = store.rows()
        assert [r.provenance for r in rows] == ["imported"] * len(RUNS)
        assert all(Path(store.get(r.run_id).outcomes_file).is_file() for r in rows), "outcomes kept beside the db"
    code, out, _ = run_cli(["leaderboard", "--db", str(db), "--dataset", "mnist"], capsys)
    assert code == 0 and out.count(" imported ") == sum(p.name.startswith("mnist-") for p in RUNS)


def _five_points_more(raw: dict) -> None:
    """+5 pp PGD accuracy at the largest eps, kept consistent with everything but the outcomes (gap moved too)."""
    last = raw["metrics"]["per_eps"][-1]
    last["robust_accuracy_pgd"] = round(last["robust_accuracy_pgd"] + 0.05, 4)
    last["gap"] = last["ceiling_classifier"] - last["robust_accuracy_pgd"]


def _raise_clean(raw: dict) -> None:
    raw["metrics"]["clean_accuracy"] = 7.5


def _unknown_dataset(raw: dict) -> None:
    raw["dataset"]["name"] = "mnist-hd"


def _other_generator(raw: dict) -> None:
    raw["dataset"]["generator_sha256"] = "0" * 64


def _robust_above_clean(raw: dict) -> None:
    raw["metrics"]["per_eps"][0]["robust_accuracy_pgd"] = 0.99


def _legacy_by_omission(raw: dict) -> None:
    """No preset named: a run from before the presets, which the board labels pgd-2x40."""
    del raw["settings"]["attacks"]["preset"]


def _legacy_by_name(raw: dict) -> None:
    raw["settings"]["attacks"]["preset"] = "pgd-2x40"


def _long_version(raw: dict) -> None:
    raw["irob_bench_version"] = "0.1.0+" + "x" * 40  # PostgreSQL's VARCHAR(40) refused it, SQLite stored it


def _counts_do_not_add_up(raw: dict) -> None:
    raw["metrics"]["per_class_count"][0] += 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_raise_clean, "metrics.clean_accuracy: Input should be less than or equal to 1"),
        (_five_points_more,
         f"metrics.per_eps[2].robust_accuracy_pgd = {round(_LAST_PGD + 0.05, 4):g} but the outcomes file gives {_LAST_PGD:g}"),
        (_unknown_dataset, "unknown dataset 'mnist-hd' (available: "),
        (_other_generator, "dataset mnist: generator_sha256 differ from the mnist v"),
        (_robust_above_clean, f"robust_accuracy_pgd 0.99 exceeds the clean accuracy {_PGD_METRICS['clean_accuracy']:g}"),
        (_counts_do_not_add_up, "metrics.per_class_count sums to 10001, settings.n_examples is 10000"),
        (_legacy_by_omission, "outcomes: attack configuration differs from settings.attacks"),
        (_legacy_by_name, "outcomes: attack configuration differs from settings.attacks"),
        (_long_version, "irob_bench_version: String should have at most 40 characters"),
    ],
    ids=["impossible-number", "plus-5pp", "unknown-card", "other-generator", "robust-above-clean", "counts",
         "legacy-label-by-omission", "legacy-label-by-name", "version-too-long"],
)
def test_a_forged_import_is_refused_in_one_line_without_touching_the_db(board, tmp_path, capsys, change, message):
    before = sha256_file(board)
    forged = edit(copy_run(PGD_RUN, tmp_path), change)
    code, out, err = run_cli(["runs", "import", str(forged), "--db", str(board)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert sha256_file(board) == before
    assert len(Store(str(board)).rows()) == 1


def test_outcomes_must_be_there_and_be_the_results_own(board, tmp_path, capsys):
    before = sha256_file(board)
    alone = tmp_path / "alone" / PGD_RUN.name
    alone.parent.mkdir()
    shutil.copy(PGD_RUN, alone)
    code, _, err = run_cli(["runs", "import", str(alone), "--db", str(board)], capsys)
    assert code == 2 and "outcomes file not found" in err
    other = tmp_path / "other.outcomes.npz"  # the same evaluation's file with 50 more points broken at the largest eps
    outcomes = load_outcomes(REPO / "leaderboard" / "runs" / "mnist-pgd.json.outcomes.npz")
    fifty = np.flatnonzero(outcomes.robust_pgd[:, -1])[:50]
    outcomes.robust_pgd[fifty, -1] = False
    outcomes.stage[fifty, -1] = 0  # broken by the first stage: consistent in itself, not the result's own
    outcomes.r_unc[fifty] = np.minimum(outcomes.r_unc[fifty], outcomes.eps[-1])
    outcomes.flags = derive_flags(outcomes)
    save_outcomes(outcomes, other)
    code, _, err = run_cli(["runs", "import", str(alone), "--outcomes", str(other), "--db", str(board)], capsys)
    assert code == 2 and "but the outcomes file gives" in err and err.count("\n") == 1
    assert sha256_file(board) == before
    own = REPO / "leaderboard" / "runs" / "mnist-pgd.json.outcomes.npz"
    assert run_cli(["runs", "import", str(alone), "--outcomes", str(own), "--db", str(board)], capsys)[0] == 0, "control"


def test_a_refused_import_creates_no_database(tmp_path, capsys):
    db = tmp_path / "new" / "lb.db"
    forged = edit(copy_run(PGD_RUN, tmp_path), _raise_clean)
    assert run_cli(["runs", "import", str(forged), "--db", str(db)], capsys)[0] == 2
    assert not db.parent.exists()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    """An honest toy evaluation (24 examples, quick preset) written as JSON + outcomes, not stored."""
    out = tmp_path_factory.mktemp("toy") / "toy.json"
    args = ["--n-examples", "24", "--eps", "1", "--attacks", "quick", "--quiet", "--no-store", "--json", str(out)]
    assert main(["evaluate", str(TOY), *args]) == 0
    return out


def _forge_outcomes(source: Path, target: Path) -> None:
    """A consistent forgery: outcomes that claim every example right and robust, and metrics recomputed from them."""
    result = EvaluationResult.model_validate_json(source.read_text())
    outcomes = load_outcomes(f"{source}.outcomes.npz")
    outcomes.clean_correct = np.ones_like(outcomes.clean_correct)
    outcomes.robust_pgd = np.ones_like(outcomes.robust_pgd)
    outcomes.robust_in = np.ones_like(outcomes.robust_in)
    outcomes.r_unc = np.full_like(outcomes.r_unc, np.inf)
    outcomes.r_in = np.full_like(outcomes.r_in, np.inf)
    outcomes.stage = np.full_like(outcomes.stage, -1)
    outcomes.certified = None  # the forged metrics claim no certified accuracy (an import would recount it)
    card = datasets.load_card(result.dataset.name)
    forged = with_card_ceilings(result.model_copy(update={"metrics": measured_metrics(card, outcomes)}), card)
    save_outcomes(outcomes, f"{target}.outcomes.npz")
    target.write_text(forged.model_dump_json())


@pytest.mark.slow  # two re-evaluations of 12 toy examples: a few seconds
def test_runs_verify_accepts_an_honest_run_and_disputes_consistent_forged_outcomes(toy_run, tmp_path, capsys):
    db = str(tmp_path / "lb.db")
    assert run_cli(["runs", "import", str(toy_run), "--db", db], capsys)[0] == 0
    code, out, err = run_cli(["runs", "verify", "1", "--submission", str(TOY), "--n", "12", "--quiet", "--db", db,
                              "--isolation", "process"], capsys)  # untrusted code: in a worker, which runs the sample
    assert code == 0, err
    assert "run 1: verified on 12 re-evaluated examples" in out
    # a dispute on record stays, and so does the exit code: this sample agrees, the run does not read "verified"
    Store(db).record_verification(1, Verification(verdict="disputed", n=12, seed=7, checked_at="2026-12-07T00:00:00Z",
                                                  detail="an earlier check"))
    code, out, _ = run_cli(["runs", "verify", "1", "--submission", str(TOY), "--n", "12", "--quiet", "--db", db], capsys)
    assert code == 1 and "run 1: verified on 12" in out and "an earlier dispute stays with the run" in out

    forged = tmp_path / "forged.json"
    _forge_outcomes(toy_run, forged)
    forged_db = str(tmp_path / "forged.db")
    assert run_cli(["runs", "import", str(forged), "--db", forged_db], capsys)[0] == 0, "consistent: import passes"
    code, out, _ = run_cli(["runs", "verify", "1", "--submission", str(TOY), "--n", "12", "--quiet", "--db", forged_db], capsys)
    assert code == 1 and "run 1: disputed on 12 re-evaluated examples" in out
    [row] = Store(forged_db).rows()
    assert row.verification.verdict == "disputed"
    assert "imported, disputed (n=12)" in run_cli(["leaderboard", "--db", forged_db], capsys)[1]
    assert "imported, disputed in 1 of 3 checks (n=12)" in run_cli(["leaderboard", "--db", db], capsys)[1]


@pytest.fixture(scope="module")
def certified_run(tmp_path_factory) -> Path:
    """The certified mnist reference on 100 points at eps 2 and 3 (quick preset), written as JSON + outcomes: its
    certificates hold at fewer points than the attacks leave robust (65 / 17 against 72 / 25 here)."""
    out = tmp_path_factory.mktemp("certified") / "lipschitz.json"
    args = ["--n-examples", "100", "--eps", "2", "3", "--attacks", "quick", "--quiet", "--no-store", "--json", str(out)]
    assert main(["evaluate", str(LIPSCHITZ), *args]) == 0
    return out


def _forge_certificates(source: Path, target: Path) -> int:
    """A consistent forgery: a certificate claimed at every robust point, certified accuracy recounted to match (an
    import accepts it: certified within robust, nested, equal to its outcomes, no violation left unflagged). Returns
    the points added at eps 3."""
    result = EvaluationResult.model_validate_json(source.read_text())
    outcomes = load_outcomes(f"{source}.outcomes.npz")
    robust = outcomes.robust_pgd & outcomes.robust_in  # a certificate outside it is a violation, which must be flagged
    added = int((robust & ~outcomes.certified)[:, -1].sum())
    outcomes.certified = robust.copy()
    per_eps = [m.model_copy(update={"certified_accuracy": float(c)})
               for m, c in zip(result.metrics.per_eps, outcomes.certified.mean(axis=0))]
    save_outcomes(outcomes, f"{target}.outcomes.npz")
    target.write_text(result.model_copy(update={"metrics": result.metrics.model_copy(update={"per_eps": per_eps})})
                      .model_dump_json())
    return added


@pytest.mark.slow  # one evaluation and two re-evaluations of the certified reference: about a minute
def test_runs_verify_re_checks_certificates_and_disputes_forged_ones(certified_run, tmp_path, capsys):
    db = str(tmp_path / "lb.db")
    assert run_cli(["runs", "import", str(certified_run), "--db", db], capsys)[0] == 0
    code, out, err = run_cli(["runs", "verify", "1", "--submission", str(LIPSCHITZ), "--n", "40", "--quiet", "--db", db], capsys)
    assert code == 0, err
    assert "certified accuracy at eps 3: stored" in out and "run 1: verified on 40 re-evaluated examples" in out

    forged = tmp_path / "forged.json"
    assert _forge_certificates(certified_run, forged) >= 5  # enough lost pairs for p < 0.05 (2^-5)
    forged_db = str(tmp_path / "forged.db")
    assert run_cli(["runs", "import", str(forged), "--db", forged_db], capsys)[0] == 0, "consistent: import passes"
    code, out, _ = run_cli(["runs", "verify", "1", "--submission", str(LIPSCHITZ), "--n", "100", "--quiet", "--db", forged_db],
                           capsys)
    assert code == 1 and "run 1: disputed on 100 re-evaluated examples, sample seed " in out
    assert "(certified accuracy at eps" in out
    assert "regression  PGD" not in out and "regression  clean" not in out  # only the certificates were forged


@pytest.mark.slow  # one re-evaluation of 6 toy examples
def test_runs_verify_refuses_a_row_whose_metadata_is_not_the_files(toy_run, tmp_path, capsys):
    """An imported row can claim any name for a file it hashes (name squatting); the verify re-evaluation reads the
    file's own METADATA and refuses the row. The honest row verifies (the control, in the test above)."""
    squatted = edit(copy_run(toy_run, tmp_path), lambda raw: raw["submission"]["metadata"].update(name="famous-model"))
    db = str(tmp_path / "lb.db")
    assert run_cli(["runs", "import", str(squatted), "--db", db], capsys)[0] == 0
    code, _, err = run_cli(["runs", "verify", "1", "--submission", str(TOY), "--n", "6", "--quiet", "--db", db], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "the run says metadata.name = 'famous-model', the submission file says 'toy-linear'" in err, err


def test_runs_verify_draws_its_sample_seed_afresh_unless_given_control():
    from irob_bench.gate.spotcheck import draw_seed

    assert len({draw_seed(None) for _ in range(20)}) > 1
    assert draw_seed(7) == 7


def test_runs_verify_refuses_another_submission_file_before_any_work(toy_run, tmp_path, capsys):
    db = tmp_path / "lb.db"
    assert run_cli(["runs", "import", str(toy_run), "--db", str(db)], capsys)[0] == 0
    before = sha256_file(db)
    other = REPO / "tests" / "submissions" / "randomized.py"
    code, _, err = run_cli(["runs", "verify", "1", "--submission", str(other), "--db", str(db)], capsys)
    assert code == 2 and "is not the submission of this run" in err and err.count("\n") == 1
    assert sha256_file(db) == before


def test_a_second_save_of_a_stored_fingerprint_never_replaces_the_stored_outcomes(tmp_path):
    """A forged result with a stored run's fingerprint must not swap that run's outcomes file (a later `runs verify`
    would then test the forgery's outcomes, not the ones the row's numbers were checked against)."""
    from dataclasses import replace

    from irob_bench.evaluate import Evaluation
    from irob_bench.persist import persist

    genuine = Evaluation(result=EvaluationResult.model_validate_json(PGD_RUN.read_text()),
                         outcomes=load_outcomes(f"{PGD_RUN}.outcomes.npz"))
    forged = Evaluation(result=genuine.result, outcomes=replace(genuine.outcomes, robust_pgd=np.ones_like(genuine.outcomes.robust_pgd)))
    with Store(f"sqlite:///{tmp_path / 'lb.db'}") as store:
        stored, first = persist(genuine, store=store)
        kept = sha256_file(stored.outcomes_file)
        again, second = persist(forged, store=store)
        assert first.created and not second.created and second.run_id == first.run_id
        assert again.outcomes_file == stored.outcomes_file and sha256_file(stored.outcomes_file) == kept
        assert not load_outcomes(stored.outcomes_file).robust_pgd.all()  # control: the genuine file, not the all-robust forgery


def _misclassified_robust(o):
    o.robust_pgd[~o.clean_correct.astype(bool), :] = True


def _broken_below_robust_above(o):
    point = int(np.flatnonzero(o.robust_pgd[:, 0] & ~o.robust_pgd[:, -1])[0])  # robust at eps 1, broken at eps 3
    o.robust_pgd[point] = [False, True, True]
    o.stage[point] = [0, -1, -1]  # the stage record agrees, so only the nesting is wrong


def _robust_without_the_stage(o):
    point = int(np.flatnonzero(o.robust_pgd[:, -2] & ~o.robust_pgd[:, -1])[0])  # broken at eps 3 only
    o.robust_pgd[point, -1] = True  # the stage that broke it is still recorded


def _nan_distance(o):
    o.r_unc[int(np.flatnonzero(o.clean_correct)[0])] = np.nan


def _distance_below_a_robust_eps(o):
    point = int(np.flatnonzero(o.robust_pgd[:, -1])[0])  # robust at every eps: its distance must exceed the largest
    o.r_unc[point] = o.eps[0] / 2


def _stage_out_of_range(o):
    point = int(np.flatnonzero(~o.robust_pgd[:, -1] & o.clean_correct.astype(bool))[0])
    o.stage[point, o.stage[point] >= 0] = 99


def _certified_where_misclassified(o):
    o.certified[int(np.flatnonzero(~o.clean_correct.astype(bool))[0]), 0] = True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_misclassified_robust, "robust_pgd counts a misclassified point as robust"),
        (_broken_below_robust_above, "robust_pgd has a point robust at a larger eps but broken at a smaller one"),
        (_robust_without_the_stage, "robust_pgd disagrees with the cascade stage that broke each point"),
        (_nan_distance, "r_unc holds NaN, a negative distance or a non-zero one for a misclassified point"),
        (_distance_below_a_robust_eps, "r_unc disagrees with the eps at which each point is robust or broken"),
        (_stage_out_of_range, "outcomes: stage holds"),
        (_certified_where_misclassified, "certified counts a misclassified point as robust"),
    ],
)
def test_outcomes_that_contradict_themselves_are_refused(tmp_path, capsys, change, message):
    run = copy_run(PGD_RUN, tmp_path)
    outcomes = load_outcomes(f"{run}.outcomes.npz")
    change(outcomes)
    save_outcomes(outcomes, f"{run}.outcomes.npz")
    code, _, err = run_cli(["runs", "import", str(run), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "lb.db").exists() or Store(f"sqlite:///{tmp_path / 'lb.db'}").rows() == []


def test_a_lipschitz_record_other_than_the_cards_is_refused(tmp_path, capsys):
    def scaled(raw):
        raw["dataset"]["lipschitz_constants"] = [v * 1.0000001 for v in raw["dataset"]["lipschitz_constants"]]

    forged = edit(copy_run(PGD_RUN, tmp_path), scaled)
    code, _, err = run_cli(["runs", "import", str(forged), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and "dataset.lipschitz_constants[0] = " in err and "but the mnist v1.1.0 card says" in err, err
    (tmp_path / "honest").mkdir()
    honest = copy_run(PGD_RUN, tmp_path / "honest")
    assert run_cli(["runs", "import", str(honest), "--db", str(tmp_path / "lb.db")], capsys)[0] == 0  # control


@pytest.mark.parametrize("stamp", ["2099-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00", "2019-06-01T00:00:00"])
def test_a_result_dated_in_the_future_or_before_irob_bench_is_refused_in_one_line(tmp_path, capsys, stamp):
    forged = edit(copy_run(PGD_RUN, tmp_path), lambda raw: raw.update(created_at=stamp))
    code, _, err = run_cli(["runs", "import", str(forged), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and err.count("\n") == 1 and "created_at" in err, err
    (tmp_path / "now").mkdir()
    now = edit(copy_run(PGD_RUN, tmp_path / "now"), lambda raw: raw.update(created_at=datetime.now(timezone.utc).isoformat()))
    assert run_cli(["runs", "import", str(now), "--db", str(tmp_path / "lb.db")], capsys)[0] == 0  # control: today


def test_certified_accuracy_claimed_without_per_point_certificates_is_refused(tmp_path, capsys):
    run = copy_run(PGD_RUN, tmp_path)
    outcomes = load_outcomes(f"{run}.outcomes.npz")
    outcomes.certified = None  # stripped, so the file looks like one made before irob-bench certified

    def claim_pgd(raw):
        for m in raw["metrics"]["per_eps"]:
            m["certified_accuracy"], m["certified_reason"] = m["robust_accuracy_pgd"], None

    save_outcomes(outcomes, f"{run}.outcomes.npz")
    code, _, err = run_cli(["runs", "import", str(edit(run, claim_pgd)), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and "has no per-point certificates" in err, err
    edit(run, lambda raw: [m.update(certified_accuracy=0.0) for m in raw["metrics"]["per_eps"]])
    assert run_cli(["runs", "import", str(run), "--db", str(tmp_path / "lb.db")], capsys)[0] == 0  # control: claims nothing


def test_an_outcomes_file_that_unpacks_to_gigabytes_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("irob_bench.attacks.outcomes.MAX_OUTCOMES_BYTES", 600 << 10)  # below the genuine 672 KiB
    run = copy_run(PGD_RUN, tmp_path)
    code, _, err = run_cli(["runs", "import", str(run), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and "bytes uncompressed, more than any outcomes file" in err, err
    monkeypatch.undo()  # control: the genuine file under the real cap
    assert run_cli(["runs", "import", str(run), "--db", str(tmp_path / "lb.db")], capsys)[0] == 0


def _relabel(config_of):
    """Outcomes and settings both carrying `config_of(genuine config)`: consistent with each other, so only the
    preset check can refuse them."""

    def change(run: Path) -> None:
        outcomes = load_outcomes(f"{run}.outcomes.npz")
        outcomes.config = config_of(outcomes.config)
        save_outcomes(outcomes, f"{run}.outcomes.npz")
        edit(run, lambda raw: raw["settings"].update(attacks={**outcomes.config_dict(), "in_distribution": outcomes.config.latent.method}))

    return change


@pytest.mark.parametrize(
    ("config_of", "refused"),
    [
        (lambda c: preset("quick").model_copy(update={"preset": "standard"}), True),  # weak attacks under the name
        (lambda c: preset("quick").model_copy(update={"preset": "\u0455tandard"}), True),  # a look-alike name
        (lambda c: c.model_copy(update={"eot_samples": 3}), True),  # standard with EOT on a deterministic model
        (lambda c: preset("quick").model_copy(update={"preset": "custom"}), False),  # control: honest "custom"
    ],
)
def test_a_preset_name_must_be_that_presets_configuration(tmp_path, capsys, config_of, refused):
    run = copy_run(PGD_RUN, tmp_path)
    _relabel(config_of)(run)
    code, _, err = run_cli(["runs", "import", str(run), "--db", str(tmp_path / "lb.db")], capsys)
    if refused:
        assert code == 2 and "is not that preset's configuration" in err, err
    else:
        # past the name check, refused for its stages (quick's three, with the in-distribution one, against standard's)
        assert code == 2 and "metrics.unconstrained_stages[2].name = apgd-t-long but the outcomes file gives" in err, err


def test_a_subset_drawn_with_another_seed_is_refused(tmp_path, capsys):
    """Re-indexing genuine outcomes under a chosen subset seed could select easy points (44% instead of 35.4%)."""
    forged = edit(copy_run(PGD_RUN, tmp_path), lambda raw: raw["settings"].update(subset_seed=874))
    code, _, err = run_cli(["runs", "import", str(forged), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and "settings.subset_seed is 874" in err, err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["settings"].update(device="CPU"), "settings.device"),  # the same run stored twice under two spellings
        (lambda raw: raw["dataset"].update(version="9.9.9"), "v9.9.9 is newer than the card this irob-bench ships (v1.1.0)"),
        (lambda raw: raw["dataset"].update(version="1.1.0 "), "dataset version '1.1.0 ' is not a release number"),
        (lambda raw: raw["dataset"].update(version="1.0.99"), "v1.0.99: only results on the card this irob-bench ships"),
    ],
)
def test_a_respelled_device_or_a_future_card_version_is_refused(tmp_path, capsys, change, message):
    """Each refused spelling would have opened a ranked table of its own; the committed run (v1.1.0) imports, in the
    tests above, as the control."""
    forged = edit(copy_run(PGD_RUN, tmp_path), change)
    code, _, err = run_cli(["runs", "import", str(forged), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and message in err, err


def test_a_violated_certificate_must_carry_its_flag_and_an_honest_file_needs_none_control():
    from irob_bench.import_checks import check_violation_flags
    from irob_bench.results import SanityFlag

    result = EvaluationResult.model_validate_json(PGD_RUN.read_text())
    outcomes = load_outcomes(f"{PGD_RUN}.outcomes.npz")
    check_violation_flags(result, outcomes)  # control: no certificate is broken, no flag is raised
    broken = int(np.flatnonzero(outcomes.clean_correct.astype(bool) & ~outcomes.robust_pgd[:, 0])[0])
    outcomes.certified[broken, 0] = True  # certified at the smallest eps, yet an attack broke it there
    with pytest.raises(IrobError, match=r"certificate_violated is raised at eps \[\]"):
        check_violation_flags(result, outcomes)
    flagged = result.model_copy(update={"flags": [*result.flags, SanityFlag(
        name="certificate_violated", eps=outcomes.eps[0], message="1 point(s) certified ...")]})
    check_violation_flags(flagged, outcomes)


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw.update(flags=[f for f in raw["flags"] if f["name"] != "later_stage_breaks_more"]),
     "flags: the result states other attack flags than its outcomes give (later_stage_breaks_more)"),
    (lambda raw: raw.update(flags=[*raw["flags"], {**raw["flags"][0], "name": "noise_breaks_more"}]),
     "flags: the result states other attack flags than its outcomes give (noise_breaks_more)"),
    (lambda raw: raw.update(flags=[{**f, "message": "all fine"} for f in raw["flags"]]),
     "flags: the result states other attack flags than its outcomes give (their wording or order)"),
])  # fmt: skip
def test_attack_flags_are_rederived_on_import_so_none_is_dropped_or_invented(tmp_path, capsys, change, message):
    """The committed run (flags: verification_rejected, in_distribution_not_converged, later_stage_breaks_more)
    imports unchanged in the tests above: the control."""
    forged = edit(copy_run(PGD_RUN, tmp_path), change)
    code, _, err = run_cli(["runs", "import", str(forged), "--db", str(tmp_path / "lb.db")], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def _npy(shape: tuple[int, ...], dtype: str = "<f8", payload: bytes = b"") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


@pytest.mark.parametrize(("members", "what"), [
    ({"indices": _npy((1 << 42,))}, "MemoryError"),  # a 32 TiB array declared in a 100-byte file
    ({"meta_json": _npy((200_000,), "|u1", b"[" * 100_000 + b"]" * 100_000)}, "RecursionError"),
])  # fmt: skip
def test_an_outcomes_file_that_declares_a_huge_array_or_nests_deeply_is_one_line(tmp_path, members, what):
    with pytest.raises(IrobError, match=f"not an attack outcomes file \\({what}"):
        load_outcomes(_npz(tmp_path / "forged.npz", members))
    load_outcomes(f"{PGD_RUN}.outcomes.npz")  # control: a real file reads


def test_a_consistent_forgery_above_the_ceiling_imports_but_is_never_ranked(board, tmp_path, capsys):
    """The forgery a user can make without running anything: the committed PGD-AT row with every correctly classified
    point claimed robust at every eps, metrics and flags recomputed by irob-bench's own functions, under another name.
    It is consistent, so `runs import` stores it; it then claims robust accuracies above its own ceilings, which the
    leaderboard does not rank, in any format. Control: the honest row in the same table keeps rank 1."""
    result = EvaluationResult.model_validate_json(PGD_RUN.read_text())
    outcomes = load_outcomes(f"{PGD_RUN}.outcomes.npz")
    correct = outcomes.clean_correct
    robust = np.repeat(correct[:, None], len(outcomes.eps), axis=1)
    outcomes.robust_pgd, outcomes.robust_in = robust, robust.copy()
    outcomes.stage = np.where(robust, -1, 0).astype(outcomes.stage.dtype)
    outcomes.r_unc = outcomes.r_in = np.where(correct, 50.0, 0.0)
    outcomes.certified = None
    outcomes.flags = derive_flags(outcomes)
    card = datasets.load_card(result.dataset.name)
    metadata = result.submission.metadata.model_copy(update={"name": "totally-robust"})
    forged = with_card_ceilings(result.model_copy(update={
        "metrics": measured_metrics(card, outcomes), "flags": outcomes.flags,
        "submission": result.submission.model_copy(update={"metadata": metadata, "file_sha256": "a" * 64})}), card)
    assert any(f.name == "above ceiling" for f in forged.flags)
    target = tmp_path / "forged.json"
    target.write_text(forged.model_dump_json())
    save_outcomes(outcomes, f"{target}.outcomes.npz")
    assert run_cli(["runs", "import", str(target), "--db", str(board)], capsys)[0] == 0, "consistent: import passes"

    code, out, err = run_cli(["leaderboard", "--db", str(board), "--format", "json"], capsys)
    assert code == 0, err
    ranks = {r["submission"]: r["rank"] for r in json.loads(out)}
    assert ranks == {result.submission.metadata.name: 1, "totally-robust": None}
    table = run_cli(["leaderboard", "--db", str(board)], capsys)[1]
    forged_line = next(line for line in table.splitlines() if "totally-robust" in line)
    assert forged_line.lstrip().startswith("—") and "above ceiling@" in forged_line


def test_importing_a_rebounded_run_updates_the_stored_ceilings_instead_of_adding_a_run(tmp_path, capsys):
    """A board holds the PGD-AT row as it was bounded before a Lipschitz-only card update (other constants and
    ceilings); `runs import` of the row bounded from today's card is the same run: the stored run takes today's
    ceilings, and no second run appears (found by an audit: the fingerprint hashed the Lipschitz record)."""
    today = EvaluationResult.model_validate_json(PGD_RUN.read_text())
    per_eps = [m.model_copy(update={"ceiling_classifier": None, "gap": None}) for m in today.metrics.per_eps]
    before = today.model_copy(update={
        "dataset": today.dataset.model_copy(update={"lipschitz_radius": today.dataset.lipschitz_radius / 2}),
        "metrics": today.metrics.model_copy(update={"per_eps": per_eps})})
    db = tmp_path / "lb.db"
    with Store(str(db)) as board:
        run_id = board.save(before).run_id
    code, out, err = run_cli(["runs", "import", str(copy_run(PGD_RUN, tmp_path)), "--db", str(db)], capsys)
    assert code == 0, err
    assert f"already in the leaderboard as run {run_id}" in out and "its ceilings now rest on" in out
    with Store(str(db)) as board:
        [row] = board.rows()
        assert board.get(run_id).dataset == today.dataset
    assert [m.ceiling_classifier for m in row.per_eps] == [m.ceiling_classifier for m in today.metrics.per_eps]
    assert all(m.ceiling_classifier is not None for m in row.per_eps)  # control: the stored run had none before
    code, out, _ = run_cli(["runs", "import", str(copy_run(PGD_RUN, tmp_path)), "--db", str(db)], capsys)
    assert code == 0 and "its ceilings now rest on" not in out  # imported again: nothing left to change


def test_only_the_shipped_cards_ceilings_replace_a_stored_runs():
    """A card file given with --dataset, or another install's Lipschitz section, never re-bounds a stored run (found
    by a review); the committed row, bounded from the shipped card, does."""
    from irob_bench.persist import bounded_by_shipped_card

    today = EvaluationResult.model_validate_json(PGD_RUN.read_text())
    assert bounded_by_shipped_card(today)
    other = today.dataset.model_copy(update={"lipschitz_radius": today.dataset.lipschitz_radius / 2})
    assert not bounded_by_shipped_card(today.model_copy(update={"dataset": other}))
    unknown = today.dataset.model_copy(update={"name": "mnist-private"})
    assert not bounded_by_shipped_card(today.model_copy(update={"dataset": unknown}))
