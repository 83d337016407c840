"""Compiling a submission file without running it: a syntax error is found by the CLI's parser in a fraction of a
second, not after a sandbox has started and imported torch (8 s). Light enough for the parsers: no pydantic, no torch."""

from __future__ import annotations

import warnings
from pathlib import Path

MAX_SOURCE_BYTES = 10 << 20
"""The largest submission file compiled here, outside the sandbox's memory limit (compiling takes about 50x the
file's size in memory); a submission is code, its weights are files beside it."""


def syntax_error(path: str | Path) -> str | None:
    """Why the file cannot be read or compiled ("syntax error in NAME line N: MSG"), or None. compile() runs none of
    the file's code; nesting too deep for the compiler and null bytes are syntax errors here too, and its warnings
    (`x is 1`) are not: they would print while arguments are parsed, or refuse a valid file under -W error."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return f"{path.name} is larger than {MAX_SOURCE_BYTES >> 20} MB; a submission is code (weights go in files beside it)"
        source = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:  # IndentationError and TabError are SyntaxErrors
        return describe(exc)
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes (3.11), nesting beyond the compiler's limits
        return f"syntax error in {path.name}: {exc or type(exc).__name__}"
    return None


def describe(exc: SyntaxError) -> str:
    """One line naming the file (the submission, or a module it imports) and the line that does not compile."""
    return f"syntax error in {Path(exc.filename or '?').name} line {exc.lineno}: {exc.msg}"
