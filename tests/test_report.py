"""Tests of the per-cohort HTML report (cohortflow.report), on fixture results folders written here
per the file contract of docs/architecture.md."""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.metadata
import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cohortflow.errors import CohortflowError
from cohortflow.report.api import build_report
from cohortflow.report.model import fmt_p, neg_log10_p

GENERATED_AT = "2026-01-02 03:04 UTC"
CHROMIUM = Path("/usr/bin/chromium")
CONFIG = {
    "qc": {"geno": 0.05, "mind": 0.05, "maf": 0.01, "hwe": 1e-6},
    "gwas": {"n_pcs": 4, "p_threshold": 5e-8},
    "alignment_qc": {"thresholds": {"min_mapped_pct": 95, "max_duplicate_pct": 20, "min_mean_depth": 10}},
    "privacy": {"min_cell_count": 5},
}


# ------------------------------------------------------------------------------------------------
# Fixture writers


def png_bytes(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (31, 78, 121)) -> bytes:
    """A valid RGB PNG (signature, IHDR, IDAT, IEND) of one colour."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_png(path: Path, rgb=(31, 78, 121)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(rgb=rgb))


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


ALIGN_HEADER = [
    "sample", "total_reads", "mapped_pct", "properly_paired_pct", "duplicate_pct", "mapq20_pct",
    "insert_size_mean", "insert_size_sd", "error_rate", "mean_depth", "pct_1x", "pct_10x", "pct_30x",
    "pass", "fail_reasons", "lab_note",
]  # fmt: skip


def align_row(sample: str, *, passed: bool = True, depth: float = 15.2) -> list:
    return [sample, 250000, 99.1, 97.5, 3.2, 98.0, 351.2, 49.8, 0.0042, depth, 99.9, 80.1, 2.0,
            "true" if passed else "false", "" if passed else f"mean_depth={depth}<10", "female"]  # fmt: skip


def write_prs(res: Path, trait: str) -> None:
    """The aggregate PRS files of one trait: evaluation (as cohortflow.prs.evaluate writes it), the
    C+T and Bayesian summaries, and the three figures."""
    binary = trait == "disease"
    main = "auc" if binary else "incremental_r2"

    def metric(value, lo, hi):
        return {"value": value, "ci_low": lo, "ci_high": hi, "n_boot_valid": 1000}

    methods = [
        {"method": "ct", "columns": ["ct_p<5e-08", "ct_p<0.0001"], "selected_column": "ct_p<5e-08",
         "selected_label": "p<5e-08", "n_test": 397, "n_validation": 398,
         "metrics": {main: metric(0.318, 0.25, 0.378), "r": metric(0.605, 0.54, 0.666)}},
        {"method": "bayes", "columns": ["bayes_auto"], "selected_column": "bayes_auto", "selected_label": "auto",
         "n_test": 397, "n_validation": 398,
         "metrics": {main: metric(0.421, 0.35, 0.49), "r": metric(0.7, 0.64, 0.75)}},
    ]
    write_json(res / "prs" / f"{trait}.evaluate.json", {
        "trait": trait, "trait_type": "binary" if binary else "quantitative", "main_metric": main,
        "ci": "percentile 95% intervals of 1000 bootstrap resamples of the test samples (seed 1)",
        "covariates": ["sex", "age", "PC1"], "methods": methods,
        "samples": {"in_split": {"discovery": 1191, "validation": 398, "test": 397}},
        "groups": {"source": "label", "column": "population", "rows": [
            {"method": "bayes", "column": "bayes_auto", "group": "POP1", "n": 130, "metric": main, "value": 0.44,
             "ci_low": 0.3, "ci_high": 0.55},
            {"method": "bayes", "column": "bayes_auto", "group": "POP9", "n": "<5", "metric": main, "value": None,
             "ci_low": None, "ci_high": None}]},
    })  # fmt: skip
    write_json(res / "prs" / f"{trait}.ct.json", {"n_aligned": 13751, "clump": {
        "p1": 1.0, "r2": 0.1, "kb": 250, "n_index_variants": 5689}})
    write_json(res / "prs" / f"{trait}.bayes.json", {
        "variants": {"used": 13751}, "h2": {"estimate": 0.47}, "p": {"estimate": 0.0011}, "n_chains_kept": 7,
        "n_chains_diverged": 1, "warnings": ["1 of 8 chains diverged (h2 above 1) and were dropped."]})
    for name in ("distribution", "deciles", "thresholds"):
        write_png(res / "prs" / f"{trait}.{name}.png")


def write_full_fixture(root: Path, *, n_align: int = 3) -> Path:
    """A results folder with every stage's report inputs."""
    res = root / "results" / "demo"
    write_json(
        res / "truth_check.json",
        {
            "checks": [
                {"stage": "gwas", "check": "causal locus recovered", "expected": "1:1200345", "observed": "1:1200345", "passed": True},
                {"stage": "integration", "check": "trait cell type", "expected": "Monocyte", "observed": "B cell", "passed": False},
            ],
            "all_passed": False,
        },
    )
    samples = ["NA12878", "HG00096", "HG00097"] + [f"S{i:03d}" for i in range(max(0, n_align - 3))]
    write_tsv(
        res / "alignment_qc" / "summary.tsv",
        ALIGN_HEADER,
        [align_row(s, passed=(i != 1), depth=(7.5 if i == 1 else 15.2)) for i, s in enumerate(samples[:n_align])],
    )
    write_json(
        res / "qc" / "summary.json",
        {
            "n_samples_in": 2000, "n_samples_out": 1985, "n_variants_in": 52011, "n_variants_out": 48750,
            "samples_removed": {"mind": 3, "heterozygosity": 12, "relatedness": 0},
            "variants_removed": {"geno": 1200, "hwe": 61, "maf": 2000},
            "thresholds": {"geno": 0.05, "mind": 0.05, "maf": 0.01, "hwe": 1e-6},
            "order": ["mind", "geno", "hwe", "maf"],
            "some_future_key": {"nested": [1, 2, {"x": None}]},
        },
    )  # fmt: skip
    write_png(res / "qc" / "pca.png")
    write_json(
        res / "qc" / "pca.json",
        {"n_samples": 1985, "n_variants_used": 9000, "n_pcs": 3, "eigenvalues": [9.1, 4.2, 1.1],
         "variance_explained": [0.091, 0.042, 0.011],
         "separation": {"silhouette_pc1_pc2": 0.71, "n_populations": 3, "n_samples_labelled": 1985}},
    )  # fmt: skip
    write_tsv(
        res / "qc" / "eigenvalues.tsv",
        ["pc", "eigenvalue", "variance_explained"],
        [["PC1", 9.1, 0.091], ["PC2", 4.2, 0.042], ["PC3", 1.1, 0.011]],
    )
    for trait in ("quant_trait", "disease"):
        write_json(
            res / "gwas" / f"{trait}.summary.json",
            {"trait": trait, "model": "linear" if trait == "quant_trait" else "logistic", "n": 1985,
             "n_variants": 48750, "lambda_gc": 1.01, "lambda_gc_nopcs": 1.42, "n_significant": 40, "n_loci": 6,
             **({"n_cases": 600, "n_controls": 1385} if trait == "disease" else {})},
        )  # fmt: skip
        write_png(res / "gwas" / f"{trait}.manhattan.png")
        write_png(res / "gwas" / f"{trait}.qq.png")
        write_tsv(
            res / "gwas" / f"{trait}.leads.tsv",
            ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
             "standard_error", "p_value", "nearest_gene", "gene_distance"],
            [["1:1200345:A:G", 1, 1200345, "G", "A", 0.41, 0.044, "3e-20", "CFG1203", 0],
             ["2:500100:C:T", 2, 500100, "T", "C", -0.22, 0.03, "1.5e-9", "CFG2050", 1200],
             ["3:77000:G:A", 3, 77000, "A", "G", 0.3, 0.05, "2e-8", "CFG3007", 5400]],
        )  # fmt: skip
        write_prs(res, trait)
        ranking = [
            {"rank": 1, "cell_type": "Monocyte", "n_cells": 1200, "mean_norm_score": 0.81, "assoc_stat": 2.1,
             "mc_p": 0.004975, "mc_z": 6.2},
            {"rank": 2, "cell_type": "B cell", "n_cells": 900, "mean_norm_score": 0.1, "assoc_stat": 1.1,
             "mc_p": 0.2, "mc_z": 0.8},
            {"rank": 3, "cell_type": "Platelet", "n_cells": 3, "mean_norm_score": 0.0, "assoc_stat": 0.9,
             "mc_p": 0.9, "mc_z": -1.1},
        ]  # fmt: skip
        write_json(
            res / "integration" / f"{trait}.summary.json",
            {"trait": trait,
             "gene_scores": {"n_genes_tested": 812, "n_snps_used": 40000, "ld_samples": 1985, "window_kb": 10.0,
                             "test": "SNP-wise mean (sum z^2), LD from cohort genotypes"},
             "top_genes": [{"gene": "CFG1203", "z": 8.1, "p_value": 2e-16, "n_snps": 14}],
             "n_genes_used": 30, "n_ctrl": 200, "n_cells": 5812, "top_cell_type": "Monocyte",
             "top_cell_type_mc_p": 0.004975, "ranking": ranking,
             "spatial": {"n_spots": 2500, "morans_i": 0.31, "morans_p_permutation": 0.005, "top_region": "region_2",
                         "regions": [{"rank": 1, "region": "region_2", "n_cells": 400, "mc_p": 0.005},
                                     {"rank": 2, "region": "region_1", "n_cells": 2, "mc_p": 0.5}]}},
        )  # fmt: skip
        write_tsv(
            res / "integration" / f"{trait}.celltype_ranking.tsv",
            list(ranking[0]),
            [list(r.values()) for r in ranking],
        )
        write_png(res / "integration" / f"{trait}.png")
        write_png(res / "integration" / f"{trait}.spatial.png")
    write_json(
        res / "singlecell" / "summary.json",
        {"n_cells_in": 6000, "n_cells_out": 5812, "n_clusters": 8, "n_genes": 2000,
         "n_removed": {"low_genes": 150, "high_mito": 36, "doublets": 2},
         "cells_per_type": {"Monocyte": 1200, "B cell": 900, "T cell": 3000, "Rare cell": 3},
         "top_genes_per_cluster": {"0": ["CFG1", "CFG2"]}, "parameters": {"min_genes": 100}},
    )  # fmt: skip
    for name in ("umap", "markers", "qc"):
        write_png(res / "singlecell" / f"{name}.png")
    write_json(res / "spatial" / "summary.json", {"n_spots": 2500, "morans_i": {"CFG1203": 0.42}})
    write_png(res / "spatial" / "regions.png")
    write_tsv(
        res / "benchmarks" / "gwas_quant_trait.tsv",
        ["s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time"],
        [[12.5, "0:00:12", 512.3, 900.1, 500.0, 505.0, 1.0, 2.0, 95.0, 11.9]],
    )
    write_tsv(
        res / "benchmarks" / "alignment_qc" / "HG00096.tsv",
        ["s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time"],
        [[3.25, "0:00:03", 100.0, 200.0, 90.0, 95.0, 0.0, 0.0, 80.0, 2.5]],
    )
    return res


