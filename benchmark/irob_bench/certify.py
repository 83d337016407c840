"""Certified robust accuracy: a LOWER bound on true robust accuracy (every attack gives an upper bound).

A point is certified at eps when no perturbation of L2 norm <= eps can change its prediction. Two sources:

- the submission's own certificate, when its model defines `certify(x, y, eps) -> BoolTensor` (trusted only as far
  as the attacks can check it: see `violations`);
- else the benchmark's own Lipschitz-margin certificate (Tsuzuku et al. 2018): for a network it can read layer by
  layer (exact nn.Linear, nn.Conv2d, ReLU, MaxMin, max/average pooling, Flatten, Identity, Dropout, Sequential),
  a SOUND upper bound L of each layer's L2 Lipschitz constant, multiplied along the network. The radius of a point
  is min_j (z_y - z_j) / (||w_y - w_j|| L_body) when the last layer is a Linear with rows w (L_body bounds the
  layers before it), else (z_y - z_max) / (sqrt(2) L).

Layer bounds are provable, never estimates (power iteration converges from below and is NOT an upper bound):
Linear uses the exact largest singular value (SVD in float64); Conv2d the largest singular value over frequencies
of the circular convolution on the input grid enlarged by the padding (an FFT per channel pair), which bounds the
zero-padded, strided convolution because zero padding is an isometric embedding and cropping/striding only drop
outputs. The bound is tight for Lipschitz-constrained networks (orthonormal layers, norm-preserving activations)
and usually loose for ordinary ones; the result says which, from the measured `looseness` (bound / the largest
local slope seen on the evaluated points, >= 1). Anything the benchmark cannot read gets "no certificate: <reason>".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from irob_bench.attacks.common import answering
from irob_bench.bounds import Bound
from irob_bench.errors import IrobError
from irob_bench.reference.models import MaxMin, SmallCNN
from irob_bench.results import CertificateRecord, Metrics, SanityFlag
from irob_bench.runtime import place

if TYPE_CHECKING:
    from irob_bench.attacks.outcomes import AttackOutcomes

BOUND_SLACK = 1e-5  # relative: covers float rounding of the SVD and of the float32 forward pass
MARGIN_SLACK = 1e-5  # relative to the largest |logit| of the point
TIGHT_LOOSENESS = 2.0  # a bound within 2x of a slope actually seen on the data counts as tight
_ONE_LIPSCHITZ = (nn.ReLU, MaxMin, nn.Flatten, nn.Identity, nn.Dropout)
_FORM = "certified"


class Unbounded(Exception):
    """The benchmark cannot bound this model; the message is the reason."""


@dataclass(frozen=True)
class LipschitzBound:
    """A provable L2 Lipschitz bound of a network split as body (all but the last Linear) and head (its rows)."""

    body: float
    head_rows: torch.Tensor | None  # (classes, features) weight of a final nn.Linear, else None

    @property
    def total(self) -> float:
        """The bound of the whole network's logit map."""
        head = 1.0 if self.head_rows is None else float(torch.linalg.matrix_norm(self.head_rows.double(), 2))
        return self.body * head * (1.0 + BOUND_SLACK)


def linear_bound(layer: nn.Linear) -> float:
    """The exact spectral norm of the weight (largest singular value, SVD in float64)."""
    return float(torch.linalg.matrix_norm(layer.weight.detach().double(), 2))


def _dense_kernel(conv: nn.Conv2d) -> torch.Tensor:
    """The (out, in, kh, kw) kernel of a grouped convolution as one block-diagonal dense kernel."""
    w = conv.weight.detach().double()
    g, c_in = conv.groups, conv.in_channels
    if g == 1:
        return w
    dense = w.new_zeros(conv.out_channels, c_in, *w.shape[2:])
    per_out, per_in = conv.out_channels // g, c_in // g
    for k in range(g):
        dense[k * per_out : (k + 1) * per_out, k * per_in : (k + 1) * per_in] = w[k * per_out : (k + 1) * per_out]
    return dense


