"""One builder per report section: read that stage's files under ``results/{cohort}/`` and return
a :class:`~cohortflow.report.model.Section`, or None when the stage did not run (its files are
absent), so the section is left out of the report rather than shown empty.

Builders only read the aggregate files of the contract (docs/architecture.md); they never open
genotypes, per-sample scores or per-sample phenotypes. Unknown JSON keys are ignored and known
keys with an unexpected type are shown as "n/a".
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohortflow.report.model import (
    Cell,
    Column,
    Columns,
    Figure,
    FigureGrid,
    KeyValues,
    Paragraph,
    Row,
    Section,
    StatTiles,
    Subsection,
    Table,
    fmt_fixed,
    fmt_int,
    fmt_num,
    fmt_p,
    make_figure,
    neg_log10_p,
    read_json,
    read_tsv,
    slug,
    suppress_count,
    to_float,
    to_int,
)


# --------------------------------------------------------------------------------------------
# Shared context


class Pseudonymiser:
    """Maps sample IDs to ``sample-01``, ``sample-02``... in first-seen order (deterministic).

    With ``enabled=False`` IDs pass through unchanged.
    """

    def __init__(self, sample_ids: list[str], *, enabled: bool):
        self.enabled = enabled
        unique = list(dict.fromkeys(s for s in sample_ids if s))
        width = max(2, len(str(len(unique))))
        self.mapping = {s: f"sample-{i:0{width}d}" for i, s in enumerate(unique, start=1)}
        if unique:
            # Longest first so an ID that contains another is replaced whole.
            alternatives = "|".join(re.escape(s) for s in sorted(unique, key=lambda s: (-len(s), s)))
            self._pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
        else:
            self._pattern = None

    def sample(self, sample_id: str) -> str:
        if not self.enabled:
            return sample_id
        return self.mapping.get(sample_id, sample_id)

    def text(self, text: str) -> str:
        """``text`` with every known sample ID (as a whole token) replaced by its pseudonym."""
        if not self.enabled or self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.mapping[m.group(0)], text)

    def names_sample(self, text: str) -> bool:
        """Whether ``text`` contains a known sample ID as a whole token (enabled or not)."""
        return self._pattern is not None and self._pattern.search(text) is not None


@dataclass
class Context:
    results_dir: Path
    cohort: str
    config: Mapping[str, Any]
    min_count: int
    pseudonymiser: Pseudonymiser
    facts: dict[str, Any] = field(default_factory=dict)  # headline counts for the summary tiles
    # False: builders leave out per-sample tables and figures (cohortflow export's copy of the report)
    sample_level_tables: bool = True

    def path(self, *parts: str) -> Path:
        return self.results_dir.joinpath(*parts)

    def count(self, value: Any) -> Cell:
        text, key, suppressed = suppress_count(value, self.min_count)
        return Cell(text, key, "suppressed" if suppressed else None)

    def count_text(self, value: Any) -> str:
        return suppress_count(value, self.min_count)[0]


def traits_with(directory: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Sorted trait names for which ``{directory}/{trait}{suffix}`` exists for any suffix."""
    if not directory.is_dir():
        return []
    found = set()
    for entry in directory.iterdir():
        if not entry.is_file():
            continue
        for suffix in suffixes:
            if entry.name.endswith(suffix) and len(entry.name) > len(suffix):
                found.add(entry.name[: -len(suffix)])
    return sorted(found)


