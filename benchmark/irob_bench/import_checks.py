"""What a result made elsewhere must pass before `runs import` stores it: a dataset card we know, numbers that agree
with each other, and every metric recomputed exactly from its per-example outcomes file. Certified accuracy is
recounted from the file's per-point certificates; files written before they were kept only allow checking it to be a
count out of n, below the attacks' robust accuracy and monotone in eps. Whether the certificates themselves hold
needs the model: `runs verify` re-certifies by re-evaluating.

Ranges (fractions in [0, 1], positive eps, hashes) are enforced by the result schema itself (results.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import torch

from irob_bench import datasets
from irob_bench.attacks.outcomes import AttackOutcomes, derive_flags
from irob_bench.attacks.presets import named_truly, read_config
from irob_bench.attacks.verify import NORM_TOLERANCE
from irob_bench.certify import Certification, claimed_certificates, violation_flags
from irob_bench.common import indices_sha256
from irob_bench.datasets.card import DatasetCard
from irob_bench.datasets.frozen import sample_latents
from irob_bench.errors import IrobError
from irob_bench.evaluate import SUBSET_SEED, VALIDATION_FLAG_PREFIX, subset_indices
from irob_bench.metrics import VIOLATION, measured_metrics, with_card_ceilings
from irob_bench.results import DatasetRecord, EvaluationResult, created_utc

COUNT_SLACK = 1e-6  # an accuracy times its count must be this close to a whole number of examples
SUM_SLACK = 1e-9  # float rounding between sums of the same counts


def known_card(result: EvaluationResult) -> DatasetCard:
    """The shipped card the result was measured on: same name, generator, latents, labels and test images."""
    return known_data(result.dataset)


def known_data(record: DatasetRecord) -> DatasetCard:
    """The shipped card of the record's name, if the record names its test examples (see check_same_data)."""
    if record.name not in datasets.available():
        raise IrobError(f"unknown dataset {record.name!r} (available: {', '.join(datasets.available())})")
    card = datasets.load_card(record.name)
    check_same_data(record, card)
    return card


def check_same_data(record: DatasetRecord, card: DatasetCard) -> None:
    """The dataset record names this card's test examples (a Lipschitz-only version bump is the same data)."""
    differing = record.data_differences(DatasetRecord.of_card(card))
    if differing:
        raise IrobError(f"dataset {card.name}: {', '.join(differing)} differ from the {card.name} v{card.version} card: "
                        "not measured on data this irob-bench knows")
    if _release(record.version) > _release(card.version):
        raise IrobError(f"dataset {card.name} v{record.version} is newer than the card this irob-bench ships "
                        f"(v{card.version})")


def check_shards_mergeable(dataset: str | None) -> None:
    """Refuse, before any work, a `--dataset` card whose shards a merge at once would refuse (known_data, the merge's
    own check): torchrun's rank 0 and submit's merge job join them into a run on the shipped card. Files of
    `--shard K/N` alone may wait for a staged card to ship, and `runs merge` then joins them."""
    if dataset is None:
        return
    try:
        known_data(DatasetRecord.of_card(datasets.load_card(dataset)))
    except IrobError as exc:
        raise IrobError(f"--dataset {dataset}: the shards are merged into a run at once, which only a card this "
                        f"irob-bench ships allows ({exc}); evaluate it in one process, or with --shard K/N and "
                        "`runs merge` once the card ships") from None


def _release(version: str) -> tuple[int, ...]:
    """'1.10.0' -> (1, 10, 0); anything but three dotted numbers as a card writes them (no spaces, signs or leading
    zeros: '1.1.0 ' would otherwise open a table of its own) is an IrobError."""
    if not re.fullmatch(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)", version):
        raise IrobError(f"dataset version {version!r} is not a release number like 1.1.0")
    return tuple(int(part) for part in version.split("."))


EARLIEST_RESULT = datetime(2024, 1, 1)
CLOCK_SKEW = timedelta(days=1)


