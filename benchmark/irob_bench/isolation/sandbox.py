"""Run a submission and its gradient attacks in a worker process, and trust only what the parent checks afterwards.

Levels: `none` (in this process: the test suite's fast path), `process` (a worker with a scrubbed environment,
memory / CPU / file-size limits and a wall-clock timeout), `sandbox` (the same inside bubblewrap: no network,
the filesystem read-only except the worker's scratch folder; without bwrap, `unshare` gives the network
namespace only). The parent receives result.json and outcomes.npz, recomputes every metric from the outcomes and
checks the submission's hash before anything is stored.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from irob_bench.common import FrozenModel
from irob_bench.errors import IrobError

if TYPE_CHECKING:
    from irob_bench.isolation.worker import Kind
    from irob_bench.validate import Validated

Level = Literal["none", "process", "sandbox"]
LEVELS: tuple[str, ...] = ("none", "process", "sandbox")
CHUNK_SECONDS = 3600.0  # default wall-clock allowance per chunk of --batch-size points (one takes minutes on a CPU)
DEFAULT_MEMORY_MB = 8192
MAX_FILE_BYTES = 1 << 30  # no single file the worker writes may exceed 1 GiB

# A worker's last line that breaks a rule -> the rule, appended to the one-line error.
RULES = {
    "Read-only file system": "a submission may write only in its scratch folder",
    "Network is unreachable": "a submission has no network",
    "Temporary failure in name resolution": "a submission has no network",
    "MemoryError": "memory limit",
    "Cannot allocate memory": "memory limit",
}


class Isolation(FrozenModel):
    """How untrusted code runs: the level, its wall-clock timeout and its memory limit."""

    level: Level = "sandbox"
    timeout: float | None = Field(
        None, gt=0, description="wall-clock seconds before the worker is killed (None: CHUNK_SECONDS per chunk of work)"
    )
    memory_mb: int = Field(DEFAULT_MEMORY_MB, ge=256, description="address-space limit of the worker")


def python_under_tmp() -> list[str]:
    """bwrap arguments that re-bind, read-only over the sandbox's fresh /tmp, what the worker's Python needs from
    /tmp (a virtualenv or a source tree there, and the shipped datasets, which a checkout links from outside its
    sys.path entry), which the empty /tmp would otherwise hide."""
    from irob_bench.common import shipped_data_dir

    return rebind_under_tmp([Path(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p] + [shipped_data_dir()])


def rebind_under_tmp(paths: list[Path]) -> list[str]:
    """bwrap arguments that re-bind read-only those of `paths` that lie under /tmp, once per outermost folder."""
    tmp = Path("/tmp").resolve()
    needed = {p.resolve() for p in paths if p.exists()}
    under = sorted(p for p in needed if p != tmp and p.is_relative_to(tmp))
    roots = [p for p in under if not any(p != q and p.is_relative_to(q) for q in under)]
    return [arg for root in roots for arg in ("--ro-bind", str(root), str(root))]


def dataset_for_worker(options):  # type: ignore[no-untyped-def]
    """The options with a dataset given as a path made absolute (the worker runs in its scratch folder, where a
    relative path names nothing), and the folders its card reads from (to re-bind those under /tmp)."""
    from irob_bench import datasets

    if options.dataset is None:
        return options, []
    card_file = datasets.card_path(options.dataset)  # an unknown name or path: one line, before any worker starts
    card = datasets.load_card(card_file)
    files = [card.generator.weights_file, card.splits["test"].latents_file]
    folders = [card_file.parent, *((card_file.parent / f).parent for f in files if f)]
    if card_file == datasets.DATA_DIR / str(options.dataset) / "card.json":
        return options, folders  # a shipped name stays a name
    return options.model_copy(update={"dataset": str(card_file)}), folders


def sandbox_prefix(scratch: Path, submission_dir: Path, writable: Path | None = None,
                   readable: list[Path] | None = None) -> tuple[list[str], str]:
    """The command that wraps the worker at the sandbox level, and what it provides (recorded with the result).

    bwrap: everything read-only, a fresh /tmp (with what the worker must read from there re-bound: its Python and
    the `readable` folders, e.g. a dataset's), the submission's folder read-only on top, the scratch folder (and the
    evaluation's checkpoint folder, `writable`) writable.
    """
    extra = [] if writable is None else ["--bind", str(writable), str(writable)]
    if shutil.which("bwrap"):
        return [
            "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            *python_under_tmp(), *rebind_under_tmp(readable or []),
            "--ro-bind", str(submission_dir), str(submission_dir),
            "--bind", str(scratch), str(scratch), *extra, "--unshare-net", "--unshare-pid", "--die-with-parent",
            "--new-session", "--chdir", str(scratch), "--",
        ], "sandbox (bwrap: no network, read-only filesystem but scratch)"  # fmt: skip
    if shutil.which("unshare"):
        return ["unshare", "--net", "--map-root-user", "--"], "sandbox (unshare: no network; filesystem not read-only)"
    raise IrobError("--isolation sandbox needs bubblewrap (apt-get install bubblewrap) or unshare; or use --isolation process")


def _environment(scratch: Path) -> dict[str, str]:
    """A scrubbed environment: no credentials or database URLs from the caller, home and temp in the scratch folder,
    and the parent's own irob_bench first on the path (same_code)."""
    keep = {key: os.environ[key] for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LANG") if key in os.environ}
    return {**keep, **same_code(), "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch),
            "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": str(scratch)}  # fmt: skip


def same_code() -> dict[str, str]:
    """PYTHONPATH that makes the worker import the irob_bench this process runs, when a plain interpreter would not
    find it first (a checkout on PYTHONPATH beside an editable install of another one: the worker would otherwise
    run the other checkout's code on the other checkout's cards). Empty for an ordinary install in site-packages,
    so no site-packages folder is put ahead of the standard library."""
    import irob_bench

    root = Path(irob_bench.__file__).resolve().parent.parent
    site_dirs = {Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages())}
    return {} if root in site_dirs else {"PYTHONPATH": str(root)}


def time_limit(options, isolation: Isolation, kind: Kind) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """(seconds, how to say it) the worker may run: --timeout when given, else CHUNK_SECONDS per chunk of the work
    (a validation is one chunk), so that `--n-examples all` is not killed after the default subset's allowance.
    The parent must not import the submission, so without --dataset the largest test split of any card counts."""
    if isolation.timeout is not None:
        return isolation.timeout, f"--timeout {isolation.timeout:g} s"
    chunks = 1
    if kind == "evaluate":
        from irob_bench import datasets
        from irob_bench.evaluate import shard_chunks

        names = [options.dataset] if options.dataset else datasets.available()
        n = (len(options.indices) if options.indices is not None else options.n_examples
             or max(datasets.load_card(name).splits["test"].size for name in names))
        chunks = len(shard_chunks(n, options.batch_size, options.shard))
    seconds = CHUNK_SECONDS * chunks
    return seconds, f"{seconds:g} s ({CHUNK_SECONDS:g} s for each of {chunks} chunk(s) of --batch-size points; set --timeout)"


def _limits(isolation: Isolation, seconds: float) -> None:
    """In the worker before exec: memory, CPU time (`seconds` x cores) and file-size limits."""
    memory = isolation.memory_mb << 20
    cpu = int(seconds * (os.cpu_count() or 1)) + 1
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))


