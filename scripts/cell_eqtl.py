"""Snakemake adapter: pseudobulk cell-type eQTL of the lead (and configured) variants."""
from cohortflow.scripting import run_step
from cohortflow.singlecell.eqtl import run_cell_eqtl

p = snakemake.params.cell_eqtl
run_step(
    snakemake,
    run_cell_eqtl,
    h5ad=snakemake.input.sc,
    bfile=snakemake.input.bed.removesuffix(".bed"),
    variants=list(snakemake.input.variants),
    variant_ids=p["variants"],
    genes_gtf=snakemake.input.genes or None,
    covariates=snakemake.input.covariates or None,
    covariate_names=p["covariates"] or None,
    pcs=snakemake.input.pcs or None,
    n_pcs=p["n_pcs"],
    cell_type_key=p["cell_type_key"],
    donor_key=p["donor_key"],
    window_kb=p["window_kb"],
    min_cells=p["min_cells"],
    min_donors=p["min_donors"],
    min_donor_fraction=p["min_donor_fraction"],
    fdr=p["fdr"],
    max_plots=p["max_plots"],
    out_tsv=snakemake.output.tsv,
    out_summary=snakemake.output.summary,
    out_png=snakemake.output.png,
)
