"""Disclosure check of an export bundle: does any member look individual-level?

:func:`check_bundle` reads a bundle (``.tar.gz`` or a folder) and returns one :class:`Finding`
per problem; :func:`require_clean_bundle` raises :class:`DisclosureError` (one line naming the
member and the problem) when there is any. ``cohortflow export`` runs it on every bundle it writes
and ``cohortflow check-bundle`` on any bundle. The rules, in the order they are applied to a member:

``unsafe_member``
    A tar member that is not a regular file (link, device, ...) or whose path is absolute or
    climbs out of the bundle (``..``).
``genotype_file``
    Genotype, read or expression matrices and sample sheets, by name (PLINK ``.bed`` and
    ``.fam``, ``.bgen``, ``.pgen``/``.psam``, ``.vcf[.gz]``, ``.bcf``, ``.bam``/``.cram``/``.sam``,
    ``.h5ad``/``.h5``/``.loom``, ``.npy``/``.npz``, ``.mtx``, ``.zarr``) or by content whatever
    the name: PLINK ``.bed``/``.pgen`` magic bytes
    ``0x6c 0x1b``, HDF5, NumPy, zip archives, BAM/BCF/CRAM and VCF headers, BGEN's magic (also
    inside gzip).
``file_type``
    Any other type the check cannot read: a bundle holds only tables (``.tsv``/``.csv``, gzip or
    not), JSON, YAML, plain text and HTML, so that every byte of it is checked.
``id_column``
    A table column named like a sample identifier: ``sample``, ``sample_id``, ``IID``, ``FID``
    (also ``#FID``, ``IID1``...), ``donor``, ``barcode``, ``cell``, ``spot``, ``subject``,
    ``participant``, ``individual``, ``person_id``, ``patient``, ``ID1``/``ID2`` of pair tables,
    and names ending in ``_sample``,
    ``_iid``, ``_donor``, ``_barcode`` (``cell_type`` or ``n_samples`` are not ID-like).
``sample_id``
    With known sample IDs (``sample_ids``; export passes the cohort's ``.fam`` FIDs and IIDs and
    the alignment sheet's samples): a known ID as a table column name or anywhere in a table cell,
    a JSON key or string value, YAML/text or the HTML report (visible text and attributes; embedded
    ``data:`` images are skipped). A value "contains" an ID when the ID is the whole value, a token
    between separators (white space ``, ; | / \\ " ' = ( ) [ ] { } < > :``) or a run of letters and
    digits. IDs that look like numbers or are shorter than 3 characters are not searched for: they
    match positions, counts and chromosome names.
``per_sample_rows``
    A table with as many rows as the cohort has samples (``n_samples``; export passes the
    ``.fam`` sizes before and after QC), when that number is at least 10: a per-sample table
    stripped of its IDs. Tables keyed by a variant, gene, cell type, region, method or metric
    column (``variant_id``, ``chromosome``, ``gene``, ``cell_type``, ...) are per-variant or
    per-group tables and exempt.
``small_count``
    A count of individuals or cells below ``min_cell_count``: an integer 0 < x < min_cell_count in
    a count-like table column or under a count-like JSON key (see :func:`is_count_name`); counts
    written ``<5`` and zeros pass.
``unreadable``
    A table, JSON or text member that cannot be parsed: what cannot be read cannot be cleared.

Not caught: per-sample information without IDs in a table whose row count differs from the
cohort's (a subset of the samples), per-sample values inside figures, or counts that can be
derived by subtracting two published totals.
"""

from __future__ import annotations

import gzip
import html
import json
import math
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cohortflow.errors import CohortflowError

# --------------------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True)
class Finding:
    """One problem: the bundle member, the rule it breaks and what was found."""

    member: str
    rule: str
    problem: str

    def __str__(self) -> str:
        return f"{self.member}: {self.problem}"


