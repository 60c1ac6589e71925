"""Snakemake adapter: meta-analysis of one trait over every cohort's GWAS (cohortflow.meta)."""
from cohortflow.meta.api import meta_analyse
from cohortflow.scripting import run_step

run_step(
    snakemake,
    meta_analyse,
    sumstats=list(snakemake.input.sumstats),
    names=list(snakemake.params.names),
    out=snakemake.output.sumstats,
    trait=snakemake.wildcards.trait,
    genes_gtf=(list(snakemake.input.genes) or [None])[0],
    p_threshold=snakemake.params.p_threshold,
    locus_window_kb=snakemake.params.locus_window_kb,
    threads=snakemake.threads,
)
