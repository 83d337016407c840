"""CLI hygiene: arguments checked before any heavy import or database access, one-line errors, read-only commands
that create nothing, and --help / --version without torch."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from irob_bench.cli import main
from irob_bench.commands.arguments import output_folder
from irob_bench.commands.lipschitz import HELP_DEFAULTS
from irob_bench.lipschitz.settings import ESTIMATORS

TOY = Path(__file__).parent / "submissions" / "toy.py"
REPO = Path(__file__).resolve().parents[1]

_IMPORTS = """
import sys
from irob_bench.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("loaded:" + ",".join(m for m in ("torch", "numpy", "sqlalchemy") if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["evaluate", "--help"], ["runs", "verify", "--help"]])
def test_help_and_version_import_no_torch(args):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True, check=True)
    assert done.stderr.splitlines()[-1] == "loaded:", f"{args} imported {done.stderr.splitlines()[-1]}"
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", str(TOY), "--shard", "1/2"], "--shard 1/2 needs --json FILE"),
        (["lipschitz", "estimate", "mnist", "--replace"], "--replace only makes sense with --write"),
        (["lipschitz", "estimate", "mnist", "--neighbors", "9", "--method", "gradient"],
         "--neighbors is an option of --method sampling, not of --method gradient"),  # it was ignored
        (["lipschitz", "estimate", "mnist", "--starts", "3"], "--starts is an option of --method gradient, not of --method sampling"),
        (["lipschitz", "radius", "mnist", "--neighbors", "9"], "--neighbors is an option of --method sampling, not of --method gradient"),
        (["evaluate", str(TOY), "--no-store", "--db", "x.db"], "--db names where to store the run, but --no-store stores"),
        (["evaluate", str(TOY), "--shard", "1/2", "--json", "s.json", "--db", "x.db"], "but --shard stores nothing"),
        (["leaderboard", "--db", "typo.db"], "/typo.db: no such file (a mistyped --db?"),
        (["runs", "list", "--db", "typo.db"], "/typo.db: no such file"),
        (["runs", "verify", "1", "--submission", str(TOY), "--db", "typo.db"], "/typo.db: no such file"),
    ],
)
def test_checks_that_need_two_arguments_fail_without_importing_torch(tmp_path, args, message):
    """Found by an audit: each answered after a torch import (4-8 s), or read a mistyped --db as an empty leaderboard.
    Control: test_the_control_a_command_that_runs_does_import_torch (and test_a_default_leaderboard_...)."""
    done = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True, cwd=tmp_path)
    err = done.stderr.splitlines()
    assert len(err) == 2 and message in err[0] and err[1].startswith("loaded:"), done.stderr
    assert "torch" not in err[1] and list(tmp_path.iterdir()) == [], done.stderr


def test_reading_a_stored_leaderboard_imports_no_torch(tmp_path):
    """`leaderboard` and `runs` took 4.3 s, most of it a torch import through the result's submission metadata (found
    by an audit). Control: test_the_control_a_command_that_runs_does_import_torch."""
    from irob_bench.leaderboard.store import Store

    from .factories import make_result

    db = str(tmp_path / "lb.db")
    with Store(db) as store:
        store.save(make_result("stored"))
    for args in (["leaderboard"], ["runs", "list"], ["runs", "show", "1"], ["leaderboard", "--format", "json"]):
        done = subprocess.run([sys.executable, "-c", _IMPORTS, *args, "--db", db], capture_output=True, text=True)
        assert "stored" in done.stdout and "torch" not in done.stderr.splitlines()[-1], (args, done.stderr)


def test_gate_store_refuses_a_mistyped_db_before_creating_it(tmp_path, capsys):
    """`gate --store --db typo.db` created and migrated typo.db, then said 'no run 1' (found by a review). Control: the
    gate tests that store into a database (tests/test_gate.py)."""
    typo = tmp_path / "typo.db"
    assert main(["gate", str(TOY), "--baseline", "1", "--db", str(typo), "--store"]) == 2
    assert "typo.db: no such file (a mistyped --db?" in capsys.readouterr().err and not typo.exists()


