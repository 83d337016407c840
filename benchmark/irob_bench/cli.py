"""The `irob-bench` command line: argument parsing only; each command group lives in irob_bench.commands."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence

from irob_bench import __version__
from irob_bench.allocator import keep_freed_memory
from irob_bench.commands.arguments import OneLineParser
from irob_bench.distributed import under_torchrun
from irob_bench.errors import IrobError, Terminated

# One module per command group, each with register(subparsers); registering imports no torch (a test checks it).
COMMAND_MODULES = [
    "datasets",
    "generators",
    "validate",
    "evaluate",
    "train",
    "ceiling",
    "leaderboard",
    "runs",
    "lipschitz",
    "gate",
    "submit",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one-line errors); each leaf sets `handler(args) -> exit code | None`."""
    parser = OneLineParser(
        prog="irob-bench", description="How close does a classifier's robustness come to its data's intrinsic ceiling?"
    )
    parser.add_argument("--version", action="version", version=f"irob-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"irob_bench.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command; an IrobError or an operating-system error (a full disk, a file we may not
    write) becomes one line on stderr and exit code 2, any other exception its traceback and exit code 3: never 1,
    which `gate` reserves for a regression. A torchrun rank ends here (`_leave_rank`)."""
    code = _run(argv)
    if argv is None and under_torchrun():
        _leave_rank(code)
    return code


def _leave_rank(code: int) -> None:
    """End a torchrun rank with `code` without the interpreter's teardown: gloo's worker threads outlive
    destroy_process_group and, torn down with the interpreter, aborted a rank now and then after its work was done
    and written (SIGABRT, "terminate called without an active exception": 1 two-rank run in 60, 2026-12-07), which
    made torchrun stop rank 0, perhaps before it stored the run. Everything the command wrote is closed by now."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    """Parse and run one command, turning its failures into a line and an exit code (see main)."""
    args = build_parser().parse_args(argv)
    if argv is None:  # the process is the command's (not a caller's that passes argv): steady speed
        keep_freed_memory()
    try:
        with _sigterm_raises(argv is None and not under_torchrun()):
            code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that left shows here, not as a traceback at interpreter exit
        return code
    except BrokenPipeError:  # the reader of our output left (`| head`): stop quietly, as coreutils do on SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except IrobError as exc:
        print(f"irob-bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"irob-bench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _stopped("interrupted", 130)
    except Terminated:  # only with the handler main() installs for its own process, which ends now
        sys.unraisablehook = lambda _unraisable: None  # finalisers of objects the signal caught half-built: noise
        return _stopped("terminated (SIGTERM)", 128 + signal.SIGTERM)
    except SystemExit as exc:  # argparse exits before the handler runs: this came from submission code it ran
        print(f"irob-bench: error: the submission ended the command with sys.exit({exc.code!r}); nothing was stored",
              file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, or a crash of submission code run in process: the traceback, and never 1
        traceback.print_exc()
        where = _submission_frame(exc, args)
        if where is not None:  # the user's code (--isolation none): their error to fix, not ours
            print(f"irob-bench: error: the submission raised {type(exc).__name__}: {exc} at {where} (the traceback "
                  "above); nothing was stored", file=sys.stderr)
            return 2
        print("irob-bench: internal error (the traceback above); nothing was stored", file=sys.stderr)
        return 3


def _stopped(what: str, code: int) -> int:
    """A command stopped from outside (Ctrl-C, SIGTERM): clear the progress bars it left open, so that its one line
    starts a line of its own."""
    std = sys.modules.get("tqdm.std")  # only when a bar could have been drawn; the CLI itself does not import tqdm
    for bar in list(getattr(std.tqdm, "_instances", ())) if std else ():
        with contextlib.suppress(Exception):
            bar.close()
    print(f"irob-bench: {what}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _sigterm_raises(enabled: bool) -> Iterator[None]:
    """While the command runs in its own process, SIGTERM raises Terminated (transactions roll back, the worker is
    stopped, one line is said); before and after, and under torchrun (a rank blocked in a collective runs no Python
    handler, so only the default action stops it), SIGTERM keeps its default action."""
    if not enabled:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, _frame: object) -> None:
    """The SIGTERM handler: stop the command as an exception (transactions roll back, workers stop); a second SIGTERM
    during that clean-up ends the process at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated(signum)


def _submission_frame(exc: BaseException, args: argparse.Namespace) -> str | None:
    """FILE:LINE of the innermost traceback frame in the command's submission file, or None if it never ran there."""
    files = {os.path.realpath(value) for value in (getattr(args, "path", None), getattr(args, "submission", None))
             if isinstance(value, str) and value.endswith(".py")}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.realpath(f.filename) in files]
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else None


if __name__ == "__main__":
    sys.exit(main())
