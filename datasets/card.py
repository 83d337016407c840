"""The dataset card: the frozen, hashed definition of one benchmark distribution (stored as card.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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


# A Lipschitz constant: a positive, finite number (a NaN from a non-differentiable generator must never reach a card).
Constant = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class LipschitzEstimate(_Frozen):
    """Per-class local Lipschitz constants L_y(r) from one estimator, with its settings (SCIENCE.md §3)."""

    method: Literal["sampling", "gradient"]
    radius: float
    delta: float
    samples: int
    settings: dict[str, float | int] = Field(default_factory=dict)
    per_class: list[Constant]
    ci_low: list[float]
    ci_high: list[float]
    generator_evaluations: int
    seconds: float


class LipschitzSection(_Frozen):
    """All estimates for a card; `constants` (max over estimators, per class) drives the ceilings."""

    radius: float
    delta: float
    estimates: list[LipschitzEstimate]
    constants: list[Constant]


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
        return len(self.classes)

    @model_validator(mode="after")
    def _check(self) -> DatasetCard:
        if len(self.priors) != len(self.classes):
            raise ValueError("priors and classes differ in length")
        if abs(sum(self.priors) - 1.0) > 1e-6:
            raise ValueError("priors do not sum to 1")
        if "test" not in self.splits:
            raise ValueError("a card needs a test split")
        return self