@pytest.mark.parametrize(("world_size", "installed"), [(None, True), ("2", False)])
def test_sigterm_raises_only_while_the_command_runs_and_never_under_torchrun(world_size, installed):
    """A torchrun rank blocked in a collective runs no Python handler: SIGTERM keeps its default action there (found
    by a review), and after the command it is restored everywhere. The control is the other parameter."""
    probe = ("import signal, sys\n"
             "import irob_bench.commands.datasets as d\n"
             "seen = []\n"
             "d._list = lambda args: seen.append(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)\n"
             "sys.argv = ['irob-bench', 'datasets', 'list']\n"
             "from irob_bench.cli import _run\n"
             "_run(None)\n"  # main's run of the command (main itself then ends a torchrun rank: test_torchrun.py)
             "print(seen[0], signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n")
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"} | ({"WORLD_SIZE": world_size} if world_size else {})
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == [str(installed), "True"], done


def test_a_default_leaderboard_that_does_not_exist_yet_reads_as_empty(tmp_path, monkeypatch, capsys):
    """The control of the mistyped --db: a new user's first `leaderboard` (no --db) is an empty table, not an error,
    and creates nothing."""
    monkeypatch.setenv("IROB_BENCH_DB", str(tmp_path / "fresh.db"))
    assert main(["leaderboard"]) == 0 and main(["runs", "list"]) == 0
    assert "no runs stored" in capsys.readouterr().out and list(tmp_path.iterdir()) == []


def test_the_control_a_command_that_runs_does_import_torch():
    done = subprocess.run([sys.executable, "-c", _IMPORTS, "validate", str(TOY), "--isolation", "none"],
                          capture_output=True, text=True, check=True)  # it runs a model (ceiling, arithmetic, does not)
    assert "torch" in done.stderr.splitlines()[-1]


