"""Snakemake adapter: alignment QC of one sample (samtools stats/flagstat, mosdepth coverage,
sex, contamination, metrics row)."""
from cohortflow.alignment.api import alignment_qc
from cohortflow.scripting import run_step

run_step(
    snakemake,
    alignment_qc,
    bam=snakemake.input.bam,
    out_prefix=snakemake.output.stats.removesuffix(".stats"),
    reference=snakemake.params.reference,
    regions=snakemake.input.targets or None,
    sites=snakemake.input.sites or None,
    sample=snakemake.wildcards.sample,
    threads=snakemake.threads,
    thresholds=snakemake.params.thresholds,
    write_empty_sites=True,
)
