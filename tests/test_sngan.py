"""The SNGAN-style CIFAR generator's trainer: tiny models train, resume is exact, export loads, bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from irob_bench.cli import main
from irob_bench.generators.diffaugment import diff_augment
from irob_bench.generators.registry import build_architecture
from irob_bench.generators.sngan import ARCHITECTURE_ID
from irob_bench.generators.train_sngan import CHECKPOINT_FILE, SNGANConfig, train_sngan

TINY = SNGANConfig(batch_size=8, g_width=8, d_width=8, n_dis=2)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-image train and test set in the real CIFAR-10 .npz format (random pixels: only shapes matter here)."""
    folder = tmp_path_factory.mktemp("cifar10")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
        np.savez(folder / f"cifar10-{split}.npz", images=images, labels=np.arange(64, dtype=np.uint8) % 10)
    return folder


def run(cifar_dir: Path, folder: Path, iterations: int, config: SNGANConfig = TINY, **kwargs) -> list[dict]:
    """Train into `folder` with the probe off unless asked; return the JSON log lines."""
    lines: list[str] = []
    kwargs = {"probe_every": 0, "log_every": 1, "checkpoint_seconds": 0.0} | kwargs
    train_sngan(cifar_dir, folder, iterations, config=config, log=lines.append, **kwargs)
    return [json.loads(line) for line in lines]


def checkpoint_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint, flattened to dotted names (networks, optimiser states, RNG states)."""
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(f"{prefix}.{i}", item)
        elif isinstance(value, torch.Tensor):
            flat[prefix] = value

    walk("", torch.load(folder / CHECKPOINT_FILE, weights_only=True))
    return flat


def test_a_tiny_model_trains_two_iterations_and_probes(cifar_dir, tmp_path) -> None:
    log = run(cifar_dir, tmp_path / "ck", 2, probe_every=2)
    steps = [line for line in log if "iteration" in line]
    assert [line["iteration"] for line in steps] == [1, 2]
    assert all(np.isfinite(line["loss_d"]) and np.isfinite(line["loss_g"]) and line["it_per_s"] > 0 for line in steps)
    probes = [line for line in log if "probe" in line]
    assert [p["probe"] for p in probes] == [2] and 0 <= probes[0]["agreement"] <= 1 and probes[0]["frechet"] >= 0
    assert (tmp_path / "ck" / CHECKPOINT_FILE).is_file() and log[-1] == {"checkpoint": 2, "train_hours": log[-1]["train_hours"]}


def test_resume_continues_exactly_and_another_seed_is_the_control(cifar_dir, tmp_path) -> None:
    """6 iterations (12 D steps: past the 8-batch epoch) in one go == 2, then resumed to 6; seed 1 differs."""
    run(cifar_dir, tmp_path / "straight", 6)
    run(cifar_dir, tmp_path / "resumed", 2)
    log = run(cifar_dir, tmp_path / "resumed", 6, resume=True)
    assert log[0]["start"] == 2
    straight, resumed = checkpoint_tensors(tmp_path / "straight"), checkpoint_tensors(tmp_path / "resumed")
    assert straight.keys() == resumed.keys() and any(k.startswith(".opt_d.state") for k in straight)
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []
    run(cifar_dir, tmp_path / "seed1", 6, TINY.model_copy(update={"seed": 1}))
    other = checkpoint_tensors(tmp_path / "seed1")
    assert not torch.equal(other[".ema.fc.weight"], straight[".ema.fc.weight"])
    assert not torch.equal(other[".rng"], straight[".rng"])


def test_bf16_resumes_an_fp32_run_keeping_float32_state_and_fp32_is_the_control(cifar_dir, tmp_path) -> None:
    """bfloat16 autocast may take over on resume: recorded in the start line, repeatable, float32 weights; it
    computes something else than float32 does."""
    for name in ("a", "b", "fp32"):
        run(cifar_dir, tmp_path / name, 2)
    log = run(cifar_dir, tmp_path / "a", 4, resume=True, precision="bf16")
    run(cifar_dir, tmp_path / "b", 4, resume=True, precision="bf16")
    run(cifar_dir, tmp_path / "fp32", 4, resume=True)
    assert log[0]["precision"] == "bf16" and all(np.isfinite(line["loss_d"]) for line in log if "loss_d" in line)
    a, b, fp32 = (checkpoint_tensors(tmp_path / name) for name in ("a", "b", "fp32"))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert a[".gen.fc.weight"].dtype == torch.float32 and a[".opt_g.state.0.exp_avg"].dtype == torch.float32
    assert not torch.equal(a[".gen.fc.weight"], fp32[".gen.fc.weight"])


def test_a_checkpoint_is_never_overwritten_or_resumed_with_other_settings(cifar_dir, tmp_path) -> None:
    from irob_bench.errors import IrobError

    run(cifar_dir, tmp_path / "ck", 1)
    with pytest.raises(IrobError, match="pass --resume"):
        run(cifar_dir, tmp_path / "ck", 2)
    with pytest.raises(IrobError, match=r"n_dis \(2 in the checkpoint, 1 given\)"):
        run(cifar_dir, tmp_path / "ck", 2, TINY.model_copy(update={"n_dis": 1}), resume=True)
    assert run(cifar_dir, tmp_path / "ck", 2, resume=True)[-1]["checkpoint"] == 2  # the control


def test_a_warm_start_adds_the_class_head_and_changes_only_what_it_should(cifar_dir, tmp_path) -> None:
    """A checkpoint from before class_weight existed warm-starts a class-head run; the same warm start without the head
    equals resuming (exactly), so the head's loss is what changes G; any other changed setting is refused."""
    from irob_bench.errors import IrobError

    run(cifar_dir, tmp_path / "plain", 2)
    payload = torch.load(tmp_path / "plain" / CHECKPOINT_FILE, weights_only=True)
    del payload["config"]["class_weight"]  # as the checkpoints written before the option
    torch.save(payload, tmp_path / "plain" / CHECKPOINT_FILE)
    headed = TINY.model_copy(update={"class_weight": 1.0})
    log = run(cifar_dir, tmp_path / "headed", 4, headed, warm_start=tmp_path / "plain")
    assert log[0]["start"] == 2 and log[0]["warm_start"] == str(tmp_path / "plain")
    steps = [line for line in log if "iteration" in line]
    assert all(np.isfinite(line["class_real"]) and np.isfinite(line["class_fake"]) for line in steps)
    run(cifar_dir, tmp_path / "same", 4, warm_start=tmp_path / "plain")
    run(cifar_dir, tmp_path / "plain", 4, resume=True)
    plain, same, head = (checkpoint_tensors(tmp_path / name) for name in ("plain", "same", "headed"))
    assert [k for k in plain if not torch.equal(plain[k], same[k])] == [] and not any("classifier" in k for k in plain)
    assert ".classifier.weight" in head and not torch.equal(head[".gen.fc.weight"], plain[".gen.fc.weight"])
    assert run(cifar_dir, tmp_path / "headed", 5, headed, resume=True)[0]["start"] == 4  # resumes with its head
    with pytest.raises(IrobError, match=r"only class_weight.*n_dis \(2 in .*, 1 given\)"):
        run(cifar_dir, tmp_path / "other", 4, headed.model_copy(update={"n_dis": 1}), warm_start=tmp_path / "plain")
    with pytest.raises(IrobError, match="no checkpoint to warm-start from"):
        run(cifar_dir, tmp_path / "other", 4, headed, warm_start=tmp_path / "missing")