def build(res: Path, out: Path, **kwargs) -> str:
    options = {"cohort": "demo", "config": CONFIG, "generated_at": GENERATED_AT, "git_commit": "abc123def456"}
    options.update(kwargs)
    build_report(results_dir=res, out_html=out, **options)
    return out.read_text(encoding="utf-8")


class Page(HTMLParser):
    """Collects ids, images (with their figure captions), resource URLs and table cells."""

    def __init__(self):
        super().__init__()
        self.ids: list[str] = []
        self.images: list[dict] = []
        self.urls: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table = None
        self._cell = None
        self._fig_depth = 0
        self.figcaptions = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        for key in ("src", "href", "action", "poster", "data"):
            if key in a and a[key] is not None:
                self.urls.append(a[key])
        if tag == "img":
            self.images.append(a)
        if tag == "figcaption":
            self.figcaptions += 1
        if tag == "table" and "id" in a:
            self._table = a["id"]
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self.tables[self._table].append([])
        if tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def rows_of(page: Page, table_id: str) -> dict[str, list[str]]:
    """Body rows of a table keyed by their first cell."""
    return {r[0]: r for r in page.tables[table_id][1:] if r}


# ------------------------------------------------------------------------------------------------
# Tests


def test_full_fixture_has_every_section_and_embedded_figures(tmp_path):
    res = write_full_fixture(tmp_path)
    text = build(res, tmp_path / "report.html")
    page = parse(text)
    for section in ("summary", "known-answers", "alignment-qc", "genotype-qc", "gwas", "gwas-quant_trait",
                    "gwas-disease", "prs", "single-cell", "spatial", "integration", "methods", "provenance"):  # fmt: skip
        assert section in page.ids, section
        assert f'href="#{section}"' in text, f"no contents link to {section}"
    pngs = sorted(res.rglob("*.png"))
    assert len(page.images) == len(pngs) == 19
    embedded = set()
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        embedded.add(base64.b64decode(img["src"].split(",", 1)[1]))
        assert img.get("alt", "").strip(), "every figure has alt text"
    assert embedded == {p.read_bytes() for p in pngs}
    assert page.figcaptions == len(page.images)
    # Failing alignment sample is highlighted and the truth check shows the failure.
    assert '<tr class="row-fail"><td class="nowrap">HG00096</td>' in text
    truth = rows_of(page, "tbl-known-answers")
    assert truth["integration"][-1] == "FAIL" and truth["gwas"][-1] == "PASS"
    # Lead-loci table, key findings generated from the files.
    leads = rows_of(page, "tbl-leads-quant_trait")
    assert leads["1:1200345:A:G"][7] == "3.0e-20" and leads["1:1200345:A:G"][8] == "CFG1203"
    assert "quant_trait: 6 genome-wide significant loci; strongest near CFG1203 (p = 3.0e-20). " \
           "Lambda GC 1.01 with PC covariates (1.42 without)." in text  # fmt: skip
    assert "the trait&#39;s genetic signal is enriched in Monocyte cells (p = 0.005)." in text
    # PRS: test-split metrics with CIs per method, chosen C+T threshold, groups with small counts masked
    prs = [r for r in page.tables["tbl-prs-quant_trait"][1:] if r]
    assert ["Clumping + thresholding", "p<5e-08", "Incremental R²", "0.318", "0.250 to 0.378", "397"] in prs
    assert ["Bayesian (LDpred2-auto model)", "auto", "Incremental R²", "0.421", "0.350 to 0.490", "397"] in prs
    groups = [r for r in page.tables["tbl-prs-groups-quant_trait"][1:] if r]
    assert groups[1][1:] == ["POP9", "<5", "Incremental R²", "not reported", "n/a"]
    assert "Polygenic scores for quant_trait, Incremental R² in held-out test samples: Bayesian 0.421 " \
           "(95% CI 0.350 to 0.490); clumping + thresholding 0.318 (95% CI 0.250 to 0.378)." in text
    assert "Gibbs chains kept / dropped as diverged" in text and "1 of 8 chains diverged" in text
    assert "highest in region region_2" in text
    # Unknown per-sample columns (here a free-text lab note) are never shown.
    assert "female" not in text and "lab_note" not in text
    # Provenance: versions, commit, benchmark runtimes.
    deps = rows_of(page, "tbl-dependencies")
    assert deps["numpy"][1] == importlib.metadata.version("numpy")
    assert deps["jinja2"][1] == importlib.metadata.version("jinja2")
    bench = rows_of(page, "tbl-benchmarks")
    assert bench["gwas_quant_trait"][1:4] == ["12.50", "11.90", "512.3"]
    assert "abc123def456" in text
    # Citations present for the methods used.
    for ref in ("Second-generation PLINK", "msprime 1.0", "SCANPY", "From Louvain to Leiden", "UMAP",
                "MAGMA", "Polygenic enrichment distinguishes", "Squidpy", "Moran PAP", "Snakemake"):  # fmt: skip
        assert ref in text, ref


