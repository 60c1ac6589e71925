"""Polygenic score weight files: PGS Catalog scoring files and plain weight tables.

PGS Catalog scoring files (format 2.0, plain or gzip) start with ``#key=value`` header lines
(``#pgs_id=PGS000001``, ``#trait_reported=...``, ``#genome_build=...``, ``#variants_number=...``;
lines starting with ``##`` or ``###`` are section titles and are skipped), then a tab-separated
table with ``rsID chr_name chr_position effect_allele other_allele effect_weight ...`` and, in the
harmonized files, ``hm_chr hm_pos hm_inferOtherAllele ...``. The older format 1.0 header
(``# PGS ID = PGS000001``, ``# Reported Trait = ...``) is read too.

Also read: plain weight tables with a header (``chr_name``/``chrom``/``chromosome``,
``chr_position``/``pos``/``base_pair_location``, ``effect_allele``, ``other_allele``,
``effect_weight``/``weight``/``beta``), and plink2 ``--score``-style tables (``variant_id``/``ID``
of the form ``chrom:pos[:ref:alt]``, ``allele``/``A1``, ``weight``). The reader computes no
statistics and does no matching (see :mod:`cohortflow.prs.pgs`).

Speed: the file is inflated by ISA-L in one go, a tab-separated table is parsed by Arrow's CSV
reader into string columns and checked with Arrow compute functions (no Python object per
value); whitespace-separated tables and tables with blank lines go through pandas, with the same
checks and messages.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cohortflow.errors import InputFormatError
from cohortflow.io.compressed import read_inflated

SCORE_TABLE_COLUMNS = ["chrom", "pos", "effect_allele", "other_allele", "weight", "rsid", "line"]

# header keys of the format 1.0 files -> format 2.0 keys
_V1_KEYS = {
    "pgs id": "pgs_id",
    "pgs name": "pgs_name",
    "reported trait": "trait_reported",
    "mapped trait(s) (efo label)": "trait_mapped",
    "mapped trait(s) (efo id)": "trait_efo",
    "original genome build": "genome_build",
    "number of variants": "variants_number",
    "pgp id": "pgp_id",
    "citation": "citation",
    "lifted genome build": "HmPOS_build",
}
_CHROM_NAMES = ("hm_chr", "chr_name", "chrom", "chromosome", "chr", "#chrom")
_POS_NAMES = ("hm_pos", "chr_position", "pos", "position", "base_pair_location", "bp")
_EFFECT_NAMES = ("effect_allele", "allele", "a1")
_OTHER_NAMES = ("other_allele", "a2")
_WEIGHT_NAMES = ("effect_weight", "weight", "beta")
_ID_NAMES = ("variant_id", "id", "snp")
_TRUE = {"true", "1", "yes", "t"}


def _parse_header_line(line: str, header: dict) -> None:
    """``#key=value`` (format 2.0) or ``# Key = value`` (format 1.0); section titles ignored."""
    if line.startswith("##"):
        return
    body = line[1:].strip()
    if "=" not in body:
        return
    key, value = body.split("=", 1)
    key, value = key.strip(), value.strip()
    header[_V1_KEYS.get(key.lower(), key)] = value


