"""What an isolated submission can no longer do: its code runs only in the worker, which answers forward, backward
and certify requests, so patching irob_bench there changes no score; the worker cannot write the parent's
checkpoints; what it sends is read without pickle and checked (metadata, dtypes, shapes, lengths), and its error
text is shown as one short printable line. Each test has a control: the same cheat run in process (isolation none,
where the scoring and the submission share a process) does change the score."""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import irob_bench.evaluate as evaluate_module
from irob_bench.cli import main
from irob_bench.errors import IrobError
from irob_bench.isolation.channel import MAX_ARRAY_BYTES, ChannelClosed, plain, printable, receive, send
from irob_bench.isolation.remote import signal_name

TOY = Path(__file__).parent / "submissions" / "toy.py"
FAST = ["--n-examples", "8", "--eps", "1", "--attacks", "quick", "--quiet", "--no-store"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

# Module-level code of a submission that replaces the benchmark's attacks, in whatever process imports it, by attacks
# on a nearest-neighbour oracle of the clean points (logit c: minus the distance to the nearest clean point of class
# c): 100% clean, and robust at any eps below half the distance between classes.
REWRITE_SCORE = '''
import irob_bench.evaluate as _scoring

_real_attacks = _scoring.run_attacks


class _Oracle(torch.nn.Module):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x.detach().flatten(1), y

    def forward(self, inputs):
        distances = torch.cdist(inputs.flatten(1), self.x)
        others = ~torch.nn.functional.one_hot(self.y, 10).T.bool()
        return torch.stack([-(distances + 1e4 * other).min(1).values for other in others], 1)


def _cheat(model, x, y, *args, **kwargs):
    return _real_attacks(_Oracle(x, y), x, y, *args, **kwargs)


_scoring.run_attacks = _cheat
'''


def submission(folder: Path, extra: str) -> Path:
    path = folder / "cheat.py"
    path.write_text(TOY.read_text() + extra)
    return path


def scored(path: Path, out: Path, capsys, isolation: str) -> dict:
    code = main(["evaluate", str(path), *FAST, "--json", str(out), "--isolation", isolation])
    assert code == 0, capsys.readouterr().err
    return json.loads(out.read_text())["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["process", pytest.param("sandbox", marks=needs_bwrap)])
def test_a_submission_that_patches_the_scoring_in_its_process_changes_no_isolated_score(tmp_path, capsys, monkeypatch,
                                                                                        isolation):
    monkeypatch.setattr(evaluate_module, "run_attacks", evaluate_module.run_attacks)  # restored after the control
    honest = scored(TOY, tmp_path / "honest.json", capsys, "none")
    cheat = submission(tmp_path, REWRITE_SCORE)
    assert scored(cheat, tmp_path / "isolated.json", capsys, isolation) == honest
    in_process = scored(cheat, tmp_path / "in-process.json", capsys, "none")  # control: the cheat works in process
    assert honest["clean_accuracy"] < 1.0 == in_process["clean_accuracy"]


@pytest.mark.slow
@needs_bwrap
def test_the_sandbox_cannot_write_the_checkpoints_and_a_plain_worker_could_control(tmp_path, capsys, monkeypatch):
    """Checkpoints are written by the parent only: a submission that plants a chunk file in the checkpoint folder
    (which the sandbox used to bind writable) breaks the read-only rule; at the process level, which does not isolate
    the filesystem, the same write lands (the control that the test sees a write)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("IROB_BENCH_CACHE", str(cache))
    (cache / "checkpoints").mkdir(parents=True)
    planted = cache / "checkpoints" / "planted.npz"
    path = submission(tmp_path, f"\nopen({str(planted)!r}, 'wb').write(b'forged chunk')\n")
    code = main(["evaluate", str(path), *FAST, "--isolation", "sandbox"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "Read-only file system" in err and "rule: a submission may write only in its scratch folder" in err, err
    assert not planted.exists()
    assert main(["evaluate", str(path), *FAST, "--isolation", "process"]) == 0
    assert planted.read_bytes() == b"forged chunk"


FORGED_METADATA = '''
import __main__ as _worker  # the worker runs as `python -m irob_bench.isolation.worker`

_reply = _worker.Server.reply


def _forged(self, op, arrays=(), **fields):
    if op == "loaded":
        fields["metadata"] = {**fields["metadata"], "name": "../../etc", "authors": []}
    return _reply(self, op, arrays, **fields)


_worker.Server.reply = _forged
'''

GARBLED_LOGITS = '''
import __main__ as _worker  # the worker runs as `python -m irob_bench.isolation.worker`

_reply = _worker.Server.reply


def _garbled(self, op, arrays=(), **fields):
    if op == "logits":
        header = b'{"op": "logits", "arrays": [["float32", [100000000, 100000000]]]}'
        self.out.write(len(header).to_bytes(8, "little") + header)
        self.out.flush()
        return None
    return _reply(self, op, arrays, **fields)


_worker.Server.reply = _garbled
'''


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "message"), [
    (FORGED_METADATA, "irob-bench: error: metadata: name: String should match pattern"),
    (GARBLED_LOGITS, "irob-bench: error: forward: isolation: the worker sent a 40000000000000000-byte array"),
])  # fmt: skip
def test_what_the_worker_sends_is_checked_in_the_parent(tmp_path, capsys, extra, message):
    """A worker that forges the metadata the file declares, or answers with an array of 40 PB, is refused in one
    line with nothing stored; the honest toy through the same worker is the control."""
    db = tmp_path / "lb.db"
    code = main(["evaluate", str(submission(tmp_path, extra)), *FAST[:-1], "--db", str(db), "--isolation", "process"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err
    assert not db.exists()
    assert main(["evaluate", str(TOY), *FAST, "--isolation", "process"]) == 0


def wire(header: bytes, payload: bytes = b"") -> io.BytesIO:
    return io.BytesIO(struct.pack("<Q", len(header)) + header + payload)


def test_the_wire_round_trips_a_message_control():
    stream = io.BytesIO()
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    send(stream, {"op": "logits", "graph": 3}, (logits, np.array([True, False])))
    stream.seek(0)
    header, (a, b) = receive(stream)
    assert header == {"op": "logits", "graph": 3} and np.array_equal(a, logits) and b.tolist() == [True, False]


@pytest.mark.parametrize(("stream", "message"), [
    (io.BytesIO(struct.pack("<Q", 1 << 40)), "byte header"),
    (wire(b"not json"), "not JSON"),
    (wire(b"[" * 100_000 + b"]" * 100_000), "not JSON"),  # nesting past Python's recursion limit
    (wire(b'{"op": "x"}'), "without op and arrays"),
    (wire(b'{"op": "x", "arrays": [["object", [1]]]}'), "array of type 'object'"),
    (wire(b'{"op": "x", "arrays": [["float32", [-1]]]}'), "valid [dtype, shape]"),
    (wire(b'{"op": "x", "arrays": [["float32", [65536, 65536]]]}'), f"at most {MAX_ARRAY_BYTES}"),
])  # fmt: skip
def test_a_malformed_message_is_one_line_before_any_allocation(stream, message):
    with pytest.raises(IrobError, match=message.replace("[", r"\[").replace("]", r"\]")):
        receive(stream)


def test_a_truncated_message_is_a_closed_channel():
    with pytest.raises(ChannelClosed):
        receive(wire(b'{"op": "x", "arrays": [["float32", [4]]]}', b"\0" * 8))  # 8 of the 16 bytes


def test_untrusted_text_is_one_short_printable_line_and_plain_text_stays_control():
    shown = plain("\x1b[2J\x1b]0;owned\x07" + "A" * 1_000_000 + "\nsecond line")
    assert len(shown) <= 300 and "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert plain("ValueError: bad input") == "ValueError: bad input"
    assert printable("loss 0.5\tstep 3\n\x1b[31mred\r") == "loss 0.5\tstep 3\n?[31mred?"  # forwarded prints


def test_a_signal_without_a_name_is_named_by_its_number_control_sigkill():
    assert signal_name(40) == "signal 40"
    assert signal_name(9) == "SIGKILL"


@pytest.fixture()
def host_secrets():
    """A secret file and a listening Unix socket outside /tmp and outside the submission's folder (as in a home
    folder or /run/postgresql), which the sandbox used to show through its read-only view of the whole filesystem."""
    import socket
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="irob-secrets-"))
    (folder / "secret.txt").write_text("token")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "db.sock"))
    server.listen()
    yield folder
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize(("reach", "what"), [
    ("open({secret!r}).read()", "secret.txt"),
    ("__import__('socket').socket(__import__('socket').AF_UNIX).connect({sock!r})", "No such file or directory"),
])  # fmt: skip
def test_the_sandbox_shows_neither_the_callers_files_nor_their_sockets_and_a_plain_worker_does_control(
    tmp_path, capsys, host_secrets, reach, what
):
    line = reach.format(secret=str(host_secrets / "secret.txt"), sock=str(host_secrets / "db.sock"))
    path = submission(tmp_path, f"\n{line}\n")
    code = main(["evaluate", str(path), *FAST, "--isolation", "sandbox"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and what in err, err
    assert main(["evaluate", str(path), *FAST, "--isolation", "process"]) == 0, capsys.readouterr().err