def test_minimal_fixture_leaves_absent_sections_out(tmp_path):
    res = tmp_path / "results" / "c1"
    write_json(res / "gwas" / "height.summary.json", {"trait": "height", "n": 500, "lambda_gc": 1.0})
    text = build(res, tmp_path / "r.html", cohort="c1")
    page = parse(text)
    assert [i for i in page.ids if not i.startswith(("tbl-", "ref-", "fig-"))] == [
        "summary", "gwas", "gwas-height", "methods", "provenance"
    ]  # fmt: skip
    assert page.images == [] and "<img" not in text
    for absent in ("alignment-qc", "known-answers", "single-cell", "spatial", "integration", "prs", "genotype-qc"):
        assert f'id="{absent}"' not in text and f'href="#{absent}"' not in text
    # Methods only cite what ran.
    assert "Second-generation PLINK" in text and "SCANPY" not in text and "MAGMA" not in text


def test_empty_results_folder_still_builds(tmp_path):
    res = tmp_path / "results" / "empty"
    res.mkdir(parents=True)
    text = build(res, tmp_path / "r.html", cohort="empty")
    assert "No stage results were found" in text


def test_missing_figure_and_non_png_are_not_embedded(tmp_path):
    res = tmp_path / "results" / "c"
    write_json(res / "gwas" / "t.summary.json", {"n_loci": 0})
    (res / "gwas" / "t.manhattan.png").write_text("not a png")
    text = build(res, tmp_path / "r.html")
    assert "<img" not in text