def test_cli_trains_and_exports_a_loadable_generator_in_the_unit_range(cifar_dir, tmp_path, capsys) -> None:
    args = ["generators", "train-sngan", "--data", str(cifar_dir), "--checkpoint-dir", str(tmp_path / "ck"),
            "--iterations", "1", "--batch-size", "8", "--g-width", "8", "--d-width", "8", "--probe-every", "0"]
    assert main([*args, "--export", str(tmp_path / "g")]) == 0
    assert "wrote" in capsys.readouterr().out
    record = json.loads((tmp_path / "g" / "export.json").read_text())
    assert record["architecture"] == ARCHITECTURE_ID and record["iteration"] == 1
    gen = build_architecture(ARCHITECTURE_ID, **record["kwargs"])
    gen.load_state_dict(torch.load(tmp_path / "g" / "generator.pt", weights_only=True))
    x = gen.eval()(torch.randn(5, 128), torch.arange(5))
    assert x.shape == (5, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert main(["generators", "export-sngan", "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "h")]) == 0
    assert (tmp_path / "h" / "generator.pt").read_bytes() == (tmp_path / "g" / "generator.pt").read_bytes()


def test_a_missing_data_folder_is_one_line_and_creates_nothing(tmp_path, capsys) -> None:
    args = ["generators", "train-sngan", "--data", str(tmp_path / "missing"), "--checkpoint-dir", str(tmp_path / "ck"),
            "--iterations", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CIFAR-10 data directory not found" in err
    assert not (tmp_path / "ck").exists()


def test_diff_augment_is_seeded_differentiable_and_cuts_out_a_square() -> None:
    x = torch.rand(16, 3, 32, 32, requires_grad=True)
    first = diff_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(first, diff_augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, diff_augment(x, torch.Generator().manual_seed(1)))
    grey = (first == 0.5).all(dim=1).sum(dim=(1, 2))
    assert (grey >= 8 * 8).all(), "every image loses at least the border-clipped quarter of its 16x16 cut-out"
    first.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and (x.grad != 0).any()
