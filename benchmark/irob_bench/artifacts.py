"""Hashes, atomic writes and byte-reproducible .npz files for every file irob-bench produces, so no half-written
file survives."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import secrets
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


PACKAGE = Path(__file__).resolve().parent
CODE_KEY = "irob_bench_code"  # the result's environment entry that holds code_sha256()


@functools.lru_cache(maxsize=None)
def code_sha256(root: Path = PACKAGE) -> str:
    """Hex SHA-256 of irob-bench's own code: every .py file under `root`, by relative path and bytes (an exact input:
    the same on every machine). Recorded with each result, because the version number is not bumped by every fix, so
    that runs made by different code are told apart (`runs merge` refuses to join their shards)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_file(target.parent, f".{target.name}.", ".tmp")
    try:
        mode = stat.S_IMODE(tmp_path.stat().st_mode)  # 0o666 less the umask: what a plain open() would have made
        yield tmp_path
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create a new, empty file with a random name in `folder`, with the permissions open() gives (the process umask
    applies; the umask itself is never read or changed)."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write text to `target` atomically."""
    atomic_write_bytes(target, text.encode())


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write bytes to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_torch_save(obj: object, target: str | Path) -> None:
    """torch.save atomically, byte-reproducibly (serialised in memory: the file name never enters the archive)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(target, buffer.getvalue())


_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write an .npz with fixed timestamps so identical arrays give identical bytes; atomic."""
    import numpy as np  # here: the CLI's parsers import this module and no numpy

    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=method) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH), buf.getvalue(), compress_type=method)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz file (no pickles)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
