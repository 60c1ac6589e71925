# Shared setup: validate the config and the cohort sheet, expose the cohorts and their stages,
# and the input functions every rule file uses. Logic lives in cohortflow.config.
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError

SRC_DIR = os.path.join(workflow.basedir, "src")
if SRC_DIR not in sys.path:
    sys.path.insert(0, SRC_DIR)
# Jobs (local scripts, cluster jobs, conda envs) import the library from the checkout.
# (We set PYTHONPATH for the jobs rather than require it, hence no envvars directive.)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC_DIR, os.environ.get("PYTHONPATH", "")) if p))

# The report's provenance records the command that started the workflow (jobs inherit it).
os.environ.setdefault("COHORTFLOW_COMMAND_LINE", shlex.join(["snakemake", *sys.argv[1:]]))

from cohortflow.config import load_alignment_sheet, load_cohorts, validate_config  # noqa: E402
from cohortflow.errors import ConfigError  # noqa: E402
from cohortflow.resources import job_mem_mb, job_runtime_min, king_part_mem_mb, king_part_runtime_min  # noqa: E402

SCHEMAS = os.path.join(workflow.basedir, "workflow", "schemas")
RESOURCES = os.path.join(workflow.basedir, "resources")

try:
    config.update(validate_config(config, os.path.join(SCHEMAS, "config.schema.yaml"),
                                  source=", ".join(map(str, workflow.configfiles)) or "config"))
    # Every input path of the sheets must exist before any job runs, except under the folder the
    # workflow itself writes (the demo's simulated data).
    GENERATED = [config["demo"]["out_dir"]]
    COHORTS = {c.id: c for c in load_cohorts(config["cohorts"], os.path.join(SCHEMAS, "cohorts.schema.yaml"),
                                             check_paths=True, generated=GENERATED)}
    ALIGNMENT = {
        c.id: load_alignment_sheet(c.get("alignment_sheet"), os.path.join(SCHEMAS, "alignment_sheet.schema.yaml"),
                                   check_paths=True, generated=GENERATED)
        for c in COHORTS.values()
        if c.has_alignment
    }
except ConfigError as err:
    raise WorkflowError(f"cohortflow config error: {err}")

RESULTS = config["results"]
DEMO = config["demo"]
# Job resources from input sizes, doubling memory per attempt (cohortflow.resources; docs/resources.md)
# Retries belong to the main Snakemake process: a job's own Snakemake (inside a SLURM or cloud
# job) would otherwise retry the rule in the same allocation, with the same memory.
RETRIES = config["resources"]["retries"] if workflow.is_main_process else 0


# relatedness_part is sized by its samples and KING variants (read from its masks), not by its
# inputs' bytes
SIZED_BY_MASKS = {
    "mem_mb": lambda wildcards, input, attempt: king_part_mem_mb(
        input.masks, wildcards.part, config["qc"]["king_parts"], attempt, overrides=config["resources"]["mem_mb"]),
    "runtime": lambda wildcards, input, attempt: king_part_runtime_min(
        input.masks, wildcards.part, config["qc"]["king_parts"], attempt, overrides=config["resources"]["runtime"]),
}


def job_mem(rule):
    """Resource function: the rule's memory (MB) for its inputs' size and the attempt."""
    if "relatedness_part" == rule:
        return SIZED_BY_MASKS["mem_mb"]
    return lambda wildcards, input, attempt: job_mem_mb(rule, input.size_mb, attempt,
                                                       overrides=config["resources"]["mem_mb"])


def job_runtime(rule):
    """Resource function: the rule's wall-time limit (minutes) for its inputs' size and the attempt."""
    if "relatedness_part" == rule:
        return SIZED_BY_MASKS["runtime"]
    return lambda wildcards, input, attempt: job_runtime_min(rule, input.size_mb, attempt,
                                                            overrides=config["resources"]["runtime"])


