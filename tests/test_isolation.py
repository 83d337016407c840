"""Isolated evaluation: an honest submission is scored in a sandboxed worker and stored with its isolation level;
one that breaks a rule (writes outside scratch, network, sleeps forever, pickle loads) gets one line naming the rule,
a non-zero exit and no row; a SIGKILLed worker leaves no row and the next run works. `validate` runs in the same
worker: an honest submission passes there, a file-writing one is refused naming the rule."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from irob_bench.cli import main
from irob_bench.leaderboard.store import Store

from .test_validation import HONEST, write_submission

pytestmark = [
    pytest.mark.slow,  # each test starts a worker that imports torch: several seconds
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"),
]
FAST = ["--n-examples", "8", "--eps", "1", "--attacks", "quick", "--quiet"]
TOY = Path(__file__).parent / "submissions" / "toy.py"


def evaluate(path: Path, db: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["evaluate", str(path), *FAST, "--db", str(db), "--isolation", "sandbox", *extra])
    return code, capsys.readouterr().err


def test_an_honest_submission_is_scored_in_the_sandbox_and_records_it(tmp_path, capsys):
    db = tmp_path / "lb.db"
    code, err = evaluate(write_submission(tmp_path, HONEST), db, capsys)
    assert code == 0, err
    with Store(str(db)) as store:
        [row] = store.rows()
        assert store.get(row.run_id).environment["isolation"].startswith("sandbox (bwrap")


def validate(path: Path, capsys) -> tuple[int, str, str]:
    code = main(["validate", str(path), "--isolation", "sandbox"])
    return code, *capsys.readouterr()


def test_an_honest_submission_validates_in_the_sandbox_control(tmp_path, capsys):
    code, out, err = validate(write_submission(tmp_path, HONEST), capsys)
    assert code == 0, err
    assert "ok    input unchanged" in out and out.endswith("generated: valid (0 warning(s))\n"), out


RULE_BREAKERS = {
    "writes-outside-scratch": (  # into its own folder, which the sandbox shows read-only
        "        open(__file__ + '.escaped', 'w').write('x')\n        return self.body(x)",
        "Read-only file system",
        "rule: a submission may write only in its scratch folder",
    ),
    "writes-at-the-sandbox-root": (  # the sandbox's own root, in memory: read-only too, so it cannot fill the RAM
        "        open('/escaped.txt', 'w').write('x')\n        return self.body(x)",
        "Read-only file system",
        "rule: a submission may write only in its scratch folder",
    ),
    "writes-where-it-cannot-see": (  # the checkout's tests folder: not shown in the sandbox at all
        f"        open({str(Path(__file__).parent / 'escaped.txt')!r}, 'w').write('x')\n        return self.body(x)",
        "No such file or directory",
        "rule: in the sandbox a submission sees only the system folders",
    ),
    "pickle-payload": (
        "        import io\n        torch.load(io.BytesIO(b'payload'), weights_only=False)\n        return self.body(x)",
        "forward: IrobError",
        "rule: torch.load(weights_only=False) can run a pickle payload",
    ),
}


@pytest.mark.parametrize("case", sorted(RULE_BREAKERS))
def test_a_rule_breaking_submission_gets_one_line_naming_the_rule_and_no_row(tmp_path, capsys, case):
    forward, what, rule = RULE_BREAKERS[case]
    db = tmp_path / "lb.db"
    code, err = evaluate(write_submission(tmp_path, forward), db, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert what in err and rule in err, err
    assert not db.exists() and not (Path(__file__).parent / "escaped.txt").exists()
    assert not (tmp_path / "generated.py.escaped").exists()


def test_a_forward_that_never_returns_is_killed_at_the_timeout(tmp_path, capsys):
    db = tmp_path / "lb.db"
    start = time.monotonic()
    path = write_submission(tmp_path, "        import time\n        time.sleep(3600)\n        return self.body(x)")
    code, err = evaluate(path, db, capsys, "--timeout", "20")
    assert code == 2 and err.count("\n") == 1
    assert "ran longer than --timeout 20 s (rule: wall-clock limit)" in err
    assert time.monotonic() - start < 60 and not db.exists()


def test_the_default_time_limit_is_per_chunk_and_names_itself_when_it_kills(tmp_path, capsys, monkeypatch):
    from irob_bench.isolation import sandbox

    monkeypatch.setattr(sandbox, "CHUNK_SECONDS", 6.0)  # FAST's 8 points at batch 4: 2 chunks, so 12 s
    path = write_submission(tmp_path, "        import time\n        time.sleep(3600)\n        return self.body(x)")
    code, err = evaluate(path, tmp_path / "lb.db", capsys, "--batch-size", "4")
    assert code == 2 and err.count("\n") == 1, err
    assert "ran longer than 12 s (6 s for each of 2 chunk(s) of --batch-size points; set --timeout)" in err, err


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_sigkill_of_the_worker_mid_attack_leaves_no_row_and_the_next_run_works(tmp_path):
    db = f"sqlite:///{tmp_path / 'lb.db'}"
    env = {**os.environ, "IROB_BENCH_DB": db, "IROB_BENCH_ISOLATION": "process"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "irob_bench.cli", "evaluate", str(TOY), "--n-examples", "all", "--eps", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen, deadline = "", time.time() + 120
    while time.time() < deadline and "apgd-ce" not in seen:  # the worker's progress bar: attacks under way
        seen += proc.stderr.read(64)
    [worker] = _children(proc.pid)
    os.kill(worker, signal.SIGKILL)
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 2
    assert err.rstrip().endswith("irob-bench: error: isolation: the worker was killed by SIGKILL; nothing was stored")
    assert Store(db).rows() == []
    done = subprocess.run(
        [sys.executable, "-m", "irob_bench.cli", "evaluate", str(TOY), *FAST], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert len(Store(db).rows()) == 1


def test_a_submission_writing_outside_scratch_fails_validate_naming_the_rule(tmp_path, capsys):
    forward, what, rule = RULE_BREAKERS["writes-outside-scratch"]
    code, out, err = validate(write_submission(tmp_path, forward), capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("irob-bench: error: forward: OSError") and what in err and rule in err, err
    assert "FAIL  forward" in out and not (tmp_path / "generated.py.escaped").exists()


@pytest.fixture()
def host_listener():
    """A TCP listener on the host's loopback: reachable from a plain worker, not from inside the sandbox's own
    network namespace. Only loopback is ever a target."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    yield server.getsockname()[1]
    server.close()


