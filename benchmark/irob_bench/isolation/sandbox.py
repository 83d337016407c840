"""Run a submission's model in a worker process that the scoring never enters (isolation.remote), under limits.

Levels: `none` (in this process: the test suite's fast path), `process` (a worker with a scrubbed environment,
memory / CPU / file-size limits and a wall-clock timeout), `sandbox` (the same inside bubblewrap: no network,
the filesystem read-only except the worker's scratch folder; without bwrap, `unshare` gives the network
namespace only). The worker only answers forward, backward and certify requests: the attacks, their verification,
the metrics, the checkpoints and the hashes run in the parent, so a submission cannot rewrite its own score.
"""

from __future__ import annotations

import os
import resource
import shutil
import site
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from irob_bench.common import FrozenModel
from irob_bench.errors import IrobError

if TYPE_CHECKING:
    from irob_bench.isolation.remote import Worker
    from irob_bench.validate import Validated

Level = Literal["none", "process", "sandbox"]
Kind = Literal["evaluate", "validate"]  # the work a worker's wall-clock limit is sized for
LEVELS: tuple[str, ...] = ("none", "process", "sandbox")
CHUNK_SECONDS = 3600.0  # default wall-clock allowance per chunk of --batch-size points (one takes minutes on a CPU)
DEFAULT_MEMORY_MB = 8192
MAX_FILE_BYTES = 1 << 30  # no file the worker writes may exceed 1 GiB, nor all of them in the sandbox
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")  # shown read-only

# A worker's last line that breaks a rule -> the rule, appended to the one-line error.
RULES = {
    "Read-only file system": "a submission may write only in its scratch folder",
    "No such file or directory": "in the sandbox a submission sees only the system folders, its Python, its own folder "
                                 "(read-only) and its scratch folder",  # fmt: skip
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


def python_paths() -> list[Path]:
    """What the worker's Python reads: its prefixes, every sys.path entry (site-packages, an editable checkout) and
    the irob_bench this process runs; not the caller's working folder, which `python -m irob_bench` puts on sys.path
    (the worker imports nothing from it, and from /tmp it hid the sandbox's fresh /tmp)."""
    import irob_bench

    here = os.getcwd()
    paths = [p for p in (sys.prefix, sys.base_prefix, *sys.path) if p and p != here]
    return [Path(p) for p in paths] + [Path(irob_bench.__file__).parent.parent]


def rebind(paths: list[Path]) -> list[str]:
    """bwrap arguments that bind read-only those of `paths` that exist and lie outside the SYSTEM folders (shown
    anyway), once per outermost folder."""
    system = [Path(p) for p in SYSTEM]
    needed = {p.resolve() for p in paths if p.exists()}
    extra = sorted(p for p in needed if not any(p.is_relative_to(s) for s in system))
    roots = [p for p in extra if not any(p != q and p.is_relative_to(q) for q in extra)]
    return [arg for root in roots for arg in ("--ro-bind", str(root), str(root))]


def _scratch_mount(scratch: Path, binds: list[str]) -> list[str]:
    """bwrap arguments for the writable scratch folder: a folder in the fresh /tmp, or a tmpfs of its own when a
    read-only bind covers it (a submission saved directly in /tmp binds /tmp itself)."""
    if any(scratch.resolve().is_relative_to(shown) for shown in binds[1::3]):
        return ["--size", str(MAX_FILE_BYTES), "--tmpfs", str(scratch)]
    return ["--dir", str(scratch)]


def _system_folders() -> list[str]:
    """bwrap arguments for the system folders: read-only, and /bin, /lib... as the symlinks they are on merged-/usr
    systems."""
    args = []
    for top in SYSTEM:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    return args


def _gpu_devices() -> list[str]:
    """bwrap arguments that show the NVIDIA device nodes, when there are any, over the sandbox's minimal /dev."""
    return [arg for device in sorted(Path("/dev").glob("nvidia*")) for arg in ("--dev-bind", str(device), str(device))]


def sandbox_prefix(scratch: Path, submission_dir: Path) -> tuple[list[str], str]:
    """The command that wraps the worker at the sandbox level, and what it provides (recorded with the result).

    bwrap: only the system folders, the worker's Python and the submission's folder, all read-only (not the caller's
    home, /run's sockets or /var); a fresh /tmp in memory, at most MAX_FILE_BYTES, holding the scratch folder; its own
    network and process namespaces, ended with the parent.
    """
    if shutil.which("bwrap"):
        binds = rebind([*python_paths(), submission_dir])
        return [
            "bwrap", *_system_folders(), "--dev", "/dev", *_gpu_devices(), "--proc", "/proc", "--size", str(MAX_FILE_BYTES),
            "--tmpfs", "/tmp", *binds, *_scratch_mount(scratch, binds), "--remount-ro", "/", "--unshare-net", "--unshare-pid",
            "--die-with-parent", "--new-session", "--chdir", str(scratch), "--",
        ], "sandbox (bwrap: no network, read-only system and Python, scratch in memory)"  # fmt: skip
    if shutil.which("unshare"):
        return ["unshare", "--net", "--map-root-user", "--"], "sandbox (unshare: no network; filesystem not read-only)"
    raise IrobError("--isolation sandbox needs bubblewrap (apt-get install bubblewrap) or unshare; or use --isolation process")


def environment(scratch: Path) -> dict[str, str]:
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

        n = (len(options.indices) if options.indices is not None else options.n_examples
             or datasets.largest_test_size([options.dataset] if options.dataset else None))
        chunks = len(shard_chunks(n, options.batch_size, options.shard))
    seconds = CHUNK_SECONDS * chunks
    return seconds, f"{seconds:g} s ({CHUNK_SECONDS:g} s for each of {chunks} chunk(s) of --batch-size points; set --timeout)"


def limits(isolation: Isolation, seconds: float) -> None:
    """In the worker before exec: memory, CPU time (`seconds` x cores) and file-size limits."""
    memory = isolation.memory_mb << 20
    cpu = int(seconds * (os.cpu_count() or 1)) + 1
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))


