"""Trains the SNGAN-style CIFAR-10 generator for hours on a CPU: hinge loss, DiffAugment, EMA, exact resume, and
optionally an auxiliary class head that learns from real images only (`class_weight`).

One checkpoint file (G, D, EMA G, both Adam states, iteration, RNG states, settings) is replaced atomically every
few minutes; `resume` continues from it bit for bit. Every real batch is a function of (seed, position), and every
other random draw comes from one saved torch.Generator, so an interrupted run equals an uninterrupted one."""

from __future__ import annotations

import copy
import fcntl
import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from irob_bench.artifacts import atomic_torch_save, atomic_write_text
from irob_bench.common import shipped_data_dir
from irob_bench.errors import IrobError
from irob_bench.generators.diffaugment import diff_augment
from irob_bench.generators.quality import fidelity, load_checker_file
from irob_bench.generators.real_cifar import load_real_cifar
from irob_bench.generators.sngan import ARCHITECTURE_ID, ProjectionDiscriminator, SNGANGenerator
from irob_bench.generators.train import save_frozen_generator
from irob_bench.runtime import deterministic, seed_everything

CHECKPOINT_FILE = "checkpoint.pt"
DEFAULT_CHECKER = shipped_data_dir() / "cifar-generator" / "checker-resnet9.pt"  # the v1.0 quality gate's checker (90.6%)


class SNGANConfig(BaseModel):
    """The settings a run is started with; a resumed run must be given the same ones."""

    model_config = ConfigDict(frozen=True)

    seed: int = 0
    batch_size: int = Field(64, ge=2)
    latent_dim: int = Field(128, ge=1)
    g_width: int = Field(64, ge=1)
    d_width: int = Field(64, ge=1)
    n_dis: int = Field(1, ge=1)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)  # Miyato et al.'s setting for one D step per G step
    ema_decay: float = Field(0.999, ge=0, lt=1)
    # > 0: a linear class head on D's features learns from REAL images only, and G's loss adds this weight x its
    # cross-entropy on G's images (ACGAN with fake-class-weight 0: G is rewarded only for what a real-image
    # classifier recognises; docs/saturation.md). 0: the plain projection-discriminator SNGAN.
    class_weight: float = Field(0.0, ge=0)


@dataclass
class TrainState:
    """Everything a run carries from one iteration to the next (all of it is checkpointed)."""

    config: SNGANConfig
    gen: SNGANGenerator
    disc: ProjectionDiscriminator
    ema: SNGANGenerator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    rng: torch.Generator
    classifier: nn.Linear | None = None  # the class head (class_weight > 0), with its own optimiser
    opt_c: torch.optim.Adam | None = None
    iteration: int = 0
    seconds: float = 0.0

    def parts(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        """The checkpointed networks and optimisers by name (the class head's only when there is one)."""
        names = ("gen", "disc", "ema", "opt_g", "opt_d") + (("classifier", "opt_c") if self.classifier is not None else ())
        return {name: getattr(self, name) for name in names}


def new_state(config: SNGANConfig) -> TrainState:
    """Fresh networks and optimisers, initialised from the seed."""
    rng = seed_everything(config.seed)
    # channels-last convolutions are ~15% faster on one CPU thread (oneDNN converts less); values are unchanged
    gen = SNGANGenerator(config.latent_dim, width=config.g_width).to(memory_format=torch.channels_last)
    disc = ProjectionDiscriminator(width=config.d_width).to(memory_format=torch.channels_last)
    ema = copy.deepcopy(gen).requires_grad_(False)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=config.betas)
    state = TrainState(config, gen, disc, ema, opt_g, opt_d, rng)
    if config.class_weight:  # made last, so a run without it draws exactly what it always did
        state.classifier = nn.Linear(config.d_width, 10)
        state.opt_c = torch.optim.Adam(state.classifier.parameters(), lr=config.lr, betas=config.betas)
    return state