def conv_bound(conv: nn.Conv2d, in_shape: tuple[int, ...]) -> float:
    """Largest singular value, over the 2-D frequencies, of the circular convolution on the (H + 2p) x (W + 2p) grid:
    an upper bound of the zero-padded conv's operator norm on (C, H, W) inputs (any stride, dilation, groups)."""
    if conv.padding_mode != "zeros":
        raise Unbounded(f"Conv2d with padding_mode={conv.padding_mode!r} (only zero padding is bounded)")
    if isinstance(conv.padding, str):
        if conv.padding != "valid":
            raise Unbounded(f"Conv2d with padding={conv.padding!r} (give the padding as numbers)")
        pad = (0, 0)
    else:
        pad = conv.padding
    _, h, w = in_shape
    grid = (h + 2 * pad[0], w + 2 * pad[1])
    kernel = _dense_kernel(conv)
    dil = conv.dilation
    reach = [dil[i] * (kernel.shape[2 + i] - 1) + 1 for i in range(2)]
    if reach[0] > grid[0] or reach[1] > grid[1]:
        raise Unbounded(f"Conv2d kernel reach {reach} larger than its padded input {list(grid)}")
    big = kernel.new_zeros(*kernel.shape[:2], *grid)
    big[:, :, : reach[0] : dil[0], : reach[1] : dil[1]] = kernel
    spectrum = torch.fft.fft2(big).permute(2, 3, 0, 1)  # (H', W', out, in): one matrix per frequency
    return float(torch.linalg.svdvals(spectrum).max())


def pool_bound(pool: nn.MaxPool2d | nn.AvgPool2d) -> float:
    """sqrt(the most windows one input can fall in) for max pooling (max is 1-Lipschitz per window); the same over
    sqrt(window size) for average pooling without padding (the mean of k values is ||.|| / sqrt(k)-Lipschitz)."""
    k = nn.modules.utils._pair(pool.kernel_size)
    s = nn.modules.utils._pair(pool.stride if pool.stride is not None else pool.kernel_size)
    if isinstance(pool, nn.MaxPool2d) and nn.modules.utils._pair(pool.dilation) != (1, 1):
        raise Unbounded("MaxPool2d with dilation")
    overlap = math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1])
    if isinstance(pool, nn.MaxPool2d):
        return math.sqrt(overlap)
    if nn.modules.utils._pair(pool.padding) != (0, 0) or pool.ceil_mode or pool.divisor_override is not None:
        raise Unbounded("AvgPool2d with padding, ceil_mode or divisor_override")
    return math.sqrt(overlap / (k[0] * k[1]))


def _flat_layers(module: nn.Module) -> list[nn.Module]:
    """The layers a model applies in order, if its forward is a plain Sequential pass (nested ones flattened)."""
    if type(module) is SmallCNN:
        return _flat_layers(module.net)
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [leaf for child in module for leaf in _flat_layers(child)]
    return [module]


def _hooked(model: nn.Module) -> bool:
    """Forward hooks, or a forward replaced on an instance: the layer types no longer say what the model computes."""
    return any(m._forward_hooks or m._forward_pre_hooks or "forward" in vars(m) for m in model.modules())


# The constructor arguments that fix what each readable layer computes (with its state_dict): how a worker describes
# its model's layers to the parent, which rebuilds them to bound them itself (describe_layers, rebuild_layers).
_ARGUMENTS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Linear: ("in_features", "out_features"),
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
    nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    nn.AvgPool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    nn.Flatten: ("start_dim", "end_dim"),
    nn.ReLU: (), MaxMin: (), nn.Identity: (), nn.Dropout: ("p",),
}
_READABLE = {kind.__name__: kind for kind in _ARGUMENTS}


def describe_layers(model: nn.Module) -> tuple[list[dict], list[np.ndarray]]:
    """The model's layers as the benchmark reads them (type, constructor arguments, state names) and their tensors:
    what a worker sends so that the parent bounds a network it rebuilt, not a number the worker computed."""
    if _hooked(model):
        raise Unbounded("the model has forward hooks or a forward replaced on an instance")
    layers, tensors = [], []
    for layer in _flat_layers(model):
        kind = type(layer)
        if kind not in _ARGUMENTS:
            raise Unbounded(f"layer {kind.__name__} is not one the benchmark can bound")
        if isinstance(layer, nn.MaxPool2d) and layer.return_indices:
            raise Unbounded("MaxPool2d with return_indices")
        arguments = {name: getattr(layer, name) for name in _ARGUMENTS[kind]}
        if kind in (nn.Linear, nn.Conv2d):
            arguments["bias"] = layer.bias is not None
        state = layer.state_dict()
        layers.append({"type": kind.__name__, "arguments": arguments, "state": list(state)})
        tensors += [t.detach().cpu().numpy() for t in state.values()]
    return layers, tensors


def _plain_argument(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) <= 4 and all(isinstance(v, int) for v in value)
    return value is None or isinstance(value, (bool, int, float, str)) and len(str(value)) <= 20


