"""The plugin interface and `irob-bench validate`: good and bad submissions, one clear line each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from irob_bench.cli import main
from irob_bench.errors import IrobError
from irob_bench.plugin import load_submission

SUBMISSIONS = Path(__file__).parent / "submissions"


def run_validate(path: Path, capsys) -> tuple[int, str, str]:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_toy_submission_is_valid(capsys):
    code, out, err = run_validate(SUBMISSIONS / "toy.py", capsys)
    assert code == 0, err
    assert "toy-linear: valid" in out and "FAIL" not in out


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("no_factory.py", "factory: no_factory.py defines no load_model() function"),
        ("bad_metadata.py", "metadata: name: String should match pattern"),
        ("wrong_shape.py", "output shape: expected (16, 10) logits, got (16, 7)"),
        ("nan_logits.py", "finite logits: the model returned NaN or infinite logits"),
        ("nondeterministic.py", "determinism: two identical batches gave different logits"),
        ("batchnorm_train.py", "batch independence: a sample's logits depend on the rest of the batch"),
    ],
)
def test_bad_submission_fails_with_one_line(filename, expected, capsys):
    code, _, err = run_validate(SUBMISSIONS / filename, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err


def test_a_syntax_error_is_refused_while_parsing_and_by_the_library(capsys):
    """The CLI compiles (never runs) the file while parsing, before a sandbox starts; the library, which the sandbox
    runs, says the same. Control: the toy submission compiles and is valid (test_toy_submission_is_valid)."""
    with pytest.raises(SystemExit) as refused:
        main(["validate", str(SUBMISSIONS / "syntax_error.py")])
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and err == ("irob-bench validate: error: argument path: syntax error in "
                                               "syntax_error.py line 3: invalid syntax"), err
    with pytest.raises(IrobError, match=r"^import: syntax error in syntax_error.py line 3: invalid syntax$"):
        load_submission(SUBMISSIONS / "syntax_error.py")


def test_a_syntax_error_in_a_module_the_submission_imports_names_that_module(tmp_path):
    (tmp_path / "helper_mod_x.py").write_text("def broken(:\n    pass\n")
    (tmp_path / "sub.py").write_text("import helper_mod_x\n")
    with pytest.raises(IrobError, match=r"^import: syntax error in helper_mod_x.py line 1: "):
        with pytest.MonkeyPatch.context() as patch:
            patch.syspath_prepend(str(tmp_path))
            load_submission(tmp_path / "sub.py")


def test_a_file_that_cannot_be_read_or_is_too_large_is_refused_while_parsing(tmp_path, monkeypatch, capsys):
    """An unreadable file was a traceback and exit 1 (the gate's regression code; found by a review); a huge one would
    be compiled outside the sandbox's memory limit. Control: the toy compiles (test_toy_submission_is_valid)."""
    from irob_bench.syntax import MAX_SOURCE_BYTES

    big = tmp_path / "big.py"
    big.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(SystemExit) as refused:
        main(["validate", str(big)])
    assert refused.value.code == 2 and "big.py is larger than 10 MB" in capsys.readouterr().err
    unreadable = tmp_path / "unreadable.py"
    unreadable.write_text("x = 1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # root reads a chmod 000 file
    with pytest.raises(SystemExit) as refused:
        main(["validate", str(unreadable)])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and f"cannot read {unreadable}: Permission denied" in err


def test_compiler_warnings_neither_print_nor_refuse_a_valid_file(tmp_path):
    """`x is 1` makes compile() warn: it printed while arguments were parsed, and under -W error a valid submission
    was refused as a syntax error (found by a review). Control: a real syntax error is still one."""
    from irob_bench.syntax import syntax_error

    warns, broken = tmp_path / "warns.py", tmp_path / "broken.py"
    warns.write_text("x = 1\ny = x is 1\n")
    broken.write_text("y = (\n")
    code = ("import sys; from irob_bench.syntax import syntax_error; "
            "print(syntax_error(sys.argv[1]), syntax_error(sys.argv[2]) is not None)")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code, str(warns), str(broken)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["None", "True"] and done.stderr == "", done
    assert syntax_error(warns) is None


def test_a_syntax_error_the_submission_raises_itself_is_an_exception_at_its_line(tmp_path):
    """A SyntaxError from compile("(") run by the submission was reported as 'syntax error in <string> line 1' (found
    by a review): it is the submission's exception at its own line. Control: a file that does not compile is named
    (test_a_syntax_error_is_refused_while_parsing_and_by_the_library)."""
    (tmp_path / "sub.py").write_text("x = 1\ncompile('(', '<string>', 'exec')\n")
    with pytest.raises(IrobError, match=r"^import: sub.py raised SyntaxError at line 2: "):
        load_submission(tmp_path / "sub.py")


def test_the_library_names_a_missing_submission_file():
    """The CLI refuses a missing path while parsing (tests/test_cli.py); the library call says the same itself."""
    with pytest.raises(IrobError, match="import: submission file not found"):
        load_submission(SUBMISSIONS / "missing_file.py")


def test_weights_of_the_wrong_shape(tmp_path, capsys):
    shutil.copy(SUBMISSIONS / "wrong_weights.py", tmp_path / "wrong_weights.py")
    torch.save(nn.Linear(784, 5).state_dict(), tmp_path / "wrong_weights.pt")
    code, _, err = run_validate(tmp_path / "wrong_weights.py", capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "factory: load_model() raised RuntimeError: Error(s) in loading state_dict" in err


def test_missing_weights_file_is_named(tmp_path, capsys):
    shutil.copy(SUBMISSIONS / "wrong_weights.py", tmp_path / "wrong_weights.py")
    code, _, err = run_validate(tmp_path / "wrong_weights.py", capsys)
    assert code == 2 and "metadata: weights file missing" in err and "wrong_weights.pt" in err


def test_softmax_outputs_warn_but_pass(capsys):
    code, out, _ = run_validate(SUBMISSIONS / "softmax.py", capsys)
    assert code == 0
    assert "WARN  logits not probabilities: outputs look like probabilities" in out


def test_masked_gradients_warn(capsys):
    code, out, _ = run_validate(SUBMISSIONS / "masked_gradients.py", capsys)
    assert code == 0
    assert "WARN  input gradients: input gradients are all zero" in out


def test_submission_records_file_and_weights_hashes(tmp_path):
    shutil.copy(SUBMISSIONS / "wrong_weights.py", tmp_path / "wrong_weights.py")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).state_dict(), tmp_path / "wrong_weights.pt")
    sub = load_submission(tmp_path / "wrong_weights.py")
    assert set(sub.weights_sha256) == {"wrong_weights.pt"} and len(sub.file_sha256) == 64
    assert isinstance(sub.build("mnist"), nn.Module)


def test_weights_paths_must_stay_inside_the_submission_folder(tmp_path):
    (tmp_path / "escape.py").write_text(
        "METADATA = {'name': 'escape', 'authors': ['t'], 'datasets': ['mnist'], 'training': 'none', "
        "'weights': ['../../etc/passwd']}\n"
    )
    with pytest.raises(IrobError, match="must be relative to the submission file"):
        load_submission(tmp_path / "escape.py")


@pytest.mark.parametrize("field, text", [("authors", ["A. \x1b]8;;https://evil\x07Author"]),
                                         ("description", "benign \u202etxt.exe"), ("training", "pgd\x1b[2J")])
def test_metadata_with_terminal_escapes_or_bidi_overrides_is_refused(tmp_path, field, text):
    meta = {"name": "shown", "authors": ["t"], "datasets": ["mnist"], "training": "none", field: text}
    (tmp_path / "shown.py").write_text(f"METADATA = {meta!r}\n")
    with pytest.raises(IrobError, match=f"{field}.*control character U\\+(001B|202E)"):
        load_submission(tmp_path / "shown.py")


def test_metadata_in_any_script_with_tabs_and_newlines_is_accepted(tmp_path):  # control of the test above
    meta = {"name": "shown", "authors": ["Zoë Ŝ. 李"], "datasets": ["mnist"], "training": "none",
            "description": "two\n\tlines"}
    (tmp_path / "shown.py").write_text(f"METADATA = {meta!r}\n")
    assert load_submission(tmp_path / "shown.py").metadata.authors == ["Zoë Ŝ. 李"]


def test_a_dataset_the_submission_does_not_target(capsys):
    code = main(["validate", str(SUBMISSIONS / "toy.py"), "--dataset", "imagenet10"])
    assert code == 2
    assert "targets ['mnist'], not 'imagenet10'" in capsys.readouterr().err


def _unlisted_weights(tmp_path: Path) -> Path:
    """wrong_weights.py loading a correct-shape file it does not list in METADATA.weights (it lists its own)."""
    source = (SUBMISSIONS / "wrong_weights.py").read_text().replace('load_weights(__file__, "wrong_weights.pt")',
                                                                    'load_weights(__file__, "unlisted.pt")')  # fmt: skip
    path = tmp_path / "wrong_weights.py"
    path.write_text(source)
    for name in ("wrong_weights.pt", "unlisted.pt"):  # both of the right shape
        torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).state_dict(), tmp_path / name)
    return path


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_a_weights_file_the_metadata_does_not_list_is_refused(tmp_path, capsys, isolation):
    """The runs' identity hashes the listed weights files only, so a factory that loads another one (retrained, it
    would be scored under the old fingerprint) is refused in one line, in this process and in a worker. Control: the
    same file loading the listed one validates."""
    path = _unlisted_weights(tmp_path)
    code, _, err = run_validate_isolated(path, isolation, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "weights: 'unlisted.pt' is loaded but not listed in METADATA.weights" in err
    path.write_text((SUBMISSIONS / "wrong_weights.py").read_text())
    code, out, err = run_validate_isolated(path, isolation, capsys)
    assert code == 0 and "wrong-weights: valid" in out, err


def run_validate_isolated(path: Path, isolation: str, capsys) -> tuple[int, str, str]:
    code = main(["validate", str(path), "--isolation", isolation])
    out, err = capsys.readouterr()
    return code, out, err
