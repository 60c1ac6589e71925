# Per-cohort export bundle (cohortflow.export): the aggregate results that may leave the cohort,
# refused when the disclosure check finds anything individual-level (docs/output.md, Export bundle).


rule export:
    input:
        # every stage output the rebuilt report reads (the bundle's members are among them)
        report_inputs,
    output:
        bundle=res("{cohort}", "export/{cohort}.bundle.tar.gz"),
    params:
        results_dir=lambda w: res(w.cohort, ""),
        config=config,
        min_mac=config["export"]["min_mac"],
        min_cell_count=config["privacy"]["min_cell_count"],
    log:
        res("{cohort}", "logs/export.log"),
    benchmark:
        # beside the bundle, not in benchmarks/: the report in the bundle lists benchmarks/, and
        # a rerun's own benchmark there would change the bundle's bytes
        res("{cohort}", "export/{cohort}.benchmark.tsv")
    threads: 1
    retries: RETRIES
    resources:
        mem_mb=job_mem("export"),
        runtime=job_runtime("export"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/export.py"
