"""A loaded benchmark distribution: the frozen generator g(z, y), its card and its splits."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from irob_bench.artifacts import read_npz, sha256_file
from irob_bench.datasets.card import DatasetCard
from irob_bench.datasets.frozen import sample_latents
from irob_bench.errors import IrobError
from irob_bench.generators.registry import EXTERNAL_WEIGHTS, build_architecture
from irob_bench.generators.transforms import apply_output_transform
from irob_bench.runtime import place


class ConditionalGenerator(nn.Module):
    """g(z, y) in [0, 1]: the network followed by the card's output transform (e.g. saturation)."""

    def __init__(self, network: nn.Module, output_transform: dict | None, straight_through: bool = False) -> None:
        super().__init__()
        self.network = network
        self.output_transform = dict(output_transform or {})
        self.straight_through = straight_through

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images g(z, y) in [0, 1]: the network's output through the card's output transform (s_p)."""
        return apply_output_transform(self.network(z, y), self.output_transform, self.straight_through)

    def for_attacks(self) -> ConditionalGenerator:
        """The generator the in-distribution attack differentiates: the same network and the same values, with a
        gradient it can follow where the transform's own is zero (p = inf) or NaN (p > 2 at a pixel of 1/2; see
        `saturate`). Never for Lipschitz constants, which must see the true map."""
        return ConditionalGenerator(self.network, self.output_transform, straight_through=True).train(self.training)


class BenchmarkDataset:
    """The Python face of a card: `.generator`, `.card`, `.latents()`, `.labels()`, `.images()`."""

    def __init__(self, card: DatasetCard, root: Path, network: nn.Module | None = None) -> None:
        self.card = card
        self.root = Path(root)
        self._network = network

    def __repr__(self) -> str:
        return f"BenchmarkDataset({self.card.name!r}, version={self.card.version!r})"

    @property
    def num_classes(self) -> int:
        """How many classes the card names."""
        return self.card.num_classes

    def weights_path(self) -> Path:
        """The generator's weights file beside the card (IrobError if the card names none)."""
        if self.card.generator.weights_file is None:
            raise IrobError(f"{self.card.name}: the card names no weights file")
        return (self.root / self.card.generator.weights_file).resolve()

    def load_network(self) -> nn.Module:
        """Build the architecture and load the hash-checked weights (weights_only=True) in float32.

        Architectures with external weights (e.g. pretrained BigGAN) find, hash-check and load their own.
        """
        spec = self.card.generator
        if spec.architecture in EXTERNAL_WEIGHTS:
            return EXTERNAL_WEIGHTS[spec.architecture].load(None, spec.weights_sha256, **spec.kwargs)
        network = build_architecture(spec.architecture, **spec.kwargs)
        if spec.weights_file is not None:
            path = self.weights_path()
            if not path.is_file():
                raise IrobError(f"{self.card.name}: generator weights missing: {path}")
            actual = sha256_file(path)
            if spec.weights_sha256 is not None and actual != spec.weights_sha256:
                raise IrobError(
                    f"{self.card.name}: generator weights hash mismatch for {path} "
                    f"(card {spec.weights_sha256[:12]}, file {actual[:12]}): the file is corrupted or replaced"
                )
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
            network.load_state_dict(state)
        return network

    @cached_property
    def generator(self) -> ConditionalGenerator:
        """The frozen generator: eval mode, no parameter gradients."""
        network = self._network if self._network is not None else self.load_network()
        gen = ConditionalGenerator(network, self.card.generator.output_transform).eval()
        gen.requires_grad_(False)
        return gen

    def _split(self, split: str):
        try:
            return self.card.splits[split]
        except KeyError:
            raise IrobError(f"{self.card.name}: unknown split {split!r} (have: {', '.join(self.card.splits)})") from None

    @cached_property
    def _stored_test(self) -> dict[str, np.ndarray]:
        spec = self._split("test")
        if spec.latents_file is None:
            raise IrobError(f"{self.card.name}: the card has no stored test latents")
        path = self.root / spec.latents_file
        if not path.is_file():
            raise IrobError(f"{self.card.name}: stored test latents missing: {path}")
        return read_npz(path)

    def regenerate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents, labels) of a split drawn afresh from its seed."""
        spec = self._split(split)
        return sample_latents(spec.seed, spec.size, self.card.latent_dim, self.card.priors)

    def latents(self, split: str = "test") -> torch.Tensor:
        """(N, d) float32 latents: stored for the test split, regenerated from the seed otherwise."""
        if split == "test":
            return torch.from_numpy(self._stored_test["latents"].copy())
        return self.regenerate(split)[0]

    def labels(self, split: str = "test") -> torch.Tensor:
        """(N,) int64 class labels of a split."""
        if split == "test":
            return torch.from_numpy(self._stored_test["labels"].copy())
        return self.regenerate(split)[1]

    @torch.no_grad()
    def network_output(self, latents: torch.Tensor, labels: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
        """The network's images before the card's output transform (s_p), in the card's fixed chunk size: what the
        cards that share a generator and latents (saturated-cifar's levels) have in common."""
        network = place(self.generator.network, device)
        step = self.card.generation_batch_size
        chunks = [
            network(place(latents[i : i + step], device), place(labels[i : i + step], device)).float().cpu()
            for i in range(0, len(latents), step)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, *self.card.image_shape)

    @torch.no_grad()
    def generate(
        self, latents: torch.Tensor, labels: torch.Tensor, device: str | torch.device = "cpu",
        network_output: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images g(z, y) as float32 in [0, 1]: the network's output (`network_output` if the caller has it) through
        the card's output transform, chunk by chunk as generated."""
        raw = self.network_output(latents, labels, device) if network_output is None else network_output
        step, transform = self.card.generation_batch_size, self.card.generator.output_transform or {}
        chunks = [apply_output_transform(raw[i : i + step], transform) for i in range(0, len(raw), step)]
        return torch.cat(chunks) if chunks else raw

    def images(
        self, split: str = "test", indices: torch.Tensor | np.ndarray | list[int] | None = None, device: str = "cpu"
    ) -> torch.Tensor:
        """(N, C, H, W) float32 images in [0, 1] of a split, or of the given indices into it."""
        z, y = self.latents(split), self.labels(split)
        if indices is not None:
            idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
            z, y = z[idx], y[idx]
        return self.generate(z, y, device=device)