def _pick(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    """The file's column name for the first of ``names`` present (case-insensitive)."""
    for name in names:
        if name in columns:
            return columns[name]
    return None




_ALLELE_PATTERN = "^[ACGTN]+$"
# an empty line, or one of tabs only (all fields empty), inside the table
_BLANK_LINE = re.compile(rb"\n[\t]*\r?\n")
# the columns the reader looks at (lower case); others are not converted
_USED_NAMES = frozenset((*_CHROM_NAMES, *_POS_NAMES, *_EFFECT_NAMES, *_OTHER_NAMES, *_WEIGHT_NAMES, *_ID_NAMES,
                         "rsid", "hm_rsid", "hm_inferotherallele", "is_dominant", "is_recessive"))


def _split_header(data: bytes, path: Path) -> tuple[dict, int, str, int]:
    """Header lines (``#...`` except ``#chrom...``, and blank lines) before the column-name line:
    (header dict, number of header lines, the column-name line, its byte offset)."""
    header: dict[str, str] = {}
    n_header_lines = 0
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end
        try:
            line = data[offset:end].decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputFormatError("not a text or gzip file", path=path) from None
        if line.startswith("#") and not line.lower().startswith("#chrom"):
            _parse_header_line(line, header)
        elif line.strip():
            return header, n_header_lines, line, offset
        n_header_lines += 1
        offset = end + 1
    raise InputFormatError("no weight table (only header lines)", path=path)


def _has_blank_line(body: memoryview) -> bool:
    """Whether the text (no trailing newline) has an empty line or a line of tabs only."""
    text = np.frombuffer(body, dtype=np.uint8)
    after = text[np.flatnonzero(text[:-1] == 10) + 1]
    if np.any(after == 10) or np.any(after == 13) or np.any(after == 9):  # rare: look closer
        return _BLANK_LINE.search(body) is not None
    return False


def _read_table_arrow(body: memoryview, column_line: str, names_needed) -> dict[str, pa.Array] | None:
    """The tab-separated table (column-name line first) as string columns by Arrow's CSV reader
    (only the columns whose lower-case names ``names_needed`` accepts are converted), or None when
    pandas must read it: blank or all-empty lines (pandas keeps their line numbers and drops
    them), repeated column names, anything Arrow's parser refuses."""
    names = column_line.split("\t")
    if len(set(names)) != len(names):
        return None
    end = len(body)
    while end and body[end - 1] in (10, 13):  # trailing newlines; trailing tabs are empty last fields
        end -= 1
    body = body[:end]
    if _has_blank_line(body):
        return None
    include = [name for name in names if names_needed(name.strip().lower())]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(block_size=16 << 20, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in include},
                                                 include_columns=include, strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return {name: table.column(name).combine_chunks() for name in include}


def _read_table_pandas(data: bytes, path: Path, n_header_lines: int, sep: str,
                       table_line: int) -> tuple[dict, np.ndarray]:
    """The table by pandas (any whitespace separator, blank lines): string columns and the file
    line number of each row; rows whose fields are all empty are dropped."""
    try:
        frame = pd.read_csv(io.BytesIO(data), sep=sep, skiprows=n_header_lines, dtype=str, keep_default_na=False,
                            skip_blank_lines=False)
    except UnicodeDecodeError:
        raise InputFormatError("not a text or gzip file", path=path) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot parse the weight table ({exc})", path=path,
                               record=f"line {table_line}") from None
    frame = frame.loc[~(frame == "").all(axis=1)] if len(frame.columns) else frame
    lines = frame.index.to_numpy() + table_line + 1
    columns = {str(c): pa.array(frame[c].fillna("").to_numpy(dtype=object), type=pa.string()) for c in frame.columns}
    return columns, lines


def _per_distinct(values: pa.Array, function) -> pa.Array:
    """``function`` (Arrow array -> array of the same length) applied to the distinct values only
    (columns such as alleles or chromosomes have a handful over many rows)."""
    encoded = pc.dictionary_encode(values)
    return pc.take(function(encoded.dictionary), encoded.indices)


def _alleles(values: pa.Array, *, allow_empty: bool = False) -> tuple[pa.Array, pa.Array | None]:
    """(the values trimmed and in upper case, per row whether it is not a nucleotide sequence
    A/C/G/T/N (nor empty, when ``allow_empty``) or None when all are), computed per distinct value."""
    encoded = pc.dictionary_encode(values)
    alleles = pc.utf8_upper(pc.utf8_trim_whitespace(encoded.dictionary))
    ok = pc.match_substring_regex(alleles, _ALLELE_PATTERN)
    if allow_empty:
        ok = pc.or_(ok, pc.equal(alleles, ""))
    normalised = pc.take(alleles, encoded.indices)
    if pc.all(ok).as_py() is not False:
        return normalised, None
    return normalised, pc.invert(pc.take(ok, encoded.indices))


def _first(mask) -> int | None:
    """Index of the first true value of a boolean Arrow array (nulls count as false), or None."""
    if isinstance(mask, (pa.Array, pa.ChunkedArray)):
        if not pc.any(mask).as_py():
            return None
        mask = mask.to_numpy(zero_copy_only=False)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _strings(values: pa.Array) -> pd.Series:
    """A pandas string column backed by the Arrow array (no Python objects)."""
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([values.cast(pa.string())])))


def _parse_positions(values: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array, int | None]:
    """(positions int64, missing mask, the trimmed strings, first bad row or None) of position
    strings: empty = missing; otherwise a number with an integer value >= 0 (``100`` or ``1e5``)."""
    try:  # plain digits, no blanks (Arrow refuses surrounding spaces): the common case
        empty = pc.equal(values, "")
        pos = pc.cast(pc.if_else(empty, "0", values), pa.int64()).to_numpy(zero_copy_only=False)
        empty = empty.to_numpy(zero_copy_only=False)
        return pos, empty, values, _first(~empty & (pos < 0))
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(values)
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    try:
        pos = pc.cast(pc.if_else(pa.array(empty), "0", text), pa.int64()).to_numpy(zero_copy_only=False)
        bad = ~empty & (pos < 0)
    except pa.ArrowInvalid:  # not plain integers: pandas' number parsing, then an integer check
        numbers = pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)).where(~empty), errors="coerce")
        floats = numbers.to_numpy(float)
        bad = ~empty & (np.isnan(floats) | (np.nan_to_num(floats, nan=1.0) % 1 != 0)
                        | (np.nan_to_num(floats, nan=1.0) < 0))
        pos = np.where(empty | bad, 0, np.nan_to_num(floats, nan=0.0)).astype(np.int64)
    return pos, empty, text, _first(bad)


