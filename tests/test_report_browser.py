"""The demo report in a real browser: headless Debian Chromium driven by Playwright, network off.

Opens ``results/demo/report.html`` of the reduced-demo workflow run (session fixture ``demo_run``)
from ``file:`` in an offline browser context whose request trap aborts and records anything that is
not ``file:`` or ``data:``, and checks that

* no request leaves the file, no request fails, no console error, no uncaught page error;
* every contents link resolves to a section whose heading matches the link text, and the report has
  the expected sections (by id and title) in the contents' order;
* every figure has a loaded image (``complete``, ``naturalWidth > 0``), a non-empty alt text and a
  caption, the expected figures sit in their sections, and no image anywhere is broken;
* every numeric column carries a numeric sort key in each cell with a value (not blank or n/a);
* clicking a numeric header sorts the visible rows ascending, a second click descending, and the
  filter box shows exactly the rows containing its text;
* each top-level section is saved as a PNG screenshot under
  ``$COHORTFLOW_TEST_ARTIFACTS/report`` (default ``test-artifacts/report``), with ``findings.json``.

The browser work is one function, :func:`check_report_in_browser`, run once per module; the tests
assert on its findings. ``python tests/test_report_browser.py REPORT`` runs it on any report.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import REPO, require_tool

pytestmark = pytest.mark.e2e

LOCAL_SCHEMES = {"file", "data"}
# Fetched from a blank page after the report checks: proves the trap sees off-file requests.
TRAP_PROBE_URL = "http://cohortflow.invalid/trap-probe"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Top-level sections the demo report must have: id -> heading title, in report order.
EXPECTED_SECTIONS = {
    "summary": "Summary",
    "known-answers": "Known answers (demo)",
    "alignment-qc": "Alignment QC",
    "genotype-qc": "Genotype QC and ancestry",
    "gwas": "Genome-wide association",
    "prs": "Polygenic risk scores",
    "single-cell": "Single-cell expression",
    "spatial": "Spatial expression",
    "integration": "Genetics × single-cell integration",
    "cell-eqtl": "Cell-type eQTL",
    "methods": "Methods",
    "provenance": "Provenance",
}

# Figures the demo report must have, by the top-level section holding them. Regional plots are
# left out: their number follows the number of significant loci.
EXPECTED_FIGURES = {
    "alignment-qc": ["fig-alignment-coverage", "fig-alignment-insert-size", "fig-alignment-sex-check",
                     "fig-alignment-contamination"],
    "genotype-qc": ["fig-sample-qc", "fig-variant-qc", "fig-pca"],
    "gwas": ["fig-manhattan-disease", "fig-qq-disease", "fig-manhattan-quant_trait", "fig-qq-quant_trait"],
    "prs": [f"fig-prs-{kind}-{trait}" for trait in ("disease", "quant_trait")
            for kind in ("dist", "deciles", "thresholds")],
    "single-cell": ["fig-sc-qc", "fig-sc-umap", "fig-sc-markers"],
    "spatial": ["fig-spatial-nhood", "fig-spatial-spatial"],
    "integration": ["fig-integration-disease", "fig-integration-spatial-disease",
                    "fig-integration-quant_trait", "fig-integration-spatial-quant_trait"],
    "cell-eqtl": ["fig-cell-eqtl"],
}

# (table id, numeric column label) sorted by clicking the header.
SORT_CHECKS = (("tbl-leads-disease", "p"), ("tbl-celltypes-disease", "Association statistic"))
# One row per annotated cell type, so its size does not depend on the run.
FILTER_TABLE, FILTER_COLUMN = "tbl-celltypes-disease", "Cell type"

_PAGE_STRUCTURE_JS = """() => {
  const text = (el) => (el ? el.textContent.replace(/\\s+/g, " ").trim() : "");
  const heading = (el) => {
    const h = el && el.querySelector(":scope > h2, :scope > h3");
    if (!h) { return null; }
    const copy = h.cloneNode(true);
    copy.querySelectorAll(".secnum").forEach((n) => n.remove());
    return text(copy);
  };
  const nav = document.querySelector("nav.toc");
  const toc = nav ? Array.from(nav.querySelectorAll("a[href]")).map((a) => {
    const href = a.getAttribute("href");
    const id = href.startsWith("#") ? decodeURIComponent(href.slice(1)) : null;
    const target = id ? document.getElementById(id) : null;
    let depth = 0;
    for (let el = a.parentElement; el && el !== nav; el = el.parentElement) { if (el.tagName === "OL") { depth++; } }
    return { href, id, text: text(a), depth, target_exists: !!target, target_heading: heading(target) };
  }) : null;
  const sections = Array.from(document.querySelectorAll("main > section.section")).map((s) => {
    const h2 = s.querySelector(":scope > h2");
    return { id: s.id, title: heading(s), heading_visible: !!h2 && h2.getClientRects().length > 0 };
  });
  const figures = Array.from(document.querySelectorAll("figure")).map((f) => {
    const img = f.querySelector("img");
    const section = f.closest("main > section");
    return {
      id: f.id, section: section ? section.id : null, has_img: !!img,
      complete: !!img && img.complete, natural_width: img ? img.naturalWidth : 0,
      alt: img ? (img.getAttribute("alt") || "").trim() : "", caption: text(f.querySelector("figcaption")),
    };
  });
  const images = Array.from(document.images).map((img, i) => ({
    index: i, where: (img.closest("[id]") || {}).id || null, src: (img.getAttribute("src") || "").slice(0, 40),
    complete: img.complete, natural_width: img.naturalWidth,
  }));
  const tables = Array.from(document.querySelectorAll("table.data")).map((t) => {
    const headers = Array.from(t.tHead.rows[0].cells);
    const rows = Array.from(t.tBodies[0].rows);
    const unkeyed = headers.map((th, i) => {
      if (th.getAttribute("data-type") !== "num") { return null; }
      const bad = rows.filter((r) => {
        const cell = r.cells[i];
        // "n/a" is the report's marker of a missing value: unkeyed on purpose, sorted last.
        if (!cell || text(cell) === "" || text(cell) === "n/a") { return false; }
        const key = cell.getAttribute("data-sort");
        return key === null || isNaN(parseFloat(key));
      });
      return bad.length ? { column: text(th), cells_without_key: bad.length, rows: rows.length,
                            example: text(bad[0].cells[i]) } : null;
    }).filter((x) => x !== null);
    return { id: t.id, script_ready: t.classList.contains("js-ready"),
             sort_buttons: t.querySelectorAll("thead th > button.sort-btn").length, columns: headers.length,
             unkeyed_numeric_columns: unkeyed };
  });
  return { toc, sections, figures, images, tables };
}"""

# Rows as the reader sees them: rendered (not filtered or paged out), in DOM order.
_VISIBLE_ROWS_JS = """([tableId, column]) => {
  const table = document.getElementById(tableId);
  const headers = Array.from(table.tHead.rows[0].cells);
  const index = headers.findIndex((th) => th.textContent.replace(/\\s+/g, " ").trim() === column);
  return {
    aria_sort: index >= 0 ? headers[index].getAttribute("aria-sort") : null,
    total: table.tBodies[0].rows.length,
    rows: Array.from(table.tBodies[0].rows).filter((r) => r.getClientRects().length > 0).map((r) => {
      const cell = index >= 0 ? r.cells[index] : null;
      return { key: cell ? cell.getAttribute("data-sort") : null,
               text: cell ? cell.textContent.trim() : null, row_text: r.textContent };
    }),
  };
}"""


def _short(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG file, or None if it is not one."""
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _sort_key(key: str | None) -> float | None:
    try:
        return float(key) if key is not None else None
    except ValueError:
        return None


