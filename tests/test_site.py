"""The static leaderboard website, checked in a real headless browser (Debian's chromium + chromium-driver, selenium).

The site is built once from the committed reference runs (leaderboard/runs/). The browser tests skip only where
chromium, its driver or selenium is missing (.ci/run installs them), and say which.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from irob_bench.attacks.outcomes import load_outcomes, save_outcomes
from irob_bench.cli import main
from irob_bench.leaderboard.store import Store

REPO = Path(__file__).resolve().parents[1]
RUNS = sorted((REPO / "leaderboard" / "runs").glob("*.json"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


OLDER = "saturated-cifar-p8-standard-before-certification"


def _older_copy(tmp: Path) -> Path:
    """A committed run as runs made before certification existed are stored (no certificate record, no per-point
    certificates in its outcomes), under another name: the 'not run' case of the pages."""
    run = json.loads((REPO / "leaderboard" / "runs" / "saturated-cifar-p8-standard.json").read_text())
    outcomes = load_outcomes(REPO / run["outcomes_file"])
    outcomes.certified = None
    target = tmp / "older.json"
    save_outcomes(outcomes, f"{target}.outcomes.npz")
    run["submission"]["metadata"]["name"] = OLDER
    run["submission"]["file_sha256"] = hashlib.sha256(OLDER.encode()).hexdigest()  # another submission: another row
    run["metrics"]["certificate"] = None
    for row in run["metrics"]["per_eps"]:
        row["certified_accuracy"] = row["certified_reason"] = None
    run["outcomes_file"] = f"{target}.outcomes.npz"
    target.write_text(json.dumps(run))
    return target


def _db(tmp: Path) -> str:
    db = f"sqlite:///{tmp / 'board.db'}"
    for path in [*RUNS, _older_copy(tmp)]:
        assert main(["runs", "import", str(path), "--db", db]) == 0
    return db


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the committed runs and an older copy of one (outcomes files are recorded relative to the repository
    root), with the mnist board of the same database as JSON beside it."""
    tmp = tmp_path_factory.mktemp("site")
    here = os.getcwd()
    os.chdir(REPO)
    try:
        db = _db(tmp)
        assert main(["leaderboard", "--format", "html", "--out", str(tmp / "site"), "--db", db]) == 0
        assert main(["leaderboard", "--dataset", "mnist", "--format", "json", "--out", str(tmp / "mnist.json"), "--db", db]) == 0
    finally:
        os.chdir(here)
    return tmp / "site"


def _committed_names() -> set[str]:
    return {json.loads(p.read_text())["submission"]["metadata"]["name"] for p in RUNS}


def test_site_is_self_contained(site: Path) -> None:
    """Nothing is fetched from the network: no page or figure loads a remote script, style, image or font (links to
    papers may point out; XML namespace names in the SVGs are identifiers, never fetched)."""
    pages = list(site.rglob("*.html"))
    levels = {json.loads(path.read_text())["dataset"]["name"] for path in RUNS}  # a page per dataset with runs
    assert len(pages) == 1 + len(RUNS) + 1 + len(levels) + 1  # index, runs and the older copy, datasets, the pivot by p
    remote = ('src="http', 'src="//', 'rel="stylesheet" href="http', "url(http", "@import")
    for page in [*pages, *site.rglob("*.svg"), *site.rglob("*.css")]:
        text = page.read_text()
        assert not [r for r in remote if r in text], page
        assert "xlink:href=\"http" not in text and "<image" not in text or page.suffix == ".html", page
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    assert size < 150_000 * len(pages), size  # a page with its figures: under 150 kB on average (26 pages: 3.1 MB)


def test_empty_database_gives_a_page_that_says_so(tmp_path: Path) -> None:
    out, db = tmp_path / "empty-site", str(tmp_path / "empty.db")
    Store(db).close()  # a leaderboard with no runs (a --db naming no file is refused: tests/test_cli.py)
    assert main(["leaderboard", "--format", "html", "--out", str(out), "--db", db]) == 0
    text = (out / "index.html").read_text()
    assert "No runs stored yet" in text and "<table" not in text


