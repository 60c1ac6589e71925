"""Allele alignment of several cohorts' summary statistics to one effect allele per variant.

A variant is a chromosome (names on one scale: ``chr1`` = ``1``, 23 = X), a position and an
unordered allele pair, strand-independent for SNPs: A/G matches A/G, G/A (swapped), T/C (strand
flipped) and C/T (flipped and swapped); alleles longer than one base (indels, multi-base
substitutions) match only exactly or swapped. Different alleles at one position are different
variants (multi-allelic sites), each matched on its own. The variant_id is not part of the key
(cohorts name variants differently); the output takes it from the reference.

The reference of a variant is the first cohort (in the order given) that has it: its effect and
other allele are the meta-analysis's. Another cohort's row is aligned to them: beta keeps its
sign when its effect allele is the reference's (also on the other strand) and is negated when it
is the reference's other allele; its effect allele frequency becomes 1 - eaf then.

Palindromic SNPs (A/T, C/G) look the same on both strands, so their labels cannot say which
allele is meant. Rule: a non-reference cohort's row of a palindromic SNP is kept only when both
its effect allele frequency and the reference's are far from 0.5, ``|eaf - 0.5| >
palindromic_margin`` (default 0.1, i.e. minor allele frequency below 0.4); its effect allele is
then the reference's effect allele when both frequencies lie on the same side of 0.5 and the
reference's other allele when not (whatever the labels say). Otherwise the row is dropped
("ambiguous"); the reference cohort's own row always stays. ``keep_palindromic`` trusts the labels
instead (same strand assumed).

Rows a cohort cannot contribute are dropped and counted by reason: ``not_tested`` (errcode set,
or beta/SE missing or SE <= 0), ``invalid_alleles`` (an allele empty, or both equal),
``duplicate`` (the cohort's second row of the same variant) and ``ambiguous``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.chrom import factorize_strings, normalise_chrom_names

RELATIONS = ("reference", "match", "swapped", "flipped", "flipped_swapped")
DROP_REASONS = ("not_tested", "invalid_alleles", "duplicate", "ambiguous")
REL_REFERENCE, REL_MATCH, REL_SWAPPED, REL_FLIPPED, REL_FLIPPED_SWAPPED = range(5)
# frequencies of the aligned effect allele further apart than this are counted (GWAMA warns)
EAF_DISCREPANCY = 0.3
_BASES = ("A", "C", "G", "T")
_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


@dataclass
class CohortTable:
    """What alignment needs from one cohort's GWAS-SSF (:func:`cohort_table`): chromosome and
    alleles dictionary-encoded (``chrom_idx`` into ``chrom_names``; ``effect_idx`` and
    ``other_idx`` into ``allele_names``, upper case), the other columns as arrays."""

    name: str
    source: str
    chrom_idx: np.ndarray
    chrom_names: pa.Array
    position: np.ndarray
    effect_idx: np.ndarray
    other_idx: np.ndarray
    allele_names: pa.Array
    variant_id: pa.Array
    beta: np.ndarray
    se: np.ndarray
    eaf: np.ndarray
    n: np.ndarray
    tested: np.ndarray


@dataclass
class Alignment:
    """Cohorts aligned to one effect allele per variant (the union of their variants).

    Per variant (genomic order: chromosomes naturally ordered, then position, then first
    appearance): ``chromosome`` (as the reference cohort writes it), ``position``,
    ``effect_allele``, ``other_allele``, ``variant_id``; per cohort x variant: ``beta``, ``se``,
    ``eaf`` (aligned; NaN where the cohort lacks the variant), ``n``. ``counts``: per cohort, its
    rows by relation to the reference and dropped rows by reason."""

    names: list[str]
    chromosome: pa.Array
    position: np.ndarray
    effect_allele: pa.Array
    other_allele: pa.Array
    variant_id: pa.Array
    beta: np.ndarray
    se: np.ndarray
    eaf: np.ndarray
    n: np.ndarray
    counts: list[dict] = field(default_factory=list)


def _numeric(df: pd.DataFrame, column: str, source: str, *, integer: bool = False) -> np.ndarray:
    """A column as numbers; a value that is neither a number nor missing (empty, NA) is an
    InputFormatError at its line (an integer column allows no missing value)."""
    raw = df[column]
    numeric = pd.api.types.is_numeric_dtype(raw)
    values = raw if numeric else pd.to_numeric(raw, errors="coerce")
    if integer:
        bad = values.isna() | (values != np.floor(values))
    elif numeric:
        bad = pd.Series(False, index=raw.index)
    else:
        missing = raw.isna() | raw.astype(str).str.strip().isin(["", "NA", "nan", "NaN"])
        bad = values.isna() & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "an integer" if integer else "a number"
        raise InputFormatError(f"{column} {raw.iloc[i]!r} is not {kind}", path=source, record=f"line {i + 2}")
    return values.to_numpy(dtype=np.int64 if integer else float)


def _array(values) -> pa.Array:
    """One Arrow array (a chunked one combined)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _strings(values) -> pa.Array:
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    arr = pa.array(values, type=pa.string(), from_pandas=True)
    return _array(pc.fill_null(arr, ""))