def _click_sort(page, table_id: str, column: str) -> dict:
    # Matched by text: the button's accessible name also carries the CSS sort arrow.
    header = page.locator(f"#{table_id} thead th").filter(has_text=re.compile(rf"^\s*{re.escape(column)}\s*$"))
    header.locator("button.sort-btn").click()
    return page.evaluate(_VISIBLE_ROWS_JS, [table_id, column])


def _check_sorting(page, table_id: str, column: str) -> dict:
    before = page.evaluate(_VISIBLE_ROWS_JS, [table_id, column])
    ascending = _click_sort(page, table_id, column)
    descending = _click_sort(page, table_id, column)
    return {
        "table": table_id, "column": column, "rows": before["total"],
        "ascending": {"aria_sort": ascending["aria_sort"], "keys": [r["key"] for r in ascending["rows"]],
                      "texts": [r["text"] for r in ascending["rows"]]},
        "descending": {"aria_sort": descending["aria_sort"], "keys": [r["key"] for r in descending["rows"]],
                       "texts": [r["text"] for r in descending["rows"]]},
    }


def _check_filter(page, table_id: str, column: str) -> dict:
    initial = page.evaluate(_VISIBLE_ROWS_JS, [table_id, column])
    # The longest label is the likeliest to pick out a strict subset of rows.
    query = max((r["text"] for r in initial["rows"]), key=len, default="")
    expected = [r["text"] for r in initial["rows"] if query.lower() in r["row_text"].lower()]
    block = page.locator(".table-block").filter(has=page.locator(f"#{table_id}"))
    box, counter = block.locator("input.table-filter"), block.locator(".table-count")
    box.fill(query)
    filtered = page.evaluate(_VISIBLE_ROWS_JS, [table_id, column])
    filtered_count = counter.text_content()
    box.fill("")
    cleared = page.evaluate(_VISIBLE_ROWS_JS, [table_id, column])
    return {
        "table": table_id, "query": query, "rows": initial["total"], "initially_visible": len(initial["rows"]),
        "expected": expected, "visible": [r["text"] for r in filtered["rows"]], "count_label": filtered_count,
        "visible_after_clearing": len(cleared["rows"]), "count_label_after_clearing": counter.text_content(),
    }


