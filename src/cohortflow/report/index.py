"""The cross-cohort index page: one row per cohort, linking to its report.

``results/index.html`` is written when a workflow runs several cohorts. Like the per-cohort
report it is one self-contained file (inline CSS and table script, no network request) and
carries aggregates only: the headline counts and key findings of each cohort's report, with
counts below ``min_cell_count`` suppressed the same way.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

import cohortflow
from cohortflow.errors import CohortflowError, ConfigError
from cohortflow.io.atomic import atomic_open
from cohortflow.report.model import fmt_int

# (facts key, column label); the counts come from the same section builders as the report's tiles
_COUNT_COLUMNS = (
    ("n_samples_out", "Samples after QC"),
    ("n_variants_out", "Variants after QC"),
    ("n_cells_out", "Cells after QC"),
)
_MAX_FINDINGS = 3


def cohort_overview(results_dir: str | Path, cohort: str, *, config: Mapping[str, Any], min_cell_count: int = 5) -> dict:
    """What the index shows of one cohort: its stage titles, headline counts (suppressed below
    ``min_cell_count``) and first key findings (results before data quality, as in the report's
    summary), from the same builders as its report."""
    from cohortflow.report.api import _DATA_SECTIONS, _RESULT_SECTIONS, stage_sections
    from cohortflow.report.model import suppress_count
    from cohortflow.report.sections import Context, Pseudonymiser

    results_dir = Path(results_dir)
    ctx = Context(results_dir=results_dir, cohort=cohort, config=config, min_count=min_cell_count,
                  pseudonymiser=Pseudonymiser([], enabled=True))
    sections = stage_sections(ctx) if results_dir.is_dir() else []
    counts = {}
    for key, label in _COUNT_COLUMNS:
        value = ctx.facts.get(key)
        text, key, _ = suppress_count(value, min_cell_count) if value is not None else ("", None, False)
        counts[label] = {"text": text, "sort": "" if key is None else f"{key:.0f}"}
    by_id = {s.id: s for s in sections}
    findings = [str(f) for sid in (*_RESULT_SECTIONS, *_DATA_SECTIONS) if sid in by_id for f in by_id[sid].findings]
    findings = findings[:_MAX_FINDINGS]
    return {"cohort": cohort, "stages": [s.title for s in sections], "counts": counts, "findings": findings}


def build_index(*, results_root: str | Path, cohorts: Iterable[str], out_html: str | Path,
                config: Mapping[str, Any] | None = None, min_cell_count: int = 5,
                generated_at: str | _dt.datetime | None = None) -> list[dict]:
    """Write ``out_html`` (e.g. ``results/index.html``): a table of ``cohorts`` (their results in
    ``results_root/{cohort}/``), each linking to ``{cohort}/report.html`` relative to the page.

    A cohort whose report is missing is listed without a link and marked so. Returns the rows.
    The bytes depend only on the results, the arguments and ``generated_at`` (default: now, UTC).
    """
    results_root = Path(results_root)
    cohorts = list(cohorts)
    if not cohorts:
        raise CohortflowError("no cohort to index")
    if len(set(cohorts)) != len(cohorts):
        raise ConfigError(f"cohort listed twice in {cohorts}")
    if generated_at is None:
        generated_at = _dt.datetime.now(_dt.timezone.utc)
    if isinstance(generated_at, _dt.datetime):
        generated_at = generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    out_dir = Path(out_html).resolve().parent
    rows = []
    for cohort in cohorts:
        row = cohort_overview(results_root / cohort, cohort, config=config or {}, min_cell_count=min_cell_count)
        report = results_root / cohort / "report.html"
        row["href"] = Path(os.path.relpath(report.resolve(), out_dir)).as_posix() if report.is_file() else None
        row["report_size"] = f"{report.stat().st_size / 1e6:.1f} MB" if report.is_file() else ""
        rows.append(row)
    labels = [label for _, label in _COUNT_COLUMNS if any(r["counts"][label]["text"] for r in rows)]
    html = _render(rows=rows, count_labels=labels, generated_at=generated_at)
    with atomic_open(out_html, "w") as fh:
        fh.write(html)
    return rows


def _render(*, rows: list[dict], count_labels: list[str], generated_at: str) -> str:
    from cohortflow.report.api import _template_text

    env = jinja2.Environment(loader=jinja2.FunctionLoader(_template_text), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("index.html.j2").render(
        rows=rows, count_labels=count_labels, n_cohorts=fmt_int(len(rows)), generated_at=generated_at,
        version=cohortflow.__version__, css=Markup(_template_text("style.css")), js=Markup(_template_text("table.js")))