def test_unwritable_out_is_one_line_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "never-opened.db"
    with pytest.raises(SystemExit) as exit_info:  # checked while parsing: no file can be made in /proc
        main(["leaderboard", "--format", "html", "--out", "/proc/irob-bench-site", "--db", str(db)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0 and "folder /proc is not writable" in err
    assert not db.exists()  # the database was never opened: the check came first
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert main(["leaderboard", "--format", "html", "--out", str(a_file), "--db", str(db)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_html_needs_out_and_text_formats_refuse_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", "--format", "html", "--db", str(tmp_path / "x.db")]) == 2
    assert "give it with --out DIR" in capsys.readouterr().err
    assert main(["leaderboard", "--format", "markdown", "--out", str(tmp_path), "--db", str(tmp_path / "x.db")]) == 2
    assert "is a folder" in capsys.readouterr().err


# ---- in the browser ----------------------------------------------------------------------------------------------


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    if CHROMIUM is None or DRIVER is None:
        return "chromium / chromium-driver not installed (apt-get install chromium chromium-driver; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_problems(driver, url: str) -> list[str]:
    """Load a page; every broken image (not loaded, or naturalWidth 0) and every console error, as lines."""
    driver.get(url)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Array.from(document.images).map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })))"
        ".then(() => done());"
    )
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);"
    )
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return [f"broken image {src}" for src in broken] + [f"console error: {m}" for m in errors]


