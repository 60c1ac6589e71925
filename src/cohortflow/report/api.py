"""Build the per-cohort HTML report from the files in ``results/{cohort}/``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

import cohortflow
from cohortflow.errors import ConfigError, CohortflowError
from cohortflow.io.atomic import atomic_open
from cohortflow.report.methods import methods_section
from cohortflow.report.model import (
    BulletList,
    Columns,
    Figure,
    FigureGrid,
    Paragraph,
    Section,
    StatTiles,
    Table,
    fmt_int,
)
from cohortflow.report.provenance import provenance_section
from cohortflow.report.sections import (
    Context,
    Pseudonymiser,
    alignment_sample_ids,
    alignment_section,
    cell_eqtl_section,
    gwas_section,
    integration_section,
    prs_section,
    qc_section,
    related_sample_ids,
    singlecell_section,
    spatial_section,
    truth_section,
)

# Section builders in report order; each returns None when its stage did not run.
_STAGE_BUILDERS = (
    truth_section,
    alignment_section,
    qc_section,
    gwas_section,
    prs_section,
    singlecell_section,
    spatial_section,
    integration_section,
    cell_eqtl_section,
)
# Summary findings: results first, then the data and its quality, each in this section order.
_RESULT_SECTIONS = ("gwas", "integration", "cell-eqtl", "prs")
_DATA_SECTIONS = ("known-answers", "alignment-qc", "genotype-qc", "single-cell", "spatial")


def build_report(
    *,
    results_dir: str | Path,
    cohort: str,
    out_html: str | Path,
    config: Mapping[str, Any],
    inputs: Iterable[str] = (),
    command_line: str = "",
    git_commit: str | None = None,
    show_sample_ids: bool = True,
    sample_level_tables: bool = True,
    min_cell_count: int = 5,
    generated_at: str | _dt.datetime | None = None,
) -> None:
    """Write ``out_html``: one self-contained HTML report of the cohort's results.

    Reads whatever stage outputs exist under ``results_dir`` (layout of docs/architecture.md); a
    stage whose files are absent has no section. Figures are embedded as base64 PNGs and the CSS
    and JavaScript are inline, so the file opens offline and makes no network request.

    Parameters
    ----------
    results_dir
        ``results/{cohort}``.
    cohort
        Cohort id shown in the title.
    out_html
        Output path, written atomically.
    config
        The resolved workflow configuration; shown in full under Provenance and used for the
        parameters quoted in Methods.
    inputs
        The cohort's input files (a directory expands to its files); listed with size and SHA-256.
    command_line, git_commit
        Shown under Provenance.
    show_sample_ids
        When False, sample IDs in sample-level tables (and in input paths, benchmark names and the
        command line) are replaced by ``sample-01``, ``sample-02``... in file order.
    sample_level_tables
        When False, per-sample tables and figures are left out: the alignment QC's per-sample
        table, failure list and per-sample figures, the closest related pairs, and the known-answer
        checks that name samples (``cohortflow export`` builds its copy of the report so).
    min_cell_count
        Counts of individuals or cells below this value in aggregate tables are shown as
        ``<min_cell_count``.
    generated_at
        Run date shown in the report (default: now, UTC). The output bytes depend only on the
        results, the arguments and this date.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise CohortflowError("results folder does not exist", path=results_dir)
    if isinstance(min_cell_count, bool) or not isinstance(min_cell_count, int) or min_cell_count < 1:
        raise ConfigError(f"min_cell_count must be a positive integer, got {min_cell_count!r}")
    if generated_at is None:
        generated_at = _dt.datetime.now(_dt.timezone.utc)
    if isinstance(generated_at, _dt.datetime):
        generated_at = generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()

    pseudonymiser = Pseudonymiser(alignment_sample_ids(results_dir) + related_sample_ids(results_dir),
                                  enabled=not show_sample_ids)
    ctx = Context(
        results_dir=results_dir,
        cohort=cohort,
        config=config,
        min_count=min_cell_count,
        pseudonymiser=pseudonymiser,
        sample_level_tables=sample_level_tables,
    )
    sections_of_stages = stage_sections(ctx)
    present = {s.id for s in sections_of_stages}
    if (Path(results_dir) / "prs" / "pgs.summary.json").is_file():
        present.add("pgs")  # published scores: their own methods paragraph
    if not any((Path(results_dir) / "prs").glob("*.evaluate.json")):
        present.discard("prs")  # only published scores ran: no paragraph on the cohort's own scores
    sections = [_summary_section(ctx, sections_of_stages)]
    sections += sections_of_stages
    sections.append(methods_section(present, config))
    sections.append(
        provenance_section(
            results_dir=results_dir,
            cohort=cohort,
            config=config,
            inputs=list(inputs),
            command_line=command_line,
            git_commit=git_commit,
            generated_at=generated_at,
            pseudonymiser=pseudonymiser,
        )
    )
    _number_tables_and_figures(sections)
    html = render(
        sections=sections,
        cohort=cohort,
        generated_at=generated_at,
        version=cohortflow.__version__,
        git_commit=git_commit,
    )
    with atomic_open(out_html, "w") as fh:
        fh.write(html)


