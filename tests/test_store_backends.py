"""The leaderboard store on every backend it supports: SQLite and PostgreSQL (the shared board of a team).

Each test runs on both. PostgreSQL needs a server: set IROB_BENCH_TEST_POSTGRES to an admin URL
(postgresql+psycopg://user:password@127.0.0.1:5432/postgres; `.ci/postgres` starts one and prints it) and install
the driver extra (`pip install "irob-bench[postgres]"`); without them the PostgreSQL cases skip, saying which is missing.
Every test gets a fresh database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, text, update
from sqlalchemy.engine import make_url

from irob_bench.cli import main
from irob_bench.leaderboard import store as store_module
from irob_bench.leaderboard.store import Store

from .factories import kill_mid_save, make_result, rebounded_result, v4_fingerprint

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ENV = "IROB_BENCH_TEST_POSTGRES"


def _postgres_admin() -> str:
    """The admin URL of the test server, or a skip naming what is missing."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set ${POSTGRES_ENV} (bash .ci/postgres starts one and prints its URL)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('no PostgreSQL driver: pip install "irob-bench[postgres]"')
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path):
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'board.db'}"
        return
    admin_url = _postgres_admin()
    name = f"irob_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server is a skip with its reason
        admin.dispose()
        pytest.skip(f"PostgreSQL at {make_url(admin_url).render_as_string()} unusable: {str(exc).splitlines()[0]}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def counts(url: str) -> list[int]:
    """Rows in submissions, runs and eps_metrics."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("submissions", "runs", "eps_metrics")]
    finally:
        engine.dispose()


def test_round_trip_and_no_duplicates(url: str) -> None:
    with Store(url) as store:
        first = store.save(make_result())
        assert first.created and store.get(first.run_id) == make_result()
        again = store.save(make_result(created_at="2026-01-01T00:00:00+00:00"))
        assert (again.run_id, again.created) == (first.run_id, False)
        assert store.save(make_result(seed=1)).created
    assert counts(url) == [1, 2, 6]


def test_failed_save_leaves_no_partial_rows(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store_module._eps_row

    def fail_on_second(metrics):
        if metrics.eps == 2.0:
            raise RuntimeError("disk on fire")
        return real(metrics)

    with Store(url) as store:
        monkeypatch.setattr(store_module, "_eps_row", fail_on_second)
        with pytest.raises(RuntimeError, match="disk on fire"):
            store.save(make_result())
        assert counts(url) == [0, 0, 0]
        monkeypatch.setattr(store_module, "_eps_row", real)
        assert store.save(make_result()).created  # control: the same save succeeds
    assert counts(url) == [1, 1, 3]


_WRITER = """
import sys
sys.path.insert(0, {repo!r})
from tests.factories import make_result
from irob_bench.leaderboard.store import Store
store = Store({url!r})
print("ready", flush=True)
sys.stdin.readline()  # all writers start together
for k in range(4):
    store.save(make_result(f"writer{wid}-{{k}}", seed=k))
    store.save(make_result("shared"))  # the same run from every writer: stored once
print("done", flush=True)
"""


@pytest.mark.slow  # child processes import torch (via the result schema): a few seconds
def test_concurrent_writers_store_every_run_once(url: str) -> None:
    Store(url).close()  # the schema exists before the writers race
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER.format(repo=str(REPO), url=url, wid=w)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for w in range(3)]
    for proc in writers:
        assert proc.stdout.readline().strip() == "ready"
    for proc in writers:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in writers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "done"
    with Store(url, readonly=True) as store:
        names = sorted(r.submission for r in store.rows())
    assert names == sorted(["shared", *(f"writer{w}-{k}" for w in range(3) for k in range(4))])
    assert counts(url) == [13, 13, 39]




@pytest.mark.slow
def test_sigkill_mid_save_leaves_no_partial_run(url: str) -> None:
    kill_mid_save(url)
    with Store(url) as reopened:
        assert [r.run_id for r in reopened.rows()] == [1]
        assert reopened.get(1) == make_result()
        assert reopened.save(make_result(seed=1)).created  # control: the killed save goes through now
    assert counts(url) == [1, 2, 6]


def test_cli_leaderboard_reads_the_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(url) as store:
        store.save(make_result("strong", pgd=(0.95, 0.8, 0.6)))
        store.save(make_result("weak", pgd=(0.6, 0.3, 0.1)))
    assert main(["leaderboard", "--db", url, "--format", "json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [(r["rank"], r["submission"]) for r in ranked] == [(1, "strong"), (2, "weak")]


def test_concurrent_first_opens_create_the_schema_once(url: str) -> None:
    """Four processes opening a fresh PostgreSQL database at once (a team's first command after a release): three
    failed creating or upgrading the schema (found by an audit). The upgrade now holds an advisory lock there; SQLite's
    BEGIN IMMEDIATE already serialised it (the control: the same test on SQLite)."""
    script = ("import sys; sys.path.insert(0, {repo!r}); from irob_bench.leaderboard.store import Store; "
              "Store({url!r}).close(); print('ok')")
    openers = [subprocess.Popen([sys.executable, "-c", script.format(repo=str(REPO / "benchmark"), url=url)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [proc.communicate(timeout=120) for proc in openers]
    assert all(proc.returncode == 0 and out.strip() == "ok" for proc, (out, _) in zip(openers, results)), results
    with Store(url, readonly=True) as store:
        assert store.rows() == []


def test_a_rebounded_save_and_the_v5_fingerprints_on_every_backend(url: str) -> None:
    """The same evaluation saved with other ceilings updates the stored run in its transaction (the row locked on
    PostgreSQL); a version-4 database whose two runs are one evaluation gets today's fingerprints and keeps both."""
    result, other = make_result(), make_result(seed=1)
    with Store(url) as store:
        first = store.save(result).run_id
        saved = store.save(rebounded_result(result, 0.05), rebound=True)
        assert (saved.run_id, saved.created, saved.rebounded) == (first, False, True)
        assert store.get(first).dataset.lipschitz_radius == 0.25
        second = store.save(other).run_id
        third = store.save(make_result(seed=2)).run_id
    engine = create_engine(url)
    runs = Table("runs", MetaData(), Column("id", Integer, primary_key=True), Column("fingerprint", String(64)),
                 Column("result", JSON))
    with engine.begin() as conn:  # the v4 database: the third run holds the first re-bounded, v4 fingerprints
        stale = rebounded_result(result, 0.1)
        conn.execute(update(runs).where(runs.c.id == third).values(result=stale.model_dump(mode="json")))
        for run_id, stored in ((first, result), (second, other), (third, stale)):
            conn.execute(update(runs).where(runs.c.id == run_id).values(fingerprint=v4_fingerprint(stored)))
        conn.execute(text("DELETE FROM schema_version WHERE version > 4"))
    engine.dispose()
    with Store(url) as reopened:
        assert (reopened.find(result.fingerprint()), reopened.find(other.fingerprint())) == (first, second)
        assert reopened.find(v4_fingerprint(stale)) == third  # kept, with its old fingerprint
    assert counts(url) == [1, 3, 9]