def _names(driver, dataset: str, preset: str, column: int = 1) -> list[str]:
    """The visible rows' cells of one column of a board, top to bottom (column 1: the submission, 0: the rank)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "`table.board[data-dataset='${arguments[0]}'][data-preset='${arguments[1]}'] tbody tr`))"
        ".filter(r => !r.hidden).map(r => r.cells[arguments[2]].textContent.trim());",
        dataset, preset, column,
    )


def _largest_board(site: Path) -> tuple[str, list[dict]]:
    """The mnist table with the most rows, as the JSON render of the same database ranks it: (preset, rows).

    The committed rows move between tables as they are re-run with a new preset, so the expectations are read from
    the data rather than written down."""
    rows = json.loads((site.parent / "mnist.json").read_text())
    by_table: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        by_table.setdefault((row["dataset_version"], row["attack_preset"]), []).append(row)
    (_, preset), largest = max(by_table.items(), key=lambda kv: len(kv[1]))
    assert len(largest) >= 2 and len({r["clean_accuracy"] for r in largest}) >= 2  # else sorting shows nothing
    assert [k[1] for k in by_table].count(preset) == 1  # one table per preset here, so the selector below is exact
    return preset, largest


def test_index_shows_every_committed_run_and_sorts_by_a_clicked_column(browser, site: Path) -> None:
    from selenium.webdriver.common.by import By

    assert page_problems(browser, (site / "index.html").as_uri()) == []
    shown = browser.execute_script("return Array.from(document.querySelectorAll('table.board tbody tr'))"
                                   ".map(r => r.cells[1].textContent.trim());")  # fmt: skip
    assert sorted(shown) == sorted(_committed_names() | {OLDER})
    preset, rows = _largest_board(site)
    ranked = _names(browser, "mnist", preset)
    assert ranked == [r["submission"] for r in rows]  # by PGD at the ranking eps, as rendered
    ranks = _names(browser, "mnist", preset, column=0)
    assert ranks == [f"{r['rank']}{'=' if r['tied'] else ''}" for r in rows]  # ties under the paired test marked '='
    by_clean = [r["submission"] for r in sorted(rows, key=lambda r: r["clean_accuracy"])]
    header = browser.find_element(By.XPATH, f"//table[@data-dataset='mnist'][@data-preset='{preset}']//th[normalize-space()='clean']")
    header.click()
    assert _names(browser, "mnist", preset) == by_clean
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert _names(browser, "mnist", preset) == by_clean[::-1]
    by_name = browser.find_element(By.XPATH, f"//table[@data-dataset='mnist'][@data-preset='{preset}']//th[normalize-space()='submission']")
    by_name.click()
    assert _names(browser, "mnist", preset) == sorted(ranked)


def test_filter_by_training_method(browser, site: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    browser.find_element(By.ID, "filter").send_keys("trades")
    visible = browser.execute_script("return Array.from(document.querySelectorAll('table.board tbody tr'))"
                                     ".filter(r => !r.hidden).map(r => r.cells[1].textContent.trim());")  # fmt: skip
    assert visible == ["mnist-trades-eps3"]


def test_run_and_dataset_pages_load_every_figure_without_errors(browser, site: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    browser.find_element(By.LINK_TEXT, "mnist-trades-eps3").click()
    run_page = browser.current_url
    assert run_page.endswith(".html") and "/runs/run-" in run_page
    assert page_problems(browser, run_page) == []
    images = browser.execute_script("return Array.from(document.images).map(i => [i.src, i.naturalWidth]);")
    assert any(src.endswith("-robustness.svg") and width > 300 for src, width in images)
    assert any(src.endswith("-examples.png") and width > 300 for src, width in images)  # the image grid
    assert "irob-bench evaluate submission.py --dataset mnist --n-examples all" in browser.find_element(By.ID, "reproduce").text
    for page in sorted((site / "datasets").glob("*.html")):
        assert page_problems(browser, page.as_uri()) == [], page.name
        assert browser.execute_script("return document.images.length") >= 1


def test_control_a_broken_image_and_a_script_error_are_caught(browser, site: Path, tmp_path: Path) -> None:
    """The checks above can fail: a missing figure and a throwing script are both reported."""
    broken = site / "runs" / "control-broken.html"
    text = (site / "runs" / "run-1.html").read_text()
    broken.write_text(text.replace("-robustness.svg", "-missing.svg"))
    assert any(p.startswith("broken image") and "missing.svg" in p for p in page_problems(browser, broken.as_uri()))
    throwing = tmp_path / "throwing.html"
    throwing.write_text("<!doctype html><html><head><link rel='icon' href='data:,'></head><body>"
                        "<script>undefinedFunction()</script></body></html>")  # fmt: skip
    assert any("undefinedFunction" in p for p in page_problems(browser, throwing.as_uri()))
    broken.unlink()


def _board_cells(site: Path, submission: str) -> dict[str, str]:
    """The index's cells of one submission's row, by column header (text only)."""
    import re

    text = (site / "index.html").read_text()
    for table in re.findall(r"<table class=\"board\".*?</table>", text, re.S):
        heads = [re.sub(r"<.*?>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
        for row in re.findall(r"<tr data-run.*?</tr>", table, re.S):
            cells = [re.sub(r"<span class=\"ci\">.*?</span>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            cells = [" ".join(re.sub(r"<.*?>", " ", c).split()) for c in cells]
            if f">{submission}<" in row:
                return dict(zip(heads, cells, strict=True))
    raise AssertionError(f"no row for {submission}")


def test_index_shows_certified_accuracy_a_value_or_a_word(site: Path) -> None:
    """The certified defense's row has its certified accuracy; an older run says 'not run', never a blank or 0."""
    lipschitz = _board_cells(site, "mnist-lipschitz-eps2")
    stored = json.loads((REPO / "leaderboard" / "runs" / "mnist-lipschitz.json").read_text())["metrics"]["per_eps"]
    assert lipschitz["certified@2"] == f"{100 * stored[1]['certified_accuracy']:.1f}%"
    assert _board_cells(site, OLDER)["certified@1"] == "not run"  # made before certification
    plots = {p.name: "certified (lower bound)" in p.read_text() for p in (site / "plots").glob("run-*-robustness.svg")}
    assert any(plots.values()) and not all(plots.values())  # drawn where a run has certificates, only there


def test_run_pages_show_certified_accuracy_and_what_each_number_guarantees(site: Path) -> None:
    """A run page's eps table has the certified column (a value, or a word for older runs) and says what each number
    guarantees; a run without certificates is not told that its certified numbers are lower bounds (control)."""
    pages = [p.read_text() for p in (site / "runs").glob("run-*.html")]

    def page(name: str) -> str:
        return next(t for t in pages if f"<h1>{name} <small>" in t)

    def eps_table(text: str) -> str:
        return text.split("<th>certified</th>")[1].split("</table>")[0]

    stored = json.loads((REPO / "leaderboard" / "runs" / "mnist-lipschitz.json").read_text())["metrics"]["per_eps"]
    lipschitz = page("mnist-lipschitz-eps2")
    assert f"{100 * stored[1]['certified_accuracy']:.1f}%" in eps_table(lipschitz)
    assert "certified is a lower bound and PGD an upper bound" in lipschitz
    older = page(OLDER)
    assert "not run" in eps_table(older) and "certified is a lower bound" not in older
    assert "PGD is an upper bound on the true robust accuracy" in older


