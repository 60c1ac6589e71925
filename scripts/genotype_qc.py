"""Snakemake adapter: genotype QC (call rate, sex check, relatives, MAF, HWE) -> filtered PLINK fileset + tables."""
from cohortflow.scripting import run_step
from cohortflow.variants.qc import genotype_qc, read_id_list

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
    remove_sex_problems=qc["remove_sex_problems"],
    remove_samples=read_id_list(snakemake.input.removed),
    king_cutoff=qc["king_cutoff"],
    threads=snakemake.threads,
)