def check_report_in_browser(report: Path, artefact_dir: Path, chromium: str = "/usr/bin/chromium") -> dict:
    """Open ``report`` offline in headless Chromium, exercise it and screenshot each section.

    Returns the findings (JSON-serialisable; also written to ``artefact_dir/findings.json``).
    """
    from playwright.sync_api import sync_playwright

    artefact_dir.mkdir(parents=True, exist_ok=True)
    for stale in artefact_dir.glob("*.png"):
        stale.unlink()
    off_file: set[str] = set()
    failed, console_errors, page_errors = [], [], []

    def trap(route):
        url = route.request.url
        if urlsplit(url).scheme in LOCAL_SCHEMES:
            route.continue_()
        else:
            off_file.add(url)
            route.abort()

    def on_request(request):
        # Belt and braces: the trap may not see every request kind, the page's request event does.
        if urlsplit(request.url).scheme not in LOCAL_SCHEMES:
            off_file.add(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900},
                                          device_scale_factor=1)
            context.route("**/*", trap)
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.on("request", on_request)
            page.on("requestfailed", lambda r: failed.append(f"{_short(r.url)}: {r.failure}"))
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(Path(report).resolve().as_uri(), wait_until="load")

            findings = page.evaluate(_PAGE_STRUCTURE_JS)
            # Screenshots before any clicking, so they show the report as opened.
            screenshots = {}
            for section in findings["sections"]:
                path = artefact_dir / f"{section['id']}.png"
                page.locator(f"main > section#{section['id']}").screenshot(path=str(path))
                screenshots[section["id"]] = str(path)
            findings["screenshots"] = screenshots
            findings["filter"] = _check_filter(page, FILTER_TABLE, FILTER_COLUMN)
            findings["sorting"] = [_check_sorting(page, table, column) for table, column in SORT_CHECKS]

            probe = context.new_page()
            probe.goto("about:blank")
            probe.evaluate("(url) => fetch(url).then(() => true, () => false)", TRAP_PROBE_URL)
            probe.close()
        finally:
            browser.close()

    findings["trap_caught_probe"] = TRAP_PROBE_URL in off_file
    findings["off_file_requests"] = sorted(_short(u) for u in off_file - {TRAP_PROBE_URL})
    findings["failed_requests"] = failed
    findings["console_errors"] = console_errors
    findings["page_errors"] = page_errors
    (artefact_dir / "findings.json").write_text(json.dumps(findings, indent=1, ensure_ascii=False))
    return findings