def test_data_is_html_escaped(tmp_path):
    res = tmp_path / "results" / "c"
    evil = '<script>alert("x")</script>'
    write_json(res / "gwas" / "t.summary.json", {"model": evil, "n_loci": 1})
    write_tsv(
        res / "gwas" / "t.leads.tsv",
        ["variant_id", "p_value", "nearest_gene"],
        [["rs1", "1e-9", f'{evil}&<img src="https://example.org/x.png">']],
    )
    write_json(
        res / "truth_check.json",
        {"checks": [{"stage": "x", "check": evil, "expected": "a&b", "observed": '"q"', "passed": True}]},
    )
    text = build(res, tmp_path / "r.html", cohort='co"<hort>')
    assert evil not in text and "<img" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "a&amp;b" in text and "co&#34;&lt;hort&gt;" in text
    # The only <script> element is the report's own table script.
    assert text.count("<script") == 1


def test_sample_ids_pseudonymised(tmp_path):
    res = write_full_fixture(tmp_path)
    bam = tmp_path / "bam" / "HG00096.bam"
    bam.parent.mkdir()
    bam.write_bytes(b"BAM\x01")
    text = build(res, tmp_path / "r.html", show_sample_ids=False, inputs=[str(bam)],
                 command_line="snakemake results/demo/alignment_qc/NA12878.stats")  # fmt: skip
    for sample in ("NA12878", "HG00096", "HG00097"):
        assert sample not in text, sample
    page = parse(text)
    samples = [r[0] for r in page.tables["tbl-alignment-qc"][1:]]
    assert samples == ["sample-01", "sample-02", "sample-03"]  # file order
    assert "alignment_qc/sample-02" in text  # benchmark name and input path pseudonymised too
    assert str(tmp_path / "bam" / "sample-02.bam") in text
    shown = build(res, tmp_path / "r2.html", show_sample_ids=True)
    assert [r[0] for r in parse(shown).tables["tbl-alignment-qc"][1:]] == ["NA12878", "HG00096", "HG00097"]