def test_help_defaults_are_the_estimators_defaults():
    for method, defaults in HELP_DEFAULTS.items():
        for name, value in defaults.items():
            assert ESTIMATORS.get(method).model_fields[name].default == value, (method, name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", str(TOY), "--batch-size", "0"], "argument --batch-size: expected an integer > 0, got '0'"),
        (["evaluate", str(TOY), "--json", "/nonexistent/dir/out.json"], "argument --json: folder /nonexistent/dir does not exist"),
        (["evaluate", str(TOY), "--eps", "1", "-2"], "argument --eps: expected a number > 0, got '-2'"),
        (["evaluate", str(TOY), "--n-examples", "0"], "expected a positive integer or 'all', got '0'"),
        (["evaluate", str(TOY), "--device", "gpu"], "argument --device: expected cpu or cuda[:N], got 'gpu'"),
        (["gate", str(TOY), "--baseline", "1", "--alpha", "2"], "argument --alpha: expected a number in (0, 1], got '2'"),
        (["runs", "verify", "1", "--submission", str(TOY), "--n", "-5"], "argument --n: expected an integer > 0"),
        (["leaderboard", "--out", "/nonexistent/board.md"], "argument --out: folder /nonexistent does not exist"),
        (["train", "standard", "--out", str(TOY)], f"argument --out: {TOY} is a file, not a folder"),
        (["train", "standard", "--out", f"{TOY}/ref"], f"argument --out: {TOY} is a file, so folder {TOY}/ref cannot be made"),
        (["train", "standard", "--out", "/tmp", "--checkpoint", "/nonexistent/t.pt"], "argument --checkpoint: folder /nonexistent does not exist"),
        (["generators", "export-sngan", "--checkpoint-dir", ".", "--out", str(TOY)], "is a file, not a folder"),
        (["generators", "train", "cifar", "--out", str(TOY)], f"argument --out: {TOY} is a file, not a folder"),
        (["generators", "checker", "cifar", "--out", "/nonexistent/c.pt"], "argument --out: folder /nonexistent does not exist"),
        # found by an audit: each was a traceback, a silent oddity or a failure after the work
        (["train", "standard", "--out", "/tmp", "--epochs", "0"], "argument --epochs: expected an integer > 0, got '0'"),
        (["train", "standard", "--out", "/tmp", "--width", "-4"], "argument --width: expected an integer > 0, got '-4'"),
        (["train", "standard", "--out", "/tmp", "--train-points", "-59700"], "argument --train-points: expected an integer > 0"),
        (["train", "pgd", "--out", "/tmp", "--eps", "1", "--attack-steps", "-3"], "argument --attack-steps: expected an integer > 0"),
        (["ceiling", "--lipschitz", "4", "--alpha", "0.015", "--delta", "0.001", "--eps", "1", "--anchors", "0"],
         "argument --anchors: expected an integer > 0, got '0'"),
        (["ceiling", "--lipschitz", "4", "--alpha", "0.015", "--delta", "0.001", "--eps", "1", "--anchors", "9", "--beta", "1.5"],
         "argument --beta: expected a number in (0, 1]"),
        (["lipschitz", "audit", "mnist", "--delta", "1"], "argument --delta: expected a number in (0, 1), got '1'"),
        (["lipschitz", "audit", "mnist", "--out", "/tmp"], "argument --out: /tmp is a directory, not a file"),
        (["datasets", "preview", "mnist", "--out", "/tmp/x.png", "--per-class", "0"], "argument --per-class: expected an integer > 0"),
        (["datasets", "build", "mnist", "--out", str(TOY)], f"argument --out: {TOY} is a file, not a folder"),
        (["generators", "train", "mnist", "--out", "/tmp/g", "--batch-size", "0"], "argument --batch-size: expected an integer > 0"),
        (["evaluate", str(TOY), "--seed", "4294967296"], "argument --seed: expected an integer in [0, 2,147,483,647]"),
        (["evaluate"], "the following arguments are required: path"),
        (["evaluate", "nosuch.py"], "argument path: submission file not found: nosuch.py"),
        (["gate", str(TOY.parent), "--baseline", "1"], f"argument path: {TOY.parent} is a directory; give the submission's .py file"),
        # found by the second audit: each failed only after a torch import, a sandbox start or the work
        (["validate", str(TOY), "--dataset", "nosuch"], "argument --dataset: unknown dataset 'nosuch' (available: "),
        (["evaluate", str(TOY), "--dataset", "nosuch"], "argument --dataset: unknown dataset 'nosuch' (available: "),
        (["gate", str(TOY), "--baseline", "1", "--dataset", "nosuch"], "argument --dataset: unknown dataset 'nosuch'"),
        (["evaluate", str(TOY.parent / "syntax_error.py")], "argument path: syntax error in syntax_error.py line 3"),
        (["lipschitz", "estimate", "mnist", "--checkpoint", "/proc/x"], "argument --checkpoint: folder /proc is not writable"),
        (["lipschitz", "audit", "mnist", "--checkpoint", str(TOY)], f"argument --checkpoint: {TOY} is a file, not a folder"),
        (["generators", "checker", "cifar", "--out", "/tmp/c.pt", "--architecture", "vgg"],
         "argument --architecture: invalid choice: 'vgg' (choose from 'smallcnn', 'resnet9')"),
        (["generators", "checker", "cifar", "--out", "/tmp/c.pt", "--checkpoint", "/nonexistent/c.state"],
         "argument --checkpoint: folder /nonexistent does not exist"),
        (["generators", "train-sngan", "--data", ".", "--checkpoint-dir", "/tmp/x", "--iterations", "0"],
         "argument --iterations: expected an integer > 0, got '0'"),
        # root may write anywhere by its permission bits, /sys included: only creating a file tells
        (["evaluate", str(TOY), "--json", "/sys/out.json"], "argument --json: folder /sys is not writable"),
    ],
)
def test_bad_arguments_fail_while_parsing_in_one_line_and_touch_no_database(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("IROB_BENCH_DB", str(tmp_path / "lb.db"))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["evaluate", str(TOY)], ["runs", "merge", str(TOY), str(TOY)]])  # paths that exist
def test_a_result_whose_outcomes_path_is_a_folder_is_refused_while_parsing(tmp_path, monkeypatch, capsys, command):
    """Found by an audit: evaluate failed after the whole evaluation, naming a temporary file. Control: the same
    --json without the folder passes the parser (test_bad_arguments... and the evaluations of test_evaluate)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.json.outcomes.npz").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--json", "taken.json"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "argument --json: taken.json.outcomes.npz (where the result's outcomes go) is a directory" in err, err


@pytest.fixture
def no_sandbox(monkeypatch):
    """Fail the test if the submission's sandbox is started: the check under test must answer before it."""
    def started(*_args, **_kwargs):
        raise AssertionError("the submission's sandbox was started")

    monkeypatch.setattr("irob_bench.isolation.sandbox.evaluate_isolated", started)


