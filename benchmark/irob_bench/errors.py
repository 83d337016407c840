"""The one exception type the CLI turns into a one-line message and a non-zero exit (pydantic errors as one line:
common.field_error)."""

from __future__ import annotations


class IrobError(Exception):
    """A user-facing failure: bad input, a failed check, a missing file."""
