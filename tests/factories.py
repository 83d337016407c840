"""Realistic EvaluationResult objects for the leaderboard tests, built directly (no model is evaluated)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from irob_bench import datasets
from irob_bench.attacks.config import StageConfig
from irob_bench.attacks.presets import preset
from irob_bench.leaderboard.store import EpsValues, LeaderboardRow
from irob_bench.plugin import SubmissionMetadata
from irob_bench.results import (
    Curves,
    DatasetRecord,
    EpsMetrics,
    EvaluationResult,
    Metrics,
    SanityFlag,
    Settings,
    SubmissionRecord,
)

EPS = (1.0, 2.0, 3.0)
CEILINGS = (0.981, 0.942, 0.873)  # classifier-specific ceilings of a ~99%-accurate mnist model at EPS


def _hex(tag: str) -> str:
    """A fake but well-formed sha256 hex digest derived from a tag."""
    return (tag.encode().hex() * 64)[:64]


def make_result(
    name: str = "smallcnn-pgd",
    *,
    training: str = "pgd-l2 eps=2",
    pgd: Sequence[float] = (0.912, 0.655, 0.301),
    in_distribution: Sequence[float] | None = (0.957, 0.802, 0.512),
    clean: float = 0.9893,
    seed: int = 0,
    dataset: str = "mnist",
    eps: Sequence[float] = EPS,
    with_ceilings: bool = True,
    created_at: str = "2025-03-14T09:26:53+00:00",
    file_tag: str | None = None,
) -> EvaluationResult:
    """One evaluation of a submission named `name`; `seed` and the tags change its fingerprint."""
    per_eps = []
    for i, e in enumerate(eps):
        ceiling = CEILINGS[i % len(CEILINGS)] if with_ceilings else None
        per_eps.append(
            EpsMetrics(
                eps=e,
                robust_accuracy_pgd=pgd[i],
                robust_accuracy_in_distribution=None if in_distribution is None else in_distribution[i],
                ceiling_classifier=ceiling,
                ceiling_dataset_overall=None if ceiling is None else min(1.0, ceiling + 0.011),
                ceiling_dataset_per_class=None if ceiling is None else min(1.0, ceiling + 0.004),
                ceiling_reasons={} if with_ceilings else {"ceiling_classifier": "no Lipschitz estimate in the card"},
                gap=None if ceiling is None else ceiling - pgd[i],
            )
        )
    per_class = [clean + (c - 4.5) * 0.001 for c in range(10)]
    return EvaluationResult(
        irob_bench_version="0.1.0",
        created_at=created_at,
        submission=SubmissionRecord(
            metadata=SubmissionMetadata(
                name=name,
                authors=["A. Author", "B. Author"],
                datasets=[dataset],
                training=training,
                description="a small CNN",
                paper_url="https://example.org/paper",
                weights=["model.pt"],
            ),
            file_sha256=_hex(file_tag or name),
            weights_sha256={"model.pt": _hex("w" + (file_tag or name))},
        ),
        dataset=DatasetRecord(
            name=dataset,
            version="1.0",
            generator_sha256=_hex("gen"),
            latents_sha256=_hex("lat"),
            labels_sha256=_hex("lab"),
            images_sha256=_hex("img"),
            lipschitz_constants=[3.1, 2.4, 3.3, 3.0, 2.9, 3.2, 3.0, 2.8, 3.4, 3.0],
            lipschitz_radius=0.5,
            lipschitz_delta=0.001,
        ),
        settings=Settings(
            eps=list(eps),
            n_examples=1000,
            subset_seed=7,
            indices_sha256=_hex("idx"),
            seed=seed,
            batch_size=256,
            device="cpu",
            attacks=preset("standard").model_dump(mode="json"),
        ),
        metrics=Metrics(
            clean_accuracy=clean,
            per_class_accuracy=per_class,
            per_class_count=[98, 113, 103, 101, 98, 89, 96, 103, 97, 102],
            per_eps=per_eps,
            curves=Curves(eps=[0.0, 1.5, 3.0], unconstrained=[clean, 0.48, 0.301], in_distribution=[clean, 0.66, 0.512]),
        ),
        flags=[SanityFlag(name="pgd-vs-random", message="random noise beat PGD at one point", eps=3.0)],
        timings={"clean": 0.41, "pgd": 12.7},
        environment={"torch": "2.4.1", "python": "3.11.9"},
        outcomes_file="outcomes/smallcnn.npz",
    )


def apgd_stages(steps: int, restarts: int = 1) -> tuple[StageConfig, ...]:
    """A cheap one-stage unconstrained cascade (APGD-CE) for tests that need a fast attack."""
    return (StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=steps, restarts=restarts),)


# A child process that stores run 1, then is to be SIGKILLed inside the save of a second run (after "inside" is
# printed, its eps-2 row flushed but not committed): kill_mid_save.
KILL_MID_SAVE = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.factories import make_result
from irob_bench.leaderboard import store as store_module
store = store_module.Store({url!r})
store.save(make_result())
real = store_module._eps_row
def stall(metrics):
    if metrics.eps == 2.0:
        print("inside", flush=True)
        time.sleep(60)
    return real(metrics)
store_module._eps_row = stall
store.save(make_result(seed=1))
"""