class _Tail(threading.Thread):
    """Forward the worker's stderr (progress bars) when asked, and keep its last lines for the error message."""

    def __init__(self, stream, forward: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream, self.forward, self.tail = stream, forward, b""

    def run(self) -> None:
        for chunk in iter(lambda: self.stream.read1(4096), b""):
            if self.forward:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            self.tail = (self.tail + chunk)[-4096:]

    def last_line(self) -> str:
        lines = [line.strip() for line in self.tail.decode(errors="replace").replace("\r", "\n").splitlines()]
        return next((line for line in reversed(lines) if line), "no output")


def with_rule(message: str) -> str:
    """A worker failure, with the rule it broke when it names one."""
    rule = next((rule for marker, rule in RULES.items() if marker in message), None)
    return message if rule is None else f"{message} (rule: {rule})"


def run_worker(path: Path, options, isolation: Isolation, kind: Kind = "evaluate") -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """Run the worker on one request (evaluate or validate); return its scratch folder (holding its files) and what
    isolated it. Every failure is one IrobError line naming the rule it broke, with the scratch folder removed."""
    from irob_bench.isolation.worker import WorkerRequest

    options, dataset_folders = dataset_for_worker(options)
    seconds, limit = time_limit(options, isolation, kind)  # before the scratch folder: bad shards fail here
    scratch = Path(tempfile.mkdtemp(prefix="irob-bench-worker-"))
    try:
        request = WorkerRequest(kind=kind, path=str(path.resolve()), options=options)
        (scratch / "request.json").write_text(request.model_dump_json())
        sandboxed = isolation.level == "sandbox"
        checkpoints = Path(options.checkpoint_root).resolve() if getattr(options, "checkpoint_root", None) else None
        if checkpoints is not None:
            checkpoints.mkdir(parents=True, exist_ok=True)
        prefix, label = (sandbox_prefix(scratch, path.resolve().parent, checkpoints, dataset_folders) if sandboxed
                         else ([], "process"))
        command = [*prefix, sys.executable, "-m", "irob_bench.isolation.worker", str(scratch)]
        proc = subprocess.Popen(command, cwd=scratch, env=_environment(scratch), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=lambda: _limits(isolation, seconds))  # fmt: skip
        tail = _Tail(proc.stderr, forward=options.progress)
        tail.start()
        try:
            code = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise IrobError(f"isolation: the submission ran longer than {limit} (rule: wall-clock limit)") from None
        finally:
            tail.join(timeout=5)
        _raise_on_failure(code, scratch, tail)
        return scratch, label
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _raise_on_failure(code: int, scratch: Path, tail: _Tail) -> None:
    """Exit 0: fine; 2: the worker's own one-line error; a signal or a crash: one line saying which."""
    if code == 0:
        if not (scratch / "done").is_file():
            raise IrobError("isolation: the worker ended without a result (did the submission end its process, e.g. "
                            "with sys.exit or os._exit?); nothing was stored")
        return
    if code == 2 and (scratch / "error.txt").is_file():
        raise IrobError(with_rule((scratch / "error.txt").read_text()))
    if code < 0:
        name = signal.Signals(-code).name
        rule = " (rule: CPU-time limit)" if name == "SIGXCPU" else ""
        raise IrobError(f"isolation: the worker was killed by {name}{rule}; nothing was stored")
    raise IrobError(with_rule(f"isolation: the worker failed (exit {code}): {tail.last_line()}"))


def evaluate_isolated(path: str | Path, options, isolation: Isolation):  # type: ignore[no-untyped-def]
    """evaluate() at the chosen isolation level; a worker's result counts only after the parent has checked the
    submission hash and recomputed every metric from the outcomes. The level is recorded in the result's environment."""
    import numpy as np

    from irob_bench import datasets
    from irob_bench.artifacts import sha256_file
    from irob_bench.attacks.outcomes import load_outcomes
    from irob_bench.evaluate import Evaluation, evaluate
    from irob_bench.import_checks import verify_evaluation
    from irob_bench.results import read_result_file

    path = Path(path)
    if isolation.level == "none":
        evaluation, label = evaluate(path, options), "none (in process)"
    else:
        scratch, label = run_worker(path, options, isolation)
        try:
            result, outcomes = read_result_file(scratch / "result.json"), load_outcomes(scratch / "outcomes.npz")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if result.submission.file_sha256 != sha256_file(path):
            raise IrobError("isolation: the worker reports another submission file than the one given")
        if result.shard is None:  # a shard is checked as part of its run, when `runs merge` or rank 0 joins them
            requested = None if options.indices is None else np.asarray(options.indices, dtype=np.int64)
            verify_evaluation(result, outcomes, datasets.load_card(options.dataset or result.dataset.name), requested)
        evaluation = Evaluation(result=result, outcomes=outcomes)
    environment = {**evaluation.result.environment, "isolation": label}
    return Evaluation(result=evaluation.result.model_copy(update={"environment": environment}), outcomes=evaluation.outcomes)


def validate_isolated(path: str | Path, options, isolation: Isolation) -> Validated:  # type: ignore[no-untyped-def]
    """`irob-bench validate` (the options' dataset and batch size) at the chosen isolation level; in a worker, a check
    that failed because the submission broke a rule names the rule."""
    from irob_bench.evaluate import validation
    from irob_bench.isolation.worker import VALIDATION_FILE
    from irob_bench.validate import Validated

    if isolation.level == "none":
        return validation(path, options.dataset, options.batch_size)
    scratch, _ = run_worker(Path(path), options, isolation, kind="validate")
    try:
        validated = Validated.model_validate_json((scratch / VALIDATION_FILE).read_text())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = validated.report
    checks = [c.model_copy(update={"message": with_rule(c.message)}) if c.status == "fail" else c for c in report.checks]
    return validated.model_copy(update={"report": report.model_copy(update={"checks": checks})})