def check_consistency(result: EvaluationResult, card: DatasetCard) -> None:
    """The numbers agree with each other: eps, class counts, accuracies as counts out of n, robust <= clean, monotone;
    and the result was made at a real moment, not in the future (a later date would make it "the latest run")."""
    created = created_utc(result.created_at)
    if not EARLIEST_RESULT <= created <= datetime.now(timezone.utc).replace(tzinfo=None) + CLOCK_SKEW:
        raise IrobError(f"created_at {result.created_at} is not between {EARLIEST_RESULT:%Y-%m-%d} and now")
    settings, metrics = result.settings, result.metrics
    n, eps = settings.n_examples, settings.eps
    if eps != sorted(set(eps)):
        raise IrobError(f"settings.eps {eps} must be ascending without repeats")
    if [m.eps for m in metrics.per_eps] != eps:
        raise IrobError(f"metrics.per_eps is at eps {[m.eps for m in metrics.per_eps]}, settings.eps is {eps}")
    counts, per_class = metrics.per_class_count, metrics.per_class_accuracy
    if len(counts) != card.num_classes or len(per_class) != card.num_classes:
        raise IrobError(f"metrics: {len(per_class)} per-class accuracies and {len(counts)} counts; {card.name} has "
                        f"{card.num_classes} classes")
    if sum(counts) != n:
        raise IrobError(f"metrics.per_class_count sums to {sum(counts)}, settings.n_examples is {n}")
    for k, (acc, count) in enumerate(zip(per_class, counts)):
        _whole(f"metrics.per_class_accuracy[{k}]", acc, count)
    _whole("metrics.clean_accuracy", metrics.clean_accuracy, n)
    from_classes = sum(a * c for a, c in zip(per_class, counts)) / n
    if abs(from_classes - metrics.clean_accuracy) > SUM_SLACK:
        raise IrobError(f"metrics.clean_accuracy {metrics.clean_accuracy} disagrees with its per-class accuracies "
                        f"({from_classes})")
    for field in ("robust_accuracy_pgd", "robust_accuracy_in_distribution"):
        values = [getattr(m, field) for m in metrics.per_eps]
        if any(v is None for v in values):
            continue
        for m, value in zip(metrics.per_eps, values):
            _whole(f"{field} at eps {m.eps:g}", value, n)
        if max(values) > metrics.clean_accuracy:
            raise IrobError(f"{field} {max(values)} exceeds the clean accuracy {metrics.clean_accuracy}")
        if any(later > earlier for earlier, later in zip(values, values[1:])):
            raise IrobError(f"{field} {values} grows with eps: a larger radius cannot leave more examples robust")
    for m in metrics.per_eps:
        if m.gap is not None and (m.ceiling_classifier is None or abs(m.ceiling_classifier - m.robust_accuracy_pgd - m.gap) > SUM_SLACK):
            raise IrobError(f"gap at eps {m.eps:g} is not ceiling_classifier - robust_accuracy_pgd")
    check_certified(result)


def check_certified(result: EvaluationResult) -> None:
    """Certified accuracy (which the outcomes file cannot reproduce) is a count out of n, at most the attacks' robust
    accuracy (a lower bound cannot exceed an upper bound) and does not grow with eps."""
    n, claimed = result.settings.n_examples, [m for m in result.metrics.per_eps if m.certified_accuracy is not None]
    for m in claimed:
        _whole(f"certified_accuracy at eps {m.eps:g}", m.certified_accuracy, n)
        if m.certified_accuracy > m.robust_accuracy_pgd + SUM_SLACK:
            raise IrobError(f"certified_accuracy {m.certified_accuracy} at eps {m.eps:g} exceeds the PGD robust accuracy "
                            f"{m.robust_accuracy_pgd}: a certificate cannot beat an attack's upper bound")
    values = [m.certified_accuracy for m in claimed]
    if any(later > earlier for earlier, later in zip(values, values[1:])):
        raise IrobError(f"certified_accuracy {values} grows with eps: a larger radius cannot certify more examples")


def _whole(label: str, accuracy: float, count: int) -> None:
    """An accuracy over `count` examples is a whole number of them."""
    hits = accuracy * count
    if count == 0 and accuracy != 0 or abs(hits - round(hits)) > COUNT_SLACK:
        raise IrobError(f"{label} = {accuracy} is not a whole number of examples out of {count}")