def cohort_table(sumstats: pd.DataFrame, *, name: str, source: str) -> CohortTable:
    """The columns alignment uses from a GWAS-SSF table read by
    :func:`cohortflow.io.sumstats.read_sumstats` (``source`` names the file in errors: a position
    that is not an integer or a beta that is not a number is an InputFormatError at its line)."""
    source = str(source)
    pos = _numeric(sumstats, "base_pair_location", source, integer=True)
    beta = _numeric(sumstats, "beta", source)
    se = _numeric(sumstats, "standard_error", source)
    eaf = _numeric(sumstats, "effect_allele_frequency", source)
    n = _numeric(sumstats, "n", source)
    errcode = sumstats["errcode"].fillna("").astype(str).to_numpy()
    tested = (errcode == "") & np.isfinite(beta) & np.isfinite(se) & (se > 0)
    m = len(sumstats)
    chrom = pc.dictionary_encode(_strings(sumstats["chromosome"]))
    alleles = pa.concat_arrays([_strings(sumstats["effect_allele"]), _strings(sumstats["other_allele"])])
    alleles = pc.dictionary_encode(_array(pc.utf8_upper(pc.utf8_trim_whitespace(alleles))))
    codes = alleles.indices.to_numpy(zero_copy_only=False)
    return CohortTable(name=name, source=source, chrom_idx=chrom.indices.to_numpy(zero_copy_only=False),
                       chrom_names=chrom.dictionary, position=pos, effect_idx=codes[:m], other_idx=codes[m:],
                       allele_names=alleles.dictionary, variant_id=_strings(sumstats["variant_id"]), beta=beta,
                       se=se, eaf=eaf, n=n, tested=tested)


def _chrom_sort_key(name: str) -> tuple:
    from cohortflow.gwas.plots import chrom_sort_key

    return chrom_sort_key(name)


@numba.njit(cache=True)
def _canonical_pairs(e: np.ndarray, o: np.ndarray, comp: np.ndarray, d: int) -> np.ndarray:
    """Per row, its unordered allele pair as lo * d + hi, for SNPs the smaller of the pair and its
    complement's (so swaps and strand flips give the same key)."""
    out = np.empty(e.shape[0], dtype=np.int64)
    for i in range(e.shape[0]):
        lo, hi = min(e[i], o[i]), max(e[i], o[i])
        ce, co = comp[e[i]], comp[o[i]]
        if ce >= 0 and co >= 0:
            clo, chi = min(ce, co), max(ce, co)
            if clo < lo or (clo == lo and chi < hi):
                lo, hi = clo, chi
        out[i] = lo * d + hi
    return out


