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
    """What alignment needs from one cohort's GWAS-SSF (:func:`cohort_table`)."""

    name: str
    source: str
    chromosome: pa.Array
    position: np.ndarray
    effect_allele: pa.Array
    other_allele: pa.Array
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


def _strings(values) -> pa.Array:
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    arr = pa.array(values, type=pa.string(), from_pandas=True)
    return pc.fill_null(arr, "")


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
    return CohortTable(name=name, source=source, chromosome=_strings(sumstats["chromosome"]), position=pos,
                       effect_allele=pc.utf8_upper(pc.utf8_trim_whitespace(_strings(sumstats["effect_allele"]))),
                       other_allele=pc.utf8_upper(pc.utf8_trim_whitespace(_strings(sumstats["other_allele"]))),
                       variant_id=_strings(sumstats["variant_id"]), beta=beta, se=se, eaf=eaf, n=n, tested=tested)


def _chrom_sort_key(name: str) -> tuple:
    from cohortflow.gwas.plots import chrom_sort_key

    return chrom_sort_key(name)


@numba.njit(cache=True)
def _group_rows(rankpos: np.ndarray, canon: np.ndarray, cohort: np.ndarray, order: np.ndarray):
    """Variants of rows sorted by (chromosome, position) (stable: cohort, then row order kept).

    Within each run of one position, rows with the same canonical allele pair are one variant,
    numbered in order of first appearance. Returns (group per sorted row, sorted index of each
    group's first row, number of groups, duplicate flag per sorted row: a second row of one
    cohort in one group)."""
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
            ca = canon[order[a]]
            found = -1
            for b in range(i, a):
                if canon[order[b]] == ca:
                    found = group[b]
                    break
            if found < 0:
                group[a] = g
                first[g] = a
                g += 1
            else:
                group[a] = found
                coh = cohort[order[a]]
                for b in range(i, a):
                    if group[b] == found and cohort[order[b]] == coh:
                        dup[a] = True
                        break
        i = j
    return group, first[:g], g, dup


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
        a1_empty = pc.equal(pc.utf8_length(t.effect_allele), 0).to_numpy(zero_copy_only=False)
        a2_empty = pc.equal(pc.utf8_length(t.other_allele), 0).to_numpy(zero_copy_only=False)
        same = pc.equal(t.effect_allele, t.other_allele).to_numpy(zero_copy_only=False)
        invalid = t.tested & (a1_empty | a2_empty | same)
        keep = t.tested & ~invalid
        keep_rows.append(np.flatnonzero(keep))
        counts.append({"name": t.name, "n_rows": int(len(t.position)),
                       "dropped": {"not_tested": int((~t.tested).sum()), "invalid_alleles": int(invalid.sum()),
                                   "duplicate": 0, "ambiguous": 0}})
    cohort = np.concatenate([np.full(len(r), c, dtype=np.int64) for c, r in enumerate(keep_rows)])
    row = np.concatenate(keep_rows).astype(np.int64)
    take = [pa.array(r) for r in keep_rows]
    chrom = pa.concat_arrays([t.chromosome.take(ix) for t, ix in zip(tables, take)])
    a1 = pa.concat_arrays([t.effect_allele.take(ix) for t, ix in zip(tables, take)])
    a2 = pa.concat_arrays([t.other_allele.take(ix) for t, ix in zip(tables, take)])
    ids = pa.concat_arrays([t.variant_id.take(ix) for t, ix in zip(tables, take)])
    pos = np.concatenate([t.position[r] for t, r in zip(tables, keep_rows)])
    beta = np.concatenate([t.beta[r] for t, r in zip(tables, keep_rows)])
    se = np.concatenate([t.se[r] for t, r in zip(tables, keep_rows)])
    eaf = np.concatenate([t.eaf[r] for t, r in zip(tables, keep_rows)])
    n = np.concatenate([t.n[r] for t, r in zip(tables, keep_rows)])
    nrow = len(row)

    # chromosome rank in natural order of the names on one scale; (rank, position) as one key
    ccodes, cnames = factorize_strings(chrom)
    norm = normalise_chrom_names(cnames) if len(cnames) else np.array([], dtype=object)
    ncodes, nuniq = pd.factorize(norm)
    rank_of = np.empty(len(nuniq), dtype=np.int64)
    for r, i in enumerate(sorted(range(len(nuniq)), key=lambda i: _chrom_sort_key(nuniq[i]))):
        rank_of[i] = r
    rank = rank_of[ncodes[ccodes]] if nrow else np.empty(0, dtype=np.int64)
    if nrow and (pos.min() < 0 or pos.max() >= 1 << 40):
        raise CohortflowError("base_pair_location out of range (0 .. 2^40)")
    rankpos = (rank << 40) | pos

    # allele codes; complement code of each single-base allele (-1: not a single base)
    acodes, alleles = factorize_strings(pa.concat_arrays([a1, a2, pa.array(_BASES, type=pa.string())]))
    d = len(alleles)
    base_code = {b: int(acodes[2 * nrow + i]) for i, b in enumerate(_BASES)}
    comp = np.full(d, -1, dtype=np.int64)
    for b, cb in _COMPLEMENT.items():
        comp[base_code[b]] = base_code[cb]
    e, o = acodes[:nrow], acodes[nrow:2 * nrow]
    ce, co = comp[e], comp[o]
    snp = (ce >= 0) & (co >= 0)
    lo, hi = np.minimum(e, o), np.maximum(e, o)
    clo, chi = np.minimum(ce, co), np.maximum(ce, co)
    use_c = snp & ((clo < lo) | ((clo == lo) & (chi < hi)))
    canon = np.where(use_c, clo * d + chi, lo * d + hi)

    order = np.argsort(rankpos, kind="stable")
    group_s, first_s, n_groups, dup_s = _group_rows(rankpos, canon, cohort, order)
    group = np.empty(nrow, dtype=np.int64)
    group[order] = group_s
    dup = np.empty(nrow, dtype=bool)
    dup[order] = dup_s
    ref_of_group = order[first_s]  # row (in the concatenation) defining each variant
    ref = ref_of_group[group]

    rel = np.full(nrow, -1, dtype=np.int64)
    is_ref = np.arange(nrow) == ref
    rel[is_ref] = REL_REFERENCE
    E, O = e[ref], o[ref]
    other = ~is_ref & ~dup
    rel[other & (e == E) & (o == O)] = REL_MATCH
    rel[other & (e == O) & (o == E)] = REL_SWAPPED
    rel[other & snp & (ce == E) & (co == O)] = REL_FLIPPED
    rel[other & snp & (ce == O) & (co == E)] = REL_FLIPPED_SWAPPED
    palindromic = other & snp & (comp[E] == O)
    ambiguous = np.zeros(nrow, dtype=bool)
    if palindromic.any() and not keep_palindromic:
        f_ref, f = eaf[ref], eaf
        with np.errstate(invalid="ignore"):
            far = (np.abs(f_ref - 0.5) > palindromic_margin) & (np.abs(f - 0.5) > palindromic_margin)
            same_side = (f_ref > 0.5) == (f > 0.5)
        labels_equal = e == E
        resolved = palindromic & far
        rel[resolved & labels_equal & same_side] = REL_MATCH
        rel[resolved & labels_equal & ~same_side] = REL_FLIPPED_SWAPPED
        rel[resolved & ~labels_equal & same_side] = REL_FLIPPED
        rel[resolved & ~labels_equal & ~same_side] = REL_SWAPPED
        ambiguous = palindromic & ~far
    elif palindromic.any():
        rel[palindromic & (e == E)] = REL_MATCH
        rel[palindromic & (e != E)] = REL_SWAPPED
    used = ~dup & ~ambiguous
    if np.any(used & (rel < 0)):  # pragma: no cover - every used row has a relation by construction
        raise AssertionError("unaligned row")
    sign = np.where((rel == REL_SWAPPED) | (rel == REL_FLIPPED_SWAPPED), -1.0, 1.0)
    eaf_aligned = np.where(sign < 0, 1.0 - eaf, eaf)

    m_beta = np.full((k_all, n_groups), np.nan)
    m_se = np.full((k_all, n_groups), np.nan)
    m_eaf = np.full((k_all, n_groups), np.nan)
    m_n = np.full((k_all, n_groups), np.nan)
    uc, ug = cohort[used], group[used]
    m_beta[uc, ug] = sign[used] * beta[used]
    m_se[uc, ug] = se[used]
    m_eaf[uc, ug] = eaf_aligned[used]
    m_n[uc, ug] = n[used]

    with np.errstate(invalid="ignore"):
        discrepant = used & ~is_ref & (np.abs(eaf_aligned - eaf_aligned[ref]) > EAF_DISCREPANCY)
    id_differs = used & ~is_ref
    if id_differs.any():
        idx = np.flatnonzero(id_differs)
        differs = pc.not_equal(ids.take(pa.array(idx)), ids.take(pa.array(ref[idx]))).to_numpy(zero_copy_only=False)
        id_differs[idx] = differs
    for c, entry in enumerate(counts):
        mine = cohort == c
        entry["n_used"] = int((mine & used).sum())
        for code, label in enumerate(RELATIONS):
            entry[label] = int((mine & used & (rel == code)).sum())
        entry["dropped"]["duplicate"] = int((mine & dup).sum())
        entry["dropped"]["ambiguous"] = int((mine & ambiguous).sum())
        entry["n_eaf_discrepant"] = int((mine & discrepant).sum())
        entry["n_variant_id_differs"] = int((mine & id_differs).sum())

    refs = pa.array(ref_of_group)
    return Alignment(names=[t.name for t in tables], chromosome=chrom.take(refs), position=pos[ref_of_group],
                     effect_allele=a1.take(refs), other_allele=a2.take(refs), variant_id=ids.take(refs),
                     beta=m_beta, se=m_se, eaf=m_eaf, n=m_n, counts=counts)