def kill_mid_save(url: str) -> None:
    """Store run 1 at `url` in a child process, then SIGKILL it inside the save of run 2 (tests/test_store.py and
    tests/test_store_backends.py check what the database holds afterwards)."""
    code = KILL_MID_SAVE.format(repo=str(Path(__file__).parent.parent), url=url)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"  # the second run's rows are flushed, not committed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()


def leaderboard_row(run_id: int, name: str, pgd: dict[float, float], *, clean: float = 0.98,
                    in_dist: float | None = None, ceiling: float | None = None, dataset: str = "mnist",
                    preset: str = "standard", certified: tuple[float | None, str | None] = (None, None), n: int = 500,
                    submission_id: int | None = None, training: str = "pgd-l2 eps=2",
                    version: str = "1.0") -> LeaderboardRow:  # fmt: skip
    """A stored run as the leaderboard reads it, with PGD robust accuracy `pgd` at each eps."""
    return LeaderboardRow(
        run_id=run_id,
        submission_id=run_id if submission_id is None else submission_id,
        submission=name,
        training=training,
        dataset=dataset,
        dataset_version=version,
        clean_accuracy=clean,
        n_examples=n,
        created_at=datetime(2025, 3, run_id, 12, tzinfo=timezone.utc),
        fingerprint=f"{run_id:064x}",
        attack_preset=preset,
        per_eps=[
            EpsValues(
                eps=e,
                robust_accuracy_pgd=v,
                robust_accuracy_in_distribution=in_dist,
                ceiling_classifier=ceiling,
                gap=None if ceiling is None else ceiling - v,
                certified_accuracy=certified[0],
                certified_reason=certified[1],
            )
            for e, v in pgd.items()
        ],
    )


def rebounded_result(result, shift: float, **measured):
    """`result` bounded from another Lipschitz section of its card version, as `runs ceilings` leaves it: other
    constants, radius, ceilings and gaps, the same measured numbers; `measured` changes some of those."""
    per_eps = [m.model_copy(update={"ceiling_classifier": m.ceiling_classifier - shift,
                                    "gap": m.ceiling_classifier - shift - m.robust_accuracy_pgd})
               for m in result.metrics.per_eps]
    dataset = result.dataset.model_copy(update={"lipschitz_radius": 0.25,
                                                "lipschitz_constants": [c * 1.5 for c in result.dataset.lipschitz_constants]})
    metrics = result.metrics.model_copy(update={"per_eps": per_eps, **measured})
    return result.model_copy(update={"dataset": dataset, "metrics": metrics})


def v4_fingerprint(result) -> str:
    """The fingerprint up to schema version 4: it hashed the whole dataset record, card version and Lipschitz too."""
    key = {"submission_file": result.submission.file_sha256, "weights": result.submission.weights_sha256,
           "dataset": result.dataset.model_dump(), "settings": result.settings.model_dump()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def staged_card(tmp_path: Path, same_data: bool = False) -> Path:
    """A copy of the mnist card with other test images (their hash) under another version: a card this irob-bench
    does not ship, as a staged release with a new generator is; with `same_data`, only a newer version number."""
    copy = tmp_path / ("mnist-newer" if same_data else "mnist-staged")
    shutil.copytree(datasets.DATA_DIR / "mnist", copy)
    card = json.loads((copy / "card.json").read_text())
    if same_data:
        (copy / "card.json").write_text(json.dumps({**card, "version": "99.0.0"}))
        return copy
    card["splits"]["test"]["images_sha256"] = "0" * 64
    (copy / "card.json").write_text(json.dumps({**card, "version": card["version"] + "-staged"}))
    return copy


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the block, restored after: the thread count changes float rounding, so bit-for-bit
    comparisons with one-thread processes (and CPU timings) need the same one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
