"""Freezing a dataset (latents + hashes into its card), building split caches, and verifying every hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from pydantic import BaseModel

from irob_bench.artifacts import atomic_path, atomic_write_text, sha256_file, write_npz
from irob_bench.common import user_dir
from irob_bench.datasets.card import DatasetCard, SplitSpec
from irob_bench.datasets.distribution import BenchmarkDataset
from irob_bench.datasets.frozen import image_signature, sample_latents, tensor_sha256
from irob_bench.errors import IrobError
from irob_bench.generators.registry import EXTERNAL_WEIGHTS

LATENTS_FILE = "test_latents.npz"


def default_cache_dir() -> Path:
    """Where `datasets build` writes unless told otherwise: the irob-bench cache (common.user_dir) / datasets."""
    return user_dir("cache", "datasets")


def freeze(draft: DatasetCard, root: str | Path, weights: str | Path | None = None) -> DatasetCard:
    """Write root/card.json for `draft`: copy the weights in, store seeded test latents, fill every hash.

    For an architecture with external weights, `weights` is where to find them (None: its own default search);
    they are hashed into the card but not copied.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    spec, network = draft.generator, None
    if spec.architecture in EXTERNAL_WEIGHTS:
        external = EXTERNAL_WEIGHTS[spec.architecture]
        spec = spec.model_copy(update={"weights_sha256": external.sha256(weights)})
        network = external.load(weights, spec.weights_sha256, **spec.kwargs)
    elif weights is not None:
        relative = spec.weights_file or "generator.pt"  # may point into a sibling folder shared by variants
        target = root / relative
        if Path(weights).resolve() != target.resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(weights, tmp)
        spec = spec.model_copy(update={"weights_file": relative, "weights_sha256": sha256_file(target)})
    card = store_test_latents(draft.model_copy(update={"generator": spec}), root)
    data = BenchmarkDataset(card, root, network)
    images = data.generate(data.latents(), data.labels())
    test = card.splits["test"].model_copy(update={"images_sha256": tensor_sha256(images),
                                                  "images_signature": image_signature(images)})
    card = card.model_copy(update={"splits": {**card.splits, "test": test}})
    write_card(card, root)
    return card


def store_test_latents(draft: DatasetCard, root: str | Path) -> DatasetCard:
    """Write the seeded test latents into root; returns the draft with their file and hashes (no card written)."""
    test = draft.splits["test"]
    relative = test.latents_file or LATENTS_FILE  # may point into a sibling folder shared by variants
    latents, labels = sample_latents(test.seed, test.size, draft.latent_dim, draft.priors)
    write_npz(Path(root) / relative, {"latents": latents.numpy(), "labels": labels.numpy()})
    test = test.model_copy(
        update={"latents_file": relative, "latents_sha256": tensor_sha256(latents), "labels_sha256": tensor_sha256(labels)}
    )
    return draft.model_copy(update={"splits": {**draft.splits, "test": test}})


def freeze_latents(draft: DatasetCard, root: str | Path, pending: str) -> DatasetCard:
    """A card for a generator that cannot run here: stored test latents and their hashes, image/weights hashes null.

    `pending` (kept in the card's notes) says what is missing and how to complete the card; `freeze` drops it.
    """
    draft = draft.model_copy(update={"notes": {**draft.notes, "pending": pending}})
    card = store_test_latents(draft, Path(root))
    write_card(card, root)
    return card


def write_card(card: DatasetCard, root: str | Path) -> None:
    """Validate and write a card atomically."""
    DatasetCard.model_validate(card.model_dump())
    atomic_write_text(Path(root) / "card.json", card.model_dump_json(indent=2) + "\n")


def build_split(dataset: BenchmarkDataset, split: str, out_dir: str | Path | None = None) -> Path:
    """Write the split's images, labels and latents to <out>/<name>-<split>.npz (byte-reproducible)."""
    out = Path(out_dir) if out_dir is not None else default_cache_dir()
    latents, labels = dataset.latents(split), dataset.labels(split)
    images = dataset.generate(latents, labels)
    path = out / f"{dataset.card.name}-{split}.npz"
    write_npz(path, {"images": images.numpy(), "labels": labels.numpy(), "latents": latents.numpy()})
    return path


class Check(BaseModel):
    """One verification: what was checked, whether it held, and what differs when it did not."""

    name: str
    ok: bool
    detail: str = ""


