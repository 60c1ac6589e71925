"""Snakemake adapter: the trait's disease score on the spatial slide and its Moran's I."""
from cohortflow.scripting import run_step
from cohortflow.singlecell.integration import spatial_integration

p = snakemake.params.integration
run_step(
    snakemake,
    spatial_integration,
    spatial_h5ad=snakemake.input.spatial,
    integration_summary=snakemake.input.integration,
    trait=snakemake.wildcards.trait,
    n_ctrl=p["n_ctrl"],
    seed=p["seed"],
    n_perms=snakemake.params.n_perms,
    out_scores=snakemake.output.scores,
    out_summary=snakemake.output.summary,
    out_png=snakemake.output.png,
)
