"""Snakemake adapter: samtools-compatible alignment QC of one sample."""
from cohortflow.alignment.api import alignment_qc
from cohortflow.scripting import run_step

run_step(
    snakemake,
    alignment_qc,
    bam=snakemake.input.bam,
    out_prefix=snakemake.output.stats.removesuffix(".stats"),
    reference=snakemake.params.reference,
    sample=snakemake.wildcards.sample,
    threads=snakemake.threads,
    thresholds=snakemake.params.thresholds,
)