def save_checkpoint(state: TrainState, directory: Path) -> None:
    """Write the whole state to directory/checkpoint.pt atomically (a crash leaves the previous one intact)."""
    payload = {
        "config": state.config.model_dump(mode="json"),
        "iteration": state.iteration,
        "seconds": state.seconds,
        **{name: part.state_dict() for name, part in state.parts().items()},
        "rng": state.rng.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    atomic_torch_save(payload, directory / CHECKPOINT_FILE)


def _load_into(state: TrainState, payload: dict) -> TrainState:
    """Copy a checkpoint's parts that `state` has, its RNG states, iteration and hours into `state`."""
    for name, part in state.parts().items():
        if name in payload:
            part.load_state_dict(payload[name])
    state.rng.set_state(payload["rng"])
    torch.set_rng_state(payload["torch_rng"])
    state.iteration, state.seconds = payload["iteration"], payload["seconds"]
    return state


def _read(directory: Path) -> dict:
    """The payload of directory/checkpoint.pt (weights_only load)."""
    return torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def load_checkpoint(directory: Path) -> TrainState:
    """The state saved in directory/checkpoint.pt."""
    payload = _read(directory)
    return _load_into(new_state(SNGANConfig(**payload["config"])), payload)


def warm_state(source: Path, config: SNGANConfig) -> TrainState:
    """A run with `config` that starts where the run in `source` stands (networks, optimisers, RNG, iteration):
    only `class_weight` may differ, and a class head new to the run starts fresh from the seed."""
    if not (source / CHECKPOINT_FILE).is_file():
        raise IrobError(f"no checkpoint to warm-start from in {source}")
    payload = _read(source)
    theirs = SNGANConfig(**payload["config"])
    changed = [f"{k} ({v} in {source}, {getattr(config, k)} given)" for k, v in theirs.model_dump().items()
               if k != "class_weight" and v != getattr(config, k)]
    if changed:
        raise IrobError("a warm start may change only class_weight; these differ: " + ", ".join(changed))
    return _load_into(new_state(config), payload)


@functools.lru_cache(maxsize=1)
def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled order of the training images in one epoch (a function of seed and epoch only)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def real_batch(
    images: torch.Tensor, labels: torch.Tensor, config: SNGANConfig, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The real batch of D step number `step` (epochs of shuffled images): uint8 NHWC in, float NCHW in [0, 1] out."""
    per_epoch = len(images) // config.batch_size
    order = _epoch_order(config.seed, step // per_epoch, len(images))
    idx = order[(step % per_epoch) * config.batch_size : (step % per_epoch + 1) * config.batch_size]
    return images[idx].permute(0, 3, 1, 2).float() / 255, labels[idx]


def sample_latents(n: int, latent_dim: int, rng: torch.Generator, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """n N(0, I) latents and n uniformly drawn classes."""
    return torch.randn(n, latent_dim, generator=rng), torch.randint(0, num_classes, (n,), generator=rng)


def _augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """DiffAugment, laid out channels-last for D."""
    return diff_augment(x, rng).contiguous(memory_format=torch.channels_last)


def train_iteration(state: TrainState, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """n_dis hinge-loss D steps, one G step, one EMA update; returns the last losses and D's mean outputs (and,
    with a class head, its cross-entropy on the real batch and on G's images)."""
    cfg, head = state.config, state.classifier
    stats: dict[str, float] = {}
    optimisers = [state.opt_d] + ([state.opt_c] if state.opt_c is not None else [])
    state.disc.requires_grad_(True)
    for j in range(cfg.n_dis):
        x_real, y_real = real_batch(images, labels, cfg, state.iteration * cfg.n_dis + j)
        z, y_fake = sample_latents(cfg.batch_size, cfg.latent_dim, state.rng)
        with torch.no_grad():
            x_fake = state.gen(z, y_fake)
        h = state.disc.features(_augment(torch.cat([x_real, x_fake]), state.rng))
        out = state.disc.score(h, torch.cat([y_real, y_fake]))
        out_real, out_fake = out[: len(x_real)], out[len(x_real) :]
        loss_d = F.relu(1 - out_real).mean() + F.relu(1 + out_fake).mean()
        if head is not None:  # real images only: the head learns what real CIFAR-10 classes look like
            class_real = F.cross_entropy(head(h[: len(x_real)].float()), y_real)
            loss_d = loss_d + class_real
            stats["class_real"] = class_real.item()
        for optimiser in optimisers:
            optimiser.zero_grad(set_to_none=True)
        loss_d.backward()
        for optimiser in optimisers:
            optimiser.step()

    state.disc.requires_grad_(False)  # G's step needs gradients through D (and the head), not for their weights
    if head is not None:
        head.requires_grad_(False)
    z, y_fake = sample_latents(cfg.batch_size, cfg.latent_dim, state.rng)
    h = state.disc.features(_augment(state.gen(z, y_fake), state.rng))
    loss_g = -state.disc.score(h, y_fake).mean()
    if head is not None:
        class_fake = F.cross_entropy(head(h.float()), y_fake)
        loss_g = loss_g + cfg.class_weight * class_fake
        stats["class_fake"] = class_fake.item()
        head.requires_grad_(True)
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()

    state.iteration += 1
    decay = min(cfg.ema_decay, (1 + state.iteration) / (10 + state.iteration))  # short warm-up: early EMA follows G
    with torch.no_grad():
        for p_ema, p in zip(state.ema.parameters(), state.gen.parameters()):
            p_ema.lerp_(p, 1 - decay)
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
            "d_real": out_real.mean().item(), "d_fake": out_fake.mean().item(), **stats}


@torch.no_grad()
def standing_generator(ema: SNGANGenerator, seed: int = 0, batches: int = 20, batch_size: int = 100) -> SNGANGenerator:
    """An eval-mode copy of the EMA generator with BatchNorm statistics averaged over its own samples.

    The EMA weights never ran through BatchNorm in training, so G's running statistics would not fit them."""
    gen = copy.deepcopy(ema).train()
    norms = [m for m in gen.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    rng = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        gen(*sample_latents(batch_size, gen.latent_dim, rng, gen.num_classes))
    return gen.eval()


class Probe:
    """Label agreement and checker Frechet distance of n fixed-latent EMA samples (n / 10 per class)."""

    def __init__(self, checker_path: Path, real_test: np.ndarray, latent_dim: int, n: int = 1000) -> None:
        if not checker_path.is_file():
            raise IrobError(f"probe checker not found: {checker_path}")
        self.checker = load_checker_file(checker_path, 3, 32)
        self.real_test = real_test
        rng = torch.Generator().manual_seed(2024)
        self.z = torch.randn(n, latent_dim, generator=rng)
        self.y = torch.arange(n) % 10

    @torch.no_grad()
    def __call__(self, ema: SNGANGenerator) -> dict[str, float]:
        """The EMA generator's label agreement and Frechet distance on the fixed latents."""
        gen = standing_generator(ema)
        x = torch.cat([gen(self.z[i : i + 250], self.y[i : i + 250]) for i in range(0, len(self.z), 250)])
        hits = (self.checker(x).argmax(1) == self.y).float()
        per_class = [hits[self.y == c].mean().item() for c in range(10)]
        fid = fidelity(x, self.real_test, self.checker)
        return {"agreement": hits.mean().item(), "lowest_class": min(per_class),
                "frechet": fid.generated, "frechet_real_floor": fid.real_floor, "n": len(x)}


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the checkpoint folder, so two runs never write the same checkpoint."""
    with open(directory / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IrobError(f"another training run holds {directory}") from None
        yield


def _start(directory: Path, config: SNGANConfig, resume: bool, warm_start: Path | None) -> TrainState:
    """The checkpoint's state when resuming (refusing other settings), else a fresh one (refusing to overwrite),
    warm-started from another run's checkpoint when asked (a resumed run already holds its warm start)."""
    if not (directory / CHECKPOINT_FILE).is_file():
        return new_state(config) if warm_start is None else warm_state(warm_start, config)
    if not resume:
        raise IrobError(f"{directory / CHECKPOINT_FILE} exists: pass --resume to continue it, or use another folder")
    state = load_checkpoint(directory)
    changed = [f"{k} ({v} in the checkpoint, {getattr(config, k)} given)"
               for k, v in state.config.model_dump().items() if v != getattr(config, k)]
    if changed:
        raise IrobError("resume with the checkpoint's settings; these differ: " + ", ".join(changed))
    return state


@deterministic()  # torch's deterministic mode for the training only; the caller's setting comes back after
def train_sngan(
    data_dir: str | Path,
    checkpoint_dir: str | Path,
    iterations: int,
    *,
    config: SNGANConfig = SNGANConfig(),
    resume: bool = False,
    checker: str | Path = DEFAULT_CHECKER,
    probe_every: int = 1000,
    log_every: int = 100,
    checkpoint_seconds: float = 300.0,
    precision: Literal["fp32", "bf16"] = "fp32",
    warm_start: str | Path | None = None,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> TrainState:
    """Train until `iterations` G steps in total, checkpointing every `checkpoint_seconds` and at the end.

    Logs a JSON line every `log_every` iterations and a probe line (`checker`) every `probe_every` (0: never).
    `precision` "bf16" runs the iterations under CPU bfloat16 autocast (weights, optimiser states and the probe stay
    float32): 1.8x faster on a CPU with AVX512-BF16. It may change on resume (the start line records it); a resumed
    run equals an uninterrupted one when it does not. `warm_start`: a new run starts from that folder's checkpoint
    (`warm_state`: to add the class head to a running SNGAN); the start line records it."""
    images, labels = load_real_cifar(data_dir, "train")
    probe = Probe(Path(checker), load_real_cifar(data_dir, "test")[0], config.latent_dim) if probe_every else None
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        fresh = not (directory / CHECKPOINT_FILE).is_file()
        source = Path(warm_start) if warm_start is not None and fresh else None
        state = _start(directory, config, resume, source)
        x_all = torch.from_numpy(images)  # uint8 NHWC, converted per batch: a quarter of float32's memory
        y_all = torch.from_numpy(labels.astype(np.int64))
        log(json.dumps({"start": state.iteration, "target": iterations, "config": config.model_dump(),
                        "precision": precision, **({"warm_start": str(source)} if source else {})}))
        saved_at, window = time.monotonic(), (time.monotonic(), time.process_time(), state.iteration)
        while state.iteration < iterations:
            tick = time.monotonic()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                stats = train_iteration(state, x_all, y_all)
            state.seconds += time.monotonic() - tick
            if state.iteration % log_every == 0:
                now, cpu, done = time.monotonic(), time.process_time(), state.iteration - window[2]
                log(json.dumps({"iteration": state.iteration, **{k: round(v, 4) for k, v in stats.items()},
                                "it_per_s": round(done / (now - window[0]), 3),
                                "it_per_cpu_s": round(done / (cpu - window[1]), 3)}))
                window = (now, cpu, state.iteration)
            if probe is not None and state.iteration % probe_every == 0:
                log(json.dumps({"probe": state.iteration, **{k: round(v, 4) for k, v in probe(state.ema).items()}}))
            if time.monotonic() - saved_at >= checkpoint_seconds or state.iteration == iterations:
                save_checkpoint(state, directory)
                saved_at = time.monotonic()
                log(json.dumps({"checkpoint": state.iteration, "train_hours": round(state.seconds / 3600, 3)}))
    return state


def export_generator(checkpoint_dir: str | Path, out_dir: str | Path) -> str:
    """Write the checkpoint's EMA generator (standing BatchNorm statistics, float16) as out_dir/generator.pt.

    Writes out_dir/export.json beside it (architecture, constructor arguments, iteration, settings); returns sha256."""
    directory = Path(checkpoint_dir)
    if not (directory / CHECKPOINT_FILE).is_file():
        raise IrobError(f"no checkpoint to export in {directory}")
    state = load_checkpoint(directory)
    out = Path(out_dir)
    sha = save_frozen_generator(standing_generator(state.ema), out / "generator.pt")
    kwargs = {"latent_dim": state.config.latent_dim, "width": state.config.g_width}
    record = {"architecture": ARCHITECTURE_ID, "kwargs": kwargs, "iteration": state.iteration,
              "train_hours": state.seconds / 3600, "config": state.config.model_dump(), "weights_sha256": sha,
              "torch_version": torch.__version__}
    atomic_write_text(out / "export.json", json.dumps(record, indent=2))
    return sha
