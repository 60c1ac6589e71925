"""Snakemake adapter: clumping + thresholding scores from the discovery GWAS."""
from cohortflow.prs.ct import prs_ct
from cohortflow.scripting import run_step

prs = snakemake.params.prs
run_step(
    snakemake,
    prs_ct,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    sumstats=snakemake.input.sumstats,
    clump_p1=prs["clump_p1"],
    clump_r2=prs["clump_r2"],
    clump_kb=prs["clump_kb"],
    p_thresholds=tuple(prs["p_thresholds"]),
    keep_ambiguous=True,  # the cohort's own GWAS: alleles are the .bim's, strand is not in question
    out_prefix=snakemake.output.summary.removesuffix(".json"),
    threads=snakemake.threads,
)