def rebuild_layers(layers: object, tensors: list[np.ndarray]) -> nn.Sequential:
    """The network a worker described (describe_layers), rebuilt here from readable layer types only, each tensor
    checked against the shape its arguments imply before it is used; Unbounded with the reason otherwise."""
    if not isinstance(layers, list) or not layers or len(layers) > 1000:
        raise Unbounded("the worker described no readable list of layers")
    built, remaining = [], list(tensors)
    for spec in layers:
        if not isinstance(spec, dict) or spec.get("type") not in _READABLE or not isinstance(spec.get("arguments"), dict):
            raise Unbounded("the worker described a layer the benchmark cannot read")
        kind, arguments = _READABLE[spec["type"]], spec["arguments"]
        allowed = {*_ARGUMENTS[kind], *(("bias",) if kind in (nn.Linear, nn.Conv2d) else ())}
        if set(arguments) != allowed or not all(_plain_argument(v) for v in arguments.values()):
            raise Unbounded(f"the worker described {kind.__name__} with other arguments than {sorted(allowed)}")
        arguments = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in arguments.items()}
        try:
            layer = kind(**arguments, device="meta") if kind in (nn.Linear, nn.Conv2d) else kind(**arguments)
            expected = layer.state_dict()
            if list(expected) != spec.get("state") or len(remaining) < len(expected):
                raise ValueError("other tensors")
            given = dict(zip(expected, remaining[: len(expected)]))
            if any(tuple(v.shape) != tuple(expected[k].shape) for k, v in given.items()):
                raise ValueError("tensor shapes that do not match its arguments")
            layer.load_state_dict({k: torch.from_numpy(v.copy()).float() for k, v in given.items()}, assign=True)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise Unbounded(f"the worker described a {kind.__name__} that cannot be rebuilt ({str(exc)[:80]})") from None
        remaining = remaining[len(expected):]
        built.append(layer)
    if remaining:
        raise Unbounded("the worker sent more tensors than its layers hold")
    return nn.Sequential(*built).eval()


def lipschitz_bound(model: nn.Module, input_shape: tuple[int, ...]) -> LipschitzBound:
    """A provable L2 Lipschitz bound of `model`'s logits on inputs of `input_shape` (C, H, W); raises Unbounded with
    the reason for any layer or model it cannot read (only exact known types count: a subclass may change forward)."""
    if _hooked(model):
        raise Unbounded("the model has forward hooks or a forward replaced on an instance")
    layers = _flat_layers(model)
    head = layers[-1] if type(layers[-1]) is nn.Linear else None
    body = layers[:-1] if head is not None else layers
    x = torch.zeros(1, *input_shape)
    bound = 1.0
    with torch.no_grad():
        for layer in body:
            kind = type(layer)
            if kind is nn.Linear:
                bound *= linear_bound(layer)
            elif kind is nn.Conv2d:
                bound *= conv_bound(layer, tuple(x.shape[1:]))
            elif kind in (nn.MaxPool2d, nn.AvgPool2d):
                bound *= pool_bound(layer)
            elif kind not in _ONE_LIPSCHITZ:
                raise Unbounded(f"layer {kind.__name__} is not one the benchmark can bound")
            x = layer(x)
    rows = None if head is None else head.weight.detach().double().clone()
    return LipschitzBound(body=bound * (1.0 + BOUND_SLACK), head_rows=rows)


def radii(logits: torch.Tensor, y: torch.Tensor, bound: LipschitzBound) -> torch.Tensor:
    """Certified L2 radius of each point (0 when misclassified or a logit is not finite, as `margin` counts it): the
    smallest margin over its Lipschitz constant."""
    z = logits.detach().double()
    zy = z.gather(1, y[:, None])
    margin = zy - z - MARGIN_SLACK * z.abs().amax(1, keepdim=True)
    if bound.head_rows is None:
        scale = torch.full_like(z, math.sqrt(2.0) * bound.total)
    else:
        w = bound.head_rows
        scale = (w[y][:, None, :] - w[None]).norm(dim=2) * bound.body
    ratio = torch.where(scale > 0, margin / scale.clamp_min(1e-300), torch.where(margin > 0, math.inf, 0.0))
    ratio = ratio.masked_fill(F.one_hot(y, z.shape[1]).bool(), math.inf)
    return torch.where(answering(z), ratio.min(1).values.clamp_min(0.0), 0.0)


