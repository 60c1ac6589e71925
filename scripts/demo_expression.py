"""Snakemake adapter: simulate the demo's single-cell and spatial counts with planted answers."""
from pathlib import Path

from cohortflow.demo.singlecell import simulate_expression
from cohortflow.scripting import run_step

demo = snakemake.params.demo
run_step(
    snakemake,
    simulate_expression,
    out_dir=Path(snakemake.output.singlecell).parent,
    genes_gtf=snakemake.input.genes,
    truth_json=snakemake.input.truth,
    vcf_paths=list(snakemake.input.vcfs),
    n_cells=demo["n_cells"],
    n_donors=demo["n_donors"],
    n_spots=demo["n_spots"],
    seed=demo["seed"],
)