def test_a_sandboxed_submission_cannot_reach_the_hosts_network_and_a_plain_worker_can_control(
    tmp_path, capsys, host_listener
):
    forward = (f"        import socket\n        socket.create_connection(('127.0.0.1', {host_listener}), timeout=5).close()\n"
               "        return self.body(x)")
    path, db = write_submission(tmp_path, forward), tmp_path / "lb.db"
    code, err = evaluate(path, db, capsys)
    assert code == 2 and err.count("\n") == 1 and ("Connection refused" in err or "unreachable" in err), err
    assert not db.exists()
    code = main(["evaluate", str(path), *FAST, "--db", str(db), "--isolation", "process"])
    assert code == 0, capsys.readouterr().err


def test_a_forward_that_allocates_past_the_memory_limit_is_refused_naming_the_rule(tmp_path, capsys):
    """7 GiB of address space (torch.empty) is past the default 8 GiB limit once torch is loaded; the honest
    submission under the same default limit (first test) is the control."""
    forward = "        self.hoard = torch.empty(7 * 2**30, dtype=torch.uint8)\n        return self.body(x)"
    db = tmp_path / "lb.db"
    code, err = evaluate(write_submission(tmp_path, forward), db, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "rule: memory limit" in err and not db.exists(), err


def test_only_the_outermost_folders_outside_the_system_ones_are_bound() -> None:
    """The worker's Python (a virtualenv under /tmp or a home folder, a checkout on sys.path) is bound read-only,
    once per outermost folder, into a sandbox that shows only the system folders; the control: a folder under /usr,
    which the sandbox shows anyway, and one that does not exist are not bound."""
    from irob_bench.isolation.sandbox import rebind

    venv = Path(tempfile.mkdtemp(dir="/tmp", prefix="irob-venv-"))
    elsewhere = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="irob-src-"))
    try:
        (venv / "lib" / "site-packages").mkdir(parents=True)
        paths = [venv / "lib" / "site-packages", venv, elsewhere, Path("/usr/lib"), venv / "missing"]
        assert rebind(paths) == ["--ro-bind", str(venv.resolve()), str(venv.resolve()),
                                 "--ro-bind", str(elsewhere.resolve()), str(elsewhere.resolve())]  # fmt: skip
        assert rebind([Path("/usr/lib"), Path("/no/such/folder")]) == []
    finally:
        shutil.rmtree(venv, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_the_worker_imports_the_irob_bench_of_its_parent_not_the_installed_one(tmp_path) -> None:
    """A parent running a copy of irob_bench from PYTHONPATH (beside the installed one) gives its worker that copy;
    control: the same environment without same_code() imports the installed irob_bench instead."""
    import irob_bench

    copy = tmp_path / "checkout"
    shutil.copytree(Path(irob_bench.__file__).parent, copy / "irob_bench",
                    ignore=shutil.ignore_patterns("data", "__pycache__"))  # fmt: skip
    probe = ("import pathlib, subprocess, sys\n"
             "from irob_bench.isolation.sandbox import environment, same_code\n"
             "env = environment(pathlib.Path('.'))\n"
             "plain = {k: v for k, v in env.items() if k not in same_code()}\n"
             "ask = [sys.executable, '-c', 'import irob_bench; print(irob_bench.__file__)']\n"
             "for e in (env, plain): print(subprocess.run(ask, env=e, capture_output=True, text=True).stdout.strip())")
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(copy)},
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    worker, control = done.stdout.split()
    assert Path(worker) == copy / "irob_bench" / "__init__.py"
    assert Path(control) == Path(irob_bench.__file__).resolve()


