"""Snakemake adapter: scanpy chain and marker-based cell-type annotation."""
from pathlib import Path

from cohortflow.scripting import run_step
from cohortflow.singlecell.pipeline import run_singlecell

sc = snakemake.params.sc
run_step(
    snakemake,
    run_singlecell,
    h5ad=snakemake.input.h5ad,
    markers=snakemake.input.markers,
    out_h5ad=snakemake.output.h5ad,
    out_summary=snakemake.output.summary,
    out_dir_figures=Path(snakemake.output.umap).parent,
    **sc,
    threads=snakemake.threads,
)
