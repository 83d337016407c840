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

    steps: int = Field(50, ge=1, description="gradient steps per restart")
    restarts: int = Field(2, ge=1, description="runs per eps; only points still unbroken run again")
    step_size: float = Field(0.5, gt=0, description="initial step length as a fraction of eps")
    schedule: Schedule = Field("cosine", description="how the step length decays over the steps")
    random_start: bool = Field(True, description="start restarts from a random point in the ball")
    init_radius: float = Field(1.0, ge=0, le=1, description="random start radius as a fraction of eps")
    warm_start: bool = Field(False, description="first run at a larger eps starts from the best iterate so far")
    loss: Loss | Literal["alternate"] = Field(
        "alternate", description="margin (logit of y minus best other), cross-entropy, or alternate: CE, margin, CE, ..."
    )


class LatentAttackConfig(_Config):
    """The in-distribution attack: fixed-eps latent PGD with back-off, or Zhang et al.'s Lagrangian."""

    method: Literal["fixed-eps", "lagrangian"] = Field(
        "lagrangian", description="lagrangian (reference; stronger and faster in docs/attacks.md) or fixed-eps"
    )
    steps: int = Field(50, ge=1, description="fixed-eps: latent gradient steps per restart")
    restarts: int = Field(1, ge=1, description="fixed-eps: runs per eps for points still unbroken")
    step_size: float = Field(0.5, gt=0, description="fixed-eps: initial latent step length (latent units)")
    schedule: Schedule = "cosine"
    init_radius: float = Field(0.0, ge=0, description="fixed-eps: latent random start radius for restarts > 0")
    bisection_steps: int = Field(6, ge=1, description="fixed-eps: bisection steps of the back-off on the segment")
    boundary: float = Field(
        0.9, ge=0, le=1, description="fixed-eps: beyond this fraction of eps, steps lose their outward component"
    )
    outer_steps: int = Field(5, ge=1, description="lagrangian: binary-search steps over lambda")
    inner_steps: int = Field(100, ge=1, description="lagrangian: Adam iterations per lambda")
    lr: float = Field(0.05, gt=0, description="lagrangian: Adam learning rate on z")
    lambda_init: float = Field(1.0, gt=0, description="lagrangian: first lambda (weight of the margin loss)")
    loss: Loss = "margin"


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