def test_run_pages_read_the_risk_as_the_ceilings_do(site: Path) -> None:
    """The alpha of a run page's bracket is the prior-weighted per-class risk the ceilings use, not 1 - clean accuracy
    (which weighs classes by their counts in the subset); control: on some committed run the two differ."""
    import re

    from irob_bench import datasets
    from irob_bench.metrics import overall_risk
    from irob_bench.results import EvaluationResult

    pages = {re.search(r"<h1>(.*?) <small>", t).group(1): t for t in (p.read_text() for p in (site / "runs").glob("run-*.html"))}
    differs = 0
    for path in RUNS:
        result = EvaluationResult.model_validate_json(path.read_text())
        risk = overall_risk(datasets.load_card(result.dataset.name).priors, result.metrics)
        shown = float(re.search(r"risk alpha = ([0-9.]+)", pages[result.submission.metadata.name]).group(1))
        assert shown == pytest.approx(risk, abs=5e-5)
        differs += abs(shown - (1 - result.metrics.clean_accuracy)) > 5e-5
    assert differs > 0


def test_a_run_without_ceilings_gets_no_bracket_caption_and_no_zoom(site: Path) -> None:
    """The saturated-cifar-p8 runs (no Lipschitz constants: s_8 has an infinite slope) were captioned with a bracket
    'up to the Thm 4.4 ceiling' and drawn with a 'zoom on the bracket' panel that hid their own points. Control: a
    p = 2 run, whose card has constants, keeps both."""
    def page_and_plot(dataset: str) -> tuple[str, str]:
        for page in (site / "runs").glob("run-*.html"):
            text = page.read_text()
            if f">{dataset}</a> v" in text:
                return text, (site / "plots" / f"{page.stem}-robustness.svg").read_text()
        raise AssertionError(dataset)

    text, plot = page_and_plot("saturated-cifar-p8")
    assert "No ceiling and no bracket" in text and "not established: s_8 has an infinite slope" in text
    assert "up to the Thm 4.4 ceiling" not in text and "zoom on the bracket" not in plot
    text, plot = page_and_plot("saturated-cifar-p2")
    assert "up to the Thm 4.4 ceiling" in text and "zoom on the bracket" in plot


def test_dataset_pages_say_which_levels_have_a_ceiling_and_why_not(site: Path) -> None:
    """The saturation page said 'p = inf has none' as if p = 4-64 had ceilings, and a p > 2 card read 'not estimated'
    though its note says no constant exists; the published database path was the builder's /tmp file."""
    note = (site / "datasets" / "saturated-cifar.html").read_text()
    assert "ceiling is drawn where the card has Lipschitz constants: p = 2." in note
    assert "No ceiling at p = 4: not established" in note and "; p = 8: not established" in note
    assert "p = inf: not established" in note
    assert "not established: s_8 has an infinite slope" in (site / "datasets" / "saturated-cifar-p8.html").read_text()
    assert "Database: board.db." in (site / "index.html").read_text()


def test_the_saturation_page_tables_each_plot_by_level_with_working_links(site: Path) -> None:
    """Under each eps's plot, its numbers as `leaderboard --by-p` prints them: a method's levels one under the other,
    each level linked to its own page (a link relative to the site root pointed at datasets/datasets/ once)."""
    import re

    page = (site / "datasets" / "saturated-cifar.html").read_text()
    tables = re.findall(r'<table class="levels">.*?</table>', page)
    saturated = [p for p in RUNS if p.name.startswith("saturated-cifar-")]
    assert len(tables) == 3 and all(t.count("<tr data-run=") == len(saturated) for t in tables)
    assert "<th class=\"\" scope=\"col\">PGD@1</th>" in tables[2] and "not established" in tables[2]
    for target in set(re.findall(r'<a href="([^"]+)">(?:2|8)</a>', "".join(tables))):
        assert (site / "datasets" / target).is_file(), target
