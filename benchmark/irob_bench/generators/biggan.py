"""The imagenet10 generator (docs/science.md §1): pretrained BigGAN-deep-128 restricted to 10 ImageNet classes, at 32x32.

Its weights are not shipped with the card: they are found through IROB_BENCH_BIGGAN_WEIGHTS (a folder holding
pytorch_model.bin + config.json), else in or via the download cache of pytorch-pretrained-biggan.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn import functional as F

from irob_bench.artifacts import sha256_file
from irob_bench.common import user_dir
from irob_bench.errors import IrobError
from irob_bench.generators.registry import ExternalWeights

if TYPE_CHECKING:  # pytorch_pretrained_biggan takes ~1 s to import: only the loading functions import it
    from pytorch_pretrained_biggan import BigGAN

ARCHITECTURE_ID = "biggan-deep-128-imagenet10-v1"
PRETRAINED_NAME = "biggan-deep-128"
WEIGHTS_ENV = "IROB_BENCH_BIGGAN_WEIGHTS"
WEIGHTS_NAME, CONFIG_NAME = "pytorch_model.bin", "config.json"  # the folder layout BigGAN.from_pretrained reads
# Label order of docs/science.md §1: airliner, jeep, goldfinch, tabby cat, hartebeest, Maltese dog, bullfrog, sorrel,
# pirate ship, pickup (the ImageNet classes that mirror CIFAR-10).
IMAGENET_CLASSES = (404, 609, 11, 281, 351, 153, 30, 339, 724, 717)
CLASS_NAMES = (
    "airliner",
    "jeep",
    "goldfinch",
    "tabby cat",
    "hartebeest",
    "Maltese dog",
    "bullfrog",
    "sorrel",
    "pirate ship",
    "pickup",
)
TRUNCATION = 1.0
Downsample = Literal["area", "nearest"]


class BigGANFiles(BaseModel):
    """The two files a BigGAN is loaded from."""

    model_config = ConfigDict(frozen=True)

    weights: Path
    config: Path


def cache_dir() -> Path:
    """Where downloaded BigGAN files are kept: the irob-bench cache (common.user_dir) / biggan."""
    return user_dir("cache", "biggan")


def pretrained_urls() -> tuple[str, str]:
    """The (weights, config) URLs pytorch-pretrained-biggan downloads biggan-deep-128 from."""
    from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

    return PRETRAINED_MODEL_ARCHIVE_MAP[PRETRAINED_NAME], PRETRAINED_CONFIG_ARCHIVE_MAP[PRETRAINED_NAME]


def _how_to_obtain() -> str:
    weights_url, config_url = pretrained_urls()
    return (
        f"download {weights_url} as {WEIGHTS_NAME} and {config_url} as {CONFIG_NAME} "
        f"into one folder and set {WEIGHTS_ENV}=<that folder>"
    )


def _folder_files(folder: Path, source: str) -> BigGANFiles:
    files = BigGANFiles(weights=folder / WEIGHTS_NAME, config=folder / CONFIG_NAME)
    missing = [p.name for p in (files.weights, files.config) if not p.is_file()]
    if missing:
        raise IrobError(f"BigGAN-deep-128 weights not found: {source} lacks {' and '.join(missing)}; {_how_to_obtain()}")
    return files


def _cached_or_fetched(url: str, folder: Path) -> Path:
    """A copy of `url` already in the cache (usable offline), else the package's own download into it."""
    from pytorch_pretrained_biggan.file_utils import cached_path, url_to_filename

    stem = url_to_filename(url)
    for candidate in sorted(folder.glob(f"{stem}*")):
        if candidate.suffix != ".json" and candidate.is_file():
            return candidate
    return Path(cached_path(url, cache_dir=str(folder)))


