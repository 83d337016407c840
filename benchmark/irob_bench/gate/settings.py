"""Rebuild the baseline's evaluation settings for a gate run, and name every setting that would differ."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from irob_bench.attacks.config import AttackSuiteConfig
from irob_bench.attacks.presets import DEFAULT_PRESET, preset, read_config
from irob_bench.common import FrozenModel, field_error, indices_sha256, same_eps
from irob_bench.datasets.card import DatasetCard
from irob_bench.evaluate import EvaluateOptions, subset_indices
from irob_bench.isolation.sandbox import Isolation
from irob_bench.results import DATA_FIELDS, DatasetRecord, EvaluationResult

# Added to the dumped AttackSuiteConfig by AttackOutcomes.config_dict(): which in-distribution attack ran.
IN_DISTRIBUTION_KEY = "in_distribution"
QUICK_N = 100  # --quick: the first 100 examples of the baseline's seeded subset (a prefix of it)

_UNSET = object()

# How a difference in each DatasetRecord field of a run's identity is named, in the order the report gives them.
_DATASET_FIELDS = {"name": DATA_FIELDS["name"], "version": "dataset version", **DATA_FIELDS}


class GateOptions(FrozenModel):
    """How strict the gate is and which baseline settings (if any) a run overrides; None repeats the baseline."""

    tolerance_pp: float = Field(0.5, ge=0, description="drops up to this many percentage points always pass")
    alpha: float = Field(0.05, gt=0, le=1, description="significance level of the one-sided McNemar test")
    quick: bool = Field(False, description=f"evaluate only the first {QUICK_N} examples of the baseline's subset")
    allow_settings_change: bool = Field(False, description="compare on the common eps and examples instead of failing")
    dataset: str | None = Field(None, description="dataset name or card path (default: the baseline's dataset name)")
    eps: list[float] | None = None
    n_examples: int | None = Field(None, ge=1)
    seed: int | None = None
    device: str = "cpu"
    progress: bool = True
    isolation: Isolation = Field(default_factory=Isolation, description="where the submission runs (untrusted code)")


def plan_run(baseline: EvaluationResult, options: GateOptions, card: DatasetCard) -> tuple[EvaluateOptions, list[str]]:
    """EvaluateOptions that repeat the baseline (plus the gate's overrides), and the differences from the baseline."""
    settings = baseline.settings
    attacks, differences = _attack_config(settings.attacks)
    eps = sorted(options.eps) if options.eps is not None else list(settings.eps)
    n = options.n_examples or (min(QUICK_N, settings.n_examples) if options.quick else settings.n_examples)
    seed = settings.seed if options.seed is None else options.seed
    differences = [*_dataset_differences(baseline, card), *_index_differences(baseline, card), *differences]
    if not _same_floats(eps, settings.eps):
        differences.append(f"eps (baseline {_floats(settings.eps)}, now {_floats(eps)})")
    if options.n_examples is not None and n != settings.n_examples:
        differences.append(f"n_examples (baseline {settings.n_examples}, now {n})")
    if seed != settings.seed:
        differences.append(f"seed (baseline {settings.seed}, now {seed})")
    plan = EvaluateOptions(
        dataset=options.dataset or baseline.dataset.name,
        eps=eps,
        n_examples=n,
        subset_seed=settings.subset_seed,
        seed=seed,
        device=options.device,
        batch_size=settings.batch_size,
        attacks=attacks,
        progress=options.progress,
        population=settings.n_examples,  # a sample of the run repeats the run's spot-check draws, point by point
    )
    return plan, differences


def attack_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two dumped attack configs, e.g. ['pgd.steps (baseline 10, now 50)']."""
    flat_old, flat_new = _flatten(baseline), _flatten(current)
    return [
        f"{key} (baseline {flat_old.get(key, 'unset')}, now {flat_new.get(key, 'unset')})"
        for key in sorted(flat_old.keys() | flat_new.keys())
        if flat_old.get(key, _UNSET) != flat_new.get(key, _UNSET)
    ]


def _attack_config(recorded: dict[str, Any]) -> tuple[AttackSuiteConfig, list[str]]:
    """The baseline's attack config as this version reads it; a difference if it cannot or would record it differently.

    evaluate() always attacks in distribution (it has the generator), so the recorded method is the latent one.
    """
    try:
        config = read_config({k: v for k, v in recorded.items() if k != IN_DISTRIBUTION_KEY})
    except ValidationError as exc:
        return preset(DEFAULT_PRESET), [f"attack config (the baseline's is not valid here: {field_error(exc)})"]
    changed = attack_differences(recorded, {**config.model_dump(mode="json"), IN_DISTRIBUTION_KEY: config.latent.method})
    return config, [f"attack config ({'; '.join(changed)})"] if changed else []


def _dataset_differences(baseline: EvaluationResult, card: DatasetCard) -> list[str]:
    """Fields that change the test examples. A version bump that keeps every hash (a card whose Lipschitz section
    was re-estimated) evaluates the same examples, so it is not a difference."""
    record = DatasetRecord.of_card(card)
    old, new = baseline.dataset.model_dump(), record.model_dump()
    same_data = not baseline.dataset.data_differences(record)
    out = []
    for field, label in _DATASET_FIELDS.items():
        if old[field] != new[field] and not (field == "version" and same_data):
            out.append(f"{label} (baseline {_short(old[field])}, now {_short(new[field])})")
    return out


def _index_differences(baseline: EvaluationResult, card: DatasetCard) -> list[str]:
    """The baseline's examples must be the ones its subset seed selects here (same permutation, same test size)."""
    settings = baseline.settings
    size = card.splits["test"].size
    if settings.n_examples > size:
        return [f"n_examples (baseline {settings.n_examples}, the test set here has {size})"]
    indices = subset_indices(size, settings.n_examples, settings.subset_seed)
    if indices_sha256(indices) != settings.indices_sha256:
        return [f"example indices (subset seed {settings.subset_seed} selects other examples here)"]
    return []


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _same_floats(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(same_eps(x, y) for x, y in zip(a, b))


def _floats(values: list[float]) -> str:
    return " ".join(f"{v:g}" for v in values)


def _short(value: object) -> str:
    """Hashes shortened to 12 characters; other values as they are."""
    text = str(value)
    return text[:12] if len(text) == 64 else text
