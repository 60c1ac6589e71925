"""Snakemake adapter: one table of all samples' alignment metrics."""
from cohortflow.alignment.api import summarize_alignment_qc
from cohortflow.scripting import run_step

run_step(snakemake, summarize_alignment_qc, metrics_paths=list(snakemake.input.metrics), out=snakemake.output.summary)
