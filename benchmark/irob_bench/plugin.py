"""The submission plugin interface: one Python file with METADATA and a `load_model()` factory.

See docs/submitting.md. A submission file defines

    METADATA = SubmissionMetadata(name=..., authors=[...], datasets=["mnist"], training=..., weights=["model.pt"])

    def load_model() -> torch.nn.Module:          # or load_model(dataset: str)
        model = MyNet()
        model.load_state_dict(load_weights(__file__, "model.pt"))
        return model

The model takes float32 NCHW images in [0, 1] and returns (N, K) logits.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import BaseModel, Field, ValidationError, field_validator

from irob_bench.artifacts import sha256_file
from irob_bench.common import FrozenModel, field_error
from irob_bench.errors import IrobError
from irob_bench.syntax import describe

if TYPE_CHECKING:  # torch loads when a model is built, not when a result's metadata is read (the leaderboard's 4 s)
    import torch
    from torch import nn

FACTORY_NAME = "load_model"


# Length limits of the free-text metadata (a leaderboard row, not a document: a 50 MB description is refused).
SHORT_TEXT = 200
LONG_TEXT = 4000
MAX_ITEMS = 50

ShortText = Annotated[str, Field(min_length=1, max_length=SHORT_TEXT)]


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
"""A leaderboard name: letters, digits, '.', '_' and '-', at most 80, not starting with punctuation."""

# Characters metadata may not hold: C0/C1 controls (terminal escape sequences) other than tab and newline, and the
# bidirectional overrides that make shown text differ from stored text. Metadata is printed and put on pages.
UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class SubmissionMetadata(FrozenModel):
    """Who made the model, which datasets it targets, how it was trained; every field has a length limit."""

    name: str = Field(pattern=NAME_PATTERN, description="unique leaderboard name")
    authors: list[ShortText] = Field(min_length=1, max_length=MAX_ITEMS)
    datasets: list[ShortText] = Field(min_length=1, max_length=MAX_ITEMS, description="benchmark datasets it targets, e.g. ['mnist']")
    training: str = Field(min_length=1, max_length=SHORT_TEXT, description="training method, e.g. 'standard', 'pgd-l2 eps=3', 'trades'")
    description: str = Field("", max_length=LONG_TEXT)
    paper_url: str | None = Field(None, max_length=SHORT_TEXT)
    bibtex: str | None = Field(None, max_length=LONG_TEXT, description="BibTeX entry of the paper, shown on the run's page")
    randomized: bool = Field(False, description="True if the forward pass is stochastic (skips the determinism check)")
    weights: list[ShortText] = Field(default_factory=list, max_length=MAX_ITEMS, description="weights files, relative to the submission file")

    @field_validator("authors", "datasets", "training", "description", "paper_url", "bibtex", "weights")
    @classmethod
    def _showable(cls, value: str | list[str] | None) -> str | list[str] | None:
        for text in value if isinstance(value, list) else [value or ""]:
            found = UNSHOWABLE.search(text)
            if found:
                raise ValueError(f"holds the control character U+{ord(found.group()):04X}; metadata is shown in "
                                 "terminals and web pages, so it must be plain text")
        return value

    @field_validator("paper_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("paper_url must start with http:// or https://")
        return value

    @classmethod
    def checked(cls, raw: object) -> SubmissionMetadata:
        """METADATA as a submission defines it (a SubmissionMetadata or a dict), validated; one IrobError line if not."""
        try:
            return cls.model_validate(raw.model_dump() if isinstance(raw, BaseModel) else raw)
        except ValidationError as exc:
            raise IrobError(f"metadata: {field_error(exc)}") from None

    @field_validator("weights")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for item in value:
            if Path(item).is_absolute() or ".." in Path(item).parts:
                raise ValueError(f"weights path {item!r} must be relative to the submission file, inside its folder")
        return value


# The weights files the submission being built declares (resolved), while its factory runs (`Submission.build`).
_DECLARED_WEIGHTS: ContextVar[frozenset[Path] | None] = ContextVar("declared_weights", default=None)


def load_weights(anchor: str | Path, relative: str) -> dict[str, torch.Tensor]:
    """Load a state_dict stored beside the submission file (`anchor` is usually __file__), weights_only. Inside a
    factory that irob-bench builds, only files listed in METADATA.weights load: the runs' identity hashes those, so a
    retrained unlisted file would be scored under the old fingerprint (and `evaluate` would answer with the old row)."""
    path = Path(anchor).resolve().parent / relative
    declared = _DECLARED_WEIGHTS.get()
    if declared is not None and path.resolve() not in declared:
        raise IrobError(f"weights: {relative!r} is loaded but not listed in METADATA.weights; list it, so that its "
                        "SHA-256 identifies the runs it makes")  # fmt: skip
    if not path.is_file():
        raise IrobError(f"weights file missing: {path}")
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def weights_hashes(path: Path, metadata: SubmissionMetadata) -> dict[str, str]:
    """SHA-256 of each weights file the metadata declares, beside the submission file at `path`."""
    hashes = {}
    for rel in metadata.weights:
        weight_path = path.resolve().parent / rel
        if not weight_path.is_file():
            raise IrobError(f"metadata: weights file missing: {weight_path}")
        hashes[rel] = sha256_file(weight_path)
    return hashes


class Opened(Protocol):
    """A submission ready to score: imported in this process (Submission) or in an isolated worker
    (isolation.remote.RemoteSubmission). The hashes are always computed by the scoring process."""

    path: Path
    metadata: SubmissionMetadata
    file_sha256: str
    weights_sha256: dict[str, str]

    def build(self, dataset: str) -> nn.Module:
        """The model for `dataset`, in eval mode."""

    def seed(self, seed: int) -> None:
        """Seed the random number generators the model draws from."""

    def certificate_layers(self, model: nn.Module) -> Callable[[], nn.Module] | None:
        """How to get the network the benchmark's certificate bounds, when it is not `model` itself."""


