# Known-answer check (demo) and the self-contained per-cohort HTML report (cohortflow.report).


rule truth_check:
    input:
        truth=truth_inputs,
        results=lambda w: [t for t in report_inputs(w) if not t.endswith("truth_check.json")],
    output:
        check=res("{cohort}", "truth_check.json"),
    params:
        results_dir=lambda w: res(w.cohort, ""),
        gwas=config["gwas"],
    log:
        res("{cohort}", "logs/truth_check.log"),
    benchmark:
        res("{cohort}", "benchmarks/truth_check.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("truth_check"),
        runtime=job_runtime("truth_check"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/truth_check.py"


rule report:
    input:
        report_inputs,
    output:
        html=res("{cohort}", "report.html"),
    params:
        results_dir=lambda w: res(w.cohort, ""),
        cohort_inputs=lambda w: [p for col in ("genotypes", "phenotypes", "covariates", "alignment_sheet", "reference", "genes", "singlecell", "markers", "spatial") for p in COHORTS[w.cohort].get(col).split(",") if p],
        config=config,
        report=config["report"],
        privacy=config["privacy"],
    log:
        res("{cohort}", "logs/report.log"),
    benchmark:
        res("{cohort}", "benchmarks/report.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("report"),
        runtime=job_runtime("report"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/report.py"


rule cohort_index:
    input:
        reports=[res(c, "report.html") for c in COHORTS],
    output:
        html=f"{RESULTS}/index.html",
    params:
        results_root=lambda w, output: os.path.dirname(output.html),
        cohorts=list(COHORTS),
        config=config,
        privacy=config["privacy"],
    log:
        f"{RESULTS}/logs/index.log",
    benchmark:
        f"{RESULTS}/benchmarks/index.tsv"
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("cohort_index"),
        runtime=job_runtime("cohort_index"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/report_index.py"
