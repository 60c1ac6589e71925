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
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import InputFormatError

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
_ALLELE_RE = re.compile(r"^[ACGTN]+$")
_TRUE = {"true", "1", "yes", "t"}


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


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


def read_scoring_file(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """Read a PGS Catalog scoring file or a plain weight table (plain text or gzip).

    Returns ``(header, table)``:

    - ``header``: the ``#key=value`` lines as strings (``pgs_id``, ``trait_reported``,
      ``genome_build``, ``variants_number``, ``HmPOS_build``...); ``pgs_id`` defaults to the file
      name without its extensions and ``trait_reported`` to ``""`` when absent;
    - ``table``: one row per weight, columns ``chrom`` (str, as written), ``pos`` (nullable Int64;
      missing when the variant has no (harmonized) position), ``effect_allele``, ``other_allele``
      (upper case; ``""`` when unknown), ``weight`` (float), ``rsid`` (``""`` when absent) and
      ``line`` (1-based line number in the file).

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
    header: dict[str, str] = {}
    n_header_lines = 0
    with _open_text(path) as fh:
        try:
            for raw in fh:
                line = raw.rstrip("\r\n")
                if line.startswith("#") and not line.lower().startswith("#chrom"):
                    _parse_header_line(line, header)
                    n_header_lines += 1
                    continue
                if not line.strip():
                    n_header_lines += 1
                    continue
                column_line = line
                break
            else:
                raise InputFormatError("no weight table (only header lines)", path=path)
        except UnicodeDecodeError:
            raise InputFormatError("not a text or gzip file", path=path) from None
    table_line = n_header_lines + 1
    sep = "\t" if "\t" in column_line else r"\s+"
    try:
        frame = pd.read_csv(path, sep=sep, skiprows=n_header_lines, dtype=str, keep_default_na=False,
                            compression="gzip" if _is_gzip(path) else None, skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot parse the weight table ({exc})", path=path,
                               record=f"line {table_line}") from None
    frame = frame.loc[~(frame == "").all(axis=1)] if len(frame.columns) else frame
    lines = frame.index.to_numpy() + table_line + 1
    columns = {str(c).strip().lower(): c for c in frame.columns}

    def fail(message: str, row: int | None, column: str | None):
        record = f"line {lines[row]}" if row is not None else f"line {table_line}"
        if column is not None:
            record += f", column {column!r}"
        raise InputFormatError(message, path=path, record=record)

    for flag in ("is_dominant", "is_recessive"):
        col = _pick(columns, (flag,))
        if col is not None:
            bad = np.flatnonzero(frame[col].str.strip().str.lower().isin(_TRUE).to_numpy())
            if bad.size:
                fail(f"{flag.removeprefix('is_')} weights are not supported (only additive scores)", int(bad[0]), col)

    weight_col = _pick(columns, _WEIGHT_NAMES)
    effect_col = _pick(columns, _EFFECT_NAMES)
    if weight_col is None or effect_col is None:
        missing = "effect_weight" if weight_col is None else "effect_allele"
        fail(f"no {missing} column (columns: {', '.join(map(str, frame.columns))})", None, None)

    harmonized = "hm_chr" in columns and "hm_pos" in columns
    chrom_col = columns["hm_chr"] if harmonized else _pick(columns, _CHROM_NAMES[1:])
    pos_col = columns["hm_pos"] if harmonized else _pick(columns, _POS_NAMES[1:])
    id_col = _pick(columns, _ID_NAMES)
    n = len(frame)
    if chrom_col is not None and pos_col is not None:
        chrom = frame[chrom_col].str.strip().to_numpy(dtype=object)
        pos_text = frame[pos_col].str.strip()
    elif id_col is not None:
        # plink2 --score style: the position is in the variant ID (chrom:pos[:ref:alt])
        parts = frame[id_col].str.strip().str.split(":", expand=True)
        if parts.shape[1] < 2:
            fail("variant IDs must be chrom:pos[:ref:alt] when there are no position columns", 0, id_col)
        chrom = parts[0].fillna("").to_numpy(dtype=object)
        pos_text = parts[1].fillna("")
    else:
        fail("no position columns (need hm_chr/hm_pos, chr_name/chr_position, or variant IDs "
             "chrom:pos:ref:alt); rsID-only scoring files are not supported", None, None)

    pos = pd.to_numeric(pos_text.where(pos_text != ""), errors="coerce")
    bad = np.flatnonzero((pos_text != "").to_numpy() & (pos.isna().to_numpy() | (pos.fillna(1) % 1 != 0).to_numpy()
                                                           | (pos.fillna(1) < 0).to_numpy()))
    if bad.size:
        fail(f"position {pos_text.iloc[bad[0]]!r} is not a non-negative integer", int(bad[0]),
             pos_col if pos_col is not None else id_col)
    chrom = np.where(pos.isna().to_numpy(), "", chrom)

    weight_text = frame[weight_col].str.strip()
    weight = pd.to_numeric(weight_text, errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(weight))
    if bad.size:
        fail(f"weight {weight_text.iloc[bad[0]]!r} is not a finite number", int(bad[0]), weight_col)

    effect = frame[effect_col].str.strip().str.upper()
    bad = np.flatnonzero(~effect.str.fullmatch(_ALLELE_RE).fillna(False).to_numpy())
    if bad.size:
        fail(f"effect allele {frame[effect_col].iloc[bad[0]]!r} is not a nucleotide sequence", int(bad[0]), effect_col)

    other_col = _pick(columns, _OTHER_NAMES)
    blank = pd.Series([""] * n, index=frame.index)
    other = frame[other_col].str.strip().str.upper() if other_col is not None else blank
    infer_col = _pick(columns, ("hm_inferotherallele",))
    if infer_col is not None:
        inferred = frame[infer_col].str.strip().str.upper()
        usable = (other == "") & inferred.str.fullmatch(_ALLELE_RE).fillna(False)
        other = other.where(~usable, inferred)
    if other_col is None and infer_col is None and id_col is not None and chrom_col is None:
        # plink2 style chrom:pos:ref:alt -> the other allele is whichever of ref/alt is not effect
        parts = frame[id_col].str.strip().str.split(":", expand=True)
        if parts.shape[1] >= 4:
            ref, alt = parts[2].fillna("").str.upper(), parts[3].fillna("").str.upper()
            other = pd.Series(np.where(effect == alt, ref, np.where(effect == ref, alt, "")), index=frame.index)
    bad = np.flatnonzero(~(other.str.fullmatch(_ALLELE_RE).fillna(False) | (other == "")).to_numpy())
    if bad.size:
        fail(f"other allele {other.iloc[bad[0]]!r} is not a nucleotide sequence", int(bad[0]), other_col or infer_col)

    rsid_col = _pick(columns, ("rsid", "hm_rsid"))
    rsid = frame[rsid_col].str.strip() if rsid_col is not None else blank

    table = pd.DataFrame({
        "chrom": pd.Series(chrom, dtype=object).astype(str).to_numpy(),
        "pos": pd.array(pos.to_numpy(), dtype="Int64"),
        "effect_allele": effect.to_numpy(dtype=object),
        "other_allele": other.to_numpy(dtype=object),
        "weight": weight,
        "rsid": rsid.to_numpy(dtype=object),
        "line": lines.astype(np.int64),
    }, columns=SCORE_TABLE_COLUMNS).reset_index(drop=True)
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


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"
