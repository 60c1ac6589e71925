# cohortflow: cohorts of genomic and multi-omic data -> QC'd genotypes, GWAS, PRS,
# single-cell/spatial genetics integration and one self-contained report per cohort.
# Rules live in workflow/rules/ (one file per stage); all logic lives in src/cohortflow/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/alignment_qc.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/gwas.smk"
include: "workflow/rules/prs.smk"
include: "workflow/rules/singlecell.smk"
include: "workflow/rules/cell_eqtl.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/meta.smk"
include: "workflow/rules/export.smk"


rule all:
    input:
        all_targets(),
    default_target: True
