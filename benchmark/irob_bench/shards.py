"""Joining the shards of one evaluation (`evaluate --shard K/N`, torchrun ranks, SLURM array tasks) into the run one
process would have written: same fingerprint, every point exactly once, outcomes concatenated in the evaluation's
order, metrics and flags derived again, and the whole checked like an import before anything is stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irob_bench.artifacts import CODE_KEY
from irob_bench.attacks.outcomes import load_outcomes, merge_outcomes
from irob_bench.certify import merged_certificates
from irob_bench.common import indices_sha256
from irob_bench.errors import IrobError
from irob_bench.evaluate import VALIDATION_FLAG_PREFIX, Evaluation, assemble
from irob_bench.import_checks import known_card, verify_import
from irob_bench.results import read_result_file


def read_shard(path: str | Path) -> Evaluation:
    """One shard's result JSON and its outcomes (PATH.outcomes.npz, as `evaluate --json` writes them)."""
    result = read_result_file(path)
    outcomes_path = Path(f"{path}.outcomes.npz")
    if not outcomes_path.is_file():
        raise IrobError(f"{path}: its outcomes file {outcomes_path} is missing")
    return Evaluation(result=result, outcomes=load_outcomes(outcomes_path))


def merge_shards(shards: list[Evaluation], names: list[str] | None = None) -> Evaluation:
    """The run of which these are the shards; one IrobError line if they are not exactly all shards of one run."""
    names = names or [f"part {i + 1}" for i in range(len(shards))]
    if not shards:
        raise IrobError("runs merge: no shards given")
    first = shards[0].result
    for name, shard in zip(names, shards):
        if shard.result.shard is None:
            raise IrobError(f"runs merge: {name} is a whole run, not a shard (made without --shard)")
        if shard.result.fingerprint() != first.fingerprint():
            raise IrobError(f"runs merge: {name} has fingerprint {shard.result.fingerprint()[:12]}, {names[0]} has "
                            f"{first.fingerprint()[:12]}: not shards of one evaluation (submission, data or settings differ)")
    codes = {name: shard.result.environment.get(CODE_KEY) for name, shard in zip(names, shards)}
    if len(set(codes.values())) > 1:
        odd = next(name for name, code in codes.items() if code != codes[names[0]])
        raise IrobError(f"runs merge: {odd} was made by other irob-bench code than {names[0]} ({CODE_KEY} "
                        f"{str(codes[odd])[:12]} against {str(codes[names[0]])[:12]}): re-run it with the same checkout")
    of = {s.result.shard.of for s in shards}
    if len(of) > 1:
        raise IrobError(f"runs merge: the shards were cut into different numbers of slices ({sorted(of)})")
    total = of.pop()
    seen = [s.result.shard.index for s in shards]
    twice = sorted({k for k in seen if seen.count(k) > 1})
    if twice:
        raise IrobError(f"runs merge: shard {', '.join(f'{k}/{total}' for k in twice)} given more than once (overlap)")
    missing = sorted(set(range(1, total + 1)) - set(seen))
    if missing:
        raise IrobError(f"runs merge: shard {', '.join(f'{k}/{total}' for k in missing)} missing; a run needs all {total}")
    ordered = sorted(shards, key=lambda s: s.result.shard.index)
    outcomes = merge_outcomes([s.outcomes for s in ordered])
    settings = first.settings
    if len(np.unique(outcomes.indices)) != len(outcomes.indices) or len(outcomes.indices) != settings.n_examples \
            or indices_sha256(outcomes.indices) != settings.indices_sha256:
        raise IrobError(f"runs merge: the shards' points are not the run's {settings.n_examples} points exactly once")
    card = known_card(first)  # the shards' own data must be the shipped card's: the run is recorded on that card
    timings: dict[str, float] = {}
    for shard in ordered:
        for stage, seconds in shard.result.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    warnings = [f for f in first.flags if f.name.startswith(VALIDATION_FLAG_PREFIX)]
    result = assemble(first.submission, card, settings, outcomes, warnings, timings)
    parts = [(s.result.metrics, len(s.outcomes.indices)) for s in ordered]
    violated = [f for s in ordered for f in s.result.flags if f.name == "certificate_violated"]
    result = result.model_copy(update={"metrics": merged_certificates(result.metrics, parts),
                                       "flags": [*result.flags, *violated]})
    result = result.model_copy(update={"environment": {**first.environment, "shards": total}})
    verify_import(result, outcomes)
    return Evaluation(result=result, outcomes=outcomes)
