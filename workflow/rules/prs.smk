# Polygenic scores (cohortflow.prs): clumping + thresholding trained on a split of the cohort,
# evaluated on the held-out individuals; published scores (PGS Catalog scoring files) scored on
# every individual with a variant match report.


rule prs_clump_threshold:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes"),
        covar=res("{cohort}", "gwas/covariates.tsv"),
    output:
        weights=res("{cohort}", "prs/{trait}.weights.tsv"),
        scores=res("{cohort}", "prs/{trait}.scores.tsv.gz"),
        performance=res("{cohort}", "prs/{trait}.performance.json"),
        png=report(res("{cohort}", "prs/{trait}.png"), caption="../report/prs.rst", category="Polygenic scores"),
    params:
        prs=config["prs"],
        covariates=config["gwas"]["covariates"],
        n_pcs=config["gwas"]["n_pcs"],
    log:
        res("{cohort}", "logs/prs.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/prs.{trait}.tsv")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/prs.py"


rule pgs_score:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        scores=lambda w: COHORTS[w.cohort].pgs_files,
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes") or [],
    output:
        scores=res("{cohort}", "prs/pgs.scores.tsv.gz"),
        match=res("{cohort}", "prs/pgs.match.tsv"),
        summary=res("{cohort}", "prs/pgs.summary.json"),
    params:
        pgs=config["pgs"],
        traits=lambda w: COHORTS[w.cohort].traits,
    log:
        res("{cohort}", "logs/pgs_score.log"),
    benchmark:
        res("{cohort}", "benchmarks/pgs_score.tsv")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/pgs_score.py"