def verify(dataset: BenchmarkDataset, shared: dict | None = None) -> list[Check]:
    """Regenerate the frozen test split from scratch and compare every hash the card records.

    `shared`: a dict the caller keeps across calls, so that cards with the same network, latents and chunk size
    (saturated-cifar's levels, which differ only by s_p) run the network once; a card uses it only after its own
    weights and latents have checked out, so its images are still its own generator's on its own latents.
    """
    card, checks = dataset.card, []
    weights = _weights_check(dataset)
    if weights is not None:
        checks.append(weights)
        if not weights.ok:
            return checks
    test = card.splits["test"]
    regenerated_z, regenerated_y = sample_latents(test.seed, test.size, card.latent_dim, card.priors)
    stored_z, stored_y = dataset.latents("test"), dataset.labels("test")
    checks.append(Check(name="stored latents = seed", ok=torch.equal(stored_z, regenerated_z) and torch.equal(stored_y, regenerated_y), detail=f"seed {test.seed}"))
    for name, tensor, expected in (
        ("test latents hash", stored_z, test.latents_sha256),
        ("test labels hash", stored_y, test.labels_sha256),
    ):
        actual = tensor_sha256(tensor)
        checks.append(Check(name=name, ok=actual == expected, detail=f"card {expected} vs {actual}"))
    raw = shared_network_output(dataset, shared) if shared is not None and all(c.ok for c in checks) else None
    images = dataset.generate(stored_z, stored_y, network_output=raw)
    in_range = bool(images.min() >= 0 and images.max() <= 1)
    checks.append(images_check(images, test))
    checks.append(Check(name="test images in [0, 1]", ok=in_range, detail=f"range [{images.min():.4f}, {images.max():.4f}]"))
    return checks


def shared_network_output(dataset: BenchmarkDataset, shared: dict) -> torch.Tensor:
    """The network's output on the stored test latents, from `shared` if a card with the same network, latents and
    chunk size (_network_key) put it there, else computed and put there."""
    key = _network_key(dataset.card)
    if key not in shared:
        shared[key] = dataset.network_output(dataset.latents("test"), dataset.labels("test"))
    return shared[key]


def _network_key(card: DatasetCard) -> tuple:
    """What cards must have in common to share a network output in `verify`: the generator but for its output
    transform, the test latents and labels, and the chunk size they are generated in."""
    test = card.splits["test"]
    generator = card.generator.model_copy(update={"output_transform": None})
    return generator.model_dump_json(), test.latents_sha256, test.labels_sha256, card.generation_batch_size


def images_check(images: torch.Tensor, test: SplitSpec) -> Check:
    """The regenerated test images against the card: their signature within the card's tolerance (exact bytes differ
    between CPUs and builds, so they only decide where a card has no signature)."""
    actual = tensor_sha256(images)
    same_bytes = actual == test.images_sha256
    if test.images_signature is None:
        return Check(name="test images hash", ok=same_bytes, detail=f"card {test.images_sha256} vs {actual}")
    deviation = max(abs(a - b) for a, b in zip(image_signature(images), test.images_signature))
    bytes_note = "bytes identical" if same_bytes else "bytes differ, as float results do between CPUs and builds"
    return Check(name="test images", ok=deviation <= test.images_tolerance,
                 detail=f"signature deviation {deviation:.2e} (tolerance {test.images_tolerance:g}); {bytes_note}")


def _weights_check(dataset: BenchmarkDataset) -> Check | None:
    """The generator weights' hash against the card: the card folder's file, or the external weights it finds."""
    spec = dataset.card.generator
    if spec.architecture in EXTERNAL_WEIGHTS:
        name, actual = spec.architecture, EXTERNAL_WEIGHTS[spec.architecture].sha256(None)  # one-line IrobError if absent
    elif spec.weights_file is not None:
        path = dataset.weights_path()
        name, actual = path.name, sha256_file(path) if path.is_file() else "missing"
    else:
        return None
    recorded = spec.weights_sha256 or "not recorded (freeze the card first)"
    return Check(name="generator weights", ok=actual == spec.weights_sha256, detail=f"{name}: card {recorded} vs file {actual}")


def require_verified(dataset: BenchmarkDataset) -> list[Check]:
    """verify(), raising one IrobError that names every check that failed."""
    checks = verify(dataset)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise IrobError(f"{dataset.card.name}: verify failed: " + "; ".join(f"{c.name} ({c.detail})" for c in failed))
    return checks
