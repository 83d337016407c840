"""The untrusted side of an isolated evaluation (`python -m irob_bench.isolation.worker PATH`): it imports the
submission, builds its model and answers the parent's requests (forward, backward, certify, ...) over stdin/stdout
(isolation.channel), and nothing else. The attacks, metrics, checkpoints and results stay in the parent, a process
the submission's code never enters, so no submission can rewrite how it is scored.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from typing import Any, BinaryIO

import numpy as np

from irob_bench.allocator import keep_freed_memory

UNSAFE_LOAD = "rule: torch.load(weights_only=False) can run a pickle payload; load weights with irob_bench.plugin.load_weights"
MAX_GRAPHS = 8  # forward passes kept for a later backward (an attack asks for its backward straight away)


def _forbid_pickle_loads() -> None:
    """torch.load with weights_only=False (a pickle payload could run code) is refused inside the worker."""
    import torch
    import torch.serialization

    from irob_bench.errors import IrobError

    safe_load = torch.load

    def load(*args, weights_only: bool | None = None, **kwargs):  # type: ignore[no-untyped-def]
        if weights_only is False:
            raise IrobError(UNSAFE_LOAD)
        return safe_load(*args, weights_only=True, **kwargs)

    torch.load = torch.serialization.load = load


def _error_text(exc: BaseException, loading: bool) -> str:
    """One line for an exception raised by submission code: its type and first line; a failed import or factory
    (`loading`) is already one IrobError line, which stays as it is."""
    from irob_bench.errors import IrobError

    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if loading and isinstance(exc, IrobError) else f"{type(exc).__name__}: {first}".rstrip(": ")


class Server:
    """One submission's model, driven by the parent's messages."""

    def __init__(self, path: str, out: BinaryIO) -> None:
        self.path, self.out = path, out
        self.submission: Any = None
        self.model: Any = None
        self.device = "cpu"
        self.graphs: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self.next_graph = 0

    def reply(self, op: str, arrays: tuple[np.ndarray, ...] = (), **fields: Any) -> None:
        """Send one message (header fields and arrays) back to the parent."""
        from irob_bench.isolation.channel import send

        send(self.out, {"op": op, **fields}, arrays)

    def handle(self, header: dict[str, Any], arrays: list[np.ndarray]) -> bool:
        """Answer one request; False after `exit`."""
        op = header["op"]
        if op == "exit":
            return False
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            self.reply("error", message=f"unknown request {op!r}")
            return True
        try:
            handler(header, arrays)
        except Exception as exc:  # submission code failed: the parent decides what that means
            self.reply("error", message=_error_text(exc, loading=op in ("load", "build")))
        except SystemExit as exc:  # only submission code calls it here: its exit is not our answer
            self.reply("error", message=f"the submission ended the evaluation with sys.exit({exc.code!r})")
        return True

    def op_load(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Load the submission file and send back its metadata."""
        from irob_bench.plugin import load_submission

        self.submission = load_submission(self.path)
        self.reply("loaded", metadata=self.submission.metadata.model_dump(mode="json"))

    def op_build(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Build the model for the requested dataset on the requested device; say whether it certifies."""
        from irob_bench.runtime import place

        self.device = str(header["device"])
        self.model = place(self.submission.build(str(header["dataset"])), self.device)
        self.reply("built", certify=callable(getattr(self.model, "certify", None)))

    def op_forward(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Logits of the sent inputs; with grad, keep the graph under an id for a later backward."""
        import torch

        x = torch.from_numpy(arrays[0]).to(self.device)
        if header.get("grad"):
            x.requires_grad_(True)
        with torch.set_grad_enabled(bool(header.get("grad"))):
            logits = self.model(x)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"the model returned {type(logits).__name__}, not a tensor of logits")
        graph = None
        if header.get("grad") and logits.requires_grad:
            graph, self.next_graph = self.next_graph, self.next_graph + 1
            self.graphs[graph] = (x, logits)
            while len(self.graphs) > MAX_GRAPHS:
                self.graphs.popitem(last=False)
        wire = logits.detach().cpu()
        dtype = str(wire.dtype).removeprefix("torch.")
        if wire.dtype == torch.bfloat16 or not wire.is_floating_point():
            wire = wire.float()  # exact for bfloat16; an integer output travels as float and fails the dtype check
        self.reply("logits", (wire.numpy(),), dtype=dtype, graph=graph)

    def op_backward(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """The input gradient of a kept forward pass for the sent output gradient (the graph is then dropped)."""
        import torch

        graph = self.graphs.pop(header.get("graph"), None)
        if graph is None:
            raise RuntimeError("the forward pass of this backward is gone (or had no graph)")
        x, logits = graph
        grad = torch.from_numpy(arrays[0]).to(device=logits.device, dtype=logits.dtype)
        (gx,) = torch.autograd.grad(logits, x, grad)
        self.reply("grad", (gx.detach().cpu().float().numpy(),))

    def op_certify(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """The model's own certificates for the sent points at one eps, checked before they are sent."""
        import torch

        from irob_bench.certify import certificate_problem

        x, y = (torch.from_numpy(a).to(self.device) for a in arrays)
        with torch.no_grad():
            out = self.model.certify(x, y, float(header["eps"]))
        problem = certificate_problem(out, len(x))
        if problem is not None:
            raise TypeError(problem)
        self.reply("certified", (out.cpu().numpy(),))

    def op_seed(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Seed the worker's random streams."""
        from irob_bench.runtime import seed_everything

        seed_everything(int(header["seed"]))
        self.reply("ok")

    def op_describe(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """The model's layers as certify reads them, or why they cannot be bounded."""
        from irob_bench.certify import Unbounded, describe_layers

        try:
            layers, tensors = describe_layers(self.model)
        except Unbounded as exc:
            self.reply("unbounded", reason=str(exc))
            return
        self.reply("layers", tuple(tensors), layers=layers)


def main(path: str) -> int:
    """Serve the submission at `path` until the parent says exit or closes the connection."""
    from irob_bench.isolation.channel import ChannelClosed, receive

    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the submission's prints go to stderr, never into the wire
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    from irob_bench.runtime import deterministic

    keep_freed_memory()  # this process exists only for the evaluation: so do its allocator settings
    _forbid_pickle_loads()
    server = Server(path, wire_out)
    try:
        with deterministic():  # the mode an evaluation in process runs its attacks in
            while server.handle(*receive(wire_in)):
                pass
    except ChannelClosed:  # the parent is gone: nothing to answer
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
