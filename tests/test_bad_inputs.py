"""Bad-input suite (issue 10): user mistakes stop a run early with one clear line.

Every case builds tiny inputs in a temporary folder (the project's own writers, pysam, anndata or
literal text), makes one mistake a user makes (wrong path, wrong column, mismatched sample IDs,
``chr1`` vs ``1``, another genome build, a damaged file) and runs the real entry point:

* the ``cohortflow`` CLI in a subprocess, as a user would;
* the workflow's config loading (``cohortflow.config.validate_config`` / ``load_cohorts`` /
  ``load_alignment_sheet``), in process;
* ``snakemake -n`` on the Snakefile in a temporary working directory with a broken config.

Each must exit non-zero with exactly one non-empty line on stderr (``cohortflow: error: ...``, or
Snakemake's one ``cohortflow config error: ...`` line) naming the file (its basename at least),
the problem and, where meaningful, the record; no traceback anywhere; no output file and no
temporary file left in the output folder.

The CLI subprocesses are started together (a few at a time) the first time a case asks for its
result, so the suite's wall time is about that of the slowest few imports, not of ~40 in a row.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from cohortflow.config import load_alignment_sheet, load_cohorts, validate_config
from cohortflow.errors import CohortflowError, ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "workflow" / "schemas"
CLI_PREFIX = "cohortflow: error: "
CONFIG_PREFIX = "cohortflow config error: "

SAMPLES = [f"S{i}" for i in range(1, 9)]
GRCH37_CHR1 = 249250621
GRCH38_CHR1 = 248956422


# --------------------------------------------------------------------------- tiny input writers


def write_plink(prefix: Path, *, iids=SAMPLES, n_variants: int = 6, chrom: str = "1") -> Path:
    """A PLINK fileset written by cohortflow.io.plink.write_bed: len(iids) samples, n_variants SNPs."""
    from cohortflow.io.plink import write_bed

    rng = np.random.default_rng(1)
    geno = rng.integers(0, 3, size=(n_variants, len(iids))).astype(np.int8)
    bim = pd.DataFrame({"chrom": chrom, "id": [f"{chrom}:{1000 * (i + 1)}:A:G" for i in range(n_variants)],
                        "cm": 0.0, "pos": [1000 * (i + 1) for i in range(n_variants)], "a1": "G", "a2": "A"})
    fam = pd.DataFrame({"fid": list(iids), "iid": list(iids), "father": "0", "mother": "0",
                        "sex": [1 + i % 2 for i in range(len(iids))], "pheno": "-9"})
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_bed(prefix, geno, bim, fam)
    return prefix


def write_pheno(path: Path, *, iids=SAMPLES, header: str = "#FID IID trait", values=None) -> Path:
    values = values if values is not None else [f"{0.1 * i:.1f}" for i in range(len(iids))]
    rows = [header] + [f"{iid} {iid} {v}" if header.startswith("#FID") else f"{iid} {v}"
                       for iid, v in zip(iids, values)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_vcf(path: Path, *, chrom: str = "1", samples=SAMPLES[:4], contig_length: int | None = 10000,
              n_records: int = 4, bgzip: bool = True, index: bool = True) -> Path:
    """A small VCF (bgzipped and tabix-indexed by pysam unless told otherwise)."""
    import pysam

    header = ["##fileformat=VCFv4.2"]
    if contig_length is not None:
        header.append(f"##contig=<ID={chrom},length={contig_length}>")
    header += ['##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
               '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
               "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
                         + (["FORMAT", *samples] if samples else []))]
    gts = ["0/0", "0/1", "1/1", "0/1"]
    records = []
    for i in range(n_records):
        fields = [chrom, str(100 * (i + 1)), f"v{i + 1}", "A", "G", ".", "PASS", "AF=0.3"]
        if samples:
            fields += ["GT"] + [gts[(i + j) % 4] for j in range(len(samples))]
        records.append("\t".join(fields))
    text = "\n".join(header + records) + "\n"
    if not bgzip:
        path.write_text(text)
        return path
    plain = path.with_name(path.name.removesuffix(".gz"))
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def write_fasta(path: Path, contigs: dict[str, int]) -> Path:
    import pysam

    with open(path, "w") as fh:
        for name, length in contigs.items():
            seq = ("ACGT" * (length // 4 + 1))[:length]
            fh.write(f">{name}\n")
            for i in range(0, length, 60):
                fh.write(seq[i:i + 60] + "\n")
    pysam.faidx(str(path))
    return path


def write_bam(path: Path, *, contigs: dict[str, int] | None = None, index: bool = True,
              reference: Path | None = None) -> Path:
    """A coordinate-sorted BAM (or CRAM when ``reference`` is given) with a few reads on the first contig."""
    import pysam

    contigs = contigs or {"1": 10000}
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": n, "LN": ln} for n, ln in contigs.items()],
              "RG": [{"ID": "rg1", "SM": "S1"}]}
    mode = "wc" if reference is not None else "wb"
    kwargs = {"reference_filename": str(reference)} if reference is not None else {}
    with pysam.AlignmentFile(str(path), mode, header=header, **kwargs) as out:
        for i in range(20):
            a = pysam.AlignedSegment(out.header)
            a.query_name = f"r{i}"
            a.query_sequence = "ACGT" * 10
            a.flag = 0
            a.reference_id = 0
            a.reference_start = 100 + 10 * i
            a.mapping_quality = 60
            a.cigartuples = [(0, 40)]
            a.query_qualities = pysam.qualitystring_to_array("I" * 40)
            a.set_tag("RG", "rg1")
            out.write(a)
    if index:
        pysam.index(str(path))
    return path


def write_h5ad(path: Path, *, x: np.ndarray | None = None, donors=None, spatial: bool = False,
               n_cells: int = 40, n_genes: int = 30) -> Path:
    import anndata

    rng = np.random.default_rng(2)
    x = rng.poisson(2.0, size=(n_cells, n_genes)).astype(np.float32) if x is None else x
    n_cells, n_genes = x.shape
    donors = donors if donors is not None else [SAMPLES[i % 8] for i in range(n_cells)]
    obs = pd.DataFrame({"donor": pd.Categorical(donors),
                        "cell_type": pd.Categorical([("T", "B")[i % 2] for i in range(n_cells)])},
                       index=[f"c{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(n_genes)])
    adata = anndata.AnnData(X=x, obs=obs, var=var)
    if spatial:
        adata.obsm["spatial"] = rng.uniform(0, 100, size=(n_cells, 2))
    adata.write_h5ad(path)
    return path


SSF_HEADER = ("chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\t"
              "effect_allele_frequency\tp_value\tn\tvariant_id\ttest_statistic\terrcode")


def write_sumstats(path: Path, *, header: str = SSF_HEADER, p_values=None, n_rows: int = 6) -> Path:
    """GWAS-SSF text matching write_plink's variants (gzip when the name ends in .gz)."""
    p_values = p_values if p_values is not None else [f"{10.0 ** -(i + 1):g}" for i in range(n_rows)]
    cols = header.split("\t")
    lines = [header]
    for i in range(n_rows):
        row = {"chromosome": "1", "base_pair_location": str(1000 * (i + 1)), "effect_allele": "G",
               "other_allele": "A", "beta": f"{0.1 * (i + 1):.2f}", "standard_error": "0.05",
               "effect_allele_frequency": "0.3", "p_value": p_values[i], "n": "8",
               "variant_id": f"1:{1000 * (i + 1)}:A:G", "test_statistic": "2.0", "errcode": ""}
        lines.append("\t".join(row.get(c, "NA") for c in cols))
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path