class DisclosureError(CohortflowError):
    """The bundle holds something individual-level; ``findings`` lists every problem."""

    def __init__(self, bundle: str | Path, findings: list[Finding]):
        self.findings = list(findings)
        more = f" (and {len(findings) - 1} more finding{'s' if len(findings) > 2 else ''})" if len(findings) > 1 else ""
        super().__init__(f"disclosure check failed: {findings[0]}{more}", path=bundle)


# --------------------------------------------------------------------------------------------
# Names and values


_MATRIX_SUFFIXES = (".bed", ".bed.gz", ".bgen", ".pgen", ".vcf", ".vcf.gz", ".vcf.bgz", ".bcf", ".bam", ".cram",
                    ".sam", ".h5ad", ".h5", ".hdf5", ".loom", ".npy", ".npz", ".mtx", ".mtx.gz", ".zarr")
_SAMPLE_SHEET_SUFFIXES = (".fam", ".psam")
_TABLE_SUFFIXES = {".tsv": "\t", ".tsv.gz": "\t", ".csv": ",", ".csv.gz": ","}
_TEXT_SUFFIXES = (".yaml", ".yml", ".txt", ".md")
_HTML_SUFFIXES = (".html", ".htm")

# (magic at offset 0 or at `offset`, what it is)
_MAGIC = (
    (0, b"\x6c\x1b", "PLINK .bed/.pgen genotype matrix"),
    (0, b"\x89HDF\r\n\x1a\n", "HDF5 file (.h5ad/.h5 matrix)"),
    (0, b"\x93NUMPY", "NumPy array"),
    (0, b"PK\x03\x04", "zip archive (.npz/.zarr/...)"),
    (0, b"BAM\x01", "BAM reads"),
    (0, b"BCF\x02", "BCF genotypes"),
    (0, b"CRAM", "CRAM reads"),
    (0, b"##fileformat=VCF", "VCF genotypes"),
    (16, b"bgen", "BGEN genotypes"),
)

_ID_COLUMN_NAMES = {
    "sample", "samples", "sample_id", "sampleid", "sample_name", "iid", "fid", "donor", "donor_id", "barcode",
    "cell", "cell_id", "cell_barcode", "spot", "spot_id", "individual", "individual_id", "subject", "subject_id",
    "participant", "participant_id", "person", "person_id", "patient", "patient_id", "eid",
}
# a table keyed by one of these columns has rows per variant, gene, cell type...: not per person
_AGGREGATE_KEYS = {"variant_id", "chromosome", "rsid", "snp", "gene", "gene_id", "cell_type", "pgs_id", "region",
                   "method", "metric"}
_ID_COLUMN_ENDINGS = ("_sample", "_sample_id", "_iid", "_fid", "_donor", "_donor_id", "_barcode")

# counted things that are not people or cells (see is_count_name)
_NOT_PEOPLE = ("variant", "snp", "clump", "gene", "test", "marker", "perm", "pc", "ctrl", "boot", "chain", "iter",
               "shard", "locus", "loci", "hvg", "cluster", "neighbo", "edge", "entr", "feature", "type", "signif",
               "population", "group", "categor", "split", "method", "score", "trait", "chrom", "contig", "step",
               "filter", "region", "plot", "point", "weight", "block", "sweep", "thread", "dim", "column", "row",
               "file", "key", "label", "bin", "decile", "quantile", "degree", "level", "window", "read", "base",
               "site", "allele", "batch", "error", "bim", "firth", "index", "lead", "hit", "tile", "param", "seed",
               "check", "r2", "threshold")
_PEOPLE = {"sample", "samples", "case", "cases", "control", "controls", "donor", "donors", "cell", "cells",
           "individual", "individuals", "spot", "spots", "subject", "subjects", "participant", "participants",
           "person", "persons", "people", "patient", "patients", "male", "males", "female", "females", "doublets"}
_TALLY = {"removed", "left", "kept", "dropped", "excluded", "included", "used", "called", "per", "failed", "passed",
          "total", "labelled", "genotyped", "problem", "flagged"}
