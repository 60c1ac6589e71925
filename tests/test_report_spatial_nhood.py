"""The report's spatial section shows the neighbourhood-enrichment pairs from spatial/summary.json."""

from __future__ import annotations

import json

from test_report import build, parse, rows_of


def test_nhood_pairs_table(tmp_path):
    sdir = tmp_path / "res" / "spatial"
    sdir.mkdir(parents=True)
    pairs = [{"a": "B", "b": "B", "count": 1358, "zscore": 49.97}, {"a": "Monocyte", "b": "T_CD4", "count": 275,
                                                                   "zscore": -3.2}]
    (sdir / "summary.json").write_text(json.dumps({"n_spots": 2500, "nhood_enrichment": {
        "cell_type_key": "transferred_label", "n_perms": 1000, "top_pairs": pairs}}))
    html = build(tmp_path / "res", tmp_path / "r.html")
    rows = rows_of(parse(html), "tbl-spatial-nhood")
    assert set(rows) == {"B", "Monocyte"}
    assert rows["B"][1] == "B" and rows["Monocyte"][1] == "T_CD4"
    assert "labels transferred from the single-cell data" in html
    (sdir / "summary.json").write_text(json.dumps({"n_spots": 2500, "nhood_enrichment": {"skipped": "no obs"}}))
    assert "tbl-spatial-nhood" not in parse(build(tmp_path / "res", tmp_path / "s.html")).tables