def write_gtf(path: Path, *, chrom: str = "1") -> Path:
    rows = [f'{chrom}\ttest\tgene\t{500 + 2000 * i}\t{1500 + 2000 * i}\t.\t+\t.\tgene_id "G{i}"; gene_name "G{i}";'
            for i in range(3)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_pgs(path: Path, *, columns=("chr_name", "chr_position", "effect_allele", "other_allele", "effect_weight"),
              positions=None) -> Path:
    positions = positions or [1000 * (i + 1) for i in range(6)]
    lines = ["#format_version=2.0", "#pgs_id=PGS999999", "#trait_reported=test", "#genome_build=GRCh38",
             "\t".join(columns)]
    for i, pos in enumerate(positions):
        values = {"chr_name": "1", "chr_position": str(pos), "effect_allele": "G", "other_allele": "A",
                  "effect_weight": f"{0.1 * (i + 1):.2f}"}
        lines.append("\t".join(values.get(c, "x") for c in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One user mistake.

    ``build(tmp)`` writes the inputs under ``tmp/in`` and returns the CLI arguments (kind "cli"),
    a zero-argument callable doing the config loading (kind "config"), or the config mapping to
    write for ``snakemake -n`` (kind "snakemake"). ``outputs``: output paths relative to ``tmp``
    that must not exist afterwards. ``names``: what the line must name (file basename, key,
    record); ``problem``: the problem keyword(s), any of which must appear (case-insensitive).
    """

    id: str
    kind: str
    build: Callable
    names: tuple[str, ...]
    problem: tuple[str, ...]
    outputs: tuple[str, ...] = ()


CASES: list[Case] = []


def case(id: str, kind: str, names, problem, outputs=()):
    def register(build):
        CASES.append(Case(id, kind, build, tuple(names), (problem,) if isinstance(problem, str) else tuple(problem),
                          tuple(outputs)))
        return build
    return register


def cli(*args) -> list[str]:
    return [str(a) for a in args]


# ---- config (cohortflow.config, as workflow/rules/common.smk calls it)

def _config(tmp: Path, **changes) -> tuple[dict, Path]:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    path = tmp / "in" / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return yaml.safe_load(path.read_text()), path


def _validate(tmp: Path, **changes):
    config, path = _config(tmp, **changes)
    return lambda: validate_config(config, SCHEMAS / "config.schema.yaml", source=str(path))


@case("config-unknown-top-level-key", "config", ["config.yaml", "key '(top level)'", "'qc_thresholds'"], "not allowed")
def _(tmp):
    return _validate(tmp, qc_thresholds={"geno": 0.1})


@case("config-wrong-type", "config", ["config.yaml", "key 'qc.geno'", "'high'"], "not of type 'number'")
def _(tmp):
    return _validate(tmp, qc__geno="high")


@case("config-out-of-range", "config", ["config.yaml", "key 'qc.maf'", "2 "], "greater than the maximum")
def _(tmp):
    return _validate(tmp, qc__maf=2)


COHORT_COLUMNS = "id\tgenotypes\tphenotypes\tcovariates\ttraits"


def _cohorts(tmp: Path, rows: list[str], header: str = COHORT_COLUMNS, **check):
    sheet = tmp / "in" / "cohorts.tsv"
    sheet.write_text("\n".join([header, *rows]) + "\n")
    return lambda: load_cohorts(sheet, SCHEMAS / "cohorts.schema.yaml", **check)


@case("sheet-not-found", "config", ["cohorts_typo.tsv"], "not found")
def _(tmp):
    return lambda: load_cohorts(tmp / "in" / "cohorts_typo.tsv", SCHEMAS / "cohorts.schema.yaml")


@case("sheet-missing-required-column", "config", ["cohorts.tsv", "line 1", "'id'"], "missing required column")
def _(tmp):
    return _cohorts(tmp, ["in/geno\t\t\t"], header="genotypes\tphenotypes\tcovariates\ttraits")


@case("sheet-duplicate-cohort-id", "config", ["cohorts.tsv", "line 3", "'a'"], "duplicate cohort id")
def _(tmp):
    return _cohorts(tmp, ["a\t\t\t\t", "a\t\t\t\t"])


@case("sheet-genotypes-path-missing", "config", ["cohorts.tsv", "line 2", "'genotypes'", "nothere.vcf.gz"],
      "not found")
def _(tmp):
    return _cohorts(tmp, [f"a\t{tmp / 'in' / 'nothere.vcf.gz'}\t\t\t"], check_paths=True)


@case("sheet-trait-not-in-phenotypes", "config", ["cohorts.tsv", "line 2", "'height'", "pheno.tsv"],
      "is not a column")
def _(tmp):
    write_plink(tmp / "in" / "geno")
    pheno = write_pheno(tmp / "in" / "pheno.tsv")
    return _cohorts(tmp, [f"a\t{tmp / 'in' / 'geno'}\t{pheno}\t\theight"])


@case("alignment-sheet-bam-missing", "config", ["alignment.tsv", "line 3", "'bam'", "S2.bam"], "not found")
def _(tmp):
    bam = write_bam(tmp / "in" / "S1.bam")
    sheet = tmp / "in" / "alignment.tsv"
    sheet.write_text(f"sample\tbam\nS1\t{bam}\nS2\t{tmp / 'in' / 'S2.bam'}\n")
    return lambda: load_alignment_sheet(sheet, SCHEMAS / "alignment_sheet.schema.yaml", check_paths=True)


# ---- snakemake -n with a broken config in a temporary working directory

def _workdir_config(tmp: Path, cohorts_text: str | None = None, **changes) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    (tmp / "config").mkdir(exist_ok=True)
    (tmp / "config" / "cohorts.tsv").write_text(cohorts_text or (REPO / "config" / "cohorts.tsv").read_text())
    config["cohorts"] = "config/cohorts.tsv"
    return config


@case("snakemake-unknown-key", "snakemake", ["key '(top level)'", "'qc_thresholds'"], "not allowed",
      outputs=["results"])
def _(tmp):
    return _workdir_config(tmp, qc_thresholds={"geno": 0.1})


@case("snakemake-wrong-type", "snakemake", ["key 'qc.geno'", "'high'"], "not of type 'number'", outputs=["results"])
def _(tmp):
    return _workdir_config(tmp, qc__geno="high")


@case("snakemake-duplicate-cohort-id", "snakemake", ["cohorts.tsv", "line 3", "'a'"], "duplicate cohort id",
      outputs=["results"])
def _(tmp):
    return _workdir_config(tmp, cohorts_text="id\tgenotypes\na\t\na\t\n")


@case("snakemake-trait-not-in-phenotypes", "snakemake", ["cohorts.tsv", "line 2", "'height'", "pheno.tsv"],
      "is not a column", outputs=["results"])
def _(tmp):
    write_plink(tmp / "in" / "geno")
    write_pheno(tmp / "in" / "pheno.tsv")
    return _workdir_config(tmp, cohorts_text="id\tgenotypes\tphenotypes\ttraits\na\tin/geno\tin/pheno.tsv\theight\n")


# ---- phenotypes / covariates (cohortflow gwas)

def _gwas(tmp: Path, pheno: Path, *extra) -> list[str]:
    bfile = write_plink(tmp / "in" / "geno")
    return cli("gwas", "--bfile", bfile, "--pheno", pheno, *extra, "--out", tmp / "out" / "gwas")


GWAS_OUT = ["out/gwas.trait.tsv.gz"]


@case("pheno-file-missing", "cli", ["pheno_typo.tsv"], "not found", outputs=GWAS_OUT)
def _(tmp):
    return _gwas(tmp, tmp / "in" / "pheno_typo.tsv")


@case("pheno-no-iid-column", "cli", ["pheno.tsv", "line 1"], "header must", outputs=GWAS_OUT)
def _(tmp):
    return _gwas(tmp, write_pheno(tmp / "in" / "pheno.tsv", header="#FID sample trait"))


@case("pheno-non-numeric", "cli", ["pheno.tsv", "line 4", "'trait'"], "non-numeric", outputs=GWAS_OUT)
def _(tmp):
    values = ["0.1", "0.2", "tall", "0.4", "0.5", "0.6", "0.7", "0.8"]
    return _gwas(tmp, write_pheno(tmp / "in" / "pheno.tsv", values=values))


@case("pheno-iids-match-no-fam-sample", "cli", ["pheno.tsv", "geno.fam", "'P1'"], "none of the 8 sample IDs",
      outputs=GWAS_OUT)
def _(tmp):
    return _gwas(tmp, write_pheno(tmp / "in" / "pheno.tsv", iids=[f"P{i}" for i in range(1, 9)]))


@case("pheno-duplicate-iid", "cli", ["pheno.tsv", "line 3", "'S1'"], "duplicate IID", outputs=GWAS_OUT)
def _(tmp):
    return _gwas(tmp, write_pheno(tmp / "in" / "pheno.tsv", iids=["S1", "S1", *SAMPLES[2:]]))


@case("covariate-column-missing", "cli", ["covar.tsv", "'age'"], "not found", outputs=GWAS_OUT)
def _(tmp):
    covar = tmp / "in" / "covar.tsv"
    covar.write_text("#FID IID sex\n" + "".join(f"{s} {s} {1 + i % 2}\n" for i, s in enumerate(SAMPLES)))
    return _gwas(tmp, write_pheno(tmp / "in" / "pheno.tsv"), "--covar", covar, "--covar-name", "age")


# ---- VCF/BCF (cohortflow ingest)

INGEST_OUT = ["out/g.bed", "out/g.bim", "out/g.fam"]


def _ingest(tmp: Path, vcf: Path, *extra) -> list[str]:
    return cli("ingest", "--vcf", vcf, *extra, "--out", tmp / "out" / "g")


@case("vcf-not-a-vcf", "cli", ["calls.vcf", "header"], "not a readable VCF", outputs=INGEST_OUT)
def _(tmp):
    path = tmp / "in" / "calls.vcf"
    path.write_text("sample\tgenotype\nS1\tAA\nS2\tAG\n")
    return _ingest(tmp, path)


@case("vcf-truncated-bgzip", "cli", ["calls.vcf.gz", "record "], "truncated", outputs=INGEST_OUT)
def _(tmp):
    # several BGZF blocks (a download cut short): the header reads, the records stop mid-block
    path = write_vcf(tmp / "in" / "calls.vcf.gz", samples=SAMPLES, n_records=5000, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    return _ingest(tmp, path)


@case("vcf-bgzip-cut-in-header", "cli", ["calls.vcf.gz", "header"], "not a readable VCF", outputs=INGEST_OUT)
def _(tmp):
    path = write_vcf(tmp / "in" / "calls.vcf.gz", n_records=400, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _ingest(tmp, path)


@case("vcf-no-samples", "cli", ["calls.vcf.gz"], "no samples", outputs=INGEST_OUT)
def _(tmp):
    return _ingest(tmp, write_vcf(tmp / "in" / "calls.vcf.gz", samples=[]))


@case("vcf-region-chr-naming", "cli", ["calls.vcf.gz", "'chr1'"], "not in the file",
      outputs=INGEST_OUT)
def _(tmp):
    return _ingest(tmp, write_vcf(tmp / "in" / "calls.vcf.gz", chrom="1"), "--region", "chr1")


# ---- PLINK filesets (cohortflow qc)

QC_OUT = ["out/qc.bed", "out/qc.bim", "out/qc.fam", "out/qc.sample_qc.tsv"]


def _qc(tmp: Path, prefix: Path) -> list[str]:
    return cli("qc", "--bfile", prefix, "--out", tmp / "out" / "qc")


@case("plink-fam-missing", "cli", ["geno.fam"], "not found", outputs=QC_OUT)
def _(tmp):
    prefix = write_plink(tmp / "in" / "geno")
    Path(f"{prefix}.fam").unlink()
    return _qc(tmp, prefix)


@case("plink-bed-bad-magic", "cli", ["geno.bed"], "magic", outputs=QC_OUT)
def _(tmp):
    prefix = write_plink(tmp / "in" / "geno")
    bed = Path(f"{prefix}.bed")
    bed.write_bytes(b"\x00\x00\x00" + bed.read_bytes()[3:])
    return _qc(tmp, prefix)


@case("plink-bim-too-few-columns", "cli", ["geno.bim", "line 1"], "fewer than 6 columns", outputs=QC_OUT)
def _(tmp):
    prefix = write_plink(tmp / "in" / "geno")
    bim = Path(f"{prefix}.bim")
    bim.write_text("".join("\t".join(line.split("\t")[:4]) + "\n" for line in bim.read_text().splitlines()))
    return _qc(tmp, prefix)


@case("plink-bed-truncated", "cli", ["geno.bed", "6 variants x 8 samples"], "does not match", outputs=QC_OUT)
def _(tmp):
    prefix = write_plink(tmp / "in" / "geno")
    bed = Path(f"{prefix}.bed")
    bed.write_bytes(bed.read_bytes()[:-2])
    return _qc(tmp, prefix)


# ---- BAM / CRAM (cohortflow alignment-qc)

ALN_OUT = ["out/s.stats", "out/s.flagstat", "out/s.metrics.tsv", "out/s.coverage.tsv"]


def _alignment_qc(tmp: Path, bam: Path, *extra) -> list[str]:
    return cli("alignment-qc", "--bam", bam, *extra, "--out", tmp / "out" / "s")


@case("bam-not-a-bam", "cli", ["reads.bam"], "not a BAM, CRAM or SAM", outputs=ALN_OUT)
def _(tmp):
    path = tmp / "in" / "reads.bam"
    path.write_bytes(b"\x1f\x8b\x08\x04" + bytes(range(256)) * 4)
    return _alignment_qc(tmp, path)


@case("bam-no-index-with-regions", "cli", ["reads.bam", "samtools index"], "no index", outputs=ALN_OUT)
def _(tmp):
    bam = write_bam(tmp / "in" / "reads.bam", index=False)
    bed = tmp / "in" / "targets.bed"
    bed.write_text("1\t100\t500\n")
    return _alignment_qc(tmp, bam, "--regions", bed)


@case("cram-without-reference", "cli", ["reads.cram"], "--reference", outputs=ALN_OUT)
def _(tmp):
    fasta = write_fasta(tmp / "in" / "ref.fa", {"1": 10000})
    cram = write_bam(tmp / "in" / "reads.cram", reference=fasta)
    return _alignment_qc(tmp, cram)


@case("bam-regions-chr-naming", "cli", ["targets.bed", "chr1", "record 1"], ["not in the alignment header"],
      outputs=ALN_OUT)
def _(tmp):
    bam = write_bam(tmp / "in" / "reads.bam", contigs={"1": 10000})
    bed = tmp / "in" / "targets.bed"
    bed.write_text("chr1\t100\t500\n")
    return _alignment_qc(tmp, bam, "--regions", bed)


@case("bam-reference-other-build", "cli", ["ref.fa", "reads.bam", "'1'", str(GRCH37_CHR1), str(GRCH38_CHR1)],
      "another genome build", outputs=ALN_OUT)
def _(tmp):
    # the FASTA holds only the contig's length (an faidx'd GRCh37-length contig would be 250 MB):
    # a .fai of the right shape is what the length check reads
    fasta = tmp / "in" / "ref.fa"
    fasta.write_text(">1\nACGT\n")
    Path(f"{fasta}.fai").write_text(f"1\t{GRCH37_CHR1}\t3\t60\t61\n")
    bam = write_bam(tmp / "in" / "reads.bam", contigs={"1": GRCH38_CHR1})
    return _alignment_qc(tmp, bam, "--reference", fasta)


@case("sites-vcf-chr-naming", "cli", ["sites.vcf.gz", "reads.bam", "chr1"], "none of the sites' contigs",
      outputs=ALN_OUT + ["out/s.sites.tsv.gz"])
def _(tmp):
    bam = write_bam(tmp / "in" / "reads.bam", contigs={"1": 10000})
    sites = write_vcf(tmp / "in" / "sites.vcf.gz", chrom="chr1", samples=[])
    return _alignment_qc(tmp, bam, "--sites", sites)


# ---- summary statistics (cohortflow sumstats, gene-scores)

SUMSTATS_OUT = ["out/h.tsv.gz", "out/h.harmonise.json"]


def _harmonise(tmp: Path, path: Path, *extra) -> list[str]:
    return cli("sumstats", "--in", path, *extra, "--out", tmp / "out" / "h.tsv.gz")


@case("sumstats-no-p-value-column", "cli", ["gwas.tsv"], "no p-value column", outputs=SUMSTATS_OUT)
def _(tmp):
    # without a p-value a standard error would do (p from beta/SE): neither is there
    header = SSF_HEADER.replace("\tp_value", "").replace("\tstandard_error", "")
    return _harmonise(tmp, write_sumstats(tmp / "in" / "gwas.tsv", header=header))


@case("sumstats-no-beta-column", "cli", ["gwas.tsv"], "no effect-size column", outputs=SUMSTATS_OUT)
def _(tmp):
    header = SSF_HEADER.replace("\tbeta", "")
    return _harmonise(tmp, write_sumstats(tmp / "in" / "gwas.tsv", header=header))


GENE_SCORES_OUT = ["out/genes.tsv"]


def _gene_scores(tmp: Path, sumstats: Path) -> list[str]:
    bfile = write_plink(tmp / "in" / "geno")
    gtf = write_gtf(tmp / "in" / "genes.gtf")
    return cli("gene-scores", "--bfile", bfile, "--sumstats", sumstats, "--genes", gtf,
               "--out", tmp / "out" / "genes.tsv")


@case("sumstats-non-numeric-p", "cli", ["gwas.tsv.gz", "line 4", "p_value 'high'"], "not a number",
      outputs=GENE_SCORES_OUT)
def _(tmp):
    p = ["0.1", "0.01", "high", "0.2", "0.3", "0.4"]
    return _gene_scores(tmp, write_sumstats(tmp / "in" / "gwas.tsv.gz", p_values=p))


@case("sumstats-p-out-of-range", "cli", ["gwas.tsv.gz", "line 4", "p_value 1.7"], "outside [0, 1]",
      outputs=GENE_SCORES_OUT)
def _(tmp):
    p = ["0.1", "0.01", "1.7", "0.2", "0.3", "0.4"]
    return _gene_scores(tmp, write_sumstats(tmp / "in" / "gwas.tsv.gz", p_values=p))


@case("gwas-vcf-other-build", "cli", ["gwas.vcf", "GRCh37", "GRCh38"], "not GRCh38", outputs=SUMSTATS_OUT)
def _(tmp):
    path = tmp / "in" / "gwas.vcf"
    path.write_text(textwrap.dedent(f"""\
        ##fileformat=VCFv4.2
        ##contig=<ID=1,length={GRCH37_CHR1}>
        ##FORMAT=<ID=ES,Number=A,Type=Float,Description="Effect size estimate relative to the alternative allele">
        ##FORMAT=<ID=SE,Number=A,Type=Float,Description="Standard error of effect size estimate">
        ##FORMAT=<ID=LP,Number=A,Type=Float,Description="-log10 p-value for effect estimate">
        ##FORMAT=<ID=SS,Number=A,Type=Float,Description="Sample size">
        #CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tstudy1
        1\t1000\trs1\tA\tG\t.\tPASS\t.\tES:SE:LP:SS\t0.1:0.05:2:1000
        1\t2000\trs2\tC\tT\t.\tPASS\t.\tES:SE:LP:SS\t0.2:0.05:3:1000
        """))
    return _harmonise(tmp, path, "--build", "GRCh38")


# ---- PGS Catalog scoring files (cohortflow prs score)

PGS_OUT = ["out/pgs.scores.tsv.gz", "out/pgs.match.tsv", "out/pgs.summary.json"]


def _pgs(tmp: Path, scoring: Path) -> list[str]:
    bfile = write_plink(tmp / "in" / "geno")
    return cli("prs", "score", "--bfile", bfile, "--scores", scoring, "--out", tmp / "out" / "pgs")


@case("pgs-no-effect-weight-column", "cli", ["PGS999999.txt", "line 5"], "no effect_weight column",
      outputs=PGS_OUT)
def _(tmp):
    cols = ("chr_name", "chr_position", "effect_allele", "other_allele", "odds")
    return _pgs(tmp, write_pgs(tmp / "in" / "PGS999999.txt", columns=cols))


@case("pgs-no-variant-matches", "cli", ["PGS999999.txt", "PGS999999", "0 of 6"], "min_overlap",
      outputs=PGS_OUT)
def _(tmp):
    return _pgs(tmp, write_pgs(tmp / "in" / "PGS999999.txt", positions=[5, 15, 25, 35, 45, 55]))


# ---- h5ad (cohortflow sc, spatial, disease-score, cell-eqtl)

@case("h5ad-not-an-h5ad", "cli", ["cells.h5ad"], "cannot read AnnData",
      outputs=["out/sc.h5ad", "out/sc.summary.json"])
def _(tmp):
    path = tmp / "in" / "cells.h5ad"
    path.write_text("barcode,gene,count\nAAAC,CD3E,4\n")
    return cli("sc", "--h5ad", path, "--out", tmp / "out" / "sc.h5ad")


@case("spatial-without-coordinates", "cli", ["spots.h5ad"], "no obsm['spatial']",
      outputs=["out/sp.h5ad", "out/sp.summary.json"])
def _(tmp):
    path = write_h5ad(tmp / "in" / "spots.h5ad", spatial=False)
    return cli("spatial", "--h5ad", path, "--n-perms", "0", "--nhood-perms", "10", "--out", tmp / "out" / "sp.h5ad")


def _disease_score(tmp: Path, x: np.ndarray) -> list[str]:
    h5ad = write_h5ad(tmp / "in" / "cells.h5ad", x=x)
    genes = tmp / "in" / "genes.tsv"
    genes.write_text("gene\tz\n" + "".join(f"G{j}\t{5 - 0.1 * j:.1f}\n" for j in range(x.shape[1])))
    return cli("disease-score", "--h5ad", h5ad, "--gene-scores", genes, "--n-genes", "5", "--n-ctrl", "5",
               "--out", tmp / "out" / "ds")


@case("disease-score-negative-counts", "cli", ["cells.h5ad", "cell 'c5', gene 'G7'"], "negative",
      outputs=["out/ds.h5ad"])
def _(tmp):
    x = np.random.default_rng(3).poisson(2.0, size=(40, 30)).astype(np.float32)
    x[5, 7] = -3
    return _disease_score(tmp, x)


@case("disease-score-nan-in-x", "cli", ["cells.h5ad", "cell 'c2', gene 'G3'"], "non-finite", outputs=["out/ds.h5ad"])
def _(tmp):
    x = np.random.default_rng(3).poisson(2.0, size=(40, 30)).astype(np.float32)
    x[2, 3] = np.nan
    return _disease_score(tmp, x)


@case("cell-eqtl-donors-match-no-fam-iid", "cli", ["cells.h5ad", "geno.fam", "'D0'"], "none of the 8 donors",
      outputs=["out/eqtl.tsv", "out/eqtl.summary.json", "out/eqtl.png"])
def _(tmp):
    h5ad = write_h5ad(tmp / "in" / "cells.h5ad", donors=[f"D{i % 8}" for i in range(40)])
    bfile = write_plink(tmp / "in" / "geno")
    gtf = write_gtf(tmp / "in" / "genes.gtf")
    return cli("cell-eqtl", "--h5ad", h5ad, "--bfile", bfile, "--variant-id", "1:1000:A:G", "--genes", gtf,
               "--min-donors", "3", "--n-pcs", "0", "--out", tmp / "out" / "eqtl.tsv")


# --------------------------------------------------------------------------- running the cases


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    tmp: Path
    extra: dict = field(default_factory=dict)


def _env() -> dict:
    paths = (str(REPO / "src"), os.environ.get("PYTHONPATH", ""))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("NUMBA_NUM_THREADS", "1")
    return env


def _run_cli(c: Case, tmp: Path, argv: list[str]) -> Outcome:
    proc = subprocess.run([sys.executable, "-m", "cohortflow.cli", *argv], capture_output=True, text=True,
                          cwd=tmp, env=_env(), timeout=300)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, tmp)


def _run_snakemake(c: Case, tmp: Path, config: dict) -> Outcome:
    (tmp / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", "1", "-n"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=_env(), timeout=300)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, tmp)


def _run_config(c: Case, tmp: Path, call: Callable) -> Outcome:
    try:
        call()
    except CohortflowError as err:  # what common.smk turns into Snakemake's one "cohortflow config error" line
        return Outcome(1, "", f"{CONFIG_PREFIX}{err}\n", tmp, extra={"error": type(err).__name__})
    return Outcome(0, "", "", tmp)


RUNNERS = {"cli": _run_cli, "snakemake": _run_snakemake, "config": _run_config}


def _run(c: Case, tmp: Path) -> Outcome:
    """Build the case's inputs and run it; a failure of the harness itself is reported as the outcome."""
    start = time.perf_counter()
    try:
        outcome = RUNNERS[c.kind](c, tmp, c.build(tmp))
    except Exception as exc:  # noqa: BLE001 - shown by the case's assertion, not hidden
        outcome = Outcome(-1, "", f"harness error: {type(exc).__name__}: {exc}", tmp)
    outcome.extra["seconds"] = time.perf_counter() - start
    return outcome


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Build the selected cases' inputs, then run them (subprocesses a few at a time)."""
    selected = {item.callspec.params["bad"].id for item in request.session.items
                if getattr(item, "callspec", None) and "bad" in item.callspec.params}
    jobs = []
    for c in CASES:
        if c.id not in selected:
            continue
        tmp = tmp_path_factory.mktemp(c.id)
        (tmp / "in").mkdir()
        (tmp / "out").mkdir()
        jobs.append((c, tmp))
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {c.id: pool.submit(_run, c, tmp) for c, tmp in jobs}
        return {cid: f.result() for cid, f in futures.items()}


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_at_least_30_cases_across_inputs():
    assert len(CASES) >= 30
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    for family in ("config", "sheet", "snakemake", "pheno", "vcf", "plink", "bam", "sumstats", "pgs", "h5ad"):
        assert any(family in i for i in ids), family


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_stops_with_one_clear_line(bad: Case, outcomes):
    out = outcomes[bad.id]
    shown = (f"exit {out.returncode} ({out.extra['seconds']:.1f} s)\n--- stdout\n{out.stdout[-3000:]}\n"
             f"--- stderr\n{out.stderr[-3000:]}")
    assert out.returncode != 0, shown
    assert "Traceback" not in out.stdout and "Traceback" not in out.stderr, shown
    if bad.kind == "snakemake":
        # Snakemake prints its WorkflowError (location + our message) on stdout: exactly one line is ours
        text = out.stdout + out.stderr
        lines = [ln for ln in text.splitlines() if CONFIG_PREFIX in ln]
        assert len(lines) == 1 and lines[0].startswith(CONFIG_PREFIX), shown
    else:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, shown
        prefix = CLI_PREFIX if bad.kind == "cli" else CONFIG_PREFIX
        assert lines[0].startswith(prefix), shown
        if bad.kind == "cli":
            assert out.stdout.strip() == "", shown
        else:  # common.smk catches ConfigError only
            assert out.extra["error"] == ConfigError.__name__, shown
    line = lines[0]
    for name in bad.names:
        assert name in line, f"{name!r} not named in: {line}"
    assert any(p.lower() in line.lower() for p in bad.problem), f"none of {bad.problem} in: {line}"
    for rel in bad.outputs:
        assert not (out.tmp / rel).exists(), f"partial output {rel} left: {_files_under(out.tmp / 'out')}"
    assert _files_under(out.tmp / "out") == [], f"files left in the output folder: {_files_under(out.tmp / 'out')}"
    if bad.kind == "snakemake":
        assert not (out.tmp / "results").exists()


def test_good_inputs_pass_the_new_checks(tmp_path):
    """The checks added for these cases let correct inputs through: existing paths, inputs the
    workflow writes itself (``generated``), traits present, a matching reference, p-values 0 and 1."""
    from cohortflow.alignment.reader import open_alignment
    from cohortflow.io.sumstats import read_sumstats

    (tmp_path / "in").mkdir()
    geno = write_plink(tmp_path / "in" / "geno")
    pheno = write_pheno(tmp_path / "in" / "pheno.tsv")
    sheet = tmp_path / "in" / "cohorts.tsv"
    generated = tmp_path / "gen"
    sheet.write_text(f"id\tgenotypes\tphenotypes\ttraits\tpgs\na\t{geno}\t{pheno}\ttrait\t{generated / 'p.txt'}\n")
    cohorts = load_cohorts(sheet, SCHEMAS / "cohorts.schema.yaml", check_paths=True, generated=[str(tmp_path / "gen")])
    assert [c.id for c in cohorts] == ["a"] and cohorts[0].traits == ["trait"]
    with pytest.raises(CohortflowError, match="p.txt not found"):
        load_cohorts(sheet, SCHEMAS / "cohorts.schema.yaml", check_paths=True)
    bam = write_bam(tmp_path / "in" / "S1.bam", contigs={"1": 10000, "decoy": 500})
    aln_sheet = tmp_path / "in" / "alignment.tsv"
    aln_sheet.write_text(f"sample\tbam\nS1\t{bam}\nS2\t{tmp_path / 'gen' / 'S2.bam'}\n")
    assert load_alignment_sheet(aln_sheet, SCHEMAS / "alignment_sheet.schema.yaml", check_paths=True,
                                generated=[str(generated)]) == {"S1": str(bam), "S2": str(generated / "S2.bam")}
    # a reference of the same build (the BAM's decoy contig absent from it) is fine
    fasta = write_fasta(tmp_path / "in" / "ref.fa", {"1": 10000, "2": 300})
    aln, header = open_alignment(bam, reference=fasta)
    aln.close()
    assert header.contig_names[:1] == ["1"]
    ss = write_sumstats(tmp_path / "in" / "ok.tsv", p_values=["0", "1", "1e-400", "NA", "NaN", "0.5"])
    p = read_sumstats(ss)["p_value"].to_numpy()
    assert p[0] == 0 and p[1] == 1 and p[2] == 0 and np.isnan(p[3]) and np.isnan(p[4]) and p[5] == 0.5
