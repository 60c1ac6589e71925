"""Snakemake adapter: gather the QC shards -> filtered PLINK fileset, sample and variant tables, figures, summary."""
from cohortflow.scripting import run_step
from cohortflow.variants.qc import genotype_qc_gather, read_id_list

qc = snakemake.params.qc
run_step(
    snakemake,
    genotype_qc_gather,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    stats_parts=list(snakemake.input.stats),
    filtered_parts=list(snakemake.input.filtered),
    bed_parts=list(snakemake.input.bed_parts),
    out_prefix=snakemake.output[0].removesuffix(".bed"),
    remove_samples=read_id_list(snakemake.input.removed),
    geno=qc["geno"],
    mind=qc["mind"],
    maf=qc["maf"],
    hwe=qc["hwe"],
    remove_sex_problems=qc["remove_sex_problems"],
    king_cutoff=qc["king_cutoff"],
)
