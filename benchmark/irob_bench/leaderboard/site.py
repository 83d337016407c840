"""The leaderboard as a static, self-contained website: index.html (one sortable, filterable table per dataset,
version and attack preset), a page per run, a page per dataset, and for saturated-cifar a page pivoted by p.

Self-contained: our own CSS and script (static/), figures as files beside the pages, relative links only, nothing
fetched from the network, so the folder opens from file:// and publishes as is (GitHub Pages). Pages are written
from the stored rows and results only; the figures and image grids are in figures.py.
"""

from __future__ import annotations

import html
import json
import math
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from irob_bench.artifacts import atomic_write_text, read_npz
from irob_bench.attacks.examples import Examples
from irob_bench.datasets.card import DatasetCard
from irob_bench.leaderboard import figures
from irob_bench.leaderboard.by_level import level_runs
from irob_bench.leaderboard.intervals import accuracy_interval
from irob_bench.leaderboard.paired import RunOutcomes
from irob_bench.leaderboard.plot import ceiling_curve, plot_saturation, saturation_p
from irob_bench.leaderboard.render import (
    UNITS_NOTE,
    VERIFIED_TITLE,
    Ranked,
    bounds_note,
    certified_cell,
    has_certificates,
    percent,
    points,
    rank_label,
    ranked_groups,
    source,
    with_certified_reason,
)
from irob_bench.leaderboard.store import LEGACY_PRESET, EpsValues, LeaderboardRow
from irob_bench.metrics import overall_risk
from irob_bench.results import EpsMetrics, EvaluationResult

STATIC = ("site.css", "site.js")
SATURATED = "saturated-cifar"


@dataclass(frozen=True)
class SiteRun:
    """One stored run as the site needs it: its leaderboard row, full result and (if found) per-example outcomes."""

    row: LeaderboardRow
    result: EvaluationResult
    outcomes: RunOutcomes | None = None
    examples: Examples | None = None


@dataclass(frozen=True)
class SiteInputs:
    """Everything a site is built from; `cards` are the current cards of the shipped datasets among the runs, and
    `sample_images(name)` gives a dataset's labelled sample grid as (rows x cols x C x H x W, row labels) or None."""

    runs: list[SiteRun]
    source_label: str
    cards: dict[str, DatasetCard]
    notes: dict[str, str]
    eps: float | None = None
    verified_only: bool = False  # rank imported runs only once `runs verify` confirmed them (render.distrust)
    sample_images: Callable[[str], tuple[np.ndarray, list[str]] | None] | None = None


def e(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{e(title)}</title><link rel=\"icon\" href=\"data:,\">"
        f"<link rel=\"stylesheet\" href=\"{up}assets/site.css\"><script src=\"{up}assets/site.js\" defer></script>"
        f"</head><body><nav><a href=\"{up}index.html\">irob-bench leaderboard</a></nav>\n{body}\n</body></html>\n"
    )


