"""The isolated worker's wall-clock limit: --timeout when given, else an allowance per chunk of the work, so that a
full-test-set evaluation is not killed at the default subset's limit (the parent never imports the submission)."""

from __future__ import annotations

import pytest

from irob_bench.errors import IrobError
from irob_bench.evaluate import EvaluateOptions
from irob_bench.isolation.sandbox import CHUNK_SECONDS, Isolation, time_limit

SANDBOX = Isolation()


def seconds(kind: str = "evaluate", isolation: Isolation = SANDBOX, **options) -> float:
    return time_limit(EvaluateOptions(**options), isolation, kind)[0]


def test_the_default_allows_each_chunk_of_the_work_the_same_time():
    assert seconds() == 2 * CHUNK_SECONDS  # the default 300 points at batch 250
    assert seconds(dataset="mnist", n_examples=None) == 40 * CHUNK_SECONDS  # --n-examples all: 10,000 points
    assert seconds(n_examples=None) == 40 * CHUNK_SECONDS  # no --dataset: the largest test split of any card
    assert seconds(dataset="mnist", n_examples=None, shard=(1, 4)) == 10 * CHUNK_SECONDS
    assert seconds(indices=(1, 2, 3)) == CHUNK_SECONDS
    assert seconds("validate", n_examples=None) == CHUNK_SECONDS


def test_an_explicit_timeout_is_the_limit_whatever_the_work_control():
    given = Isolation(timeout=20)
    assert seconds(isolation=given, n_examples=None) == 20 == seconds(isolation=given)
    assert time_limit(EvaluateOptions(), given, "evaluate")[1] == "--timeout 20 s"


def test_a_bad_shard_is_refused_before_any_worker_starts():
    with pytest.raises(IrobError, match="--shard 5/4"):
        seconds(dataset="mnist", shard=(5, 4))
