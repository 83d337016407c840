"""The parent's side of an isolated evaluation: a worker process that holds the submission's model (Worker), and
stand-ins that let the attacks, checks and certificates use it as if it were here (RemoteSubmission, RemoteModel).

Only tensors cross (isolation.channel): images and output gradients go to the worker, logits and input gradients
come back, each checked for dtype and shape. Everything that decides a score (the attacks, their verification, the
metrics, the checkpoints, the hashes of the submission and its weights) runs in the parent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from irob_bench.artifacts import sha256_file
from irob_bench.errors import IrobError
from irob_bench.isolation.channel import ChannelClosed, plain, receive, send, widen
from irob_bench.isolation.sandbox import Isolation, Tail, environment, limits, sandbox_prefix, with_rule
from irob_bench.plugin import SubmissionMetadata, weights_hashes


class RemoteError(IrobError, RuntimeError):
    """Submission code in the worker raised: one line naming the exception (and the rule it broke). A RuntimeError
    too, as a failed backward is in torch, so the gradient check reads it as "no input gradient"."""


def signal_name(number: int) -> str:
    """SIGKILL, SIGXCPU, ... or 'signal N' for a number Python has no name for (real-time signals)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Worker:
    """One worker process serving one submission's model under the chosen isolation; a context manager that always
    ends the process and removes its scratch folder. Every failure of the worker is one IrobError line."""

    def __init__(self, path: Path, isolation: Isolation, seconds: float, limit: str, forward_output: bool) -> None:
        self.limit, self.timed_out = limit, False
        self.scratch = Path(tempfile.mkdtemp(prefix="irob-bench-worker-"))
        try:
            prefix, self.label = (sandbox_prefix(self.scratch, path.parent) if isolation.level == "sandbox"
                                  else ([], "process"))  # fmt: skip
            command = [*prefix, sys.executable, "-m", "irob_bench.isolation.worker", str(path)]
            self.proc = subprocess.Popen(
                command, cwd=self.scratch, env=environment(self.scratch), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=lambda: limits(isolation, seconds),
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        self.in_flight = False  # a request sent whose answer was not read: the channel is out of step
        try:  # a SIGTERM (Terminated) or a failure from here on would leave a running worker nobody ends
            widen(self.proc.stdin)
            widen(self.proc.stdout)
            self.tail = Tail(self.proc.stderr, forward=forward_output)
            self.tail.start()
            self.watchdog = threading.Timer(seconds, self._time_out)
            self.watchdog.daemon = True
            self.watchdog.start()
        except BaseException:
            self._kill()
            self.proc.wait()
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise

    def _time_out(self) -> None:
        self.timed_out = True
        self._kill()

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def request(self, op: str, arrays: tuple[np.ndarray, ...] = (), **fields: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Send one request and return the answer; the worker's error is a RemoteError, its end an IrobError."""
        try:
            self.in_flight = True
            send(self.proc.stdin, {"op": op, **fields}, arrays)
            header, answer = receive(self.proc.stdout)
            self.in_flight = False
        except (ChannelClosed, BrokenPipeError):
            raise self.ended() from None
        except IrobError:  # a malformed message: the worker is not to be talked to any more
            self._kill()
            raise
        if header["op"] == "error":
            raise RemoteError(with_rule(plain(str(header.get("message", "")))))
        return header, answer

    def ended(self) -> IrobError:
        """Why the worker stopped answering, as the one line the user sees."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.proc.wait()
        self.tail.join(timeout=5)
        if self.timed_out:
            return IrobError(f"isolation: the submission ran longer than {self.limit} (rule: wall-clock limit)")
        if code < 0:
            name = signal_name(-code)
            rule = " (rule: CPU-time limit)" if name == "SIGXCPU" else ""
            return IrobError(f"isolation: the worker was killed by {name}{rule}; nothing was stored")
        if code == 0:
            return IrobError("isolation: the worker ended without a result (did the submission end its process, e.g. "
                             "with sys.exit or os._exit?); nothing was stored")
        return IrobError(with_rule(f"isolation: the worker failed (exit {code}): {plain(self.tail.last_line())}"))

    def close(self) -> None:
        """Ask the worker to exit (unless a request was cut off mid-way, e.g. by SIGTERM: then the channel is out of
        step), then end its process group whatever it does, and remove the scratch folder."""
        self.watchdog.cancel()
        try:
            if not self.in_flight:
                send(self.proc.stdin, {"op": "exit"})
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self._kill()
        self.proc.wait()
        self.tail.join(timeout=5)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Call(torch.autograd.Function):
    """model(x) in the worker as one autograd node: forward sends x, backward sends dL/dlogits and gets dL/dx."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, model: RemoteModel) -> torch.Tensor:  # type: ignore[override]
        """The worker's logits of x, keeping its graph id for the backward pass."""
        logits, graph = model.logits(x, grad=ctx.needs_input_grad[0])
        ctx.model, ctx.graph, ctx.shape, ctx.device = model, graph, x.shape, x.device
        return logits

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        """The input gradient computed by the worker on the forward pass's graph (checked for shape and type)."""
        if ctx.graph is None:
            raise RemoteError("the model's output does not depend on its input (no graph to differentiate)")
        _, (gx,) = ctx.model.worker.request("backward", (grad.detach().cpu().float().numpy(),), graph=ctx.graph)
        if tuple(gx.shape) != tuple(ctx.shape) or gx.dtype != np.float32:
            raise IrobError(f"isolation: the worker sent an input gradient of shape {tuple(gx.shape)} for inputs of "
                            f"shape {tuple(ctx.shape)}")
        return torch.from_numpy(gx).to(ctx.device), None


class RemoteModel(nn.Module):
    """The submission's model in the worker, callable (and differentiable) here like any nn.Module; `certify` exists
    when the worker's model defines one."""

    def __init__(self, worker: Worker, certifies: bool) -> None:
        super().__init__()
        self.worker = worker
        if certifies:
            self.certify = self._certify

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The submission's logits, computed in the worker (differentiable when x requires grad)."""
        if torch.is_grad_enabled() and x.requires_grad:
            return _Call.apply(x, self)
        return self.logits(x, grad=False)[0]  # nothing to differentiate: the worker keeps no graph

    def logits(self, x: torch.Tensor, grad: bool) -> tuple[torch.Tensor, int | None]:
        """The worker's logits for `x` (and the id of its graph when `grad`), checked to be a float (N, K) array."""
        header, (out,) = self.worker.request("forward", (x.detach().cpu().float().numpy(),), grad=grad)
        dtype = getattr(torch, str(header.get("dtype")), None)
        if out.ndim == 0 or out.shape[0] != len(x) or not isinstance(dtype, torch.dtype) or out.dtype.kind != "f":
            raise RemoteError(f"the model returned {plain(str(header.get('dtype')), 20)} output of shape "
                              f"{tuple(out.shape)} for {len(x)} inputs")
        graph = header.get("graph")
        return torch.from_numpy(out).to(device=x.device, dtype=dtype), graph if isinstance(graph, int) else None

    def _certify(self, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        _, (out,) = self.worker.request("certify", (x.detach().cpu().float().numpy(), y.detach().cpu().numpy()),
                                        eps=float(eps))  # fmt: skip
        if out.dtype != np.bool_ or out.shape != (len(x),):
            raise IrobError(f"model.certify(x, y, eps) must return a bool tensor of shape ({len(x)},), got "
                            f"{out.dtype} {tuple(out.shape)}")
        return torch.from_numpy(out).to(x.device)

    def layers(self) -> nn.Module:
        """The layers the worker describes, rebuilt here for the benchmark's certificate (certify.rebuild_layers)."""
        from irob_bench.certify import Unbounded, rebuild_layers

        header, tensors = self.worker.request("describe")
        if header["op"] == "unbounded":
            raise Unbounded(plain(str(header.get("reason", ""))))
        return rebuild_layers(header.get("layers"), tensors)


class RemoteSubmission:
    """A submission imported in a worker (plugin.Opened): its metadata as the worker reads it, checked here; the
    hashes of its file and declared weights computed here; its model a RemoteModel."""

    def __init__(self, path: Path, worker: Worker, device: str) -> None:
        self.path, self.worker, self.device = path.resolve(), worker, device
        header, _ = self._loading("load")
        self.metadata = SubmissionMetadata.checked(header.get("metadata"))
        self.file_sha256 = sha256_file(self.path)
        self.weights_sha256 = weights_hashes(self.path, self.metadata)

    def _loading(self, op: str, **fields: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
        """A load or build request, whose failure is the submission's own one-line error (not a model error)."""
        try:
            return self.worker.request(op, **fields)
        except RemoteError as exc:
            raise IrobError(str(exc)) from None

    def build(self, dataset: str) -> nn.Module:
        """Build the submission's model for `dataset` in the worker; here a stand-in that forwards to it."""
        header, _ = self._loading("build", dataset=dataset, device=self.device)
        return RemoteModel(self.worker, certifies=header.get("certify") is True)

    def seed(self, seed: int) -> None:
        """Seed the worker's random number generators (a randomized model draws there)."""
        self.worker.request("seed", seed=int(seed))

    @staticmethod
    def certificate_layers(model: nn.Module):  # type: ignore[no-untyped-def]
        """The stand-in's layer description, which the worker sent (what certify reads)."""
        return model.layers
