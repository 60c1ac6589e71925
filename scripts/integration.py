"""Snakemake adapter: GWAS -> gene scores -> per-cell disease scores -> cell-type ranking."""
from cohortflow.scripting import run_step
from cohortflow.singlecell.integration import integrate

p = snakemake.params.integration
run_step(
    snakemake,
    integrate,
    sumstats=snakemake.input.sumstats,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    genes_gtf=snakemake.input.genes,
    sc_h5ad=snakemake.input.sc,
    trait=snakemake.wildcards.trait,
    n_genes=p["n_genes"],
    fdr=p.get("fdr"),
    fwer=p.get("fwer"),
    n_min=p.get("n_min", 100),
    n_ctrl=p["n_ctrl"],
    window_kb=p["window_kb"],
    seed=p["seed"],
    out_gene_scores=snakemake.output.gene_scores,
    out_cell_scores=snakemake.output.cell_scores,
    out_ranking=snakemake.output.ranking,
    out_summary=snakemake.output.summary,
    out_png=snakemake.output.png,
)
