"""The benchmarks time what the `irob-bench` command does, so their process keeps freed memory as its does."""

import pytest

from irob_bench.allocator import keep_freed_memory


@pytest.fixture(scope="session", autouse=True)
def _command_allocator() -> None:
    keep_freed_memory()