def _download(folder: Path) -> BigGANFiles:
    weights_url, config_url = pretrained_urls()
    try:
        weights = _cached_or_fetched(weights_url, folder)
        config = _cached_or_fetched(config_url, folder)
    except (OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or ["no detail"])[0].split(" (Caused by")[0][:200]
        raise IrobError(
            f"BigGAN-deep-128 weights not found: {WEIGHTS_ENV} is not set and the download into {folder} failed "
            f"({type(exc).__name__}: {reason}); {_how_to_obtain()}"
        ) from None
    return BigGANFiles(weights=weights, config=config)


def find_weights(source: str | Path | None = None) -> BigGANFiles:
    """Locate pytorch_model.bin + config.json: `source` folder, else $IROB_BENCH_BIGGAN_WEIGHTS, else download/cache.

    Raises one IrobError line naming the missing files and how to obtain them.
    """
    if source is not None:
        return _folder_files(Path(source).expanduser(), f"folder {source}")
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return _folder_files(Path(env).expanduser(), f"{WEIGHTS_ENV}={env}")
    return _download(cache_dir())


def weights_sha256(source: str | Path | None = None) -> str:
    """SHA-256 of the pytorch_model.bin that `find_weights(source)` resolves (what the card records)."""
    return sha256_file(find_weights(source).weights)


def read_biggan(files: BigGANFiles) -> BigGAN:
    """Build a BigGAN from its config.json and load pytorch_model.bin strictly (weights_only) in float32, eval mode."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    model = BigGAN(BigGANConfig.from_json_file(str(files.config)))
    state = torch.load(files.weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise IrobError(f"{files.weights} does not fit the BigGAN described by {files.config}: {detail}") from None
    return model.eval()


class ImageNet10BigGAN(nn.Module):
    """g(z, y): BigGAN(z, one-hot(ImageNet class of y), truncation 1), (x + 1) / 2 clamped, downsampled to 32x32."""

    def __init__(self, biggan: BigGAN, downsample: Downsample = "area", image_size: int = 32) -> None:
        super().__init__()
        if downsample not in ("area", "nearest"):
            raise IrobError(f"imagenet10: downsample must be 'area' or 'nearest', got {downsample!r}")
        self.biggan = biggan.eval()
        self.downsample = downsample
        self.image_size = image_size
        self.num_imagenet_classes = biggan.config.num_classes
        self.register_buffer("imagenet_classes", torch.tensor(IMAGENET_CLASSES, dtype=torch.int64), persistent=False)

    def class_vectors(self, y: torch.Tensor) -> torch.Tensor:
        """One-hot ImageNet class vectors (N, 1000) for benchmark labels y in 0..9."""
        return F.one_hot(self.imagenet_classes[y.long()], self.num_imagenet_classes).float()

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of the module's size from latents z and ImageNet10 labels y (truncated BigGAN, then resized)."""
        x = self.biggan(z, self.class_vectors(y).to(z.dtype), TRUNCATION)
        x = ((x + 1) / 2).clamp(0, 1)
        return F.interpolate(x, size=(self.image_size, self.image_size), mode=self.downsample)


def load_imagenet10_biggan(
    source: str | Path | None = None,
    expected_sha256: str | None = None,
    downsample: Downsample = "area",
    image_size: int = 32,
) -> ImageNet10BigGAN:
    """Find the BigGAN-deep-128 files, check the weights' SHA-256 against the card (when known), and wrap them."""
    files = find_weights(source)
    if expected_sha256 is not None:
        actual = sha256_file(files.weights)
        if actual != expected_sha256:
            raise IrobError(
                f"imagenet10: BigGAN weights hash mismatch for {files.weights} (card {expected_sha256[:12]}, "
                f"file {actual[:12]}): not the biggan-deep-128 checkpoint the card was frozen with"
            )
    return ImageNet10BigGAN(read_biggan(files), downsample=downsample, image_size=image_size)


EXTERNAL_WEIGHTS = ExternalWeights(weights_sha256, load_imagenet10_biggan)
"""How the generator registry finds and loads this architecture's pretrained weights."""
