"""Base GWAS summary statistics in the layouts they are published in, harmonised to GWAS-SSF.

:func:`read_base_sumstats` detects the layout, maps its columns to GWAS-SSF, derives what is
missing, drops unusable rows and says why; :func:`harmonise_sumstats` writes the result as a
GWAS-SSF ``.tsv.gz`` with a JSON log beside it.

Layouts (``log["layout"]``) and their effect allele:

- ``gwas-ssf``: GWAS-SSF (ours, or the GWAS Catalog's with its optional columns): effect_allele.
- ``gwas-vcf``: MRC-IEU GWAS-VCF (``##fileformat=VCF``, FORMAT ES/SE/LP/AF/SS/EZ/ID, one sample
  column per study): ALT (ES, AF are "relative to the alternative allele").
- ``opengwas-tsv``: an OpenGWAS study exported to a table by MungeSumstats
  (``SNP CHR BP A1 A2 ...``): **A2** is the effect allele and A1 the reference allele (MungeSumstats'
  convention, the same as GWAS-VCF's ALT/REF).
- ``prscs``: PRS-CS's input (``SNP A1 A2 BETA|OR P|SE``, rsIDs only): A1 (PRS-CS README).
- ``ssgac``: SSGAC releases such as Okbay 2016 (``MarkerName CHR POS A1 A2 EAF Beta SE Pval``): A1.
- ``table``: any other whitespace-, tab- or comma-separated table with common column names.
  Explicit names (effect_allele/EA/Allele1/tested_allele vs other_allele/NEA/Allele2/OMITTED,
  or ALT vs REF) decide; a bare A1/A2 pair takes A1 as the effect allele (PLINK, LDSC, PRS-CS);
  ``effect_allele_column`` overrides.

An allele-frequency column is taken to be the effect allele's frequency, and an SE given beside an
odds ratio to be the SE of log(OR).

Rows are dropped, each for the first reason that applies, in the order of :data:`DROP_REASONS`;
the log counts each reason and shows the first few rows (file line, variant ID, detail).
Duplicates are decided after every other check: records of one variant (same chromosome,
position and allele pair, in either order) whose values agree (beta, SE, p, EAF, n; beta and EAF
turned to the first record's effect allele) keep the first record; records that disagree are all
dropped. Then rows sharing a variant ID at different positions are all dropped (the ID cannot say
which one is meant; one ID at one position with several allele pairs is a split multi-allelic
site and is kept). Multi-allelic VCF records are split into one row per ALT allele, each with its
own Number=A values.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from scipy import special

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import write_json_atomic
from cohortflow.io.chrom import normalise_chrom
from cohortflow.io.compressed import read_inflated
from cohortflow.io.plink import read_bim
from cohortflow.io.sumstats import SSF_COLUMNS, write_sumstats

OUTPUT_COLUMNS = SSF_COLUMNS + ["neg_log10_p"]

# why a row is dropped; a row counts under the first reason that applies, in this order
DROP_REASONS = (
    "malformed_line",          # a text line with another number of fields than the header
    "gwas_errcode",            # GWAS-SSF row whose errcode says the test did not run
    "missing_value",           # empty/NA in a required column
    "non_numeric",             # text that is not a finite number in a numeric column
    "bad_allele",              # allele not a sequence of A/C/G/T, or effect allele = other allele
    "bad_position",            # position not a whole number from 1 to 2^31 - 2
    "p_out_of_range",          # p outside (0, 1] (or -log10 p below 0)
    "odds_ratio_not_positive",
    "se_not_positive",
    "se_not_derivable",        # no SE column and beta/p (or beta/Z) cannot give one (z = 0)
    "not_in_bim",              # rsID-only file: the ID is not in the .bim that gives positions
    "ambiguous_in_bim",        # rsID-only file: the ID is at several positions in the .bim
    "duplicate_identical",     # another record of the same variant with the same values came first
    "duplicate_conflicting",   # records of the same variant with different values: all dropped
    "duplicate_id",            # one variant ID at different positions: all dropped
)
MAX_EXAMPLES = 5

# text that means "no value"
MISSING_TOKENS = ["", "NA", "na", "NaN", "nan", "N/A", "n/a", "#N/A", ".", "NULL", "null", "None"]

# column names (lower case) per field, best first
ALIASES = {
    "variant_id": ["variant_id", "rsid", "snp", "markername", "snpid", "snp_id", "rs_id", "rs", "id", "marker",
                   "markerid", "variant"],
    "chromosome": ["chromosome", "chr", "chrom", "#chrom", "chr_name", "chromosome_name"],
    "position": ["base_pair_location", "bp", "pos", "position", "base_pair", "chr_position", "physical_position"],
    "beta": ["beta", "b", "es", "effect", "effect_size", "log_or", "logor"],
    "odds_ratio": ["odds_ratio", "or", "oddsratio"],
    "standard_error": ["standard_error", "se", "stderr", "sebeta", "se_beta", "standarderror", "log_or_se"],
    "neg_log10_p": ["neg_log_10_p_value", "lp", "log10_p", "log10p", "mlog10p", "neglog10p", "neg_log10_p"],
    "p_value": ["p_value", "p", "pval", "pvalue", "p-value", "p.value", "p_val"],
    "effect_allele_frequency": ["effect_allele_frequency", "eaf", "af", "frq", "freq", "freq1", "a1freq", "a1_freq",
                                "af1", "effect_allele_freq"],
    "n": ["n", "ss", "n_total", "sample_size", "nmiss", "obs_ct", "totalsamplesize", "n_samples"],
    "test_statistic": ["test_statistic", "z", "zscore", "z_score", "z_stat", "t_stat", "stat", "tstat"],
    "errcode": ["errcode"],
}
EFFECT_ALLELE_NAMES = ["effect_allele", "ea", "allele1", "tested_allele"]
OTHER_ALLELE_NAMES = ["other_allele", "nea", "allele2", "non_effect_allele", "noneffect_allele", "omitted", "oa"]
# recognised, not carried into GWAS-SSF
KNOWN_UNUSED = {"info", "impinfo", "info_score", "qual", "filter", "cm", "ci_upper", "ci_lower", "direction",
                "ref_allele"}

LAYOUT_EFFECT_ALLELE = {
    "gwas-ssf": "effect_allele column",
    "gwas-vcf": "ALT (GWAS-VCF: ES and AF are relative to the alternative allele)",
    "opengwas-tsv": "A2 (MungeSumstats export of an OpenGWAS study: A1 = reference, A2 = effect allele)",
    "prscs": "A1 (PRS-CS input: A1 is the effect allele)",
    "ssgac": "A1 (SSGAC release: A1 is the effect allele, EAF its frequency)",
    "table": None,  # filled in from the column names
}

_BUILDS = {"grch37": "GRCh37", "hg19": "GRCh37", "b37": "GRCh37", "37": "GRCh37",
           "grch38": "GRCh38", "hg38": "GRCh38", "b38": "GRCh38", "38": "GRCh38"}
_CHR1_LENGTH_BUILD = {249250621: "GRCh37", 248956422: "GRCh38"}
_CHROM_RANK = {"X": 23, "Y": 24, "XY": 25, "MT": 26}
_LN10 = math.log(10.0)


# --------------------------------------------------------------------------------------------
# public API


def read_base_sumstats(path: str | Path, *, bim=None, n: float | None = None, build: str | None = None,
                       study: str | None = None, effect_allele_column: str | None = None
                       ) -> tuple[pd.DataFrame, dict]:
    """Read summary statistics in any supported layout as GWAS-SSF.

    ``bim``: a .bim DataFrame (columns chrom, id, cm, pos, a1, a2) or a PLINK prefix / .bim path;
    used only when the file has variant IDs but no positions (PRS-CS input).
    ``n``: sample size for rows whose file gives none (a GWAS-VCF's header totals come after it).
    ``build``: the genome build the positions should be on (GRCh37/hg19 or GRCh38/hg38); checked
    against what the file says where it says one (GWAS-VCF contig lengths, GWAS-SSF ``-meta.yaml``).
    ``study``: the GWAS-VCF sample column to read when there are several.
    ``effect_allele_column``: the column holding the effect allele, overriding the layout's rule.

    Returns (table, log): the table has the columns :data:`OUTPUT_COLUMNS` (GWAS-SSF plus
    ``neg_log10_p``, exact where the file gives -log10 p), sorted by chromosome (1..22, X, Y,
    XY, MT, others by name) and position, ``n`` float (NaN unknown), ``errcode`` empty.
    """
    path = Path(path)
    wanted_build = _normalise_build(build)
    data = _read_bytes(path)
    if data.startswith(b"BCF\x02"):
        data = _bcf_as_text(path)
    if data.startswith(b"##fileformat=VCF"):
        parsed = _parse_vcf(data, path, study=study)
    else:
        parsed = _parse_table(data, path, effect_allele_column=effect_allele_column)
    log = {
        "input": str(path),
        "layout": parsed["layout"],
        "effect_allele": parsed["effect_allele"],
        "rows_in": parsed["rows_in"],
        "columns": parsed["mapping"],
        "ignored_columns": parsed["ignored"],
        "derived": {},
        "notes": parsed.get("notes", []),
    }
    detected = parsed.get("build") or _sidecar_build(path)
    log["build"] = {"requested": wanted_build, "file": detected}
    if wanted_build and detected and wanted_build != detected:
        raise InputFormatError(f"positions are on {detected} ({parsed.get('build_evidence', 'file metadata')}), "
                               f"not {wanted_build} as asked", path=path)
    frame = _harmonise(parsed, path, log, bim=bim, n=n)
    log["rows_out"] = int(len(frame))
    return frame, log


def harmonise_sumstats(path: str | Path, out: str | Path, *, bim=None, n: float | None = None,
                       build: str | None = None, study: str | None = None,
                       effect_allele_column: str | None = None) -> dict:
    """Read ``path`` (any supported layout) and write ``out`` as GWAS-SSF (gzip when it ends in
    .gz) plus the log as JSON at :func:`log_path_for` ``(out)``; both atomic, same inputs give
    the same bytes. Returns the log."""
    frame, log = read_base_sumstats(path, bim=bim, n=n, build=build, study=study,
                                    effect_allele_column=effect_allele_column)
    out = Path(out)
    log["output"] = out.name
    write_sumstats(out, _writable(frame), log10_p=-frame["neg_log10_p"].to_numpy(float))
    write_json_atomic(log_path_for(out), log)
    return log


def log_path_for(out: str | Path) -> Path:
    """``X.tsv.gz`` / ``X.tsv`` -> ``X.harmonise.json`` (other names: ``out`` + ``.harmonise.json``)."""
    out = Path(out)
    name = out.name
    for suffix in (".tsv.gz", ".tsv", ".txt.gz", ".txt"):
        if name.endswith(suffix):
            return out.with_name(name[: -len(suffix)] + ".harmonise.json")
    return out.with_name(name + ".harmonise.json")


# --------------------------------------------------------------------------------------------
# bytes and lines


def _read_bytes(path: Path) -> bytes:
    data = read_inflated(path)
    if not data.strip():
        raise InputFormatError("empty file: no header and no rows", path=path)
    return data


def _bcf_as_text(path: Path) -> bytes:
    import cyvcf2

    try:
        vcf = cyvcf2.VCF(str(path))
        text = vcf.raw_header + "".join(str(v) for v in vcf)
    except Exception as exc:  # noqa: BLE001
        raise InputFormatError(f"cannot read BCF ({exc})", path=path) from None
    return text.encode()


def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    if starts[-1] == len(data):  # text ending in a newline has no last empty line
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _read_rows(body: bytes, names: list[str], *, delimiter: str, first_line: int, path: Path
               ) -> tuple[dict[str, pa.Array], np.ndarray, list[tuple[int, int, str]]]:
    """Rows of ``body`` (no header) as string columns; their file line numbers; malformed lines.

    A non-empty line with another number of fields than ``names`` is malformed (set aside, not
    parsed); empty lines are skipped. ``first_line`` is the file line number of body's first line.
    """
    starts, ends = _line_bounds(body)
    nonempty = ends > starts
    arr = np.frombuffer(body, dtype=np.uint8)
    delims = np.flatnonzero(arr == ord(delimiter))
    fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    good = nonempty & (fields == len(names))
    bad = np.flatnonzero(nonempty & ~good)
    malformed = [(first_line + int(i), int(fields[i]), body[starts[i]:ends[i]].decode("utf-8", "replace"))
                 for i in bad]
    line_numbers = first_line + np.flatnonzero(good)
    if bad.size:
        body = b"\n".join(body[starts[i]:ends[i]] for i in np.flatnonzero(good))
    columns: dict[str, pa.Array] = {}
    if line_numbers.size:
        try:
            table = pacsv.read_csv(
                pa.BufferReader(body),
                read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(len(names))]),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False),
                convert_options=pacsv.ConvertOptions(column_types={f"c{i}": pa.string() for i in range(len(names))},
                                                     strings_can_be_null=False))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise InputFormatError(f"not a text table ({exc})", path=path) from None
        if table.num_rows != line_numbers.size:  # cannot happen with quoting off; guard all the same
            raise InputFormatError("could not split the lines into fields", path=path)
        columns = {name: pc.utf8_trim_whitespace(table.column(f"c{i}").combine_chunks())
                   for i, name in enumerate(names)}
    else:
        columns = {name: pa.array([], pa.string()) for name in names}
    return columns, line_numbers, malformed


def _check_text(data: bytes, path: Path) -> None:
    head = data[:65536]
    if b"\x00" in head:
        raise InputFormatError("not a summary-statistics table (binary content)", path=path)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            raise InputFormatError("not a summary-statistics table (not UTF-8 text)", path=path) from None


# --------------------------------------------------------------------------------------------
# text tables


def _parse_table(data: bytes, path: Path, *, effect_allele_column: str | None) -> dict:
    _check_text(data, path)
    data = data.replace(b"\r\n", b"\n")
    starts, ends = _line_bounds(data)
    header_index = None
    for i in range(len(starts)):
        line = data[starts[i]:ends[i]]
        if line.strip() and not line.startswith(b"##"):
            header_index = i
            break
    if header_index is None:
        raise InputFormatError("no header line", path=path)
    header = data[starts[header_index]:ends[header_index]].decode("utf-8", "replace")
    body = data[ends[header_index] + 1:] if header_index + 1 < len(starts) else b""
    if "\t" in header:
        delimiter = "\t"
        names = header.split("\t")
        if names and names[-1].strip() == "":  # trailing tab on every line
            names = names[:-1]
            body = re.sub(rb"\t[ \t]*$", b"", body, flags=re.M)
    elif "," in header:
        delimiter = ","
        header = header.replace('"', "")
        body = body.replace(b'"', b"")
        names = header.split(",")
    else:
        delimiter = "\t"
        names = header.split()
        body = re.sub(rb"[ \t]+", b"\t", body)
        body = re.sub(rb"^\t|\t$", b"", body, flags=re.M)
    names = [s.strip() for s in names]
    if names and names[0].startswith("#"):
        names[0] = names[0][1:]
    lower = [s.lower() for s in names]
    dupes = sorted({s for s in names if lower.count(s.lower()) > 1})
    if dupes:
        raise InputFormatError(f"column name repeated in the header: {', '.join(dupes)}", path=path,
                               record=f"line {header_index + 1}")
    layout = _detect_layout(names)
    columns, lines, malformed = _read_rows(body, names, delimiter=delimiter, first_line=header_index + 2, path=path)
    mapping, ignored, fields, effect_rule = _map_columns(names, columns, layout, path,
                                                         effect_allele_column=effect_allele_column)
    return {"layout": layout, "effect_allele": effect_rule, "rows_in": int(len(lines) + len(malformed)),
            "header_fields": len(names),
            "mapping": mapping, "ignored": ignored, "fields": fields, "lines": lines, "malformed": malformed,
            "columns_in_file": names}


def _detect_layout(names: list[str]) -> str:
    lower = {s.lower() for s in names}
    if {"chromosome", "base_pair_location", "effect_allele", "other_allele"} <= lower:
        return "gwas-ssf"
    if names[:5] == ["SNP", "CHR", "BP", "A1", "A2"]:
        return "opengwas-tsv"
    if (len(names) == 5 and names[:3] == ["SNP", "A1", "A2"] and names[3] in ("BETA", "OR")
            and names[4] in ("P", "SE")):
        return "prscs"
    if names[:5] == ["MarkerName", "CHR", "POS", "A1", "A2"]:
        return "ssgac"
    return "table"


def _first_present(lower_to_name: dict[str, str], aliases: list[str]) -> list[str]:
    return [lower_to_name[a] for a in aliases if a in lower_to_name]


def _map_columns(names, columns, layout, path, *, effect_allele_column):
    """Which file column gives each field; the fields as string arrays; the effect-allele rule."""
    lower_to_name = {s.lower(): s for s in names}
    mapping: dict[str, str] = {}
    ignored: dict[str, str] = {}
    fields: dict[str, pa.Array] = {}
    for field, aliases in ALIASES.items():
        found = _first_present(lower_to_name, aliases)
        if found:
            fields[field] = columns[found[0]]
            mapping[found[0]] = field
            for other in found[1:]:
                ignored[other] = f"also {field}; {found[0]} used"
    # -log10 p (exact) over p when both are given
    if "neg_log10_p" in fields and "p_value" in fields:
        p_name = next(k for k, v in mapping.items() if v == "p_value")
        lp_name = next(k for k, v in mapping.items() if v == "neg_log10_p")
        ignored[p_name] = f"p-value; -log10 p in {lp_name} used (exact)"
        del mapping[p_name], fields["p_value"]
    # alleles
    effect, other, rule = _pick_alleles(names, lower_to_name, layout, path, effect_allele_column)
    if effect is not None:
        fields["effect_allele"] = columns[effect]
        mapping[effect] = "effect_allele"
    if isinstance(other, tuple):  # plink2 .glm without OMITTED: other = whichever of REF/ALT is not A1
        ref, alt = columns[other[0]], columns[other[1]]
        fields["other_allele"] = pc.if_else(pc.equal(columns[effect], alt), ref, alt)
        mapping[other[0]] = mapping[other[1]] = "other_allele (the one of REF/ALT that is not A1)"
    elif other is not None:
        fields["other_allele"] = columns[other]
        mapping[other] = "other_allele"
    for name in names:
        if name not in mapping and name not in ignored:
            ignored[name] = "not used" if name.lower() in KNOWN_UNUSED else "unknown column, not used"
    return mapping, ignored, fields, rule


def _pick_alleles(names, lower_to_name, layout, path, effect_allele_column):
    """(effect column, other column or (REF, ALT), rule text)."""
    a1, a2 = lower_to_name.get("a1"), lower_to_name.get("a2")
    if effect_allele_column is not None:
        if effect_allele_column not in names:
            raise InputFormatError(f"effect_allele_column {effect_allele_column!r} is not a column; columns: "
                                   f"{' '.join(names)}", path=path)
        pairs = [(a1, a2)] + [(lower_to_name.get(e), lower_to_name.get(o))
                              for e, o in (("allele1", "allele2"), ("alt", "ref"), ("ea", "nea"),
                                           ("effect_allele", "other_allele"))]
        for x, y in pairs:
            if effect_allele_column in (x, y) and x and y:
                other = y if effect_allele_column == x else x
                return effect_allele_column, other, f"{effect_allele_column} (as asked)"
        raise InputFormatError(f"effect_allele_column {effect_allele_column!r} is not one of an allele pair "
                               "(A1/A2, Allele1/Allele2, ALT/REF, EA/NEA)", path=path)
    if layout in ("gwas-ssf",):
        return lower_to_name["effect_allele"], lower_to_name["other_allele"], LAYOUT_EFFECT_ALLELE[layout]
    if layout == "opengwas-tsv":
        return a2, a1, LAYOUT_EFFECT_ALLELE[layout]
    if layout in ("prscs", "ssgac"):
        return a1, a2, LAYOUT_EFFECT_ALLELE[layout]
    effect = _first_present(lower_to_name, EFFECT_ALLELE_NAMES)
    other = _first_present(lower_to_name, OTHER_ALLELE_NAMES)
    if effect and other:
        return effect[0], other[0], f"{effect[0]} (named as the effect allele; other allele {other[0]})"
    if a1 and a2:
        return a1, a2, "A1 (bare A1/A2 pair: A1 taken as the effect allele, as PLINK, LDSC and PRS-CS use it)"
    if a1 and other:
        return a1, other[0], f"A1 (PLINK's tested allele; other allele {other[0]})"
    ref, alt = lower_to_name.get("ref"), lower_to_name.get("alt")
    if a1 and ref and alt:
        return a1, (ref, alt), "A1 (PLINK 2's tested allele; other allele the one of REF/ALT that is not A1)"
    if ref and alt:
        return alt, ref, "ALT (effect relative to the alternative allele)"
    return None, None, None


# --------------------------------------------------------------------------------------------
# GWAS-VCF


def _parse_meta(line: str) -> dict[str, str]:
    inner = line[line.index("<") + 1: line.rindex(">")] if "<" in line and ">" in line else ""
    out = {}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^,]*)', inner):
        out[m.group(1)] = m.group(2).strip('"')
    return out


def _parse_vcf(data: bytes, path: Path, *, study: str | None) -> dict:
    _check_text(data, path)
    starts, ends = _line_bounds(data)
    formats: dict[str, str] = {}
    contigs: dict[str, int] = {}
    sample_meta: dict[str, dict[str, str]] = {}
    header_index = None
    for i in range(len(starts)):
        line = data[starts[i]:ends[i]].decode("utf-8", "replace").rstrip("\r")
        if line.startswith("##FORMAT="):
            meta = _parse_meta(line)
            formats[meta.get("ID", "")] = meta.get("Number", "1")
        elif line.startswith("##contig="):
            meta = _parse_meta(line)
            if meta.get("length", "").isdigit():
                contigs[meta.get("ID", "")] = int(meta["length"])
        elif line.startswith("##SAMPLE="):
            meta = _parse_meta(line)
            sample_meta[meta.get("ID", "")] = meta
        elif line.startswith("#CHROM"):
            header_index = i
            break
        elif not line.startswith("##"):
            raise InputFormatError("VCF data before the #CHROM header line", path=path, record=f"line {i + 1}")
    if header_index is None:
        raise InputFormatError("VCF without a #CHROM header line", path=path)
    names = data[starts[header_index]:ends[header_index]].decode().rstrip("\r").lstrip("#").split("\t")
    samples = names[9:]
    if len(names) < 10 or names[8] != "FORMAT":
        raise InputFormatError("GWAS-VCF needs a FORMAT column and one sample column per study; columns: "
                               + " ".join(names), path=path, record=f"line {header_index + 1}")
    if study is None:
        if len(samples) > 1:
            raise InputFormatError(f"GWAS-VCF with {len(samples)} studies ({', '.join(samples)}): say which "
                                   "one to read (study=...)", path=path)
        study = samples[0]
    elif study not in samples:
        raise InputFormatError(f"no study {study!r} in the GWAS-VCF; studies: {', '.join(samples)}", path=path)
    missing_formats = [k for k in ("ES",) if k not in formats]
    if missing_formats or not ({"SE", "LP"} & formats.keys()):
        raise InputFormatError("GWAS-VCF without the FORMAT fields ES and SE or LP (effect size, its standard "
                               f"error, -log10 p); FORMAT fields: {', '.join(formats) or 'none'}", path=path)
    body = data[ends[header_index] + 1:] if header_index + 1 < len(starts) else b""
    body = body.replace(b"\r\n", b"\n")
    columns, lines, malformed = _read_rows(body, names, delimiter="\t", first_line=header_index + 2, path=path)
    rows_in = int(len(lines) + len(malformed))
    values = _split_format(columns["FORMAT"].to_numpy(zero_copy_only=False),
                           columns[study].to_numpy(zero_copy_only=False))
    alt = columns["ALT"].to_numpy(zero_copy_only=False).astype(object)
    text = {"CHROM": columns["CHROM"].to_numpy(zero_copy_only=False).astype(object),
            "POS": columns["POS"].to_numpy(zero_copy_only=False).astype(object),
            "ID": columns["ID"].to_numpy(zero_copy_only=False).astype(object),
            "REF": columns["REF"].to_numpy(zero_copy_only=False).astype(object), "ALT": alt,
            "FILTER": columns["FILTER"].to_numpy(zero_copy_only=False).astype(object)}
    notes = []
    multi = np.flatnonzero(np.array([("," in a) for a in alt], dtype=bool)) if len(alt) else np.empty(0, int)
    if multi.size:
        text, values, lines = _split_multiallelic(text, values, lines, multi, formats)
        notes.append(f"{multi.size} multi-allelic records split into one row per ALT allele")
    not_pass = int(np.sum(~np.isin(text["FILTER"], ["PASS", "."]))) if len(text["FILTER"]) else 0
    if not_pass:
        notes.append(f"{not_pass} rows with a FILTER other than PASS kept (FILTER is not used)")
    ids = text["ID"].copy()
    mapping = {"CHROM": "chromosome", "POS": "base_pair_location", "ID": "variant_id", "ALT": "effect_allele",
               "REF": "other_allele"}
    if "ID" in values:
        no_id = np.isin(ids, [".", ""])
        ids[no_id] = values["ID"][no_id]
        mapping["FORMAT/ID"] = "variant_id where the ID column is '.'"
    fields = {"variant_id": ids, "chromosome": text["CHROM"], "position": text["POS"],
              "effect_allele": text["ALT"], "other_allele": text["REF"]}
    for key, field in (("ES", "beta"), ("SE", "standard_error"), ("LP", "neg_log10_p"),
                       ("AF", "effect_allele_frequency"), ("SS", "n"), ("EZ", "test_statistic")):
        if key in values:
            fields[field] = values[key]
            mapping[f"FORMAT/{key}"] = field
    ignored = {f"FORMAT/{k}": "not used" if k in values else "declared in the header, in no record"
               for k in formats if f"FORMAT/{k}" not in mapping and k != "ID"}
    if "SE" not in values and "LP" not in values:
        raise InputFormatError("GWAS-VCF records without the FORMAT fields SE and LP (standard error, -log10 p); "
                               f"FORMAT fields in the records: {', '.join(values) or 'none'}", path=path)
    fields = {k: pa.array(v.astype(object), type=pa.string()) for k, v in fields.items()}
    build, evidence = _build_from_contigs(contigs)
    header_n = None
    meta = sample_meta.get(study, {})
    if meta.get("StudyType") == "CaseControl":
        try:
            header_n = float(meta["TotalCases"]) + float(meta["TotalControls"])
        except (KeyError, ValueError):
            header_n = None
    return {"layout": "gwas-vcf", "effect_allele": LAYOUT_EFFECT_ALLELE["gwas-vcf"], "rows_in": rows_in,
            "header_fields": len(names),
            "mapping": mapping, "ignored": ignored, "fields": fields, "lines": lines, "malformed": malformed,
            "columns_in_file": names[:9] + [f"FORMAT/{k}" for k in formats], "notes": notes, "study": study,
            "build": build, "build_evidence": evidence, "header_n": header_n}


def _split_format(fmt: np.ndarray, sample: np.ndarray) -> dict[str, np.ndarray]:
    """FORMAT keys -> per-row value text (None where the record lacks the key)."""
    n = len(fmt)
    out: dict[str, np.ndarray] = {}
    if n == 0:
        return out
    fmt_series = pd.Series(fmt, dtype=object)
    for f in pd.unique(fmt_series):
        rows = np.flatnonzero((fmt_series == f).to_numpy())
        keys = f.split(":")
        parts = pd.Series(sample[rows], dtype=object).str.split(":", expand=True)
        for j, key in enumerate(keys):
            column = out.setdefault(key, np.full(n, None, dtype=object))
            if j < parts.shape[1]:
                column[rows] = parts[j].to_numpy(dtype=object)
    return out


def _split_multiallelic(text, values, lines, multi, formats):
    n = len(lines)
    counts = np.ones(n, dtype=np.int64)
    counts[multi] = [len(a.split(",")) for a in text["ALT"][multi]]
    source = np.repeat(np.arange(n), counts)
    first_of = np.cumsum(counts) - counts
    text = {k: v[source].copy() for k, v in text.items()}
    values = {k: v[source].copy() for k, v in values.items()}
    for r in multi:
        for j in range(counts[r]):
            out_row = first_of[r] + j
            text["ALT"][out_row] = text["ALT"][out_row].split(",")[j]
            for key, column in values.items():
                if formats.get(key) == "A" and column[out_row] is not None:
                    items = column[out_row].split(",")
                    column[out_row] = items[j] if j < len(items) else None
    return text, values, lines[source]


def _build_from_contigs(contigs: dict[str, int]) -> tuple[str | None, str | None]:
    for name in ("1", "chr1"):
        if name in contigs and contigs[name] in _CHR1_LENGTH_BUILD:
            return _CHR1_LENGTH_BUILD[contigs[name]], f"contig {name} length {contigs[name]}"
    return None, None


def _normalise_build(build: str | None) -> str | None:
    if build is None:
        return None
    key = str(build).strip().lower()
    if key not in _BUILDS:
        raise CohortflowError(f"unknown genome build {build!r} (GRCh37/hg19 or GRCh38/hg38)")
    return _BUILDS[key]


def _sidecar_build(path: Path) -> str | None:
    meta = Path(f"{path}-meta.yaml")
    if not meta.exists():
        return None
    for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            if key.strip() == "genome_assembly":
                return _BUILDS.get(value.strip().strip("'\"").lower())
    return None


# --------------------------------------------------------------------------------------------
# values


class _Drops:
    """Rows still in, and per reason the count and the first few rows dropped."""

    def __init__(self, lines: np.ndarray, ids: np.ndarray):
        self.alive = np.ones(len(lines), dtype=bool)
        self.lines = lines
        self.ids = ids
        self.reasons: dict[str, dict] = {}

    def drop(self, reason: str, mask: np.ndarray, detail) -> None:
        """Drop the rows still in where ``mask``; ``detail(row)`` describes one (first few only)."""
        hit = np.flatnonzero(mask & self.alive)
        if hit.size:
            self.alive[hit] = False
            self.add(reason, hit, detail)

    def add(self, reason: str, rows: np.ndarray, detail) -> None:
        entry = self.reasons.setdefault(reason, {"count": 0, "examples": []})
        entry["count"] += int(len(rows))
        for i in rows[: max(0, MAX_EXAMPLES - len(entry["examples"]))]:
            entry["examples"].append({"line": int(self.lines[i]), "variant_id": str(self.ids[i]),
                                      "detail": detail(i) if callable(detail) else str(detail)})

    def summary(self) -> dict:
        return {r: self.reasons[r] for r in DROP_REASONS if r in self.reasons}


def _is_missing(values: pa.Array) -> np.ndarray:
    missing = pc.or_(pc.is_in(values, value_set=pa.array(MISSING_TOKENS)), pc.is_null(values))
    return missing.to_numpy(zero_copy_only=False)


def _to_float(values: pa.Array, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(numbers with NaN where missing or bad, not a finite number though not missing)."""
    cleaned = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), values)
    try:
        numbers = pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    except pa.ArrowInvalid:
        numbers = pd.to_numeric(pd.Series(cleaned.to_numpy(zero_copy_only=False), dtype=object),
                                errors="coerce").to_numpy(float)
    numbers = np.where(missing, np.nan, numbers)
    return numbers, ~missing & ~np.isfinite(numbers)


