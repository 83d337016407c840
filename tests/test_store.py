"""The leaderboard store: round trip, dedupe, one transaction per run, migrations, crash safety, URLs, CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from irob_bench.cli import main
from irob_bench.errors import IrobError
from irob_bench.leaderboard import migrations
from irob_bench.leaderboard import store as store_module
from irob_bench.leaderboard.schema import Base
from irob_bench.leaderboard.store import Resolved, Store, default_db_url

from .factories import kill_mid_save, make_result, rebounded_result, v4_fingerprint


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lb" / "leaderboard.db"


@pytest.fixture
def store(db_path: Path):
    with Store(f"sqlite:///{db_path}") as opened:
        yield opened


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _sql(path: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_save_get_round_trip_keeps_every_field(store: Store) -> None:
    result = make_result()
    outcome = store.save(result)
    assert outcome.created
    back = store.get(outcome.run_id)
    assert back == result
    assert back.model_dump() == result.model_dump()
    assert back.fingerprint() == result.fingerprint()


def test_numbers_are_stored_as_numbers(store: Store, db_path: Path) -> None:
    store.save(make_result(with_ceilings=False))
    assert _sql(db_path, "SELECT typeof(clean_accuracy), typeof(n_examples), typeof(seed) FROM runs") == [
        ("real", "integer", "integer")
    ]
    types = _sql(db_path, "SELECT DISTINCT typeof(eps), typeof(robust_accuracy_pgd), typeof(ceiling_classifier), typeof(gap) FROM eps_metrics")
    assert types == [("real", "real", "null", "null")]
    assert _sql(db_path, "SELECT eps, robust_accuracy_pgd FROM eps_metrics ORDER BY eps") == [(1.0, 0.912), (2.0, 0.655), (3.0, 0.301)]


def test_same_fingerprint_is_not_duplicated(store: Store, db_path: Path) -> None:
    first = store.save(make_result())
    again = store.save(make_result(created_at="2026-01-01T00:00:00+00:00"))  # created_at is not in the fingerprint
    assert (again.run_id, again.created) == (first.run_id, False)
    other = store.save(make_result(seed=1))
    assert other.created and other.run_id != first.run_id
    assert (_count(db_path, "runs"), _count(db_path, "submissions"), _count(db_path, "eps_metrics")) == (2, 1, 6)


def test_a_rebounded_result_is_the_same_run_and_gives_the_stored_run_its_ceilings(store: Store, db_path: Path) -> None:
    """Found by an audit: the fingerprint hashed the Lipschitz record, so a file re-bounded by `runs ceilings` was
    stored as a second run of itself and kept the old ceilings beside the new ones."""
    result = make_result()
    first = store.save(result)
    rebounded = rebounded_result(result, 0.05)
    assert rebounded.fingerprint() == result.fingerprint()
    assert store.save(rebounded).rebounded is False and store.get(first.run_id) == result  # control: not asked to
    saved = store.save(rebounded, rebound=True)
    assert (saved.run_id, saved.created, saved.rebounded) == (first.run_id, False, True)
    assert "its ceilings now rest on" in saved.summary(store.label)
    back = store.get(first.run_id)
    assert back.dataset == rebounded.dataset
    assert [m.ceiling_classifier for m in back.metrics.per_eps] == [m.ceiling_classifier for m in rebounded.metrics.per_eps]
    assert _sql(db_path, "SELECT ceiling_classifier, gap FROM eps_metrics ORDER BY eps") == [
        (m.ceiling_classifier, m.gap) for m in rebounded.metrics.per_eps]
    assert _count(db_path, "runs") == 1
    assert store.save(rebounded, rebound=True).rebounded is False  # saved again: nothing left to change
    # Control: the same run measured elsewhere (other numbers) never lends its ceilings, which rest on its own risks.
    elsewhere = rebounded_result(result, 0.1, clean_accuracy=result.metrics.clean_accuracy - 0.001)
    assert elsewhere.fingerprint() == result.fingerprint()
    kept = store.save(elsewhere, rebound=True)
    assert (kept.run_id, kept.created, kept.rebounded) == (first.run_id, False, False)
    assert store.get(first.run_id) == back and _count(db_path, "runs") == 1


def test_another_card_version_is_another_run(store: Store) -> None:
    """The card version stays in the fingerprint: a card without an images hash (imagenet10) can change its images in
    a new version without changing a hash, and each version is a table of its own (found by a review)."""
    result = make_result()
    bumped = rebounded_result(result, 0.05).model_copy(
        update={"dataset": rebounded_result(result, 0.05).dataset.model_copy(update={"version": "1.1"})})
    assert bumped.fingerprint() != result.fingerprint()
    assert store.save(result).created and store.save(bumped, rebound=True).created


def test_a_stored_run_this_release_cannot_read_is_left_as_it_is(store: Store, db_path: Path) -> None:
    """A save of the same run must not crash on a stored result that no longer validates (SQLite stored versions
    longer than 40 characters before 0.2): it is left untouched; control: reading it is the one-line refusal."""
    result = make_result()
    run_id = store.save(result).run_id
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE runs SET result = json_set(result, '$.irob_bench_version', ?)", ("9" * 50,))
    saved = store.save(rebounded_result(result, 0.05), rebound=True)
    assert (saved.run_id, saved.created, saved.rebounded) == (run_id, False, False)
    with pytest.raises(IrobError, match=f"run {run_id} .* does not hold a valid result"):
        store.get(run_id)


def test_a_save_that_lost_a_race_to_the_same_run_still_gives_it_its_ceilings(store: Store, monkeypatch) -> None:
    """Found by a review: the loser of two concurrent saves of one run returned without re-bounding it."""
    from sqlalchemy.exc import IntegrityError

    result = make_result()
    real, calls = Store._insert, []

    def raced(self, *args, **kwargs):  # another process stored this run between our select and our insert
        calls.append(1)
        if len(calls) == 1:
            real(self, result, result.fingerprint(), "evaluated", False)
            raise IntegrityError("INSERT INTO runs", {}, Exception("runs.fingerprint unique"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "_insert", raced)
    saved = store.save(rebounded_result(result, 0.05), rebound=True)
    assert (saved.created, saved.rebounded, len(calls)) == (False, True, 2)
    assert store.get(saved.run_id).dataset.lipschitz_radius == 0.25


def _rewritten(result, stage_edit: dict) -> object:
    """`result` as another JSON tool would write it back: each float that is a whole number loses its '.0' (as jq
    does), and the first cascade stage gets `stage_edit`."""
    data = json.loads(result.model_dump_json())

    def integral(value):
        if isinstance(value, dict):
            return {k: integral(v) for k, v in value.items()}
        if isinstance(value, list):
            return [integral(v) for v in value]
        return int(value) if isinstance(value, float) and value.is_integer() else value

    attacks = integral(data["settings"]["attacks"])
    attacks["unconstrained"][0].update(stage_edit)
    data["settings"]["attacks"] = attacks
    return type(result).model_validate_json(json.dumps(data))


def test_a_result_rewritten_by_another_json_tool_is_the_same_run(store: Store, db_path: Path) -> None:
    result = make_result()
    first = store.save(result)
    rewritten = _rewritten(result, {"steps": float(result.settings.attacks["unconstrained"][0]["steps"])})
    assert rewritten.settings.attacks == result.settings.attacks and rewritten.fingerprint() == result.fingerprint()
    assert store.save(rewritten) == store_module.SaveOutcome(run_id=first.run_id, created=False, rebounded=False)
    changed = _rewritten(result, {"steps": result.settings.attacks["unconstrained"][0]["steps"] + 1})  # control
    assert changed.fingerprint() != result.fingerprint() and store.save(changed).created
    assert _count(db_path, "runs") == 2


def test_attack_settings_this_release_cannot_read_are_kept_as_written() -> None:
    legacy = {"pgd": {"steps": 40.0, "restarts": 2}, "latent": {"steps": 100}}  # irob-bench < 0.2
    result = make_result()
    old = result.model_copy(update={"settings": result.settings.model_copy(update={"attacks": legacy})})
    again = type(result).model_validate_json(old.model_dump_json())
    assert again.settings.attacks == legacy and json.dumps(again.settings.attacks) == json.dumps(legacy)


def test_failed_save_leaves_no_partial_rows(store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store_module._eps_row
    calls = []

    def fail_on_second(metrics):  # the submission, the run and one eps row are flushed by then
        calls.append(metrics.eps)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(metrics)

    monkeypatch.setattr(store_module, "_eps_row", fail_on_second)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.save(make_result())
    assert calls == [1.0, 2.0]
    assert [_count(db_path, t) for t in ("submissions", "runs", "eps_metrics")] == [0, 0, 0]
    monkeypatch.setattr(store_module, "_eps_row", real)
    assert store.save(make_result()).created


def test_sqlite_connections_are_crash_safe(store: Store) -> None:
    with store._engine.connect() as conn:
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys", "synchronous")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2}




@pytest.mark.slow  # the child process imports torch (via the result schema): a few seconds
def test_sigkill_mid_save_leaves_a_readable_db_without_the_partial_run(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    kill_mid_save(url)
    assert _sql(db_path, "PRAGMA integrity_check") == [("ok",)]
    with Store(url) as reopened:
        rows = reopened.rows()
        assert [r.run_id for r in rows] == [1]
        assert reopened.get(1) == make_result()
    assert _count(db_path, "eps_metrics") == 3


def _downgrade_to_v1(path: Path) -> None:
    """Turn a current database into what version 1 left behind: no secondary indexes, no provenance, version row 1."""
    with sqlite3.connect(path) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'").fetchall():
            conn.execute(f"DROP INDEX {name}")
        for column in ("provenance", "verification"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        for column in ("certified_accuracy", "certified_reason"):
            conn.execute(f"ALTER TABLE eps_metrics DROP COLUMN {column}")
        conn.execute("DELETE FROM schema_version WHERE version > 1")


def test_older_database_is_upgraded_and_keeps_its_runs(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    with Store(url) as first:
        run_id = first.save(make_result()).run_id
    _downgrade_to_v1(db_path)
    assert _sql(db_path, "SELECT max(version) FROM schema_version") == [(1,)]
    assert not _sql(db_path, "SELECT name FROM sqlite_master WHERE name LIKE 'ix_%'")
    with Store(url) as reopened:
        assert reopened.get(run_id) == make_result()
        assert reopened.save(make_result(seed=3)).created
        assert [r.provenance for r in reopened.rows()] == ["evaluated", "evaluated"], "old runs were evaluated here"
    assert [v for (v,) in _sql(db_path, "SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3, 4, 5]
    assert {n for (n,) in _sql(db_path, "SELECT name FROM sqlite_master WHERE name LIKE 'ix_%'")} == {
        "ix_submissions_name",
        "ix_runs_submission_id",
        "ix_runs_dataset_name",
        "ix_eps_metrics_run_id",
    }


def test_v4_gives_old_runs_a_no_certificate_reason_and_stores_new_certified_values(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    with Store(url) as old:
        old_id = old.save(make_result()).run_id
    with sqlite3.connect(db_path) as conn:  # turn it into the v3 database that held this run: no certified columns
        for column in ("certified_accuracy", "certified_reason"):
            conn.execute(f"ALTER TABLE eps_metrics DROP COLUMN {column}")
        conn.execute("DELETE FROM schema_version WHERE version > 3")
    certified = make_result(seed=5)
    per_eps = [m.model_copy(update={"certified_accuracy": 0.5 - 0.1 * i}) for i, m in enumerate(certified.metrics.per_eps)]
    certified = certified.model_copy(update={"metrics": certified.metrics.model_copy(update={"per_eps": per_eps})})
    with Store(url) as reopened:
        new_id = reopened.save(certified).run_id
        rows = {r.run_id: r for r in reopened.rows()}
    assert [(v.certified_accuracy, v.certified_reason) for v in rows[old_id].per_eps] == [
        (None, migrations.NOT_CERTIFIED_BEFORE)
    ] * 3  # the control of "never a silent blank": an old run says why it has no certified accuracy
    assert [v.certified_accuracy for v in rows[new_id].per_eps] == pytest.approx([0.5, 0.4, 0.3])
    assert all(v.certified_reason is None for v in rows[new_id].per_eps)


@pytest.mark.parametrize("rebounded_first", [False, True])
def test_v5_recomputes_fingerprints_and_loses_no_run_of_an_evaluation_stored_twice(db_path: Path, rebounded_first) -> None:
    """Two stored runs that are one evaluation: the one the leaderboard ranks (earliest created_at, then id) takes
    today's fingerprint, the other keeps its old one; every other run gets today's."""
    url = f"sqlite:///{db_path}"
    result, other, rebounded = make_result(), make_result(seed=1), rebounded_result(make_result(), 0.05)
    with Store(url) as board:
        ids = [board.save(r).run_id for r in (result, other, make_result(seed=2))]
    # The v4 database a re-bounded import left: the third run holds `result` re-bounded; each run its v4 fingerprint.
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE runs SET result = ? WHERE id = ?", (rebounded.model_dump_json(), ids[2]))
        for run_id, stored in zip(ids, (result, other, rebounded)):
            conn.execute("UPDATE runs SET fingerprint = ? WHERE id = ?", (v4_fingerprint(stored), run_id))
        if rebounded_first:  # imported with an earlier created_at: it is the run the leaderboard ranks
            conn.execute("UPDATE runs SET created_at = '2024-06-01 00:00:00.000000' WHERE id = ?", (ids[2],))
        conn.execute("DELETE FROM schema_version WHERE version > 4")
    assert len({v4_fingerprint(r) for r in (result, other, rebounded)}) == 3  # control: version 4 told them apart
    holder, keeper = (ids[2], (ids[0], result)) if rebounded_first else (ids[0], (ids[2], rebounded))
    with Store(url) as reopened:
        assert reopened.find(result.fingerprint()) == holder
        assert reopened.find(other.fingerprint()) == ids[1]  # every other run gets today's fingerprint too
        assert reopened.find(v4_fingerprint(keeper[1])) == keeper[0]  # kept, with its old fingerprint
        assert len(reopened.rows()) == 3  # nothing lost or merged
        assert reopened.save(rebounded_result(result, 0.02), rebound=True).run_id == holder  # a re-bounded file finds it


def test_v5_reads_stored_settings_as_fingerprint_does(db_path: Path) -> None:
    """A run stored from a file that jq rewrote (eps 1 for 1.0) gets the fingerprint that a later save of the same run
    computes, so that save finds it instead of adding a second run (found by a review)."""
    url = f"sqlite:///{db_path}"
    result = make_result()
    with Store(url) as board:
        run_id = board.save(result).run_id
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE runs SET result = json_set(result, '$.settings.eps', json('[1, 2, 3]')), fingerprint = ?",
                     (v4_fingerprint(result),))
        conn.execute("DELETE FROM schema_version WHERE version > 4")
        assert conn.execute("SELECT json_extract(result, '$.settings.eps') FROM runs").fetchone() == ("[1,2,3]",)
    with Store(url) as reopened:
        assert reopened.find(result.fingerprint()) == run_id
        assert not reopened.save(result).created


def test_each_migration_step_is_applied_once_in_order(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'steps.db'}")
    assert migrations.upgrade(engine, target=1) == [1]
    with engine.connect() as conn:
        assert migrations.current_version(conn) == 1
    assert migrations.upgrade(engine) == [2, 3, 4, 5]
    assert migrations.upgrade(engine) == []
    engine.dispose()


def test_migrated_schema_matches_the_orm_models(tmp_path: Path) -> None:
    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrations.upgrade(migrated)
    declared = create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    Base.metadata.create_all(declared)

    def layout(engine):
        insp = inspect(engine)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
                sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
                sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)),
            )
            for table in ("submissions", "runs", "eps_metrics")
        }

    assert layout(migrated) == layout(declared)
    migrated.dispose()
    declared.dispose()


def test_newer_database_is_refused(store: Store, db_path: Path) -> None:
    store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, '2030-01-01 00:00:00')")
    with pytest.raises(IrobError, match="schema version 99, newer than this irob-bench knows"):
        Store(f"sqlite:///{db_path}")


def test_empty_file_is_initialised_and_foreign_database_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with Store(str(empty)) as opened:  # a bare path means a SQLite file
        assert opened.rows() == []
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (text)")
    before = foreign.read_bytes()
    with pytest.raises(IrobError, match="not an irob-bench leaderboard database"):
        Store(str(foreign))
    assert foreign.read_bytes() == before, "refused and left as it was (it used to be switched to WAL)"
    assert sqlite3.connect(foreign).execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert sqlite3.connect(empty).execute("PRAGMA journal_mode").fetchone() == ("wal",)  # control: ours is WAL


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        (lambda tmp: f"sqlite:///{_garbage(tmp)}", "file is not a database"),
        (lambda tmp: "nosuchdialect://user:secret@host/db", "unsupported URL"),
        (lambda tmp: "sqlite://:bad:url/", "bad database URL"),
        (lambda tmp: f"sqlite:///{tmp}", "unable to open database file"),  # a directory
    ],
)
def test_unusable_database_is_a_one_line_error(tmp_path: Path, make_url, message: str) -> None:
    with pytest.raises(IrobError, match=message) as caught:
        Store(make_url(tmp_path))
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def _garbage(tmp: Path) -> Path:
    path = tmp / "garbage.db"
    path.write_bytes(b"this is not sqlite at all, just text " * 200)
    return path


def test_default_url_honours_env_var_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IROB_BENCH_DB", "sqlite:////srv/lb.db")
    assert default_db_url() == "sqlite:////srv/lb.db"
    monkeypatch.delenv("IROB_BENCH_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'xdg' / 'irob-bench' / 'leaderboard.db'}"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'home' / '.local' / 'share' / 'irob-bench' / 'leaderboard.db'}"
    with Store() as opened:  # creates the folder on first use
        assert Path(opened.url.database).is_file()


def test_rows_and_resolve(store: Store) -> None:
    old = store.save(make_result("net", created_at="2025-01-01T00:00:00+00:00")).run_id
    new = store.save(make_result("net", seed=5, created_at="2025-02-01T00:00:00+01:00")).run_id
    other = store.save(make_result("other", dataset="imagenet10", pgd=(0.3, 0.2, 0.1))).run_id
    assert [r.run_id for r in store.rows()] == [old, new, other]
    assert [r.run_id for r in store.rows("imagenet10")] == [other]
    assert [r.run_id for r in store.rows("image*")] == [other]
    assert [r.run_id for r in store.rows("?nist")] == [old, new]
    assert store.rows("mn_st") == [], "SQL's own wildcard _ is matched literally"
    row = store.rows("imagenet10")[0]
    assert (row.submission, row.training, row.clean_accuracy, row.n_examples) == ("other", "pgd-l2 eps=2", 0.9893, 1000)
    assert [v.robust_accuracy_pgd for v in row.per_eps] == [0.3, 0.2, 0.1]
    assert row.created_at.isoformat() == "2025-03-14T09:26:53+00:00"
    assert store.resolve(str(old)).run_id == old and store.resolve(other).run_id == other
    assert store.resolve("net") == store.resolve("net", dataset="mnist") == Resolved(new)  # one submission: no note
    with pytest.raises(IrobError, match=r"no run with id or submission name 'nobody' .* \(submissions: net, other; "):
        store.resolve("nobody")
    assert store.resolve(str(other), dataset="imagenet10").run_id == other  # an id with its own dataset: fine
    with pytest.raises(IrobError, match=f"run {other} is on dataset 'imagenet10', not 'mnist'"):  # ignored before
        store.resolve(str(other), dataset="mnist")
    with pytest.raises(IrobError, match="no run with id 99"):
        store.get(99)
    assert store.datasets() == ["imagenet10", "mnist"]


def test_a_name_shared_by_different_submissions_says_which_run_it_took(store: Store, tmp_path: Path, capsys) -> None:
    """A name is not owned: an import under someone else's name (another file) would silently become 'the latest run'
    of that name for `runs show NAME` and `gate --baseline NAME`. Now the run taken is named with how to choose another
    (the control: the owner's own runs of one submission resolve without a note, test_rows_and_resolve)."""
    owner = store.save(make_result("net", created_at="2025-01-01T00:00:00+00:00")).run_id
    namesake = store.save(make_result("net", file_tag="someone else", created_at="2025-02-01T00:00:00+00:00")).run_id
    resolved = store.resolve("net")
    assert resolved.run_id == namesake and "2 different submissions (file or weights) are named 'net'" in resolved.note
    assert f"took the latest run, {namesake} (evaluated 2025-02-01 00:00 UTC" in resolved.note
    assert store.resolve(str(owner)) == Resolved(owner)  # a run id chooses without a note
    code = main(["runs", "show", "net", "--json", "--db", str(store.url.database)])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["submission"]["metadata"]["name"] == "net"  # stdout stays pure JSON
    assert err.startswith("note: 2 different submissions") and err.count("\n") == 1


def test_cli_leaderboard_and_runs(db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{db_path}"
    with Store(url) as opened:
        opened.save(make_result("strong", pgd=(0.95, 0.8, 0.6)))
        opened.save(make_result("weak", pgd=(0.6, 0.3, 0.1)))
    assert main(["leaderboard", "--db", url, "--format", "json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [(r["rank"], r["submission"]) for r in ranked] == [(1, "strong"), (2, "weak")]

    out_file = tmp_path / "board.md"
    assert main(["leaderboard", "--db", str(db_path), "--format", "markdown", "--out", str(out_file)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert out_file.read_text().startswith("### mnist v1.0, attacks standard: ranked by robust accuracy at eps 3")

    assert main(["runs", "show", "weak", "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == make_result("weak", pgd=(0.6, 0.3, 0.1)).model_dump(mode="json")
    assert main(["runs", "show", "1", "--db", url]) == 0
    assert capsys.readouterr().out.startswith("run 1: strong on mnist v1.0")
    assert main(["runs", "list", "--db", url]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 4 and "strong" in listing[2] and "weak" in listing[3]

    assert main(["runs", "show", "77", "--db", url]) == 2
    assert "no run with id or submission name '77'" in capsys.readouterr().err
    assert main(["leaderboard", "--db", url, "--dataset", "cifar"]) == 2
    err = capsys.readouterr().err
    assert "no runs for dataset 'cifar'" in err and "(datasets with runs: mnist)" in err


def test_cli_uses_env_var_database(db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IROB_BENCH_DB", f"sqlite:///{db_path}")
    with Store() as opened:
        opened.save(make_result("from-env"))
    assert main(["leaderboard", "--format", "csv"]) == 0
    assert "from-env" in capsys.readouterr().out
    assert main(["leaderboard", "--db", str(db_path.parent / "other.db")]) == 2  # --db wins; a file it names must exist
    assert "other.db: no such file (a mistyped --db?" in capsys.readouterr().err
    with Store(str(db_path.parent / "other.db")):
        pass  # now it exists, empty
    assert main(["leaderboard", "--db", str(db_path.parent / "other.db")]) == 0
    assert capsys.readouterr().out.strip() == "no runs stored yet"


def test_a_save_that_lost_a_race_for_its_submission_row_is_retried(store: Store, monkeypatch) -> None:
    """On PostgreSQL two first runs of one submission stored at once: one failed on the submissions' unique key after
    its whole evaluation (found by an audit). A save whose own fingerprint is not stored retries; control: a save
    that keeps failing still raises, one line."""
    from sqlalchemy.exc import IntegrityError

    real, calls = Store._insert, []

    def racing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO submissions", {}, Exception("uq_submission_identity"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "_insert", racing)
    saved = store.save(make_result("raced"))
    assert saved.created and len(calls) == 2 and [r.submission for r in store.rows()] == ["raced"]

    def always(self, *args, **kwargs):
        raise IntegrityError("INSERT INTO submissions", {}, Exception("uq_submission_identity"))

    monkeypatch.setattr(Store, "_insert", always)
    with pytest.raises(IrobError, match="uq_submission_identity"):
        store.save(make_result("raced", seed=1))


def test_a_reader_is_not_blocked_by_a_writers_lock(db_path: Path) -> None:
    """Every open ran the schema upgrade's BEGIN IMMEDIATE, so a `runs list` waited 10 s behind any writer and then
    failed 'database is locked' (found by an audit). A reader of a current schema now reads (WAL lets it)."""
    with Store(f"sqlite:///{db_path}") as opened:
        opened.save(make_result("kept"))
    writer = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a save
    try:
        with Store(f"sqlite:///{db_path}", readonly=True) as reader:
            assert [r.submission for r in reader.rows()] == ["kept"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_in_memory_url_is_refused_for_work_and_a_tilde_is_home(tmp_path: Path, monkeypatch) -> None:
    """`runs import --db sqlite://` said 'stored as run 1' and kept nothing; a '~' in a SQLite URL made a literal
    './~' folder while the outcomes went to $HOME (found by an audit). Control: a file URL is writable."""
    with pytest.raises(IrobError, match="in memory, it would keep nothing"):
        Store.check_writable("sqlite://")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with Store("sqlite:///~/board.db") as opened:
        assert opened.url.database == str(tmp_path / "home" / "board.db")
    assert not (tmp_path / "~").exists()
    Store.check_writable(f"sqlite:///{tmp_path / 'ok.db'}")


def test_a_result_whose_metadata_holds_terminal_escapes_is_not_read(tmp_path: Path) -> None:
    from irob_bench.results import read_result_file

    data = json.loads(make_result().model_dump_json())
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    assert read_result_file(path).submission.metadata.name == "smallcnn-pgd"  # control: the honest file reads
    data["submission"]["metadata"]["authors"] = ["\x1b[2J\x1b[Hroot"]
    path.write_text(json.dumps(data))
    with pytest.raises(IrobError, match=r"submission\.metadata\.authors.*U\+001B"):
        read_result_file(path)


def _check(verdict: str, seed: int) -> store_module.Verification:
    return store_module.Verification(verdict=verdict, n=50, seed=seed, checked_at="2026-12-06T20:00:00+00:00",
                                     detail=f"check with seed {seed}")  # fmt: skip


def test_a_dispute_stays_with_the_run_when_later_checks_agree(store: Store) -> None:
    """`runs verify` repeated until a sample agrees cannot clear a run: the record counts checks and keeps the
    latest disputing one. Control: checks that all agree read 'verified N times'."""
    from irob_bench.leaderboard.render import source

    disputed = store.save(make_result()).run_id
    store.record_verification(disputed, _check("verified", 1))
    store.record_verification(disputed, _check("disputed", 2))
    record = store.record_verification(disputed, _check("verified", 3))
    assert (record.verdict, record.checks, record.disputed_checks, record.seed) == ("disputed", 3, 1, 2)
    [row] = store.rows()
    assert row.verification == record and source(row) == "evaluated, disputed in 1 of 3 checks (n=50)"

    other = store.save(make_result(seed=1)).run_id
    for seed in (4, 5):
        record = store.record_verification(other, _check("verified", seed))
    assert (record.verdict, record.checks, record.disputed_checks, record.seed) == ("verified", 2, 0, 5)
    assert source(next(r for r in store.rows() if r.run_id == other)) == "evaluated, verified 2 times (n=50)"


def test_a_verification_stored_before_checks_were_counted_reads_as_one_check() -> None:
    old = {"verdict": "disputed", "n": 12, "seed": 0, "checked_at": "2026-12-05T00:00:00+00:00", "detail": "x"}
    record = store_module.Verification.model_validate(old)
    assert (record.checks, record.disputed_checks) == (1, 1)
    with pytest.raises(ValueError, match="verdict verified with 1 of 1"):  # control: a record that contradicts itself
        store_module.Verification.model_validate({**old, "verdict": "verified", "disputed_checks": 1})


def test_two_boards_in_one_folder_never_overwrite_each_others_outcomes(tmp_path: Path) -> None:
    """Stored outcomes are named by fingerprint and content: board B storing the same run with other outcome bytes
    (another machine's floats) leaves board A's file as A checked it. Control: identical bytes share one file."""
    from irob_bench.artifacts import sha256_file
    from irob_bench.attacks.outcomes import load_outcomes
    from irob_bench.evaluate import Evaluation
    from irob_bench.persist import persist
    from irob_bench.results import read_result_file

    committed = Path(__file__).resolve().parents[1] / "leaderboard" / "runs" / "mnist-pgd.json"
    evaluation = Evaluation(result=read_result_file(committed), outcomes=load_outcomes(f"{committed}.outcomes.npz"))
    other = load_outcomes(f"{committed}.outcomes.npz")
    other.r_unc = other.r_unc * (1 + 1e-7)  # the same run measured elsewhere: the same fingerprint, other bytes
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as a, Store(f"sqlite:///{tmp_path / 'b.db'}") as b:
        stored_a, _ = persist(evaluation, store=a)
        kept = sha256_file(stored_a.outcomes_file)
        stored_b, _ = persist(Evaluation(result=evaluation.result, outcomes=other), store=b)
        assert Path(stored_b.outcomes_file).parent == Path(stored_a.outcomes_file).parent == tmp_path / "outcomes"
        assert stored_b.outcomes_file != stored_a.outcomes_file and sha256_file(stored_a.outcomes_file) == kept
        assert a.get(1).outcomes_file == stored_a.outcomes_file
    with Store(f"sqlite:///{tmp_path / 'c.db'}") as c:
        assert persist(evaluation, store=c)[0].outcomes_file == stored_a.outcomes_file  # control: same bytes, one file
    assert sorted(p.name for p in (tmp_path / "outcomes").iterdir()) == sorted(
        Path(f).name for f in (stored_a.outcomes_file, stored_b.outcomes_file))  # no staging file left
