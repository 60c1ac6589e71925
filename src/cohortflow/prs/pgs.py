"""Scoring published polygenic scores (PGS Catalog scoring files) on the cohort's genotypes.

What ``pgsc_calc`` and ``plink2 --score`` do, in one pass over the .bed:

1. each score's variants are matched to the .bim by chromosome (``chr1`` = ``1``; 23/24/25/26 =
   X/Y/XY/MT), position and alleles (see :func:`match_variants` for the rules); the .bim is
   indexed once (:class:`BimSites`) and every step is an array operation;
2. per sample, SUM = sum over matched variants of weight x effect-allele dosage, computed for all
   scores together from the packed .bed bytes by :func:`cohortflow.prs.scoring.score_bed`: a
   missing call counts as 2 x the cohort's effect allele frequency (plink2 ``--score``'s default
   mean imputation, frequencies from all samples of the fileset; chrX/chrY/MT as plink2, see
   :mod:`cohortflow.prs.scoring`), and AVG = SUM / (2 x matched variants), plink2's
   ``SCORE1_AVG`` under mean imputation (its denominator counts imputed variants too, unlike its
   ALLELE_CT column).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from isal import igzip

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import atomic_path, write_json_atomic, write_table_atomic
from cohortflow.io.chrom import factorize_strings, normalise_chrom_names
from cohortflow.io.pgs import read_scoring_file
from cohortflow.io.pheno import is_binary, read_pheno_table, to_binary01
from cohortflow.io.plink import open_bed
from cohortflow.prs import kernels
from cohortflow.prs.scoring import score_bed

MATCH_COLUMNS = ["pgs_id", "trait_reported", "n_variants", "matched", "swapped", "flipped", "ambiguous_dropped",
                 "missing", "other_dropped", "fraction_matched", "weight_fraction_matched"]
# why a scoring-file variant is not used
DROP_REASONS = ("missing", "ambiguous", "allele_mismatch", "multiple_matches")
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _encode(values, normalise, index: dict[str, int], extra: dict[str, int] | None) -> np.ndarray:
    """Codes of ``values`` (normalised per distinct value) in ``index``; a name not there gets a
    new code in ``extra`` (numbered after ``index``), or -1 when ``extra`` is None."""
    codes, distinct = factorize_strings(values)
    lookup = np.empty(len(distinct), dtype=np.int64)
    for i, name in enumerate(normalise(distinct)):
        code = index.get(name)
        if code is None:
            code = -1 if extra is None else extra.setdefault(name, len(index) + len(extra))
        lookup[i] = code
    return lookup[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _upper(names: np.ndarray) -> list[str]:
    return [str(a).upper() for a in names]


def _is_snv(name: str) -> bool:
    return len(name) == 1 and name in "ACGT"


# a (chromosome, position) key: chromosome code above bit 42, position below
_POS_BITS = 42


class BimSites:
    """A .bim indexed for matching (chromosome names normalised, alleles as integer codes, sites
    sorted by (chromosome, position)); build once, match many scoring tables against it (also
    from several threads: it is not modified by matching).

    ``bim``: a DataFrame or an Arrow table with columns chrom, id, pos, a1, a2 (as
    :class:`cohortflow.io.plink.Bed` holds them)."""

    def __init__(self, bim):
        column = (lambda name: bim.column(name)) if isinstance(bim, pa.Table) else (lambda name: bim[name])
        self.n = bim.num_rows if isinstance(bim, pa.Table) else len(bim)
        self.ids = column("id")
        self.chroms: dict[str, int] = {}
        self.alleles: dict[str, int] = {"": 0}  # code 0: an unknown other allele
        chrom = _encode(column("chrom"), normalise_chrom_names, {}, self.chroms)
        pos = np.asarray(column("pos"), dtype=np.int64)
        extra: dict[str, int] = {}
        self.a1 = _encode(column("a1"), _upper, self.alleles, extra)
        self.a2 = _encode(column("a2"), _upper, self.alleles, extra)
        self.alleles.update(extra)
        names = list(self.alleles)
        self.snv = np.array([_is_snv(a) for a in names], dtype=bool)
        self.complement = np.array([self.alleles.get(a.translate(_COMPLEMENT), -1) if _is_snv(a) else -1
                                    for a in names], dtype=np.int64)
        ok = (pos >= 0) & (pos < (1 << _POS_BITS))
        key = np.where(ok, (chrom << _POS_BITS) | np.where(ok, pos, 0), -1 - np.arange(self.n, dtype=np.int64))
        self.order = np.argsort(key, kind="stable")  # equal keys (multi-allelic sites) in .bim order
        self.sorted_key = key[self.order]
        # end of each run of equal keys (multi-allelic sites), so one search finds all candidates
        starts = np.flatnonzero(np.r_[True, self.sorted_key[1:] != self.sorted_key[:-1]])
        self.run_end = np.repeat(np.r_[starts[1:], self.n], np.diff(np.r_[starts, self.n]))

    def variant_id(self, row: int) -> str:
        return str(self.ids[row])

    def candidates(self, chrom, pos: np.ndarray, has_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first index into ``order``, number of .bim variants) at each (chromosome, position);
        0 variants where there is no position, it is out of range or the chromosome is absent."""
        codes = _encode(chrom, normalise_chrom_names, self.chroms, None)
        ok = has_pos & (codes >= 0) & (pos >= 0) & (pos < (1 << _POS_BITS))
        key = np.where(ok, (codes << _POS_BITS) | np.where(ok, pos, 0), -1)
        if self.n == 0:
            return np.zeros(len(key), dtype=np.int64), np.zeros(len(key), dtype=np.int64)
        left = np.minimum(np.searchsorted(self.sorted_key, key, "left"), self.n - 1)
        found = ok & (self.sorted_key[left] == key)
        return left, np.where(found, self.run_end[left] - left, 0)

    def allele_codes(self, effect, other) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Codes of the effect and other alleles (alleles absent from the .bim get codes of their
        own, for this call only), with the per-code SNV flags and complement codes."""
        extra: dict[str, int] = {}
        ea = _encode(effect, _upper, self.alleles, extra)
        oa = _encode(other, _upper, self.alleles, extra)
        names = list(extra)
        snv = np.concatenate([self.snv, np.array([_is_snv(a) for a in names], dtype=bool)])
        complement = np.concatenate([self.complement, np.array(
            [self.alleles.get(a.translate(_COMPLEMENT), -1) if _is_snv(a) else -1 for a in names], dtype=np.int64)])
        return ea, oa, snv, complement


_STATUS = np.array(["matched", *DROP_REASONS], dtype=object)  # index 0 matched, then DROP_REASONS


def match_variants(table: pd.DataFrame, bim, *, keep_ambiguous: bool = False) -> pd.DataFrame:
    """Match the rows of a scoring table (:func:`cohortflow.io.pgs.read_scoring_file`) to a .bim
    (a DataFrame, an Arrow table or a :class:`BimSites` built from one).

    Candidates are the .bim variants at the row's chromosome and position (several at a
    multi-allelic site). A candidate matches, best first:
    0. directly: effect allele = .bim A1 (the counted allele) and other allele = A2;
    1. swapped: effect allele = A2 and other allele = A1 (the weight applies to 2 - A1 count);
    2. strand flipped: the complemented alleles match directly;
    3. flipped and swapped.
    An unknown other allele (``""``) matches any. Flips are tried only for SNVs whose .bim alleles
    are not complementary. A match to an A/T or C/G SNV is ambiguous (strand cannot be told) and
    is dropped unless ``keep_ambiguous``, in which case it is used as written (never flipped).
    Alleles are compared in upper case.

    Returns ``table`` with added columns ``bim_row`` (-1 when unused), ``status`` (categorical:
    ``matched`` or a :data:`DROP_REASONS` entry: ``missing`` = no .bim variant at the position or
    no position, ``allele_mismatch`` = variants there but none with these alleles,
    ``multiple_matches`` = more than one .bim variant matches equally well), ``swapped`` and
    ``flipped`` (booleans).
    Two scoring rows matched to the same .bim variant raise CohortflowError (duplicated weights
    are not summed: a scoring file listing a variant twice is taken to be an error).

    All steps are array operations (strings become integer codes once per distinct value).
    """
    sites = bim if isinstance(bim, BimSites) else BimSites(bim)
    out = table.copy(deep=False)  # new columns go on a shallow copy; the caller's table is unchanged
    out.index = pd.RangeIndex(len(out))
    n = len(out)
    pos_values = pd.array(out["pos"], dtype="Int64")
    has_pos = ~np.asarray(pos_values.isna(), dtype=bool)
    pos = np.asarray(pos_values.fillna(-1), dtype=np.int64)
    left, n_cand = sites.candidates(out["chrom"], pos, has_pos)
    ea, oa, snv, comp = sites.allele_codes(out["effect_allele"], out["other_allele"])

    status = np.full(n, 1 + DROP_REASONS.index("missing"), dtype=np.int64)
    bim_row = np.full(n, -1, dtype=np.int64)
    swapped = np.zeros(n, dtype=bool)
    flipped = np.zeros(n, dtype=bool)
    total = int(n_cand.sum())
    if total:
        single = total == np.count_nonzero(n_cand)
        if single:  # one candidate per row (no multi-allelic site): nothing to rank
            pair_row = np.flatnonzero(n_cand)
            pair_bim = sites.order[left[pair_row]]
        else:
            pair_row = np.repeat(np.arange(n, dtype=np.int64), n_cand)
            offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n_cand) - n_cand, n_cand)
            pair_bim = sites.order[np.repeat(left, n_cand) + offset]
        e, o = ea[pair_row], oa[pair_row]
        a1, a2 = sites.a1[pair_bim], sites.a2[pair_bim]
        o_any = o == 0
        bim_snv = snv[a1] & snv[a2]
        ambiguous = bim_snv & (comp[a1] == a2)
        can_flip = bim_snv & ~ambiguous & snv[e] & (o_any | snv[o])
        e_c, o_c = comp[e], comp[o]
        level = np.select([
            (e == a1) & (o_any | (o == a2)),
            (e == a2) & (o_any | (o == a1)),
            can_flip & (e_c == a1) & (o_any | (o_c == a2)),
            can_flip & (e_c == a2) & (o_any | (o_c == a1)),
        ], [0, 1, 2, 3], default=4)
        if single:
            starts = np.arange(len(pair_row))
            n_best = np.ones(len(pair_row), dtype=np.int64)
        else:
            # per row, candidates by level then .bim row (they come in .bim order within a row)
            order = np.argsort(pair_row * 5 + level, kind="stable")
            pair_row, pair_bim, level, ambiguous = pair_row[order], pair_bim[order], level[order], ambiguous[order]
            starts = np.flatnonzero(np.r_[True, pair_row[1:] != pair_row[:-1]])
            sizes = np.diff(np.r_[starts, total])
            n_best = np.add.reduceat((level == np.repeat(level[starts], sizes)).astype(np.int64), starts)
        best = level[starts]
        r = pair_row[starts]
        st = np.where(best == 4, 1 + DROP_REASONS.index("allele_mismatch"),
                      np.where(n_best > 1, 1 + DROP_REASONS.index("multiple_matches"),
                               np.where(ambiguous[starts] & (not keep_ambiguous), 1 + DROP_REASONS.index("ambiguous"),
                                        0)))
        status[r] = st
        used = st == 0
        bim_row[r[used]] = pair_bim[starts][used]
        swapped[r[used]] = (best[used] == 1) | (best[used] == 3)
        flipped[r[used]] = best[used] >= 2

    used = np.flatnonzero(bim_row >= 0)
    rows_used = bim_row[used]
    if rows_used.size > 1 and not np.all(rows_used[1:] > rows_used[:-1]):  # sorted files need no sort
        distinct, counts = np.unique(rows_used, return_counts=True)
        if np.any(counts > 1):
            variant = distinct[np.argmax(counts > 1)]  # the first repeated variant in .bim order
            dup = used[rows_used == variant]
            lines = ", ".join(str(x) for x in out["line"].to_numpy()[dup])
            raise CohortflowError(f"lines {lines} all match .bim variant {sites.variant_id(int(variant))}; "
                                  "remove the duplicated weights (they are not summed)")
    out["bim_row"] = bim_row
    out["status"] = pd.Categorical.from_codes(status, categories=list(_STATUS))
    out["swapped"] = swapped
    out["flipped"] = flipped
    return out


def match_counts(matched: pd.DataFrame) -> dict:
    """Counts of a :func:`match_variants` result: ``n_variants``, ``matched`` (used in the score, any
    orientation), ``swapped`` and ``flipped`` (how many of the matched needed that; a variant can be
    both), ``ambiguous_dropped``, ``missing``, ``other_dropped`` (allele mismatch + multiple
    matches), ``fraction_matched`` (matched / n_variants), ``weight_fraction_matched`` (sum of
    |weight| matched / sum of |weight|) and ``dropped_by_reason``.
    ``n_variants = matched + ambiguous_dropped + missing + other_dropped``."""
    status = pd.Categorical(matched["status"], categories=list(_STATUS))  # as is when already so
    per_status = np.bincount(status.codes[status.codes >= 0], minlength=len(_STATUS))
    used = status.codes == 0
    by_reason = {reason: int(per_status[1 + i]) for i, reason in enumerate(DROP_REASONS)}
    total_weight = float(np.abs(matched["weight"].to_numpy()).sum())
    n = len(matched)
    return {
        "n_variants": n, "matched": int(used.sum()), "swapped": int(matched["swapped"].sum()),
        "flipped": int(matched["flipped"].sum()), "ambiguous_dropped": by_reason["ambiguous"],
        "missing": by_reason["missing"], "other_dropped": by_reason["allele_mismatch"] + by_reason["multiple_matches"],
        "fraction_matched": used.sum() / n if n else float("nan"),
        "weight_fraction_matched": float(np.abs(matched["weight"].to_numpy()[used]).sum()) / total_weight
        if total_weight > 0 else float("nan"),
        "dropped_by_reason": by_reason,
    }



def _auc(score: np.ndarray, case: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``case`` (1) against control (0): the
    Mann-Whitney statistic from mid-ranks (ties count one half)."""
    ranks = pd.Series(score).rank(method="average").to_numpy()
    n1 = int((case == 1).sum())
    n0 = len(case) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[case == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _trait_metrics(score: np.ndarray, iids: np.ndarray, pheno: Path, traits: list[str]) -> dict:
    """Per trait: n and r, r2 (quantitative) or auc, n_cases, n_controls (binary)."""
    table = read_pheno_table(pheno, columns=list(traits), require_numeric=True)
    out = {}
    for trait in traits:
        values = table[trait]
        binary = is_binary(values)
        y = (to_binary01(values) if binary else values).reindex(iids).to_numpy(float)
        ok = ~np.isnan(y)
        s, yy = score[ok], y[ok]
        res: dict = {"type": "binary" if binary else "quantitative", "n": int(ok.sum())}
        if binary:
            res.update({"n_cases": int((yy == 1).sum()), "n_controls": int((yy == 0).sum()),
                        "auc": _auc(s, yy.astype(int)) if ok.sum() and np.std(s) > 0 else float("nan")})
        else:
            r = float(np.corrcoef(s, yy)[0, 1]) if ok.sum() > 2 and np.std(s) > 0 and np.std(yy) > 0 else float("nan")
            res.update({"r": r, "r2": r * r})
        out[trait] = res
    return out


def _write_score_table(path: Path, iids: np.ndarray, names: list[str], values: np.ndarray) -> None:
    """``IID`` and the value columns, tab-separated, values as %.10g, gzip (ISA-L level 1, mtime 0:
    same values, same bytes), written atomically."""
    encoded = [str(iid).encode() for iid in iids]
    id_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    id_offsets[1:] = np.cumsum([len(e) for e in encoded])
    id_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    body = kernels.format_score_table(id_bytes, id_offsets, np.ascontiguousarray(values, dtype=np.float64), 10)
    text = ("\t".join(["IID", *names]) + "\n").encode() + body.tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(igzip.compress(text, compresslevel=1, mtime=0))


def score_pgs(*, bfile: str | Path, scores: list, min_overlap: float = 0.75, keep_ambiguous: bool = False,
              pheno: str | Path | None = None, traits: list[str] | None = None, out_prefix: str | Path,
              threads: int = 1, max_shard_variants: int = 2_000_000) -> dict:
    """Score the published polygenic scores ``scores`` (scoring-file paths) on ``bfile``.

    Each score's variants are matched with :func:`match_variants` (the .bim indexed once for all
    files); a score whose matched fraction is below ``min_overlap`` raises CohortflowError (with
    the counts per reason) before anything is written. All scores are then computed together in
    one pass over the matched variants' packed .bed rows (:func:`cohortflow.prs.scoring.score_bed`,
    ``threads`` numba threads). Missing genotypes: mean imputation, plink2 ``--score``'s default
    (a missing call counts as 2 x the A1 frequency among all samples' called genotypes, so a
    swapped variant's missing call counts as 2 x the effect allele's frequency).

    Writes:
    - ``{out_prefix}.scores.tsv.gz``: ``IID`` then ``{pgs_id}_SUM`` and ``{pgs_id}_AVG`` per score,
      .fam order (individual-level; stays in the cohort); AVG = SUM / (2 x matched variants of
      that score), the same denominator for every sample (plink2's SCORE*_AVG under mean
      imputation);
    - ``{out_prefix}.match.tsv``: one row per score, columns :data:`MATCH_COLUMNS` (see
      :func:`match_counts`);
    - ``{out_prefix}.summary.json``: ``n_samples``, ``min_overlap``, ``keep_ambiguous``,
      ``imputation``, and ``scores`` -> ``{pgs_id}`` -> ``trait_reported``, ``genome_build``, the
      match counts of :func:`match_counts` and, with ``pheno`` and ``traits``, ``traits`` ->
      ``{trait}`` -> ``type``, ``n`` and ``r``/``r2`` (quantitative) or ``auc``/``n_cases``/
      ``n_controls`` (binary) of the SUM with the trait. Aggregate figures only.
    The sums are computed per shard of the .bim (:func:`cohortflow.gwas.shards.shard_plan`: per
    chromosome, chunks of at most ``max_shard_variants``) and added in shard order, which is
    what the workflow's per-chromosome jobs do (:func:`match_pgs`, :func:`pgs_partial_sums`,
    :func:`gather_pgs`): both give the same bytes.
    Returns the summary dict.
    """
    from cohortflow.gwas.shards import shard_plan

    if (pheno is None) != (not traits):
        raise CohortflowError("pheno and traits go together: give both or neither")
    matched = match_pgs(bfile=bfile, scores=scores, min_overlap=min_overlap, keep_ambiguous=keep_ambiguous,
                        threads=threads)
    bed = open_bed(bfile)
    plan = shard_plan(bed.bim_table.column("chrom").to_pandas(), max_variants=max_shard_variants)
    partials = [pgs_partial_sums(bfile=bfile, matched=matched, variant_range=(int(a), int(b)), threads=threads)
                for a, b in zip(plan["start"], plan["stop"])]
    return gather_pgs(bfile=bfile, matched=matched, partials=partials, pheno=pheno, traits=traits,
                      out_prefix=out_prefix)


def match_pgs(*, bfile: str | Path, scores: list, min_overlap: float = 0.75, keep_ambiguous: bool = False,
              threads: int = 1, out: str | Path | None = None) -> dict:
    """Step 1 of :func:`score_pgs`: match every scoring file to the .bim (errors before anything
    is written) and build the weight matrix over the union of matched variants. Returns (and,
    with ``out``, writes as JSON) {"bim_rows", "weights" (one list per variant), "count_a2",
    "entries": [{"header", "counts"}]} — aggregate: no sample appears."""
    if not 0 <= min_overlap <= 1:
        raise CohortflowError(f"min_overlap must be between 0 and 1, not {min_overlap}")
    if not scores:
        raise CohortflowError("no scoring files given")
    bed = open_bed(bfile)
    sites = BimSites(bed.bim_table)

    def read_and_match(path):
        header, table = read_scoring_file(path)
        try:
            matched = match_variants(table, sites, keep_ambiguous=keep_ambiguous)
        except CohortflowError as err:
            raise CohortflowError(err.problem, path=path) from None
        rows = matched["bim_row"].to_numpy()
        used = rows >= 0  # keep only what scoring needs: the tables can be large
        return header, match_counts(matched), (rows[used], matched["weight"].to_numpy(float)[used],
                                               matched["swapped"].to_numpy(bool)[used])

    entries = []
    seen: dict[str, str] = {}
    # files are read and matched in `threads` threads (ISA-L, Arrow and numpy release the GIL);
    # their results are taken in the order given, so the first bad file in that order raises
    with ThreadPoolExecutor(max_workers=max(1, min(int(threads), len(scores)))) as pool:
        for path, (header, counts, used) in zip(scores, pool.map(read_and_match, scores)):
            pgs_id = header["pgs_id"]
            if pgs_id in seen:
                raise CohortflowError(f"pgs_id {pgs_id!r} is also the ID of {seen[pgs_id]}", path=path)
            seen[pgs_id] = str(path)
            if counts["fraction_matched"] < min_overlap or counts["matched"] == 0:
                reasons = ", ".join(f"{k} {v}" for k, v in counts["dropped_by_reason"].items() if v)
                raise CohortflowError(
                    f"score {pgs_id}: only {counts['matched']} of {counts['n_variants']} variants matched the "
                    f"genotypes ({counts['fraction_matched']:.1%}, min_overlap {min_overlap:.0%}); "
                    f"not matched: {reasons}"
                    + (" (ambiguous A/T, C/G SNPs are dropped unless keep_ambiguous)"
                       if counts["ambiguous_dropped"] else ""),
                    path=path)
            entries.append((header, used, counts))

    # one weight column per score; a swapped variant's weight is on the .bim A2 allele (counted as
    # plink2 counts a score file's allele that is A2, no constant added and subtracted)
    in_any = np.zeros(bed.n_variants, dtype=bool)
    for _, (rows, _, _), _ in entries:
        in_any[rows] = True
    union = np.flatnonzero(in_any)
    weights = np.zeros((len(union), len(entries)))
    count_a2 = np.zeros((len(union), len(entries)), dtype=bool)
    for s, (_, (rows, w, swapped), _) in enumerate(entries):
        at = np.searchsorted(union, rows)
        weights[at, s] = w
        count_a2[at, s] = swapped
    result = {"bim_rows": union.tolist(), "weights": weights.tolist(), "count_a2": count_a2.astype(int).tolist(),
              "entries": [{"header": dict(h), "counts": c} for h, _, c in entries],
              "min_overlap": float(min_overlap), "keep_ambiguous": bool(keep_ambiguous)}
    if out is not None:
        write_json_atomic(out, result)
    return result


def _read_matched(matched: dict | str | Path) -> dict:
    if isinstance(matched, (str, Path)):
        import json

        with open(matched, encoding="utf-8") as fh:
            return json.load(fh)
    return matched


def pgs_partial_sums(*, bfile: str | Path, matched: dict | str | Path, variant_range: tuple[int, int],
                     threads: int = 1, out: str | Path | None = None) -> np.ndarray:
    """Step 2: every sample's sums over the matched variants in the .bim rows ``variant_range``
    (start, stop), all scores at once: float64 (samples, scores); with ``out`` also written as
    .npy (individual-level: stays in the cohort)."""
    m = _read_matched(matched)
    bed = open_bed(bfile)
    rows = np.asarray(m["bim_rows"], dtype=np.int64)
    k = len(m["entries"])
    start, stop = variant_range
    sel = np.flatnonzero((rows >= start) & (rows < stop))
    if sel.size:
        weights = np.asarray(m["weights"], dtype=np.float64).reshape(-1, k)[sel]
        count_a2 = np.asarray(m["count_a2"], dtype=bool).reshape(-1, k)[sel]
        sums = score_bed(bed, rows[sel], weights, count_a2=count_a2, threads=threads)
    else:
        sums = np.zeros((bed.n_samples, k))
    if out is not None:
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(sums, dtype=np.float64))
    return sums


