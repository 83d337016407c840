"""Per-example attack outcomes, and their byte-reproducible .npz file for point-by-point comparison."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from irob_bench.artifacts import read_npz, write_npz
from irob_bench.attacks import flags as sanity
from irob_bench.attacks.config import AttackSuiteConfig
from irob_bench.attacks.examples import Examples, merge_examples
from irob_bench.attacks.flags import stage_robust
from irob_bench.attacks.minimal import robust_accuracy_curve
from irob_bench.attacks.presets import read_config
from irob_bench.attacks.records import SanityFlag
from irob_bench.errors import IrobError


@dataclass(frozen=True)
class Tallies:
    """The counts behind the count-based sanity flags. They add up over disjoint parts of an evaluation (shards,
    chunks), so flags derived from the sum are those of one process over all the points."""

    rejected: dict[str, int]  # attack ("cascade", "minimal", "latent") -> claimed adversarials that failed re-checking
    gradient_bad: int  # correctly classified points with a zero or non-finite input gradient
    noise: list[int]  # per eps: robust points broken by random noise on the eps-sphere
    search: list[int]  # per eps: ... by noise or the black-box random search
    spot_checked: int = 0  # in-distribution survivors re-attacked by the convergence spot-check
    spot_changed: list[int] = field(default_factory=list)  # per eps: outcomes it changed

    def __add__(self, other: Tallies) -> Tallies:
        def add(a: list[int], b: list[int]) -> list[int]:
            return [i + j for i, j in zip(a, b, strict=True)] if a and b else a or b

        return Tallies(
            rejected={k: self.rejected.get(k, 0) + other.rejected.get(k, 0) for k in {**self.rejected, **other.rejected}},
            gradient_bad=self.gradient_bad + other.gradient_bad,
            noise=add(self.noise, other.noise),
            search=add(self.search, other.search),
            spot_checked=self.spot_checked + other.spot_checked,
            spot_changed=add(self.spot_changed, other.spot_changed),
        )


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
    tallies: Tallies | None = None  # the counts behind the flags (None in files written before sharding)
    certified: np.ndarray | None = None  # (N, E) points certified at each eps (None: no certificate, or an older file)

    def stage_accuracies(self) -> list[tuple[str, list[float]]]:
        """AutoAttack's per-stage report: (stage name, robust accuracy at each eps after it and every earlier one)."""
        if self.stage is None:
            return []
        n = max(len(self.clean_correct), 1)
        return [(name, [float(v) / n for v in stage_robust(self.clean_correct, self.stage, k)])
                for k, name in enumerate(self.config.stage_names(self.latent_broke_any()))]

    def latent_broke_any(self) -> bool:
        """Whether the in-distribution attack broke a point the unconstrained attacks left robust (its stage)."""
        return self.stage is not None and bool((self.stage == self.config.in_distribution_stage).any())

    def config_dict(self) -> dict[str, Any]:
        """The full attack configuration for the result record (which in-distribution method ran, if any)."""
        return {
            **self.config.model_dump(mode="json"),
            "in_distribution": self.config.latent.method if self.robust_in is not None else None,
        }

    @property
    def clean_accuracy(self) -> float:
        """The fraction of points classified correctly before any attack."""
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


def derive_flags(outcomes: AttackOutcomes) -> list[SanityFlag]:
    """Every AutoAttack-style flag of docs/science.md §5 / docs/attacks.md, in a fixed order, from the per-example arrays
    and the tallies alone: the same for one process and for merged parts."""
    config, eps, tallies, tol = outcomes.config, outcomes.eps, outcomes.tallies, outcomes.config.flags.accuracy_tolerance
    if tallies is None:
        raise IrobError("outcomes without flag tallies (written before irob-bench could merge) cannot be merged")
    labels = {"cascade": "the unconstrained cascade", "minimal": "the minimum-norm attack",
              "latent": f"the {config.latent.method} in-distribution attack"}
    flags = [f for key, label in labels.items() if key in tallies.rejected
             for f in sanity.verification_flags(label, tallies.rejected[key])]
    if outcomes.robust_in is not None:
        flags += sanity.convergence_flags(eps, tallies.spot_checked, tallies.spot_changed or [0] * len(eps),
                                          config.latent.spot_check_factor)
    if outcomes.stage is not None:
        flags += sanity.stage_flags(eps, config.stage_names(), outcomes.clean_correct, outcomes.stage,
                                    config.flags.stage_gain_fraction)
    flags += sanity.gradient_flags(tallies.gradient_bad, int(outcomes.clean_correct.sum()), config.flags)
    flags += sanity.black_box_flags(eps, tallies.noise, tallies.search, outcomes.robust_pgd)
    if outcomes.robust_in is not None:
        by_latent = None if outcomes.stage is None else outcomes.stage == config.in_distribution_stage
        flags += sanity.in_distribution_flags(eps, outcomes.robust_pgd, outcomes.robust_in, tol, by_latent)
    return flags