def test_a_card_given_by_a_relative_path_under_tmp_reaches_the_sandboxed_worker(random_mnist, tmp_path, capsys,
                                                                                 monkeypatch) -> None:
    """The worker runs in its scratch folder over a fresh /tmp: a card given by a path relative to the caller, in a
    folder under /tmp (pytest's), was 'unknown dataset' there. Now the path is made absolute and its folders are
    re-bound read-only. Control: a path that names no card is refused in one line before any worker starts."""
    monkeypatch.chdir(random_mnist.root.parent)
    assert str(random_mnist.root.resolve()).startswith("/tmp/")
    toy = tmp_path / "toy.py"  # the toy, for this card
    toy.write_text(TOY.read_text().replace('datasets=["mnist"]', 'datasets=["random-mnist"]'))
    out = tmp_path / "result.json"  # a card that is not shipped: its runs are not stored
    code = main(["evaluate", str(toy), *FAST, "--isolation", "sandbox", "--dataset", "./random-mnist", "--no-store",
                 "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["dataset"]["name"] == "random-mnist" and result["settings"]["n_examples"] == 8
    with pytest.raises(SystemExit) as refused:  # while parsing
        evaluate(toy, tmp_path / "other.db", capsys, "--dataset", "./no-such-card")
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and "unknown dataset './no-such-card'" in err, err


def test_a_submission_saved_directly_in_tmp_validates_from_tmp_in_the_sandbox(tmp_path) -> None:
    """`cd /tmp && python -m irob_bench validate /tmp/toy.py`: the working folder (on sys.path) and the submission's
    folder are /tmp itself, and bound read-only over the sandbox's fresh /tmp they left the worker no writable scratch
    ('No usable temporary directory'). Now the working folder is not bound, and a bind that covers the scratch gets
    the scratch a tmpfs of its own. Control: a submission elsewhere keeps its scratch a plain folder of the fresh
    /tmp."""
    from irob_bench.isolation.sandbox import MAX_FILE_BYTES, _scratch_mount, rebind, same_code

    handle, name = tempfile.mkstemp(dir="/tmp", prefix="irob-toy-", suffix=".py")
    os.close(handle)
    toy = Path(name)
    try:
        toy.write_text(TOY.read_text())
        done = subprocess.run([sys.executable, "-m", "irob_bench", "validate", str(toy), "--isolation", "sandbox"],
                              cwd="/tmp", env={**os.environ, **same_code()}, capture_output=True, text=True)  # fmt: skip
    finally:
        toy.unlink()
    assert done.returncode == 0, done.stderr
    assert ": valid (" in done.stdout, done.stdout
    scratch = Path("/tmp/irob-bench-worker-test")
    assert _scratch_mount(scratch, rebind([Path("/tmp")])) == ["--size", str(MAX_FILE_BYTES), "--tmpfs", str(scratch)]
    assert _scratch_mount(scratch, rebind([tmp_path])) == ["--dir", str(scratch)]
