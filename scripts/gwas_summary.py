"""Snakemake adapter: lambda GC, lead loci with nearest genes, Manhattan and QQ plots."""
from cohortflow.gwas.summary import summarize_gwas
from cohortflow.scripting import run_step

run_step(
    snakemake,
    summarize_gwas,
    sumstats=snakemake.input.sumstats,
    nopcs_sumstats=snakemake.input.nopcs,
    genes_gtf=snakemake.input.genes or None,
    trait=snakemake.wildcards.trait,
    out_leads=snakemake.output.leads,
    out_summary=snakemake.output.summary,
    out_manhattan=snakemake.output.manhattan,
    out_qq=snakemake.output.qq,
    p_threshold=snakemake.params.p_threshold,
    locus_window_kb=snakemake.params.locus_window_kb,
)