def test_small_counts_suppressed(tmp_path):
    res = write_full_fixture(tmp_path)
    page = parse(build(res, tmp_path / "r.html", min_cell_count=5))
    cells = rows_of(page, "tbl-sc-celltypes")
    assert cells["Rare cell"][1] == "<5" and cells["Monocyte"][1] == "1,200"
    removed = rows_of(page, "tbl-qc-removed-samples")
    assert removed["Sample missingness (> 0.05)"][1] == "<5" and removed["Relatedness"][1] == "<5"
    assert removed["Heterozygosity"][1] == "12"
    variants = rows_of(page, "tbl-qc-removed-variants")
    assert variants["Hardy-Weinberg exact test (p < 1.0e-6)"][1] == "61"  # variants are not people
    assert list(variants) == ["Variant missingness (> 0.05)", "Hardy-Weinberg exact test (p < 1.0e-6)",
                              "Minor allele frequency (< 0.01)"]  # the order the filters ran  # fmt: skip
    assert rows_of(page, "tbl-celltypes-quant_trait")["3"][2] == "<5"  # rank 3 = Platelet
    assert rows_of(page, "tbl-sc-removed")["Doublets"][1] == "<5"
    assert rows_of(page, "tbl-regions-disease")["2"][2] == "<5"
    page = parse(build(res, tmp_path / "r.html", min_cell_count=20))
    assert rows_of(page, "tbl-qc-removed-samples")["Heterozygosity"][1] == "<20"
    # The suppressed value is not recoverable from the sort key either.
    text = (tmp_path / "r.html").read_text()
    rare = re.search(r"<tr><td>Rare cell</td>(.*?)</tr>", text).group(1)
    assert rare == '<td class="num suppressed" data-sort="0.0">&lt;20</td>'
    platelet = re.search(r"<tr>(<td[^>]*>3</td><td>Platelet</td>.*?)</tr>", text).group(1)
    assert '<td class="num suppressed" data-sort="0.0">&lt;20</td>' in platelet
    het = re.search(r"<tr><td>Heterozygosity</td>(.*?)</tr>", text).group(1)
    assert het == '<td class="num suppressed" data-sort="0.0">&lt;20</td>'


