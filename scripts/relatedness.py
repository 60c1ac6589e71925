"""Snakemake adapter: KING kinship and plink2's --king-cutoff removals (relatedness step of QC)."""
from cohortflow.scripting import run_step
from cohortflow.variants.relatedness import relatedness_qc

qc = snakemake.params.qc
run_step(
    snakemake,
    relatedness_qc,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    out_prefix=snakemake.output.kinship.removesuffix(".kinship.tsv"),
    cutoff=qc["king_cutoff"],
    mind=qc["mind"],
    geno=qc["geno"],
    maf=qc["maf"],
    hwe=qc["hwe"],
    max_variants=qc["king_max_variants"],
    threads=snakemake.threads,
)