def check_outcome_logic(outcomes: AttackOutcomes) -> None:
    """What every honest outcomes file satisfies, whatever its attacks: a misclassified point is never robust (nor
    certified), and its distance to an adversarial is 0; a point broken at some eps is broken at every larger eps
    (adversarials nest; certificates nest the other way); the unconstrained outcome is exactly "correct and no cascade
    stage broke it", with a stage of the configured cascade (or its min-norm stage) or -1; a point's distance r is
    above every eps it is robust at and at most every eps it is broken at."""
    clean = np.asarray(outcomes.clean_correct, dtype=bool)
    eps = np.asarray(outcomes.eps, dtype=np.float64)
    order = np.argsort(eps)
    kinds = {"robust_pgd": outcomes.robust_pgd, "robust_in": outcomes.robust_in, "certified": outcomes.certified}
    for name, robust in kinds.items():
        if robust is None:
            continue
        if np.shape(robust) != (len(clean), len(eps)):
            raise IrobError(f"outcomes: {name} has shape {np.shape(robust)}, expected ({len(clean)}, {len(eps)})")
        ascending = np.asarray(robust, dtype=bool)[:, order]
        if (ascending & ~clean[:, None]).any():
            raise IrobError(f"outcomes: {name} counts a misclassified point as robust")
        if (ascending[:, 1:] & ~ascending[:, :-1]).any():
            raise IrobError(f"outcomes: {name} has a point robust at a larger eps but broken at a smaller one")
    if outcomes.stage is not None:
        stage = np.asarray(outcomes.stage)
        names = outcomes.config.stage_names(outcomes.robust_in is not None)
        last = max(len(names) - 1, len(outcomes.config.unconstrained))  # min-norm's index, as files of old wrote it
        if stage.size and not (-1 <= stage.min() and stage.max() <= last):
            raise IrobError(f"outcomes: stage holds {stage.min()}..{stage.max()}; the report has stages 0..{last} "
                            f"({', '.join(names)}) and -1 for none")
        if not np.array_equal(np.asarray(outcomes.robust_pgd, dtype=bool), clean[:, None] & (stage < 0)):
            raise IrobError("outcomes: robust_pgd disagrees with the cascade stage that broke each point")
    _check_distance("r_unc", outcomes.r_unc, outcomes.robust_pgd, clean, eps)
    _check_distance("r_in", outcomes.r_in, outcomes.robust_in, clean, eps)


def _check_distance(name: str, r: np.ndarray | None, robust: np.ndarray | None, clean: np.ndarray,
                    eps: np.ndarray) -> None:  # fmt: skip
    """A point's distance to its nearest adversarial found: not NaN, 0 when misclassified, above every eps the point
    is robust at and at most (to float rounding) every eps it is broken at."""
    if r is None or robust is None:
        return
    r, robust = np.asarray(r, dtype=np.float64), np.asarray(robust, dtype=bool)
    if np.isnan(r).any() or (r < 0).any() or (r[~clean] != 0).any():
        raise IrobError(f"outcomes: {name} holds NaN, a negative distance or a non-zero one for a misclassified point")
    broken_beyond = r[:, None] > eps[None, :] * (1 + 1e-9) + NORM_TOLERANCE  # verification's own tolerance
    if (robust & (r[:, None] <= eps[None, :])).any() or (~robust & clean[:, None] & broken_beyond).any():
        raise IrobError(f"outcomes: {name} disagrees with the eps at which each point is robust or broken")


def check_outcomes(result: EvaluationResult, outcomes: AttackOutcomes, card: DatasetCard) -> None:
    """The outcomes are of the documented examples (the seeded subset), labels, eps, seed and attacks, are internally
    consistent (check_outcome_logic), and reproduce every metric exactly."""
    settings = result.settings
    indices = np.asarray(outcomes.indices, dtype=np.int64)
    if not np.array_equal(indices, subset_indices(card.splits["test"].size, settings.n_examples, settings.subset_seed)):
        raise IrobError(f"outcomes: not the seeded subset of {settings.n_examples} examples (subset seed "
                        f"{settings.subset_seed})")
    if indices_sha256(indices) != settings.indices_sha256:
        raise IrobError("settings.indices_sha256 is not the hash of the evaluated examples")
    test = card.splits["test"]  # its labels from its seed (`datasets verify` checks the stored ones are these), so
    # a card given by path is read, not the shipped card of the same name
    labels = sample_latents(test.seed, test.size, card.latent_dim, card.priors)[1][torch.from_numpy(indices)].numpy()
    if not np.array_equal(np.asarray(outcomes.labels), labels):
        raise IrobError(f"outcomes: labels differ from the {card.name} test labels")
    if outcomes.eps != list(settings.eps) or outcomes.seed != settings.seed:
        raise IrobError(f"outcomes: eps {outcomes.eps} and seed {outcomes.seed} differ from the result's "
                        f"{settings.eps} and {settings.seed}")
    recorded = {k: v for k, v in settings.attacks.items() if k != "in_distribution"}
    if read_config(recorded) != outcomes.config:
        raise IrobError("outcomes: attack configuration differs from settings.attacks")
    if not named_truly(outcomes.config, result.submission.metadata.randomized):
        raise IrobError(f"settings.attacks is called preset {outcomes.config.preset!r} but is not that preset's "
                        "configuration (a changed preset is 'custom')")
    if settings.attacks.get("in_distribution") not in (None, outcomes.config.latent.method):
        raise IrobError(f"settings.attacks.in_distribution {settings.attacks.get('in_distribution')!r} is not the "
                        f"configured in-distribution attack {outcomes.config.latent.method!r}")
    check_outcome_logic(outcomes)
    recomputed = with_card_ceilings(result.model_copy(update={"metrics": measured_metrics(card, outcomes)}), card)
    certified = outcomes.certified
    if certified is None and any(m.certified_accuracy for m in result.metrics.per_eps):  # a claim of 0 proves nothing
        raise IrobError("metrics claim a certified accuracy, but the outcomes file has no per-point certificates")
    recomputed = recomputed.model_copy(
        update={"metrics": claimed_certificates(result.metrics, recomputed.metrics, certified)})
    where = first_difference(result.dataset.model_dump(mode="json"), recomputed.dataset.model_dump(mode="json"))
    if where is not None:
        path, claimed, found = where
        raise IrobError(f"dataset.{path} = {claimed} but the {card.name} v{card.version} card says {found}")
    where = first_difference(result.metrics.model_dump(mode="json"), recomputed.metrics.model_dump(mode="json"))
    if where is not None:
        path, claimed, found = where
        raise IrobError(f"metrics.{path} = {claimed} but the outcomes file gives {found}")
    if certified is not None:
        check_violation_flags(result, outcomes)
    check_attack_flags(result, outcomes)
    if [(f.name, f.eps) for f in result.flags if f.name == VIOLATION] != \
            [(f.name, f.eps) for f in recomputed.flags if f.name == VIOLATION]:
        raise IrobError(f"flags: '{VIOLATION}' is not raised where the card's ceilings and the metrics put it")


