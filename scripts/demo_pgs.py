"""Snakemake adapter: the demo's published-score file, with its expected variant-match counts."""
from cohortflow.demo.pgs import write_demo_scoring_file
from cohortflow.scripting import run_step

run_step(snakemake, write_demo_scoring_file, truth_json=snakemake.input.truth, bim=snakemake.input.bim,
         out=snakemake.output.scores)