class Tail(threading.Thread):
    """Forward the worker's stderr (what the submission prints) when asked, as printable text only (no terminal
    escape sequences), and keep its last lines for the error message."""

    def __init__(self, stream, forward: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream, self.forward, self.tail = stream, forward, b""

    def run(self) -> None:
        """Read the stream to its end, forwarding it to stderr if asked and keeping its last 4 kB."""
        from irob_bench.isolation.channel import printable

        for chunk in iter(lambda: self.stream.read1(4096), b""):
            if self.forward:
                sys.stderr.write(printable(chunk.decode(errors="replace")))
                sys.stderr.flush()
            self.tail = (self.tail + chunk)[-4096:]

    def last_line(self) -> str:
        """The last non-empty line read, for a one-line error (or 'no output')."""
        lines = [line.strip() for line in self.tail.decode(errors="replace").replace("\r", "\n").splitlines()]
        return next((line for line in reversed(lines) if line), "no output")


def with_rule(message: str) -> str:
    """A worker failure, with the rule it broke when it names one."""
    rule = next((rule for marker, rule in RULES.items() if marker in message), None)
    return message if rule is None else f"{message} (rule: {rule})"


def open_worker(path: Path, options, isolation: Isolation, kind: Kind = "evaluate") -> Worker:  # type: ignore[no-untyped-def]
    """A worker serving the submission at `path` under `isolation`, with the wall-clock limit of the work `kind`."""
    from irob_bench.isolation.remote import Worker
    from irob_bench.plugin import submission_file

    seconds, limit = time_limit(options, isolation, kind)  # before any process: bad shards fail here
    return Worker(submission_file(path), isolation, seconds, limit, forward_output=options.progress)


def evaluate_isolated(path: str | Path, options, isolation: Isolation):  # type: ignore[no-untyped-def]
    """evaluate() at the chosen isolation level. Isolated, the submission is imported and its model runs in a worker;
    the attacks, their checks, the metrics and the hashes run here, where its code never goes. The level is recorded
    in the result's environment."""
    from irob_bench.evaluate import Evaluation, evaluate
    from irob_bench.isolation.remote import RemoteSubmission

    path = Path(path)
    if isolation.level == "none":
        evaluation, label = evaluate(path, options), "none (in process)"
    else:
        with open_worker(path, options, isolation) as worker:
            evaluation = evaluate(path, options, RemoteSubmission(path, worker, options.device))
            label = worker.label
    environment = {**evaluation.result.environment, "isolation": label}
    return Evaluation(result=evaluation.result.model_copy(update={"environment": environment}), outcomes=evaluation.outcomes)


def validate_isolated(path: str | Path, options, isolation: Isolation) -> Validated:  # type: ignore[no-untyped-def]
    """`irob-bench validate` (the options' dataset and batch size) at the chosen isolation level; isolated, the checks
    run here against the model in a worker, and a check that failed because the submission broke a rule names it."""
    from irob_bench.evaluate import validation
    from irob_bench.isolation.remote import RemoteSubmission

    if isolation.level == "none":
        return validation(path, options.dataset, options.batch_size)
    with open_worker(Path(path), options, isolation, kind="validate") as worker:
        return validation(path, options.dataset, options.batch_size, RemoteSubmission(Path(path), worker, "cpu"))
