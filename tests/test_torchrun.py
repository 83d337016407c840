"""`torchrun --nproc_per_node 2 -m irob_bench evaluate ...` on the CPU with gloo: each rank evaluates its shard, rank 0
merges and stores exactly what one process gives; a launch that finds no backend is one line and no row; a failure
on one rank, bad input or a bug, is one line on rank 0."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from irob_bench.cli import main
from irob_bench.errors import IrobError
from irob_bench.evaluate import EvaluateOptions
from irob_bench.leaderboard.store import Store
from tests.factories import one_torch_thread, staged_card

TOY = Path(__file__).parent / "submissions" / "toy.py"
SIXTY = ["--n-examples", "60", "--eps", "1", "2", "--quiet", "--batch-size", "16"]
VOLATILE = {"created_at", "timings", "environment", "outcomes_file"}


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    return {**clean, "OMP_NUM_THREADS": "1", "IROB_BENCH_CACHE": str(tmp_path / "cache"),
            "IROB_BENCH_DB": f"sqlite:///{tmp_path / 'board.db'}"}


def rows(env: dict[str, str]) -> int:
    return len(Store(env["IROB_BENCH_DB"]).rows())


def test_two_gloo_ranks_give_one_process_result_and_store_one_row(env, tmp_path, monkeypatch):
    monkeypatch.setenv("IROB_BENCH_CACHE", env["IROB_BENCH_CACHE"])
    one = tmp_path / "one.json"
    with one_torch_thread():  # as the ranks (OMP_NUM_THREADS=1): the outcomes are compared byte for byte
        assert main(["evaluate", str(TOY), *SIXTY, "--json", str(one), "--no-store"]) == 0
    out = tmp_path / "torchrun.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "irob_bench", "evaluate", str(TOY), *SIXTY, "--json", str(out)]
    # a rank that dies of a signal prints its Python stacks (faulthandler), and the whole stderr is shown: torchrun's
    # own failure summary alone fills 2 kB and would hide the rank's message
    run = subprocess.run(command, env={**env, "PYTHONFAULTHANDLER": "1"}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-20000:]
    assert run.stdout.count("stored as run 1") == 1, "rank 0 alone prints and stores"
    assert rows(env) == 1
    first, merged = json.loads(one.read_text()), json.loads(out.read_text())
    assert merged["environment"]["shards"] == 2  # a number, not text
    assert {k: v for k, v in first.items() if k not in VOLATILE} == {k: v for k, v in merged.items() if k not in VOLATILE}
    assert Path(f"{one}.outcomes.npz").read_bytes() == Path(f"{out}.outcomes.npz").read_bytes()


def one_line(run: subprocess.CompletedProcess, text: str) -> None:
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and text in run.stderr, run.stderr


def test_a_launch_without_a_backend_is_one_line_and_no_row(env, tmp_path):
    command = [sys.executable, "-m", "irob_bench", "evaluate", str(TOY), "--n-examples", "8", "--eps", "1", "--quiet",
               "--attacks", "quick", "--batch-size", "4"]
    launch = {**env, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}  # torchrun's variables, no rendezvous address
    one_line(subprocess.run(command, env=launch, capture_output=True, text=True, timeout=120),
             "torchrun: cannot start the gloo process group")
    if not torch.cuda.is_available():
        one_line(subprocess.run([*command, "--device", "cuda"], env=launch, capture_output=True, text=True, timeout=120),
                 "--device cuda: CUDA is not available on this machine")  # checked first, before any rendezvous
    one_line(subprocess.run(command, env={**launch, "RANK": "x"}, capture_output=True, text=True, timeout=120),
             "RANK or LOCAL_RANK is missing or not a number")
    one_line(subprocess.run([*command, "--shard", "1/2", "--json", str(tmp_path / "s.json")], env=launch,
                            capture_output=True, text=True, timeout=120), "--shard under torchrun")
    one_line(subprocess.run([*command, "--dataset", str(staged_card(tmp_path))], env=launch, capture_output=True,
                            text=True, timeout=120), "the shards are merged into a run at once")  # rank 0 would refuse
    assert not Path(env["IROB_BENCH_DB"].removeprefix("sqlite:///")).exists() or rows(env) == 0
    # control: the same command without the launch variables evaluates and stores
    assert subprocess.run(command, env=env, capture_output=True, text=True, timeout=300).returncode == 0
    assert rows(env) == 1


def _rank(rank: int, port: int, failure: Exception, results: multiprocessing.Queue) -> None:
    """One gloo rank of `evaluate_distributed` whose shard evaluation is replaced: rank 1's raises `failure`, rank 0's
    returns a stand-in (never merged: a failed rank stops the merge). Puts what the rank raised on `results`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from irob_bench import distributed
    from irob_bench.isolation import sandbox

    def shard(path: object, options: object, isolation: object) -> object:
        if rank == 1:
            raise failure
        return "rank 0's shard"

    sandbox.evaluate_isolated = shard
    try:
        distributed.evaluate_distributed("unused.py", EvaluateOptions(), None, distributed.Launch(rank, 2, rank))
        results.put((rank, "returned", ""))
    except Exception as exc:
        results.put((rank, type(exc).__name__, str(exc)))


def _launch(failure: Exception) -> dict[int, tuple[str, str]]:
    """Run the two ranks (at most 120 s: a rank that skipped the gather would leave rank 0 waiting): rank -> raised."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ranks = [context.Process(target=_rank, args=(r, port, failure, results)) for r in range(2)]
    for process in ranks:
        process.start()
    try:
        raised = {}
        for _ in ranks:
            rank, kind, message = results.get(timeout=120)
            raised[rank] = (kind, message)
        return raised
    finally:
        for process in ranks:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def test_an_internal_error_on_one_rank_is_one_line_on_rank_0_and_its_own_on_that_rank():
    raised = _launch(RuntimeError("boom"))
    assert raised[0] == ("IrobError", "rank 1: internal error RuntimeError: boom (its traceback is on rank 1)")
    assert raised[1] == ("RuntimeError", "boom"), "the failing rank raises the bug itself, with its traceback"
    # control: bad input on rank 1 is its message, on both ranks
    raised = _launch(IrobError("submission: predict returned 3 labels for 4 images"))
    assert raised == {r: ("IrobError", "rank 1: submission: predict returned 3 labels for 4 images") for r in (0, 1)}


def test_a_rank_ends_without_the_interpreter_teardown(env):
    """Gloo's threads aborted a rank now and then in the interpreter's teardown, after its work (cli._leave_rank):
    a rank's command ends with its exit code and skips the teardown (here: an atexit handler that never runs)."""
    script = ("import atexit, sys; atexit.register(lambda: print('torn down')); "
              "from irob_bench.cli import main; sys.exit(main())")
    for extra, code in ([], 0), (["no-such-dataset"], 2):
        command = [sys.executable, "-c", script, "datasets", "list", *extra]
        rank = subprocess.run(command, env={**env, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"},
                              capture_output=True, text=True, timeout=120)
        assert rank.returncode == code and "torn down" not in rank.stdout, (rank.stdout, rank.stderr)
        assert rank.stdout.count("mnist") >= (1 if code == 0 else 0), "what the command printed is flushed"
        # control: outside torchrun the same command ends through the teardown
        alone = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert alone.returncode == code and "torn down" in alone.stdout