def test_a_device_this_machine_lacks_fails_before_the_sandbox_starts(no_sandbox, tmp_path, monkeypatch, capsys):
    """Found by an audit: --device cuda without CUDA failed in the worker, after it had started and loaded the model."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # as on this CPU machine, also where CUDA exists
    assert main(["evaluate", str(TOY), "--device", "cuda", "--db", str(tmp_path / "lb.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda: CUDA is not available on this machine" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "mnist", "--n-examples", "20000"], "--n-examples must be between 1 and 10000, got 20000"),
        (["--dataset", "mnist", "--shard", "3/5", "--json", "s.json"], "--shard 3/5: the 300 points make 2 chunks"),
        (["--eps", "1", "2", "1.0"], "--eps lists 1 more than once"),  # crashed after the whole evaluation
        # was an OverflowError or a 16 MB result after the whole evaluation (the curve grid had eps / 0.1 points)
        (["--dataset", "mnist", "--eps", "1", "28.5"], "--eps 28.5 is larger than mnist's image diameter 28 "),
    ],
)
def test_options_a_named_dataset_settles_fail_before_the_sandbox_starts(no_sandbox, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IROB_BENCH_DB", str(tmp_path / "lb.db"))  # not --db, which --shard refuses
    assert main(["evaluate", str(TOY), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("/sys/board.db", "database sqlite:////sys/board.db: cannot be written"),  # was found after the evaluation
        ("", "the database URL is empty (an unset variable?)"),  # was: the personal default board, silently
        ("postgresql+psycopg://u:s3cret@127.0.0.1:54x32/db", "bad database URL 'postgresql+psycopg://u:***@"),
        ("mysql://u:s3cret@h/db", "database mysql://u:***@h/db: its driver is not installed"),  # was a traceback
    ],
)
def test_a_database_that_cannot_take_the_result_fails_before_the_work(no_sandbox, tmp_path, monkeypatch, capsys, db, message):
    """Found by an audit. Control: the evaluations of test_evaluate store into a writable file."""
    assert main(["evaluate", str(TOY), "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "s3cret" not in err, err


def test_an_os_error_after_the_work_is_one_line_and_exit_2_not_the_gates_regression_code(tmp_path, monkeypatch, capsys):
    def full_disk(path, _text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("irob_bench.persist.atomic_write_text", full_disk)
    out = tmp_path / "toy.json"
    args = ["evaluate", str(TOY), "--n-examples", "4", "--eps", "1", "--attacks", "quick", "--quiet", "--no-store", "--isolation", "none"]
    assert main([*args, "--json", str(out)]) == 2
    assert capsys.readouterr().err == f"irob-bench: error: No space left on device: {out}\n"
    assert not out.exists()


def test_a_result_the_database_refuses_after_the_work_is_kept_for_runs_import(tmp_path, monkeypatch, capsys):
    """A write lock held past the busy timeout when the evaluation ends lost the run (found by an audit). Now the
    result is kept where the message says, and `runs import` stores it (the control: it is a whole, valid result)."""
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.store import Store

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    real_save = Store.save

    def locked(self, *_args, **_kwargs):
        raise IrobError(f"database {self.label}: database is locked")

    monkeypatch.setattr(Store, "save", locked)
    db = tmp_path / "lb.db"
    args = ["evaluate", str(TOY), "--n-examples", "4", "--eps", "1", "--attacks", "quick", "--quiet", "--isolation", "none"]
    assert main([*args, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "database is locked; nothing was stored, and the result is kept in" in err, err
    kept = err.split("kept in ")[1].split(":")[0]
    monkeypatch.setattr(Store, "save", real_save)
    assert main(["runs", "import", kept, "--db", str(db)]) == 0
    assert [r.submission for r in Store(str(db)).rows()] == ["toy-linear"]


@pytest.mark.parametrize("with_json", [False, True])
def test_a_database_that_cannot_be_opened_after_the_work_keeps_the_result(tmp_path, monkeypatch, capsys, with_json):
    """Opening the store upgrades its schema under the write lock: a lock held then lost the finished run, JSON and
    all (found by an audit). Now it is kept (in --json FILE if given), and `runs import` stores it (the control)."""
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.store import Store

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    def locked(url):
        raise IrobError(f"database {url}: database is locked")

    monkeypatch.setattr("irob_bench.persist.Store", locked)
    db, out = tmp_path / "lb.db", tmp_path / "toy.json"
    args = ["evaluate", str(TOY), "--n-examples", "4", "--eps", "1", "--attacks", "quick", "--quiet", "--isolation", "none",
            "--db", str(db), *(["--json", str(out)] if with_json else [])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "database is locked; nothing was stored, and the result is kept in" in err, err
    kept = err.split("kept in ")[1].split(":")[0]
    assert (kept == str(out)) == with_json and Path(f"{kept}.outcomes.npz").is_file()
    monkeypatch.undo()
    assert main(["runs", "import", kept, "--db", str(db)]) == 0
    assert [r.submission for r in Store(str(db)).rows()] == ["toy-linear"]


def test_a_huge_n_examples_is_refused_before_the_work_without_a_dataset(capsys):
    """Without --dataset the submission names the dataset, and 1e11 points ran the machine out of memory building the
    time limit's chunks (found by an audit). Now it is one line before any worker starts; control: --dataset mnist."""
    base = ["evaluate", str(TOY), "--no-store", "--quiet", "--isolation", "none", "--n-examples"]
    assert main([*base, "99999999999"]) == 2
    assert capsys.readouterr().err == ("irob-bench: error: --n-examples must be between 1 and 10000 (the largest test "
                                       "set of any dataset), got 99999999999\n")
    assert main([*base, "10001", "--dataset", "mnist"]) == 2
    assert capsys.readouterr().err == "irob-bench: error: --n-examples must be between 1 and 10000, got 10001\n"


