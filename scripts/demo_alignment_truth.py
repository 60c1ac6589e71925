"""Snakemake adapter: the planted answers of the demo alignment sheet (sex, swap, contamination)."""
from cohortflow.demo.reads import write_alignment_truth
from cohortflow.scripting import run_step

reads = snakemake.params.demo["reads"]
run_step(
    snakemake,
    write_alignment_truth,
    path=snakemake.output.truth,
    sheet=snakemake.input.sheet,
    sample_info=snakemake.input.samples,
    contamination=reads["contamination"],
    y_female_fraction=reads["y_female_fraction"],
)
