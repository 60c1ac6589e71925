# Single-cell and spatial analysis and the genetics integration (cohortflow.singlecell):
# scanpy chain and annotation, spatial graph and autocorrelation, GWAS -> gene scores ->
# per-cell and per-spot disease scores -> cell-type ranking.


rule singlecell:
    input:
        h5ad=lambda w: COHORTS[w.cohort].get("singlecell"),
        markers=lambda w: COHORTS[w.cohort].get("markers") or f"{RESOURCES}/markers/pbmc_markers.tsv",
    output:
        h5ad=res("{cohort}", "singlecell/sc.h5ad"),
        summary=res("{cohort}", "singlecell/summary.json"),
        umap=report(res("{cohort}", "singlecell/umap.png"), caption="../report/umap.rst", category="Single-cell"),
        markers=report(res("{cohort}", "singlecell/markers.png"), caption="../report/singlecell_markers.rst",
                       category="Single-cell"),
        qc=report(res("{cohort}", "singlecell/qc.png"), caption="../report/singlecell_qc.rst", category="Single-cell"),
    params:
        sc=config["singlecell"],
    log:
        res("{cohort}", "logs/singlecell.log"),
    benchmark:
        res("{cohort}", "benchmarks/singlecell.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("singlecell"),
        runtime=job_runtime("singlecell"),
    conda:
        "../../envs/singlecell.yaml"
    script:
        "../../scripts/singlecell.py"


rule spatial:
    input:
        h5ad=lambda w: COHORTS[w.cohort].get("spatial"),
        # spots without cell types take the annotated single-cell data's labels (label transfer)
        reference=lambda w: (
            res(w.cohort, "singlecell/sc.h5ad")
            if config["spatial"]["label_transfer"] and COHORTS[w.cohort].has_singlecell
            else []
        ),
    output:
        h5ad=res("{cohort}", "spatial/spatial.h5ad"),
        summary=res("{cohort}", "spatial/summary.json"),
        png=report(res("{cohort}", "spatial/spatial.png"), caption="../report/spatial_maps.rst", category="Spatial"),
        nhood=report(res("{cohort}", "spatial/nhood.png"), caption="../report/spatial_nhood.rst", category="Spatial"),
    params:
        spatial=config["spatial"],
    log:
        res("{cohort}", "logs/spatial.log"),
    benchmark:
        res("{cohort}", "benchmarks/spatial.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("spatial"),
        runtime=job_runtime("spatial"),
    conda:
        "../../envs/singlecell.yaml"
    script:
        "../../scripts/spatial.py"


rule integration:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        sumstats=res("{cohort}", "gwas/{trait}.tsv.gz"),
        genes=lambda w: COHORTS[w.cohort].get("genes"),
        sc=res("{cohort}", "singlecell/sc.h5ad"),
    output:
        gene_scores=res("{cohort}", "integration/{trait}.gene_scores.tsv"),
        cell_scores=res("{cohort}", "integration/{trait}.cell_scores.tsv.gz"),
        ranking=report(res("{cohort}", "integration/{trait}.celltype_ranking.tsv"),
                       caption="../report/integration_ranking.rst", category="Integration", subcategory="{trait}"),
        summary=res("{cohort}", "integration/{trait}.summary.json"),
        png=report(res("{cohort}", "integration/{trait}.png"), caption="../report/integration.rst", category="Integration",
                   subcategory="{trait}"),
    params:
        integration=config["integration"],
    log:
        res("{cohort}", "logs/integration.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/integration.{trait}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("integration"),
        runtime=job_runtime("integration"),
    conda:
        "../../envs/singlecell.yaml"
    script:
        "../../scripts/integration.py"


rule integration_spatial:
    input:
        integration=res("{cohort}", "integration/{trait}.summary.json"),
        spatial=res("{cohort}", "spatial/spatial.h5ad"),
    output:
        scores=res("{cohort}", "integration/{trait}.spatial_scores.tsv.gz"),
        summary=res("{cohort}", "integration/{trait}.spatial.json"),
        png=report(res("{cohort}", "integration/{trait}.spatial.png"), caption="../report/integration_spatial.rst",
                   category="Integration", subcategory="{trait}"),
    params:
        integration=config["integration"],
        n_perms=config["spatial"]["n_perms"],
    log:
        res("{cohort}", "logs/integration_spatial.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/integration_spatial.{trait}.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("integration_spatial"),
        runtime=job_runtime("integration_spatial"),
    conda:
        "../../envs/singlecell.yaml"
    script:
        "../../scripts/integration_spatial.py"