@dataclass
class Submission:
    """A submission file that imported and passed the metadata check; `build()` calls its factory."""

    path: Path
    metadata: SubmissionMetadata
    file_sha256: str
    weights_sha256: dict[str, str]
    module: object = field(repr=False)

    def build(self, dataset: str) -> nn.Module:
        """Call the factory and return the model in eval mode (we set it ourselves)."""
        factory = getattr(self.module, FACTORY_NAME, None)
        if not callable(factory):
            raise IrobError(f"factory: {self.path.name} defines no {FACTORY_NAME}() function")
        wants_dataset = len(inspect.signature(factory).parameters) > 0
        token = _DECLARED_WEIGHTS.set(frozenset((self.path.parent / w).resolve() for w in self.metadata.weights))
        try:
            model = factory(dataset) if wants_dataset else factory()
        except IrobError:
            raise
        except Exception as exc:  # the factory is user code: report its failure in one line
            raise IrobError(f"factory: {FACTORY_NAME}() raised {type(exc).__name__}: {_first_line(exc)}") from None
        finally:
            _DECLARED_WEIGHTS.reset(token)
        from torch import nn

        if not isinstance(model, nn.Module):
            raise IrobError(f"factory: {FACTORY_NAME}() returned {type(model).__name__}, not a torch.nn.Module")
        return model.eval()

    def seed(self, seed: int) -> None:
        """Nothing to do: the model runs in this process, which the evaluation has seeded."""

    def certificate_layers(self, model: nn.Module) -> None:
        """None: the model is here, and the certificate reads its layers directly."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else repr(exc)


def _user_line(exc: BaseException, path: Path) -> int | None:
    """The line of the submission file where an exception raised at import came from (its last frame there)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return frames[-1].lineno if frames else None


def submission_file(path: str | Path) -> Path:
    """`path` resolved, if it names a .py file (checked before anything imports it); else one IrobError line."""
    path = Path(path)
    if path.is_dir():
        raise IrobError(f"import: {path} is a directory; give the submission's .py file")
    if not path.is_file():
        raise IrobError(f"import: submission file not found: {path}")
    if path.suffix != ".py":
        raise IrobError(f"import: submission must be a .py file: {path}")
    return path.resolve()


def load_submission(path: str | Path) -> Submission:
    """Import a submission file and validate its METADATA; every failure is one IrobError line."""
    path = submission_file(path)
    module_name = f"irob_bench_submission_{sha256_file(path)[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ValidationError as exc:  # METADATA = SubmissionMetadata(...) with a bad field fails at import
        raise IrobError(f"metadata: {field_error(exc)} ({path.name} line {_user_line(exc, path)})") from None
    except Exception as exc:
        if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).is_file():  # a file that does not
            raise IrobError(f"import: {describe(exc)}") from None  # compile, not compile("...") run by the submission
        raise IrobError(
            f"import: {path.name} raised {type(exc).__name__} at line {_user_line(exc, path)}: {_first_line(exc)}"
        ) from None
    raw = getattr(module, "METADATA", None)
    if raw is None:
        raise IrobError(f"metadata: {path.name} defines no METADATA")
    metadata = SubmissionMetadata.checked(raw)
    weights = weights_hashes(path, metadata)
    sys.modules.pop(module_name, None)
    return Submission(path=path.resolve(), metadata=metadata, file_sha256=sha256_file(path), weights_sha256=weights, module=module)
