"""The peer yardstick of the attack benchmarks: torchattacks' AutoAttack at its original budgets, with counted passes.

`autoattack_union` runs APGD-CE (100 steps), APGD-T (DLR, all 9 targets, 100 steps), FAB-T (9 targets, 100 steps)
and Square (5,000 queries) from torchattacks as AutoAttack does: a cascade, each attack on the points the previous
ones left robust, one eps at a time. It returns each point's robust mask after every attack, and the model passes
spent (examples through a forward pass, and through a backward pass), counted by `CountedModel`, not estimated.
Results are cached per (model weights, points, eps) under the temp dir: the peers are deterministic (seeded), and
an AutoAttack run costs an hour of CPU; delete the cache or set IROB_BENCH_PEERS_FRESH=1 to re-measure.

Also runnable: `python tests/benchmarks/peers.py mnist/pgd mnist/trades saturated-cifar/p8-pgd` fills the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(tempfile.gettempdir()) / "irob-bench-benchmarks" / "peers"
PEER_BATCH = 250
STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")


class CountedModel(nn.Module):
    """Wraps a classifier and counts the examples that go through its forward and its backward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_examples = 0
        self.backward_examples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        n = len(x)
        self.forward_examples += n
        if out.requires_grad:
            out.register_hook(lambda grad: self._count_backward(n))
        return out

    def _count_backward(self, n: int) -> None:
        self.backward_examples += n

    def passes(self) -> dict[str, int]:
        return {"forward": self.forward_examples, "backward": self.backward_examples}


def reference_points(dataset: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The default evaluation subset of a benchmark dataset: (images, labels, dataset indices)."""
    from irob_bench import datasets
    from irob_bench.evaluate import DEFAULT_N_EXAMPLES, SUBSET_SEED, subset_indices

    data = datasets.load(dataset)
    indices = subset_indices(data.card.splits["test"].size, DEFAULT_N_EXAMPLES, SUBSET_SEED)
    z, y = data.latents("test")[indices], data.labels("test")[indices]
    return data.generate(z, y), y, indices


def reference_model(name: str) -> tuple[nn.Module, str]:
    """A reference submission `DATASET_FOLDER/NAME` under submissions/, built for its first dataset."""
    from irob_bench.plugin import load_submission

    submission = load_submission(REPO / "submissions" / name / "submission.py")
    model = submission.build(submission.metadata.datasets[0]).eval().requires_grad_(False)
    return model, submission.metadata.datasets[0]


def _peer_attacks(model: nn.Module, eps: float, n_classes: int) -> list:
    import torchattacks

    return [
        torchattacks.APGD(model, norm="L2", eps=eps, steps=100, n_restarts=1, loss="ce", seed=0),
        torchattacks.APGDT(model, norm="L2", eps=eps, steps=100, n_restarts=1, n_classes=n_classes, seed=0),
        torchattacks.FAB(model, norm="L2", eps=eps, steps=100, n_restarts=1, multi_targeted=True,
                         n_classes=n_classes, seed=0),
        torchattacks.Square(model, norm="L2", eps=eps, n_queries=5000, n_restarts=1, seed=0),
    ]


def _cascade(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, n_classes: int) -> dict:
    """One eps of AutoAttack: robust masks after each stage, passes and seconds per stage."""
    counted = CountedModel(model)
    with torch.no_grad():
        robust = model(x).argmax(dim=1) == y
    after, passes, seconds = {}, {}, {}
    for name, attack in zip(STAGES, _peer_attacks(counted, eps, n_classes)):
        start, before = time.perf_counter(), counted.passes()
        rows = torch.nonzero(robust).squeeze(1)
        for s in range(0, len(rows), PEER_BATCH):
            idx = rows[s : s + PEER_BATCH]
            adv = attack(x[idx], y[idx])
            with torch.no_grad():
                ok = (adv - x[idx]).flatten(1).norm(dim=1) <= eps + 1e-4
                robust[idx] &= ~(ok & (model(adv).argmax(dim=1) != y[idx]))
        now = counted.passes()
        passes[name] = {k: now[k] - before[k] for k in now}
        seconds[name] = time.perf_counter() - start
        after[name] = robust.clone().numpy()
    return {"after": after, "passes": passes, "seconds": seconds}


def _key(model: nn.Module, x: torch.Tensor, eps: float) -> str:
    h = hashlib.sha256()
    for tensor in [*model.state_dict().values(), x]:
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{h.hexdigest()[:16]}-eps{eps:g}"


def autoattack_union(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, n_classes: int = 10) -> dict:
    """AutoAttack's cascade at one eps, cached: {"after": {stage: (N,) robust}, "passes": ..., "seconds": ...}."""
    path = CACHE / f"{_key(model, x, eps)}.npz"
    if path.is_file() and not os.environ.get("IROB_BENCH_PEERS_FRESH"):
        data = np.load(path)
        meta = json.loads(data["meta"].tobytes().decode())
        return {"after": {s: data[s] for s in STAGES}, **meta, "cached": True}
    torch.manual_seed(0)
    result = _cascade(model, x, y, eps, n_classes)
    CACHE.mkdir(parents=True, exist_ok=True)
    meta = {"passes": result["passes"], "seconds": result["seconds"]}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **result["after"])
    tmp.replace(path)
    return {**result, "cached": False}


def main(names: list[str]) -> None:
    from irob_bench import datasets

    for name in names:
        model, dataset = reference_model(name)
        x, y, _ = reference_points(dataset)
        for eps in datasets.load(dataset).card.eps_grid:
            out = autoattack_union(model, x, y, eps)
            robust = {s: int(out["after"][s].sum()) for s in STAGES}
            print(name, f"eps={eps:g}", robust, out["passes"], {k: round(v, 1) for k, v in out["seconds"].items()},
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