wildcard_constraints:
    cohort="[A-Za-z0-9][A-Za-z0-9_.-]*",
    trait="[A-Za-z0-9_.-]+",
    sample="[A-Za-z0-9][A-Za-z0-9_.-]*",
    shard="[A-Za-z0-9][A-Za-z0-9_.-]*",
    part="[0-9]+\\.[0-9]+",


def cohort_of(wildcards):
    return COHORTS[wildcards.cohort]


def cohort_file(column):
    """Input function: the cohort sheet's path in `column`."""

    def _get(wildcards):
        return cohort_of(wildcards).get(column)

    return _get


def res(cohort, path):
    return f"{RESULTS}/{cohort}/{path}"


def plink_files(prefix):
    return {ext: f"{prefix}.{ext}" for ext in ("bed", "bim", "fam")}


def raw_genotypes_prefix(wildcards):
    cohort = cohort_of(wildcards)
    return cohort.plink_prefix or res(cohort.id, "genotypes/raw")


def stage_targets(cohort):
    """Every final output of every stage the cohort can run."""
    c = cohort.id
    targets = [res(c, "report.html")]
    if cohort.has_alignment:
        targets += [res(c, "alignment_qc/summary.tsv"), res(c, "alignment_qc/identity.tsv")]
        # the report's figures read each sample's insert sizes and depth distribution
        for sample in sorted(ALIGNMENT[c]):
            targets += [res(c, f"alignment_qc/{sample}.stats"), res(c, f"alignment_qc/{sample}.mosdepth.global.dist.txt")]
    if cohort.has_genotypes:
        targets += [res(c, "qc/qc.bed"), res(c, "qc/qc.pcs.tsv")]
    for trait in cohort.traits if cohort.has_gwas else []:
        targets += [res(c, f"gwas/{trait}.summary.json"), res(c, f"prs/{trait}.evaluate.json")]
        if cohort.has_integration:
            targets.append(res(c, f"integration/{trait}.summary.json"))
            if cohort.has_spatial:
                targets.append(res(c, f"integration/{trait}.spatial.json"))
    if cohort.has_pgs:
        targets.append(res(c, "prs/pgs.summary.json"))
    if cohort.has_singlecell:
        targets.append(res(c, "singlecell/summary.json"))
        if cohort.has_genotypes:
            targets.append(res(c, "cell_eqtl/summary.json"))
    if cohort.has_spatial:
        targets.append(res(c, "spatial/summary.json"))
    if cohort.has_truth:
        targets.append(res(c, "truth_check.json"))
    return targets


def report_inputs(wildcards):
    """Everything the report reads: all stage outputs of the cohort but the report itself."""
    return [t for t in stage_targets(COHORTS[wildcards.cohort]) if not t.endswith("report.html")]


def truth_inputs(wildcards):
    """The demo's truth files: truth.json and, beside it, the single-cell/spatial truth."""
    cohort = COHORTS[wildcards.cohort]
    truth = cohort.get("truth")
    folder = os.path.dirname(truth)
    extra = []
    if cohort.has_singlecell or cohort.has_spatial:
        extra = [os.path.join(folder, f) for f in ("singlecell_truth.json", "singlecell_truth.tsv", "spatial_truth.tsv")]
    extra += [f"{p}.expected.json" for p in cohort.pgs_files if os.path.dirname(p) == os.path.join(folder, "pgs")]
    if cohort.has_alignment:  # the demo's planted sexes, swap and contamination
        extra.append(os.path.join(folder, "alignment_truth.json"))
    return [truth, *extra]


def alignment_bam(wildcards):
    return ALIGNMENT[wildcards.cohort][wildcards.sample]


def alignment_targets(wildcards):
    """The cohort's target BED (exome, panel) or nothing (whole genome)."""
    return COHORTS[wildcards.cohort].get("alignment_targets") or []


def alignment_site_list(wildcards):
    """Sites for the contamination and identity checks: config alignment_qc.sites (a VCF with
    AF), else the cohort's own common SNPs, else none."""
    if config["alignment_qc"].get("sites"):
        return config["alignment_qc"]["sites"]
    if COHORTS[wildcards.cohort].has_genotypes:
        return res(wildcards.cohort, "alignment_qc/sites.vcf.gz")
    return []


