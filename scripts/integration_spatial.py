"""Snakemake adapter: the trait's disease score on the spatial slide and its Moran's I."""
from cohortflow.scripting import run_step
from cohortflow.singlecell.integration import spatial_disease_scores

p = snakemake.params.integration
run_step(
    snakemake,
    spatial_disease_scores,
    spatial_h5ad=snakemake.input.spatial,
    gene_scores=snakemake.input.gene_scores,
    trait=snakemake.wildcards.trait,
    n_genes=p["n_genes"],
    n_ctrl=p["n_ctrl"],
    n_perms=snakemake.params.n_perms,
    seed=p["seed"],
    out_scores=snakemake.output.scores,
    out_summary=snakemake.output.summary,
    out_png=snakemake.output.png,
)
