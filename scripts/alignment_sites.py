"""Snakemake adapter: the cohort's common SNPs (sites VCF) for the alignment QC's site checks."""
from cohortflow.alignment.sites import sites_from_plink
from cohortflow.scripting import run_step

run_step(
    snakemake,
    sites_from_plink,
    bed_prefix=snakemake.input.bed.removesuffix(".bed"),
    out=snakemake.output.vcf,
    min_maf=snakemake.params.min_maf,
    regions=snakemake.input.targets or None,
)
