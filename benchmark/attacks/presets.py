"""The attack presets `--attacks quick|standard|thorough`: named, frozen suite configurations.

`standard` is the default and the leaderboard's protocol. Budgets and how they were chosen: docs/attacks.md;
measured strength and cost against torchattacks' AutoAttack: docs/performance.md.
"""

from __future__ import annotations

from irob_bench.attacks.config import AttackSuiteConfig, LatentAttackConfig, MinimalConfig, StageConfig
from irob_bench.errors import IrobError

DEFAULT_PRESET = "standard"
RANDOMIZED_EOT_SAMPLES = 20  # AutoAttack's rand version: EOT over 20 passes per step
RANDOMIZED_VERIFY_DRAWS = 5

_APGD_CE = StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=100)

PRESETS: dict[str, AttackSuiteConfig] = {
    "quick": AttackSuiteConfig(
        preset="quick",
        unconstrained=(
            StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=50),
            StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=50, targets=3),
        ),
        minimal=MinimalConfig(steps=50),
    ),
    "standard": AttackSuiteConfig(
        preset="standard",
        unconstrained=(
            _APGD_CE,
            StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=100, targets=3),
            StageConfig(name="square", attack="square", loss="margin", steps=300),
        ),
    ),
    "thorough": AttackSuiteConfig(
        preset="thorough",
        unconstrained=(
            StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=100, restarts=2),
            StageConfig(name="apgd-dlr", attack="apgd", loss="dlr", steps=100),
            StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=100, targets=9),
            StageConfig(name="square", attack="square", loss="margin", steps=5000),
        ),
        latent=LatentAttackConfig(survivor_steps=500),
        minimal=MinimalConfig(steps=200),
    ),
}


def preset(name: str, randomized: bool = False) -> AttackSuiteConfig:
    """The named preset; for randomized models with EOT gradients and repeated verification."""
    if name not in PRESETS:
        raise IrobError(f"unknown attack preset {name!r} (available: {', '.join(PRESETS)})")
    config = PRESETS[name]
    if randomized:
        config = config.model_copy(update={"eot_samples": RANDOMIZED_EOT_SAMPLES, "verify_draws": RANDOMIZED_VERIFY_DRAWS})
    return config
