"""The report's alignment QC section: the cohort table with the sex, contamination and identity
checks, the failing samples with readable reasons, and the figures drawn from the per-sample
aggregates (samtools-stats IS lines, mosdepth dist files), on a synthetic results folder."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cohortflow.errors import InputFormatError
from cohortflow.report import alignment_plots
from test_report import CONFIG, build, parse, rows_of, write_tsv

SUMMARY_COLUMNS = [
    "sample", "total_reads", "mapped_pct", "properly_paired_pct", "duplicate_pct", "mapq20_pct",
    "insert_size_mean", "insert_size_sd", "error_rate", "mean_depth", "pct_1x", "pct_10x", "pct_20x",
    "pct_30x", "x_depth_ratio", "y_depth_ratio", "inferred_sex", "contamination", "contamination_sites",
    "reported_sex", "sex_check", "genotype_sites", "self_concordance", "best_match", "best_match_concordance",
    "identity_check", "pass", "fail_reasons",
]  # fmt: skip
RAW_IDS = ("NA12878", "HG00096", "HG00097", "HG00099", "NA19240")
ALIGN_CONFIG = dict(CONFIG, alignment_qc={"thresholds": {"min_mapped_pct": 95, "max_duplicate_pct": 20,
                                                          "min_mean_depth": 10, "max_contamination": 0.03}})


def summary_row(sample, *, depth="15.2", x="1.01", y="0.001", inferred="F", contamination="0.004",
                reported="F", sex_check="ok", best="NA19240", best_conc="0.46", self_conc="0.99",
                identity="ok", reasons=""):
    return [sample, "250000", "99.1", "97.5", "3.2", "98", "351.2", "49.8", "0.0042", depth, "99.9", "80.1",
            "40.5", "2", x, y, inferred, contamination, "912", reported, sex_check, "200", self_conc, best,
            best_conc, identity, "false" if reasons else "true", reasons]  # fmt: skip


def stats_text(sample: str, mean: int, sd: int) -> str:
    """A samtools-stats-like file: an SN line naming the BAM and IS lines of a normal-ish histogram."""
    sizes = np.arange(0, mean + 6 * sd)
    pairs = np.round(1000 * np.exp(-0.5 * ((sizes - mean) / sd) ** 2)).astype(int)
    lines = [f"# The command line was:  stats {sample}.bam", "SN\traw total sequences:\t2000"]
    lines += [f"IS\t{s}\t{p}\t{p}\t0\t0" for s, p in zip(sizes, pairs)]
    lines += ["RL\t100\t2000"]
    return "\n".join(lines) + "\n"


def dist_text(mean_depth: float, contigs=("1", "X")) -> str:
    """A mosdepth dist file: per contig, then total, depth descending (share of bases >= depth)."""
    out = []
    for chrom in (*contigs, "total"):
        top = int(mean_depth * 2)
        for d in range(top, -1, -1):
            share = min(1.0, max(0.0, 1.0 - (d / (2 * mean_depth)) ** 2))
            if share > 0:
                out.append(f"{chrom}\t{d}\t{share:.2f}")
    return "\n".join(out) + "\n"


def write_alignment_results(root: Path) -> Path:
    res = root / "results" / "c"
    qc = res / "alignment_qc"
    write_tsv(qc / "summary.tsv", SUMMARY_COLUMNS, [
        summary_row("NA12878"),
        summary_row("HG00096", depth="7.5", x="0.98", reported="M", sex_check="mismatch",
                    reasons="mean_depth=7.5<10;sex reported M inferred F"),
        summary_row("HG00097", x="0.51", y="0.47", inferred="M", reported="M", self_conc="0.45",
                    best_conc="0.98", identity="swap",
                    reasons="reads match sample NA19240 (concordance 0.98) not HG00097 (0.45)"),
        summary_row("HG00099", x="0.49", y="0.52", inferred="M", reported="NA", sex_check="unknown",
                    contamination="0.0512", reasons="contamination=0.0512>0.03"),
    ])  # fmt: skip
    write_tsv(qc / "identity.tsv", ["bam", "claimed_sample", "self_concordance", "self_sites", "best_other_sample",
                                    "best_other_concordance", "best_other_sites", "status"],
              [["HG00097", "HG00097", "0.4500", 200, "NA19240", "0.9800", 200, "swap"]])
    (qc / "NA12878.stats").write_text(stats_text("NA12878", 350, 50))
    (qc / "HG00096.stats").write_text(stats_text("HG00096", 250, 30))
    for sample, depth in (("NA12878", 15), ("HG00096", 7.5), ("HG00097", 15), ("HG00099", 14)):
        (qc / f"{sample}.mosdepth.global.dist.txt").write_text(dist_text(depth))
    (qc / "NA12878.mosdepth.region.dist.txt").write_text(dist_text(30))
    (qc / "NA12878.sites.tsv.gz").write_bytes(b"READ-LEVEL-SECRET")  # individual-level: never read
    return res


def png_size(uri: str) -> tuple[int, int]:
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def figure_ids(text: str) -> list[str]:
    return [i for i in parse(text).ids if i.startswith("fig-alignment")]


# ------------------------------------------------------------------------------------------------


def test_alignment_section_table_failures_and_figures(tmp_path):
    res = write_alignment_results(tmp_path)
    text = build(res, tmp_path / "r.html", config=ALIGN_CONFIG, show_sample_ids=False)
    page = parse(text)
    assert "alignment-qc" in page.ids
    table = page.tables["tbl-alignment-qc"]
    header = table[0]
    for label in ("Sample", "Mean depth", "≥ 20x %", "X / autosome depth", "Y / autosome depth", "Inferred sex",
                  "Reported sex", "Sex check", "Contamination %", "Identity check", "QC"):  # fmt: skip
        assert label in header, label
    rows = rows_of(page, "tbl-alignment-qc")
    assert list(rows) == ["sample-01", "sample-02", "sample-03", "sample-04"]  # file order
    col = {label: i for i, label in enumerate(header)}
    assert rows["sample-01"][col["Contamination %"]] == "0.40" and rows["sample-04"][col["Contamination %"]] == "5.12"
    assert rows["sample-02"][col["Sex check"]] == "mismatch" and rows["sample-02"][col["Reported sex"]] == "male"
    assert rows["sample-03"][col["Identity check"]] == "swap" and rows["sample-04"][col["Reported sex"]] == "n/a"
    assert [rows[s][col["QC"]] for s in rows] == ["PASS", "FAIL", "FAIL", "FAIL"]
    assert text.count('<tr class="row-fail">') == 3
    # The failing values themselves are marked, the passing ones not.
    assert '<td class="num fail" data-sort="7.5"><span class="badge badge-fail">7.5</span></td>' in text
    assert '<td class="fail"><span class="badge badge-fail">mismatch</span></td>' in text
    assert '<td class="fail"><span class="badge badge-fail">swap</span></td>' in text
    assert '<span class="badge badge-fail">5.12</span>' in text and "badge-fail\">0.40" not in text
    # Samples that failed and why, readable, other samples' IDs pseudonymised too.
    failed = rows_of(page, "tbl-alignment-failed")
    assert list(failed) == ["sample-02", "sample-03", "sample-04"]
    assert failed["sample-02"][1] == (
        "Mean depth 7.5x, below the minimum 10x; Sex check: reported male, but X and Y depth indicate female "
        "(depth relative to the autosomes: X 0.98, Y 0.00)")
    assert failed["sample-03"][1] == ("Sample swap: the reads match sample sample-05 (genotype concordance 0.98), "
                                      "not the sample they are labelled as (0.45)")
    assert failed["sample-04"][1] == "Estimated contamination 5.12%, above the maximum 3%"
    for raw in RAW_IDS:
        assert raw not in text, raw
    assert "READ-LEVEL-SECRET" not in text and "sites.tsv" not in text
    # Summary and pass criteria.
    assert ("Alignment QC: 1 of 4 samples passed; 3 failed (estimated contamination, mean depth, "
            "sample swap).") in text
    assert "Pass criteria: mapped reads ≥ 95%, duplicate reads ≤ 20%, mean depth ≥ 10x, estimated " \
           "contamination ≤ 3%." in text  # fmt: skip
    # Figures: coverage, insert size, sex check, contamination, each an embedded PNG with a caption.
    assert figure_ids(text) == ["fig-alignment-coverage", "fig-alignment-insert-size", "fig-alignment-sex-check",
                                "fig-alignment-contamination"]  # fmt: skip
    assert len(page.images) == 4 and page.figcaptions == 4
    for img in page.images:
        width, height = png_size(img["src"])
        assert width > 300 and height > 200 and img["alt"]
    assert "the dashed line is the maximum allowed (3%)" in text
    assert "Mosdepth: quick coverage calculation" in text and "Detecting and estimating contamination" in text


def test_raw_ids_shown_when_asked(tmp_path):
    res = write_alignment_results(tmp_path)
    text = build(res, tmp_path / "r.html", config=ALIGN_CONFIG, show_sample_ids=True)
    failed = rows_of(parse(text), "tbl-alignment-failed")
    assert "the reads match sample NA19240" in failed["HG00097"][1]


def test_figure_data_from_the_right_files(tmp_path, monkeypatch):
    res = write_alignment_results(tmp_path)
    seen = {}
    real_coverage, real_insert = alignment_plots.coverage_plot, alignment_plots.insert_size_plot
    real_sex = alignment_plots.sex_check_plot

    def coverage(curves, **kw):
        seen["coverage"] = (curves, kw)
        return real_coverage(curves, **kw)

    def inserts(curves, **kw):
        seen["inserts"] = curves
        return real_insert(curves, **kw)

    def sex(points):
        seen["sex"] = points
        return real_sex(points)

    monkeypatch.setattr(alignment_plots, "coverage_plot", coverage)
    monkeypatch.setattr(alignment_plots, "insert_size_plot", inserts)
    monkeypatch.setattr(alignment_plots, "sex_check_plot", sex)
    text = build(res, tmp_path / "r.html", config=ALIGN_CONFIG, show_sample_ids=False)
    curves, kw = seen["coverage"]
    assert [c[0] for c in curves] == ["sample-01", "sample-02", "sample-03", "sample-04"]
    assert [c[3] for c in curves] == [False, True, True, True]
    # sample-01 has target regions: its region dist (mean 30) is used, not the global one (mean 15)
    assert curves[0][1].max() == 59 and curves[1][1].max() == 14
    assert kw == {"targets": False}  # mixed: the caption says so
    assert "the target regions where given, else every contig with reads" in text
    # only the "total" lines, sorted by depth
    assert np.all(np.diff(curves[0][1]) > 0) and curves[0][2][0] == 1.0
    assert [c[0] for c in seen["inserts"]] == ["sample-01", "sample-02"]
    assert seen["inserts"][0][1][0] == 0 and seen["inserts"][0][2].sum() > 0
    assert seen["sex"] == [("sample-01", 1.01, 0.001, "F", False), ("sample-02", 0.98, 0.001, "M", True),
                           ("sample-03", 0.51, 0.47, "M", False), ("sample-04", 0.49, 0.52, "NA", False)]  # fmt: skip


def test_deterministic_bytes_across_processes(tmp_path):
    res = write_alignment_results(tmp_path)
    build(res, tmp_path / "a.html", config=ALIGN_CONFIG, show_sample_ids=False)
    build(res, tmp_path / "b.html", config=ALIGN_CONFIG, show_sample_ids=False)
    a = (tmp_path / "a.html").read_bytes()
    assert a == (tmp_path / "b.html").read_bytes()
    script = (
        "import sys, json; from cohortflow.report.api import build_report; "
        "build_report(results_dir=sys.argv[1], out_html=sys.argv[2], cohort='demo', config=json.loads(sys.argv[3]), "
        "generated_at='2026-01-02 03:04 UTC', git_commit='abc123def456', show_sample_ids=False)"
    )
    import json

    subprocess.run([sys.executable, "-c", script, str(res), str(tmp_path / "c.html"), json.dumps(ALIGN_CONFIG)],
                   check=True, timeout=120)
    assert (tmp_path / "c.html").read_bytes() == a


def test_section_without_figure_inputs(tmp_path):
    """Only the summary (older layout: no sex/identity columns, no stats or dist files): the table
    and failing list, no figures, no empty blocks."""
    res = tmp_path / "results" / "c"
    header = ["sample", "total_reads", "mapped_pct", "mean_depth", "pass", "fail_reasons"]
    write_tsv(res / "alignment_qc" / "summary.tsv", header,
              [["S1", 100, 99.0, 12.0, "true", ""], ["S2", 100, 90.0, 12.0, "false", "mapped_pct=90<95"]])
    text = build(res, tmp_path / "r.html", show_sample_ids=False)
    page = parse(text)
    assert figure_ids(text) == [] and "<img" not in text
    assert page.tables["tbl-alignment-qc"][0] == ["Sample", "Reads", "Mapped %", "Mean depth", "QC"]
    assert rows_of(page, "tbl-alignment-failed")["sample-02"][1] == "Mapped reads 90%, below the minimum 95%"
    assert "contradicts the sex its X and Y depth indicate" not in text
    # nobody failed: said so instead of an empty table
    write_tsv(res / "alignment_qc" / "summary.tsv", header, [["S1", 100, 99.0, 12.0, "true", ""]])
    text = build(res, tmp_path / "r.html")
    assert "tbl-alignment-failed" not in text and "No sample failed alignment QC." in text




def test_readers_and_quantile(tmp_path):
    stats = tmp_path / "s.stats"
    stats.write_text("SN\tx:\t1\nIS\t2\t5\t5\t0\t0\nIS\t0\t0\t0\t0\t0\nIS\t1\t5\t5\t0\t0\nCOV\t[1-1]\t1\t3\n")
    sizes, pairs = alignment_plots.read_insert_sizes(stats)
    assert sizes.tolist() == [0, 1, 2] and pairs.tolist() == [0, 5, 5]
    assert alignment_plots.quantile_of_histogram(sizes, pairs, 0.5) == 1
    assert alignment_plots.quantile_of_histogram(sizes, pairs, 0.99) == 2
    assert alignment_plots.quantile_of_histogram(np.arange(100), np.ones(100), 0.99) == 98
    assert alignment_plots.quantile_of_histogram(sizes, np.zeros(3), 0.99) is None
    stats.write_text("IS\t2\tmany\t5\t0\t0\n")
    with pytest.raises(InputFormatError, match=r"s\.stats.*line 1"):
        alignment_plots.read_insert_sizes(stats)
    dist = tmp_path / "d.dist.txt"
    dist.write_text("1\t2\t0.50\n1\t0\t1.00\ntotal\t2\t0.25\ntotal\t1\t0.75\ntotal\t0\t1.00\n")
    depth, prop = alignment_plots.read_depth_distribution(dist)
    assert depth.tolist() == [0, 1, 2] and prop.tolist() == [1.0, 0.75, 0.25]
    dist.write_text("total\t2\t1.5\n")
    with pytest.raises(InputFormatError, match="proportion outside 0-1"):
        alignment_plots.read_depth_distribution(dist)


def test_many_samples_plots_stay_readable(tmp_path):
    """60 samples: lines coloured by pass/fail (no per-sample legend), only mismatches labelled."""
    rng = np.random.default_rng(1)
    curves = [(f"sample-{i:02d}", np.arange(40), np.linspace(1, 0, 40), i % 7 == 0) for i in range(60)]
    assert alignment_plots.coverage_plot(curves, targets=True).startswith(b"\x89PNG")
    points = [(f"sample-{i:02d}", float(x), float(y), "MF"[i % 2], i == 3)
              for i, (x, y) in enumerate(rng.uniform(0, 1, (60, 2)))]
    assert alignment_plots.sex_check_plot(points).startswith(b"\x89PNG")
    bars = [(f"sample-{i:02d}", float(c)) for i, c in enumerate(rng.uniform(0, 0.05, 60))]
    assert alignment_plots.contamination_plot(bars, threshold=None).startswith(b"\x89PNG")