def cfg(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return fmt_num(value)
    return str(value)


def _numeric_items(obj: Mapping[str, Any], *, skip: set[str] = frozenset()) -> list[tuple[str, str]]:
    """Label/value pairs for the numeric scalars of ``obj`` and of its dicts one level down.

    Only numbers: free text in an unknown key could carry anything, numbers in a summary JSON are
    aggregates by contract.
    """
    items = []
    for key in obj:
        if key in skip:
            continue
        value = obj[key]
        if isinstance(value, Mapping):
            for sub in value:
                x = value[sub]
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    items.append((f"{_label(key)}: {_label(sub)}", fmt_num(x)))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            items.append((_label(key), fmt_num(value)))
    return items


_LABELS = {
    "p": "p",
    "p_value": "p",
    "pval": "p",
    "pvalue": "p",
    "fdr": "FDR",
    "q": "q",
    "q_value": "q",
    "n_variants": "Variants tested",
    "lambda_gc": "Lambda GC (with PCs)",
    "lambda_gc_nopcs": "Lambda GC (without PCs)",
    "n_significant": "Genome-wide significant variants",
    "n_loci": "Independent loci",
    "r2": "r²",
    "morans_i": "Moran's I",
    "morans_i_p": "Moran's I p-value",
    "n_cells": "Cells",
    "auc": "AUC",
}


_FILTER_LABELS = {
    # filter -> (label, how its threshold reads)
    "geno": ("Variant missingness", "> {}"),
    "mind": ("Sample missingness", "> {}"),
    "maf": ("Minor allele frequency", "< {}"),
    "hwe": ("Hardy-Weinberg exact test", "p < {}"),
    "het": ("Heterozygosity", "{}"),
    "sex_check": ("Sex check", "{}"),
    "king": ("Relatedness (KING)", "kinship > {}"),
    "king_cutoff": ("Relatedness (KING)", "kinship > {}"),
    "mac": ("Minor allele count", "< {}"),
}


def _filter_label(key: str, threshold: Any = None) -> str:
    """Label of a QC filter with its threshold, e.g. ``Variant missingness (> 0.05)``."""
    label, rule = _FILTER_LABELS.get(str(key).lower(), (_label(key), "{}"))
    x = to_float(threshold)
    if x is None:
        return label
    value = fmt_p(x) if 0 < abs(x) < 1e-3 else fmt_num(x)
    return f"{label} ({rule.format(value)})"


def _label(key: str) -> str:
    if key in _LABELS:
        return _LABELS[key]
    text = str(key).replace("_", " ").strip()
    text = re.sub(r"\bn\b", "number of", text) if text.startswith("n ") else text
    text = re.sub(r"\bpct\b", "%", text)
    return text[:1].upper() + text[1:]


def _is_pass(value: str) -> bool | None:
    v = str(value).strip().lower()
    if v in {"true", "1", "pass", "passed", "yes", "ok"}:
        return True
    if v in {"false", "0", "fail", "failed", "no"}:
        return False
    return None


# --------------------------------------------------------------------------------------------
# Known answers (demo)


def truth_section(ctx: Context) -> Section | None:
    """``truth_check.json``: each planted answer, expected vs observed, PASS/FAIL."""
    path = ctx.path("truth_check.json")
    if not path.is_file():
        return None
    data = read_json(path)
    checks = data.get("checks") if isinstance(data.get("checks"), list) else []
    rows = []
    n_pass = n_checks = n_hidden = 0
    for check in checks:
        if not isinstance(check, Mapping):
            continue
        passed = check.get("passed") is True
        n_pass += passed
        n_checks += 1
        if not ctx.sample_level_tables and any(ctx.pseudonymiser.names_sample(_text(check.get(k, "")))
                                               for k in ("stage", "check", "expected", "observed")):
            n_hidden += 1
            continue
        rows.append(
            Row(
                [
                    Cell(_text(check.get("stage", ""))),
                    Cell(_text(check.get("check", ""))),
                    Cell(_text(check.get("expected", ""))),
                    Cell(_text(check.get("observed", ""))),
                    Cell("PASS" if passed else "FAIL", 1.0 if passed else 0.0, "pass" if passed else "fail"),
                ],
                cls=None if passed else "row-fail",
            )
        )
    all_passed = data.get("all_passed")
    if not isinstance(all_passed, bool):
        all_passed = bool(n_checks) and n_pass == n_checks
    section = Section("known-answers", "Known answers (demo)")
    verdict = (
        f"All {n_checks} planted answers were recovered."
        if all_passed and n_checks
        else f"{n_pass} of {n_checks} planted answers were recovered; {n_checks - n_pass} failed."
    )
    section.blocks.append(
        Paragraph(
            "The demo cohort is simulated with planted causal variants, genes, trait cell types and "
            "spatial regions. Each check compares what the workflow found with the planted truth. " + verdict,
            cls="verdict-pass" if all_passed else "verdict-fail",
        )
    )
    section.blocks.append(
        Table(
            "tbl-known-answers",
            [Column("Stage"), Column("Check"), Column("Expected"), Column("Observed"), Column("Result", numeric=True)],
            rows,
            caption="Planted answers of the simulated cohort against the workflow's results.",
            note=f"{n_hidden} checks that name samples are left out." if n_hidden else "",
        )
    )
    section.findings.append(f"Known answers: {verdict[0].lower()}{verdict[1:]}")
    ctx.facts["truth"] = (n_pass, n_checks)
    return section


# --------------------------------------------------------------------------------------------
# Alignment QC

_ALIGN_COLUMNS = [
    # (column, label, kind) kind: id | int | pct | num | num1 | num2 | sex | check | frac_pct | pass
    ("sample", "Sample", "id"),
    ("total_reads", "Reads", "int"),
    ("mapped_pct", "Mapped %", "pct"),
    ("properly_paired_pct", "Properly paired %", "pct"),
    ("duplicate_pct", "Duplicates %", "pct"),
    ("mapq20_pct", "MAPQ ≥ 20 %", "pct"),
    ("insert_size_mean", "Insert size mean", "num1"),
    ("insert_size_sd", "Insert size SD", "num1"),
    ("error_rate", "Error rate", "num"),
    ("mean_depth", "Mean depth", "num1"),
]
_ALIGN_TAIL_COLUMNS = [  # after the pct_{N}x columns
    ("x_depth_ratio", "X / autosome depth", "num2"),
    ("y_depth_ratio", "Y / autosome depth", "num2"),
    ("inferred_sex", "Inferred sex", "sex"),
    ("reported_sex", "Reported sex", "sex"),
    ("sex_check", "Sex check", "check"),
    ("contamination", "Contamination %", "frac_pct"),
    ("identity_check", "Identity check", "check"),
]
_PCT_DEPTH = re.compile(r"^pct_(\d+)x$")
_ALIGN_LABELS = {name: label for name, label, _ in _ALIGN_COLUMNS + _ALIGN_TAIL_COLUMNS}
_NA_TEXT = {"", "na", "nan", "none", "."}
_SEX_NAMES = {"M": "male", "F": "female", "ambiguous": "ambiguous"}
_CHECK_TEXT = {"ok": "ok", "mismatch": "mismatch", "ambiguous": "ambiguous", "unknown": "unknown", "swap": "swap",
               "no_genotypes": "no genotypes", "too_few_sites": "too few sites", "not_checked": "not checked"}
# Fail reasons (cohortflow.alignment.api): "metric=value<limit", the sex check and the identity check.
_THRESHOLD_REASON = re.compile(r"^([A-Za-z0-9_]+)=([^<>]+)([<>])(.+)$")
_SEX_REASON = re.compile(r"^sex reported (\S+) inferred (\S+)$")
_SWAP_REASON = re.compile(r"^reads match sample (.+) \(concordance ([^()]*)\) not (.+) \(([^()]*)\)$")
_NO_MATCH_REASON = re.compile(r"^reads match no genotyped sample \(self concordance ([^()]*)\)$")
# metric -> (words, unit, scale) for the readable reasons and the pass criteria
_METRIC_WORDS = {
    "total_reads": ("reads", "", 1.0),
    "mapped_pct": ("mapped reads", "%", 1.0),
    "properly_paired_pct": ("properly paired reads", "%", 1.0),
    "duplicate_pct": ("duplicate reads", "%", 1.0),
    "mapq20_pct": ("reads with MAPQ ≥ 20", "%", 1.0),
    "error_rate": ("mismatch error rate", "", 1.0),
    "mean_depth": ("mean depth", "x", 1.0),
    "contamination": ("estimated contamination", "%", 100.0),
}


def _is_na(value: Any) -> bool:
    return str(value).strip().lower() in _NA_TEXT


def _metric_words(metric: str) -> tuple[str, str, float]:
    m = _PCT_DEPTH.match(metric)
    if m:
        return (f"bases covered ≥ {m.group(1)}x", "%", 1.0)
    return _METRIC_WORDS.get(metric, (_ALIGN_LABELS.get(metric, metric).lower(), "", 1.0))


def _metric_value(value: Any, scale: float, unit: str) -> str:
    x = to_float(value)
    if x is None:
        return str(value).strip()
    return f"{fmt_num(x * scale)}{unit}"


def _alignment_columns(header: list[str]) -> list[tuple[str, str, str]]:
    """The known per-sample QC columns present in ``header`` (never unknown per-sample columns)."""
    known = [c for c in _ALIGN_COLUMNS if c[0] in header]
    depth = sorted((int(_PCT_DEPTH.match(h).group(1)), h) for h in header if _PCT_DEPTH.match(h))
    known += [(h, f"≥ {d}x %", "pct") for d, h in depth]
    known += [c for c in _ALIGN_TAIL_COLUMNS if c[0] in header]
    if "pass" in header:
        known.append(("pass", "QC", "pass"))
    return known


def _clean_id(value: Any) -> str:
    text = str(value or "").strip()
    return "" if text.lower() in _NA_TEXT else text


def alignment_sample_ids(results_dir: Path) -> list[str]:
    """Sample IDs of ``alignment_qc/summary.tsv`` in file order, then the other IDs the alignment
    QC names (best genotype matches of the identity check, also in ``identity.tsv``), so all of
    them are pseudonymised alike."""
    folder = results_dir / "alignment_qc"
    ids: list[str] = []
    path = folder / "summary.tsv"
    if path.is_file():
        header, rows = read_tsv(path)
        if "sample" in header:
            ids += [r.get("sample", "") for r in rows]
        if "best_match" in header:
            ids += [_clean_id(r.get("best_match")) for r in rows]
    path = folder / "identity.tsv"
    if path.is_file():
        header, rows = read_tsv(path)
        ids += [_clean_id(r.get(c)) for r in rows for c in ("claimed_sample", "best_other_sample") if c in header]
    return [s for s in ids if s]


def related_sample_ids(results_dir: Path) -> list[str]:
    """Sample IDs of the relative pairs in ``qc/qc.kinship.tsv`` (or ``qc/kinship.tsv``), in
    file order, so the report shows them pseudonymised like the alignment samples."""
    for path in (results_dir / "qc" / "qc.kinship.tsv", results_dir / "qc" / "kinship.tsv"):
        if path.is_file():
            header, rows = read_tsv(path)
            id1 = "ID1" if "ID1" in header else "IID1"
            id2 = "ID2" if "ID2" in header else "IID2"
            return [r.get(key, "") for r in rows for key in (id1, id2)]
    return []


def _readable_reason(ctx: Context, reason: str, rec: Mapping[str, str]) -> tuple[str, str]:
    """(category, sentence) for one fail reason; sample IDs in it pseudonymised."""
    reason = reason.strip()
    m = _THRESHOLD_REASON.match(reason)
    if m:
        metric, value, sign, limit = m.groups()
        words, unit, scale = _metric_words(metric)
        bound = "below the minimum" if sign == "<" else "above the maximum"
        text = f"{words} {_metric_value(value, scale, unit)}, {bound} {_metric_value(limit, scale, unit)}"
        return words, text[:1].upper() + text[1:]
    m = _SEX_REASON.match(reason)
    if m:
        reported, inferred = (_SEX_NAMES.get(v, v) for v in m.groups())
        ratios = []
        for column, name in (("x_depth_ratio", "X"), ("y_depth_ratio", "Y")):
            if to_float(rec.get(column)) is not None:
                ratios.append(f"{name} {fmt_fixed(rec[column], decimals=2)}")
        depth = f" (depth relative to the autosomes: {', '.join(ratios)})" if ratios else ""
        return "sex mismatch", f"Sex check: reported {reported}, but X and Y depth indicate {inferred}{depth}"
    m = _SWAP_REASON.match(reason)
    if m:
        other, other_conc, _, self_conc = m.groups()
        return "sample swap", (f"Sample swap: the reads match sample {ctx.pseudonymiser.sample(other.strip())} "
                               f"(genotype concordance {other_conc}), not the sample they are labelled as "
                               f"({self_conc})")
    m = _NO_MATCH_REASON.match(reason)
    if m:
        return "identity mismatch", ("Identity: the reads match no genotyped sample (concordance with the "
                                     f"labelled sample's genotypes {m.group(1)})")
    return "other", ctx.pseudonymiser.text(reason)


def _failing_columns(reasons: list[str], rec: Mapping[str, str]) -> set[str]:
    cols = {m.group(1) for m in (_THRESHOLD_REASON.match(r.strip()) for r in reasons) if m}
    if rec.get("sex_check") == "mismatch":
        cols.add("sex_check")
    if rec.get("identity_check") in ("swap", "mismatch"):
        cols.add("identity_check")
    return cols


def _alignment_cell(ctx: Context, name: str, kind: str, raw: str, passed: bool | None, failing: set[str]) -> Cell:
    bad = "fail" if name in failing else None
    if kind == "id":
        return Cell(ctx.pseudonymiser.sample(raw), cls="nowrap")
    if kind == "int":
        return Cell(fmt_int(raw), to_float(raw), bad)
    if kind in ("pct", "num1"):
        return Cell(fmt_fixed(raw, decimals=1), to_float(raw), bad)
    if kind == "num2":
        return Cell(fmt_fixed(raw, decimals=2), to_float(raw), bad)
    if kind == "num":
        return Cell(fmt_num(raw), to_float(raw), bad)
    if kind == "frac_pct":
        x = to_float(raw)
        return Cell("n/a" if x is None else fmt_fixed(100 * x, decimals=2), x, bad)
    if kind == "sex":
        return Cell("n/a" if _is_na(raw) else _SEX_NAMES.get(raw, raw))
    if kind == "check":
        return Cell(_CHECK_TEXT.get(raw, "n/a" if _is_na(raw) else raw), cls=bad)
    if passed is None:
        return Cell("n/a")
    return Cell("PASS" if passed else "FAIL", float(passed), "pass" if passed else "fail")


def _alignment_criteria(config: Mapping[str, Any]) -> list[str]:
    thresholds = cfg(config, "alignment_qc", "thresholds", default={})
    parts = []
    if isinstance(thresholds, Mapping):
        for key in thresholds:
            m = re.match(r"^(min|max)_(.+)$", str(key))
            if m and to_float(thresholds[key]) is not None:
                words, unit, scale = _metric_words(m.group(2))
                sign = "≥" if m.group(1) == "min" else "≤"
                parts.append(f"{words} {sign} {_metric_value(thresholds[key], scale, unit)}")
    return parts


def _sample_file(folder: Path, sample: str, suffix: str) -> Path | None:
    """``{folder}/{sample}{suffix}`` when it exists and the sample name is a plain file name."""
    if not sample or Path(sample).name != sample or sample in (".", ".."):
        return None
    path = folder / f"{sample}{suffix}"
    return path if path.is_file() else None


def _png_figure(png: bytes, *, fig_id: str, caption: str, alt: str) -> Figure:
    return Figure(id=fig_id, data_uri="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                  caption=caption, alt=alt)


def _alignment_figures(ctx: Context, records: list[dict[str, str]], failed: list[bool]) -> list[Figure]:
    """Coverage, insert-size, sex-check and contamination figures from the per-sample aggregates
    (samtools-stats IS lines, mosdepth dist files, the summary's ratios); each only when its data
    exists."""
    from cohortflow.report import alignment_plots as plots

    folder = ctx.path("alignment_qc")
    samples = [r.get("sample", "") for r in records]
    labels = [ctx.pseudonymiser.sample(s) for s in samples]
    figures = []

    coverage, n_targets = [], 0
    for sample, label, bad in zip(samples, labels, failed):
        path = _sample_file(folder, sample, ".mosdepth.region.dist.txt")
        n_targets += path is not None
        path = path or _sample_file(folder, sample, ".mosdepth.global.dist.txt")
        if path is not None:
            depth, prop = plots.read_depth_distribution(path)
            if len(depth):
                coverage.append((label, depth, prop, bad))
    if coverage:
        targets = n_targets == len(coverage)
        where = "the target regions" if targets else (
            "the target regions where given, else every contig with reads" if n_targets else
            "every contig with reads")
        figures.append(_png_figure(
            plots.coverage_plot(coverage, targets=targets),
            fig_id="fig-alignment-coverage",
            caption=f"Coverage distribution: the share of bases over {where} covered at least at each depth "
            "(mosdepth definition: duplicates, secondary and QC-failed reads skipped, overlapping mates "
            "counted once), one line per sample; dotted lines at 10x, 20x and 30x.",
            alt="Line chart of the share of bases covered at each depth or more, per sample.",
        ))

    inserts = []
    for sample, label, bad in zip(samples, labels, failed):
        path = _sample_file(folder, sample, ".stats")
        if path is not None:
            sizes, pairs = plots.read_insert_sizes(path)
            if len(sizes) and pairs.sum() > 0:
                inserts.append((label, sizes, pairs, bad))
    if inserts:
        figures.append(_png_figure(
            plots.insert_size_plot(inserts),
            fig_id="fig-alignment-insert-size",
            caption="Insert-size distribution (samtools stats IS section): pairs at each insert size as a share "
            "of the sample's pairs, one line per sample; the axis ends at the largest 99th percentile.",
            alt="Line chart of the insert-size distribution per sample.",
        ))

    points, y_missing = [], False
    for rec, label in zip(records, labels):
        x, y = to_float(rec.get("x_depth_ratio")), to_float(rec.get("y_depth_ratio"))
        if x is None:
            continue
        y_missing |= y is None
        points.append((label, x, 0.0 if y is None else y, rec.get("reported_sex", ""),
                       rec.get("sex_check") == "mismatch"))
    if points:
        figures.append(_png_figure(
            plots.sex_check_plot(points),
            fig_id="fig-alignment-sex-check",
            caption="Sex check: mean depth on X and on Y relative to the autosomes, coloured by reported sex. "
            "Two X chromosomes and no Y are expected near (1, 0), one X and one Y near (0.5, 0.5) over "
            "single-copy target sequence (whole-contig Y ratios of males are lower: much of Y is "
            "repetitive or unassembled). Samples whose reported sex the depths contradict are ringed in red."
            + (" A Y ratio that was not measured is drawn at 0." if y_missing else ""),
            alt="Scatter plot of X against Y relative depth per sample, coloured by reported sex.",
        ))

    bars = [(label, to_float(rec.get("contamination"))) for rec, label in zip(records, labels)]
    bars = [(label, x) for label, x in bars if x is not None]
    if bars:
        threshold = to_float(cfg(ctx.config, "alignment_qc", "thresholds", "max_contamination"))
        figures.append(_png_figure(
            plots.contamination_plot(bars, threshold=threshold),
            fig_id="fig-alignment-contamination",
            caption="Estimated contamination per sample (freemix: the share of reads from another person, "
            "from allele balance at common SNPs)"
            + (f"; the dashed line is the maximum allowed ({fmt_num(100 * threshold)}%)." if threshold is not None
               else "."),
            alt="Bar chart of estimated contamination per sample.",
        ))
    return figures


def alignment_section(ctx: Context) -> Section | None:
    """``alignment_qc/summary.tsv``: one row per sample (failing samples and cells highlighted), the
    failing samples with the reasons, and the figures of :func:`_alignment_figures`."""
    path = ctx.path("alignment_qc", "summary.tsv")
    if not path.is_file():
        return None
    header, records = read_tsv(path)
    columns = _alignment_columns(header)
    rows, failed_rows, failed = [], [], []
    category_counts: dict[str, int] = {}
    for rec in records:
        passed = _is_pass(rec.get("pass", "")) if "pass" in header else None
        reasons = [r for r in rec.get("fail_reasons", "").split(";") if not _is_na(r)]
        failing = _failing_columns(reasons, rec)
        cells = [_alignment_cell(ctx, name, kind, rec.get(name, ""), passed, failing) for name, _, kind in columns]
        rows.append(Row(cells, cls="row-fail" if passed is False else None))
        failed.append(passed is False)
        if passed is False:
            readable = [_readable_reason(ctx, r, rec) for r in reasons]
            for category in dict.fromkeys(c for c, _ in readable):
                category_counts[category] = category_counts.get(category, 0) + 1
            why = "; ".join(text for _, text in readable) or "no reason recorded"
            failed_rows.append(Row([Cell(ctx.pseudonymiser.sample(rec.get("sample", "")), cls="nowrap"), Cell(why)]))
    n, n_fail = len(records), len(failed_rows)
    section = Section("alignment-qc", "Alignment QC")
    summary = f"{n} samples were checked; {n - n_fail} passed and {n_fail} failed."
    criteria = _alignment_criteria(ctx.config)
    if criteria:
        summary += " Pass criteria: " + ", ".join(criteria) + "."
    if "sex_check" in header:
        summary += " A sample also fails when its reported sex contradicts the sex its X and Y depth indicate"
        summary += (", or when its reads carry another sample's genotypes (identity check)." if "identity_check"
                    in header else ".")
    section.blocks.append(Paragraph(summary))
    pseudonymised = "Sample IDs are pseudonymised." if ctx.pseudonymiser.enabled else ""
    if not ctx.sample_level_tables:  # no per-sample table, failure list or figure
        section.blocks.append(Paragraph("Per-sample alignment metrics are left out of this copy of the report.",
                                        cls="muted"))
    else:
        section.blocks.append(
            Table(
                "tbl-alignment-qc",
                [Column(label, numeric=kind not in {"id", "sex", "check"}, title=name) for name, label, kind in columns],
                rows,
                caption="Per-sample alignment metrics (samtools-stats definitions; depth as mosdepth) with the sex, "
                "contamination and identity checks; failing samples are highlighted and the failing values marked.",
                note=pseudonymised,
            )
        )
    if failed_rows and ctx.sample_level_tables:
        section.blocks.append(
            Table(
                "tbl-alignment-failed",
                [Column("Sample"), Column("Why it failed")],
                failed_rows,
                caption="Samples that failed alignment QC and why.",
                note=pseudonymised,
            )
        )
    elif n and not n_fail:
        section.blocks.append(Paragraph("No sample failed alignment QC.", cls="verdict-pass"))
    figures = _alignment_figures(ctx, records, failed) if ctx.sample_level_tables else []
    if figures:
        section.blocks.append(figures[0] if len(figures) == 1 else FigureGrid(figures))
    finding = f"Alignment QC: {n - n_fail} of {n} samples passed"
    if n_fail:
        top = sorted(category_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        finding += f"; {n_fail} failed" + (f" ({', '.join(c for c, _ in top)})" if top else "")
    section.findings.append(finding + ".")
    ctx.facts.setdefault("n_samples_sequenced", n)
    return section


# --------------------------------------------------------------------------------------------
# Genotype QC and ancestry


def _removed_counts(summary: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Removed-per-filter counts for ``what`` ("samples" or "variants"), in any of the shapes
    ``{what}_removed: {filter: n}``, ``removed_{what}: {...}``, ``n_{what}_removed: {...}``,
    ``removed: {what: {...}}`` or flat keys ``n_{what}_removed_{filter}``."""
    for key in (f"{what}_removed", f"removed_{what}", f"n_{what}_removed", f"{what}_removed_by_filter"):
        value = summary.get(key)
        if isinstance(value, Mapping):
            return dict(value)
    removed = summary.get("removed")
    if isinstance(removed, Mapping) and isinstance(removed.get(what), Mapping):
        return dict(removed[what])
    flat = {}
    prefix = f"n_{what}_removed_"
    for key, value in summary.items():
        if key.startswith(prefix) and not isinstance(value, (Mapping, list)):
            flat[key[len(prefix):]] = value
    return flat


_PCA_KEYS = [
    ("n_samples", "Samples in PCA", "count"),
    ("n_variants_candidates", "Variants passing the PCA MAF filter", "int"),
    ("n_variants_used", "Variants after LD pruning", "int"),
    ("n_pcs", "PCs computed", "int"),
    ("maf", "Minimum MAF", "num"),
    ("prune_window_kb", "LD-pruning window (kb)", "num"),
    ("prune_r2", "LD-pruning r²", "num"),
]
_SEPARATION_KEYS = [
    ("n_populations", "Labelled populations", "int"),
    ("n_samples_labelled", "Samples with a population label", "count"),
    ("silhouette_pc1_pc2", "Population separation: silhouette on PC1–PC2", "num"),
    ("nearest_centroid_accuracy_pc1_pc2", "Population separation: nearest-centroid accuracy on PC1–PC2", "num"),
]


# KING kinship of relative pairs by degree (Manichaikul et al. 2010: 2^-(d+1.5) boundaries)
_KINSHIP_DEGREES = ((0.354, "duplicate / monozygotic twin"), (0.177, "1st degree"), (0.0884, "2nd degree"),
                    (0.0442, "3rd degree"))


def _kinship_degree(kinship: float) -> str:
    return next((name for bound, name in _KINSHIP_DEGREES if kinship > bound), "unrelated")


def _funnel_table(ctx: Context, summary: Mapping[str, Any]) -> Table | None:
    """``summary.json`` "funnel": the QC steps in order, with what each removed and what is left."""
    funnel = summary.get("funnel")
    if not isinstance(funnel, list) or not funnel:
        return None
    thresholds = summary.get("thresholds") if isinstance(summary.get("thresholds"), Mapping) else {}
    rows = []
    for step in funnel:
        if not isinstance(step, Mapping):
            continue
        name = str(step.get("step", ""))
        threshold = thresholds.get(name, thresholds.get(name.removesuffix("_cutoff")))
        rows.append(Row([
            Cell(_filter_label(name, threshold)),
            ctx.count(step.get("samples_removed")),
            Cell(fmt_int(to_int(step.get("variants_removed"))), to_float(step.get("variants_removed"))),
            ctx.count(step.get("samples_left")),
            Cell(fmt_int(to_int(step.get("variants_left"))), to_float(step.get("variants_left"))),
        ]))
    return Table(
        "tbl-qc-funnel",
        [Column("QC step"), Column("Samples removed", numeric=True), Column("Variants removed", numeric=True),
         Column("Samples left", numeric=True), Column("Variants left", numeric=True)],
        rows,
        caption="QC funnel: each filter in the order applied, what it removed and what was left after it.",
        note=f"Sample counts below {ctx.min_count} are shown as <{ctx.min_count}.",
    )


def _sex_check_findings(ctx: Context, sample_qc: Path) -> tuple[list, list[str]]:
    """Counts of the sex check (``sample_qc.tsv`` column ``sex_check``: OK / PROBLEM)."""
    if not sample_qc.is_file():
        return [], []
    header, recs = read_tsv(sample_qc)
    if "sex_check" not in header:
        return [], []
    checked = [r for r in recs if r.get("sex_check") in ("OK", "PROBLEM")]
    if not checked:
        return [], []
    problems = sum(r["sex_check"] == "PROBLEM" for r in checked)
    items = [("Samples with a sex check (chrX)", ctx.count_text(len(checked))),
             ("Reported sex contradicts chrX (PROBLEM)", ctx.count_text(problems))]
    finding = (f"Sex check: {ctx.count_text(problems)} of {ctx.count_text(len(checked))} samples have a "
               "reported sex the chromosome X genotypes contradict." if problems else
               f"Sex check: reported sex agrees with chromosome X for all {ctx.count_text(len(checked))} samples.")
    return [KeyValues(items, caption="Sex check (chrX inbreeding F; female below 0.2, male above 0.8, as plink).")], [finding]


def _relatedness_blocks(ctx: Context, kinship: Path, cutoff: Any) -> tuple[list, list[str]]:
    """Pairs of ``kinship.tsv`` (KING-robust) by degree, and the closest pairs (pseudonymised)."""
    if not kinship.is_file():
        return [], []
    header, recs = read_tsv(kinship)
    key = "KINSHIP" if "KINSHIP" in header else "kinship" if "kinship" in header else None
    id1 = "ID1" if "ID1" in header else "IID1"
    id2 = "ID2" if "ID2" in header else "IID2"
    if key is None:
        return [], []
    pairs = [(to_float(r.get(key)), r.get(id1, ""), r.get(id2, "")) for r in recs]
    pairs = [p for p in pairs if p[0] is not None]
    by_degree = {name: 0 for _, name in _KINSHIP_DEGREES}
    for value, _, _ in pairs:
        degree = _kinship_degree(value)
        if degree in by_degree:
            by_degree[degree] += 1
    blocks = [Table(
        "tbl-kinship-degrees",
        [Column("Relationship (KING kinship)"), Column("Pairs", numeric=True)],
        [Row([Cell(f"{name} (> {bound:g})"), ctx.count(by_degree[name])]) for bound, name in _KINSHIP_DEGREES],
        caption="Pairs of samples by estimated relationship (KING-robust kinship coefficient).",
        note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}.",
    )]
    closest = sorted((p for p in pairs if p[0] > _KINSHIP_DEGREES[-1][0]), key=lambda p: (-p[0], p[1], p[2]))[:20]
    if closest and ctx.sample_level_tables:
        blocks.append(Table(
            "tbl-kinship-pairs",
            [Column("Sample 1"), Column("Sample 2"), Column("Kinship", numeric=True), Column("Relationship")],
            [Row([Cell(ctx.pseudonymiser.sample(a)), Cell(ctx.pseudonymiser.sample(b)),
                  Cell(fmt_fixed(v, decimals=4), v), Cell(_kinship_degree(v))]) for v, a, b in closest],
            caption="The most closely related pairs (at most 20).",
            note="Sample IDs are pseudonymised." if ctx.pseudonymiser.enabled else "",
        ))
    related = sum(by_degree[name] for bound, name in _KINSHIP_DEGREES if to_float(cutoff) is None or bound >= to_float(cutoff) - 1e-12)
    findings = [f"Relatedness: {ctx.count_text(related)} sample pairs are related closer than the KING cutoff"
                + (f" {fmt_num(to_float(cutoff))}" if to_float(cutoff) is not None else "") + "."] if pairs else []
    return blocks, findings


def qc_section(ctx: Context) -> Section | None:
    """``qc/summary.json``, ``qc/pca.json``, ``qc/eigenvalues.tsv``, ``qc/pca.png``."""
    # docs/architecture.md names qc/{name}; the QC/PCA functions write {out_prefix}.{name}, so a
    # workflow using out_prefix qc/qc gives qc/qc.{name}: accept either.
    files = {}
    for name in ("summary.json", "pca.json", "eigenvalues.tsv", "pca.png", "sample_qc.tsv", "kinship.tsv",
                 "sample_qc.png", "variant_qc.png"):
        plain, prefixed = ctx.path("qc", name), ctx.path("qc", f"qc.{name}")
        files[name] = prefixed if not plain.is_file() and prefixed.is_file() else plain
    if not any(p.is_file() for p in files.values()):
        return None
    section = Section("genotype-qc", "Genotype QC and ancestry")
    if files["summary.json"].is_file():
        summary = read_json(files["summary.json"])
        s_in, s_out = to_int(summary.get("n_samples_in")), to_int(summary.get("n_samples_out"))
        v_in, v_out = to_int(summary.get("n_variants_in")), to_int(summary.get("n_variants_out"))
        section.blocks.append(
            StatTiles(
                [
                    (ctx.count_text(s_in), "samples before QC"),
                    (ctx.count_text(s_out), "samples after QC"),
                    (fmt_int(v_in), "variants before QC"),
                    (fmt_int(v_out), "variants after QC"),
                ]
            )
        )
        funnel = _funnel_table(ctx, summary)
        removal_tables = [funnel] if funnel else []
        for what, label, suppress in (() if funnel else (("samples", "Samples", True), ("variants", "Variants", False))):
            removed = _removed_counts(summary, what)
            if not removed:
                continue
            order = summary.get("order") if isinstance(summary.get("order"), list) else []
            filters = [f for f in order if f in removed] + [f for f in removed if f not in order]
            thresholds = summary.get("thresholds") if isinstance(summary.get("thresholds"), Mapping) else {}
            rows = []
            for filt in filters:  # the order the filters were applied
                value = removed[filt]
                cell = ctx.count(value) if suppress else Cell(fmt_int(value), to_float(value))
                rows.append(Row([Cell(_filter_label(filt, thresholds.get(filt))), cell]))
            removal_tables.append(
                Table(
                    f"tbl-qc-removed-{what}",
                    [Column("Filter"), Column(f"{label} removed", numeric=True)],
                    rows,
                    caption=f"{label} removed by each QC filter, in the order the filters were applied.",
                    note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}." if suppress else "",
                )
            )
        if removal_tables:
            section.blocks.append(removal_tables[0] if len(removal_tables) == 1 else Columns(removal_tables))
        ctx.facts.update(n_samples_in=s_in, n_samples_out=s_out, n_variants_in=v_in, n_variants_out=v_out)
        if s_in is not None and s_out is not None and v_in is not None and v_out is not None:
            section.findings.append(
                f"Genotype QC kept {ctx.count_text(s_out)} of {ctx.count_text(s_in)} samples and "
                f"{fmt_int(v_out)} of {fmt_int(v_in)} variants."
            )
    qc_figures = [f for f in (
        make_figure(files["sample_qc.png"], fig_id="fig-sample-qc",
                    caption="Sample QC: call rate with the --mind threshold; autosomal heterozygosity F against "
                    "call rate (mean +- 3 SD guide lines: outliers suggest contamination or inbreeding); "
                    "chromosome X F by reported sex with the sex-check thresholds.",
                    alt="Histograms and a scatter plot of per-sample QC statistics."),
        make_figure(files["variant_qc.png"], fig_id="fig-variant-qc",
                    caption="Variant QC: call rate, minor allele frequency and Hardy-Weinberg exact test "
                    "distributions, each with its filter threshold.",
                    alt="Histograms of per-variant QC statistics."),
    ) if f]
    section.blocks += qc_figures
    sex_blocks, sex_findings = _sex_check_findings(ctx, files["sample_qc.tsv"])
    summary_json = read_json(files["summary.json"]) if files["summary.json"].is_file() else {}
    thresholds = summary_json.get("thresholds") if isinstance(summary_json.get("thresholds"), Mapping) else {}
    kin_blocks, kin_findings = _relatedness_blocks(ctx, files["kinship.tsv"],
                                                   thresholds.get("king_cutoff", thresholds.get("king")))
    if sex_blocks or kin_blocks:
        section.blocks.append(Columns(sex_blocks + kin_blocks) if len(sex_blocks + kin_blocks) > 1
                              else (sex_blocks + kin_blocks)[0])
    section.findings += sex_findings + kin_findings
    fig = make_figure(
        files["pca.png"],
        fig_id="fig-pca",
        caption="Principal components of the QC'd, LD-pruned genotypes (coloured by population where "
        "known). Samples that cluster apart differ in ancestry; the leading PCs are used as GWAS "
        "covariates to correct for stratification.",
        alt="Scatter plot of genotype principal components of the cohort's samples.",
    )
    pca = read_json(files["pca.json"]) if files["pca.json"].is_file() else {}
    eig_rows = []
    share_label = "% of computed PCs"
    if files["eigenvalues.tsv"].is_file():
        header, recs = read_tsv(files["eigenvalues.tsv"])
        values = [to_float(r.get("eigenvalue")) for r in recs]
        total = sum(v for v in values if v is not None)
        explained = "variance_explained" in header
        if explained:
            share_label = "Variance explained %"
        for rec, value in zip(recs, values):
            if explained:
                share = to_float(rec.get("variance_explained"))
            else:
                share = None if value is None or total <= 0 else value / total
            eig_rows.append(
                Row(
                    [
                        Cell(rec.get("pc", "")),
                        Cell(fmt_num(value, digits=4), value),
                        Cell("n/a" if share is None else f"{100 * share:.1f}", share),
                    ]
                )
            )
    elif isinstance(pca.get("eigenvalues"), list):
        values = [to_float(v) for v in pca["eigenvalues"]]
        total = sum(v for v in values if v is not None)
        for i, value in enumerate(values, start=1):
            share = None if value is None or total <= 0 else value / total
            eig_rows.append(
                Row(
                    [
                        Cell(f"PC{i}"),
                        Cell(fmt_num(value, digits=4), value),
                        Cell("n/a" if share is None else f"{100 * share:.1f}", share),
                    ]
                )
            )
    side = []
    if eig_rows:
        side.append(
            Table(
                "tbl-eigenvalues",
                [Column("PC"), Column("Eigenvalue", numeric=True), Column(share_label, numeric=True)],
                eig_rows,
                caption="Eigenvalues of the genotype PCA"
                + (
                    " and the share of total genetic variance (trace of the GRM) each explains."
                    if share_label.startswith("Variance")
                    else "; the share is of the sum over the PCs computed, not of total genetic variance."
                ),
            )
        )
    if pca:
        items = _kv_known(ctx, pca, _PCA_KEYS)
        separation = pca.get("separation")
        if isinstance(separation, Mapping):
            items += _kv_known(ctx, separation, _SEPARATION_KEYS)
        if items:
            side.append(KeyValues(items, caption="PCA inputs and population separation."))
    if fig and side:
        section.blocks.append(Columns([fig, side]))
    elif fig or side:
        section.blocks += [fig] if fig else side
    return section


# --------------------------------------------------------------------------------------------
# GWAS

_LEAD_COLUMNS = [
    ("variant_id", "Variant", "text"),
    ("chromosome", "Chr", "chrom"),
    ("base_pair_location", "Position", "int"),
    ("effect_allele", "Effect allele", "text"),
    ("other_allele", "Other allele", "text"),
    ("beta", "Beta", "num"),
    ("standard_error", "SE", "num"),
    ("p_value", "p", "p"),
    ("nearest_gene", "Nearest gene", "text"),
    ("gene_distance", "Distance to gene (bp)", "int"),
    ("n_clumped", "Variants in LD clump", "int"),
]


def _chrom_key(text: str) -> float | None:
    t = str(text).removeprefix("chr")
    if t.isdigit():
        return float(t)
    return {"X": 23.0, "Y": 24.0, "XY": 25.0, "MT": 26.0, "M": 26.0}.get(t.upper())


def _lead_table(path: Path, trait: str) -> tuple[Table, dict[str, str] | None]:
    header, recs = read_tsv(path)
    columns = [c for c in _LEAD_COLUMNS if c[0] in header]
    rows = []
    best = None
    best_key = -math.inf
    for rec in recs:
        cells = []
        for name, _l, kind in columns:
            raw = rec.get(name, "")
            if kind == "p":
                nl = neg_log10_p(raw)
                cells.append(Cell(fmt_p(raw), None if nl is None else -nl))
            elif kind == "int":
                cells.append(Cell(fmt_int(raw) if to_int(raw) is not None else raw, to_float(raw)))
            elif kind == "num":
                cells.append(Cell(fmt_num(raw, digits=3), to_float(raw)))
            elif kind == "chrom":
                cells.append(Cell(raw, _chrom_key(raw)))
            else:
                cells.append(Cell(raw, cls="nowrap" if name == "variant_id" else None))
        rows.append(Row(cells))
        nl = neg_log10_p(rec.get("p_value"))
        if nl is not None and nl > best_key:
            best_key, best = nl, rec
    table = Table(
        f"tbl-leads-{slug(trait)}",
        [Column(label, numeric=kind in {"p", "int", "num", "chrom"}, title=name) for name, label, kind in columns],
        rows,
        caption=f"Lead variant of each genome-wide significant locus for {trait}, with the nearest gene.",
    )
    return table, best


def gwas_section(ctx: Context) -> Section | None:
    """Per trait: ``gwas/{trait}.summary.json``, ``.manhattan.png``, ``.qq.png``, ``.leads.tsv``."""
    gdir = ctx.path("gwas")
    traits = traits_with(gdir, (".summary.json", ".manhattan.png", ".qq.png", ".leads.tsv"))
    if not traits:
        return None
    section = Section("gwas", "Genome-wide association")
    threshold = to_float(cfg(ctx.config, "gwas", "p_threshold"))
    for trait in traits:
        sub = Subsection(f"gwas-{slug(trait)}", trait)
        summary = read_json(gdir / f"{trait}.summary.json") if (gdir / f"{trait}.summary.json").is_file() else {}
        thr = to_float(summary.get("p_threshold")) or threshold
        facts = None
        if summary:
            items = [("Model", _text(summary.get("model")))]
            items.append(("Samples analysed", ctx.count_text(summary.get("n"))))
            for key, label in (("n_cases", "Cases"), ("n_controls", "Controls")):
                if key in summary:
                    items.append((label, ctx.count_text(summary.get(key))))
            items += [
                ("Variants tested", fmt_int(summary.get("n_variants"))),
                ("Significance threshold", fmt_p(thr) if thr else "n/a"),
                ("Significant variants", fmt_int(summary.get("n_significant"))),
                ("Independent loci", fmt_int(summary.get("n_loci"))),
            ]
            method = _lead_method_text(summary)
            if method:
                items.append(("Lead loci defined by", method))
            items += [
                ("Lambda GC, with PC covariates", fmt_fixed(summary.get("lambda_gc"), decimals=3)),
                ("Lambda GC, without PC covariates", fmt_fixed(summary.get("lambda_gc_nopcs"), decimals=3)),
            ]
            facts = KeyValues(items, caption=f"Association test for {trait}.")
        manhattan = make_figure(
            gdir / f"{trait}.manhattan.png",
            fig_id=f"fig-manhattan-{slug(trait)}",
            caption=f"Manhattan plot for {trait}: −log10(p) of every tested variant along the genome"
            + (f"; the line marks p = {fmt_p(thr)}." if thr else "."),
            alt=f"Manhattan plot of association p-values for {trait} across the chromosomes.",
        )
        qq = make_figure(
            gdir / f"{trait}.qq.png",
            fig_id=f"fig-qq-{slug(trait)}",
            caption=f"Quantile-quantile plot for {trait}, with and without ancestry PCs as covariates. "
            "Points above the diagonal across the whole range (lambda GC well above 1) indicate "
            "population stratification; a tail at the top only indicates true associations.",
            alt=f"QQ plot of observed against expected −log10 p-values for {trait}, with and without PCs.",
        )
        if manhattan:
            sub.blocks.append(manhattan)
        side = [b for b in (facts, qq) if b]
        if side:
            sub.blocks.append(side[0] if len(side) == 1 else Columns(side))
        best = None
        leads_path = gdir / f"{trait}.leads.tsv"
        if leads_path.is_file():
            table, best = _lead_table(leads_path, trait)
            if table.rows:
                sub.blocks.append(table)
            else:
                sub.blocks.append(Paragraph("No locus reached genome-wide significance.", cls="muted"))
        regional = _regional_figures(gdir, trait)
        if regional:
            sub.blocks.append(regional[0] if len(regional) == 1 else FigureGrid(regional))
        section.subsections.append(sub)
        section.findings.append(_gwas_finding(trait, summary, best, thr))
    return section


def _lead_method_text(summary: Mapping[str, Any]) -> str | None:
    """How the lead loci were defined, from the summary's lead_method/clump keys (None if absent)."""
    method = summary.get("lead_method")
    clump = summary.get("clump") if isinstance(summary.get("clump"), Mapping) else {}
    if method == "ld_clump":
        r2, kb = to_float(clump.get("r2")), to_float(clump.get("kb"))
        detail = ", ".join(t for t in (f"r² > {r2:g}" if r2 is not None else "",
                                       f"within {kb:g} kb" if kb is not None else "") if t)
        return "LD clumping on the cohort's genotypes" + (f" ({detail})" if detail else "")
    if method == "distance":
        kb = to_float(summary.get("locus_window_kb"))
        return "distance" + (f" ({kb:g} kb windows; no genotypes for LD)" if kb is not None else "")
    return None


def _regional_figures(gdir: Path, trait: str) -> list:
    """The regional association plots listed in ``gwas/{trait}.regional/index.tsv``, in its order
    (most significant locus first); rows naming a file outside the directory or not a PNG are left
    out."""
    rdir = gdir / f"{trait}.regional"
    index = rdir / "index.tsv"
    if not index.is_file():
        return []
    _header, recs = read_tsv(index)
    figs = []
    for i, rec in enumerate(recs, 1):
        name = (rec.get("file") or "").strip()
        if not name or Path(name).name != name or name.startswith("."):
            continue
        rank = to_int(rec.get("rank")) or i
        variant = (rec.get("variant_id") or "").strip() or "?"
        gene = (rec.get("nearest_gene") or "").strip()
        n_clumped = to_int(rec.get("n_clumped"))
        caption = f"Regional association plot of locus {rank} for {trait}: lead variant {variant}"
        if to_float(rec.get("p_value")) is not None or neg_log10_p(rec.get("p_value")) is not None:
            caption += f" (p = {fmt_p(rec.get('p_value'))})"
        if gene and gene.upper() not in {"NA", "."}:
            caption += f", nearest gene {gene}"
        if n_clumped is not None:
            noun = "variant" if n_clumped == 1 else "variants"
            caption += f"; {fmt_int(n_clumped)} other {noun} in its LD clump"
        caption += (". Points are coloured by r² with the lead (LocusZoom bins), the lead is the purple "
                    "diamond, grey points have no r² (not in the genotypes).")
        fig = make_figure(rdir / name, fig_id=f"fig-regional-{slug(trait)}-{rank}", caption=caption,
                          alt=f"Regional association plot around {variant} for {trait}: −log10 p by position, "
                              "coloured by LD with the lead variant, genes underneath.")
        if fig:
            figs.append(fig)
    return figs


def _gwas_finding(trait: str, summary: Mapping[str, Any], best: Mapping[str, str] | None, thr) -> str:
    n_loci = to_int(summary.get("n_loci"))
    parts = []
    if n_loci is not None:
        noun = "locus" if n_loci == 1 else "loci"
        parts.append(f"{n_loci} genome-wide significant {noun}")
    if best is not None:
        gene = (best.get("nearest_gene") or "").strip()
        where = f"near {gene}" if gene and gene.upper() not in {"NA", "."} else f"at {best.get('variant_id', '?')}"
        parts.append(f"strongest {where} (p = {fmt_p(best.get('p_value'))})")
    text = f"{trait}: " + ("; ".join(parts) if parts else "association test run") + "."
    lam, lam0 = to_float(summary.get("lambda_gc")), to_float(summary.get("lambda_gc_nopcs"))
    if lam is not None:
        text += f" Lambda GC {lam:.2f} with PC covariates"
        text += f" ({lam0:.2f} without)." if lam0 is not None else "."
    return text


# --------------------------------------------------------------------------------------------
# PRS

_PRS_METRICS = {
    # metric key -> (label, what it is)
    "incremental_r2": ("Incremental R²", "R² of trait ~ covariates + score minus R² of trait ~ covariates"),
    "partial_r2": ("Partial R²", "share of the covariate-residual variance the score explains"),
    "r": ("r", "correlation of score and trait"),
    "beta_per_sd": ("Beta per SD", "trait units per SD of the score, covariates in the model"),
    "auc": ("AUC", "area under the ROC curve of the score alone"),
    "or_per_sd": ("OR per SD", "odds ratio per SD of the score, covariates in the model"),
    "auc_covariates": ("AUC covariates", "AUC of the covariates-only logistic model"),
    "auc_full": ("AUC covariates + score", "AUC of the covariates + score logistic model"),
    "delta_auc": ("ΔAUC", "AUC gained by adding the score to the covariates"),
    "nagelkerke_r2_incremental": ("Incremental Nagelkerke R²", "Nagelkerke R² gained by adding the score"),
}
_PRS_METHOD_NAMES = {"ct": "Clumping + thresholding", "bayes": "Bayesian (LDpred2-auto model)"}


def _prs_method_name(method: str) -> str:
    return _PRS_METHOD_NAMES.get(method, f"Published score {method}")


def _ci_text(metric: Mapping[str, Any]) -> str:
    lo, hi = to_float(metric.get("ci_low")), to_float(metric.get("ci_high"))
    return f"{lo:.3f} to {hi:.3f}" if lo is not None and hi is not None else "n/a"


def _prs_performance_table(ctx: Context, trait: str, evaluation: Mapping[str, Any]) -> Table | None:
    """Test-split metrics of each method's chosen score, with bootstrap CIs."""
    methods = [m for m in evaluation.get("methods") or [] if isinstance(m, Mapping)]
    rows = []
    for m in methods:
        metrics = m.get("metrics") if isinstance(m.get("metrics"), Mapping) else {}
        for key, (label, _what) in _PRS_METRICS.items():
            if not isinstance(metrics.get(key), Mapping):
                continue
            value = to_float(metrics[key].get("value"))
            rows.append(Row([Cell(_prs_method_name(str(m.get("method", "")))),
                             Cell(str(m.get("selected_label", "")), cls="nowrap"), Cell(label),
                             Cell(fmt_num(value, digits=3), value), Cell(_ci_text(metrics[key])),
                             ctx.count(m.get("n_test"))]))
    if not rows:
        return None
    main = str(evaluation.get("main_metric", ""))
    return Table(
        f"tbl-prs-{slug(trait)}",
        [Column("Method"), Column("Chosen on validation"), Column("Metric"), Column("Value", numeric=True),
         Column("95% CI"), Column("Test samples", numeric=True)],
        rows,
        caption=f"Performance of each polygenic score for {trait} in the test samples, which took no part in "
        "building the scores or choosing among them (thresholds and hyper-parameters were chosen on the "
        f"validation samples). Main metric: {_PRS_METRICS.get(main, (main, ''))[0]}. "
        + "; ".join(f"{label}: {what}" for key, (label, what) in _PRS_METRICS.items()
                    if any(isinstance(m.get("metrics"), Mapping) and key in m["metrics"] for m in methods))
        + f". {evaluation.get('ci', '')}.",
        note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}.",
    )


def _prs_group_table(ctx: Context, trait: str, evaluation: Mapping[str, Any]) -> Table | None:
    groups = evaluation.get("groups") if isinstance(evaluation.get("groups"), Mapping) else {}
    records = [r for r in groups.get("rows") or [] if isinstance(r, Mapping)]
    if not records:
        return None
    rows = []
    for rec in records:
        value = to_float(rec.get("value"))
        metric = str(rec.get("metric", ""))
        rows.append(Row([Cell(_prs_method_name(str(rec.get("method", "")))), Cell(str(rec.get("group", ""))),
                         ctx.count(rec.get("n")), Cell(_PRS_METRICS.get(metric, (metric, ""))[0]),
                         Cell(fmt_num(value, digits=3) if value is not None else "not reported", value),
                         Cell(_ci_text(rec))]))
    source = groups.get("source")
    how = (f"groups from the sample sheet's '{groups.get('column')}' column" if source == "label" else
           f"groups are {groups.get('k')} clusters of the leading principal components (Gaussian mixture, "
           "number chosen by BIC)" if source == "pcs" else "groups")
    return Table(
        f"tbl-prs-groups-{slug(trait)}",
        [Column("Method"), Column("Ancestry group"), Column("Test samples", numeric=True), Column("Metric"),
         Column("Value", numeric=True), Column("95% CI")],
        rows,
        caption=f"Performance of each chosen score for {trait} by ancestry group in the test samples ({how}). "
        f"Groups with fewer than {ctx.min_count} individuals get no metric.",
        note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}.",
    )


def _prs_build_items(ctx: Context, ct: Mapping[str, Any], bayes: Mapping[str, Any]) -> list[tuple[str, str]]:
    items = []
    clump = ct.get("clump") if isinstance(ct.get("clump"), Mapping) else {}
    if ct:
        items.append(("C+T variants aligned to the genotypes", fmt_int(ct.get("n_aligned"))))
        items.append(("C+T clumping", f"r² > {clump.get('r2')} within {clump.get('kb')} kb, p1 = {clump.get('p1')}"
                      " (as plink1.9 --clump)"))
        items.append(("C+T index variants", fmt_int(clump.get("n_index_variants"))))
    if bayes:
        h2 = bayes.get("h2") if isinstance(bayes.get("h2"), Mapping) else {}
        pp = bayes.get("p") if isinstance(bayes.get("p"), Mapping) else {}
        variants = bayes.get("variants") if isinstance(bayes.get("variants"), Mapping) else {}
        if variants.get("used") is not None:
            items.append(("Bayesian score variants", fmt_int(variants.get("used"))))
        items.append(("Bayesian h² estimate", fmt_num(h2.get("estimate"), digits=3)))
        items.append(("Bayesian fraction of causal variants (p)", fmt_num(pp.get("estimate"), digits=3)))
        kept, dropped = to_int(bayes.get("n_chains_kept")), to_int(bayes.get("n_chains_diverged"))
        if kept is not None:
            items.append(("Gibbs chains kept / dropped as diverged", f"{kept} / {dropped or 0}"))
    return items


def prs_section(ctx: Context) -> Section | None:
    """Per trait: ``prs/{trait}.evaluate.json`` (performance with CIs, by ancestry group),
    ``prs/{trait}.ct.json`` and ``prs/{trait}.bayes.json`` (how the scores were built) and the
    distribution, decile and threshold figures; then the published scores' match report."""
    pdir = ctx.path("prs")
    traits = traits_with(pdir, (".evaluate.json",))
    published = _pgs_subsection(ctx, pdir)
    if not traits and published is None:
        return None
    section = Section("prs", "Polygenic risk scores")
    for trait in traits:
        evaluation = read_json(pdir / f"{trait}.evaluate.json")
        ct = read_json(pdir / f"{trait}.ct.json") if (pdir / f"{trait}.ct.json").is_file() else {}
        bayes = read_json(pdir / f"{trait}.bayes.json") if (pdir / f"{trait}.bayes.json").is_file() else {}
        sub = Subsection(f"prs-{slug(trait)}", trait)
        samples = evaluation.get("samples") if isinstance(evaluation.get("samples"), Mapping) else {}
        in_split = samples.get("in_split") if isinstance(samples.get("in_split"), Mapping) else {}
        if in_split:
            sub.blocks.append(Paragraph(
                f"The scores were built from a GWAS of {trait} on {ctx.count_text(in_split.get('discovery'))} "
                f"discovery samples, chosen on {ctx.count_text(in_split.get('validation'))} validation samples and "
                f"judged on {ctx.count_text(in_split.get('test'))} test samples (covariates: "
                f"{', '.join(map(str, evaluation.get('covariates') or [])) or 'none'})."))
        table = _prs_performance_table(ctx, trait, evaluation)
        if table:
            sub.blocks.append(table)
        items = _prs_build_items(ctx, ct, bayes)
        if items:
            sub.blocks.append(KeyValues(items, caption=f"How the scores for {trait} were built."))
        figures = [f for f in (
            make_figure(pdir / f"{trait}.distribution.png", fig_id=f"fig-prs-dist-{slug(trait)}",
                        caption=f"Distribution of the chosen scores for {trait} in the test samples.",
                        alt=f"Score distribution for {trait} in the test samples."),
            make_figure(pdir / f"{trait}.deciles.png", fig_id=f"fig-prs-deciles-{slug(trait)}",
                        caption=f"{trait} by decile of each chosen score in the test samples, with 95% bootstrap CIs.",
                        alt=f"Decile plot of {trait} against the polygenic scores."),
            make_figure(pdir / f"{trait}.thresholds.png", fig_id=f"fig-prs-thresholds-{slug(trait)}",
                        caption=f"Clumping + thresholding: validation-split fit of each p-value threshold for {trait}; "
                        "the chosen threshold is marked.",
                        alt=f"Validation fit per p-value threshold for {trait}."),
        ) if f]
        if figures:
            sub.blocks.append(FigureGrid(figures))
        groups = _prs_group_table(ctx, trait, evaluation)
        if groups:
            sub.blocks.append(groups)
        warnings = [str(w) for w in bayes.get("warnings") or []]
        if warnings:
            sub.blocks.append(Paragraph("Bayesian score: " + " ".join(warnings)))
        section.subsections.append(sub)
        methods = {m.get("method"): m for m in evaluation.get("methods") or [] if isinstance(m, Mapping)}
        main = str(evaluation.get("main_metric", ""))
        parts = []
        for name in [k for k in ("bayes", "ct") if k in methods] + sorted(k for k in methods if k not in ("ct", "bayes")):
            metric = (methods[name].get("metrics") or {}).get(main)
            if isinstance(metric, Mapping) and to_float(metric.get("value")) is not None:
                short = {"ct": "clumping + thresholding", "bayes": "Bayesian"}.get(str(name), f"published {name}")
                parts.append(f"{short} {to_float(metric['value']):.3f} (95% CI {_ci_text(metric)})")
        if parts:
            section.findings.append(f"Polygenic scores for {trait}, {_PRS_METRICS.get(main, (main, ''))[0]} in "
                                    f"held-out test samples: " + "; ".join(parts) + ".")
    if published is not None:
        sub, findings = published
        section.subsections.append(sub)
        section.findings.extend(findings)
    return section


_PGS_MATCH_COLUMNS = [
    # (column, label, kind)
    ("pgs_id", "Score", "text"),
    ("trait_reported", "Reported trait", "text"),
    ("n_variants", "Variants in file", "int"),
    ("matched", "Matched", "int"),
    ("swapped", "of which allele-swapped", "int"),
    ("flipped", "of which strand-flipped", "int"),
    ("ambiguous_dropped", "Ambiguous (dropped)", "int"),
    ("missing", "Not in genotypes", "int"),
    ("other_dropped", "Other alleles (dropped)", "int"),
    ("fraction_matched", "Fraction matched", "num"),
    ("weight_fraction_matched", "Weight fraction matched", "num"),
]


def _pgs_subsection(ctx: Context, pdir: Path) -> tuple[Subsection, list[str]] | None:
    """``prs/pgs.match.tsv`` (variant matching per score) and ``prs/pgs.summary.json`` (score vs
    trait per score); None when neither exists."""
    match_path, summary_path = pdir / "pgs.match.tsv", pdir / "pgs.summary.json"
    if not match_path.is_file() and not summary_path.is_file():
        return None
    sub = Subsection("prs-published", "Published scores (PGS Catalog)")
    findings: list[str] = []
    if match_path.is_file():
        header, recs = read_tsv(match_path)
        columns = [c for c in _PGS_MATCH_COLUMNS if c[0] in header]
        rows = []
        for rec in recs:
            cells = []
            for name, _label, kind in columns:
                raw = rec.get(name, "")
                if kind == "int":  # variants, not people: never suppressed
                    cells.append(Cell(fmt_int(raw) if to_int(raw) is not None else raw, to_float(raw)))
                elif kind == "num":
                    cells.append(Cell(fmt_fixed(raw, decimals=3), to_float(raw)))
                else:
                    cells.append(Cell(raw, cls="nowrap" if name == "pgs_id" else None))
            rows.append(Row(cells))
            matched, total, frac = to_int(rec.get("matched")), to_int(rec.get("n_variants")), \
                to_float(rec.get("fraction_matched"))
            if matched is not None and total is not None:
                trait = (rec.get("trait_reported") or "").strip()
                findings.append(f"Published score {rec.get('pgs_id', '?')}" + (f" ({trait})" if trait else "")
                                + f": {fmt_int(matched)} of {fmt_int(total)} variants matched the genotypes"
                                + (f" ({100 * frac:.0f}%)." if frac is not None else "."))
        sub.blocks.append(Table(
            "tbl-pgs-match",
            [Column(label, numeric=kind != "text", title=name) for name, label, kind in columns],
            rows,
            caption="Variants of each published score matched to the cohort's genotypes by position and "
            "alleles. Swapped and strand-flipped variants are matched (counted in Matched); ambiguous A/T and "
            "C/G SNPs are dropped unless configured otherwise.",
        ))
    summary = read_json(summary_path) if summary_path.is_file() else {}
    scores = summary.get("scores")
    rows = []
    if isinstance(scores, Mapping):
        for pgs_id in sorted(scores):
            entry = scores[pgs_id]
            traits = entry.get("traits") if isinstance(entry, Mapping) else None
            if not isinstance(traits, Mapping):
                continue
            for trait in sorted(traits):
                m = traits[trait] if isinstance(traits[trait], Mapping) else {}
                r, auc = to_float(m.get("r")), to_float(m.get("auc"))
                # a metric of the other trait type is blank; one that could not be computed is n/a
                metrics = [Cell(fmt_num(m[k], digits=3) if k in m else "", to_float(m.get(k)))
                           for k in ("r", "r2", "auc")]
                rows.append(Row([Cell(str(pgs_id), cls="nowrap"), Cell(str(trait)), ctx.count(m.get("n")),
                                 *metrics]))
                if r is not None:
                    findings.append(f"Published score {pgs_id} vs {trait}: r = {r:.2f}.")
                elif auc is not None:
                    findings.append(f"Published score {pgs_id} vs {trait}: AUC = {auc:.2f}.")
    if rows:
        sub.blocks.append(Table(
            "tbl-pgs-traits",
            [Column("Score"), Column("Trait"), Column("Samples", numeric=True), Column("r", numeric=True),
             Column("r²", numeric=True), Column("AUC", numeric=True)],
            rows,
            caption="Each published score (sum of weight × effect-allele dosage) against the cohort's traits, "
            "in all samples with the trait: correlation for quantitative traits, AUC for binary ones.",
            note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}.",
        ))
    if not sub.blocks:
        return None
    return sub, findings


# --------------------------------------------------------------------------------------------
# Single-cell

_CELLTYPE_KEYS = ("cell_type_counts", "cells_per_type", "n_cells_per_type", "celltype_counts", "cell_types")
_CLUSTER_KEYS = ("cluster_counts", "cells_per_cluster", "n_cells_per_cluster", "cluster_sizes")
_SC_KEYS = [
    ("n_cells_in", "Cells before QC", "count"),
    ("n_cells_out", "Cells after QC", "count"),
    ("n_genes_in", "Genes before filtering", "int"),
    ("n_genes", "Genes after filtering", "int"),
    ("n_genes_out", "Genes after filtering", "int"),
    ("n_donors", "Donors", "count"),
    ("n_hvg", "Highly variable genes", "int"),
    ("n_pcs", "Principal components", "int"),
    ("n_clusters", "Leiden clusters", "int"),
    ("n_cell_types", "Annotated cell types", "int"),
    ("doublet_method", "Doublet detection", "text"),
    ("n_doublets_called", "Doublets called", "count"),
    ("ari", "Adjusted Rand index vs. true cell types", "num"),
    ("ari_all_retained", "Adjusted Rand index, all retained cells", "num"),
    ("annotation_accuracy", "Annotation accuracy vs. truth", "num"),
]
_SC_REMOVED_LABELS = {"low_genes": "Too few genes detected", "high_mito": "High mitochondrial fraction",
                      "doublets": "Doublets"}


def _count_table(ctx: Context, counts: Mapping[str, Any], *, table_id: str, what: str, caption: str) -> Table:
    order = sorted(counts, key=lambda k: (-(to_float(counts[k]) or 0), str(k)))
    rows = [Row([Cell(str(k)), ctx.count(counts[k])]) for k in order]
    return Table(
        table_id,
        [Column(what), Column("Cells", numeric=True)],
        rows,
        caption=caption,
        note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}.",
    )


