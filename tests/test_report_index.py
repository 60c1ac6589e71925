"""The cross-cohort index page (cohortflow.report.index): links, counts, privacy, determinism."""

from __future__ import annotations

import re

import pytest

from cohortflow.errors import CohortflowError
from cohortflow.report.index import build_index
from test_report import build, write_full_fixture, write_json


def _two_cohorts(tmp_path):
    """results/demo (every stage, report built) and results/small (QC only: 3 samples, no report)."""
    root = tmp_path / "results"
    write_full_fixture(tmp_path)
    build(root / "demo", root / "demo" / "report.html")
    write_json(root / "small" / "qc" / "summary.json",
               {"n_samples_in": 4, "n_samples_out": 3, "n_variants_in": 1000, "n_variants_out": 900})
    return root


def test_index_links_reports_and_suppresses_small_counts(tmp_path):
    root = _two_cohorts(tmp_path)
    rows = build_index(results_root=root, cohorts=["demo", "small"], out_html=root / "index.html",
                       generated_at="2026-12-03 10:00 UTC")
    text = (root / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'<a href="([^"#]+)"', text) == ["demo/report.html"]
    assert rows[1]["href"] is None and "no report" in text
    small = rows[1]["counts"]
    assert small["Samples after QC"]["text"] == "<5" and small["Samples after QC"]["sort"] == "0"
    assert small["Variants after QC"]["text"] == "900"
    assert rows[0]["stages"][0] == "Known answers (demo)" and rows[0]["findings"]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, flags=re.I)
    assert 'id="tbl-cohorts"' in text and "<script>" in text   # sortable like the report's tables


def test_index_links_are_relative_to_the_page(tmp_path):
    root = _two_cohorts(tmp_path)
    out = tmp_path / "site" / "cohorts.html"
    build_index(results_root=root, cohorts=["demo"], out_html=out, generated_at="x")
    href = re.findall(r'<a href="([^"#]+)"', out.read_text(encoding="utf-8"))[0]
    assert href == "../results/demo/report.html" and (out.parent / href).is_file()


def test_index_is_deterministic(tmp_path):
    root = _two_cohorts(tmp_path)
    a, b = tmp_path / "a" / "index.html", tmp_path / "b" / "index.html"
    for out in (a, b):
        build_index(results_root=root, cohorts=["demo", "small"], out_html=out, generated_at="2026-12-03 10:00 UTC")
    assert a.read_bytes() == b.read_bytes()


def test_index_bad_arguments(tmp_path):
    with pytest.raises(CohortflowError, match="no cohort"):
        build_index(results_root=tmp_path, cohorts=[], out_html=tmp_path / "i.html")
    with pytest.raises(CohortflowError, match="twice"):
        build_index(results_root=tmp_path, cohorts=["a", "a"], out_html=tmp_path / "i.html")
    assert not (tmp_path / "i.html").exists()


def test_cli_report_index(tmp_path, capsys):
    from cohortflow.cli import main

    root = _two_cohorts(tmp_path)
    assert main(["report-index", "--results", str(root), "--cohorts", "demo", "small", "--out", str(root / "index.html")]) == 0
    assert "demo/report.html" in (root / "index.html").read_text(encoding="utf-8")