@pytest.mark.parametrize("args, message", [
    (["ceiling", "--lipschitz", "10", "--alpha", "0.1", "--delta", "0.01", "--eps", "inf", "--json"],
     "argument --eps: expected a number that is finite, got 'inf'"),  # printed "eps": Infinity, which is not JSON
    (["ceiling", "--lipschitz", "\uff13", "--alpha", "0.1", "--delta", "0.01", "--eps", "1"],
     "argument --lipschitz: expected a number, got '\uff13'"),  # a fullwidth 3 was read as 3
    (["evaluate", str(TOY), "--n-examples", "\uff18"], "argument --n-examples: expected a positive integer or 'all'"),
    (["evaluate", str(TOY), "--seed", "\u0663"], "argument --seed: expected an integer"),  # an Arabic-Indic 3
    (["validate", str(TOY), "--memory-mb", "99999999999999"], "argument --memory-mb: expected an integer in (255, "),
    (["validate", str(TOY), "--timeout", "1e300"], "argument --timeout: expected a number in (0, 1e+09]"),
    (["validate", str(REPO / "README.md")], "argument path: submission must be a .py file"),
    (["lipschitz", "estimate", "mnist", "--samples", "0"], "argument --samples: expected an integer > 0, got '0'"),
    (["lipschitz", "estimate", "mnist", "--lanczos-tolerance", "nan"], "argument --lanczos-tolerance: expected a number"),
    (["leaderboard", "--plot", "robustness.txt"], "argument --plot: a figure is written as .png or .svg"),  # a PNG
    (["runs", "import", "missing.json"], "argument path: result file not found: missing.json"),  # was: after importing torch
    (["runs", "verify", "1", "--submission", str(REPO)], "argument --submission: " + f"{REPO} is a directory"),
])
def test_bad_numbers_and_files_fail_while_parsing(args, message, capsys):
    """Found by an audit: these ran jobs (non-ASCII digits), crashed with a traceback after starting a worker
    (setrlimit overflow), printed invalid JSON, or failed only after importing torch."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_the_same_commands_with_good_values_run(capsys):
    """Control of the test above: finite values, ASCII digits and a .py file pass the parser."""
    assert main(["ceiling", "--lipschitz", "10", "--alpha", "0.1", "--delta", "0.01", "--eps", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ceilings"][0]["eps"] == 1.0
    assert main(["validate", str(TOY), "--memory-mb", "4096", "--timeout", "600", "--isolation", "process"]) == 0


@pytest.mark.parametrize("limit", [["--timeout", "600"], ["--memory-mb", "4096"]])
def test_a_worker_limit_without_a_worker_is_refused(limit, capsys, monkeypatch):
    """--timeout and --memory-mb limit the isolated worker; with isolation none (given, or from the environment) they
    were silently ignored. Control: the test above, where a worker runs with both."""
    assert main(["validate", str(TOY), *limit, "--isolation", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{limit[0]} limits the isolated worker, but isolation 'none'" in err, err
    monkeypatch.setenv("IROB_BENCH_ISOLATION", "none")
    assert main(["validate", str(TOY), *limit]) == 2


def test_datasets_list_takes_a_glob(capsys):
    """`datasets list 'saturated-*'` (timm's list_models('glob*')); a glob that matches nothing is one line naming
    what is available; control: without a pattern every shipped dataset is listed."""
    assert main(["datasets", "list", "saturated-cifar-p*"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed and all(name.startswith("saturated-cifar-p") for name in listed)
    assert main(["datasets", "list", "Mnist*"]) == 2  # names are matched case-sensitively
    assert capsys.readouterr().err.startswith("irob-bench: error: no dataset matches 'Mnist*' (available: imagenet10, mnist")
    assert main(["datasets", "list"]) == 0
    assert {"mnist", *listed} <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}


def test_a_figure_asked_with_the_website_is_refused_not_ignored(tmp_path, monkeypatch, capsys):
    """`--format html --plot p.png` wrote the site and silently no figure (found by an audit); control: the site alone."""
    monkeypatch.setenv("IROB_BENCH_DB", str(tmp_path / "lb.db"))  # the default leaderboard, not created yet: empty
    site = tmp_path / "site"
    assert main(["leaderboard", "--format", "html", "--out", str(site), "--plot", str(tmp_path / "p.png")]) == 2
    assert "the website draws its own" in capsys.readouterr().err and not site.exists()
    assert main(["leaderboard", "--format", "html", "--out", str(site)]) == 0 and (site / "index.html").is_file()


def test_a_crash_in_the_submissions_own_code_run_in_process_is_its_error_not_ours(tmp_path, capsys, monkeypatch):
    """Found by an audit: with --isolation none a model whose forward raises was reported as irob-bench's internal
    error (exit 3). Now the line names the submission's file and line (exit 2); control: a crash in irob-bench's own
    code stays an internal error."""
    broken = tmp_path / "broken.py"
    broken.write_text(TOY.read_text().replace("    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))", """
    class Broken(nn.Module):  # sound while validated, broken under attack
        calls = 0

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(784, 10)

        def forward(self, x):
            Broken.calls += 1
            if Broken.calls > 5:
                raise RuntimeError("forward broke")
            return self.linear(x.flatten(1))

    return Broken()"""))
    args = ["evaluate", str(broken), "--n-examples", "4", "--eps", "1", "--attacks", "quick", "--quiet", "--no-store",
            "--isolation", "none"]
    assert main(args) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("irob-bench: error: the submission raised RuntimeError: forward broke at broken.py:"), last
    assert main(["evaluate", str(TOY), *args[2:]]) == 0  # the same command with a sound model
    capsys.readouterr()

    def bug(*_args, **_kwargs):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr("irob_bench.persist.persist", bug)
    assert main(["evaluate", str(TOY), *args[2:]]) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("irob-bench: internal error")


def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly():
    read, write = os.pipe()
    os.close(read)  # `irob-bench datasets list | head -0`: nobody reads
    done = subprocess.run([sys.executable, "-m", "irob_bench", "datasets", "list"], stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert done.returncode == 141 and done.stderr == ""
    control = subprocess.run([sys.executable, "-m", "irob_bench", "datasets", "list"], capture_output=True, text=True)
    assert control.returncode == 0 and "mnist" in control.stdout


def test_an_output_folder_may_be_new_and_nested_control(tmp_path):
    assert output_folder(str(tmp_path / "new" / "deeper")) == str(tmp_path / "new" / "deeper")
    assert output_folder(str(tmp_path)) == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # checking creates nothing


def test_a_good_json_path_is_accepted_control(tmp_path, capsys):
    out = tmp_path / "toy.json"
    args = ["evaluate", str(TOY), "--n-examples", "4", "--eps", "1", "--attacks", "quick", "--quiet", "--no-store"]
    assert main([*args, "--json", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["leaderboard"], 0), (["leaderboard", "--format", "json"], 0), (["runs", "list"], 0), (["runs", "show", "1"], 2),
     (["runs", "verify", "1", "--submission", str(TOY)], 2)],  # fmt: skip
)
def test_read_only_commands_create_no_database_or_folder(tmp_path, monkeypatch, capsys, args, expected):
    """The default leaderboard before anything was stored (a --db that names no file is refused: test_checks_...)."""
    monkeypatch.setenv("IROB_BENCH_DB", str(tmp_path / "new" / "deeper" / "lb.db"))
    assert main(args) == expected
    assert list(tmp_path.iterdir()) == []
    if expected == 2:
        assert "no run with id or submission name '1'" in capsys.readouterr().err


@pytest.mark.parametrize("ref", ["²", "١", "1²"])
@pytest.mark.parametrize("command", [["runs", "show"], ["runs", "verify", "--submission", str(TOY)],
                                     ["gate", str(TOY), "--baseline"]])  # fmt: skip
def test_a_run_reference_in_other_digits_is_a_name_not_a_traceback_or_another_run(tmp_path, capsys, command, ref):
    """'²' passed str.isdigit() and then failed in int() (a traceback); '١' (Arabic-Indic one) read as run 1. Both are
    names now: no run has them. Control: '1' is run 1 (test_runs_show...)."""
    db = tmp_path / "lb.db"
    run = Path(__file__).resolve().parents[1] / "leaderboard" / "runs" / "mnist-pgd.json"
    assert main(["runs", "import", str(run), "--db", str(db)]) == 0
    capsys.readouterr()
    args = [*command[:2], ref, *command[2:]] if command[0] == "runs" else [*command, ref]
    assert main([*args, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no run with id or submission name {ref!r}" in err, err
    assert main(["runs", "show", "1", "--db", str(db)]) == 0  # control


def test_a_writing_command_does_create_it_control(tmp_path, capsys):
    db = tmp_path / "new" / "lb.db"
    run = Path(__file__).resolve().parents[1] / "leaderboard" / "runs" / "mnist-pgd.json"
    assert main(["runs", "import", str(run), "--db", str(db)]) == 0
    assert db.is_file()


def test_a_dataset_filter_that_matches_no_run_is_an_error_in_runs_list_as_in_leaderboard(tmp_path, capsys):
    db = str(tmp_path / "lb.db")
    run = Path(__file__).resolve().parents[1] / "leaderboard" / "runs" / "mnist-pgd.json"
    assert main(["runs", "import", str(run), "--db", db]) == 0
    capsys.readouterr()
    for command, name in itertools.product((["runs", "list"], ["leaderboard"]), ("nosuch", "MNIST", "MN*")):
        assert main([*command, "--db", db, "--dataset", name]) == 2  # case-sensitive on every backend, as on PostgreSQL
        err = capsys.readouterr().err
        assert f"no runs for dataset {name!r}" in err and "(datasets with runs: mnist)" in err
        assert main([*command, "--db", db, "--dataset", "mn*"]) == 0  # control: a glob that matches lists the run
        assert "mnist" in capsys.readouterr().out


def test_a_bad_isolation_variable_is_one_line_for_the_commands_that_use_it_and_breaks_no_other(monkeypatch, capsys):
    """$IROB_BENCH_ISOLATION was checked while the parser was built, so a bad value broke `--version` and every
    `--help`. Now only a command that runs a submission reads it, and says what is wrong. Control: --isolation
    overrides it, and a good value is used."""
    monkeypatch.setenv("IROB_BENCH_ISOLATION", "bogus")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    capsys.readouterr()
    assert main(["validate", str(TOY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "$IROB_BENCH_ISOLATION='bogus' is not an isolation level (available: none, " in err
    assert main(["validate", str(TOY), "--isolation", "none"]) == 0
    monkeypatch.setenv("IROB_BENCH_ISOLATION", "none")
    assert main(["validate", str(TOY)]) == 0


def test_leaderboard_verified_lists_unchecked_imports_unranked_in_text_and_on_the_site(tmp_path, capsys):
    """`leaderboard --verified` end to end: the committed rows are imports that no `runs verify` has checked, so they
    are all listed without a rank, in the table and on the website. Control: without the flag they are ranked."""
    db = str(tmp_path / "lb.db")
    for name in ("mnist-pgd", "mnist-trades"):
        assert main(["runs", "import", str(Path(__file__).resolve().parents[1] / "leaderboard" / "runs" / f"{name}.json"),
                     "--db", db]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["leaderboard", "--db", db, "--format", "json"]) == 0
    assert sorted(r["rank"] for r in json.loads(capsys.readouterr().out)) == [1, 2]
    assert main(["leaderboard", "--db", db, "--format", "json", "--verified"]) == 0
    assert [r["rank"] for r in json.loads(capsys.readouterr().out)] == [None, None]
    assert main(["leaderboard", "--db", db, "--format", "html", "--out", str(tmp_path / "site"), "--verified"]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    assert "--verified: imported runs ranked once" in index and ">1<" not in index
    assert main(["leaderboard", "--db", db, "--by-p", "--verified"]) == 2
    assert "--by-p ranks none" in capsys.readouterr().err