def _kv_known(ctx: Context, obj: Mapping[str, Any], keys) -> list[tuple[str, str]]:
    items = []
    for key, label, kind in keys:
        if key not in obj:
            continue
        value = obj[key]
        if kind == "count":
            items.append((label, ctx.count_text(value)))
        elif kind == "int":
            items.append((label, fmt_int(value)))
        elif kind == "p":
            items.append((label, fmt_p(value)))
        elif kind == "num":
            items.append((label, fmt_num(value)))
        else:
            items.append((label, _text(value)))
    return items


def singlecell_section(ctx: Context) -> Section | None:
    """``singlecell/summary.json``, ``umap.png``, ``markers.png``, ``qc.png``."""
    sdir = ctx.path("singlecell")
    files = {n: sdir / n for n in ("summary.json", "umap.png", "markers.png", "qc.png")}
    if not any(p.is_file() for p in files.values()):
        return None
    section = Section("single-cell", "Single-cell expression")
    summary = read_json(files["summary.json"]) if files["summary.json"].is_file() else {}
    items = _kv_known(ctx, summary, _SC_KEYS)
    left: list = [KeyValues(items, caption="Single-cell processing summary.")] if items else []
    removed = summary.get("n_removed")
    if isinstance(removed, Mapping) and removed:
        left.append(
            Table(
                "tbl-sc-removed",
                [Column("Filter"), Column("Cells removed", numeric=True)],
                [Row([Cell(_SC_REMOVED_LABELS.get(str(k), _label(k))), ctx.count(v)]) for k, v in removed.items()],
                caption="Cells removed by each QC filter.",
                note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}.",
            )
        )
    side: list = [left] if left else []
    for keys, what, tid, caption in (
        (_CELLTYPE_KEYS, "Cell type", "tbl-sc-celltypes", "Cells per annotated cell type after QC."),
        (_CLUSTER_KEYS, "Cluster", "tbl-sc-clusters", "Cells per Leiden cluster after QC."),
    ):
        counts = next((summary[k] for k in keys if isinstance(summary.get(k), Mapping)), None)
        if counts:
            side.append(_count_table(ctx, counts, table_id=tid, what=what, caption=caption))
    if side:
        section.blocks.append(side[0] if len(side) == 1 else Columns(side))
    figs = [
        make_figure(
            files["qc.png"],
            fig_id="fig-sc-qc",
            caption="Per-cell QC metrics (genes detected, total counts, mitochondrial fraction) "
            "with the filter thresholds.",
            alt="Distributions of per-cell quality-control metrics.",
        ),
        make_figure(
            files["umap.png"],
            fig_id="fig-sc-umap",
            caption="UMAP embedding of the cells after QC, coloured by Leiden cluster / annotated cell type.",
            alt="UMAP scatter plot of single cells coloured by cell type.",
        ),
        make_figure(
            files["markers.png"],
            fig_id="fig-sc-markers",
            caption="Expression of the marker genes used for annotation, per cell type.",
            alt="Dot plot of marker gene expression across cell types.",
        ),
    ]
    figs = [f for f in figs if f]
    if figs:
        section.blocks.append(figs[0] if len(figs) == 1 else FigureGrid(figs))
    n_in, n_out = to_int(summary.get("n_cells_in")), to_int(summary.get("n_cells_out"))
    ctx.facts.update(n_cells_in=n_in, n_cells_out=n_out)
    if n_out is not None:
        text = f"Single-cell: {ctx.count_text(n_out)}"
        text += f" of {ctx.count_text(n_in)} cells passed QC" if n_in is not None else " cells after QC"
        extra = []
        if to_int(summary.get("n_clusters")) is not None:
            extra.append(f"{summary['n_clusters']} Leiden clusters")
        if to_int(summary.get("n_cell_types")) is not None:
            extra.append(f"{summary['n_cell_types']} annotated cell types")
        section.findings.append(text + ("; " + ", ".join(extra) if extra else "") + ".")
    return section


