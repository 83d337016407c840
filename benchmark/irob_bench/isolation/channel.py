"""The wire between the parent and the worker that holds a submission's model: length-prefixed JSON headers with raw
numpy arrays, never pickle (unpickling what the worker sends would run its code in the parent).

A message is an 8-byte header length, the JSON header {"op": ..., ..., "arrays": [[dtype, shape], ...]}, then each
array's bytes in C order. The reader checks every length, dtype and shape before it allocates, so a worker that writes
garbage gets one IrobError line, not a traceback or a 29 TiB allocation.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

import numpy as np

from irob_bench.errors import IrobError
from irob_bench.plugin import UNSHOWABLE

MAX_HEADER_BYTES = 1 << 20  # metadata is at most a few tens of KB
MAX_ARRAY_BYTES = 1 << 31  # the arrays of one message: a batch of logits or images, a model's weights
DTYPES = ("float16", "float32", "float64", "bool", "int64")  # what tensors may travel as (bfloat16 as float32)
_LENGTH = struct.Struct("<Q")
MAX_TEXT = 300


class ChannelClosed(IrobError):
    """The other side ended (or sent a truncated message)."""


def printable(text: str) -> str:
    """Untrusted output with every character metadata may not hold (plugin.UNSHOWABLE: control characters but
    newline and tab, so escape sequences and carriage returns, and bidi overrides) replaced by '?'."""
    return UNSHOWABLE.sub("?", text)


def plain(text: str, limit: int = MAX_TEXT) -> str:
    """Untrusted text (a worker's error message or output) as one short printable line: control characters and
    escape sequences replaced, cut at `limit` characters."""
    line = UNSHOWABLE.sub("?", " ".join(str(text).split()))  # no newline or tab is left to keep
    return line if len(line) <= limit else line[: limit - 3] + "..."


def send(stream: BinaryIO, header: dict[str, Any], arrays: tuple[np.ndarray, ...] = ()) -> None:
    """Write one message: `header` (JSON-able) and `arrays` (numpy, any of DTYPES)."""
    arrays = tuple(np.ascontiguousarray(a) for a in arrays)
    body = json.dumps({**header, "arrays": [[a.dtype.name, list(a.shape)] for a in arrays]}).encode()
    stream.write(_LENGTH.pack(len(body)) + body)
    for a in arrays:
        stream.write(memoryview(a.reshape(-1).view(np.uint8)))
    stream.flush()


def _read(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise ChannelClosed("the worker ended the connection")
    return data


def _read_into(stream: BinaryIO, target: memoryview) -> None:
    """Fill `target` from the stream (an array's bytes, read in place: no copy of a large batch)."""
    done = 0
    while done < len(target):
        got = stream.readinto(target[done:])
        if not got:
            raise ChannelClosed("the worker ended the connection")
        done += got


def widen(pipe: BinaryIO) -> None:
    """Give a pipe a 1 MiB buffer (Linux's default 64 KiB splits a batch of images into many wake-ups); best effort."""
    import fcntl

    try:
        fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except OSError:
        pass


def _dtype(name: object) -> np.dtype:
    if name not in DTYPES:
        raise IrobError(f"isolation: the worker sent an array of type {plain(str(name), 40)!r}; allowed: {', '.join(DTYPES)}")
    return np.dtype(str(name))


def receive(stream: BinaryIO) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message; any malformed length, header, dtype or shape is one IrobError line."""
    (size,) = _LENGTH.unpack(_read(stream, _LENGTH.size))
    if size > MAX_HEADER_BYTES:
        raise IrobError(f"isolation: the worker sent a {size}-byte header (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(_read(stream, size))
    except (ValueError, RecursionError):
        raise IrobError("isolation: the worker sent a header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str) or not isinstance(header.get("arrays"), list):
        raise IrobError("isolation: the worker sent a header without op and arrays")
    arrays, total = [], 0
    for spec in header.pop("arrays"):
        ok = isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], list) and len(spec[1]) <= 8
        if not ok or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec[1]):
            raise IrobError("isolation: the worker sent an array without a valid [dtype, shape]")
        dtype = _dtype(spec[0])
        nbytes = math.prod(spec[1]) * dtype.itemsize
        total += nbytes
        if total > MAX_ARRAY_BYTES:
            raise IrobError(f"isolation: the worker sent a {nbytes}-byte array (at most {MAX_ARRAY_BYTES})")
        array = np.empty(spec[1], dtype=dtype)
        _read_into(stream, memoryview(array.reshape(-1).view(np.uint8)))
        arrays.append(array)
    return header, arrays
