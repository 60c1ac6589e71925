"""Snakemake adapter: the samples and variants of the relatedness step (KING), once per cohort."""
from cohortflow.scripting import run_step
from cohortflow.variants.relatedness import king_masks_file

qc = snakemake.params.qc
run_step(
    snakemake,
    king_masks_file,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    out=snakemake.output.masks,
    mind=qc["mind"],
    geno=qc["geno"],
    maf=qc["maf"],
    hwe=qc["hwe"],
    max_variants=qc["king_max_variants"],
    threads=snakemake.threads,
)