# --------------------------------------------------------------------------------------------
# Spatial


def spatial_section(ctx: Context) -> Section | None:
    """``spatial/summary.json`` and every ``spatial/*.png``."""
    sdir = ctx.path("spatial")
    if not sdir.is_dir():
        return None
    pngs = sorted(p for p in sdir.glob("*.png") if p.is_file())
    summary_path = sdir / "summary.json"
    if not summary_path.is_file() and not pngs:
        return None
    section = Section("spatial", "Spatial expression")
    summary = read_json(summary_path) if summary_path.is_file() else {}
    items = _kv_known(
        ctx,
        summary,
        [
            ("n_spots", "Spots", "int"),
            ("n_genes", "Genes", "int"),
            ("graph", "Neighbour graph", "text"),
            ("n_neighbors", "Neighbours per spot", "int"),
            ("n_perms", "Permutations", "int"),
        ],
    )
    graph = summary.get("graph")
    if isinstance(graph, Mapping):
        # replace the raw mapping by a readable description of the spot graph
        items = [it for it in items if it[0] != "Neighbour graph"]
        kind = _text(graph.get("type"))
        detail = (f"{fmt_int(graph.get('n_neighbors'))} nearest neighbours" if graph.get("n_neighbors") is not None
                  else f"radius {fmt_num(graph.get('radius'))}" if graph.get("radius") is not None else "")
        degree = f", mean degree {fmt_num(graph.get('mean_degree'))}" if graph.get("mean_degree") is not None else ""
        items.append(("Neighbour graph", f"{kind}{': ' + detail if detail else ''}{degree}"))
    fdr = to_float(summary.get("fdr"))
    significant = summary.get("n_significant")
    if isinstance(significant, Mapping):
        fdr_text = f"FDR < {fmt_num(fdr)}" if fdr is not None else "significant"
        for key, label in (("moran_norm", "Moran's I, analytic p"), ("moran_sim", "Moran's I, permutation p"),
                           ("geary_norm", "Geary's C, analytic p")):
            if key in significant:
                items.append((f"Spatially variable features ({label}, {fdr_text})", fmt_int(significant[key])))
    if summary.get("n_features_tested") is not None:
        items.append(("Features tested", fmt_int(summary.get("n_features_tested"))))
    if summary.get("convention"):
        items.append(("Weighting convention", _text(summary.get("convention"))))
    if items:
        section.blocks.append(KeyValues(items, caption="Spatial processing summary and statistics."))
    top = _records_table(ctx, summary.get("top_moran") or [], table_id="tbl-spatial-top", first="feature",
                         caption="Features with the strongest spatial autocorrelation (Moran's I).")
    if top is not None:
        section.blocks.append(top)
    nhood = summary.get("nhood_enrichment") if isinstance(summary.get("nhood_enrichment"), Mapping) else {}
    pairs = [{"cell_type": p.get("a"), "neighbour_type": p.get("b"), "zscore": p.get("zscore")}
             for p in nhood.get("top_pairs") or [] if isinstance(p, Mapping)]
    if pairs:
        key = _text(nhood.get("cell_type_key"))
        source = (" (labels transferred from the single-cell data)" if key == "transferred_label" else "")
        table = _records_table(ctx, pairs[:10], table_id="tbl-spatial-nhood", first="cell_type",
                               caption=f"Cell-type pairs most enriched among spatial neighbours{source}: "
                                       f"z-score of the neighbour count against {fmt_int(nhood.get('n_perms'))} "
                                       "label permutations (squidpy's nhood_enrichment).")
        if table is not None:
            section.blocks.append(table)
    figs = []
    for png in pngs:
        name = png.stem.replace("_", " ").replace(".", " ")
        caption = (
            "The tissue section: spots at their spatial coordinates."
            if png.stem == "spatial"
            else f"Spatial analysis: {name}."
        )
        fig = make_figure(
            png,
            fig_id=f"fig-spatial-{slug(png.stem)}",
            caption=caption,
            alt=f"Spatial plot of the tissue section ({name}).",
        )
        if fig:
            figs.append(fig)
    if figs:
        section.blocks.append(figs[0] if len(figs) == 1 else FigureGrid(figs))
    if to_int(summary.get("n_spots")) is not None:
        section.findings.append(f"Spatial: {fmt_int(summary['n_spots'])} spots analysed.")
    return section


