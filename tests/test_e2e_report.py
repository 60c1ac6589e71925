"""End to end, the report as a deliverable: the demo report's size and rebuild determinism, a
cohort with only genotypes and phenotypes (no BAM, no single-cell: no empty or broken section),
and the cross-cohort index page when two cohorts run.

Uses the session's reduced-demo run (``demo_run`` in conftest.py). The second cohort reuses the
demo's genotype, phenotype and covariate files under another cohort id; it runs in the same
working directory with ``--config cohorts=...`` and ``--rerun-triggers mtime``, so the demo
cohort's results (whose report records the configuration) are left as they are.
"""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import snakemake_in

pytestmark = pytest.mark.e2e

GENOTYPES_ONLY = "genotypes_only"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
MAX_REPORT_BYTES = 15_000_000


class _Sections(HTMLParser):
    """Top-level report sections: id -> (heading, number of content blocks, image sources)."""

    CONTENT = {"p", "table", "figure", "ul", "ol", "pre", "div"}

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self._current: str | None = None
        self._depth = 0
        self._in_h2 = False
        self.toc_links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and (a.get("href") or "").startswith("#"):
            self.toc_links.append(a["href"][1:])
        if tag == "section" and "section" in (a.get("class") or "").split() and self._current is None:
            self._current, self._depth = a["id"], 1
            self.sections[self._current] = {"heading": "", "blocks": 0, "images": [], "text": ""}
            return
        if self._current is None:
            return
        if tag == "section":
            self._depth += 1
        sec = self.sections[self._current]
        if tag == "h2":
            self._in_h2 = True
        elif tag in self.CONTENT:
            sec["blocks"] += 1
        if tag == "img":
            sec["images"].append(a.get("src") or "")

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        if tag == "section" and self._current is not None:
            self._depth -= 1
            if self._depth == 0:
                self._current = None

    def handle_data(self, data):
        if self._current is None:
            return
        sec = self.sections[self._current]
        if self._in_h2:
            sec["heading"] += data
        sec["text"] += data


def _sections(path: Path) -> _Sections:
    parser = _Sections()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _assert_no_empty_or_broken_section(path: Path) -> dict[str, dict]:
    parsed = _sections(path)
    for sid, sec in parsed.sections.items():
        assert sec["blocks"] >= 1, f"{path.name}: section {sid} ({sec['heading'].strip()}) has no content"
        for src in sec["images"]:
            assert src.startswith("data:image/png;base64,") and len(src) > 200, f"{path.name}: broken image in {sid}"
        assert "Traceback" not in sec["text"]
    # a table cell or value printed from a missing number
    assert not re.search(r">\s*(nan|None|NaN|undefined)\s*<", path.read_text(encoding="utf-8")), \
        f"{path.name}: a missing value printed as text"
    for link in parsed.toc_links:
        assert link in parsed.sections or f'id="{link}"' in path.read_text(encoding="utf-8"), \
            f"{path.name}: contents link #{link} leads nowhere"
    return parsed.sections


@pytest.fixture(scope="module")
def two_cohorts(demo_run):
    """The demo plus a genotypes-and-phenotypes-only cohort: its report and the index page."""
    with open(demo_run / "config" / "cohorts.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    demo = rows[0]
    keep = {"id", "genotypes", "phenotypes", "covariates", "traits", "sample_info"}
    second = {k: (GENOTYPES_ONLY if k == "id" else v if k in keep else "") for k, v in demo.items()}
    with open(demo_run / "config" / "cohorts_two.tsv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(demo), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows([demo, second])
    # targets first: --rerun-triggers and --config take several values each
    snakemake_in(demo_run, f"results/{GENOTYPES_ONLY}/report.html", "results/index.html",
                 "--rerun-triggers", "mtime", "--config", "cohorts=config/cohorts_two.tsv")
    return demo_run


def test_demo_report_size(demo_run):
    size = (demo_run / "results" / "demo" / "report.html").stat().st_size
    assert 50_000 < size < MAX_REPORT_BYTES, size


def test_demo_report_has_no_empty_or_broken_section(demo_run):
    sections = _assert_no_empty_or_broken_section(demo_run / "results" / "demo" / "report.html")
    for sid in ("summary", "known-answers", "alignment-qc", "genotype-qc", "gwas", "prs", "single-cell", "spatial",
                "integration", "cell-eqtl", "methods", "provenance"):
        assert sid in sections, (sid, sorted(sections))


def test_rebuilt_report_is_byte_identical_but_for_the_build_time(demo_run):
    """The report rule forced twice with the same command line: the same bytes once the build
    timestamps are masked."""
    report = demo_run / "results" / "demo" / "report.html"
    env = {"COHORTFLOW_COMMAND_LINE": "snakemake --cores 2"}
    texts = []
    for _ in range(2):
        snakemake_in(demo_run, "--forcerun", "report", "results/demo/report.html", env=env)
        texts.append(report.read_text(encoding="utf-8"))
    assert TIMESTAMP.search(texts[0])
    masked = [TIMESTAMP.sub("<build time>", t) for t in texts]
    assert masked[0] == masked[1]


def test_genotypes_only_cohort_report(two_cohorts):
    path = two_cohorts / "results" / GENOTYPES_ONLY / "report.html"
    sections = _assert_no_empty_or_broken_section(path)
    assert {"summary", "genotype-qc", "gwas", "prs", "methods", "provenance"} <= set(sections), sorted(sections)
    for absent in ("known-answers", "alignment-qc", "single-cell", "spatial", "integration", "cell-eqtl"):
        assert absent not in sections, absent
    text = path.read_text(encoding="utf-8")
    assert "No stage results were found" not in text
    # methods mention only what ran
    methods = sections["methods"]["text"]
    assert "scDRS" not in methods and "samtools" not in methods.lower()


def test_index_page_links_every_cohort(two_cohorts):
    index = two_cohorts / "results" / "index.html"
    text = index.read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"#]+)"', text)
    assert sorted(links) == sorted(["demo/report.html", f"{GENOTYPES_ONLY}/report.html"])
    for link in links:
        assert (index.parent / link).is_file()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, flags=re.I)
    assert "Samples after QC" in text and "Cells after QC" in text
    assert "genome-wide significant loci" in text
