"""Attack throughput: an APGD step costs no more than a raw forward+backward pass of the model.

Run with `pytest tests/benchmarks --benchmark-only -k throughput`. On the PGD-AT reference (submissions/mnist/pgd)
and 250 correctly classified points of the default subset, at an eps so small that nothing breaks (every step
runs on the full batch), APGD's examples x steps per second must be >= 90% of raw forward+backward throughput on
the same batch, timed interleaved so both see the same machine load. The same target holds for the model in an
isolated worker (the default `--isolation sandbox` runs the model there and the attacks here): APGD against the
worker's model must keep >= 90% of APGD's throughput against the same model in process. Results:
docs/performance.md.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from irob_bench.attacks.apgd import apgd_run
from tests.benchmarks.peers import REPO, reference_model, reference_points

BATCH, STEPS, EPS = 250, 30, 1e-3


def test_apgd_throughput_vs_raw_forward_backward(benchmark) -> None:
    model, dataset = reference_model("mnist/pgd")
    x, y, _ = reference_points(dataset)
    correct = model(x).argmax(dim=1) == y
    x, y = x[correct][:BATCH], y[correct][:BATCH]
    start = torch.zeros_like(x)

    def raw() -> None:
        for _ in range(STEPS + 1):  # APGD's passes: the start plus one per step
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(nn.functional.cross_entropy(model(xr), y), xr)

    _, broken = apgd_run(model, x, y, EPS, start, STEPS, "ce")
    assert not broken.any()
    raw_times: list[float] = []

    def time_raw_between_rounds() -> None:
        began = time.perf_counter()
        raw()
        raw_times.append(time.perf_counter() - began)

    benchmark.pedantic(apgd_run, args=(model, x, y, EPS, start, STEPS, "ce"), setup=time_raw_between_rounds, rounds=5)
    attack_seconds, raw_seconds = benchmark.stats.stats.median, float(np.median(raw_times))
    raw_rate, attack_rate = BATCH * STEPS / raw_seconds, BATCH * STEPS / attack_seconds
    benchmark.extra_info.update({"raw_examples_steps_per_s": raw_rate, "attack_examples_steps_per_s": attack_rate})
    print({"raw": round(raw_rate), "apgd": round(attack_rate)})
    assert attack_rate >= 0.9 * raw_rate, (attack_rate, raw_rate)


def test_apgd_against_a_model_in_the_isolated_worker_keeps_nine_tenths_of_its_throughput(benchmark) -> None:
    from irob_bench.evaluate import EvaluateOptions
    from irob_bench.isolation.remote import RemoteSubmission
    from irob_bench.isolation.sandbox import Isolation, open_worker
    from irob_bench.runtime import deterministic

    model, dataset = reference_model("mnist/pgd")
    x, y, _ = reference_points(dataset)
    x, y = x[:BATCH], y[:BATCH]
    start = torch.zeros_like(x)
    path = REPO / "submissions" / "mnist" / "pgd" / "submission.py"
    with open_worker(path, EvaluateOptions(progress=False), Isolation(level="process")) as worker:
        remote = RemoteSubmission(path, worker, "cpu").build(dataset)
        assert torch.equal(remote(x), model(x))  # the same model, answering through the wire
        local_times: list[float] = []

        def time_local_between_rounds() -> None:
            began = time.perf_counter()
            with deterministic():  # the mode of an evaluation's attacks, in process and in the worker
                apgd_run(model, x, y, EPS, start, STEPS, "ce")
            local_times.append(time.perf_counter() - began)

        benchmark.pedantic(apgd_run, args=(remote, x, y, EPS, start, STEPS, "ce"), setup=time_local_between_rounds,
                           rounds=5)  # fmt: skip
    remote_seconds, local_seconds = benchmark.stats.stats.median, float(np.median(local_times))
    benchmark.extra_info.update({"in_process_s": local_seconds, "isolated_s": remote_seconds})
    print({"in_process_s": round(local_seconds, 3), "isolated_s": round(remote_seconds, 3),
           "ratio": round(local_seconds / remote_seconds, 3)})
    assert local_seconds >= 0.9 * remote_seconds, (local_seconds, remote_seconds)
