"""Snakemake adapter: the self-contained per-cohort HTML report."""
from cohortflow.report.api import build_report
from cohortflow.scripting import run_step
from cohortflow.provenance import command_line, git_commit

run_step(
    snakemake,
    build_report,
    results_dir=snakemake.params.results_dir,
    cohort=snakemake.wildcards.cohort,
    out_html=snakemake.output.html,
    config=dict(snakemake.params.config),
    inputs=list(snakemake.params.cohort_inputs),
    command_line=command_line(),
    git_commit=git_commit(),
    show_sample_ids=snakemake.params.report["show_sample_ids"],
    min_cell_count=snakemake.params.privacy["min_cell_count"],
)