def stage_sections(ctx: Context) -> list[Section]:
    """The sections of the stages whose outputs are in ``ctx.results_dir``, in report order
    (filling ``ctx.facts`` with the headline counts)."""
    return [s for s in (build(ctx) for build in _STAGE_BUILDERS) if s is not None]


def _summary_section(ctx: Context, stage_sections: list[Section]) -> Section:
    facts = ctx.facts
    tiles = []
    if facts.get("n_samples_out") is not None:
        if facts.get("n_samples_in") is not None:
            tiles.append((ctx.count_text(facts["n_samples_in"]), "samples genotyped"))
        tiles.append((ctx.count_text(facts["n_samples_out"]), "samples after QC"))
    elif facts.get("n_samples_sequenced") is not None:
        tiles.append((ctx.count_text(facts["n_samples_sequenced"]), "samples sequenced"))
    if facts.get("n_variants_in") is not None:
        tiles.append((fmt_int(facts["n_variants_in"]), "variants before QC"))
    if facts.get("n_variants_out") is not None:
        tiles.append((fmt_int(facts["n_variants_out"]), "variants after QC"))
    if facts.get("n_cells_out") is not None:
        tiles.append((ctx.count_text(facts["n_cells_out"]), "cells after QC"))
    by_id = {s.id: s for s in stage_sections}
    results = [f for sid in _RESULT_SECTIONS if sid in by_id for f in by_id[sid].findings]
    data = [f for sid in _DATA_SECTIONS if sid in by_id for f in by_id[sid].findings]
    section = Section("summary", "Summary")
    stages = ", ".join(s.title for s in stage_sections) or "none"
    section.blocks.append(Paragraph(f"Cohort {ctx.cohort}. Stages in this report: {stages}."))
    if tiles:
        section.blocks.append(StatTiles(tiles))
    if results:
        section.blocks.append(BulletList(results, title="Key findings"))
    if data:
        section.blocks.append(BulletList(data, title="Data and quality control"))
    if not results and not data:
        section.blocks.append(Paragraph("No stage results were found in the results folder.", cls="muted"))
    return section


def _number_tables_and_figures(sections: list[Section]) -> None:
    counters = {Table: 0, Figure: 0}

    def walk(blocks):
        for block in blocks:
            if isinstance(block, FigureGrid):
                walk(block.figures)
            elif isinstance(block, Columns):
                for column in block.blocks:
                    walk(column if isinstance(column, list) else [column])
            elif type(block) in counters:
                counters[type(block)] += 1
                block.number = counters[type(block)]

    for section in sections:
        walk(section.blocks)
        for sub in section.subsections:
            walk(sub.blocks)


def _template_text(name: str) -> str:
    return resources.files("cohortflow.report").joinpath("templates", name).read_text(encoding="utf-8")


def render(*, sections: list[Section], cohort: str, generated_at: str, version: str, git_commit: str | None) -> str:
    """The report HTML for already-built sections (CSS and JS inlined from the package)."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: _template_text(name)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        sections=sections,
        cohort=cohort,
        generated_at=generated_at,
        version=version,
        git_commit=git_commit,
        # Our own static assets: safe to inline; "</" cannot appear in them (checked in tests).
        css=Markup(_template_text("style.css")),
        js=Markup(_template_text("table.js")),
    )
