# Pseudobulk cell-type eQTL (cohortflow.singlecell.eqtl): the GWAS lead variants of every trait
# (plus configured variants, and on the demo the planted eQTL variant) against the genes whose TSS
# lies within cell_eqtl.window_kb, per annotated cell type, on the QC'd genotypes.


rule cell_eqtl:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        sc=res("{cohort}", "singlecell/sc.h5ad"),
        # variant lists: each trait's lead variants and, for a cohort with a truth file (the demo),
        # the planted eQTL (singlecell_truth.json beside truth.json)
        variants=lambda w: (
            [res(w.cohort, f"gwas/{t}.leads.tsv") for t in COHORTS[w.cohort].traits]
            if config["cell_eqtl"]["lead_variants"] and COHORTS[w.cohort].has_gwas
            else []
        )
        + (
            [os.path.join(os.path.dirname(COHORTS[w.cohort].get("truth")), "singlecell_truth.json")]
            if config["cell_eqtl"]["planted_eqtl"] and COHORTS[w.cohort].has_truth
            else []
        ),
        genes=lambda w: COHORTS[w.cohort].get("genes") or [],
        covariates=lambda w: (COHORTS[w.cohort].get("covariates") or []) if config["cell_eqtl"]["covariates"] else [],
        pcs=lambda w: res(w.cohort, "qc/qc.pcs.tsv") if config["cell_eqtl"]["n_pcs"] > 0 else [],
    output:
        tsv=report(res("{cohort}", "cell_eqtl/eqtl.tsv"), caption="../report/cell_eqtl_table.rst",
                   category="Cell-type eQTL"),
        summary=res("{cohort}", "cell_eqtl/summary.json"),
        png=report(res("{cohort}", "cell_eqtl/boxplots.png"), caption="../report/cell_eqtl.rst",
                   category="Cell-type eQTL"),
    params:
        cell_eqtl=config["cell_eqtl"],
    log:
        res("{cohort}", "logs/cell_eqtl.log"),
    benchmark:
        res("{cohort}", "benchmarks/cell_eqtl.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("cell_eqtl"),
        runtime=job_runtime("cell_eqtl"),
    conda:
        "../../envs/singlecell.yaml"
    script:
        "../../scripts/cell_eqtl.py"
