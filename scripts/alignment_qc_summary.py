"""Snakemake adapter: the cohort's alignment QC table with the sex and identity (swap) checks."""
from cohortflow.alignment.api import summarize_alignment_qc
from cohortflow.scripting import run_step

genotypes = [p for p in snakemake.input.genotypes if p.endswith(".bed")]
run_step(
    snakemake,
    summarize_alignment_qc,
    metrics_paths=list(snakemake.input.metrics),
    out=snakemake.output.summary,
    site_counts=list(snakemake.input.site_counts),
    genotypes=genotypes[0].removesuffix(".bed") if genotypes else None,
    sample_info=snakemake.input.sample_info or None,
    identity_out=snakemake.output.identity,
    **snakemake.params.identity,
)