# --------------------------------------------------------------------------------------------
# Genetics integration

_P_NAMES = ("p", "pval", "p_value", "pvalue", "p_val", "mc_p", "mc_pval", "assoc_mcp", "p_empirical")
_Q_NAMES = ("fdr", "q", "qval", "q_value", "padj", "p_adj", "assoc_mcfdr", "fdr_bh")
_COUNT_COLUMN = re.compile(r"^(n|n_cells|ncells|cells|n_cell|count|n_spots)$", re.IGNORECASE)


def _pick(header: list[str], names: tuple[str, ...], contains: str | None = None) -> str | None:
    lower = {h.lower(): h for h in header}
    for name in names:
        if name in lower:
            return lower[name]
    if contains:
        for h in header:
            if contains in h.lower():
                return h
    return None


def _ranking_table(ctx: Context, path: Path, trait: str):
    """(table, top row, cell-type column, p column, FDR column) of a cell-type ranking TSV."""
    header, recs = read_tsv(path)
    type_col = _pick(header, ("cell_type", "celltype", "cell type"), contains="type") or (header[0] if header else None)
    p_col = _pick(header, _P_NAMES, contains="pval")
    q_col = _pick(header, _Q_NAMES, contains="fdr")
    columns = []
    for h in header:
        if h in (p_col, q_col) or h.lower().startswith("p_") or h.lower().endswith("_p"):
            kind = "p"
        elif _COUNT_COLUMN.match(h):
            kind = "count"
        elif h == type_col:
            kind = "text"
        elif all(to_float(r.get(h)) is not None or r.get(h, "").upper() in {"", "NA", "NAN"} for r in recs) and recs:
            kind = "num"
        else:
            kind = "text"
        columns.append((h, kind))
    rows = []
    for rec in recs:
        cells = []
        for h, kind in columns:
            raw = rec.get(h, "")
            if kind == "p":
                nl = neg_log10_p(raw)
                cells.append(Cell(fmt_p(raw), None if nl is None else -nl))
            elif kind == "count":
                cells.append(ctx.count(raw))
            elif kind == "num":
                cells.append(Cell(fmt_num(raw), to_float(raw)))
            else:
                cells.append(Cell(raw))
        rows.append(Row(cells))
    table = Table(
        f"tbl-celltypes-{slug(trait)}",
        [
            Column("Cell type" if h == type_col else _RANKING_LABELS.get(h, _label(h)), numeric=k != "text", title=h)
            for h, k in columns
        ],
        rows,
        caption=f"Cell types ranked by enrichment of {trait}'s genetic signal "
        "(per-cell disease scores aggregated per cell type).",
        note=f"Cell counts below {ctx.min_count} are shown as <{ctx.min_count}."
        if any(k == "count" for _, k in columns)
        else "",
    )
    top = recs[0] if recs else None  # the ranking file is written in rank order
    return table, top, type_col, p_col, q_col


