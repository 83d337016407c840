"""The dataset card: the frozen, hashed definition of one benchmark distribution (stored as card.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from irob_bench.common import FrozenModel
from irob_bench.confidence import joint_statement


class _Frozen(FrozenModel):
    """The base of every part of a card."""


class GeneratorSpec(_Frozen):
    """Which architecture to build and which weights file (relative to the card) to load into it."""

    architecture: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    weights_file: str | None = None
    weights_sha256: str | None = None
    weights_dtype: str = "float16"
    output_transform: dict[str, Any] | None = Field(
        default=None, description="applied to g(z, y) after the network, e.g. {'saturation_p': 8}"
    )


class SplitSpec(_Frozen):
    """One split: its size and seed; the test split also carries its stored latents and hashes."""

    size: int
    seed: int
    latents_file: str | None = None
    latents_sha256: str | None = None
    labels_sha256: str | None = None
    images_sha256: str | None = None
    images_signature: list[float] | None = Field(
        None, description="frozen.image_signature of the test images: verified within images_tolerance, not bytewise"
    )
    images_tolerance: float = Field(1e-4, gt=0, description="largest allowed deviation of any signature number")


# A Lipschitz constant: a positive, finite number (a NaN from a non-differentiable generator must never reach a card).
Constant = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class LipschitzEstimate(_Frozen):
    """Per-class local Lipschitz constants L_y(r) from one estimator: per class, the order statistic v_(k) of its S
    per-anchor slopes; together, upper bounds of every class's (1 - delta) quantile at confidence beta jointly for
    the K classes (docs/science.md §3; lipschitz/stats.py)."""

    method: Literal["sampling", "gradient"]
    radius: float
    delta: float = Field(gt=0, lt=1, description="the requested latent mass on which the Lipschitz property may fail")
    beta: float = Field(gt=0, lt=1, description="confidence over the draw of the anchors, jointly for the K classes")
    samples: int = Field(ge=1, description="S, anchors per class")
    rank: int = Field(ge=1, description="k: per_class[y] is the k-th smallest of class y's S slopes (k = S: the max)")
    delta_prime: float = Field(gt=0, le=1, description="the smallest delta v_(k) of S anchors supports for K classes at once; "
                               "1 - (1 - beta^(1/K))^(1/S) for the maximum (k = S)")
    established: bool = Field(description="whether the v_(k) bound the quantiles at the requested delta (else at delta')")
    settings: dict[str, float | int] = Field(default_factory=dict)
    per_class: list[Constant]
    generator_evaluations: int
    seconds: float

    @model_validator(mode="before")
    @classmethod
    def _stated_jointly(cls, data: Any) -> Any:
        """`established` and `delta_prime` are derived from S, k, delta, beta and K, and re-derived on reading, so a
        card written when each class was stated at beta alone now reads as what all K give together."""
        needed = ("samples", "rank", "delta", "beta", "per_class")
        if not isinstance(data, dict) or not all(isinstance(data.get(key), (int, float, list)) for key in needed):
            return data  # field validation names what is missing or malformed
        established, delta_prime = joint_statement(
            data["samples"], data["rank"], data["delta"], data["beta"], max(len(data["per_class"]), 1)
        )
        return {**data, "established": established, "delta_prime": delta_prime}

    @property
    def holds_at(self) -> float:
        """The delta this estimate's constants hold at, all K at once at confidence beta: delta if S supports it,
        else delta'."""
        return self.delta if self.established else self.delta_prime


class LipschitzSection(_Frozen):
    """All estimates for a card; `constants` (max over estimators, per class) drives the ceilings.

    A max over estimates is at least each of them, so it holds wherever the strongest one (smallest delta) does.
    """

    radius: float
    delta: float
    beta: float
    estimates: list[LipschitzEstimate] = Field(min_length=1)
    constants: list[Constant]

    @property
    def basis(self) -> LipschitzEstimate:
        """The estimate that carries the guarantee: the one holding at the smallest delta."""
        return min(self.estimates, key=lambda e: e.holds_at)

    @property
    def holds_at(self) -> float:
        """The delta of every ceiling built on `constants` (added to each ceiling, as Thm 4.3 / 4.4 ask)."""
        return self.basis.holds_at

    def statement(self) -> str:
        """What a ceiling built on these constants rests on, in one sentence."""
        b = self.basis
        return guarantee(self.holds_at, b.beta, b.samples, b.rank, b.method, self.radius, len(self.constants))


def guarantee(
    delta: float, beta: float | None, samples: int | None, rank: int | None, method: str, radius: float | None,
    classes: int = 1,
) -> str:  # fmt: skip
    """The conditions under which a ceiling holds, in one sentence (cards, `irob-bench ceiling`, the leaderboard)."""
    ball = f"on latent balls of radius r = {radius:g}" if radius is not None else "on latent balls of the stated radius"
    if beta is None or samples is None or rank is None:
        return (
            f"holds with probability >= 1 - {delta:.3g} over the latent space {ball}, if the given L_y are local "
            "Lipschitz constants there (no confidence over a sample of anchors is stated for them)"
        )
    which = "the maximum" if rank == samples else f"the {rank:,}-th smallest"
    return (
        f"holds with probability >= 1 - {delta:.3g} over the latent space {ball}, at confidence {beta:g} over the "
        f"anchors{f' for all {classes} classes at once' if classes > 1 else ''} (L_y = {which} of S = {samples:,} "
        f"{method} slopes per class), if the per-anchor search found each anchor's sup"
    )


class DatasetCard(_Frozen):
    """Everything that defines a benchmark distribution; its hashes make results comparable."""

    name: str
    version: str
    description: str
    generator: GeneratorSpec
    latent_dim: int
    classes: list[str]
    priors: list[float]
    image_shape: tuple[int, int, int]
    threat_model: Literal["L2"] = "L2"
    eps_grid: list[float]
    reference_alpha: float = Field(description="alpha at which the reference paper reports the dataset ceiling")
    splits: dict[str, SplitSpec]
    generation_batch_size: int = Field(500, description="images are always generated in chunks of this size")
    lipschitz: LipschitzSection | None = None
    notes: dict[str, str] = Field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """How many classes the card names."""
        return len(self.classes)

    @property
    def no_constant(self) -> str | None:
        """Why no finite local Lipschitz constant exists for this distribution (e.g. saturation at p > 2), or None."""
        reason = self.notes.get("ceiling", "")
        return reason if reason.startswith("not established") else None

    @model_validator(mode="after")
    def _check(self) -> DatasetCard:
        if len(self.priors) != len(self.classes):
            raise ValueError("priors and classes differ in length")
        if abs(sum(self.priors) - 1.0) > 1e-6:
            raise ValueError("priors do not sum to 1")
        if "test" not in self.splits:
            raise ValueError("a card needs a test split")
        return self
