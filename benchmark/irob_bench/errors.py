"""The one exception type the CLI turns into a one-line message and a non-zero exit (pydantic errors as one line:
common.field_error)."""

from __future__ import annotations


class IrobError(Exception):
    """A user-facing failure: bad input, a failed check, a missing file."""


class Terminated(BaseException):
    """SIGTERM (`kill`, a scheduler's stop or time limit), raised in the main thread so that an open transaction rolls
    back and a sandboxed worker is stopped; a BaseException, as KeyboardInterrupt is, so that no `except Exception`
    around user code takes it for the user's error."""