_RANKING_LABELS = {
    "rank": "Rank",
    "n_cells": "Cells",
    "mean_norm_score": "Mean normalised score",
    "assoc_stat": "Association statistic",
    "mc_p": "Monte-Carlo p",
    "mc_z": "Monte-Carlo z",
    "region": "Region",
    "n_spots": "Spots",
    "hetero_mcp": "Heterogeneity p",
    "neighbour_type": "Neighbour type",
}
_GENE_SCORE_KEYS = [
    ("n_genes_annotated", "Genes in the annotation", "int"),
    ("n_genes_tested", "Genes tested", "int"),
    ("n_snps_used", "Variants used", "int"),
    ("ld_samples", "LD reference samples", "count"),
    ("window_kb", "Gene window (kb)", "num"),
    ("test", "Gene test", "text"),
]
_INTEGRATION_KEYS = [
    ("n_genes_used", "Disease genes used", "int"),
    ("n_ctrl", "Control gene sets", "int"),
    ("n_cells", "Cells scored", "count"),
    ("n_cells_mc_p_below_0.05", "Cells with Monte-Carlo p < 0.05", "count"),
    ("top_cell_type", "Top cell type", "text"),
    ("top_cell_type_mc_p", "Top cell type, Monte-Carlo p", "p"),
]
_SPATIAL_SCORE_KEYS = [
    ("n_spots", "Spots scored", "int"),
    ("graph", "Neighbour graph", "text"),
    ("morans_i", "Moran's I of the disease score", "num"),
    ("morans_expected", "Moran's I expected under no autocorrelation", "num"),
    ("morans_z", "Moran's I z", "num"),
    ("morans_p_analytic", "Moran's I p (analytic)", "p"),
    ("morans_p_permutation", "Moran's I p (permutation)", "p"),
    ("gearys_c", "Geary's C of the disease score", "num"),
    ("gearys_p_analytic", "Geary's C p (analytic)", "p"),
    ("gearys_p_permutation", "Geary's C p (permutation)", "p"),
    ("n_perms", "Permutations", "int"),
    ("top_region", "Top region", "text"),
    ("region_source", "Regions from", "text"),
]


