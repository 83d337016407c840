"""Validation that matches evaluation: batch independence at the evaluation batch size, an untouched input, float32
logits, bounded metadata, and one-line messages for a folder and for a bad METADATA field; each with a control."""

from __future__ import annotations

from pathlib import Path

import pytest

from irob_bench.cli import main
from irob_bench.leaderboard.store import Store

TEMPLATE = '''
import torch
from torch import nn

from irob_bench.plugin import SubmissionMetadata

METADATA = SubmissionMetadata(
    name="generated", authors=["tests"], datasets=["mnist"], training="none", description={description}
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
{forward}


def load_model():
    return Net()
'''

HONEST = "        return self.body(x)"
FORWARDS = {
    # logits move only when a batch holds more than 16 examples: passes a 16-vs-2x8 check, not one at 250
    "batch-size-cheat": "        return self.body(x) + (len(x) > 16) * 0.5 * torch.arange(10.0)",
    "writes-input-data": "        x.data.mul_(0)\n        return self.body(x)",
    "writes-input": "        x.mul_(0)\n        return self.body(x)",
    "float64": "        return self.body(x).double()",
    "float16": "        return self.body(x).half()",
    "int64": "        return self.body(x).round().long()",
}
MESSAGES = {
    "batch-size-cheat": "batch independence: a sample's logits depend on the rest of the batch: the evaluation batch "
    "size 250 give other logits than 16",
    "writes-input-data": "input unchanged: the model wrote into its input tensor",
    "writes-input": "input unchanged: the model wrote into its input tensor",
    "float64": "logits dtype: expected float32 logits, got float64",
    "float16": "logits dtype: expected float32 logits, got float16",
    "int64": "logits dtype: expected float32 logits, got int64",
}


def write_submission(folder: Path, forward: str = HONEST, description: str = '"test"') -> Path:
    path = folder / "generated.py"
    path.write_text(TEMPLATE.format(forward=forward, description=description))
    return path


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_honest_template_passes_validate_and_evaluate_control(tmp_path, capsys):
    path = write_submission(tmp_path)
    code, out, err = run(["validate", str(path)], capsys)
    assert code == 0, err
    assert "ok    input unchanged" in out and "ok    logits dtype: float32" in out
    assert "batches of 8, 16 and 250" in out
    db = f"sqlite:///{tmp_path / 'lb.db'}"
    args = ["--n-examples", "8", "--eps", "1", "--attacks", "quick", "--quiet", "--db", db]
    assert run(["evaluate", str(path), *args], capsys)[0] == 0
    assert len(Store(db).rows()) == 1


@pytest.mark.parametrize("case", sorted(FORWARDS))
def test_a_cheating_or_malformed_model_is_refused_in_one_line_with_no_row(tmp_path, capsys, case):
    path = write_submission(tmp_path, FORWARDS[case])
    code, _, err = run(["validate", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and MESSAGES[case] in err, err
    db = tmp_path / "lb.db"
    args = ["--n-examples", "8", "--eps", "1", "--attacks", "quick", "--quiet", "--db", str(db)]
    code, _, err = run(["evaluate", str(path), *args], capsys)
    assert code == 2 and err.count("\n") == 1 and MESSAGES[case] in err, err
    assert Store(str(db)).rows() == []


def test_the_batch_size_cheat_passes_when_evaluated_in_batches_of_16(tmp_path, capsys):
    """The control for the evaluation-size check: at --batch-size 16 the cheat never shows, so it passes."""
    path = write_submission(tmp_path, FORWARDS["batch-size-cheat"])
    assert run(["validate", str(path), "--batch-size", "16"], capsys)[0] == 0


def test_a_50_mb_description_is_refused_naming_the_field_and_the_line(tmp_path, capsys):
    path = write_submission(tmp_path, description='"x" * 50_000_000')
    db = tmp_path / "lb.db"
    code, _, err = run(["evaluate", str(path), "--quiet", "--db", str(db)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "metadata: description: String should have at most 4000 characters (generated.py line 7)" in err, err
    assert not db.exists()
    assert run(["validate", str(write_submission(tmp_path, description='"x" * 4000'))], capsys)[0] == 0, "control"


def test_a_bad_metadata_field_names_the_field_not_pydantic(tmp_path, capsys):
    path = tmp_path / "bad.py"
    path.write_text(TEMPLATE.format(forward=HONEST, description='"ok"').replace('authors=["tests"]', "authors=[]"))
    code, _, err = run(["validate", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "metadata: authors: List should have at least 1 item" in err and "validation error" not in err, err


def test_a_folder_is_named_as_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip() == f"irob-bench validate: error: argument path: {tmp_path} is a directory; give the submission's .py file"