_SCI = re.compile(r"^\s*([+]?(?:\d+\.?\d*|\.\d+))[eE]([+-]?\d+)\s*$")


def _p_to_neg_log10(values: pa.Array, p: np.ndarray) -> np.ndarray:
    """-log10 p; p written below the double range (``1.2e-400``, read as 0) from its text."""
    with np.errstate(divide="ignore"):
        lp = -np.log10(p)
    for i in np.flatnonzero(p == 0.0):
        m = _SCI.match(str(values[int(i)].as_py()))
        if m and float(m.group(1)) > 0:
            lp[i] = -(math.log10(float(m.group(1))) + int(m.group(2)))
    return lp


def _fmt(value) -> str:
    return "NA" if value is None else repr(str(value))


def _codes(values: np.ndarray) -> np.ndarray:
    return pd.factorize(values, use_na_sentinel=False)[0].astype(np.int64)


def _normalise_chrom_column(values: pa.Array) -> np.ndarray:
    """normalise_chrom on the distinct names only (a GWAS has a few dozen over millions of rows)."""
    encoded = pc.dictionary_encode(values)
    names = normalise_chrom(encoded.dictionary.to_numpy(zero_copy_only=False))
    return names[encoded.indices.to_numpy(zero_copy_only=False)].astype(object)


