"""`irob-bench train`: train a reference defense on a benchmark's generated train split, written as a submission."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import BaseModel
from torch import nn

from irob_bench.artifacts import atomic_torch_save, atomic_write_text, sha256_file
from irob_bench.errors import IrobError
from irob_bench.plugin import NAME_PATTERN
from irob_bench.reference.models import LipschitzMLP, SmallCNN
from irob_bench.reference.orthogonal import bake, orthonormalise
from irob_bench.reference.training import (
    BATCH_SIZE,
    FitReport,
    clean_cross_entropy,
    fit,
    fit_settings,
    lipschitz_margin_loss,
    pgd_loss,
    resume_state,
    trades_loss,
)
from irob_bench.registry import Registry

if TYPE_CHECKING:
    from irob_bench.datasets.distribution import BenchmarkDataset
    from irob_bench.reference.training import BatchLoss

Method = Literal["standard", "pgd", "trades", "lipschitz"]

METHODS: Registry[Callable[[float, float, int], BatchLoss]] = Registry("training method")
"""Training method -> loss(eps, beta, attack_steps), the objective `fit` minimises."""
METHODS.add("standard", lambda eps, beta, steps: clean_cross_entropy)
METHODS.add("pgd", lambda eps, beta, steps: pgd_loss(eps, steps))
METHODS.add("trades", lambda eps, beta, steps: trades_loss(eps, beta, steps))
METHODS.add("lipschitz", lambda eps, beta, steps: lipschitz_margin_loss(eps))

_TEMPLATE = '''"""{title}: a reference irob-bench submission written by `irob-bench train {method}`."""

from irob_bench.models import {architecture}
from irob_bench.plugin import SubmissionMetadata, load_weights

METADATA = SubmissionMetadata(
    name={name!r},
    authors=["irob-bench maintainers"],
    datasets=[{dataset!r}],
    training={training!r},
    description={description!r},
    paper_url={paper_url!r},
    weights=["model.pt"],
)


def load_model():
    model = {constructor}
    model.load_state_dict(load_weights(__file__, "model.pt"))
    return model
'''

_PAPERS = {
    "standard": None,
    "pgd": "https://arxiv.org/abs/1706.06083",
    "trades": "https://arxiv.org/abs/1901.08573",
    "lipschitz": "https://arxiv.org/abs/1802.04034",
}


class TrainingRecord(BaseModel):
    """What `irob-bench train` did, saved as training.json beside the weights."""

    method: Method
    dataset: str
    dataset_version: str
    eps: float | None
    beta: float | None
    attack_steps: int | None
    train_points: int
    weights_sha256: str
    fit: FitReport


def training_description(method: str, eps: float | None, beta: float, steps: int) -> str:
    """The METADATA.training string of a reference model."""
    if method == "standard":
        return "standard (cross-entropy on clean generated data)"
    if method == "pgd":
        return f"PGD-L2 adversarial training (Madry et al.), eps={eps:g}, {steps} steps"
    if method == "lipschitz":
        return f"Lipschitz-margin training (Tsuzuku et al.) of an orthonormal MaxMin MLP, eps={eps:g}"
    return f"TRADES (Zhang et al.), beta={beta:g}, L2 eps={eps:g}, {steps} steps"


def check_method(method: str, eps: float | None, train_points: int | None = None, name: str | None = None) -> None:
    """A known method, a positive eps for the adversarial ones and none for standard training (it would be ignored
    but named), at least one batch of train points and a valid leaderboard name: checked before any work."""
    METHODS.get(method)
    if method != "standard" and (eps is None or eps <= 0):
        raise IrobError(f"--eps must be a positive number for {method} training")
    if method == "standard" and eps is not None:
        raise IrobError("--eps is a training radius of pgd, trades and lipschitz; standard training has none")
    if train_points is not None and train_points < BATCH_SIZE:
        raise IrobError(f"--train-points must be at least one batch ({BATCH_SIZE}), got {train_points}")
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        raise IrobError(f"--name {name!r}: a leaderboard name is letters, digits, '.', '_' and '-' (at most 80)")


def _architecture(method: str, channels: int, classes: int, side: int, width: int) -> tuple[nn.Module, str, str]:
    """The model a method trains, its class name and the constructor call its submission.py makes.

    Lipschitz training uses an MLP whose Linear weights are Björck-orthonormalised while training (`bake` fixes them)."""
    if method == "lipschitz":
        constructor = f"LipschitzMLP(in_features={channels * side * side}, num_classes={classes}, width={width})"
        model = LipschitzMLP(in_features=channels * side * side, num_classes=classes, width=width)
        return orthonormalise(model), "LipschitzMLP", constructor
    constructor = f"SmallCNN(in_channels={channels}, num_classes={classes}, image_size={side}, width={width})"
    return SmallCNN(in_channels=channels, num_classes=classes, image_size=side, width=width), "SmallCNN", constructor


def train_reference(
    method: str,
    data: BenchmarkDataset,
    out: str | Path,
    *,
    eps: float | None = None,
    epochs: int = 5,
    seed: int = 0,
    beta: float = 6.0,
    attack_steps: int = 10,
    train_points: int | None = None,
    width: int = 32,
    name: str | None = None,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> TrainingRecord:
    """Train a model with `method` on the dataset's generated train split; write model.pt and submission.py.

    `checkpoint`: a file the training state is saved to after every epoch; an interrupted run given it again
    resumes there (and refuses a checkpoint of another method, dataset or setting)."""
    check_method(method, eps, train_points, name)
    card = data.card
    z, y = data.latents("train"), data.labels("train")
    if train_points is not None:
        z, y = z[:train_points], y[:train_points]
    identity = {"method": method, "dataset": card.name, "dataset_version": card.version, "eps": eps, "beta": beta,
                "attack_steps": attack_steps, "width": width}
    resume_state(checkpoint, fit_settings(epochs, seed, len(z), identity))  # another run's checkpoint: before the data
    x = data.generate(z, y)
    channels, side, _ = card.image_shape
    loss_fn = METHODS.get(method)(eps, beta, attack_steps)  # type: ignore[arg-type]  # eps checked above
    with torch.random.fork_rng():  # the initial weights from the seed too, and the caller's global RNG left as it was
        torch.manual_seed(seed)
        model, architecture, constructor = _architecture(method, channels, card.num_classes, side, width)
        report = fit(model, x, y, epochs=epochs, seed=seed, loss_fn=loss_fn, progress=progress, checkpoint=checkpoint,
                     identity=identity)
    bake(model)
    out = Path(out)
    atomic_torch_save(model.state_dict(), out / "model.pt")
    training = training_description(method, eps, beta, attack_steps)
    submission = _TEMPLATE.format(
        title=f"{card.name} {method}",
        method=method,
        name=name or f"{card.name}-{method}" + (f"-eps{eps:g}" if eps else ""),
        dataset=card.name,
        training=training,
        description=f"{architecture} (width {width}) trained for {epochs} epochs on {len(x)} generated {card.name} train points (seed {seed}).",
        paper_url=_PAPERS[method],
        architecture=architecture,
        constructor=constructor,
    )
    atomic_write_text(out / "submission.py", submission)
    record = TrainingRecord(
        method=method,
        dataset=card.name,
        dataset_version=card.version,
        eps=eps if method != "standard" else None,
        beta=beta if method == "trades" else None,
        attack_steps=attack_steps if method in ("pgd", "trades") else None,
        train_points=len(x),
        weights_sha256=sha256_file(out / "model.pt"),
        fit=report,
    )
    atomic_write_text(out / "training.json", json.dumps(record.model_dump(), indent=2) + "\n")
    return record
