"""Snakemake adapter: the cohort's export bundle (aggregate results, disclosure-checked)."""
from cohortflow.export.bundle import export_bundle
from cohortflow.provenance import git_commit
from cohortflow.scripting import run_step

run_step(
    snakemake,
    export_bundle,
    cohort_results=snakemake.params.results_dir,
    out=snakemake.output.bundle,
    cohort=snakemake.wildcards.cohort,
    min_mac=snakemake.params.min_mac,
    min_cell_count=snakemake.params.min_cell_count,
    config=dict(snakemake.params.config),
    git_commit=git_commit(),
)
