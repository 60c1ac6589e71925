"""The per-cohort export bundle: what may leave the cohort, in one reproducible ``.tar.gz``.

:func:`export_bundle` reads ``results/{cohort}/`` and writes ``BUNDLE.tar.gz`` holding only
aggregate results (paths inside the tar; a member is left out when its source is absent):

``manifest.json``
    First member: ``format``, ``cohort``, ``cohortflow_version``, ``created``, ``filters`` (the
    rules applied and what they removed) and ``members`` (every other member: ``path``, ``size``
    in bytes, ``sha256``).
``gwas/{trait}.tsv.gz`` (+ ``gwas/{trait}.tsv.gz-meta.yaml``)
    The GWAS-SSF summary statistics (with PCs) without the variants whose minor allele count
    ``2 * n * min(eaf, 1 - eaf)`` (``n`` and ``effect_allele_frequency`` columns) is below
    ``min_mac``, analysed in fewer than ``min_cell_count`` samples, or with either value missing.
    Kept lines are unchanged and written by :class:`cohortflow.io.sumstats.SumstatsWriter`, so a
    file nothing is removed from keeps its bytes. The sidecar is copied.
``gwas/{trait}.summary.json``, ``gwas/{trait}.leads.tsv``
    GWAS summary; lead loci (a lead whose variant was removed is dropped, and so is a
    ``top_hit`` of a removed variant).
``qc/qc.summary.json``, ``qc/qc.pca.json``, ``qc/qc.eigenvalues.tsv``
    The QC funnel and the PCA's aggregate figures (never per-sample QC, PCs or kinship).
``prs/{trait}.performance.tsv``, ``.deciles.tsv``, ``.groups.tsv``, ``.candidates.tsv``,
``prs/pgs.match.tsv``, ``prs/pgs.summary.json``
    PRS and published-score performance (never scores, splits or weights).
``integration/{trait}.celltype_ranking.tsv``, ``.gene_scores.tsv``, ``.summary.json``, ``.spatial.json``
    Cell-type and gene association (never per-cell or per-spot scores).
``cell_eqtl/eqtl.tsv``, ``cell_eqtl/summary.json``
    Cell-type eQTL with the same minor-allele-count rule on ``n_donors`` and
    ``effect_allele_frequency`` (and the summary's ``significant``/``plotted`` lists reduced to
    the tests kept).
``singlecell/summary.json``, ``spatial/summary.json``
    Single-cell and spatial summaries (never ``.h5ad``).
``report.html``
    The report rebuilt with ``show_sample_ids=False`` and ``sample_level_tables=False`` (no
    per-sample table or figure; remaining IDs pseudonymised), without the ``demo`` config section
    (it names planted samples) and without a command line, so the bytes do not depend on how the
    export was started.

Small counts: in every table and JSON member other than the summary statistics, a count of
individuals or cells (a count-like column or key, :func:`cohortflow.export.disclosure.is_count_name`)
with 0 < x < ``min_cell_count`` is replaced by the text ``<{min_cell_count}``; rows are kept.
The number replaced per member is in the manifest.

Reproducible: members in a fixed order (manifest first, then sorted paths), tar headers with
mtime 0, uid/gid 0, no user names, mode 0644, gzip with mtime 0 and no file name; ``created``
is the newest modification time of the source files (or the ``created`` argument). The same
results, options and software give the same bytes.

Then the disclosure check (:mod:`cohortflow.export.disclosure`) runs on the finished bundle with
the cohort's sample IDs; any finding raises :class:`~cohortflow.export.disclosure.DisclosureError`
and no bundle is left at ``out`` (also not an older one).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

import cohortflow
from cohortflow.errors import CohortflowError, ConfigError, InputFormatError
from cohortflow.export.disclosure import DisclosureError, check_bundle, is_count_name, small_count
from cohortflow.io.atomic import atomic_path, write_json_atomic
from cohortflow.io.sumstats import SSF_COLUMNS, SumstatsWriter

log = logging.getLogger(__name__)

FORMAT = "cohortflow export bundle 1"
MAC_RULE = "2 * n * min(effect_allele_frequency, 1 - effect_allele_frequency)"
DEFAULT_MIN_MAC = 20

_PER_TRAIT = (
    ("gwas", ".summary.json"), ("gwas", ".leads.tsv"),
    ("prs", ".performance.tsv"), ("prs", ".deciles.tsv"), ("prs", ".groups.tsv"), ("prs", ".candidates.tsv"),
    ("integration", ".celltype_ranking.tsv"), ("integration", ".gene_scores.tsv"),
    ("integration", ".summary.json"), ("integration", ".spatial.json"),
)
_PER_COHORT = ("qc/qc.summary.json", "qc/qc.pca.json", "qc/qc.eigenvalues.tsv", "prs/pgs.match.tsv",
               "prs/pgs.summary.json", "cell_eqtl/summary.json", "singlecell/summary.json", "spatial/summary.json")
_NUMERIC_RE2 = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def gwas_traits(results_dir: str | Path) -> list[str]:
    """Traits with GWAS-SSF summary statistics ``gwas/{trait}.tsv.gz`` (not ``.nopcs``), sorted."""
    gdir = Path(results_dir) / "gwas"
    if not gdir.is_dir():
        return []
    return sorted(p.name[: -len(".tsv.gz")] for p in gdir.glob("*.tsv.gz")
                  if p.is_file() and not p.name.endswith(".nopcs.tsv.gz") and len(p.name) > len(".tsv.gz"))


def cohort_sample_ids(results_dir: str | Path) -> tuple[set[str], set[int]]:
    """The cohort's sample IDs and sample counts, for the disclosure check: FIDs (other than
    ``0``) and IIDs of ``qc/qc.fam`` and ``genotypes/raw.fam``, and the samples named by the
    alignment QC (``alignment_qc/summary.tsv``, ``identity.tsv``); counts = the ``.fam`` sizes."""
    results_dir = Path(results_dir)
    ids: set[str] = set()
    counts: set[int] = set()
    for fam in (results_dir / "qc" / "qc.fam", results_dir / "genotypes" / "raw.fam"):
        if not fam.is_file():
            continue
        n = 0
        with open(fam, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 2:
                    continue
                n += 1
                ids.add(fields[1])
                if fields[0] != "0":
                    ids.add(fields[0])
        counts.add(n)
    for name, columns in (("summary.tsv", ("sample", "best_match")),
                          ("identity.tsv", ("claimed_sample", "best_other_sample"))):
        path = results_dir / "alignment_qc" / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().rstrip("\n").split("\t")
            wanted = [header.index(c) for c in columns if c in header]
            for line in fh:
                fields = line.rstrip("\n").split("\t")
                ids.update(fields[i] for i in wanted if i < len(fields) and fields[i] not in ("", "NA", "."))
    return ids, counts


def export_bundle(
    *,
    cohort_results: str | Path,
    out: str | Path,
    cohort: str | None = None,
    min_mac: int = DEFAULT_MIN_MAC,
    min_cell_count: int = 5,
    config: Mapping[str, Any] | None = None,
    created: str | _dt.datetime | None = None,
    git_commit: str | None = None,
) -> dict[str, Any]:
    """Write the cohort's export bundle ``out`` (``.tar.gz``; contents in the module docstring)
    and return its manifest.

    ``cohort_results`` is ``results/{cohort}`` (``cohort`` defaults to its folder name); ``min_mac``
    the minor allele count below which variants are removed; ``min_cell_count`` the smallest count
    of individuals or cells shown (config ``privacy.min_cell_count``); ``config`` the workflow
    configuration recorded in the report; ``created`` the date recorded (default: the newest
    modification time of the source files); ``git_commit`` shown in the report.

    Raises :class:`~cohortflow.errors.CohortflowError` (one line) for a missing results folder or
    one without GWAS summary statistics, and
    :class:`~cohortflow.export.disclosure.DisclosureError` when the disclosure check finds
    anything; then no file is left at ``out``.
    """
    results = Path(cohort_results)
    out = Path(out)
    if not results.is_dir():
        raise CohortflowError("cohort results folder does not exist", path=results)
    for name, value in (("min_mac", min_mac), ("min_cell_count", min_cell_count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    traits = gwas_traits(results)
    if not traits:
        raise CohortflowError("no GWAS summary statistics (gwas/{trait}.tsv.gz): nothing to export",
                              path=results / "gwas")
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise CohortflowError("the bundle's name must end in .tar.gz", path=out)
    cohort = cohort or results.resolve().name
    sample_ids, n_samples = cohort_sample_ids(results)

    sources = [results / "gwas" / f"{t}{suffix}" for t in traits for suffix in (".tsv.gz", ".tsv.gz-meta.yaml")]
    sources += [results / folder / f"{t}{suffix}" for t in traits for folder, suffix in _PER_TRAIT]
    sources += [results / rel for rel in (*_PER_COHORT, "cell_eqtl/eqtl.tsv")]
    sources = [p for p in sources if p.is_file()]
    created_text = _created_text(created, sources)

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".staging", dir=out.parent) as tmp:
        stage = Path(tmp) / "bundle"
        filters: dict[str, Any] = {
            "min_mac": min_mac, "mac_rule": MAC_RULE, "min_cell_count": min_cell_count,
            "gwas": {}, "cell_eqtl": None, "suppressed_values": {},
            "rule": (f"variants with {MAC_RULE} < min_mac, n < min_cell_count or either missing are removed; "
                     f"counts of individuals or cells 0 < x < min_cell_count are written <{min_cell_count}"),
        }
        removed_leads: dict[str, set[str]] = {}
        for trait in traits:
            src = results / "gwas" / f"{trait}.tsv.gz"
            leads = _lead_ids(results / "gwas" / f"{trait}.leads.tsv")
            stats = filter_sumstats(src, stage / "gwas" / f"{trait}.tsv.gz", min_mac=min_mac,
                                    min_n=min_cell_count, watch=leads)
            removed_leads[trait] = set(stats.pop("watched_removed"))
            filters["gwas"][trait] = stats
            log.info("gwas/%s.tsv.gz: %d of %d variants kept", trait, stats["variants_out"], stats["variants_in"])
            _copy_if(results / "gwas" / f"{trait}.tsv.gz-meta.yaml", stage / "gwas" / f"{trait}.tsv.gz-meta.yaml")
        kept_eqtl = None
        eqtl_src = results / "cell_eqtl" / "eqtl.tsv"
        if eqtl_src.is_file():
            filters["cell_eqtl"], kept_eqtl = _filter_eqtl(eqtl_src, stage / "cell_eqtl" / "eqtl.tsv",
                                                           min_mac=min_mac, min_n=min_cell_count)
        for trait in traits:
            for folder, suffix in _PER_TRAIT:
                _copy_if(results / folder / f"{trait}{suffix}", stage / folder / f"{trait}{suffix}")
            _drop_removed_leads(stage / "gwas", trait, removed_leads[trait])
        for rel in _PER_COHORT:
            _copy_if(results / rel, stage / rel)
        if kept_eqtl is not None and (stage / "cell_eqtl" / "summary.json").is_file():
            _reduce_eqtl_summary(stage / "cell_eqtl" / "summary.json", kept_eqtl)
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            rel = path.relative_to(stage).as_posix()
            if rel.startswith("gwas/") and rel.endswith(".tsv.gz"):
                continue  # summary statistics: filtered above (n >= min_cell_count)
            n = suppress_small_counts(path, min_cell_count)
            if n:
                filters["suppressed_values"][rel] = n
        _rebuild_report(results, stage / "report.html", cohort=cohort, config=config or {},
                        min_cell_count=min_cell_count, created=created_text, git_commit=git_commit)

        members = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT,
            "cohort": cohort,
            "cohortflow_version": cohortflow.__version__,
            "created": created_text,
            "filters": filters,
            "members": [{"path": rel, "size": (stage / rel).stat().st_size, "sha256": _sha256(stage / rel)}
                        for rel in members],
        }
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        try:
            with atomic_path(out) as tmp_out:
                write_tar(tmp_out, [("manifest.json", manifest_bytes)] + [(rel, stage / rel) for rel in members])
                findings = check_bundle(tmp_out, min_cell_count=min_cell_count, sample_ids=sample_ids,
                                        n_samples=n_samples)
                if findings:
                    raise DisclosureError(out, findings)
        except DisclosureError:
            if out.exists():
                out.unlink()  # an older bundle at this path is not this results' bundle
            raise
    log.info("%s: %d members, disclosure check passed", out, len(members) + 1)
    return manifest


# --------------------------------------------------------------------------------------------
# Summary statistics and eQTL: the minor-allele-count rule


def _numbers(column: pa.Array) -> pa.Array:
    """Float values of a text column; null where the text is not a number (``NA``, empty)."""
    numeric = pc.match_substring_regex(column, _NUMERIC_RE2)
    return pc.cast(pc.if_else(numeric, column, pa.scalar(None, pa.string())), pa.float64())


def _mac_masks(n_text: pa.Array, eaf_text: pa.Array, *, min_mac: int, min_n: int) -> tuple[pa.Array, ...]:
    """(known: n and frequency given, mac_ok: MAC >= min_mac, n_ok: n >= min_n), nulls false."""
    n, eaf = _numbers(n_text), _numbers(eaf_text)
    known = pc.and_(pc.is_valid(n), pc.is_valid(eaf))
    mac = pc.multiply(pc.multiply(2.0, n), pc.min_element_wise(eaf, pc.subtract(1.0, eaf)))
    # a small tolerance: 2 * n * eaf is a whole number and eaf is written with 6 significant digits
    mac_ok = pc.fill_null(pc.greater_equal(mac, float(min_mac) - 1e-6 * max(min_mac, 1)), False)
    n_ok = pc.fill_null(pc.greater_equal(n, float(min_n)), False)
    return known, mac_ok, n_ok


def filter_sumstats(src: str | Path, dst: str | Path, *, min_mac: int, min_n: int = 0,
                    watch: Iterable[str] = ()) -> dict[str, Any]:
    """Copy GWAS-SSF ``src`` to ``dst`` without the variants whose minor allele count
    (``2 * n * min(eaf, 1 - eaf)``) is below ``min_mac``, analysed in fewer than ``min_n``
    samples, or with ``n`` or ``effect_allele_frequency`` missing. Kept lines are copied as text.

    Returns ``variants_in``, ``variants_out``, ``removed_mac`` (MAC below ``min_mac``),
    ``removed_small_n`` (n below ``min_n``, MAC fine), ``removed_missing`` (n or frequency
    missing) and ``watched_removed`` (the IDs of ``watch`` among the removed variants).
    """
    src = Path(src)
    with gzip.open(src, "rt", encoding="utf-8") if src.name.endswith(".gz") else open(src, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    missing = [c for c in ("n", "effect_allele_frequency", "variant_id") if c not in header]
    if missing:
        raise InputFormatError(f"not GWAS-SSF: missing column(s) {', '.join(missing)} (columns: "
                               f"{' '.join(SSF_COLUMNS)})", path=src)
    watch = pa.array(sorted(set(watch)), type=pa.string())
    counts = {"variants_in": 0, "variants_out": 0, "removed_mac": 0, "removed_small_n": 0, "removed_missing": 0}
    watched: set[str] = set()
    names = [f"c{i}" for i in range(len(header))]
    i_n, i_eaf, i_id = header.index("n"), header.index("effect_allele_frequency"), header.index("variant_id")
    writer = SumstatsWriter(dst)
    try:
        writer.write_text(("\t".join(header) + "\n").encode())
        reader = pacsv.open_csv(
            src,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        for batch in reader:
            known, mac_ok, n_ok = _mac_masks(batch.column(i_n), batch.column(i_eaf), min_mac=min_mac, min_n=min_n)
            keep = pc.and_(mac_ok, n_ok)
            counts["variants_in"] += batch.num_rows
            counts["variants_out"] += pc.sum(keep).as_py() or 0
            counts["removed_missing"] += batch.num_rows - (pc.sum(known).as_py() or 0)
            counts["removed_mac"] += pc.sum(pc.and_(known, pc.invert(mac_ok))).as_py() or 0
            counts["removed_small_n"] += pc.sum(pc.and_(mac_ok, pc.invert(n_ok))).as_py() or 0
            if len(watch):
                removed_ids = pc.filter(batch.column(i_id), pc.invert(keep))
                watched.update(pc.filter(removed_ids, pc.is_in(removed_ids, value_set=watch)).to_pylist())
            kept = pa.Table.from_batches([batch]).filter(keep)
            if kept.num_rows:
                buf = io.BytesIO()
                pacsv.write_csv(kept, buf, pacsv.WriteOptions(include_header=False, delimiter="\t",
                                                              quoting_style="none"))
                writer.write_text(buf.getvalue())
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        writer.abort(exc)
        raise InputFormatError(f"cannot read summary statistics ({str(exc).splitlines()[0]})", path=src) from None
    except BaseException as exc:
        writer.abort(exc)
        raise
    writer.close()
    return {**counts, "watched_removed": sorted(watched)}


def _filter_eqtl(src: Path, dst: Path, *, min_mac: int, min_n: int) -> tuple[dict[str, int], set[tuple[str, ...]]]:
    """``cell_eqtl/eqtl.tsv`` without tests whose minor allele count among the donors
    (``2 * n_donors * min(eaf, 1 - eaf)``) is below ``min_mac`` or with fewer than ``min_n``
    donors; returns the counts and the kept (cell_type, variant_id, gene)."""
    with open(src, encoding="utf-8") as fh:
        header_line = fh.readline()
        header = header_line.rstrip("\r\n").split("\t")
        need = ("cell_type", "variant_id", "gene", "n_donors", "effect_allele_frequency")
        missing = [c for c in need if c not in header]
        if missing:
            raise InputFormatError(f"missing column(s) {', '.join(missing)}", path=src)
        idx = {c: header.index(c) for c in need}
        lines, kept = [header_line], set()
        n_in = 0
        for line in fh:
            fields = line.rstrip("\r\n").split("\t")
            n_in += 1
            try:
                n = float(fields[idx["n_donors"]])
                eaf = float(fields[idx["effect_allele_frequency"]])
            except (ValueError, IndexError):
                continue
            if not (math.isfinite(n) and math.isfinite(eaf)):
                continue
            if 2 * n * min(eaf, 1 - eaf) >= min_mac - 1e-6 * max(min_mac, 1) and n >= min_n:
                lines.append(line)
                kept.add(tuple(fields[idx[c]] for c in ("cell_type", "variant_id", "gene")))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(lines), encoding="utf-8")
    return {"tests_in": n_in, "tests_out": len(lines) - 1, "tests_removed": n_in - (len(lines) - 1)}, kept


def _reduce_eqtl_summary(path: Path, kept: set[tuple[str, ...]]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    pairs = {(v, g) for _, v, g in kept}
    changed = False
    if isinstance(data.get("significant"), list):
        rows = [r for r in data["significant"] if not isinstance(r, dict)
                or (str(r.get("cell_type")), str(r.get("variant_id")), str(r.get("gene"))) in kept]
        changed |= len(rows) != len(data["significant"])
        data["significant"] = rows
    if isinstance(data.get("plotted"), list):
        rows = [r for r in data["plotted"] if not isinstance(r, dict)
                or (str(r.get("variant_id")), str(r.get("gene"))) in pairs]
        changed |= len(rows) != len(data["plotted"])
        data["plotted"] = rows
    if changed:
        write_json_atomic(path, data)


def _lead_ids(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if "variant_id" not in header:
            return []
        i = header.index("variant_id")
        return [f[i] for f in (line.rstrip("\r\n").split("\t") for line in fh) if len(f) > i]


def _drop_removed_leads(gdir: Path, trait: str, removed: set[str]) -> None:
    if not removed:
        return
    leads = gdir / f"{trait}.leads.tsv"
    if leads.is_file():
        lines = leads.read_text(encoding="utf-8").splitlines(keepends=True)
        i = lines[0].rstrip("\r\n").split("\t").index("variant_id")
        leads.write_text("".join([lines[0]] + [ln for ln in lines[1:] if ln.rstrip("\r\n").split("\t")[i] not in removed]),
                         encoding="utf-8")
    summary = gdir / f"{trait}.summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        top = data.get("top_hit")
        if isinstance(top, dict) and str(top.get("variant_id")) in removed:
            data["top_hit"] = None
            write_json_atomic(summary, data)


# --------------------------------------------------------------------------------------------
# Small counts


def suppress_small_counts(path: str | Path, min_cell_count: int) -> int:
    """Rewrite a table (``.tsv``) or JSON file in place with every count of individuals or cells
    0 < x < ``min_cell_count`` (count-like column or key) written ``<{min_cell_count}``; returns
    how many were replaced (0: the file is untouched)."""
    path = Path(path)
    if min_cell_count <= 1:
        return 0
    marker = f"<{min_cell_count}"
    if path.name.endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        replaced = [0]

        def walk(node: Any, key: str | None) -> Any:
            if isinstance(node, dict):
                out = {}
                for k, v in node.items():
                    child = key if (key is not None and is_count_name(key) and not isinstance(v, (dict, list))
                                    and not is_count_name(str(k))) else str(k)
                    out[k] = walk(v, child)
                return out
            if isinstance(node, list):
                return [walk(v, key) for v in node]
            if key is not None and is_count_name(key) and small_count(node, min_cell_count):
                replaced[0] += 1
                return marker
            return node

        data = walk(data, None)
        if replaced[0]:
            write_json_atomic(path, data)
        return replaced[0]
    if path.name.endswith(".tsv"):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        if not lines:
            return 0
        header = lines[0].rstrip("\r\n").split("\t")
        cols = [i for i, c in enumerate(header) if is_count_name(c)]
        if not cols:
            return 0
        replaced = 0
        for j in range(1, len(lines)):
            body = lines[j].rstrip("\r\n")
            end = lines[j][len(body):]
            fields = body.split("\t")
            hit = False
            for i in cols:
                if i < len(fields) and small_count(fields[i], min_cell_count):
                    fields[i] = marker
                    replaced += 1
                    hit = True
            if hit:
                lines[j] = "\t".join(fields) + end
        if replaced:
            path.write_text("".join(lines), encoding="utf-8")
        return replaced
    return 0


# --------------------------------------------------------------------------------------------
# Report, tar, helpers


def _rebuild_report(results: Path, out_html: Path, *, cohort: str, config: Mapping[str, Any], min_cell_count: int,
                    created: str, git_commit: str | None) -> None:
    from cohortflow.report.api import build_report

    shown = {k: v for k, v in dict(config).items() if k != "demo"}  # the demo's simulation names planted samples
    build_report(results_dir=results, cohort=cohort, out_html=out_html, config=shown, inputs=(), command_line="",
                 git_commit=git_commit, show_sample_ids=False, sample_level_tables=False,
                 min_cell_count=max(min_cell_count, 1), generated_at=created)


def write_tar(path: str | Path, members: list[tuple[str, Path | bytes]]) -> None:
    """A reproducible ``.tar.gz`` of ``members`` (name, file or bytes) in the given order:
    mtime 0, uid/gid 0, no user or group names, mode 0644; gzip mtime 0 without a file name."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in members:
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
                info.type = tarfile.REGTYPE
                if isinstance(content, bytes):
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                else:
                    info.size = content.stat().st_size
                    with open(content, "rb") as fh:
                        tar.addfile(info, fh)


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of a bundle."""
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            return json.loads(member.read())
    except KeyError:
        raise CohortflowError("bundle has no manifest.json", path=bundle) from None
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise CohortflowError(f"cannot read the bundle's manifest ({exc})", path=bundle) from None


def verify_manifest(bundle: str | Path) -> list[str]:
    """Problems of a bundle against its manifest (a member missing, unlisted, or with another size
    or SHA-256); empty when every member matches."""
    manifest = read_manifest(bundle)
    listed = {m["path"]: m for m in manifest.get("members", [])}
    problems, seen = [], set()
    with tarfile.open(bundle, "r:gz") as tar:
        for info in tar:
            if info.name == "manifest.json" or not info.isfile():
                continue
            seen.add(info.name)
            entry = listed.get(info.name)
            if entry is None:
                problems.append(f"{info.name}: not in the manifest")
                continue
            digest = hashlib.sha256(tar.extractfile(info).read()).hexdigest()
            if info.size != entry.get("size") or digest != entry.get("sha256"):
                problems.append(f"{info.name}: size or SHA-256 differs from the manifest")
    problems += [f"{name}: in the manifest but not in the bundle" for name in sorted(set(listed) - seen)]
    return problems


def _remove_stale_staging(out: Path) -> None:
    """Delete staging folders of ``out`` left by an export that was killed (one writer per
    bundle at a time, as for cohortflow.io.atomic's temporaries)."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.staging$")
    for entry in out.parent.iterdir():
        if entry.is_dir() and not entry.is_symlink() and pattern.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _copy_if(src: Path, dst: Path) -> bool:
    if not src.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _created_text(created: str | _dt.datetime | None, sources: list[Path]) -> str:
    if isinstance(created, str) and created:
        return created
    if isinstance(created, _dt.datetime):
        when = created
    else:
        newest = max((os.stat(p).st_mtime for p in sources), default=0.0)
        when = _dt.datetime.fromtimestamp(math.floor(newest), tz=_dt.timezone.utc)
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["DEFAULT_MIN_MAC", "FORMAT", "MAC_RULE", "cohort_sample_ids", "export_bundle", "filter_sumstats",
           "gwas_traits", "read_manifest", "suppress_small_counts", "verify_manifest", "write_tar"]
