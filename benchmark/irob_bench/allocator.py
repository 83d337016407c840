"""glibc's allocator, told to keep the memory a process frees, so an attack's next step does not fault it back in.

By default glibc either maps a large block (a batch's activations) afresh or trims the heap after it is freed,
depending on the heap's history, and every step then page-faults the whole block in again: the same 31 forward
passes of the mnist PGD-AT reference took 0.55 s in one process and 1.2 s in the next (about 2.8 million page
faults against a few hundred). A process that exists to evaluate or train keeps what it frees instead (the mmap and
trim thresholds at 1 GiB): its memory stays at its peak, and its speed stops depending on luck. Only the CLI and the
isolated worker call this, as the owners of their processes; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
KEEP_BYTES = 1 << 30  # blocks below this come from the heap; free memory above this at its top goes back


def keep_freed_memory() -> bool:
    """Set this process's glibc thresholds to KEEP_BYTES; whether the allocator took them (False off glibc)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