def _records_table(ctx: Context, records: list, *, table_id: str, caption: str, first: str) -> Table | None:
    """A table of a JSON list of flat records (columns of the first record; counts suppressed)."""
    records = [r for r in records if isinstance(r, Mapping)]
    if not records:
        return None
    columns = [k for k in records[0] if not isinstance(records[0][k], (Mapping, list))]

    def holds_text(column: str) -> bool:
        """Text when some value is a string that is not a number (names, labels)."""
        for rec in records:
            value = rec.get(column)
            if isinstance(value, str) and value.strip() and value.strip().lower() not in ("nan", "na", "n/a"):
                try:
                    float(value)
                except ValueError:
                    return True
        return False

    kinds = {}
    for c in columns:
        if c == first or c in ("gene", "cell_type", "region") or holds_text(c):
            kinds[c] = "text"
        elif c.lower() in _P_NAMES or c.lower().endswith("_p") or c.lower().startswith("pval"):
            kinds[c] = "p"
        elif _COUNT_COLUMN.match(c):
            kinds[c] = "count"
        else:
            kinds[c] = "num"
    rows = []
    for rec in records:
        cells = []
        for c in columns:
            value = rec.get(c)
            if kinds[c] == "p":
                nl = neg_log10_p(value)
                cells.append(Cell(fmt_p(value), None if nl is None else -nl))
            elif kinds[c] == "count":
                cells.append(ctx.count(value))
            elif kinds[c] == "num":
                cells.append(Cell(fmt_num(value), to_float(value)))
            else:
                cells.append(Cell(_text(value)))
        rows.append(Row(cells))
    labels = {**_RANKING_LABELS, "gene": "Gene", "z": "z", "n_snps": "Variants", "weight": "Weight",
              "feature": "Feature", "I": "Moran's I", "C": "Geary's C", "pval_norm": "p (analytic)",
              "pval_sim": "p (permutation)"}
    return Table(
        table_id,
        [Column(labels.get(c, _label(c)), numeric=kinds[c] != "text", title=c) for c in columns],
        rows,
        caption=caption,
        note=f"Counts below {ctx.min_count} are shown as <{ctx.min_count}."
        if any(k == "count" for k in kinds.values())
        else "",
    )


