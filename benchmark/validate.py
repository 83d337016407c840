"""Pre-scoring checks of a submission's model (`irob-bench validate`): fail fast, one line per problem."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel
from torch import nn

from irob_bench.attacks.common import margin
from irob_bench.errors import IrobError

Status = Literal["pass", "warn", "fail"]


class CheckResult(BaseModel):
    """One validation check: its name, outcome and a one-line explanation."""

    name: str
    status: Status
    message: str = ""


class ValidationReport(BaseModel):
    """All checks of one submission on one dataset."""

    submission: str
    dataset: str
    checks: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "warn"]

    def raise_on_failure(self) -> None:
        """Raise one IrobError naming the first failed check (the CLI prints it as one line)."""
        if self.failed:
            first = self.failed[0]
            raise IrobError(f"{first.name}: {first.message}")


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def check_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, randomized: bool) -> list[CheckResult]:
    """Run the model checks on a small labelled batch of benchmark images; stops at the first failure."""
    checks: list[CheckResult] = [CheckResult(name="eval mode", status="pass", message="model.eval() set by irob-bench")]
    try:
        logits = _forward(model, x)
    except Exception as exc:  # user code
        return checks + [CheckResult(name="forward", status="fail", message=f"{type(exc).__name__}: {exc}".splitlines()[0])]
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(x), num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        return checks + [CheckResult(name="output shape", status="fail", message=f"expected ({len(x)}, {num_classes}) logits, got {shape}")]
    checks.append(CheckResult(name="output shape", status="pass", message=f"({len(x)}, {num_classes})"))
    if not torch.isfinite(logits).all():
        return checks + [CheckResult(name="finite logits", status="fail", message="the model returned NaN or infinite logits")]
    checks.append(CheckResult(name="finite logits", status="pass"))

    if randomized:
        checks.append(CheckResult(name="determinism", status="pass", message="skipped: declared randomized"))
    else:
        again = _forward(model, x.clone())
        if not torch.equal(logits, again):
            diff = (logits - again).abs().max().item()
            return checks + [CheckResult(name="determinism", status="fail", message=f"two identical batches gave different logits (max diff {diff:.3g}); declare randomized=True if intended")]
        checks.append(CheckResult(name="determinism", status="pass"))

    half = len(x) // 2
    try:  # the same samples in smaller batches of other company must give the same logits
        singles = torch.cat([_forward(model, x[:half]), _forward(model, x[half:])])
    except Exception as exc:  # user code
        return checks + [CheckResult(name="batch independence", status="fail", message=f"the model fails on smaller batches: {type(exc).__name__}: {exc}".splitlines()[0])]
    tolerance = 1e-4 * max(1.0, logits.abs().max().item())
    deviation = (singles - logits).abs().max().item()
    if deviation > tolerance and not randomized:
        return checks + [CheckResult(name="batch independence", status="fail", message=f"a sample's logits depend on the rest of the batch (max diff {deviation:.3g}); BatchNorm left in train mode?")]
    checks.append(CheckResult(name="batch independence", status="pass"))

    probs = logits.double()
    if (probs >= 0).all() and (probs <= 1).all() and torch.allclose(probs.sum(1), torch.ones(len(x), dtype=torch.float64), atol=1e-3):
        checks.append(CheckResult(name="logits not probabilities", status="warn", message="outputs look like probabilities (rows in [0,1] summing to 1); return logits, attacks on softmax outputs are weak"))
    elif torch.allclose(probs.logsumexp(1), torch.zeros(len(x), dtype=torch.float64), atol=1e-3):
        checks.append(CheckResult(name="logits not probabilities", status="warn", message="outputs look like log-probabilities; return raw logits"))
    else:
        checks.append(CheckResult(name="logits not probabilities", status="pass"))

    checks.append(_gradient_check(model, x, y))
    return checks


def _gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> CheckResult:
    """Input gradients of the margin must exist, be finite and not all zero; else gradient attacks are blind."""
    x = x.clone().requires_grad_(True)
    try:
        grad = torch.autograd.grad(margin(model(x), y).sum(), x)[0]
    except RuntimeError as exc:
        return CheckResult(name="input gradients", status="warn", message=f"no input gradient ({str(exc).splitlines()[0]}): possible gradient masking")
    if not torch.isfinite(grad).all():
        return CheckResult(name="input gradients", status="warn", message="non-finite input gradients: possible gradient masking")
    zero_rows = (grad.flatten(1).abs().sum(1) == 0).float().mean().item()
    if zero_rows > 0:
        return CheckResult(name="input gradients", status="warn", message=f"input gradients are all zero on {zero_rows:.0%} of samples: possible gradient masking")
    return CheckResult(name="input gradients", status="pass")