def gather_pgs(*, bfile: str | Path, matched: dict | str | Path, partials: list, pheno: str | Path | None = None,
               traits: list[str] | None = None, out_prefix: str | Path) -> dict:
    """Step 3: add the shards' partial sums in the order given and write the outputs of
    :func:`score_pgs`. ``partials``: arrays or .npy paths."""
    if (pheno is None) != (not traits):
        raise CohortflowError("pheno and traits go together: give both or neither")
    m = _read_matched(matched)
    bed = open_bed(bfile)
    k = len(m["entries"])
    sums = np.zeros((bed.n_samples, k))
    for part in partials:
        part = np.load(part) if isinstance(part, (str, Path)) else np.asarray(part, dtype=np.float64)
        if part.shape != sums.shape:
            raise CohortflowError(f"partial sums of shape {part.shape}, expected {sums.shape}")
        sums += part
    entries = [(e["header"], None, e["counts"]) for e in m["entries"]]
    iids = bed.fam["iid"].to_numpy()
    names, values = [], np.empty((len(iids), 2 * len(entries)))
    for s, (header, _, counts) in enumerate(entries):
        names += [f"{header['pgs_id']}_SUM", f"{header['pgs_id']}_AVG"]
        values[:, 2 * s] = sums[:, s]
        values[:, 2 * s + 1] = sums[:, s] / (2.0 * counts["matched"])
    out_prefix = Path(str(out_prefix))
    _write_score_table(Path(f"{out_prefix}.scores.tsv.gz"), iids, names, values)

    match_rows = [{"pgs_id": h["pgs_id"], "trait_reported": h.get("trait_reported", ""),
                   **{col: c[col] for col in MATCH_COLUMNS[2:]}} for h, _, c in entries]
    write_table_atomic(f"{out_prefix}.match.tsv", pd.DataFrame(match_rows, columns=MATCH_COLUMNS))

    summary = {"n_samples": int(bed.n_samples), "min_overlap": float(m["min_overlap"]),
               "keep_ambiguous": bool(m["keep_ambiguous"]),
               "imputation": "missing calls = 2 x cohort effect allele frequency (plink2 --score default)",
               "scores": {}}
    for s, (header, _, counts) in enumerate(entries):
        entry = {"trait_reported": header.get("trait_reported", ""),
                 "genome_build": header.get("HmPOS_build") or header.get("genome_build", ""), **counts}
        if traits:
            entry["traits"] = _trait_metrics(sums[:, s], iids, Path(pheno), list(traits))
        summary["scores"][header["pgs_id"]] = entry
    write_json_atomic(f"{out_prefix}.summary.json", summary)
    return summary