def _td(text: str, sort: object = None, cls: str = "") -> str:
    attrs = (f' data-sort="{e(sort)}"' if sort is not None else "") + (f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{text}</td>"


def _acc_cell(value: float | None, n: int) -> str:
    if value is None:
        return _td("—", "")
    ci = accuracy_interval(value, n)
    return _td(f"{percent(value)}<span class=\"ci\">[{100 * ci.low:.1f}, {100 * ci.high:.1f}]</span>", f"{value:.6f}")


def _certified_cell(value: EpsValues | EpsMetrics | None, n: int) -> str:  # type: ignore[valid-type]
    """Certified accuracy with its interval, or worded: 'none' (no certificate), 'not run' (an older run)."""
    if value is None or value.certified_accuracy is not None:
        return _acc_cell(None if value is None else value.certified_accuracy, n)
    word = certified_cell(None, value.certified_reason)
    return _td(f"<span title=\"{e(value.certified_reason or '')}\">{e(word)}</span>", "-1")


def _pct_cell(value: float | None, kind: str = "pct") -> str:
    if value is None:
        return _td("—", "")
    return _td(points(value) if kind == "pp" else percent(value), f"{value:.6f}")


def run_page_name(run_id: int) -> str:
    """A run page's path, relative to the site's root."""
    return f"runs/run-{run_id}.html"


def dataset_page_name(name: str) -> str:
    """A dataset page's path, relative to the site's root."""
    return f"datasets/{name}.html"


def write_site(inputs: SiteInputs, out: Path) -> list[Path]:
    """Write the whole site into `out` (created if needed); returns the pages written."""
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("assets", "runs", "datasets", "plots"):
        (out / folder).mkdir(exist_ok=True)
    for name in STATIC:
        shutil.copyfile(str(resources.files("irob_bench.leaderboard") / "static" / name), out / "assets" / name)
    by_id = {r.row.run_id: r for r in inputs.runs}
    outcomes = {i: r.outcomes for i, r in by_id.items() if r.outcomes is not None}
    groups = ranked_groups([r.row for r in inputs.runs], inputs.eps, outcomes, inputs.verified_only)
    pages = [out / "index.html"]
    atomic_write_text(pages[0], _index(inputs, groups, by_id))
    for run in inputs.runs:
        pages.append(_write_run_page(inputs, run, out))
    for name in sorted({r.row.dataset for r in inputs.runs}):
        pages.append(_write_dataset_page(inputs, name, out))
    if any(name.startswith(SATURATED + "-") for name in inputs.cards):
        pages.append(_write_saturation_page(inputs, out))
    return pages


def _where(label: str) -> str:
    """The database as a published page may name it: a SQLite file by its name (its folder is the builder's), any
    other URL as its label (which hides passwords)."""
    return Path(label.removeprefix("sqlite:///")).name if label.startswith("sqlite:///") else label


def _index(inputs: SiteInputs, groups, by_id: dict[int, SiteRun]) -> str:
    head = (
        "<h1>irob-bench leaderboard</h1>"
        f"<p class=\"note\">Robust accuracy under L2 attacks on frozen generated distributions, with the ceilings of "
        f"Zhang et al. (Thm 4.3/4.4). Database: {e(_where(inputs.source_label))}. {e(bounds_note(True))} {e(UNITS_NOTE)} Click a column header to "
        "sort; type to filter by submission or training method.</p>"
    )
    if not groups:
        return _page("irob-bench leaderboard", head + "<p class=\"empty\">No runs stored yet: this leaderboard is empty. "
                     "Evaluate a submission with <code>irob-bench evaluate</code> to add one.</p>", 0)
    links = ", ".join(f"<a href=\"{dataset_page_name(n)}\">{e(n)}</a>" for n in sorted({k[0] for k, _ in groups}))
    if any(n.startswith(SATURATED + "-") for n in inputs.cards):
        links += f", <a href=\"{dataset_page_name(SATURATED)}\">saturated-cifar by p</a>"
    body = [head, f"<p>Datasets: {links}</p>",
            "<p><label>Filter: <input id=\"filter\" type=\"search\" placeholder=\"name or training method\"></label></p>"]
    for (name, version, preset), (at, ranked) in groups:
        body.append(_board(name, version, preset, at, ranked, by_id, inputs.notes.get(name), inputs.verified_only))
    return _page("irob-bench leaderboard", "\n".join(body), 0)


def _board(name: str, version: str, preset: str, at: float, ranked: Sequence[Ranked], by_id, note: str | None,
           verified_only: bool) -> str:  # fmt: skip
    grid = sorted({v.eps for r in ranked for v in r.row.per_eps})
    has_in = any(v.robust_accuracy_in_distribution is not None for r in ranked for v in r.row.per_eps)
    has_ceiling = any(v.ceiling_classifier is not None for r in ranked for v in r.row.per_eps)
    has_certified = any(v.certified_accuracy is not None or v.certified_reason is not None
                        for r in ranked for v in r.row.per_eps)
    heads = ["rank", "submission", "training", "clean"] + ([f"certified@{g:g}" for g in grid] if has_certified else [])
    heads += [f"PGD@{g:g}" for g in grid]
    heads += [f"in-dist@{g:g}" for g in grid] if has_in else []
    heads += [f"ceiling@{g:g}" for g in grid] + [f"gap@{g:g} (pp)" for g in grid] if has_ceiling else []
    heads += ["attacks", "flags", "source", "n", "date"]
    text_columns = {"submission", "training", "flags", "source"}
    rows = []
    for position, r in enumerate(ranked):
        row, result = r.row, by_id[r.row.run_id].result
        at_eps = [row.at(g) for g in grid]
        label = rank_label(r) or "—"
        cells = [_td(f"<span class=\"tie\">{e(label)}</span>" if r.tied else e(label), position),
                 _td(f"<a href=\"{run_page_name(row.run_id)}\">{e(row.submission)}</a>", row.submission.lower(), "text"),
                 _td(e(row.training), row.training.lower(), "text"),
                 _acc_cell(row.clean_accuracy, row.n_examples)]  # fmt: skip
        if has_certified:
            cells += [_certified_cell(v, row.n_examples) for v in at_eps]
        cells += [_acc_cell(None if v is None else v.robust_accuracy_pgd, row.n_examples) for v in at_eps]
        if has_in:
            cells += [_acc_cell(None if v is None else v.robust_accuracy_in_distribution, row.n_examples) for v in at_eps]
        if has_ceiling:
            cells += [_pct_cell(None if v is None else v.ceiling_classifier) for v in at_eps]
            cells += [_pct_cell(None if v is None else v.gap, "pp") for v in at_eps]
        flags = "".join(f"<span class=\"flag\" title=\"{e(f.message)}\">{e(f.name)}</span>" for f in result.flags)
        cells += [_td(e(row.attack_preset), row.attack_preset), _td(flags or "none", len(result.flags), "text"),
                  _td(e(source(row)), source(row), "text"), _td(str(row.n_examples), row.n_examples),
                  _td(row.created_at.date().isoformat())]  # fmt: skip
        filter_text = e(f"{row.submission} {row.training}")
        rows.append(f"<tr data-run=\"{row.run_id}\" data-filter=\"{filter_text}\">{''.join(cells)}</tr>")
    header = "".join(f"<th class=\"{'text' if h in text_columns else ''}\" scope=\"col\">{e(h)}</th>" for h in heads)
    title = f"{name} v{version}, attacks {preset}: ranked by PGD robust accuracy at eps {at:g}{VERIFIED_TITLE * verified_only}"
    note_html = f"<p class=\"note\">{e(note)}</p>" if note else ""
    return (f"<section><h2 id=\"{e(name)}-{e(preset)}\">{e(title)}</h2>{note_html}<div class=\"scroll\">"
            f"<table class=\"board\" data-dataset=\"{e(name)}\" data-preset=\"{e(preset)}\"><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")  # fmt: skip


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    """A key-value table; values are HTML already."""
    return "<table class=\"kv\">" + "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def reproduce_command(result: EvaluationResult, card: DatasetCard | None) -> str:
    """The exact `irob-bench evaluate` command that re-makes a run (the submission file is the one hashed)."""
    s = result.settings
    n = "all" if card is not None and s.n_examples == card.splits["test"].size else str(s.n_examples)
    preset = str(s.attacks.get("preset", LEGACY_PRESET))
    return (f"irob-bench evaluate submission.py --dataset {result.dataset.name} --n-examples {n} "
            f"--eps {' '.join(f'{x:g}' for x in s.eps)} --seed {s.seed} --batch-size {s.batch_size} "
            f"--attacks {preset} --device {s.device}")  # fmt: skip


def _risk(inputs: SiteInputs, run: SiteRun) -> float:
    """The run's risk alpha as its ceilings read it: per-class risks weighted by the card's priors (equal priors for a
    dataset this irob-bench does not ship)."""
    card, m = inputs.cards.get(run.row.dataset), run.result.metrics
    priors = card.priors if card is not None else [1.0 / len(m.per_class_accuracy)] * len(m.per_class_accuracy)
    return overall_risk(priors, m)


def _lower_estimates(inputs: SiteInputs, run: SiteRun) -> figures.Series:
    """The best in-distribution robust accuracy seen per eps among this dataset's runs with risk >= this run's
    (Zhang et al., Remark 4.6: each is a lower estimate of the intrinsic robustness at this risk)."""
    eps = list(run.result.settings.eps)
    risk = _risk(inputs, run)
    peers = [r.row for r in inputs.runs if r.row.dataset == run.row.dataset and _risk(inputs, r) >= risk]
    best: list[float | None] = []
    for x in eps:
        seen = [v.robust_accuracy_in_distribution for p in peers if (v := p.at(x)) is not None
                and v.robust_accuracy_in_distribution is not None]  # fmt: skip
        best.append(max(seen) if seen else None)
    return figures.Series("best in-distribution seen", eps, best, run.row.n_examples, figures.IN_DIST_COLOUR)


def _write_run_page(inputs: SiteInputs, run: SiteRun, out: Path) -> Path:
    result, row = run.result, run.row
    meta, data, s, m = result.submission.metadata, result.dataset, result.settings, result.metrics
    card = inputs.cards.get(data.name)
    eps = list(s.eps)
    pgd = [m.at(x).robust_accuracy_pgd for x in eps]
    in_dist = [m.at(x).robust_accuracy_in_distribution for x in eps]
    series = [figures.Series("PGD (unconstrained)", eps, pgd, s.n_examples, figures.PGD_COLOUR)]  # type: ignore[arg-type]
    certified = [m.at(x).certified_accuracy for x in eps]
    if any(v is not None for v in certified):  # a lower bound on this model's true robust accuracy: the sandwich's floor
        series.append(figures.Series("certified (lower bound)", eps, certified, s.n_examples, figures.CERTIFIED_COLOUR, "^"))
    if any(v is not None for v in in_dist):
        series.append(figures.Series("in-distribution", eps, in_dist, s.n_examples, figures.IN_DIST_COLOUR, "s"))
    alpha = _risk(inputs, run)
    ceiling = [figures.theorem_44(card, x, alpha)[0] if card is not None else None for x in eps]
    bracket = figures.Bracket(eps, ceiling, [_lower_estimates(inputs, run)])
    plot = f"plots/run-{row.run_id}-robustness.svg"
    figures.run_robustness(series, bracket, ceiling_curve(result, eps), f"{meta.name} on {data.name}", out / plot)
    classes = card.classes if card is not None else [str(c) for c in range(len(m.per_class_accuracy))]
    paper = f"<a href=\"{e(meta.paper_url)}\">{e(meta.paper_url)}</a>" if meta.paper_url else "—"
    body = [
        f"<h1>{e(meta.name)} <small>on <a href=\"../{dataset_page_name(data.name)}\">{e(data.name)}</a> v{e(data.version)}"
        f"</small></h1><p class=\"note\">run {row.run_id}, {e(source(row))}, attacks {e(row.attack_preset)}, "
        f"{e(result.created_at)}, irob-bench {e(result.irob_bench_version)}</p>",
        "<h2>Submission</h2>" + _kv([
            ("authors", e(", ".join(meta.authors))), ("training", e(meta.training)),
            ("description", e(meta.description) or "—"), ("paper", paper), ("randomized", "yes" if meta.randomized else "no"),
        ]),  # fmt: skip
    ]
    if meta.bibtex:
        body.append(f"<h3>BibTeX</h3><pre>{e(meta.bibtex)}</pre>")
    shaded = (
        f"Shaded: the bracket of the dataset's intrinsic robustness at this run's risk alpha = {alpha:.4f}: from the best "
        "in-distribution robust accuracy of any run here with risk &gt;= alpha (Remark 4.6) up to the Thm 4.4 ceiling for "
        "classifiers of risk &gt;= alpha." if any(c is not None for c in ceiling) else
        f"No ceiling and no bracket at this run's risk alpha = {alpha:.4f}: "
        + e(card.no_constant if card is not None and card.no_constant else "the card has no Lipschitz constants") + "."
    )
    body.append(
        f"<h2>Robust accuracy</h2><figure><img src=\"../{plot}\" alt=\"robust accuracy against eps\">"
        "<figcaption>Points: measured robust accuracy at each eps, bands their Wilson 95% intervals over the "
        f"{s.n_examples} test points. {shaded}</figcaption></figure>"
    )
    body.append(_eps_table(result))
    body.append("<h2>Per-class clean accuracy</h2><table><thead><tr><th class=\"text\">class</th><th>accuracy</th>"
                "<th>test points</th></tr></thead><tbody>" + "".join(
                    f"<tr><td class=\"text\">{e(classes[c]) if c < len(classes) else c}</td>{_acc_cell(a if n else None, n)}"
                    f"<td>{n}</td></tr>" for c, (a, n) in enumerate(zip(m.per_class_accuracy, m.per_class_count))
                ) + "</tbody></table>")  # fmt: skip
    body.append(_examples_html(run.examples, classes, row.run_id, max(eps), out))
    flags = "".join(f"<li><b>{e(f.name)}</b>{'' if f.eps is None else f' (eps {f.eps:g})'}: {e(f.message)}</li>"
                    for f in result.flags)  # fmt: skip
    body.append(f"<h2>Sanity flags</h2>{'<ul>' + flags + '</ul>' if flags else '<p>none raised</p>'}")
    body.append("<h2>Settings</h2>" + _kv([
        ("eps", e(", ".join(f"{x:g}" for x in eps))),
        ("test points", e(f"{s.n_examples} (subset seed {s.subset_seed})")), ("attack seed", str(s.seed)),
        ("batch size / device", e(f"{s.batch_size} / {s.device}")),
        ("attacks", f"<pre>{e(json.dumps(s.attacks, indent=1, sort_keys=True))}</pre>"),
    ]))  # fmt: skip
    hashes = [("fingerprint", result.fingerprint()), ("submission file sha256", result.submission.file_sha256)]
    hashes += [(f"weights {k} sha256", v) for k, v in result.submission.weights_sha256.items()]
    hashes += [(f"dataset {part} sha256", getattr(data, f"{part}_sha256") or "—") for part in ("generator", "latents", "labels", "images")]
    hashes += [("test indices sha256", s.indices_sha256)]
    body.append("<h2>Hashes</h2>" + _kv([(k, f"<code>{e(v)}</code>") for k, v in hashes]))
    preset_note = ""
    if "@" in row.attack_preset or row.attack_preset == LEGACY_PRESET:
        preset_note = (f"<p class=\"note\">This run's attack preset is an earlier definition ({e(row.attack_preset)}): "
                       f"reproduce it with irob-bench {e(result.irob_bench_version)}.</p>")  # fmt: skip
    body.append("<h2>Reproduce</h2><p>With the submission file whose sha256 is above, and its weights:</p>"
                f"<pre id=\"reproduce\">{e(reproduce_command(result, card))}</pre>{preset_note}")
    target = out / run_page_name(row.run_id)
    atomic_write_text(target, _page(f"{meta.name} on {data.name}", "\n".join(body), 1))
    return target


def stored_examples(result: EvaluationResult, root: Path = Path(".")) -> Examples | None:
    """The example points kept in a run's outcomes file, None if it has none (or no readable file)."""
    if not result.outcomes_file:
        return None
    path = Path(result.outcomes_file)
    try:
        return Examples.from_arrays(read_npz(path if path.is_absolute() else root / path))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _examples_html(examples: Examples | None, classes: Sequence[str], run_id: int, max_eps: float, out: Path) -> str:
    """The image grid of a run's example points (clean / PGD / on-manifold with predicted labels), or why none."""
    if examples is None or len(examples.indices) == 0:
        return ("<h2>Examples</h2><p>No example images are stored with this run (runs made before irob-bench kept "
                "them can get them with <code>irob-bench runs examples</code>).</p>")

    def name(c: int) -> str:
        return classes[c] if 0 <= c < len(classes) else str(c)

    kinds = [("clean", examples.clean), ("PGD", examples.pgd), ("on-manifold", examples.in_distribution)]
    images = np.stack([img for _, img in kinds]).astype(np.float32) / 255.0
    labels: list[list[str]] = [[], [], []]
    for k in range(len(examples.indices)):
        mark = "" if examples.matches[k] else " *"
        labels[0].append(f"{name(int(examples.labels[k]))}: {name(int(examples.predicted[k, 0]))}{mark}")
        for row in (1, 2):
            d, pred = examples.distance[k, row - 1], int(examples.predicted[k, row])
            if not math.isfinite(d):
                images[row, k] = 0.5
                labels[row].append("none found")
            elif pred < 0:  # a verified adversarial on which the model's logits are not finite
                labels[row].append(f"no class (non-finite logits), d={d:.2f}")
            else:
                labels[row].append(f"{name(pred)}, d={d:.2f}")
    plot = f"plots/run-{run_id}-examples.png"
    figures.image_grid(images, [k for k, _ in kinds], [], out / plot, labels)
    return (f"<h2>Examples</h2><figure><img src=\"../{plot}\" alt=\"clean and adversarial examples\">"
            "<figcaption>The run's first correctly classified test points. Top: the clean image, labelled "
            "true class: predicted. Middle: the verified PGD adversarial (searched within the largest eps, "
            f"{max_eps:g}), labelled predicted class and L2 distance d. Bottom: the verified on-manifold adversarial "
            "g(z', y) (the in-distribution attack's search is not bounded by eps: compare d with the eps grid). "
            f"Grey: none found.{_mismatch_note(examples)}</figcaption></figure>")


def _mismatch_note(examples: Examples) -> str:
    if examples.matches.all():
        return ""
    return (f" * {int((~examples.matches).sum())} of these points were re-made after the run with attack settings this "
            "version reads differently (irob-bench runs examples), and their PGD outcome differs from the run's.")


def _eps_table(result: EvaluationResult) -> str:
    n = result.settings.n_examples
    rows = []
    for x in result.metrics.per_eps:
        rows.append(f"<tr><td>{x.eps:g}</td>{_certified_cell(with_certified_reason(x), n)}{_acc_cell(x.robust_accuracy_pgd, n)}"
                    f"{_acc_cell(x.robust_accuracy_in_distribution, n)}{_pct_cell(x.ceiling_classifier)}"
                    f"{_pct_cell(x.ceiling_dataset_overall)}{_pct_cell(x.ceiling_dataset_per_class)}"
                    f"{_pct_cell(x.gap, 'pp')}</tr>")  # fmt: skip
    reasons = [f"<li>eps {x.eps:g}, {e(k)}: {e(v)}</li>" for x in result.metrics.per_eps for k, v in x.ceiling_reasons.items()]
    return (f"<p class=\"note\">{e(bounds_note(has_certificates(result.metrics.per_eps)))}</p>"
            "<table><thead><tr><th>eps</th><th>certified</th><th>PGD</th><th>in-distribution</th><th>ceiling (Thm 4.3)</th>"
            "<th>ceiling (Thm 4.4, risk)</th><th>ceiling (Thm 4.4, per class)</th><th>gap (pp)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>" + (f"<p>Ceilings not established:</p><ul>{''.join(reasons)}</ul>"
                                                          if reasons else ""))  # fmt: skip


def _card_html(card: DatasetCard) -> str:
    gen, test = card.generator, card.splits["test"]
    pairs = [
        ("version", e(card.version)), ("description", e(card.description)),
        ("generator", e(f"{gen.architecture} {json.dumps(gen.kwargs, sort_keys=True)}"
                        + (f", output transform {json.dumps(gen.output_transform)}" if gen.output_transform else ""))),
        ("generator weights sha256", f"<code>{e(gen.weights_sha256 or '—')}</code>"),
        ("classes (prior)", e(", ".join(f"{c} ({p:g})" for c, p in zip(card.classes, card.priors)))),
        ("image shape", e(" x ".join(str(d) for d in card.image_shape))), ("threat model", e(card.threat_model)),
        ("eps grid", e(", ".join(f"{x:g}" for x in card.eps_grid))), ("reference alpha", e(f"{card.reference_alpha:g}")),
        ("test split", e(f"{test.size} points, seed {test.seed}")),
    ]  # fmt: skip
    pairs += [(f"test {k}", f"<code>{e(v)}</code>") for k, v in test.model_dump().items() if k.endswith("sha256") and v]
    lip = card.lipschitz
    if lip is None:
        pairs.append(("Lipschitz constants", e(card.no_constant or "not estimated: no ceiling")))
    else:
        pairs.append(("Lipschitz constants L_y(r)", e(", ".join(f"{c}: {v:.3g}" for c, v in zip(card.classes, lip.constants)))))
        pairs.append(("confidence", e(lip.statement())))
        pairs += [(f"estimate ({x.method})", e(f"S = {x.samples} anchors per class, rank k = {x.rank}, delta = {x.delta:g}, "
                                               f"beta = {x.beta:g}, delta' = {x.delta_prime:.3g}"))
                  for x in lip.estimates]  # fmt: skip
    pairs += [(f"note: {k}", e(v)) for k, v in card.notes.items()]
    return _kv(pairs)


def _write_dataset_page(inputs: SiteInputs, name: str, out: Path) -> Path:
    card = inputs.cards.get(name)
    runs = [r for r in inputs.runs if r.row.dataset == name]
    body = [f"<h1>{e(name)}</h1>"]
    if card is None:
        body.append("<p>Not a dataset shipped with this irob-bench: no card to show.</p>")
    else:
        body.append("<h2>Card</h2>" + _card_html(card))
        grid = inputs.sample_images(name) if inputs.sample_images is not None else None
        if grid is not None:
            images, labels = grid
            figures.image_grid(images, labels, [], out / f"plots/{name}-samples.png")
            body.append(f"<h2>Samples</h2><figure><img src=\"../plots/{name}-samples.png\" alt=\"sample grid of {e(name)}\">"
                        "<figcaption>The first frozen test points of each class (one row per class).</figcaption></figure>")
        if card.lipschitz is not None:
            figures.dataset_ceilings(card, out / f"plots/{name}-ceilings.svg")
            body.append(f"<h2>Ceilings against eps</h2><figure><img src=\"../plots/{name}-ceilings.svg\" "
                        "alt=\"dataset ceilings against eps\"></figure>")
        points = [figures.RunPoint(
            label=r.row.submission, alpha=max(1e-3, _risk(inputs, r)),
            pgd={x: v.robust_accuracy_pgd for x in card.eps_grid if (v := r.row.at(x)) is not None},
            in_distribution={x: v.robust_accuracy_in_distribution for x in card.eps_grid
                             if (v := r.row.at(x)) is not None and v.robust_accuracy_in_distribution is not None},
        ) for r in runs]  # fmt: skip
        figures.alpha_plot(card, points, out / f"plots/{name}-alpha.svg")
        body.append(f"<h2>Robustness against risk</h2><figure><img src=\"../plots/{name}-alpha.svg\" "
                    "alt=\"robust accuracy against alpha\"><figcaption>Zhang et al., Figure 2: every run "
                    "at (alpha = its risk, robust accuracy), PGD filled, in-distribution open. Solid: Thm 4.4's first "
                    "form, the ceiling of any classifier of risk &gt;= alpha (defined up to the smallest prior), the "
                    "one that bounds a run at its alpha; dashed: its second form, which bounds only classifiers whose "
                    "every class risk is &gt;= alpha (none where the card has no Lipschitz constants). A run with "
                    "alpha below 0.001 is drawn at 0.001.</figcaption></figure>")
    body.append("<h2>Runs</h2><ul>" + "".join(
        f"<li><a href=\"../{run_page_name(r.row.run_id)}\">{e(r.row.submission)}</a> (run {r.row.run_id})</li>" for r in runs
    ) + "</ul>")  # fmt: skip
    target = out / dataset_page_name(name)
    atomic_write_text(target, _page(name, "\n".join(body), 1))
    return target


def _write_saturation_page(inputs: SiteInputs, out: Path) -> Path:
    cards = sorted((c for n, c in inputs.cards.items() if n.startswith(SATURATED + "-") and saturation_p(c) is not None),
                   key=saturation_p)  # p = 2, 4, ..., inf
    results = [r.result for r in inputs.runs if r.row.dataset.startswith(SATURATED + "-")]
    body = ["<h1>saturated-cifar, pivoted by the saturation level p</h1>"]
    for eps in cards[0].eps_grid:
        plot = f"plots/{SATURATED}-p-eps{eps:g}.svg"
        plot_saturation(results, cards, eps, out / plot)
        body.append(f"<figure><img src=\"../{plot}\" alt=\"accuracy against p at eps {eps:g}\"></figure>")
        body.append(_level_table([r.row for r in inputs.runs], {c.name: saturation_p(c) for c in cards}, eps))
    levels = ", ".join(f"<a href=\"{c.name}.html\">p = {saturation_p(c):g}</a>" for c in cards
                       if any(r.row.dataset == c.name for r in inputs.runs))  # fmt: skip
    with_ceiling = ", ".join(f"p = {saturation_p(c):g}" for c in cards if c.lipschitz is not None) or "none"
    without = "; ".join(f"p = {saturation_p(c):g}: {e(c.no_constant or 'no Lipschitz constants yet')}" for c in cards
                        if c.lipschitz is None)
    body.append(f"<p class=\"note\">Markers only where a run exists (levels with runs: {levels or 'none'}). The dataset "
                f"ceiling is drawn where the card has Lipschitz constants: {with_ceiling}."
                + (f" No ceiling at {without}." if without else "") + "</p>")
    target = out / dataset_page_name(SATURATED)
    atomic_write_text(target, _page("saturated-cifar by p", "\n".join(body), 1))
    return target


def _level_table(rows: Sequence[LeaderboardRow], levels: dict[str, float], eps: float) -> str:
    """The plot's numbers as a table (`leaderboard --by-p`): per training method its levels in order of p."""
    heads = ["training", "attacks", "version", "p", "clean", f"PGD@{eps:g}", f"in-dist@{eps:g}", f"ceiling@{eps:g}", "n"]
    lines = []
    for p, row in level_runs(rows, levels):
        at = row.at(eps)
        ceiling = at and at.ceiling_classifier
        cells = [_td(e(row.training), row.training.lower(), "text"), _td(e(row.attack_preset), row.attack_preset, "text"),
                 _td(e(row.dataset_version), row.dataset_version, "text"),
                 _td(f"<a href=\"{e(row.dataset)}.html\">{p:g}</a>", p if math.isfinite(p) else 1e9),
                 _acc_cell(row.clean_accuracy, row.n_examples),
                 _acc_cell(at and at.robust_accuracy_pgd, row.n_examples),
                 _acc_cell(at and at.robust_accuracy_in_distribution, row.n_examples),
                 _td("not established", "") if at is not None and ceiling is None else _pct_cell(ceiling),
                 _td(str(row.n_examples), row.n_examples)]  # fmt: skip
        lines.append(f"<tr data-run=\"{row.run_id}\">{''.join(cells)}</tr>")
    header = "".join(f"<th class=\"{'text' if k < 3 else ''}\" scope=\"col\">{e(h)}</th>" for k, h in enumerate(heads))
    return (f"<div class=\"scroll\"><table class=\"levels\"><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table></div>")


def shipped_samples(name: str, per_class: int = 6) -> tuple[np.ndarray, list[str]] | None:
    """The first `per_class` frozen test images of each class of a shipped dataset, (classes x per_class x C x H x W),
    and the class names; None if its generator cannot be loaded here."""
    from irob_bench import datasets
    from irob_bench.errors import IrobError

    try:
        dataset = datasets.load(name)
        labels = dataset.labels("test").numpy()
        picks = [np.flatnonzero(labels == c)[:per_class] for c in range(dataset.num_classes)]
        if any(len(p) < per_class for p in picks):
            return None
        images = dataset.images("test", indices=np.concatenate(picks).tolist()).numpy()
    except (IrobError, OSError):
        return None
    return images.reshape(dataset.num_classes, per_class, *images.shape[1:]), list(dataset.card.classes)