def looseness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: LipschitzBound) -> float | None:
    """min over correctly classified points of (the pair's bound) / ||grad_x (z_y - z_j)|| for the runner-up j: >= 1,
    and near 1 when the certificate is tight. None when no point is correct or every gradient is 0."""
    x = x.detach().clone().requires_grad_(True)
    z = model(x)
    top2 = z.topk(2, dim=1).indices
    correct = top2[:, 0] == y
    if not correct.any():
        return None
    j = top2[:, 1]
    margin = (z.gather(1, y[:, None]) - z.gather(1, j[:, None])).squeeze(1)
    (grad,) = torch.autograd.grad(margin[correct].sum(), x)
    slope = grad[correct].flatten(1).double().norm(dim=1)
    if bound.head_rows is None:
        pair = torch.full_like(slope, math.sqrt(2.0) * bound.total)
    else:
        w = bound.head_rows
        pair = (w[y[correct]] - w[j[correct]]).norm(dim=1) * bound.body
    ratios = pair[slope > 0] / slope[slope > 0]
    return float(ratios.min()) if len(ratios) else None


def tightness(looseness: float | None) -> str:
    """'tight' when the bound is within TIGHT_LOOSENESS of a slope seen on the data, else 'loose'; 'unknown' without one."""
    if looseness is None:
        return "unknown"
    return "tight" if looseness <= TIGHT_LOOSENESS else "loose"


@dataclass(frozen=True)
class Certification:
    """Per-point certificates of one evaluation: `certified` is (N, E) bool over `eps`, or None with the `reason`."""

    source: str  # "benchmark" (Lipschitz margin) or "submission" (the model's own certify())
    eps: tuple[float, ...]
    certified: np.ndarray | None
    reason: str | None = None
    lipschitz: float | None = None
    looseness: float | None = None

    @property
    def tightness(self) -> str:
        """'tight', 'loose' or 'unknown' (a submission's certificate, or no measured slope)."""
        return tightness(self.looseness)

    def accuracy(self) -> list[Bound]:
        """Certified accuracy at each eps: a fraction, or "no certificate: <reason>"."""
        if self.certified is None:
            return [Bound.not_established(f"no certificate: {self.reason}", _FORM) for _ in self.eps]
        return [Bound.established(float(c), _FORM) for c in self.certified.mean(axis=0)]


def certificate_problem(out: object, n: int) -> str | None:
    """What is wrong with `out` as a model's certify(x, y, eps) answer for n points (an (n,) bool tensor), or None;
    checked where the model runs (here, or in an isolated worker)."""
    if isinstance(out, torch.Tensor) and out.dtype == torch.bool and tuple(out.shape) == (n,):
        return None
    got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {tuple(getattr(out, 'shape', ()))}"
    return f"model.certify(x, y, eps) must return a bool tensor of shape ({n},), got {got}"


def _submission_certificates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float]) -> np.ndarray:
    """The model's own certify(x, y, eps) for each eps, checked to be an (N,) bool tensor."""
    columns = []
    with torch.no_grad():
        for e in eps:
            out = model.certify(x, y, e)
            problem = certificate_problem(out, len(x))
            if problem is not None:
                raise IrobError(problem)
            columns.append(out.cpu().numpy())
    return np.stack(columns, axis=1)


def check_certify_interface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    """Before any attack: a model that defines certify() returns an (N,) bool tensor on a few points (IrobError if not)."""
    if callable(getattr(model, "certify", None)):
        _submission_certificates(model, x, y, [eps])


def certify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float], batch_size: int = 250,
            layers: Callable[[], nn.Module] | None = None) -> Certification:
    """Certify every point at every eps: the submission's certify() if its model defines one, else the benchmark's
    Lipschitz-margin certificate, else "no certificate" with the reason. `layers` gives the network to bound when it
    is not `model` itself (a model in an isolated worker: the layers it described, rebuilt here); that network must
    then give the model's logits on every point, or nothing is certified."""
    model.eval()
    chunks = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    if callable(getattr(model, "certify", None)):
        certified = np.concatenate([_submission_certificates(model, xb, yb, eps) for xb, yb in chunks])
        return Certification(source="submission", eps=tuple(eps), certified=certified)
    try:
        readable = model if layers is None else layers()
        bound = lipschitz_bound(readable, tuple(x.shape[1:]))
        with torch.no_grad():
            logits = torch.cat([model(xb) for xb, _ in chunks])
            if readable is not model:
                _same_logits(readable, logits, chunks)
    except Unbounded as exc:
        return Certification(source="benchmark", eps=tuple(eps), certified=None, reason=str(exc))
    r = radii(logits, y, bound).numpy()
    loose = [v for v in (looseness(model, xb, yb, bound) for xb, yb in chunks) if v is not None]
    certified = r[:, None] > np.asarray(eps, dtype=np.float64)[None, :]
    return Certification(source="benchmark", eps=tuple(eps), certified=certified, lipschitz=bound.total,
                         looseness=min(loose) if loose else None)