def _harmonise(parsed: dict, path: Path, log: dict, *, bim, n) -> pd.DataFrame:
    fields: dict[str, pa.Array] = parsed["fields"]
    lines: np.ndarray = parsed["lines"]
    rows = len(lines)
    names = " ".join(parsed["columns_in_file"])
    if len(names) > 300:
        names = names[:300] + " ..."
    has_position = "chromosome" in fields and "position" in fields
    # required columns
    if not has_position and "variant_id" not in fields:
        raise InputFormatError("no chromosome/position columns (CHR, BP, POS, ...) and no variant ID column "
                               f"(SNP, rsid, MarkerName, ...); columns: {names}", path=path)
    if not has_position and bim is None:
        raise InputFormatError(f"variant IDs but no chromosome/position columns (columns: {names}); pass the "
                               ".bim that gives their positions (bim=PLINK prefix or .bim table; CLI --bim PREFIX)",
                               path=path)
    if "effect_allele" not in fields or "other_allele" not in fields:
        raise InputFormatError("no allele columns (effect_allele/other_allele, A1/A2, EA/NEA, Allele1/Allele2, "
                               f"ALT/REF); columns: {names}", path=path)
    if "beta" not in fields and "odds_ratio" not in fields:
        raise InputFormatError(f"no effect-size column (BETA, b, ES, effect, OR, odds_ratio); columns: {names}",
                               path=path)
    if not {"p_value", "neg_log10_p", "standard_error"} & fields.keys():
        raise InputFormatError("no p-value column (P, PVAL, p_value, LP, neg_log_10_p_value, ...) and no standard "
                               f"error (SE) to compute one from; columns: {names}", path=path)
    if rows == 0 and not parsed["malformed"]:
        raise InputFormatError(f"no data rows after the header (columns: {names})", path=path)

    missing = {f: _is_missing(values) for f, values in fields.items()}

    def raw(field, i):
        return _fmt(fields[field][int(i)].as_py())

    if "variant_id" in fields:
        ids = pc.if_else(pa.array(missing["variant_id"]), "NA", fields["variant_id"])
        ids = ids.to_numpy(zero_copy_only=False).astype(object)
    else:
        ids = np.full(rows, "NA", dtype=object)
    drops = _Drops(lines, ids)
    for line, n_fields, text in parsed["malformed"]:
        entry = drops.reasons.setdefault("malformed_line", {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < MAX_EXAMPLES:
            words = text.split()
            entry["examples"].append({"line": line, "variant_id": words[0] if words else "",
                                      "detail": f"{n_fields} fields, header has {parsed['header_fields']}: "
                                                f"{text[:120]}"})

    if "errcode" in fields:
        drops.drop("gwas_errcode", ~missing["errcode"], lambda i: f"errcode {raw('errcode', i)}")

    # missing required values, first such column named
    effect_field = "beta" if "beta" in fields else "odds_ratio"
    p_field = "neg_log10_p" if "neg_log10_p" in fields else ("p_value" if "p_value" in fields else None)
    required = (["chromosome", "position"] if has_position else ["variant_id"]) + \
        ["effect_allele", "other_allele", effect_field] + \
        [f for f in ("standard_error", p_field) if f is not None and f in fields]
    first_missing = np.full(rows, -1, dtype=np.int64)
    for k, f in enumerate(required):
        first_missing[(first_missing < 0) & missing[f]] = k
    drops.drop("missing_value", first_missing >= 0, lambda i: f"no {required[first_missing[i]]}")

    numeric = [f for f in ("position", effect_field, "standard_error", p_field) if f is not None and f in fields]
    optional = [f for f in ("effect_allele_frequency", "n", "test_statistic") if f in fields]
    numbers, bad_number = {}, {}
    for f in numeric + optional:
        numbers[f], bad_number[f] = _to_float(fields[f], missing[f])
    first_bad = np.full(rows, -1, dtype=np.int64)
    for k, f in enumerate(numeric):
        first_bad[(first_bad < 0) & bad_number[f]] = k
    drops.drop("non_numeric", first_bad >= 0, lambda i: f"{numeric[first_bad[i]]} {raw(numeric[first_bad[i]], i)}")

    # alleles: sequences of A/C/G/T, effect != other
    ea_arr = pc.utf8_upper(fields["effect_allele"])
    oa_arr = pc.utf8_upper(fields["other_allele"])
    good = pc.and_(pc.and_(pc.match_substring_regex(ea_arr, "^[ACGT]+$"),
                           pc.match_substring_regex(oa_arr, "^[ACGT]+$")),
                   pc.not_equal(ea_arr, oa_arr))
    good = pc.fill_null(good, False).to_numpy(zero_copy_only=False)
    drops.drop("bad_allele", ~good,
               lambda i: f"effect allele {raw('effect_allele', i)}, other allele {raw('other_allele', i)}")
    ea = ea_arr.to_numpy(zero_copy_only=False).astype(object)
    oa = oa_arr.to_numpy(zero_copy_only=False).astype(object)

    if has_position:
        pos = numbers["position"]
        # PLINK's limit (2^31 - 2) keeps every position a valid int32 for .bim files
        drops.drop("bad_position", ~((pos >= 1) & (pos <= 2**31 - 2) & (pos == np.floor(pos))),
                   lambda i: f"position {raw('position', i)}")

    # p-values, as -log10 p
    derived = log["derived"]
    source = {v: k for k, v in log["columns"].items()}
    if p_field == "neg_log10_p":
        lp = numbers["neg_log10_p"] + 0.0
        drops.drop("p_out_of_range", lp < 0, lambda i: f"-log10 p {raw('neg_log10_p', i)}")
        derived["p_value"] = f"10^-LP from {source['neg_log10_p']} (-log10 p, kept exact in neg_log10_p)"
    elif p_field == "p_value":
        p = numbers["p_value"]
        drops.drop("p_out_of_range", ~((p >= 0) & (p <= 1)), lambda i: f"p {raw('p_value', i)}")
        lp = _p_to_neg_log10(fields["p_value"], np.where(drops.alive, p, 1.0))
        drops.drop("p_out_of_range", ~np.isfinite(lp), lambda i: f"p {raw('p_value', i)}")
    else:
        lp = None

    # effect size
    if effect_field == "beta":
        beta = numbers["beta"]
    else:
        odds = numbers["odds_ratio"]
        drops.drop("odds_ratio_not_positive", ~(odds > 0), lambda i: f"OR {raw('odds_ratio', i)}")
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.log(odds)
        derived["beta"] = f"log(OR) from {source['odds_ratio']}"
        if "standard_error" in fields:
            log["notes"].append("standard error taken as the SE of log(OR)")

    z_given = numbers.get("test_statistic")
    if "standard_error" in fields:
        se = numbers["standard_error"]
        drops.drop("se_not_positive", ~(se > 0), lambda i: f"SE {raw('standard_error', i)}")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            if z_given is not None:
                se = beta / z_given
                derived["standard_error"] = f"beta / Z ({source['test_statistic']})"
                evidence = "test_statistic"
            else:
                # two-sided Wald test: |z| = Phi^-1(p/2), taken from log p so that tiny p keep precision
                z = -special.ndtri_exp(-lp * _LN10 - math.log(2.0))
                se = np.abs(beta) / z
                derived["standard_error"] = "|beta| / Phi^-1(1 - p/2) (two-sided Wald test)"
                evidence = p_field
        drops.drop("se_not_derivable", ~(np.isfinite(se) & (se > 0)),
                   lambda i: f"effect {raw(effect_field, i)}, {evidence} {raw(evidence, i)}")
    if lp is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            lp = -(math.log(2.0) + special.log_ndtr(-np.abs(beta / se))) / _LN10
        lp = np.maximum(lp, 0.0)
        derived["p_value"] = "two-sided Wald p from beta / SE"

    # optional numbers: a bad value is blanked (NaN), not fatal
    blanked = {}

    def optional_column(f, bad_extra=None):
        values = numbers[f]
        bad = bad_number[f] if bad_extra is None else bad_number[f] | bad_extra(values)
        bad &= drops.alive
        if bad.any():
            blanked[f] = {"count": int(bad.sum()),
                          "examples": [{"line": int(lines[i]), "variant_id": str(ids[i]), "value": raw(f, i)}
                                       for i in np.flatnonzero(bad)[:MAX_EXAMPLES]]}
        return np.where(bad, np.nan, values)

    with np.errstate(invalid="ignore"):
        eaf = (optional_column("effect_allele_frequency", lambda v: (v < 0) | (v > 1))
               if "effect_allele_frequency" in numbers else np.full(rows, np.nan))
        n_col = optional_column("n", lambda v: v <= 0) if "n" in numbers else np.full(rows, np.nan)
    if z_given is not None:
        stat = optional_column("test_statistic")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = beta / se
        derived["test_statistic"] = "beta / standard_error"
    if blanked:
        log["blanked_values"] = blanked
    log["n_source"] = _fill_n(n_col, n, parsed.get("header_n"), "n" in numbers)

    # positions
    if has_position:
        chrom = _normalise_chrom_column(fields["chromosome"])
        position = np.where(drops.alive, numbers["position"], 0).astype(np.int64)
        log["positions"] = "file" + ("; bim not used" if bim is not None else "")
    else:
        chrom, position = _positions_from_bim(bim, ids, drops, log)

    _drop_duplicates(drops, chrom, position, ea, oa, ids, np.column_stack([beta, se, lp, eaf, n_col]))
    keep = drops.alive
    log["dropped"] = drops.summary()
    log["rows_dropped"] = int(sum(v["count"] for v in log["dropped"].values()))
    if not keep.any():
        raise InputFormatError(f"no usable rows: all {log['rows_in']} dropped ("
                               + ", ".join(f"{k} {v['count']}" for k, v in log["dropped"].items()) + ")", path=path)
    lp_keep = lp[keep] + 0.0
    with np.errstate(under="ignore"):
        p_keep = 10.0 ** -lp_keep
    frame = pd.DataFrame({
        "chromosome": chrom[keep],
        "base_pair_location": position[keep],
        "effect_allele": ea[keep],
        "other_allele": oa[keep],
        "beta": beta[keep] + 0.0,
        "standard_error": se[keep],
        "effect_allele_frequency": eaf[keep],
        "p_value": p_keep,
        "n": n_col[keep],
        "variant_id": ids[keep],
        "test_statistic": stat[keep] + 0.0,
        "errcode": np.full(int(keep.sum()), "", dtype=object),
        "neg_log10_p": lp_keep,
    }, columns=OUTPUT_COLUMNS)
    rank, other_name = _chrom_sort_keys(frame["chromosome"].to_numpy(object))
    order = np.lexsort((np.arange(len(frame)), _codes_sorted(frame["other_allele"].to_numpy(object)),
                        _codes_sorted(frame["effect_allele"].to_numpy(object)),
                        frame["base_pair_location"].to_numpy(), _codes_sorted(other_name), rank))
    return frame.iloc[order].reset_index(drop=True)


def _codes_sorted(values: np.ndarray) -> np.ndarray:
    """Integer codes that sort like the strings (factorize, then rank the distinct values)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[np.argsort(np.asarray(uniques, dtype=str), kind="stable")] = np.arange(len(uniques))
    return rank[codes]


def _fill_n(n_col: np.ndarray, n_arg, header_n, has_column: bool) -> str:
    """n per row: the file's column, then the ``n`` argument, then a GWAS-VCF header's cases +
    controls; rounded to whole numbers (GWAS-SSF n is an integer). Fills ``n_col`` in place and
    says where the values came from."""
    sources = []
    if has_column:
        sources.append(f"file column ({int(np.isfinite(n_col).sum())} rows)")
    for value, name in ((n_arg, "n argument"), (header_n, "GWAS-VCF header TotalCases + TotalControls")):
        if value is None:
            continue
        value = float(value)
        if not (value > 0 and math.isfinite(value)):
            raise CohortflowError(f"sample size must be a positive number, not {value!r}")
        gap = np.isnan(n_col)
        if gap.any():
            n_col[gap] = value
            sources.append(f"{name} {value:g} ({int(gap.sum())} rows)")
    np.rint(n_col, out=n_col)
    return "; ".join(sources) if sources else "unknown (NaN): pass n"


def _positions_from_bim(bim, ids: np.ndarray, drops: _Drops, log: dict) -> tuple[np.ndarray, np.ndarray]:
    """Chromosome and position of each row's variant ID in the .bim (rsID-only files)."""
    if isinstance(bim, pd.DataFrame):
        source = "the .bim table given"
    else:
        bim_path = Path(bim)
        if bim_path.suffix != ".bim":
            bim_path = Path(f"{bim}.bim")
        source = str(bim_path)
        bim = read_bim(bim_path)
    sites = pd.DataFrame({"id": bim["id"].astype(str).to_numpy(object), "chrom": normalise_chrom(bim["chrom"]),
                          "pos": bim["pos"].to_numpy(np.int64)}).drop_duplicates(["id", "chrom", "pos"])
    n_sites = sites["id"].value_counts()
    first = sites.drop_duplicates("id").set_index("id")
    drops.drop("not_in_bim", ~np.isin(ids, first.index.to_numpy()), "ID not in the .bim")
    ambiguous = n_sites.index[n_sites > 1].to_numpy()
    drops.drop("ambiguous_in_bim", np.isin(ids, ambiguous),
               lambda i: "at " + ", ".join(f"{c}:{p}" for c, p in sites.loc[sites["id"] == ids[i], ["chrom", "pos"]]
                                           .itertuples(index=False)))
    chrom = np.full(len(ids), "", dtype=object)
    position = np.zeros(len(ids), dtype=np.int64)
    alive = np.flatnonzero(drops.alive)
    hit = first.loc[ids[alive]]
    chrom[alive] = hit["chrom"].to_numpy(object)
    position[alive] = hit["pos"].to_numpy(np.int64)
    log["positions"] = f"from {source} by variant ID"
    return chrom, position


def _drop_duplicates(drops: _Drops, chrom, position, ea, oa, ids, values: np.ndarray) -> None:
    """See the module docstring. ``values`` columns: beta, SE, -log10 p, EAF, n."""
    alive = np.flatnonzero(drops.alive)
    if alive.size < 2:
        return
    allele_codes = _codes(np.concatenate([ea[alive], oa[alive]]))
    ea_code, oa_code = allele_codes[: alive.size], allele_codes[alive.size:]
    keys = (np.minimum(ea_code, oa_code), np.maximum(ea_code, oa_code), position[alive], _codes(chrom[alive]))
    order = np.lexsort((alive,) + keys)  # within a variant, file order: the first record first
    rows = alive[order]
    sorted_keys = [k[order] for k in keys]
    new_group = np.ones(rows.size, dtype=bool)
    new_group[1:] = np.any([k[1:] != k[:-1] for k in sorted_keys], axis=0)
    group = np.cumsum(new_group) - 1
    size = np.bincount(group)
    in_dup = size[group] > 1
    if in_dup.any():
        first = rows[np.flatnonzero(new_group)][group]  # each row's group's first record
        v = values[rows].copy()
        flip = ea[rows] != ea[first]
        v[flip, 0] *= -1.0
        v[flip, 3] = 1.0 - v[flip, 3]
        reference = values[first]
        differs = ~np.isclose(v, reference, rtol=1e-9, atol=0.0, equal_nan=True)
        conflict_group = np.bincount(group, weights=differs.any(axis=1).astype(float)) > 0
        conflicting = in_dup & conflict_group[group]
        identical = in_dup & ~conflict_group[group] & ~new_group
        labels = ("beta", "SE", "-log10 p", "EAF", "n")
        row_pos = {int(r): k for k, r in enumerate(rows)}

        def same(r):
            k = row_pos[int(r)]
            note = f"same values as line {drops.lines[first[k]]}"
            return note + (f" (ID {ids[first[k]]} there)" if ids[r] != ids[first[k]] else "")

        def conflict(r):
            k = row_pos[int(r)]
            members = rows[group == group[k]]
            bad = np.flatnonzero(differs[group == group[k]].any(axis=0))
            col = int(bad[0]) if bad.size else 0
            shown = v[group == group[k], col]
            return (f"{members.size} records at lines {', '.join(str(drops.lines[m]) for m in members[:4])}"
                    f"{'...' if members.size > 4 else ''}; {labels[col]}: "
                    + ", ".join(f"{x:.6g}" for x in shown[:4]))

        _drop_rows(drops, "duplicate_identical", rows[identical], same)
        _drop_rows(drops, "duplicate_conflicting", rows[conflicting], conflict)
    # one ID at different positions
    alive = np.flatnonzero(drops.alive)
    alive = alive[~np.isin(ids[alive], ["NA", ".", ""])]
    if alive.size < 2:
        return
    id_code, chrom_code, pos = _codes(ids[alive]), _codes(chrom[alive]), position[alive]
    order = np.lexsort((pos, chrom_code, id_code))
    same_id = id_code[order][1:] == id_code[order][:-1]
    moved = same_id & ((chrom_code[order][1:] != chrom_code[order][:-1]) | (pos[order][1:] != pos[order][:-1]))
    bad_ids = np.unique(id_code[order][1:][moved])
    if bad_ids.size:
        bad_rows = alive[np.isin(id_code, bad_ids)]

        def where(r):
            at = sorted({f"{chrom[x]}:{position[x]}" for x in bad_rows[ids[bad_rows] == ids[r]]})
            return f"{ids[r]} at {', '.join(at)}"

        _drop_rows(drops, "duplicate_id", bad_rows, where)


def _drop_rows(drops: _Drops, reason: str, rows: np.ndarray, detail) -> None:
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if rows.size:
        drops.alive[rows] = False
        drops.add(reason, rows, detail)


def _chrom_sort_keys(chrom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank, name): 1..22 by number, then X, Y, XY, MT, then any other contig by name."""
    codes, uniques = pd.factorize(chrom, use_na_sentinel=False)
    rank = np.array([int(c) if str(c).isdigit() else _CHROM_RANK.get(c, 1_000_000) for c in uniques], dtype=np.int64)
    other = np.array([c if r == 1_000_000 else "" for c, r in zip(uniques, rank, strict=True)], dtype=object)
    return rank[codes], other[codes]


def _writable(frame: pd.DataFrame) -> dict:
    """The columns handed to :func:`write_sumstats`: n as whole-number text, NA where unknown."""
    out = {c: frame[c].to_numpy() for c in SSF_COLUMNS if c not in ("p_value", "n")}
    n = frame["n"].to_numpy(float)
    known = np.isfinite(n)
    text = pc.cast(pa.array(np.where(known, n, 0).astype(np.int64), mask=~known), pa.string())
    out["n"] = pc.fill_null(text, "NA")
    return out