@numba.njit(cache=True)
def _group_rows(rankpos: np.ndarray, canon: np.ndarray, cohort: np.ndarray, order: np.ndarray):
    """Variants of rows sorted by (chromosome, position) (stable: cohort, then row order kept).

    Within each run of one position, rows with the same canonical allele pair are one variant,
    numbered in order of first appearance. Returns (group per row, the row defining each group
    (its first), number of groups, duplicate flag per row: a second row of one cohort in one
    group)."""
    r = order.shape[0]
    group = np.empty(r, dtype=np.int64)
    first = np.empty(r, dtype=np.int64)
    dup = np.zeros(r, dtype=np.bool_)
    g = 0
    i = 0
    while i < r:
        key = rankpos[order[i]]
        j = i + 1
        while j < r and rankpos[order[j]] == key:
            j += 1
        for a in range(i, j):
            row = order[a]
            ca = canon[row]
            found = -1
            for b in range(i, a):
                if canon[order[b]] == ca:
                    found = group[order[b]]
                    break
            if found < 0:
                group[row] = g
                first[g] = row
                g += 1
            else:
                group[row] = found
                coh = cohort[row]
                for b in range(i, a):
                    if group[order[b]] == found and cohort[order[b]] == coh:
                        dup[row] = True
                        break
        i = j
    return group, first[:g].copy(), g, dup


# columns of _place_rows's tally after the relations
_T_DUPLICATE, _T_AMBIGUOUS, _T_DISCREPANT = len(RELATIONS), len(RELATIONS) + 1, len(RELATIONS) + 2


@numba.njit(cache=True)
def _place_rows(e, o, comp, cohort, group, first, dup, beta, se, eaf, n, k_all, n_groups, margin, keep_palindromic):
    """Each row's relation to its variant's reference row, and its aligned values placed in the
    (cohorts x variants) matrices. Returns (beta, se, eaf, n matrices; per cohort counts of the
    relations, duplicates, ambiguous rows and eaf discrepancies; rows whose variant_id to compare
    with the reference's)."""
    nrow = e.shape[0]
    m_beta = np.full((k_all, n_groups), np.nan)
    m_se = np.full((k_all, n_groups), np.nan)
    m_eaf = np.full((k_all, n_groups), np.nan)
    m_n = np.full((k_all, n_groups), np.nan)
    tally = np.zeros((k_all, len(RELATIONS) + 3), dtype=np.int64)
    check_id = np.zeros(nrow, dtype=np.bool_)
    for i in range(nrow):
        c = cohort[i]
        if dup[i]:
            tally[c, _T_DUPLICATE] += 1
            continue
        r = first[group[i]]
        ei, oi, er, orf = e[i], o[i], e[r], o[r]
        cei, coi = comp[ei], comp[oi]
        snp = cei >= 0 and coi >= 0
        if i == r:
            rel = REL_REFERENCE
        elif snp and comp[er] == orf:  # palindromic: the frequencies decide, or the labels
            same_label = ei == er
            if keep_palindromic:
                rel = REL_MATCH if same_label else REL_SWAPPED
            else:
                fr, f = eaf[r], eaf[i]
                if not (abs(fr - 0.5) > margin and abs(f - 0.5) > margin):  # NaN: not far
                    tally[c, _T_AMBIGUOUS] += 1
                    continue
                same_side = (fr > 0.5) == (f > 0.5)
                if same_label:
                    rel = REL_MATCH if same_side else REL_FLIPPED_SWAPPED
                else:
                    rel = REL_FLIPPED if same_side else REL_SWAPPED
        elif ei == er and oi == orf:
            rel = REL_MATCH
        elif ei == orf and oi == er:
            rel = REL_SWAPPED
        elif snp and cei == er and coi == orf:
            rel = REL_FLIPPED
        else:  # same canonical pair: the complement, swapped
            rel = REL_FLIPPED_SWAPPED
        sign = -1.0 if rel == REL_SWAPPED or rel == REL_FLIPPED_SWAPPED else 1.0
        f_aligned = 1.0 - eaf[i] if sign < 0 else eaf[i]
        g = group[i]
        m_beta[c, g] = sign * beta[i]
        m_se[c, g] = se[i]
        m_eaf[c, g] = f_aligned
        m_n[c, g] = n[i]
        tally[c, rel] += 1
        if rel != REL_REFERENCE:
            check_id[i] = True
            if abs(f_aligned - eaf[r]) > EAF_DISCREPANCY:  # the reference's own eaf is as written
                tally[c, _T_DISCREPANT] += 1
    return m_beta, m_se, m_eaf, m_n, tally, check_id