def _same_logits(layers: nn.Module, logits: torch.Tensor, chunks: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Unbounded unless the rebuilt `layers` compute the model's `logits` on every point (to float rounding)."""
    rebuilt = torch.cat([place(layers, xb.device)(xb) for xb, _ in chunks])
    tolerance = 1e-4 * max(1.0, float(logits.abs().max()))
    if rebuilt.shape != logits.shape or not float((rebuilt.double() - logits.double()).abs().max()) <= tolerance:
        raise Unbounded("the layers the model's worker described do not compute its logits")


def violations(certified: np.ndarray, robust: np.ndarray) -> np.ndarray:
    """(E,) count of points certified at an eps that an attack broke there (or that are misclassified): must be 0."""
    return (certified & ~robust).sum(axis=0)


_METHODS = {
    "benchmark": "Lipschitz margin (exact Linear SVD, FFT conv bound, pairwise last layer)",
    "submission": "the submission's certify(x, y, eps)",
}


def with_certificates(metrics: Metrics, certification: Certification) -> Metrics:
    """`metrics` with the certified accuracy (or "no certificate: <reason>") at each eps and the certificate record."""
    per_eps = []
    for m, bound in zip(metrics.per_eps, certification.accuracy(), strict=True):
        per_eps.append(m.model_copy(update={"certified_accuracy": bound.value, "certified_reason": bound.reason}))
    record = CertificateRecord(
        source=certification.source,  # type: ignore[arg-type]  # "benchmark" or "submission"
        method=_METHODS[certification.source],
        lipschitz_bound=certification.lipschitz,
        looseness=certification.looseness,
        tightness=certification.tightness,  # type: ignore[arg-type]
        reason=certification.reason,
    )
    return metrics.model_copy(update={"per_eps": per_eps, "certificate": record})


def claimed_certificates(claimed: Metrics, recomputed: Metrics, certified: np.ndarray | None = None) -> Metrics:
    """`recomputed` (metrics rebuilt from an outcomes file) with `claimed`'s certificate record and certified
    accuracies: counted from the file's per-point `certified` (N, E) where it has them, else taken as claimed (an
    older file: an import then checks them for consistency only, irob_bench.import_checks)."""
    counted = [None] * len(recomputed.per_eps) if certified is None else [float(c) for c in certified.mean(axis=0)]
    per_eps = [m.model_copy(update={"certified_accuracy": c.certified_accuracy, "certified_reason": c.certified_reason}
                            if k is None else {"certified_accuracy": k, "certified_reason": None})
               for c, m, k in zip(claimed.per_eps, recomputed.per_eps, counted, strict=True)]
    return recomputed.model_copy(update={"per_eps": per_eps, "certificate": claimed.certificate})


def violation_flags(certification: Certification, outcomes: AttackOutcomes) -> list[SanityFlag]:
    """A `certificate_violated` flag at every eps where an attack broke (or the model misclassifies) a certified point."""
    if certification.certified is None:
        return []
    robust = outcomes.robust_pgd if outcomes.robust_in is None else outcomes.robust_pgd & outcomes.robust_in
    flags = []
    for e, count in zip(certification.eps, violations(certification.certified, robust), strict=True):
        if count:
            flags.append(SanityFlag(
                name="certificate_violated",
                eps=e,
                message=f"{count} point(s) certified at eps {e:g} are broken by an attack or misclassified: "
                f"the {certification.source}'s certificate or the model is unsound",
            ))
    return flags


def merged_certificates(metrics: Metrics, parts: list[tuple[Metrics, int]]) -> Metrics:
    """`metrics` of merged shards with the shards' certificates, given as (shard metrics, shard points): counts added
    (what one process over all the points computes) and the record of the first shard with the smallest looseness."""
    records = [m.certificate for m, _ in parts]
    if any(r is None for r in records):
        return metrics
    total = sum(n for _, n in parts)
    per_eps = []
    for i, m in enumerate(metrics.per_eps):
        shard_values = [shard.per_eps[i] for shard, _ in parts]
        if any(v.certified_accuracy is None for v in shard_values):
            update = {"certified_accuracy": None, "certified_reason": shard_values[0].certified_reason}
        else:
            count = sum(round(v.certified_accuracy * n) for v, (_, n) in zip(shard_values, parts, strict=True))
            update = {"certified_accuracy": count / total, "certified_reason": None}
        per_eps.append(m.model_copy(update=update))
    loose = [r.looseness for r in records if r is not None and r.looseness is not None]
    if not loose:
        return metrics.model_copy(update={"per_eps": per_eps, "certificate": records[0]})
    record = records[0].model_copy(update={"looseness": min(loose), "tightness": tightness(min(loose))})  # type: ignore[union-attr]
    return metrics.model_copy(update={"per_eps": per_eps, "certificate": record})
