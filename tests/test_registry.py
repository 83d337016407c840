"""The shared helpers: one registry pattern (lazy entries, glob listing, one error form), the eps tolerance, the indices
hash, one rule for user folders, scoped deterministic mode, and atomic writes that leave the umask alone."""

from __future__ import annotations

import os
import shutil
import sys
import types

import numpy as np
import pytest
import torch

from irob_bench.common import EPS_TOLERANCE, FrozenModel, indices_sha256, same_eps, user_dir
from irob_bench.datasets.frozen import tensor_sha256
from irob_bench.errors import IrobError
from irob_bench.registry import Registry


def test_a_registry_lists_with_a_glob_and_names_the_available_entries_when_asked_for_an_unknown_one():
    reg: Registry[int] = Registry("thing")
    for name, value in [("alpha", 1), ("beta", 2), ("alpine", 3)]:
        reg.add(name, value)
    assert reg.list() == ["alpha", "beta", "alpine"] and reg.list("al*") == ["alpha", "alpine"] and reg.list("z*") == []
    assert reg.get("beta") == 2 and "beta" in reg and list(reg) == ["alpha", "beta", "alpine"] and len(reg) == 3
    with pytest.raises(IrobError, match=r"^unknown thing 'gamma' \(available: alpha, beta, alpine\)$"):
        reg.get("gamma")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("beta", 4)


def test_a_lazy_entry_is_imported_on_first_use_only(monkeypatch):
    module = types.ModuleType("irob_lazy_probe")
    module.VALUE = 42  # type: ignore[attr-defined]
    reg: Registry[int] = Registry("probe")
    reg.add_lazy("answer", "irob_lazy_probe:VALUE")
    assert reg.list() == ["answer"], "listing imports nothing"
    with pytest.raises(ModuleNotFoundError):
        reg.get("answer")  # control: not importable yet, so get() really imports
    monkeypatch.setitem(sys.modules, "irob_lazy_probe", module)
    assert reg.get("answer") == 42


def test_the_project_registries_share_the_error_form():
    from irob_bench.attacks.presets import PRESETS
    from irob_bench.commands.evaluate import ATTACK_PRESETS
    from irob_bench.commands.generators import CHECKER_ARCHITECTURES as CLI_CHECKERS
    from irob_bench.commands.train import METHODS as CLI_METHODS
    from irob_bench.datasets.drafts import DRAFTS
    from irob_bench.generators import acgan, biggan, cifar, sngan
    from irob_bench.generators.quality import CHECKER_ARCHITECTURES
    from irob_bench.generators.registry import ARCHITECTURES, EXTERNAL_WEIGHTS, build_architecture
    from irob_bench.generators.train import RECIPES
    from irob_bench.lipschitz.settings import ESTIMATORS
    from irob_bench.reference.baselines import METHODS

    assert ARCHITECTURES.list() == [acgan.ARCHITECTURE_ID, cifar.ARCHITECTURE_ID, sngan.ARCHITECTURE_ID]
    assert EXTERNAL_WEIGHTS.list() == [biggan.ARCHITECTURE_ID]
    assert EXTERNAL_WEIGHTS.get(biggan.ARCHITECTURE_ID).load is biggan.load_imagenet10_biggan
    assert tuple(METHODS.list()) == CLI_METHODS and tuple(PRESETS.list()) == ATTACK_PRESETS
    assert tuple(CHECKER_ARCHITECTURES.list()) == CLI_CHECKERS
    assert DRAFTS.list("saturated-cifar-*") == [f"saturated-cifar-p{p}" for p in ("2", "4", "8", "16", "64", "inf")]
    for registry, kind in [(ARCHITECTURES, "generator architecture"), (DRAFTS, "dataset draft"),
                           (METHODS, "training method"), (PRESETS, "attack preset"), (ESTIMATORS, "Lipschitz estimator"),
                           (RECIPES, "generator trainer")]:
        with pytest.raises(IrobError, match=rf"^unknown {kind} 'nope' \(available: {', '.join(registry.list())}\)$"):
            registry.get("nope")
    with pytest.raises(IrobError, match="unknown generator architecture 'nope'"):
        build_architecture("nope")


def test_same_eps_and_the_indices_hash():
    assert same_eps(1.0, 1.0 + EPS_TOLERANCE / 2) and not same_eps(1.0, 1.0 + 2 * EPS_TOLERANCE)
    indices = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    assert indices_sha256(indices) == tensor_sha256(torch.from_numpy(indices)), "the hash results have always recorded"
    assert indices_sha256(indices.astype(np.int32)) == indices_sha256(indices)
    assert indices_sha256(indices[::-1]) != indices_sha256(indices)


def test_frozen_model_refuses_changes_and_unknown_fields():
    class Point(FrozenModel):
        x: int

    p = Point(x=1)
    with pytest.raises(Exception):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(Exception):
        Point(x=1, y=2)  # type: ignore[call-arg]


