"""Argument types and the one-line argument parser shared by every command: bad values fail while parsing, before
any heavy import, database access or scoring."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from irob_bench.errors import IrobError
from irob_bench.syntax import syntax_error
from irob_bench.user_text import is_index

if TYPE_CHECKING:
    from irob_bench.isolation.sandbox import Isolation


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`irob-bench evaluate: error: ...`) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """A bad argument: one line on stderr and exit code 2, without argparse's usage block."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def bounded(low: float, high: float = math.inf, cast: type = float, include_low: bool = False):
    """An argparse type accepting numbers in (low, high], or [low, high] with include_low (never inf or nan)."""
    kind = "an integer" if cast is int else "a number"
    show = (lambda v: f"{int(v):,}") if cast is int else (lambda v: f"{v:g}")
    if low == -math.inf and high == math.inf:
        wanted = "that is finite"
    elif high == math.inf:
        wanted = f">= {show(low)}" if include_low else f"> {show(low)}"
    else:
        wanted = f"in {'[' if include_low else '('}{show(low)}, {show(high)}]"

    def parse(value: str) -> float:
        try:
            if not value.isascii():  # int() and float() read '８' or '١' as digits: a typo should not run a job
                raise ValueError(value)
            number = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {value!r}") from None
        if not (low < number <= high or (include_low and number == low)) or number == math.inf:
            raise argparse.ArgumentTypeError(f"expected {kind} {wanted}, got {value!r}")
        return number

    return parse


positive_int = bounded(0, cast=int)
non_negative_int = bounded(0, cast=int, include_low=True)
positive_float = bounded(0)
number = bounded(-math.inf)  # any finite number
non_negative_float = bounded(0, include_low=True)
probability = bounded(0, 1)
seed = bounded(0, 2**31 - 1, cast=int, include_low=True)  # a seed every database's integer column holds


def open_unit(value: str) -> float:
    """A number strictly between 0 and 1 (a failure mass delta, a confidence beta)."""
    number = probability(value)
    if number == 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value!r}")
    return number


def n_examples(value: str) -> int | None:
    """`all` (None) or a positive integer."""
    if value == "all":
        return None
    try:
        return int(positive_int(value))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}") from None


def device(value: str) -> str:
    """cpu, cuda or cuda:N (whether CUDA is present is checked when the command runs)."""
    kind, _, index = value.partition(":")
    if value != "cpu" and not (kind == "cuda" and (not index or is_index(index))):
        raise argparse.ArgumentTypeError(f"expected cpu or cuda[:N], got {value!r}")
    return value


def shard(value: str) -> tuple[int, int]:
    """K/N: the K-th (1-based) of N slices."""
    k, slash, n = value.partition("/")
    if not (slash and is_index(k) and is_index(n)) or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {value!r}")
    return int(k), int(n)


def _existing_file(value: str, kind: str, is_a_folder: str) -> Path:
    """`value` as the path of an existing file, else the one-line argument error (a folder, or no such file)."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory{is_a_folder}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{kind} file not found: {value}")
    return path


def submission_file(value: str) -> str:
    """An existing submission .py file that compiles (its code runs later, in the sandbox; a typo fails here, in
    0.5 s, not after a sandbox start and a torch import)."""
    if _existing_file(value, "submission", "; give the submission's .py file").suffix != ".py":
        raise argparse.ArgumentTypeError(f"submission must be a .py file, got {value}")
    if problem := syntax_error(value):
        raise argparse.ArgumentTypeError(problem)
    return value


def dataset(value: str) -> str:
    """A shipped dataset name, or a card file or folder, that exists (the card itself is validated when the command
    runs); importing the registry costs 0.3 s, paid only when --dataset is given."""
    from irob_bench.datasets import card_path

    try:
        card_path(value)
    except IrobError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def existing_result(value: str) -> str:
    """An existing result .json file (its contents are checked when the command runs; a typo fails here)."""
    _existing_file(value, "result", ", not a result .json file")
    return value


def write_error(folder: Path) -> str | None:
    """Why no file can be created in `folder`, or None. Found by creating (and removing) one, because permission
    bits alone say "writable" to root on read-only mounts and pseudo-filesystems such as /sys."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".irob-bench-write-test-")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def output_file(value: str) -> str:
    """A file we can create: its folder exists and is writable, and it is not itself a folder (checked up front, so
    a long evaluation never fails at its last step)."""
    path = Path(value)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory, not a file")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if problem := write_error(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable ({problem})")
    return value


