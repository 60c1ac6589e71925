# Polygenic scores (cohortflow.prs), per trait, one rule per step:
#   split (discovery / validation / test) -> GWAS on the discovery samples -> clumping + thresholding
#   and the Bayesian LD-aware score from that GWAS -> evaluation: thresholds and hyper-parameters
#   chosen on the validation samples, performance reported on the test samples only.
# Published scores (PGS Catalog scoring files) are scored on every individual with a match report
# and join the evaluation.


rule prs_split:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes"),
        covar=res("{cohort}", "gwas/covariates.tsv"),
    output:
        split=res("{cohort}", "prs/{trait}.split.tsv"),
    params:
        prs=config["prs"],
        covariates=prs_covariates(),
    log:
        res("{cohort}", "logs/prs_split.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/prs_split.{trait}.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("prs_split"),
        runtime=job_runtime("prs_split"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/prs_split.py"


rule prs_discovery_gwas:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes"),
        covar=res("{cohort}", "gwas/covariates.tsv"),
        split=res("{cohort}", "prs/{trait}.split.tsv"),
    output:
        sumstats=res("{cohort}", "prs/{trait}.discovery.tsv.gz"),
        meta=res("{cohort}", "prs/{trait}.discovery.tsv.gz-meta.yaml"),
    params:
        covariates=prs_covariates(),
        firth=config["gwas"]["firth"],
    log:
        res("{cohort}", "logs/prs_discovery_gwas.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/prs_discovery_gwas.{trait}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("prs_discovery_gwas"),
        runtime=job_runtime("prs_discovery_gwas"),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../../scripts/prs_discovery_gwas.py"


rule prs_ct:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        sumstats=res("{cohort}", "prs/{trait}.discovery.tsv.gz"),
    output:
        weights=res("{cohort}", "prs/{trait}.ct.weights.tsv"),
        scores=res("{cohort}", "prs/{trait}.ct.scores.tsv.gz"),
        summary=res("{cohort}", "prs/{trait}.ct.json"),
    params:
        prs=config["prs"],
    log:
        res("{cohort}", "logs/prs_ct.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/prs_ct.{trait}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("prs_ct"),
        runtime=job_runtime("prs_ct"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/prs_ct.py"


rule prs_bayes:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        sumstats=res("{cohort}", "prs/{trait}.discovery.tsv.gz"),
        split=res("{cohort}", "prs/{trait}.split.tsv"),
    output:
        weights=res("{cohort}", "prs/{trait}.bayes.weights.tsv"),
        scores=res("{cohort}", "prs/{trait}.bayes.scores.tsv.gz"),
        summary=res("{cohort}", "prs/{trait}.bayes.json"),
    params:
        bayes=config["prs"]["bayes"],
    log:
        res("{cohort}", "logs/prs_bayes.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/prs_bayes.{trait}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("prs_bayes"),
        runtime=job_runtime("prs_bayes"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/prs_bayes.py"


rule prs_evaluate:
    input:
        scores=prs_score_files,
        split=res("{cohort}", "prs/{trait}.split.tsv"),
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes"),
        covar=res("{cohort}", "gwas/covariates.tsv"),
        groups=lambda w: COHORTS[w.cohort].get("sample_info") or [],
        pcs=res("{cohort}", "qc/qc.pcs.tsv"),
    output:
        summary=res("{cohort}", "prs/{trait}.evaluate.json"),
        performance=report(res("{cohort}", "prs/{trait}.performance.tsv"), caption="../report/prs_performance.rst",
                           category="Polygenic scores", subcategory="{trait}"),
        candidates=res("{cohort}", "prs/{trait}.candidates.tsv"),
        deciles=res("{cohort}", "prs/{trait}.deciles.tsv"),
        groups=res("{cohort}", "prs/{trait}.groups.tsv"),
        distribution=report(res("{cohort}", "prs/{trait}.distribution.png"), caption="../report/prs.rst",
                            category="Polygenic scores", subcategory="{trait}"),
        decile_plot=report(res("{cohort}", "prs/{trait}.deciles.png"), caption="../report/prs_deciles.rst",
                           category="Polygenic scores", subcategory="{trait}"),
        threshold_plot=report(res("{cohort}", "prs/{trait}.thresholds.png"),
                              caption="../report/prs_thresholds.rst", category="Polygenic scores",
                              subcategory="{trait}"),
    params:
        prs=config["prs"],
        covariates=prs_covariates(),
        min_cell_count=config["privacy"]["min_cell_count"],
    log:
        res("{cohort}", "logs/prs_evaluate.{trait}.log"),
    benchmark:
        res("{cohort}", "benchmarks/prs_evaluate.{trait}.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("prs_evaluate"),
        runtime=job_runtime("prs_evaluate"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/prs_evaluate.py"


rule pgs_match:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        scores=lambda w: COHORTS[w.cohort].pgs_files,
    output:
        # the matched variants' weights of every score (aggregate); errors stop here, before scoring
        matched=res("{cohort}", "prs/pgs.matched.json"),
    params:
        pgs=config["pgs"],
    log:
        res("{cohort}", "logs/pgs_match.log"),
    benchmark:
        res("{cohort}", "benchmarks/pgs_match.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("pgs_match"),
        runtime=job_runtime("pgs_match"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/pgs_match.py"


rule pgs_score_shard:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        matched=res("{cohort}", "prs/pgs.matched.json"),
        plan=res("{cohort}", "qc/qc.shards.tsv"),
    output:
        # every sample's sums over one chromosome (or chunk): individual-level, removed once gathered
        partial=temp(res("{cohort}", "prs/shards/pgs.{shard}.npy")),
    wildcard_constraints:
        shard="chr[A-Za-z0-9_-]+",
    log:
        res("{cohort}", "logs/pgs_score.{shard}.log"),
    benchmark:
        res("{cohort}", "benchmarks/pgs_score.{shard}.tsv")
    threads: 2
    retries: RETRIES
    resources:
        mem_mb=job_mem("pgs_score_shard"),
        runtime=job_runtime("pgs_score_shard"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/pgs_score_shard.py"


rule pgs_score:
    input:
        unpack(lambda w: plink_files(res(w.cohort, "qc/qc"))),
        matched=res("{cohort}", "prs/pgs.matched.json"),
        partials=pgs_partial_files,
        pheno=lambda w: COHORTS[w.cohort].get("phenotypes") or [],
    output:
        scores=res("{cohort}", "prs/pgs.scores.tsv.gz"),
        match=res("{cohort}", "prs/pgs.match.tsv"),
        summary=res("{cohort}", "prs/pgs.summary.json"),
    params:
        traits=lambda w: COHORTS[w.cohort].traits,
    log:
        res("{cohort}", "logs/pgs_score.log"),
    benchmark:
        res("{cohort}", "benchmarks/pgs_score.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("pgs_score"),
        runtime=job_runtime("pgs_score"),
    conda:
        "../../envs/prs.yaml"
    script:
        "../../scripts/pgs_score.py"