def merge_outcomes(parts: list[AttackOutcomes]) -> AttackOutcomes:
    """The outcomes of disjoint parts of one evaluation (in the evaluation's point order) as one: arrays
    concatenated, tallies added, flags derived again; what one process over all the points gives."""
    first = parts[0]
    for part in parts[1:]:
        if part.eps != first.eps or part.seed != first.seed or part.config != first.config:
            raise IrobError("outcomes: the parts were measured at different eps, seeds or attacks")
        if (part.robust_in is None) != (first.robust_in is None) or (part.stage is None) != (first.stage is None):
            raise IrobError("outcomes: the parts ran different attacks")

    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    tallies = None
    for part in parts:
        if part.tallies is None:
            raise IrobError("outcomes without flag tallies (written before irob-bench could merge) cannot be merged")
        tallies = part.tallies if tallies is None else tallies + part.tallies
    timings: dict[str, float] = {}
    for part in parts:
        for stage, seconds in part.timings.items():
            timings[stage] = round(timings.get(stage, 0.0) + seconds, 3)
    merged = replace(
        first, indices=cat("indices"), labels=cat("labels"), clean_correct=cat("clean_correct"),
        robust_pgd=cat("robust_pgd"), r_unc=cat("r_unc"), robust_in=cat("robust_in"), r_in=cat("r_in"),
        stage=cat("stage"), tallies=tallies, timings=timings, examples=merge_examples([p.examples for p in parts]),
        certified=None if any(p.certified is None for p in parts) else np.concatenate([p.certified for p in parts]),
    )
    return replace(merged, flags=derive_flags(merged))


def save_outcomes(outcomes: AttackOutcomes, path: str | Path) -> None:
    """Write the per-example outcomes (with dataset indices, config, flags and seed) as a deterministic .npz."""
    meta = {
        "config": outcomes.config.model_dump(mode="json"),
        "seed": outcomes.seed,
        "flags": [f.model_dump(mode="json") for f in outcomes.flags],
    }
    if outcomes.tallies is not None:
        meta["tallies"] = asdict(outcomes.tallies)
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
    if outcomes.certified is not None:
        arrays["certified"] = outcomes.certified.astype(bool)
    if outcomes.examples is not None:
        arrays.update(outcomes.examples.arrays())
    write_npz(path, arrays)


MAX_OUTCOMES_BYTES = 256 << 20
"""Largest uncompressed outcomes file read (a full 10,000-point mnist run is 0.7 MB): a small zip can hold a huge
array, and an outcomes file may come from anyone (`runs import`)."""


def load_outcomes(path: str | Path) -> AttackOutcomes:
    """Read outcomes written by `save_outcomes` (timings are not stored: they differ between runs); anything else,
    a missing array or one of the wrong kind or size included, is one IrobError naming the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(member.file_size for member in archive.infolist())
        if size > MAX_OUTCOMES_BYTES:
            raise IrobError(f"{path}: {size:,} bytes uncompressed, more than any outcomes file ({MAX_OUTCOMES_BYTES:,})")
        data = read_npz(path)
        meta = json.loads(data["meta_json"].tobytes().decode())
        _check_arrays(data)
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
            tallies=Tallies(**meta["tallies"]) if "tallies" in meta else None,
            certified=data.get("certified"),
        )
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile, MemoryError, RecursionError) as exc:
        # pydantic's errors are ValueErrors; an npy header can claim a huge shape, JSON can nest past the stack
        raise IrobError(f"{path}: not an attack outcomes file ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _check_arrays(data: dict[str, np.ndarray]) -> None:
    """Every per-point array is there (or optional), of its kind, with one row per point and one column per eps."""
    n, e = len(data["indices"]), len(data["eps"])
    kinds = {"indices": "iu", "labels": "iu", "clean_correct": "b", "robust_pgd": "b", "robust_in": "b",
             "certified": "b", "stage": "iu", "r_unc": "f", "r_in": "f"}
    shapes = {"indices": (n,), "labels": (n,), "clean_correct": (n,), "robust_pgd": (n, e), "robust_in": (n, e),
              "certified": (n, e), "stage": (n, e), "r_unc": (n,), "r_in": (n,)}
    for name, shape in shapes.items():
        if name not in data:
            if name in ("robust_in", "certified", "stage", "r_in"):
                continue
            raise KeyError(name)
        array = data[name]
        if array.dtype.kind not in kinds[name] or array.shape != shape:
            raise ValueError(f"{name} is {array.dtype} {array.shape}, expected {kinds[name][0]!r}-kind {shape}")
