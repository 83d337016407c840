"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class IrobError(Exception):
    """A user-facing failure: bad input, a failed check, a missing file."""
