"""The one exception type the CLI turns into a one-line message and a non-zero exit, and pydantic errors as one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class IrobError(Exception):
    """A user-facing failure: bad input, a failed check, a missing file."""


def field_error(exc: ValidationError) -> str:
    """The first error of a pydantic ValidationError as 'field.path: message', naming the user's field in one line."""
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"])) or "value"
    return f"{where}: {first['msg']}"
