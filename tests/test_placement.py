"""The GPU path: `runtime.place` moves every parameter, buffer and plain tensor attribute of what it is given (checked
on the CPU with the `meta` device), and a whole evaluation runs on CUDA where there is one (skipped elsewhere)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from irob_bench import datasets
from irob_bench.evaluate import EvaluateOptions, evaluate
from irob_bench.plugin import load_submission
from irob_bench.runtime import place, stray_tensors

TOY = Path(__file__).parent / "submissions" / "toy.py"


class Normalised(nn.Module):
    """A submission-style model keeping its normalisation as plain tensor attributes (not buffers)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
        self.mean, self.std = torch.full((1, 4), 0.5), torch.full((1, 4), 0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)


def test_place_moves_parameters_buffers_and_plain_tensors():
    model = Normalised()
    assert stray_tensors(model, "meta") == [  # everything starts on the CPU
        "body.1.weight", "body.1.bias", "body.2.weight", "body.2.bias", "body.2.running_mean", "body.2.running_var",
        "body.2.num_batches_tracked", "mean", "std"]
    placed = place(model, "meta")
    assert placed is model and stray_tensors(model, "meta") == []
    assert place(torch.zeros(3), "meta").device.type == "meta"


def test_control_module_to_leaves_plain_tensors_behind():
    model = Normalised().to("meta")
    assert stray_tensors(model, "meta") == ["mean", "std"]  # the check sees what Module.to misses


@pytest.mark.parametrize("name", ["mnist", "saturated-cifar-p2"])
def test_every_shipped_generator_and_a_submission_model_are_placed_whole(name):
    generator = copy.deepcopy(datasets.load(name).generator)  # the loaded one may be cached: leave it where it is
    n_tensors = len([*generator.parameters(), *generator.buffers()])
    assert n_tensors > 0 and stray_tensors(generator, "meta") != []
    assert stray_tensors(place(generator, "meta"), "meta") == []
    model = load_submission(TOY).build("mnist")
    assert stray_tensors(place(model, "meta"), "meta") == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_whole_evaluation_on_cuda_matches_the_cpu():
    options = EvaluateOptions(n_examples=16, eps=[1.0, 2.0], progress=False, preset="quick")
    cpu = evaluate(TOY, options).result
    gpu = evaluate(TOY, options.model_copy(update={"device": "cuda"})).result
    assert gpu.settings.device == "cuda" and gpu.metrics.clean_accuracy == cpu.metrics.clean_accuracy
    for a, b in zip(cpu.metrics.per_eps, gpu.metrics.per_eps):  # floats differ between devices: 1 point in 16 allowed
        assert abs(a.robust_accuracy_pgd - b.robust_accuracy_pgd) <= 1 / 16
        assert abs(a.robust_accuracy_in_distribution - b.robust_accuracy_in_distribution) <= 1 / 16


@pytest.mark.parametrize("call, quiet", [("irob_bench.runtime.jvp", True), ("torch.func.jvp", False)])
def test_forward_mode_products_print_no_torch_deprecation_warning(call, quiet):
    """torch's first jvp builds its decompositions with the deprecated torch.jit.script, and the FutureWarning showed
    up in progress bars and logs (found by an audit). Each in a fresh process, where that first call happens. The
    control, torch.func.jvp itself, shows the warning is real on this torch (once a torch drops it, the control fails
    and runtime.jvp can go)."""
    module, _, name = call.rpartition(".")
    code = (f"import importlib, torch; jvp = getattr(importlib.import_module({module!r}), {name!r}); "
            "jvp(torch.sin, (torch.ones(2),), (torch.ones(2),))")
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True)
    warned = "torch.jit.script` is deprecated" in done.stderr
    assert (done.returncode == 0 and not warned) if quiet else (done.returncode != 0 and warned), done.stderr[-500:]