def result_file(value: str) -> str:
    """A result JSON file we can create (as output_file) whose per-example outcomes, written beside it as
    VALUE.outcomes.npz, can be created too."""
    output_file(value)
    if Path(f"{value}.outcomes.npz").is_dir():
        raise argparse.ArgumentTypeError(f"{value}.outcomes.npz (where the result's outcomes go) is a directory")
    return value


def figure_file(value: str) -> str:
    """A figure to write (as output_file) whose suffix names its format: .png or .svg."""
    if Path(value).suffix not in (".png", ".svg"):
        raise argparse.ArgumentTypeError(f"a figure is written as .png or .svg, got {value}")
    return output_file(value)


def output_folder(value: str) -> str:
    """A folder we can write into: an existing writable folder, or a new one under a writable existing ancestor;
    never a file (checked up front, so a long run never fails at its last step)."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file, not a folder")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, so folder {value} cannot be made")
    if problem := write_error(existing):
        raise argparse.ArgumentTypeError(f"folder {existing} is not writable ({problem})")
    return value


def output_target(value: str) -> str:
    """A file we can create (as output_file), or an existing writable folder (for outputs that are folders)."""
    path = Path(value)
    if path.is_dir():
        if problem := write_error(path):
            raise argparse.ArgumentTypeError(f"folder {value} is not writable ({problem})")
        return value
    return output_file(value)


ISOLATION_ENV = "IROB_BENCH_ISOLATION"


def add_isolation_options(parser: argparse.ArgumentParser) -> None:
    """--isolation (default $IROB_BENCH_ISOLATION, else sandbox), --timeout and --memory-mb for untrusted code."""
    from irob_bench.isolation.sandbox import CHUNK_SECONDS, DEFAULT_MEMORY_MB
    from irob_bench.isolation.sandbox import LEVELS as ISOLATION_LEVELS

    parser.add_argument("--isolation", choices=ISOLATION_LEVELS, default=None,  # None: $IROB_BENCH_ISOLATION, read when used
                        help=f"where the submission runs: none (this process), process, sandbox (default: ${ISOLATION_ENV}, else sandbox)")
    parser.add_argument("--timeout", type=bounded(0, 1e9), default=None, metavar="SECONDS",
                        help=f"wall-clock limit of the isolated worker (default {CHUNK_SECONDS:g} s per chunk of the "
                        "points it evaluates: --batch-size points where the command has that option)")
    parser.add_argument("--memory-mb", type=bounded(255, 2**40, cast=int), default=None,  # None: the default, if isolated
                        help=f"memory limit of the worker (default {DEFAULT_MEMORY_MB})")


def isolation_of(args: argparse.Namespace) -> Isolation:
    """The Isolation asked for by --isolation (else $IROB_BENCH_ISOLATION, else sandbox), --timeout and --memory-mb;
    the variable is checked only by the commands that run a submission, so a bad value cannot break `--help` or others."""
    from irob_bench.isolation.sandbox import LEVELS, Isolation

    level = args.isolation or os.environ.get(ISOLATION_ENV) or "sandbox"
    if level not in LEVELS:
        raise IrobError(f"${ISOLATION_ENV}={level!r} is not an isolation level (available: {', '.join(LEVELS)}); "
                        "unset it or pass --isolation")  # fmt: skip
    limits = [name for name, value in (("--timeout", args.timeout), ("--memory-mb", args.memory_mb)) if value is not None]
    if level == "none" and limits:
        raise IrobError(f"{limits[0]} limits the isolated worker, but isolation 'none' runs the submission in this "
                        "process, where it would be ignored: drop one of them")
    memory = {} if args.memory_mb is None else {"memory_mb": args.memory_mb}
    return Isolation(level=level, timeout=args.timeout, **memory)
