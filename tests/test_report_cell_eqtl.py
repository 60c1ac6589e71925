"""The report's cell-type eQTL section, on a synthetic results folder: the summary's counts, the
significant eQTL table, the box-plot figure and the finding line; absent outputs, no section."""

from __future__ import annotations

import json

from test_report import build, parse, png_bytes, rows_of


def write_eqtl(res, *, significant):
    edir = res / "cell_eqtl"
    edir.mkdir(parents=True)
    summary = {"n_variants_requested": 3, "n_variants_found": 3, "n_donors_used": 40, "n_tests": 812,
               "covariates": ["sex", "age", "PC1"], "fdr_threshold": 0.05, "n_significant": len(significant),
               "significant": significant, "parameters": {"window_kb": 1000.0,
                                                          "pseudobulk": "log1p(mean over cells of counts per 10,000)"}}
    (edir / "summary.json").write_text(json.dumps(summary))
    (edir / "boxplots.png").write_bytes(png_bytes())


def test_section_lists_the_significant_eqtl(tmp_path):
    res = tmp_path / "res"
    write_eqtl(res, significant=[{"cell_type": "T_CD4", "variant_id": "1:1234:A:G", "gene": "GENE7", "beta": 0.41,
                                  "se": 0.05, "p_value": 3.2e-9, "fdr": 2.6e-6}])
    html = build(res, tmp_path / "report.html")
    page = parse(html)
    assert "cell-eqtl" in page.ids
    rows = rows_of(page, "tbl-cell-eqtl")
    assert list(rows) == ["T_CD4"]
    assert rows["T_CD4"][1:3] == ["1:1234:A:G", "GENE7"]
    assert "fig-cell-eqtl" in page.ids
    assert "1 significant of 812 tests; strongest 1:1234:A:G -&gt; GENE7 in T_CD4" in html


def test_no_significant_eqtl_and_no_outputs(tmp_path):
    res = tmp_path / "res"
    write_eqtl(res, significant=[])
    html = build(res, tmp_path / "a.html")
    assert "none significant of 812 tests" in html and "tbl-cell-eqtl" not in parse(html).tables
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "cell-eqtl" not in parse(build(empty, tmp_path / "b.html")).ids
