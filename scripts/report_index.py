"""Snakemake adapter: the cross-cohort index page (results/index.html), linking each cohort's report."""
from cohortflow.report.index import build_index
from cohortflow.scripting import run_step

run_step(
    snakemake,
    build_index,
    results_root=snakemake.params.results_root,
    cohorts=list(snakemake.params.cohorts),
    out_html=snakemake.output.html,
    config=dict(snakemake.params.config),
    min_cell_count=snakemake.params.privacy["min_cell_count"],
)
