"""The command's allocator settings: a large block freed and allocated again is not page-faulted in again (the
difference between 0.55 s and 1.2 s for the same forward passes, irob_bench.allocator)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from irob_bench.allocator import KEEP_BYTES, M_MMAP_THRESHOLD

pytestmark = pytest.mark.skipif(not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
                                reason="glibc's allocator only")  # fmt: skip

BLOCK_FLOATS = (64 << 20) // 4  # a 64 MiB block: a batch's activations
ROUNDS = 20

FAULTS = f"""
import ctypes, resource, sys
import numpy as np
from irob_bench.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
else:  # glibc's initial mmap threshold, held fixed: every large block is mapped afresh and faulted in again
    assert ctypes.CDLL(None).mallopt({M_MMAP_THRESHOLD}, 128 * 1024)
counts = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt]
for _ in range({ROUNDS}):
    block = np.ones({BLOCK_FLOATS}, dtype=np.float32)
    del block
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
print(counts[1] - counts[0], counts[-1] - counts[1])
"""


def faults(mode: str) -> tuple[int, int]:
    """Page faults of the first round (the block's pages) and of all later rounds together."""
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    first, later = map(int, done.stdout.split())
    return first, later


def test_kept_memory_is_faulted_in_once_not_every_round():
    assert KEEP_BYTES > 64 << 20
    first, later = faults("keep")
    assert later < first / 2, (first, later)


def test_control_a_block_mapped_afresh_is_faulted_in_every_round():
    first, later = faults("mapped")
    assert later > (ROUNDS - 1) / 2 * first, (first, later)
