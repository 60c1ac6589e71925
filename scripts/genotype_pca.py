"""Snakemake adapter: ancestry PCA on the QC'd genotypes."""
from cohortflow.scripting import run_step
from cohortflow.variants.pca import genotype_pca

pca = snakemake.params.pca
run_step(
    snakemake,
    genotype_pca,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    out_prefix=snakemake.output.pcs.removesuffix(".pcs.tsv"),
    n_pcs=pca["n_pcs"],
    maf=pca["maf"],
    prune_window_kb=pca["prune_window_kb"],
    prune_r2=pca["prune_r2"],
    sample_info=snakemake.input.sample_info or None,
)