def _parse_weights(values: pa.Array) -> tuple[np.ndarray, pa.Array, int | None]:
    """(weights float64, the trimmed strings, first row that is not a finite number or None)."""
    try:
        weight = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        text = values
    except pa.ArrowInvalid:
        text = pc.utf8_trim_whitespace(values)
        try:
            weight = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            weight = pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)), errors="coerce").to_numpy(float)
    return weight, text, _first(~np.isfinite(weight))


def read_scoring_file(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """Read a PGS Catalog scoring file or a plain weight table (plain text or gzip).

    Returns ``(header, table)``:

    - ``header``: the ``#key=value`` lines as strings (``pgs_id``, ``trait_reported``,
      ``genome_build``, ``variants_number``, ``HmPOS_build``...); ``pgs_id`` defaults to the file
      name without its extensions and ``trait_reported`` to ``""`` when absent;
    - ``table``: one row per weight, columns ``chrom`` (str, as written), ``pos`` (nullable Int64;
      missing when the variant has no (harmonized) position), ``effect_allele``, ``other_allele``
      (upper case; ``""`` when unknown), ``weight`` (float), ``rsid`` (``""`` when absent) and
      ``line`` (1-based line number in the file). String columns are Arrow-backed pandas strings.

    Harmonized positions (``hm_chr``/``hm_pos``) are used when the file has them: a row the
    Catalog could not harmonize (empty ``hm_pos``) gets a missing position rather than its
    author-reported one (which may be on another build). A missing ``other_allele`` is taken
    from ``hm_inferOtherAllele`` when that names exactly one allele.

    Raises InputFormatError (file, line, column) for a missing required column, a non-numeric or
    non-finite weight, a non-integer position, an allele that is not A/C/G/T/N, and for
    dominant/recessive weights (``is_dominant``/``is_recessive`` true), which are not supported.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFormatError("scoring file not found", path=path)
    data = read_inflated(path)
    header, n_header_lines, column_line, offset = _split_header(data, path)
    table_line = n_header_lines + 1
    fields = None
    if "\t" in column_line:
        fields = _read_table_arrow(memoryview(data)[offset:], column_line, _USED_NAMES.__contains__)
    if fields is not None:
        n_rows = len(next(iter(fields.values()))) if fields else 0
        lines = np.arange(n_rows, dtype=np.int64) + table_line + 1
        all_names = column_line.split("\t")
    else:
        fields, lines = _read_table_pandas(data, path, n_header_lines, "\t" if "\t" in column_line else r"\s+", table_line)
        all_names = list(fields)
    del data
    n = len(lines)
    columns = {name.strip().lower(): name for name in fields}
    trimmed_cache: dict[str, pa.Array] = {}

    def trimmed(name: str) -> pa.Array:
        if name not in trimmed_cache:
            trimmed_cache[name] = pc.utf8_trim_whitespace(fields[name])
        return trimmed_cache[name]

    def fail(message: str, row: int | None, column: str | None):
        record = f"line {lines[row]}" if row is not None else f"line {table_line}"
        if column is not None:
            record += f", column {column!r}"
        raise InputFormatError(message, path=path, record=record)

    for flag in ("is_dominant", "is_recessive"):
        col = _pick(columns, (flag,))
        if col is not None:
            bad = _first(pc.is_in(pc.utf8_lower(trimmed(col)), value_set=pa.array(sorted(_TRUE))))
            if bad is not None:
                fail(f"{flag.removeprefix('is_')} weights are not supported (only additive scores)", bad, col)

    weight_col = _pick(columns, _WEIGHT_NAMES)
    effect_col = _pick(columns, _EFFECT_NAMES)
    if weight_col is None or effect_col is None:
        missing = "effect_weight" if weight_col is None else "effect_allele"
        fail(f"no {missing} column (columns: {', '.join(all_names)})", None, None)

    harmonized = "hm_chr" in columns and "hm_pos" in columns
    chrom_col = columns["hm_chr"] if harmonized else _pick(columns, _CHROM_NAMES[1:])
    pos_col = columns["hm_pos"] if harmonized else _pick(columns, _POS_NAMES[1:])
    id_col = _pick(columns, _ID_NAMES)
    id_parts = None
    if chrom_col is not None and pos_col is not None:
        chrom = _per_distinct(fields[chrom_col], pc.utf8_trim_whitespace)
        pos_text = fields[pos_col]
    elif id_col is not None:
        # plink2 --score style: the position is in the variant ID (chrom:pos[:ref:alt])
        id_parts = pd.Series(trimmed(id_col).to_numpy(zero_copy_only=False)).str.split(":", expand=True)
        if id_parts.shape[1] < 2:
            fail("variant IDs must be chrom:pos[:ref:alt] when there are no position columns", 0, id_col)
        chrom = pa.array(id_parts[0].fillna("").to_numpy(dtype=object), type=pa.string())
        pos_text = pa.array(id_parts[1].fillna("").to_numpy(dtype=object), type=pa.string())
    else:
        fail("no position columns (need hm_chr/hm_pos, chr_name/chr_position, or variant IDs "
             "chrom:pos:ref:alt); rsID-only scoring files are not supported", None, None)

    pos, no_pos, pos_text, bad = _parse_positions(pos_text)
    if bad is not None:
        fail(f"position {pos_text[bad].as_py()!r} is not a non-negative integer", bad,
             pos_col if pos_col is not None else id_col)
    chrom = pc.if_else(pa.array(no_pos), "", chrom)

    weight, weight_text, bad = _parse_weights(fields[weight_col])
    if bad is not None:
        fail(f"weight {weight_text[bad].as_py()!r} is not a finite number", bad, weight_col)

    effect, invalid = _alleles(fields[effect_col])
    bad = None if invalid is None else _first(invalid)
    if bad is not None:
        fail(f"effect allele {fields[effect_col][bad].as_py()!r} is not a nucleotide sequence", bad, effect_col)

    other_col = _pick(columns, _OTHER_NAMES)
    blank = pa.array([""] * n, type=pa.string()) if other_col is None else None
    other, other_invalid = _alleles(fields[other_col], allow_empty=True) if other_col is not None else (blank, None)
    infer_col = _pick(columns, ("hm_inferotherallele",))
    if infer_col is not None:
        inferred, inferred_invalid = _alleles(fields[infer_col])
        usable = pc.equal(other, "") if inferred_invalid is None else pc.and_(pc.equal(other, ""),
                                                                             pc.invert(inferred_invalid))
        other = pc.if_else(usable, inferred, other)
        if other_invalid is not None:
            other_invalid = pc.and_(other_invalid, pc.invert(usable))
    if other_col is None and infer_col is None and id_parts is not None:
        # plink2 style chrom:pos:ref:alt -> the other allele is whichever of ref/alt is not effect
        if id_parts.shape[1] >= 4:
            ref = id_parts[2].fillna("").str.upper().to_numpy(object)
            alt = id_parts[3].fillna("").str.upper().to_numpy(object)
            eff = effect.to_numpy(zero_copy_only=False)
            other = pa.array(np.where(eff == alt, ref, np.where(eff == ref, alt, "")), type=pa.string())
            other_invalid = _alleles(other, allow_empty=True)[1]
    bad = None if other_invalid is None else _first(other_invalid)
    if bad is not None:
        fail(f"other allele {other[bad].as_py()!r} is not a nucleotide sequence", bad, other_col or infer_col)

    rsid_col = _pick(columns, ("rsid", "hm_rsid"))
    rsid = trimmed(rsid_col) if rsid_col is not None else (blank if blank is not None else
                                                           pa.array([""] * n, type=pa.string()))

    table = pd.DataFrame({
        "chrom": _strings(chrom),
        "pos": pd.arrays.IntegerArray(pos, no_pos.copy()),
        "effect_allele": _strings(effect),
        "other_allele": _strings(other),
        "weight": weight,
        "rsid": _strings(rsid),
        "line": np.asarray(lines, dtype=np.int64),
    }, columns=SCORE_TABLE_COLUMNS)
    if table.empty:
        raise InputFormatError("the weight table has no rows", path=path)

    name = path.name
    for ext in (".gz", ".txt", ".tsv"):
        name = name.removesuffix(ext)
    header.setdefault("pgs_id", name)
    header.setdefault("trait_reported", "")
    if "variants_number" in header:
        declared = header["variants_number"]
        if not declared.isdigit() or int(declared) != len(table):
            raise InputFormatError(f"header says variants_number={declared} but the table has {len(table)} rows",
                                   path=path)
    return header, table
