"""Pre-scoring checks of a submission's model (`irob-bench validate`): fail fast, one line per problem."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel
from torch import nn

from irob_bench.attacks.common import margin
from irob_bench.errors import IrobError

Status = Literal["pass", "warn", "fail"]
_MARK = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL"}


class CheckResult(BaseModel):
    """One validation check: its name, outcome and a one-line explanation."""

    name: str
    status: Status
    message: str = ""

    def line(self) -> str:
        """The check as `irob-bench validate` prints it."""
        return f"{_MARK[self.status]}  {self.name}" + (f": {self.message}" if self.message else "")


class ValidationReport(BaseModel):
    """All checks of one submission on one dataset."""

    submission: str
    dataset: str
    checks: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed (any one stops the evaluation)."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[CheckResult]:
        """The checks that warn (printed; the evaluation goes on)."""
        return [c for c in self.checks if c.status == "warn"]

    def raise_on_failure(self) -> None:
        """Raise one IrobError naming the first failed check (the CLI prints it as one line)."""
        if self.failed:
            first = self.failed[0]
            raise IrobError(f"{first.name}: {first.message}")


class Validated(BaseModel):
    """What `irob-bench validate` prints before its verdict (import, metadata, factory, then every check) and the
    report; the isolated worker hands it back as JSON."""

    lines: list[str]
    report: ValidationReport


class _InputWritten(Exception):
    """The model wrote into the tensor it was given."""


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits under no_grad; the input must come back unchanged (compared against a copy), or _InputWritten."""
    original = x.clone()
    with torch.no_grad():
        logits = model(x)
    if not torch.equal(x, original):
        raise _InputWritten
    return logits


def _fail(checks: list[CheckResult], name: str, message: str) -> list[CheckResult]:
    return checks + [CheckResult(name=name, status="fail", message=message)]


def _user_error(exc: Exception) -> str:
    """One line naming the exception; an IrobError (a model in a worker: the worker names its exception) as it is."""
    return (str(exc) if isinstance(exc, IrobError) else f"{type(exc).__name__}: {exc}").splitlines()[0]


WRITES_INPUT = "the model wrote into its input tensor (e.g. x.mul_ or x.data.mul_); work on a copy"


def check_model(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, randomized: bool, batch_size: int = 250
) -> list[CheckResult]:
    """Run the model checks on a small labelled batch of benchmark images, and on it tiled to the evaluation's batch
    size; stops at the first failure."""
    checks: list[CheckResult] = [CheckResult(name="eval mode", status="pass", message="model.eval() set by irob-bench")]
    try:
        logits = _forward(model, x)
    except _InputWritten:
        return _fail(checks, "input unchanged", WRITES_INPUT)
    except Exception as exc:  # user code
        return _fail(checks, "forward", _user_error(exc))
    checks.append(CheckResult(name="input unchanged", status="pass"))
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(x), num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        return _fail(checks, "output shape", f"expected ({len(x)}, {num_classes}) logits, got {shape}")
    checks.append(CheckResult(name="output shape", status="pass", message=f"({len(x)}, {num_classes})"))
    if logits.dtype != torch.float32:
        return _fail(checks, "logits dtype", f"expected float32 logits, got {str(logits.dtype).removeprefix('torch.')}")
    checks.append(CheckResult(name="logits dtype", status="pass", message="float32"))
    if not torch.isfinite(logits).all():
        return _fail(checks, "finite logits", "the model returned NaN or infinite logits")
    checks.append(CheckResult(name="finite logits", status="pass"))

    if randomized:
        checks.append(CheckResult(name="determinism", status="pass", message="skipped: declared randomized"))
    else:
        again = _forward(model, x.clone())
        if not torch.equal(logits, again):
            diff = (logits - again).abs().max().item()
            return _fail(checks, "determinism", f"two identical batches gave different logits (max diff {diff:.3g}); declare randomized=True if intended")
        checks.append(CheckResult(name="determinism", status="pass"))

    independence = _batch_independence(model, x, logits, batch_size, randomized)
    checks.append(independence)
    if independence.status == "fail":
        return checks

    probs = logits.double()
    if (probs >= 0).all() and (probs <= 1).all() and torch.allclose(probs.sum(1), torch.ones(len(x), dtype=torch.float64), atol=1e-3):
        checks.append(CheckResult(name="logits not probabilities", status="warn", message="outputs look like probabilities (rows in [0,1] summing to 1); return logits, attacks on softmax outputs are weak"))
    elif torch.allclose(probs.logsumexp(1), torch.zeros(len(x), dtype=torch.float64), atol=1e-3):
        checks.append(CheckResult(name="logits not probabilities", status="warn", message="outputs look like log-probabilities; return raw logits"))
    else:
        checks.append(CheckResult(name="logits not probabilities", status="pass"))

    checks.append(_gradient_check(model, x, y))
    return checks


def _batch_independence(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, batch_size: int, randomized: bool) -> CheckResult:
    """The same samples in two halves, and tiled up to the evaluation's batch size, must give the same logits."""
    half = len(x) // 2
    tiled = x.repeat(-(-batch_size // len(x)), 1, 1, 1)[: max(batch_size, len(x))]
    try:  # the same samples in smaller and in evaluation-sized batches of other company
        halves = torch.cat([_forward(model, x[:half]), _forward(model, x[half:])])
        full = _forward(model, tiled)[: len(x)]
    except Exception as exc:  # user code
        return CheckResult(name="batch independence", status="fail", message=f"the model fails on batches of other sizes: {_user_error(exc)}")
    tolerance = 1e-4 * max(1.0, logits.abs().max().item())
    for other, what in ((halves, f"batches of {half}"), (full, f"the evaluation batch size {len(tiled)}")):
        deviation = (other - logits).abs().max().item()
        if deviation > tolerance and not randomized:
            return CheckResult(name="batch independence", status="fail", message=f"a sample's logits depend on the rest of the batch: {what} give other logits than {len(x)} (max diff {deviation:.3g}); BatchNorm left in train mode?")
    return CheckResult(name="batch independence", status="pass", message=f"batches of {half}, {len(x)} and {len(tiled)}")


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
