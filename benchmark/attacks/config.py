"""Typed, frozen configuration of every attack; `AttackSuiteConfig` is what a result records.

Defaults are sized so that 1,000 MNIST points x 3 eps against a LeNet-sized CNN finish in a couple
of minutes on a 2-core CPU; docs/attacks.md explains each choice and docs/performance.md the timings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Loss = Literal["margin", "ce"]
Schedule = Literal["constant", "cosine", "step"]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PGDConfig(_Config):
    """PGD-L2 with random start, restarts, a step-size schedule and best-iterate tracking."""

    steps: int = Field(40, ge=1, description="gradient steps per restart")
    restarts: int = Field(2, ge=1, description="runs per eps; only points still unbroken run again")
    step_size: float = Field(2.0, gt=0, description="initial step length as a fraction of eps (APGD's 2 eps)")
    schedule: Schedule = Field("cosine", description="how the step length decays over the steps")
    random_start: bool = Field(True, description="start restarts from a random point in the ball")
    init_radius: float = Field(1.0, ge=0, le=1, description="random start radius as a fraction of eps")
    warm_start: bool = Field(False, description="first run at a larger eps starts from the best iterate so far")
    loss: Loss | Literal["alternate"] = Field(
        "alternate", description="margin (logit of y minus best other), cross-entropy, or alternate: CE, margin, CE, ..."
    )


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
    lr: float = Field(0.05, gt=0, description="Adam learning rate on z")
    lambda_init: float = Field(1.0, gt=0, description="first lambda (weight of the margin term)")


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


class AttackSuiteConfig(_Config):
    """Everything `run_attacks` does; its dump goes into the result's settings."""

    pgd: PGDConfig = PGDConfig()
    latent: LatentAttackConfig = LatentAttackConfig()
    minimal: MinimalConfig = MinimalConfig()
    flags: FlagsConfig = FlagsConfig()