def integration_section(ctx: Context) -> Section | None:
    """Per trait: ``integration/{trait}.summary.json``, ``.celltype_ranking.tsv``, ``.png``, and the
    spatial part from ``.spatial.json`` (or the summary's ``spatial`` key) and ``.spatial.png``."""
    idir = ctx.path("integration")
    traits = traits_with(idir, (".summary.json", ".celltype_ranking.tsv", ".spatial.json"))
    if not traits:
        return None
    section = Section("integration", "Genetics × single-cell integration")
    for trait in traits:
        sub = Subsection(f"integration-{slug(trait)}", trait)
        spath = idir / f"{trait}.summary.json"
        summary = read_json(spath) if spath.is_file() else {}
        gene_scores = summary.get("gene_scores") if isinstance(summary.get("gene_scores"), Mapping) else {}
        items = _kv_known(ctx, gene_scores, _GENE_SCORE_KEYS) + _kv_known(ctx, summary, _INTEGRATION_KEYS)
        side: list = []
        if items:
            side.append(KeyValues(items, caption=f"From {trait}'s GWAS to gene scores and per-cell disease scores."))
        top = type_col = p_col = q_col = None
        n_types = 0
        rpath = idir / f"{trait}.celltype_ranking.tsv"
        if rpath.is_file():
            table, top, type_col, p_col, q_col = _ranking_table(ctx, rpath, trait)
            n_types = len(table.rows)
            side.append(table)
        if side:
            sub.blocks.append(side[0] if len(side) == 1 else Columns(side))
        genes = summary.get("top_genes")
        if isinstance(genes, list):
            table = _records_table(
                ctx,
                genes,
                table_id=f"tbl-genes-{slug(trait)}",
                caption=f"Genes most associated with {trait} (MAGMA-style gene test).",
                first="gene",
            )
            if table:
                sub.blocks.append(table)
        fig = make_figure(
            idir / f"{trait}.png",
            fig_id=f"fig-integration-{slug(trait)}",
            caption=f"Association of each cell type with {trait}'s disease genes (scDRS per-cell "
            "scores against matched control gene sets) and, beside it, the cells' UMAP coloured by the "
            "normalised disease score.",
            alt=f"Chart of cell-type association with {trait} and UMAP of cells by disease score.",
        )
        if fig:
            sub.blocks.append(fig)
        spatial = summary.get("spatial") if isinstance(summary.get("spatial"), Mapping) else {}
        spatial_path = idir / f"{trait}.spatial.json"
        if spatial_path.is_file():
            spatial = read_json(spatial_path)
            if isinstance(spatial.get("spatial"), Mapping):
                spatial = spatial["spatial"]
        spatial_fig = make_figure(
            idir / f"{trait}.spatial.png",
            fig_id=f"fig-integration-spatial-{slug(trait)}",
            caption=f"Disease scores for {trait} on the tissue section; spatial autocorrelation by Moran's I.",
            alt=f"Spatial map of disease scores for {trait}.",
        )
        spatial_items = _kv_known(ctx, spatial, _SPATIAL_SCORE_KEYS)
        spatial_side: list = []
        if spatial_items:
            spatial_side.append(KeyValues(spatial_items, caption=f"Spatial pattern of {trait}'s disease score."))
        regions = spatial.get("regions")
        if isinstance(regions, list):
            table = _records_table(
                ctx,
                regions,
                table_id=f"tbl-regions-{slug(trait)}",
                caption=f"Tissue regions ranked by association with {trait}.",
                first="region",
            )
            if table:
                spatial_side.append(table)
        if spatial_fig and spatial_side:
            sub.blocks.append(Columns([spatial_fig, spatial_side]))
        else:
            sub.blocks += ([spatial_fig] if spatial_fig else []) + spatial_side
        section.subsections.append(sub)
        finding = _integration_finding(trait, summary, top, type_col, p_col, q_col, n_types)
        if finding:
            section.findings.append(finding)
        if to_float(spatial.get("morans_i")) is not None:
            p_perm = spatial.get("morans_p_permutation", spatial.get("morans_p_analytic"))
            text = f"{trait}: the disease score is spatially autocorrelated (Moran's I = {fmt_num(spatial['morans_i'])}"
            text += f", p = {fmt_p(p_perm)})" if p_perm is not None else ")"
            if isinstance(spatial.get("top_region"), str):
                text += f"; highest in region {spatial['top_region']}"
            section.findings.append(text + ".")
    return section


def _integration_finding(trait, summary, top, type_col, p_col, q_col, n_types) -> str | None:
    """One sentence on the top cell type: "enriched" only when it is significant (FDR < 0.05, or
    without an FDR column p below 0.05 Bonferroni-corrected over the cell types)."""
    if top is not None and type_col:
        cell_type = top.get(type_col, "?")
        q = to_float(top.get(q_col)) if q_col else None
        p = neg_log10_p(top.get(p_col)) if p_col else None
        if q is not None:
            stat, significant, rule = f"FDR = {fmt_p(top.get(q_col))}", q < 0.05, "FDR < 0.05 needed"
        elif p is not None:
            alpha = 0.05 / max(n_types, 1)
            stat, significant = f"p = {fmt_p(top.get(p_col))}", p > -math.log10(alpha)
            rule = f"p < {fmt_p(alpha)} needed after correction for {n_types} cell types"
        else:
            stat, significant, rule = "", True, ""
        if not significant:
            return f"{trait}: the strongest signal is in {cell_type} cells ({stat}), not significant ({rule})."
        return f"{trait}: the trait's genetic signal is enriched in {cell_type} cells" + (f" ({stat})." if stat else ".")
    if isinstance(summary.get("top_cell_type"), str):
        return f"{trait}: the trait's genetic signal is strongest in {summary['top_cell_type']} cells."
    return None


# --------------------------------------------------------------------------------------------
# Cell-type eQTL


def cell_eqtl_section(ctx: Context) -> Section | None:
    """``cell_eqtl/summary.json`` (aggregate: counts of tests, the significant eQTL) and
    ``cell_eqtl/boxplots.png`` (pseudobulk expression by genotype group, groups of < 3 donors
    hidden). No individual-level values are read."""
    edir = ctx.path("cell_eqtl")
    spath, png = edir / "summary.json", edir / "boxplots.png"
    if not spath.is_file() and not png.is_file():
        return None
    section = Section("cell-eqtl", "Cell-type eQTL")
    summary = read_json(spath) if spath.is_file() else {}
    items = _kv_known(ctx, summary, [
        ("n_variants_requested", "Variants requested", "int"),
        ("n_variants_found", "Variants in the genotypes", "int"),
        ("n_donors_used", "Donors with genotypes and cells", "count"),
        ("n_tests", "Tests (cell type x variant x gene)", "int"),
        ("n_significant", "Significant eQTL", "int"),
    ])
    if summary.get("fdr_threshold") is not None:
        items.append(("FDR threshold (Benjamini-Hochberg, all tests)", fmt_num(summary["fdr_threshold"])))
    covariates = summary.get("covariates")
    if isinstance(covariates, list):
        items.append(("Covariates", ", ".join(map(str, covariates)) or "none"))
    params = summary.get("parameters") if isinstance(summary.get("parameters"), Mapping) else {}
    if params.get("window_kb") is not None:
        items.append(("Window around the TSS", f"{fmt_num(params['window_kb'])} kb"))
    if params.get("pseudobulk"):
        items.append(("Pseudobulk", _text(params["pseudobulk"])))
    if items:
        section.blocks.append(KeyValues(items, caption="Pseudobulk cell-type eQTL of the GWAS lead variants "
                                        "(and the configured variants) with the genes near them."))
    sig = summary.get("significant") or []
    table = _records_table(ctx, sig[:20], table_id="tbl-cell-eqtl", first="variant_id",
                           caption="Significant cell-type eQTL (up to 20, by p-value); beta is per copy of "
                                   "the effect allele on log1p(mean counts per 10,000).")
    if table is not None:
        section.blocks.append(table)
    fig = make_figure(png, fig_id="fig-cell-eqtl", caption="Pseudobulk expression of the top eQTL genes by "
                      "genotype, per cell type (genotype groups of fewer than 3 donors hidden).",
                      alt="Box plots of gene expression by genotype in each cell type.")
    if fig:
        section.blocks.append(fig)
    n_sig = to_int(summary.get("n_significant"))
    if n_sig is not None:
        if sig:
            best = sig[0]
            section.findings.append(f"Cell-type eQTL: {n_sig} significant of {fmt_int(summary.get('n_tests'))} "
                                    f"tests; strongest {_text(best.get('variant_id'))} -> {_text(best.get('gene'))} "
                                    f"in {_text(best.get('cell_type'))} (p = {fmt_p(best.get('p_value'))}).")
        else:
            section.findings.append(f"Cell-type eQTL: none significant of {fmt_int(summary.get('n_tests'))} tests.")
    return section