def align_cohorts(tables: Sequence[CohortTable], *, palindromic_margin: float = 0.1,
                  keep_palindromic: bool = False) -> Alignment:
    """Align the cohorts' rows to one effect allele per variant (rules: module docstring).

    Returns an :class:`Alignment` of the union of their variants; ``counts`` per cohort holds
    ``n_rows``, ``n_used``, the relations (``reference``: the cohort's alleles define the
    variant, being the first to have it; ``match``, ``swapped``, ``flipped``,
    ``flipped_swapped``), ``dropped`` by reason, ``n_eaf_discrepant`` (aligned frequency more
    than 0.3 from the reference's) and ``n_variant_id_differs`` (matched, named differently)."""
    k_all = len(tables)
    if k_all == 0:
        raise CohortflowError("no cohorts to align")
    if not 0 <= palindromic_margin < 0.5:
        raise CohortflowError(f"palindromic_margin must be in [0, 0.5), not {palindromic_margin}")
    counts = []
    keep_rows = []
    for c, t in enumerate(tables):
        empty = pc.equal(pc.utf8_length(t.allele_names), 0).to_numpy(zero_copy_only=False)
        invalid = t.tested & (empty[t.effect_idx] | empty[t.other_idx] | (t.effect_idx == t.other_idx))
        keep_rows.append(np.flatnonzero(t.tested & ~invalid))
        counts.append({"name": t.name, "n_rows": int(len(t.position)),
                       "dropped": {"not_tested": int((~t.tested).sum()), "invalid_alleles": int(invalid.sum()),
                                   "duplicate": 0, "ambiguous": 0}})
    cohort = np.concatenate([np.full(len(r), c, dtype=np.int64) for c, r in enumerate(keep_rows)])
    row = np.concatenate(keep_rows).astype(np.int64)
    pos = np.concatenate([t.position[r] for t, r in zip(tables, keep_rows)])
    beta = np.concatenate([t.beta[r] for t, r in zip(tables, keep_rows)])
    se = np.concatenate([t.se[r] for t, r in zip(tables, keep_rows)])
    eaf = np.concatenate([t.eaf[r] for t, r in zip(tables, keep_rows)])
    n = np.concatenate([t.n[r] for t, r in zip(tables, keep_rows)])
    nrow = len(row)

    # chromosome names of all cohorts (each cohort's dictionary in turn): their rank in natural
    # order of the names on one scale; (rank, position) as one sort key
    offsets = np.cumsum([0] + [len(t.chrom_names) for t in tables])
    chrom_names = pa.concat_arrays([t.chrom_names for t in tables])
    chrom = np.concatenate([t.chrom_idx[r].astype(np.int64) + offsets[c] for c, (t, r) in
                            enumerate(zip(tables, keep_rows))])
    norm = normalise_chrom_names(np.asarray(chrom_names.to_pylist(), dtype=object))
    ncodes, nuniq = pd.factorize(norm)
    rank_of = np.empty(len(nuniq), dtype=np.int64)
    for r, i in enumerate(sorted(range(len(nuniq)), key=lambda i: _chrom_sort_key(nuniq[i]))):
        rank_of[i] = r
    rank = rank_of[ncodes][chrom] if nrow else np.empty(0, dtype=np.int64)
    if nrow and (pos.min() < 0 or pos.max() >= 1 << 40):
        raise CohortflowError("base_pair_location out of range (0 .. 2^40)")
    rankpos = (rank << 40) | pos

    # allele codes over all cohorts' dictionaries; complement code of each single base (-1: none)
    acodes, alleles = factorize_strings(pa.concat_arrays([*(t.allele_names for t in tables),
                                                          pa.array(_BASES, type=pa.string())]))
    d = len(alleles)
    aoff = np.cumsum([0] + [len(t.allele_names) for t in tables])
    base_code = {b: int(acodes[aoff[-1] + i]) for i, b in enumerate(_BASES)}
    comp = np.full(d, -1, dtype=np.int64)
    for b, cb in _COMPLEMENT.items():
        comp[base_code[b]] = base_code[cb]
    luts = [acodes[aoff[c]:aoff[c + 1]] for c in range(k_all)]
    e = np.concatenate([lut[t.effect_idx[r]] for lut, t, r in zip(luts, tables, keep_rows)])
    o = np.concatenate([lut[t.other_idx[r]] for lut, t, r in zip(luts, tables, keep_rows)])
    canon = _canonical_pairs(e, o, comp, d)
    order = np.argsort(rankpos, kind="stable")
    group, ref_of_group, n_groups, dup = _group_rows(rankpos, canon, cohort, order)
    del order, canon, rankpos, rank
    m_beta, m_se, m_eaf, m_n, tally, check_id = _place_rows(
        e, o, comp, cohort, group, ref_of_group, dup, beta, se, eaf, n, k_all, n_groups, float(palindromic_margin),
        bool(keep_palindromic))
    # the reference rows' variant IDs, in variant order; the other rows' IDs compared with them
    ref_cohort, ref_row = cohort[ref_of_group], row[ref_of_group]
    parts, where = [], []
    for c, t in enumerate(tables):
        sel = np.flatnonzero(ref_cohort == c)
        parts.append(_array(t.variant_id).take(pa.array(ref_row[sel])))
        where.append(sel)
    inverse = np.empty(n_groups, dtype=np.int64)
    inverse[np.concatenate(where)] = np.arange(n_groups)
    variant_id = pa.concat_arrays(parts).take(pa.array(inverse)) if n_groups else pa.array([], type=pa.string())
    differs = np.zeros(k_all, dtype=np.int64)
    for c, t in enumerate(tables):
        idx = np.flatnonzero(check_id & (cohort == c))
        if len(idx):
            neq = pc.not_equal(_array(t.variant_id).take(pa.array(row[idx])), variant_id.take(pa.array(group[idx])))
            differs[c] = int(pc.sum(neq).as_py() or 0)
    for c, entry in enumerate(counts):
        entry["n_used"] = int(tally[c, :len(RELATIONS)].sum())
        for code, label in enumerate(RELATIONS):
            entry[label] = int(tally[c, code])
        entry["dropped"]["duplicate"] = int(tally[c, _T_DUPLICATE])
        entry["dropped"]["ambiguous"] = int(tally[c, _T_AMBIGUOUS])
        entry["n_eaf_discrepant"] = int(tally[c, _T_DISCREPANT])
        entry["n_variant_id_differs"] = int(differs[c])

    allele_names = pa.array(alleles, type=pa.string())

    def decode(codes: np.ndarray, names: pa.Array) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), names).dictionary_decode()

    return Alignment(names=[t.name for t in tables], chromosome=decode(chrom[ref_of_group], chrom_names),
                     position=pos[ref_of_group], effect_allele=decode(e[ref_of_group], allele_names),
                     other_allele=decode(o[ref_of_group], allele_names), variant_id=variant_id,
                     beta=m_beta, se=m_se, eaf=m_eaf, n=m_n, counts=counts)