def test_user_dir_has_one_rule(monkeypatch, tmp_path):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name in ("IROB_BENCH_CACHE", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert user_dir("cache", "mnist") == home / ".cache" / "irob-bench" / "mnist"
    assert user_dir("data", "leaderboard.db") == home / ".local" / "share" / "irob-bench" / "leaderboard.db"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    monkeypatch.setenv("XDG_DATA_HOME", "")  # empty counts as unset
    assert user_dir("cache") == tmp_path / "xc" / "irob-bench"
    assert user_dir("data") == home / ".local" / "share" / "irob-bench"
    monkeypatch.setenv("IROB_BENCH_CACHE", str(tmp_path / "mine"))
    assert user_dir("cache", "biggan") == tmp_path / "mine" / "biggan"


def test_deterministic_mode_is_scoped_to_its_block():
    from irob_bench.runtime import deterministic

    def mode() -> tuple[bool, bool, bool]:
        return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.utils.deterministic.fill_uninitialized_memory)  # fmt: skip

    before = mode()
    assert before[2]  # torch's default, which the block turns off (the NaN fill costs 12% of an attack step)
    with deterministic():
        assert mode() == (True, True, False)
    assert mode() == before
    with pytest.raises(RuntimeError), deterministic():
        raise RuntimeError("restored on errors too")
    assert mode() == before


def _draws() -> tuple[float, float, float]:
    import random

    import numpy as np

    return random.random(), float(np.random.rand()), torch.rand(1).item()


def _reseed(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def test_random_state_kept_blocks_leave_the_callers_random_streams_where_they_were():
    """After a `random_state_kept()` block (also after an error in it, and as a decorator) the caller's streams continue
    as if the block had not run. Control: reseeding without it moves them."""
    from irob_bench.runtime import random_state_kept, seed_everything

    _reseed(7)
    expected = _draws()
    _reseed(7)
    with random_state_kept():
        seed_everything(0)
        _draws()
    assert _draws() == expected
    _reseed(7)
    with pytest.raises(RuntimeError), random_state_kept():
        seed_everything(0)
        raise RuntimeError("restored on errors too")
    assert _draws() == expected
    _reseed(7)
    random_state_kept()(seed_everything)(0)
    assert _draws() == expected
    _reseed(7)
    seed_everything(0)
    assert _draws() != expected  # control


def test_atomic_writes_get_the_umask_permissions_without_touching_the_umask(tmp_path, monkeypatch):
    from irob_bench import artifacts

    calls = []
    monkeypatch.setattr(os, "umask", lambda *a: calls.append(a) or 0)
    artifacts.atomic_write_text(tmp_path / "a.txt", "x")
    assert calls == [], "atomic writes never call os.umask"
    monkeypatch.undo()
    previous = os.umask(0o027)
    try:
        artifacts.atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o640


def test_the_code_hash_follows_every_byte_and_name_of_the_package_and_nothing_else(tmp_path):
    """code_sha256 identifies the code a result was made by: equal trees hash equal wherever they are; a changed byte,
    a renamed or an added module changes it; files other than .py (caches, data) do not."""
    from irob_bench.artifacts import PACKAGE, code_sha256

    tree = tmp_path / "a"
    (tree / "attacks").mkdir(parents=True)
    (tree / "__init__.py").write_text("x = 1\n")
    (tree / "attacks" / "apgd.py").write_text("steps = 100\n")
    base = code_sha256(tree)
    copy = tmp_path / "b"
    shutil.copytree(tree, copy)
    assert code_sha256(copy) == base
    (copy / "notes.txt").write_text("not code")
    assert code_sha256.__wrapped__(copy) == base
    (copy / "attacks" / "apgd.py").write_text("steps = 10\n")
    assert code_sha256.__wrapped__(copy) != base  # control: one byte
    (copy / "attacks" / "apgd.py").write_text("steps = 100\n")
    assert code_sha256.__wrapped__(copy) == base
    (copy / "attacks" / "apgd.py").rename(copy / "attacks" / "pgd.py")
    assert code_sha256.__wrapped__(copy) != base  # control: a name
    assert len(code_sha256()) == 64 and code_sha256() == code_sha256(PACKAGE)


def test_the_package_metadata_and_the_recorded_version_agree():
    """Results record irob_bench.__version__ and pip reads pyproject.toml: the two must agree, and the changelog must
    say what the version changed."""
    import re
    from pathlib import Path

    import irob_bench

    root = Path(__file__).resolve().parents[1]
    [declared] = re.findall(r'^version = "([^"]+)"$', (root / "pyproject.toml").read_text(), flags=re.M)  # 3.10: no tomllib
    assert declared == irob_bench.__version__
    assert f"## {declared} (" in (root / "CHANGELOG.md").read_text()