def check_attack_flags(result: EvaluationResult, outcomes: AttackOutcomes) -> None:
    """The attacks' sanity flags are exactly those the outcomes' arrays and tallies give (derive_flags, as a merge
    makes them), in the file and in the result: none dropped, none invented. Files written before the tallies were
    kept cannot be re-derived and are taken as they are."""
    if outcomes.tallies is None:
        return
    derived = derive_flags(outcomes)
    stated = [f for f in result.flags if not f.name.startswith(VALIDATION_FLAG_PREFIX)
              and f.name not in (VIOLATION, "certificate_violated")]  # fmt: skip
    for where, flags in (("the outcomes file", outcomes.flags), ("the result", stated)):
        if flags != derived:
            names = sorted({f.name for f in flags} ^ {f.name for f in derived}) or ["their wording or order"]
            raise IrobError(f"flags: {where} states other attack flags than its outcomes give ({', '.join(names)})")


def check_violation_flags(result: EvaluationResult, outcomes: AttackOutcomes) -> None:
    """Every eps at which the per-point certificates cover a point the attacks broke carries its
    `certificate_violated` flag, and no other eps does (a violation cannot be hidden by dropping the flag)."""
    found = violation_flags(Certification(source="submission", eps=tuple(outcomes.eps), certified=outcomes.certified),
                            outcomes)  # fmt: skip
    claimed = sorted({f.eps for f in result.flags if f.name == "certificate_violated"})  # a merge keeps each shard's
    if claimed != sorted(f.eps for f in found):
        raise IrobError(f"flags: certificate_violated is raised at eps {claimed}, the outcomes' certificates are "
                        f"broken at eps {sorted(f.eps for f in found)}")


def first_difference(claimed: Any, found: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted path, claimed, found) where two JSON-like values differ, or None if they are equal."""
    if isinstance(claimed, dict) and isinstance(found, dict):
        for key in [*claimed, *(k for k in found if k not in claimed)]:
            hit = first_difference(claimed.get(key), found.get(key), f"{path}.{key}" if path else str(key))
            if hit:
                return hit
        return None
    if isinstance(claimed, list) and isinstance(found, list) and len(claimed) == len(found):
        for k, (a, b) in enumerate(zip(claimed, found)):
            hit = first_difference(a, b, f"{path}[{k}]")
            if hit:
                return hit
        return None
    return None if claimed == found else (path, claimed, found)


def verify_import(result: EvaluationResult, outcomes: AttackOutcomes) -> DatasetCard:
    """Every import check in order (cheapest first); returns the shipped card the result was measured on."""
    if result.shard is not None:
        raise IrobError(result.shard.not_a_run())
    card = known_card(result)
    if result.dataset.version != card.version:
        raise IrobError(f"dataset {card.name} v{result.dataset.version}: only results on the card this irob-bench ships "
                        f"(v{card.version}) are imported (an older card's versions are not known here, and each "
                        "version is a table of its own)")
    if result.settings.subset_seed != SUBSET_SEED:
        raise IrobError(f"settings.subset_seed is {result.settings.subset_seed}; the benchmark's subsets are drawn with "
                        f"seed {SUBSET_SEED} (another seed could pick easy points)")
    check_consistency(result, card)
    check_outcomes(result, outcomes, card)
    return card
