"""Small helpers shared by every subpackage: the frozen pydantic base, eps comparison, the evaluated-indices hash,
pydantic errors as one line, where the shipped data is, and the one rule for irob-bench's cache and data folders.

Import-light on purpose (no torch, no numpy): the CLI's parsers and the leaderboard import it.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import numpy as np
    from pydantic import ValidationError

EPS_TOLERANCE = 1e-9
"""Two eps values closer than this are the same budget (floats read back from JSON, grids built by arithmetic)."""

APP_NAME = "irob-bench"

DEFAULT_N_EXAMPLES = 300
"""Test points an evaluation scores by default (a seeded subset); the leaderboard ranks no run on fewer unless every
run of its table has fewer."""


class FrozenModel(BaseModel):
    """An immutable pydantic model that refuses unknown fields: the base of every record and setting irob-bench keeps."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def same_eps(a: float, b: float) -> bool:
    """Whether two eps values are the same budget (within EPS_TOLERANCE)."""
    return abs(a - b) < EPS_TOLERANCE


def indices_sha256(indices: np.ndarray) -> str:
    """Hex SHA-256 of the evaluated test indices as int64 bytes: what a result's settings.indices_sha256 records.

    Byte for byte the hash of the int64 tensor (datasets.frozen.tensor_sha256 of torch.from_numpy(indices))."""
    import numpy as np  # here, not at import: the CLI's parsers import this module and no numpy

    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


def field_error(exc: ValidationError) -> str:
    """The first error of a pydantic ValidationError as 'field.path: message', naming the user's field in one line."""
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"])) or "value"
    return f"{where}: {first['msg']}"


def shipped_data_dir() -> Path:
    """The shipped distributions' files (one folder per name: card.json, generator weights, test latents, checker).

    Package data at irob_bench/data, read through importlib.resources: in the repository a symlink to the top-level
    datasets/ folder, in a wheel real files (pyproject.toml says why)."""
    return Path(str(resources.files("irob_bench").joinpath("data"))).resolve()


def user_dir(kind: Literal["cache", "data"], *parts: str) -> Path:
    """irob-bench's folder for downloads and rebuildable files ("cache") or for kept results ("data"), joined with parts.

    cache: $IROB_BENCH_CACHE, else $XDG_CACHE_HOME/irob-bench, else ~/.cache/irob-bench.
    data: $XDG_DATA_HOME/irob-bench, else ~/.local/share/irob-bench. An empty variable counts as unset (XDG rule).
    """
    if kind == "cache":
        base = _env_path("IROB_BENCH_CACHE") or (_env_path("XDG_CACHE_HOME") or Path.home() / ".cache") / APP_NAME
    elif kind == "data":
        base = (_env_path("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP_NAME
    else:
        raise ValueError(f"unknown folder kind {kind!r} (available: cache, data)")
    return base.joinpath(*parts)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None