def default_artefact_dir() -> Path:
    return Path(os.environ.get("COHORTFLOW_TEST_ARTIFACTS", REPO / "test-artifacts")) / "report"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Skips before the (slow) demo run when the browser or Playwright is missing."""
    path = require_tool("chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")
    return path


@pytest.fixture(scope="module")
def findings(chromium, demo_run) -> dict:
    return check_report_in_browser(demo_run / "results" / "demo" / "report.html", default_artefact_dir(), chromium)


# --------------------------------------------------------------------------- tests


def test_no_request_leaves_the_file(findings):
    assert findings["trap_caught_probe"], "the request trap did not see the probe request: the check is blind"
    assert findings["off_file_requests"] == []
    assert findings["failed_requests"] == []


def test_no_console_or_page_error(findings):
    assert findings["console_errors"] == []
    assert findings["page_errors"] == []


def test_contents_links_resolve_to_matching_headings(findings):
    toc = findings["toc"]
    assert toc, "no <nav class=toc> with links"
    assert [link["href"] for link in toc if not link["target_exists"]] == []
    assert [(link["href"], link["text"], link["target_heading"]) for link in toc
            if link["text"] != link["target_heading"]] == []
    top_level = [link["id"] for link in toc if link["depth"] == 1]
    assert top_level == [s["id"] for s in findings["sections"]], "contents and sections disagree"


def test_expected_sections_present(findings):
    sections = {s["id"]: s for s in findings["sections"]}
    assert {sid: sections[sid]["title"] if sid in sections else None for sid in EXPECTED_SECTIONS} == EXPECTED_SECTIONS
    order = [s["id"] for s in findings["sections"] if s["id"] in EXPECTED_SECTIONS]
    assert order == list(EXPECTED_SECTIONS)
    assert [sid for sid in EXPECTED_SECTIONS if not sections[sid]["heading_visible"]] == []


def test_figures_have_loaded_image_alt_and_caption(findings):
    figures = findings["figures"]
    assert figures
    assert [f["id"] for f in figures if not (f["has_img"] and f["complete"] and f["natural_width"] > 0)] == []
    assert [f["id"] for f in figures if not f["alt"]] == []
    assert [f["id"] for f in figures if not f["caption"]] == []
    located = {f["id"]: f["section"] for f in figures}
    misplaced = {fig: located.get(fig) for section, figs in EXPECTED_FIGURES.items() for fig in figs
                 if located.get(fig) != section}
    assert misplaced == {}, "expected figure missing (None) or in the wrong section"


def test_no_broken_image(findings):
    assert findings["images"]
    assert [img for img in findings["images"] if not (img["complete"] and img["natural_width"] > 0)] == []


def test_every_table_is_sortable(findings):
    tables = findings["tables"]
    assert tables
    assert [t["id"] for t in tables if not t["script_ready"] or t["sort_buttons"] != t["columns"]] == []
    # A numeric column without keys cannot sort: its clicks leave the rows in file order.
    assert {t["id"]: t["unkeyed_numeric_columns"] for t in tables if t["unkeyed_numeric_columns"]} == {}


def _ascending(values: list[float]) -> bool:
    return all(a <= b for a, b in zip(values, values[1:]))


def _shown_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("\u2212", "-"))
    except ValueError:
        return None


@pytest.mark.parametrize("table_id, column", SORT_CHECKS)
def test_clicking_a_header_sorts_the_rows(findings, table_id, column):
    result = next(r for r in findings["sorting"] if r["table"] == table_id and r["column"] == column)
    assert result["rows"] >= 2, f"{table_id} has too few rows to show an order"
    for direction, sign in (("ascending", 1), ("descending", -1)):
        shown = result[direction]
        assert shown["aria_sort"] == direction
        assert len(shown["keys"]) == result["rows"], "sorting hid or lost rows"
        keys = [_sort_key(k) for k in shown["keys"]]
        present = [k for k in keys if k is not None]
        assert keys == present + [None] * (len(keys) - len(present)), "missing values not last"
        assert _ascending([sign * k for k in present]), f"{direction} keys out of order: {shown['keys']}"
        # What the reader sees follows the same order (rounding may make neighbours equal).
        numbers = [_shown_number(t) for t in shown["texts"]]
        assert _ascending([sign * n for n in numbers if n is not None]), f"shown values: {shown['texts']}"


def test_filter_box_shows_matching_rows_only(findings):
    result = findings["filter"]
    assert result["query"]
    assert 0 < len(result["expected"]) < result["rows"], "the filter query does not narrow the table"
    assert result["visible"] == result["expected"]
    assert result["count_label"] == f"{len(result['expected'])} of {result['rows']} rows"
    assert result["visible_after_clearing"] == result["initially_visible"] == result["rows"]
    assert result["count_label_after_clearing"] == f"{result['rows']} rows"


def test_each_section_screenshot_is_a_png(findings):
    shots = findings["screenshots"]
    assert sorted(shots) == sorted(s["id"] for s in findings["sections"])
    assert set(EXPECTED_SECTIONS) <= set(shots)
    sizes = {sid: png_size(Path(path)) for sid, path in shots.items()}
    assert {sid: size for sid, size in sizes.items() if not size or min(size) <= 0} == {}


if __name__ == "__main__":
    found = check_report_in_browser(Path(sys.argv[1]), default_artefact_dir())
    print(json.dumps({k: v for k, v in found.items() if k not in ("images",)}, indent=1, ensure_ascii=False))
