"""The attack presets `--attacks quick|standard|thorough`: named, frozen suite configurations.

`standard` is the default and the leaderboard's protocol. Budgets and how they were chosen: docs/attacks.md;
measured strength and cost against torchattacks' AutoAttack: docs/performance.md.
"""

from __future__ import annotations

from typing import Any

from irob_bench.attacks.config import AttackSuiteConfig, LatentAttackConfig, MinimalConfig, StageConfig
from irob_bench.registry import Registry

DEFAULT_PRESET = "standard"
RANDOMIZED_EOT_SAMPLES = 20  # AutoAttack's rand version: EOT over 20 passes per step
RANDOMIZED_VERIFY_DRAWS = 5

_APGD_CE = StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=100)
_APGD_CE_TWICE = StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=50, restarts=2)

_PRESETS: dict[str, AttackSuiteConfig] = {
    "quick": AttackSuiteConfig(
        preset="quick",
        unconstrained=(
            StageConfig(name="apgd-ce", attack="apgd", loss="ce", steps=50),
            StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=10, targets=9),
        ),
        minimal=MinimalConfig(steps=50),
    ),
    "standard": AttackSuiteConfig(
        preset="standard",
        latent=LatentAttackConfig(
            lr=0.02, precondition=0.01, survivor_steps=330, survivor_ratio=1.25, survivor_rounds=3, spot_check=4
        ),
        unconstrained=(
            _APGD_CE_TWICE,
            StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=20, targets=9, restarts=2),
            StageConfig(name="apgd-t-long", attack="apgd", loss="dlr-targeted", steps=50, targets=3),
        ),
    ),
    "thorough": AttackSuiteConfig(
        preset="thorough",
        unconstrained=(
            _APGD_CE.model_copy(update={"restarts": 2}),
            StageConfig(name="apgd-dlr", attack="apgd", loss="dlr", steps=100),
            StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=100, targets=9),
            StageConfig(name="square", attack="square", loss="margin", steps=5000),
        ),
        latent=LatentAttackConfig(
            lr=0.02, precondition=0.01, survivor_steps=500, survivor_ratio=2.0, survivor_rounds=3, spot_check=10
        ),
        minimal=MinimalConfig(steps=200),
    ),
}
PRESETS: Registry[AttackSuiteConfig] = Registry("attack preset")
for _name, _config in _PRESETS.items():
    PRESETS.add(_name, _config)


# The attack suite of irob-bench 0.1 (PGD-L2, CE then margin, 2 x 40 steps), as cascade stages: how results
# stored before the presets are read, and the yardstick of the end-to-end benchmark.
LEGACY = AttackSuiteConfig(
    preset="pgd-2x40",
    unconstrained=(
        StageConfig(name="pgd-ce", attack="pgd", loss="ce", steps=40),
        StageConfig(name="pgd-margin", attack="pgd", loss="margin", steps=40),
    ),
)


def read_config(recorded: dict[str, Any]) -> AttackSuiteConfig:
    """A stored attack configuration; one from before the presets (a "pgd" section) reads as LEGACY with its
    own in-distribution, minimum-norm and flag settings."""
    if "pgd" not in recorded or "unconstrained" in recorded:
        return AttackSuiteConfig.model_validate(recorded)
    parts = {key: recorded[key] for key in ("latent", "minimal", "flags") if key in recorded}
    return AttackSuiteConfig.model_validate({**LEGACY.model_dump(), **parts})


def preset(name: str, randomized: bool = False) -> AttackSuiteConfig:
    """The named preset; for randomized models with EOT gradients and repeated verification."""
    config = PRESETS.get(name)
    if randomized:
        config = config.model_copy(update={"eot_samples": RANDOMIZED_EOT_SAMPLES, "verify_draws": RANDOMIZED_VERIFY_DRAWS})
    return config


def named_truly(config: AttackSuiteConfig, randomized: bool) -> bool:
    """Whether the preset name a configuration carries describes it: "custom", or exactly that preset (with the EOT
    settings of a randomized model). The leaderboard groups runs by this name, so a name must never hide a change."""
    if config.preset == "custom":
        return True
    if config.preset == LEGACY.preset:
        return config == LEGACY
    return config.preset in PRESETS and config == preset(config.preset, randomized)


def labelled(config: AttackSuiteConfig, randomized: bool) -> AttackSuiteConfig:
    """`config` under its preset name if that name is true (named_truly), else the same configuration as "custom"."""
    return config if named_truly(config, randomized) else config.model_copy(update={"preset": "custom"})
