"""Snakemake adapter: compare the demo's results with its planted answers."""
from cohortflow.demo.validate import check_truth
from cohortflow.scripting import run_step

run_step(
    snakemake,
    check_truth,
    truth_json=snakemake.input.truth[0],
    results_dir=snakemake.params.results_dir,
    p_threshold=snakemake.params.gwas["p_threshold"],
    locus_window_kb=snakemake.params.gwas["locus_window_kb"],
    out=snakemake.output.check,
)
