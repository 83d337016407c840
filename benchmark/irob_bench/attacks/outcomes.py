"""Per-example attack outcomes, and their byte-reproducible .npz file for point-by-point comparison."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irob_bench.artifacts import read_npz, write_npz
from irob_bench.attacks.config import AttackSuiteConfig
from irob_bench.attacks.examples import Examples
from irob_bench.attacks.flags import stage_robust
from irob_bench.attacks.minimal import robust_accuracy_curve
from irob_bench.attacks.presets import read_config
from irob_bench.errors import IrobError
from irob_bench.results import SanityFlag


@dataclass
class AttackOutcomes:
    """What `run_attacks` measured: per-example arrays over N points and E eps, flags and timings."""

    indices: np.ndarray
    labels: np.ndarray
    eps: list[float]
    clean_correct: np.ndarray
    robust_pgd: np.ndarray
    r_unc: np.ndarray
    config: AttackSuiteConfig
    seed: int
    robust_in: np.ndarray | None = None
    r_in: np.ndarray | None = None
    flags: list[SanityFlag] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stage: np.ndarray | None = None  # (N, E) cascade stage that broke the point at each eps (verified), -1 if none
    examples: Examples | None = None  # a few points' clean and adversarial images, for the leaderboard's image grid

    def stage_accuracies(self) -> list[tuple[str, list[float]]]:
        """AutoAttack's per-stage report: (stage name, robust accuracy at each eps after it and every earlier one)."""
        if self.stage is None:
            return []
        n = max(len(self.clean_correct), 1)
        return [(name, [float(v) / n for v in stage_robust(self.clean_correct, self.stage, k)])
                for k, name in enumerate(self.config.stage_names())]

    def config_dict(self) -> dict[str, Any]:
        """The full attack configuration for the result record (which in-distribution method ran, if any)."""
        return {
            **self.config.model_dump(mode="json"),
            "in_distribution": self.config.latent.method if self.robust_in is not None else None,
        }

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.mean())

    def robust_accuracy_pgd(self) -> list[float]:
        """Unconstrained robust accuracy at each eps (verified adversarials only)."""
        return [float(v) for v in self.robust_pgd.mean(axis=0)]

    def robust_accuracy_in(self) -> list[float] | None:
        """In-distribution robust accuracy at each eps, or None without a generator."""
        return None if self.robust_in is None else [float(v) for v in self.robust_in.mean(axis=0)]

    def curves(self, eps_grid: list[float]) -> dict[str, list[float] | None]:
        """Robust accuracy over an eps grid from the minimal distances r_unc and r_in."""
        unc = robust_accuracy_curve(self.r_unc, eps_grid).tolist()
        ind = None if self.r_in is None else robust_accuracy_curve(self.r_in, eps_grid).tolist()
        return {"eps": list(eps_grid), "unconstrained": unc, "in_distribution": ind}


def save_outcomes(outcomes: AttackOutcomes, path: str | Path) -> None:
    """Write the per-example outcomes (with dataset indices, config, flags and seed) as a deterministic .npz."""
    meta = {
        "config": outcomes.config.model_dump(mode="json"),
        "seed": outcomes.seed,
        "flags": [f.model_dump(mode="json") for f in outcomes.flags],
    }
    arrays = {
        "indices": outcomes.indices.astype(np.int64),
        "labels": outcomes.labels.astype(np.int64),
        "eps": np.asarray(outcomes.eps, dtype=np.float64),
        "clean_correct": outcomes.clean_correct,
        "robust_pgd": outcomes.robust_pgd,
        "r_unc": outcomes.r_unc.astype(np.float64),
        "meta_json": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    }
    if outcomes.stage is not None:
        arrays["stage"] = outcomes.stage.astype(np.int64)
    if outcomes.robust_in is not None and outcomes.r_in is not None:
        arrays["robust_in"] = outcomes.robust_in
        arrays["r_in"] = outcomes.r_in.astype(np.float64)
    if outcomes.examples is not None:
        arrays.update(outcomes.examples.arrays())
    write_npz(path, arrays)


def load_outcomes(path: str | Path) -> AttackOutcomes:
    """Read outcomes written by `save_outcomes` (timings are not stored: they differ between runs)."""
    try:
        data = read_npz(path)
        meta = json.loads(data["meta_json"].tobytes().decode())
    except (OSError, KeyError, ValueError) as exc:
        raise IrobError(f"{path}: not an attack outcomes file ({exc})") from None
    return AttackOutcomes(
        indices=data["indices"],
        labels=data["labels"],
        eps=[float(e) for e in data["eps"]],
        clean_correct=data["clean_correct"],
        robust_pgd=data["robust_pgd"],
        r_unc=data["r_unc"],
        config=read_config(meta["config"]),
        seed=int(meta["seed"]),
        robust_in=data.get("robust_in"),
        r_in=data.get("r_in"),
        flags=[SanityFlag.model_validate(f) for f in meta["flags"]],
        stage=data.get("stage"),
        examples=Examples.from_arrays(data),
    )
