"""The global state of a run, each piece with one owner: seeding, deterministic mode (set and restored around the
work that needs it) and the device (one function moves models, generators and tensors)."""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterator
from typing import TypeVar

import numpy as np
import torch

from irob_bench.errors import IrobError

Movable = TypeVar("Movable", torch.Tensor, torch.nn.Module)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a CPU generator (deterministic mode: `deterministic()`)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    """The caller's Python, NumPy and torch (CPU, and CUDA if initialised) random states, restored after the block
    (a decorator too), whatever happens in it: an evaluation through the Python API seeds everything as a command
    does, and builds the submission's model, yet leaves a notebook's random streams where they were."""
    cuda = torch.cuda.is_initialized()
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else None
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if saved[3] is not None:
            torch.cuda.set_rng_state_all(saved[3])


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """torch's deterministic algorithms (warn-only) and deterministic cuDNN inside the block; the caller's settings
    are restored afterwards, whatever happens in it. New tensors are not NaN-filled (torch's default in this mode):
    the fill cost 12% of an attack step on the mnist references, and only makes ops that read memory they never wrote
    repeatable (a model whose output depends on such memory shows in validation's determinism check)."""
    fill = torch.utils.deterministic
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        fill.fill_uninitialized_memory,  # type: ignore[attr-defined]
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    fill.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        fill.fill_uninitialized_memory = saved[4]  # type: ignore[attr-defined]


def resolve_device(device: str) -> str:
    """Check the requested device exists here."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise IrobError(f"--device {device}: CUDA is not available on this machine")
    if device != "cpu" and not device.startswith("cuda"):
        raise IrobError(f"--device must be cpu or cuda[:N], got {device!r}")
    return device


def place(obj: Movable, device: str | torch.device) -> Movable:
    """The one way irob-bench moves a model, a generator or a tensor to the device it computes on: a module's
    parameters and buffers, and also the plain tensor attributes of its submodules (e.g. a normalising mean kept
    as `self.mean = torch.tensor(...)`), which `Module.to` leaves behind."""
    moved = obj.to(device)
    if isinstance(moved, torch.nn.Module):
        for module in moved.modules():
            for name, value in list(vars(module).items()):
                if isinstance(value, torch.Tensor):
                    setattr(module, name, value.to(device))
    return moved


def stray_tensors(module: torch.nn.Module, device: str | torch.device) -> list[str]:
    """Names of the parameters, buffers and plain tensor attributes of `module` that are not on `device`."""
    want = torch.device(device)

    def elsewhere(tensor: torch.Tensor) -> bool:
        return tensor.device.type != want.type or (want.index is not None and tensor.device.index != want.index)

    named = [*module.named_parameters(), *module.named_buffers()]
    for prefix, sub in module.named_modules():
        named += [(f"{prefix}.{k}" if prefix else k, v) for k, v in vars(sub).items() if isinstance(v, torch.Tensor)]
    return [name for name, tensor in named if elsewhere(tensor)]


def jvp(func, primals: tuple[torch.Tensor, ...], tangents: tuple[torch.Tensor, ...]):  # type: ignore[no-untyped-def]
    """torch.func.jvp, without the FutureWarning torch itself raises on the first call (its forward-mode
    decompositions are built with the deprecated torch.jit.script): it printed into progress bars and logs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        return torch.func.jvp(func, primals, tangents)
