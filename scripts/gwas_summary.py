"""Snakemake adapter: lambda GC, lead loci by LD clumping on the QC'd genotypes (as plink1.9
--clump) with nearest genes, Manhattan, QQ and regional association plots."""
from cohortflow.gwas.summary import summarize_gwas
from cohortflow.scripting import run_step

run_step(
    snakemake,
    summarize_gwas,
    sumstats=snakemake.input.sumstats,
    nopcs_sumstats=snakemake.input.nopcs,
    genes_gtf=snakemake.input.genes or None,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    trait=snakemake.wildcards.trait,
    out_leads=snakemake.output.leads,
    out_summary=snakemake.output.summary,
    out_manhattan=snakemake.output.manhattan,
    out_qq=snakemake.output.qq,
    out_regional_dir=snakemake.output.regional,
    p_threshold=snakemake.params.p_threshold,
    locus_window_kb=snakemake.params.locus_window_kb,
    clump_r2=snakemake.params.clump_r2,
    clump_kb=snakemake.params.clump_kb,
    clump_p2=snakemake.params.clump_p2,
    max_regional_plots=snakemake.params.regional_plots_max,
    threads=snakemake.threads,
)
