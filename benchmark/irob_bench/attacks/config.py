"""Typed, frozen configuration of every attack; `AttackSuiteConfig` is what a result records.

Defaults are sized so that 1,000 MNIST points x 3 eps against a LeNet-sized CNN finish in a couple
of minutes on a 2-core CPU; docs/attacks.md explains each choice and docs/performance.md the timings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from irob_bench.common import FrozenModel

Loss = Literal["margin", "ce", "dlr", "dlr-targeted"]
Schedule = Literal["constant", "cosine", "step"]


IN_DISTRIBUTION_STAGE = "in-distribution"  # the report's last stage: on-manifold adversarials the cascade missed

class _Config(FrozenModel):
    """The base of every attack configuration."""


class StageConfig(_Config):
    """One attack of the unconstrained cascade; it runs only on the points every earlier stage left robust.

    apgd: Croce & Hein's APGD-L2 (step 2 eps halved at checkpoints, momentum 0.75, restarts from the best point);
    pgd: PGD-L2 with a cosine-annealed step; square: a gradient-free Square-style random search (`steps` queries).
    With `targets` = k > 0 the stage runs once per target, the k classes with the highest clean logits after y.
    """

    name: str = Field(pattern=r"^[a-z0-9-]+$", description="short id shown in the per-stage report, e.g. apgd-t")
    attack: Literal["apgd", "pgd", "square"]
    loss: Loss = Field("ce", description="objective (apgd/pgd); square always uses the margin")
    steps: int = Field(100, ge=1, description="iterations per run (square: queries)")
    restarts: int = Field(1, ge=1, description="runs per eps (and target) from keyed random starts")
    targets: int = Field(0, ge=0, description="0: untargeted; k: the top-k other classes, one run each")
    step_size: float = Field(2.0, gt=0, description="initial step as a fraction of eps (apgd/pgd; APGD's 2 eps)")

    @model_validator(mode="after")
    def _targets_match_loss(self) -> StageConfig:
        if (self.loss == "dlr-targeted") != (self.targets > 0) and self.attack != "square":
            raise ValueError(f"stage {self.name}: the dlr-targeted loss and targets > 0 go together")
        return self


class LatentAttackConfig(_Config):
    """The in-distribution attack: our adaptive-penalty latent attack, or Zhang et al.'s Lagrangian reference."""

    method: Literal["adaptive", "lagrangian"] = Field(
        "adaptive", description="adaptive (default: as strong as lagrangian at < 1/3 of its evaluations) or lagrangian"
    )
    steps: int = Field(
        165, ge=1, description="adaptive: Adam iterations from the stored latent (166 evaluations <= 1/3 of lagrangian's 505)"
    )
    lambda_growth: float = Field(
        0.03, gt=0, description="adaptive: lambda x(1 + growth) after a non-adversarial step, /(1 + growth) after one"
    )
    distance_scale: float | None = Field(
        None, gt=0, description="adaptive: image distance worth the whole clean margin at lambda 1 (default: largest eps)"
    )
    outer_steps: int = Field(5, ge=1, description="lagrangian: binary-search steps over lambda")
    inner_steps: int = Field(100, ge=1, description="lagrangian: Adam iterations per lambda")
    lr: float = Field(0.05, gt=0, description="Adam learning rate on z (with `precondition`: in image-space units)")
    precondition: float | None = Field(
        None, gt=0, description="adaptive: Adam runs in the generator's local image coordinates, latent steps scaled by "
        "(J^T J + mu^2)^-1/2 with J g's Jacobian at the start and mu = this x its largest singular value (None: plain z)"
    )
    basis_every: int = Field(
        55, ge=1, description="adaptive with precondition: steps between recomputing J at the current iterate"
    )
    lambda_init: float = Field(1.0, gt=0, description="first lambda (weight of the margin term)")
    survivor_steps: int = Field(
        0, ge=0, description="adaptive: survivors continue from their closest adversarial for this many steps (0: none)"
    )
    survivor_ratio: float | None = Field(
        None, gt=1, description="adaptive: a survivor's closest adversarial lies beyond some eps, within ratio x it (None: any)"
    )
    survivor_rounds: int = Field(
        1, ge=1, description="adaptive: survivor runs in turn; each after the first halves lr and the ratio's excess over 1 "
        "and continues the survivors of the one before (finer steps where only a near miss is left)"
    )
    spot_check: int = Field(
        0, ge=0, description="expected points (per evaluation, times the survival rate) re-attacked with spot_check_factor "
        "x the steps, each chosen by its own key; a flag if that finds more"
    )
    spot_check_factor: int = Field(5, ge=2, description="budget multiple of the convergence spot-check")