def test_no_network_resources(tmp_path):
    res = write_full_fixture(tmp_path)
    config = dict(CONFIG, note="see https://example.org/docs")
    text = build(res, tmp_path / "r.html", config=config)
    page = parse(text)
    assert page.urls, "parser saw the links"
    for url in page.urls:
        assert url.startswith(("#", "data:image/png;base64,")), url[:60]
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", text, re.I)
    assert not re.search(r"@import", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_deterministic_bytes(tmp_path):
    res = write_full_fixture(tmp_path)
    a = build(res, tmp_path / "a.html")
    b = build(res, tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    c = build(res, tmp_path / "c.html", generated_at="2030-12-31 23:59 UTC")
    assert a.replace(GENERATED_AT, "2030-12-31 23:59 UTC") == c and a != c
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_json_is_a_clear_error_and_leaves_no_output(tmp_path):
    res = tmp_path / "results" / "c"
    (res / "qc").mkdir(parents=True)
    (res / "qc" / "summary.json").write_text("{not json")
    out = tmp_path / "r.html"
    with pytest.raises(CohortflowError, match=r"qc/summary.json.*not valid JSON"):
        build(res, out)
    assert not out.exists() and not list(tmp_path.glob(".r.html*"))
    with pytest.raises(CohortflowError, match="results folder does not exist"):
        build(tmp_path / "nope", out)


def test_unknown_keys_and_wrong_types_render(tmp_path):
    res = tmp_path / "results" / "c"
    write_json(res / "gwas" / "t.summary.json", {"lambda_gc": "NA", "n": None, "n_loci": "many", "extra": {"a": [1]}})
    write_json(res / "singlecell" / "summary.json", {"n_cells_out": "x", "cell_type_counts": {"A": "NA"}, "new": [1]})
    write_json(res / "prs" / "t.evaluate.json", {"methods": None, "whatever": {"deep": {"deeper": 1}}})
    text = build(res, tmp_path / "r.html")
    assert "n/a" in text and 'id="single-cell"' in text and 'id="prs-t"' in text


def test_pvalues_beyond_double_range():
    assert fmt_p("3e-20") == "3.0e-20"
    assert fmt_p("1e-400") == "1.0e-400"
    assert fmt_p("9.96e-5") == "1.0e-4"
    assert fmt_p(0.0123) == "0.012"
    assert fmt_p(1.0) == "1.00"
    assert neg_log10_p("2.5e-1000") == pytest.approx(1000 - 0.39794000867, abs=1e-9)


def test_lead_table_sorts_extreme_pvalues(tmp_path):
    res = tmp_path / "results" / "c"
    write_tsv(res / "gwas" / "t.leads.tsv", ["variant_id", "p_value"], [["a", "1e-9"], ["b", "1e-400"]])
    text = build(res, tmp_path / "r.html")
    assert 'data-sort="400.0"' not in text  # sort key is log10(p): smaller p sorts first
    assert re.search(r'<td class="num" data-sort="-400\.0">1\.0e-400</td>', text)
    assert "strongest at b (p = 1.0e-400)" in text


def test_input_checksums(tmp_path):
    res = tmp_path / "results" / "c"
    res.mkdir(parents=True)
    data = tmp_path / "in.vcf.gz"
    data.write_bytes(b"x" * 3000)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_text("b")
    text = build(res, tmp_path / "r.html", inputs=[str(data), str(folder), str(tmp_path / "gone.vcf")])
    rows = rows_of(parse(text), "tbl-inputs")
    if shutil.which("sha256sum"):  # coreutils as the peer
        expected = subprocess.run(["sha256sum", str(data)], capture_output=True, text=True, check=True).stdout.split()[0]
    else:
        expected = hashlib.sha256(b"x" * 3000).hexdigest()
    assert rows[str(data)][1:] == ["3,000", expected]
    assert rows[str(folder / "sub" / "b.txt")][2] == hashlib.sha256(b"b").hexdigest()
    assert rows[str(tmp_path / "gone.vcf")][1] == "missing"


def test_static_assets_cannot_close_their_element():
    from importlib import resources

    templates = resources.files("cohortflow.report").joinpath("templates")
    assert "</" not in templates.joinpath("style.css").read_text()
    assert "</" not in templates.joinpath("table.js").read_text()


def test_big_tables_are_paginated(tmp_path):
    res = write_full_fixture(tmp_path, n_align=60)
    text = build(res, tmp_path / "r.html")
    assert '<table class="data" id="tbl-alignment-qc" data-page-size="50">' in text
    assert '<table class="data" id="tbl-known-answers">' in text


# ------------------------------------------------------------------------------------------------
# Browser


def _dump_dom(path: Path) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--dump-dom", path.as_uri()]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_renders_in_headless_chromium_and_tables_work(tmp_path):
    res = write_full_fixture(tmp_path, n_align=60)
    out = tmp_path / "report.html"
    text = build(res, out)
    # A probe appended to a copy drives the report's own table script as a reader would.
    probe = """<script>
    (function () {
      var t = document.getElementById("tbl-alignment-qc");
      var block = t.closest(".table-block");
      var visible = function () { return Array.prototype.filter.call(t.tBodies[0].rows, function (r) {
        return getComputedStyle(r).display !== "none"; }); };
      var out = {};
      out.rows_page1 = visible().length;
      out.pager = block.querySelector(".page-label").textContent;
      var depth = Array.prototype.map.call(t.tHead.rows[0].cells, function (c) { return c.textContent; })
        .indexOf("Mean depth");
      t.tHead.rows[0].cells[depth].querySelector("button").click();
      out.first_after_sort = visible()[0].cells[0].textContent;
      var input = block.querySelector(".table-filter");
      input.value = "S05";
      input.dispatchEvent(new Event("input"));
      out.filtered = visible().map(function (r) { return r.cells[0].textContent; });
      out.imgs_loaded = Array.prototype.every.call(document.images, function (i) { return i.complete && i.naturalWidth > 0; });
      document.body.setAttribute("data-probe", JSON.stringify(out));
    })();
    </script></body>"""
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", probe, 1))
    dom = _dump_dom(probed)
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, "probe did not run"
    result = json.loads(html.unescape(m.group(1)))
    assert result["rows_page1"] == 50
    assert result["pager"] == "Page 1 of 2"
    assert result["first_after_sort"] == "HG00096"  # the only sample with depth 7.5
    assert result["filtered"] == [f"S{i:03d}" for i in range(50, 57)]
    assert result["imgs_loaded"] is True
    # The unmodified report renders: its sections are in the DOM and the script enabled the tools.
    dom = _dump_dom(out)
    assert 'id="provenance"' in dom and 'class="sort-btn"' in dom
    assert '<div class="table-tools">' in dom  # "hidden" removed by the script


def test_qc_files_with_out_prefix_names(tmp_path):
    """qc/qc.summary.json etc. (the QC functions' {out_prefix}.{name}) are read like qc/summary.json."""
    res = tmp_path / "results" / "c"
    write_json(res / "qc" / "qc.summary.json", {"n_samples_in": 100, "n_samples_out": 98, "samples_removed": {"mind": 2}})
    write_png(res / "qc" / "qc.pca.png")
    write_tsv(res / "qc" / "qc.eigenvalues.tsv", ["pc", "eigenvalue", "variance_explained"], [["PC1", 3.0, 0.03]])
    page = parse(build(res, tmp_path / "r.html"))
    assert "genotype-qc" in page.ids and len(page.images) == 1
    assert rows_of(page, "tbl-qc-removed-samples")["Sample missingness"][1] == "<5"
    assert rows_of(page, "tbl-eigenvalues")["PC1"][2] == "3.0"


def test_integration_finding_states_significance(tmp_path):
    """Bonferroni over cell types when the ranking has Monte-Carlo p-values but no FDR column."""
    res = tmp_path / "results" / "c"
    header = ["rank", "cell_type", "n_cells", "assoc_stat", "mc_p"]
    rows = [[1, "Mono", 80, 3.2, 0.0099]] + [[i, f"T{i}", 80, 1.0, 0.3] for i in range(2, 7)]
    write_tsv(res / "integration" / "t.celltype_ranking.tsv", header, rows)
    text = build(res, tmp_path / "r.html")
    # 0.05 / 6 cell types = 0.0083 > 0.0099: not significant
    assert "t: the strongest signal is in Mono cells (p = 0.0099), not significant " \
           "(p &lt; 0.0083 needed after correction for 6 cell types)." in text  # fmt: skip
    rows[0][4] = 0.004975
    write_tsv(res / "integration" / "t.celltype_ranking.tsv", header, rows)
    assert "t: the trait&#39;s genetic signal is enriched in Mono cells (p = 0.005)." in build(res, tmp_path / "r.html")


def test_integration_spatial_json(tmp_path):
    """The spatial integration may come as its own integration/{trait}.spatial.json."""
    res = tmp_path / "results" / "c"
    write_json(
        res / "integration" / "t.spatial.json",
        {"n_spots": 900, "morans_i": 0.25, "morans_p_permutation": 0.002, "top_region": "cortex",
         "regions": [{"rank": 1, "region": "cortex", "n_cells": 300, "mc_p": 0.002}]},
    )  # fmt: skip
    write_png(res / "integration" / "t.spatial.png")
    page = parse(build(res, tmp_path / "r.html"))
    assert "integration-t" in page.ids and len(page.images) == 1
    assert rows_of(page, "tbl-regions-t")["1"][1:3] == ["cortex", "300"]
    text = (tmp_path / "r.html").read_text()
    assert "t: the disease score is spatially autocorrelated (Moran&#39;s I = 0.25, p = 0.002); highest in region cortex." in text


def test_spatial_summary_is_described_not_dumped(tmp_path):
    """The spot graph and spatially variable feature counts read as sentences, never as raw dicts
    or as 'genome-wide significant variants'."""
    res = tmp_path / "results"
    (res / "spatial").mkdir(parents=True)
    (res / "spatial" / "summary.json").write_text(json.dumps({
        "n_spots": 2500, "n_genes": 381, "n_perms": 199, "fdr": 0.05,
        "graph": {"type": "knn", "n_neighbors": 6, "radius": None, "mean_degree": 6.12, "n_edges": 7653},
        "n_significant": {"moran_norm": 148, "moran_sim": 141, "geary_norm": 147},
        "top_moran": [{"feature": "GENE1", "I": 0.45, "C": 0.55, "pval_norm": 1e-30, "pval_sim": 0.005}],
    }))
    html = build(res, tmp_path / "r.html")
    assert "{&#39;" not in html and "{'" not in html
    assert "Genome-wide significant variants" not in html
    assert "knn: 6 nearest neighbours" in html and "Spatially variable features" in html and "GENE1" in html


PGS_MATCH_HEADER = ["pgs_id", "trait_reported", "n_variants", "matched", "swapped", "flipped", "ambiguous_dropped",
                    "missing", "other_dropped", "fraction_matched", "weight_fraction_matched"]


def test_published_scores_subsection(tmp_path):
    """prs/pgs.match.tsv and prs/pgs.summary.json: their own subsection, even without C+T files;
    small sample counts suppressed, text escaped; absent when the files are absent."""
    res = tmp_path / "results" / "c"
    evil = '<b onmouseover="x">Height</b>'
    write_tsv(res / "prs" / "pgs.match.tsv", PGS_MATCH_HEADER,
              [["PGS000001", evil, 77, 70, 12, 3, 4, 2, 1, 0.909091, 0.95],
               ["DEMO000001", "quant_trait (demo)", 30, 24, 1, 1, 5, 1, 0, 0.8, 0.331]])
    write_json(res / "prs" / "pgs.summary.json", {"n_samples": 1985, "scores": {
        "PGS000001": {"matched": 70, "traits": {"disease": {"type": "binary", "n": 3, "n_cases": 1, "n_controls": 2,
                                                           "auc": 0.61}}},
        "DEMO000001": {"matched": 24, "traits": {"quant_trait": {"type": "quantitative", "n": 1980, "r": 0.339,
                                                                 "r2": 0.1149}}}}})
    text = build(res, tmp_path / "r.html")
    page = parse(text)
    assert "prs" in page.ids and "prs-published" in page.ids and 'href="#prs"' in text
    assert "Published scores (PGS Catalog)" in text
    match = rows_of(page, "tbl-pgs-match")
    assert match["PGS000001"][2:] == ["77", "70", "12", "3", "4", "2", "1", "0.909", "0.950"]
    assert match["DEMO000001"][1] == "quant_trait (demo)"
    assert evil not in text and "&lt;b onmouseover=&#34;x&#34;&gt;Height&lt;/b&gt;" in text
    traits = rows_of(page, "tbl-pgs-traits")
    assert traits["DEMO000001"] == ["DEMO000001", "quant_trait", "1,980", "0.339", "0.115", ""]
    assert traits["PGS000001"] == ["PGS000001", "disease", "<5", "", "", "0.61"]
    assert "Published score DEMO000001 (quant_trait (demo)): 24 of 30 variants matched the genotypes (80%)." in text
    assert "Published score DEMO000001 vs quant_trait: r = 0.34." in text

    (res / "prs" / "pgs.match.tsv").unlink()
    (res / "prs" / "pgs.summary.json").unlink()
    write_prs(res, "t")
    text = build(res, tmp_path / "r2.html")
    assert 'id="prs-t"' in text and "prs-published" not in text and "PGS Catalog" not in text


def test_gwas_regional_plots_follow_the_lead_table(tmp_path):
    res = tmp_path / "results" / "c"
    gdir = res / "gwas"
    write_json(gdir / "t.summary.json", {"n_loci": 2, "lead_method": "ld_clump", "p_threshold": 5e-8,
                                         "clump": {"r2": 0.1, "kb": 250, "p2": 0.01}})
    write_png(gdir / "t.manhattan.png")
    write_png(gdir / "t.qq.png")
    write_tsv(gdir / "t.leads.tsv", ["variant_id", "chromosome", "base_pair_location", "p_value", "nearest_gene",
                                     "n_clumped"],
              [["1:100:A:G", 1, 100, "3e-20", "GENEA", 12], ["2:500:C:T", 2, 500, "1e-400", "GENEB", 1]])
    write_png(gdir / "t.regional" / "locus001_1_100_A_G.png", rgb=(1, 2, 3))
    write_png(gdir / "t.regional" / "locus002_2_500_C_T.png", rgb=(4, 5, 6))
    write_png(tmp_path / "outside.png", rgb=(7, 8, 9))
    header = ["rank", "file", "variant_id", "chromosome", "base_pair_location", "p_value", "nearest_gene",
              "n_clumped", "region_start", "region_end", "n_points", "n_r2_known"]
    write_tsv(gdir / "t.regional" / "index.tsv", header,
              [[1, "locus001_1_100_A_G.png", "1:100:A:G", 1, 100, "3e-20", "GENEA", 12, 0, 250100, 40, 40],
               [2, "locus002_2_500_C_T.png", "2:500:C:T", 2, 500, "1e-400", "GENEB", 1, 0, 250500, 9, 9],
               [3, "../../../outside.png", "x", 1, 1, "1e-9", "", "NA", 0, 1, 1, 0],
               [4, "missing.png", "y", 1, 1, "1e-9", "", "NA", 0, 1, 1, 0]])
    text = build(res, tmp_path / "r.html")
    page = parse(text)
    ids = [i for i in page.ids if i.startswith(("tbl-leads", "fig-regional"))]
    # the regional plots come after the lead table, in the index's order; nothing outside the
    # directory or missing is embedded
    assert ids == ["tbl-leads-t", "fig-regional-t-1", "fig-regional-t-2"]
    srcs = [img["src"] for img in page.images]
    for rgb in ((1, 2, 3), (4, 5, 6)):
        assert "data:image/png;base64," + base64.b64encode(png_bytes(rgb=rgb)).decode() in srcs
    assert "data:image/png;base64," + base64.b64encode(png_bytes(rgb=(7, 8, 9))).decode() not in srcs
    assert "lead variant 1:100:A:G (p = 3" in text and "nearest gene GENEA; 12 other variants in its LD clump" in text
    assert "nearest gene GENEB; 1 other variant in its LD clump" in text
    assert "LD clumping on the cohort&#39;s genotypes (r² &gt; 0.1, within 250 kb)" in text
    assert rows_of(page, "tbl-leads-t")["1:100:A:G"][-1] == "12"
    # deterministic: same inputs, same section
    assert build(res, tmp_path / "r2.html") == text


def test_qc_funnel_sex_check_and_relatives(tmp_path):
    """The QC funnel in filter order, sex-check counts, relative pairs by degree with pseudonymised IDs."""
    res = tmp_path / "results" / "c"
    funnel = [
        {"step": "mind", "samples_removed": 2, "variants_removed": 0, "samples_left": 98, "variants_left": 1000},
        {"step": "king_cutoff", "samples_removed": 6, "variants_removed": 0, "samples_left": 92, "variants_left": 1000},
        {"step": "geno", "samples_removed": 0, "variants_removed": 30, "samples_left": 92, "variants_left": 970},
    ]
    write_json(res / "qc" / "qc.summary.json", {"n_samples_in": 100, "n_samples_out": 92, "funnel": funnel,
                                                 "thresholds": {"mind": 0.05, "geno": 0.05, "king_cutoff": 0.0884}})
    write_tsv(res / "qc" / "qc.sample_qc.tsv", ["FID", "IID", "sex_check"],
              [[f"f{i}", f"IND{i:03d}", "PROBLEM" if i < 7 else "OK"] for i in range(100)])
    write_tsv(res / "qc" / "qc.kinship.tsv", ["FID1", "ID1", "FID2", "ID2", "NSNP", "HETHET", "IBS0", "KINSHIP"],
              [["f1", "IND001", "f2", "IND002", 900, 0.1, 0.0, 0.2501]]
              + [["f3", f"IND{i:03d}", "f4", f"IND{i + 1:03d}", 900, 0.1, 0.01, 0.12] for i in range(10, 20, 2)])
    page = parse(build(res, tmp_path / "r.html", show_sample_ids=False))
    funnel_rows = rows_of(page, "tbl-qc-funnel")
    assert list(funnel_rows) == ["Sample missingness (> 0.05)", "Relatedness (KING) (kinship > 0.0884)",
                                 "Variant missingness (> 0.05)"]
    assert funnel_rows["Sample missingness (> 0.05)"][1] == "<5" and funnel_rows["Variant missingness (> 0.05)"][2] == "30"
    degrees = rows_of(page, "tbl-kinship-degrees")
    assert degrees["1st degree (> 0.177)"][1] == "<5" and degrees["2nd degree (> 0.0884)"][1] == "5"
    html = (tmp_path / "r.html").read_text()
    assert "IND001" not in html and "IND012" not in html  # pseudonymised
    assert "7 of 100 samples have a reported sex" in html