_NUMBER = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
_NUMBER_RE2 = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^(NA|NaN|nan|inf|-inf|Inf|-Inf|)$"
_COUNT_TEXT_RE2 = r"^[0-9]+(\.0*)?$"
# token splitters (see module docstring): between separators, and runs of letters and digits
_SEPARATORS = r"[\s,;|/\\\"'=()\[\]{}<>:]+"
_COARSE = re.compile(r"[^\s,;|/\\\"'=()\[\]{}<>:]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_DATA_URI = re.compile(r"data:[A-Za-z0-9.+/-]+;base64,[A-Za-z0-9+/=\s]*")


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def is_id_column(name: str) -> bool:
    """Whether a column name reads as a sample identifier (``IID``, ``#FID``, ``sample_id``,
    ``donor``, ``barcode``, ``cell``, ``best_other_sample``...; not ``cell_type`` or ``n_samples``)."""
    base = name.strip().lstrip("#").strip().lower().replace(" ", "_").replace("-", "_")
    if re.fullmatch(r"(i?id|fid)[12]", base):  # the pair columns of kinship tables (plink2 .kin0: ID1, ID2)
        return True
    base = re.sub(r"[0-9]+$", "", base)  # IID1, FID2
    return base in _ID_COLUMN_NAMES or base.endswith(_ID_COLUMN_ENDINGS)


def is_count_name(name: str) -> bool:
    """Whether a column or JSON key holds counts of individuals or cells.

    Count-like: ``n``, ``count``; ``n_<noun>`` (``n_cases``, ``n_cells``, ``n_donors_used``,
    ``n_removed``...) and ``<noun>_count`` unless the noun before any ``per`` names something
    that is not a person or a cell (variants, SNPs, genes, tests, PCs, permutations, clusters,
    cell types, populations, ...: ``n_variants``, ``n_clumped``, ``n_snps``, ``n_pcs``,
    ``n_cell_types``); and a person or cell word with a tally word (``samples_removed``,
    ``samples_left``, ``cells_per_type``). Parameters such as ``min_cells`` are not counts.
    """
    tokens = _tokens(name)
    if not tokens:
        return False
    if tokens in (["n"], ["count"], ["counts"]):
        return True
    noun = None
    if tokens[0] == "n":
        noun = tokens[1:]
    elif tokens[-1] in ("count", "counts"):
        noun = tokens[:-1]
    elif tokens[0] in ("count", "counts"):
        noun = tokens[1:]
    if noun is not None:
        if "per" in noun:
            noun = noun[: noun.index("per")]
        return not any(t.startswith(_NOT_PEOPLE) for t in noun)
    return any(t in _PEOPLE for t in tokens) and any(t in _TALLY for t in tokens)


def small_count(value: Any, min_cell_count: int) -> bool:
    """Whether ``value`` (a number or its text) is a whole number with 0 < value < min_cell_count."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.match(text):
            return False
        value = float(text)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return 0 < value < min_cell_count and float(value).is_integer()


def searchable_ids(sample_ids: Iterable[str] | None) -> frozenset[str]:
    """The IDs the value rules look for: at least 3 characters and not number-like."""
    if not sample_ids:
        return frozenset()
    out = set()
    for s in sample_ids:
        s = str(s).strip()
        if len(s) >= 3 and not _NUMBER.match(s):
            out.add(s)
    return frozenset(out)


def ids_in_text(text: str, ids: frozenset[str]) -> set[str]:
    """The IDs of ``ids`` that ``text`` contains (whole, as a token or as a run of letters and digits)."""
    if not ids or not text:
        return set()
    found = {text.strip()} & ids
    found.update(t for t in _COARSE.findall(text) if t in ids)
    found.update(t for t in _ALNUM.findall(text) if t in ids)
    return found


# --------------------------------------------------------------------------------------------
# Members of a bundle


@dataclass
class _Member:
    name: str
    size: int
    open: Callable[[], IO[bytes]] | None  # None: not a regular file
    kind: str = "file"


def iter_members(path: str | Path) -> Iterator[_Member]:
    """The members of a bundle: a ``.tar``/``.tar.gz`` file or a folder (files under it,
    sorted, paths relative to it)."""
    path = Path(path)
    if path.is_dir():
        for sub in sorted(p for p in path.rglob("*") if not p.is_dir()):
            name = sub.relative_to(path).as_posix()
            if sub.is_symlink() or not sub.is_file():
                yield _Member(name, 0, None, "link or special file")
            else:
                yield _Member(name, sub.stat().st_size, lambda sub=sub: open(sub, "rb"))
        return
    if not path.is_file():
        raise CohortflowError("bundle does not exist", path=path)
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise CohortflowError("not a readable tar bundle (.tar or .tar.gz)", path=path) from None
    with tar:
        try:
            for info in tar:
                if info.isdir():
                    continue
                if not info.isfile():
                    kind = "link" if info.issym() or info.islnk() else "special file"
                    yield _Member(info.name, 0, None, kind)
                    continue
                yield _Member(info.name, info.size, lambda info=info: tar.extractfile(info))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise CohortflowError(f"damaged tar bundle ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                                  path=path) from None


def _lower_name(name: str) -> str:
    return PurePosixPath(name).name.lower()


def _head(member: _Member, n: int = 64) -> tuple[bytes, bytes]:
    """First ``n`` bytes, and the first ``n`` decompressed bytes when the member is gzip."""
    with member.open() as fh:
        raw = fh.read(n)
    inner = b""
    if raw[:2] == b"\x1f\x8b":
        try:
            with member.open() as fh, gzip.GzipFile(fileobj=fh) as gz:
                inner = gz.read(n)
        except (OSError, EOFError, zlib.error):
            inner = b""
    return raw, inner


def _magic(data: bytes) -> str | None:
    for offset, magic, what in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return what
    return None


def _stream(member: _Member) -> IO[bytes]:
    fh = member.open()
    head = fh.read(2)
    fh.close()
    fh = member.open()
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh)  # closing the GzipFile leaves fh to the tar/OS
    return fh


# --------------------------------------------------------------------------------------------
# The check


@dataclass
class _Rules:
    min_cell_count: int
    ids: frozenset[str]
    n_samples: frozenset[int]


def check_bundle(
    path_or_dir: str | Path,
    *,
    min_cell_count: int = 5,
    sample_ids: set[str] | Iterable[str] | None = None,
    n_samples: Iterable[int] = (),
) -> list[Finding]:
    """Findings of the disclosure rules (module docstring) on every member of a bundle.

    ``path_or_dir`` is a ``.tar.gz`` (or plain ``.tar``) bundle or a folder of the same layout;
    ``sample_ids`` the cohort's sample IDs (the value rules are skipped without them);
    ``n_samples`` the cohort's sample counts for the per-sample row rule (default: the number of
    ``sample_ids``). Returns an empty list for a clean bundle. A missing or unreadable bundle is a
    :class:`~cohortflow.errors.CohortflowError`.
    """
    if isinstance(min_cell_count, bool) or not isinstance(min_cell_count, int) or min_cell_count < 0:
        raise CohortflowError(f"min_cell_count must be a non-negative integer, got {min_cell_count!r}")
    id_list = [str(s) for s in sample_ids] if sample_ids is not None else []
    counts = {int(n) for n in n_samples} or ({len(set(id_list))} if id_list else set())
    rules = _Rules(min_cell_count, searchable_ids(id_list), frozenset(n for n in counts if n >= 10))
    findings: list[Finding] = []
    for member in iter_members(path_or_dir):
        findings += _check_member(member, rules)
    return findings


def require_clean_bundle(path_or_dir: str | Path, **kwargs) -> None:
    """:func:`check_bundle`, raising :class:`DisclosureError` when there is any finding."""
    findings = check_bundle(path_or_dir, **kwargs)
    if findings:
        raise DisclosureError(path_or_dir, findings)


def _check_member(member: _Member, rules: _Rules) -> list[Finding]:
    name = member.name
    pure = PurePosixPath(name)
    if member.open is None:
        return [Finding(name, "unsafe_member", f"not a regular file ({member.kind})")]
    if pure.is_absolute() or ".." in pure.parts:
        return [Finding(name, "unsafe_member", "path is absolute or leaves the bundle")]
    lower = _lower_name(name)
    if lower.endswith(_MATRIX_SUFFIXES):
        return [Finding(name, "genotype_file", "genotype, read or expression matrix file (by its name)")]
    if lower.endswith(_SAMPLE_SHEET_SUFFIXES):
        return [Finding(name, "genotype_file", "PLINK sample file: one row per sample (by its name)")]
    try:
        raw, inner = _head(member)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        return [Finding(name, "unreadable", f"cannot be read ({exc})")]
    what = _magic(raw) or _magic(inner)
    if what:
        return [Finding(name, "genotype_file", f"{what} (by its content)")]
    delimiter = next((d for suffix, d in _TABLE_SUFFIXES.items() if lower.endswith(suffix)), None)
    try:
        if delimiter is not None:
            return _check_table(member, delimiter, rules)
        if lower.endswith(".json"):
            return _check_json(member, rules)
        if lower.endswith(_HTML_SUFFIXES):
            return _check_text(member, rules, html_page=True)
        if lower.endswith(_TEXT_SUFFIXES):
            return _check_text(member, rules, html_page=False)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        return [Finding(name, "unreadable", f"cannot be read ({exc})")]
    return [Finding(name, "file_type", "file type the disclosure check cannot read (a bundle holds .tsv/.csv "
                                       "tables, gzip or not, .json, .yaml, .txt and .html only)")]


def _check_text(member: _Member, rules: _Rules, *, html_page: bool) -> list[Finding]:
    if not rules.ids:
        return []
    with _stream(member) as fh:
        text = fh.read().decode("utf-8", errors="replace")
    if html_page:
        text = html.unescape(_DATA_URI.sub(" ", text))
    found = ids_in_text(text, rules.ids)
    if found:
        what = "the HTML report" if html_page else "the text"
        return [Finding(member.name, "sample_id", f"{what} names {len(found)} of the cohort's sample IDs")]
    return []


def _check_json(member: _Member, rules: _Rules) -> list[Finding]:
    with _stream(member) as fh:
        data = fh.read()
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return [Finding(member.name, "unreadable", f"not valid JSON ({exc})")]
    findings: list[Finding] = []
    id_paths: list[str] = []
    count_paths: list[str] = []

    def walk(node: Any, where: str, key: str | None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                k = str(k)
                if ids_in_text(k, rules.ids):
                    id_paths.append(f"{where} (a key)")
                # dicts of counts (samples_removed: {mind: 1}) take the name of the dict
                child_key = key if (key is not None and is_count_name(key) and not isinstance(v, (dict, list))
                                    and not is_count_name(k)) else k
                walk(v, f"{where}.{k}" if not ids_in_text(k, rules.ids) else f"{where}.<sample ID>", child_key)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", key)
        elif isinstance(node, str):
            if ids_in_text(node, rules.ids):
                id_paths.append(where)
        elif key is not None and is_count_name(key) and small_count(node, rules.min_cell_count):
            count_paths.append(where)

    walk(obj, "$", None)
    if id_paths:
        extra = f" (and {len(id_paths) - 1} more places)" if len(id_paths) > 1 else ""
        findings.append(Finding(member.name, "sample_id", f"JSON names a sample ID at {id_paths[0]}{extra}"))
    if count_paths:
        extra = f" (and {len(count_paths) - 1} more)" if len(count_paths) > 1 else ""
        findings.append(Finding(member.name, "small_count",
                                f"count below {rules.min_cell_count} at {count_paths[0]}{extra}"))
    return findings


def _read_header(member: _Member, delimiter: str) -> list[str] | None:
    with _stream(member) as fh:
        line = fh.readline()
    if not line:
        return None
    return line.decode("utf-8", errors="replace").rstrip("\r\n").split(delimiter)


def _check_table(member: _Member, delimiter: str, rules: _Rules) -> list[Finding]:
    """Column names, then every cell of every row, streamed in Arrow batches (all as text)."""
    name = member.name
    header = _read_header(member, delimiter)
    if header is None:
        return []
    findings: list[Finding] = []
    id_cols = [c for c in header if is_id_column(c)]
    if id_cols:
        findings.append(Finding(name, "id_column", f"column '{id_cols[0]}' is named like a sample identifier"
                                + (f" (also {', '.join(repr(c) for c in id_cols[1:])})" if len(id_cols) > 1 else "")))
    named = [c for c in header if ids_in_text(c, rules.ids)]
    if named:
        findings.append(Finding(name, "sample_id", f"{len(named)} column names are sample IDs of the cohort "
                                                   "(a per-sample matrix)"))
    count_cols = [i for i, c in enumerate(header) if is_count_name(c)]
    generated = [f"c{i}" for i in range(len(header))]
    ids = pa.array(sorted(rules.ids), type=pa.string()) if rules.ids else None
    id_hit: tuple[str, int] | None = None
    small_hit: tuple[str, int] | None = None
    n_rows = 0
    try:
        with _stream(member) as fh:
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(column_names=generated, skip_rows=1, block_size=1 << 24),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if delimiter == "," else False),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in generated},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
            for batch in reader:
                for i in count_cols:
                    if small_hit is None and rules.min_cell_count > 1:
                        row = _first_small_count(batch.column(i), rules.min_cell_count)
                        if row is not None:
                            small_hit = (header[i], n_rows + row + 2)
                if ids is not None and id_hit is None:
                    for i in range(len(header)):
                        row = _first_id(batch.column(i), ids)
                        if row is not None:
                            id_hit = (header[i], n_rows + row + 2)
                            break
                n_rows += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return findings + [Finding(name, "unreadable", f"cannot be read as a table ({str(exc).splitlines()[0]})")]
    if id_hit:
        findings.append(Finding(name, "sample_id", f"column '{id_hit[0]}' holds a sample ID of the cohort "
                                                   f"(line {id_hit[1]})"))
    keyed = {c.strip().lstrip("#").lower() for c in header} & _AGGREGATE_KEYS
    if n_rows in rules.n_samples and not keyed:
        findings.append(Finding(name, "per_sample_rows", f"one row per sample: {n_rows} rows, the number of "
                                                         "samples in the cohort"))
    if small_hit:
        findings.append(Finding(name, "small_count", f"count below {rules.min_cell_count} in column "
                                                     f"'{small_hit[0]}' (line {small_hit[1]})"))
    return findings


def _first_index(mask: pa.Array) -> int | None:
    index = pc.index(pc.fill_null(mask, False), True).as_py()
    return None if index is None or index < 0 else index


def _first_small_count(column: pa.Array, min_cell_count: int) -> int | None:
    whole = pc.match_substring_regex(column, _COUNT_TEXT_RE2)
    if not pc.any(whole).as_py():
        return None
    values = pc.cast(pc.if_else(whole, column, pa.scalar(None, pa.string())), pa.float64())
    small = pc.and_(pc.greater(values, 0.0), pc.less(values, float(min_cell_count)))
    return _first_index(small)


def _first_id(column: pa.Array, ids: pa.Array) -> int | None:
    """Row of the first cell that contains a sample ID (whole, token or letter-digit run)."""
    if pc.all(pc.match_substring_regex(column, _NUMBER_RE2)).as_py():
        return None  # numbers only: no searchable ID can be in them
    rows = []
    row = _first_index(pc.is_in(column, value_set=ids))
    if row is not None:
        rows.append(row)
    for pattern in (_SEPARATORS, r"[^A-Za-z0-9]+"):
        parts = pc.split_pattern_regex(column, pattern)
        hit = _first_index(pc.is_in(pc.list_flatten(parts), value_set=ids))
        if hit is not None:
            rows.append(pc.list_parent_indices(parts)[hit].as_py())
    return min(rows) if rows else None


__all__ = ["DisclosureError", "Finding", "check_bundle", "require_clean_bundle", "is_count_name", "is_id_column",
           "ids_in_text", "iter_members", "searchable_ids", "small_count"]
