"""Snakemake adapter: spatial neighbour graph and spatial autocorrelation."""
from cohortflow.scripting import run_step
from cohortflow.singlecell.spatial import run_spatial

sp = snakemake.params.spatial
run_step(
    snakemake,
    run_spatial,
    h5ad=snakemake.input.h5ad,
    out_h5ad=snakemake.output.h5ad,
    out_summary=snakemake.output.summary,
    out_png=snakemake.output.png,
    out_nhood_png=snakemake.output.nhood,
    label_reference=snakemake.input.reference or None,
    graph=sp["graph"],
    n_neighbors=sp["n_neighbors"],
    n_perms=sp["n_perms"],
    seed=sp["seed"],
    cell_type_key=sp.get("cell_type_key", "cell_type"),
    nhood_perms=sp.get("nhood_perms", 1000),
    threads=snakemake.threads,
)