def alignment_index(wildcards):
    bam = alignment_bam(wildcards)
    return f"{bam}.crai" if bam.endswith(".cram") else f"{bam}.bai"


def meta_cohorts(trait):
    """The cohorts (in sheet order) whose GWAS includes `trait` (meta.smk)."""
    return [c.id for c in COHORTS.values() if c.has_gwas and trait in c.traits]


def meta_traits():
    """Traits of at least two cohorts' GWAS: the meta-analyses of the default targets."""
    traits = sorted({t for c in COHORTS.values() if c.has_gwas for t in c.traits})
    return [t for t in traits if len(meta_cohorts(t)) >= 2]


def all_targets():
    targets = [t for cohort in COHORTS.values() for t in stage_targets(cohort)]
    if len(COHORTS) > 1:
        targets.append(f"{RESULTS}/index.html")  # the cross-cohort index page
    # meta-analysis (meta.smk) of each trait that at least two cohorts' GWAS share
    targets += [f"{RESULTS}/meta/{trait}.summary.json" for trait in meta_traits()]
    # the export bundle (export.smk) of each cohort with a GWAS; not in stage_targets, whose
    # outputs (report_inputs) are the bundle's inputs
    targets += [res(c.id, f"export/{c.id}.bundle.tar.gz") for c in COHORTS.values() if c.has_gwas]
    return targets


# Polygenic scores: covariates of the discovery GWAS and the evaluation; score files of a trait
def shard_names(checkpoint, cohort):
    """The shards of a plan written by ``checkpoint`` (raw_shards or genotype_shards), in .bim
    order: known once the checkpoint has run."""
    from cohortflow.gwas.shards import read_shard_plan

    return read_shard_plan(checkpoint.get(cohort=cohort).output.plan)["shard"].tolist()


def king_part_files(wildcards):
    """The relatedness parts' pair files (qc.king_parts groups of samples), in part order."""
    from cohortflow.variants.relatedness import king_part_names

    return [res(wildcards.cohort, f"qc/king/part.{name}.npz") for name in king_part_names(config["qc"]["king_parts"])]


def qc_shard_files(wildcards, suffix):
    """The QC shards' ``{shard}.{suffix}`` files, in the raw plan's order."""
    return [res(wildcards.cohort, f"qc/shards/{shard}.{suffix}")
            for shard in shard_names(checkpoints.raw_shards, wildcards.cohort)]


def qc_stats_files(wildcards):
    return qc_shard_files(wildcards, "stats.npz")


def gwas_shard_files(wildcards):
    """The trait's GWAS shards (sumstats and sidecars, with and without PCs), in plan order."""
    base = res(wildcards.cohort, f"gwas/shards/{wildcards.trait}")
    suffixes = (".tsv.gz", ".nopcs.tsv.gz", ".tsv.gz-meta.yaml", ".nopcs.tsv.gz-meta.yaml")
    return [f"{base}/{shard}{suffix}" for shard in shard_names(checkpoints.genotype_shards, wildcards.cohort)
            for suffix in suffixes]


def pgs_partial_files(wildcards):
    """The published scores' per-shard partial sums, in plan order."""
    return [res(wildcards.cohort, f"prs/shards/pgs.{shard}.npy")
            for shard in shard_names(checkpoints.genotype_shards, wildcards.cohort)]


def prs_covariates():
    return list(config["gwas"]["covariates"]) + [f"PC{i + 1}" for i in range(config["gwas"]["n_pcs"])]


def prs_score_files(wildcards):
    files = [res(wildcards.cohort, f"prs/{wildcards.trait}.ct.scores.tsv.gz"),
             res(wildcards.cohort, f"prs/{wildcards.trait}.bayes.scores.tsv.gz")]
    if COHORTS[wildcards.cohort].has_pgs:
        files.append(res(wildcards.cohort, "prs/pgs.scores.tsv.gz"))
    return files
