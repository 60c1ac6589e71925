"""Snakemake adapter: genotype QC (call rate, MAF, HWE) -> filtered PLINK fileset + tables."""
from cohortflow.scripting import run_step
from cohortflow.variants.qc import genotype_qc

qc = snakemake.params.qc
run_step(
    snakemake,
    genotype_qc,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    out_prefix=snakemake.output[0].removesuffix(".bed"),
    geno=qc["geno"],
    mind=qc["mind"],
    maf=qc["maf"],
    hwe=qc["hwe"],
)