class MinimalConfig(_Config):
    """Minimum-norm attack (decoupled direction and norm) that gives each point's r_unc."""

    enabled: bool = True
    steps: int = Field(100, ge=1)
    init_norm: float = Field(1.0, gt=0, description="starting L2 norm of the perturbation")
    gamma: float = Field(0.05, gt=0, lt=1, description="per-step multiplicative norm change")
    step_size: float = Field(1.0, gt=0, description="initial direction step (L2 units), cosine-annealed")
    loss: Loss = "margin"


class FlagsConfig(_Config):
    """Budgets and thresholds of the AutoAttack-style sanity checks."""

    noise_draws: int = Field(4, ge=0, description="random points on the eps-sphere tried per robust point")
    random_search_queries: int = Field(32, ge=0, description="queries of the black-box random search per point")
    vanishing_fraction: float = Field(0.05, ge=0, le=1, description="flag if more points have zero/non-finite grads")
    accuracy_tolerance: float = Field(0.0, ge=0, description="slack when comparing accuracies (fraction)")
    stage_gain_fraction: float = Field(
        0.02, ge=0, le=1, description="flag a cascade stage that breaks more than this fraction of what earlier ones left"
    )


class AttackSuiteConfig(_Config):
    """Everything `run_attacks` does; its dump goes into the result's settings (see attacks/presets.py)."""

    preset: str = Field("custom", description="the preset this configuration came from, or custom")
    unconstrained: tuple[StageConfig, ...] = Field(min_length=1, description="the cascade, in order")
    eot_samples: int = Field(1, ge=1, description="gradient passes averaged per step (EOT, for randomized models)")
    verify_draws: int = Field(1, ge=1, description="forward passes per re-check; adversarial if most misclassify")
    latent: LatentAttackConfig = LatentAttackConfig()
    minimal: MinimalConfig = MinimalConfig()
    flags: FlagsConfig = FlagsConfig()

    def stage_names(self, in_distribution: bool = False) -> list[str]:
        """The stages of the per-stage report: the cascade's, then the minimum-norm attack, then (`in_distribution`)
        the in-distribution attack: the verified adversarials of either within an eps count there too."""
        return ([s.name for s in self.unconstrained] + (["min-norm"] if self.minimal.enabled else [])
                + ([IN_DISTRIBUTION_STAGE] if in_distribution else []))

    @property
    def in_distribution_stage(self) -> int:
        """The report's index of the in-distribution stage (after the cascade's and min-norm's), where the points the
        in-distribution attack broke and the unconstrained attacks left robust are recorded."""
        return len(self.stage_names())


def canonical_attacks(recorded: dict[str, Any]) -> dict[str, Any]:
    """A result's attack settings as irob-bench writes them: the configuration's fields re-typed (2.0 for a float
    field, 2 for an integer), so a file another JSON tool re-wrote keeps its fingerprint. Only keys the record has
    are written back (no default is added); other keys, and settings this release cannot read, are unchanged."""
    fields = {k: v for k, v in recorded.items() if k in AttackSuiteConfig.model_fields}
    try:
        typed = AttackSuiteConfig.model_validate(fields).model_dump(mode="json", exclude_unset=True)
    except ValidationError:
        return recorded
    return {**recorded, **typed}
