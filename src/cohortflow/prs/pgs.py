"""Scoring published polygenic scores (PGS Catalog scoring files) on the cohort's genotypes.

What ``pgsc_calc`` and ``plink2 --score`` do, in one pass over the .bed:

1. each score's variants are matched to the .bim by chromosome (``chr1`` = ``1``; 23/24/25/26 =
   X/Y/XY/MT), position and alleles (see :func:`match_variants` for the rules);
2. per sample, SUM = sum over matched variants of weight x effect-allele dosage, a missing call
   counting as 2 x the cohort's effect allele frequency (plink2 ``--score``'s default mean
   imputation, frequencies from all samples of the fileset), and AVG = SUM / (2 x matched
   variants), plink2's ``SCORE1_AVG`` under mean imputation (its denominator counts imputed
   variants too, unlike its ALLELE_CT column).
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import atomic_open, write_json_atomic, write_table_atomic
from cohortflow.io.pgs import read_scoring_file
from cohortflow.io.pheno import is_binary, read_pheno_table, to_binary01
from cohortflow.io.plink import open_bed
from cohortflow.prs.api import auc, score_genotypes

MATCH_COLUMNS = ["pgs_id", "trait_reported", "n_variants", "matched", "swapped", "flipped", "ambiguous_dropped",
                 "missing", "other_dropped", "fraction_matched", "weight_fraction_matched"]
# why a scoring-file variant is not used
DROP_REASONS = ("missing", "ambiguous", "allele_mismatch", "multiple_matches")
_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_CHROM_ALIASES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}


def normalise_chrom(values) -> np.ndarray:
    """Chromosome names on one scale: no ``chr`` prefix, upper case, plink's 23-26 as X/Y/XY/MT."""
    out = pd.Series(np.asarray(values, dtype=object)).astype(str).str.strip().str.upper()
    out = out.str.replace(r"^CHR", "", regex=True)
    return out.replace(_CHROM_ALIASES).to_numpy(dtype=object)


def _complement(alleles: np.ndarray) -> np.ndarray:
    return np.array([a.translate(_COMPLEMENT) for a in alleles], dtype=object)


def _is_snv(alleles: np.ndarray) -> np.ndarray:
    return np.array([len(a) == 1 and a in "ACGT" for a in alleles], dtype=bool)


def match_variants(table: pd.DataFrame, bim: pd.DataFrame, *, keep_ambiguous: bool = False) -> pd.DataFrame:
    """Match the rows of a scoring table (:func:`cohortflow.io.pgs.read_scoring_file`) to a .bim.

    Candidates are the .bim variants at the row's chromosome and position (several at a
    multi-allelic site). A candidate matches, best first:
    0. directly: effect allele = .bim A1 (the counted allele) and other allele = A2;
    1. swapped: effect allele = A2 and other allele = A1 (the weight applies to 2 - A1 count);
    2. strand flipped: the complemented alleles match directly;
    3. flipped and swapped.
    An unknown other allele (``""``) matches any. Flips are tried only for SNVs whose .bim alleles
    are not complementary. A match to an A/T or C/G SNV is ambiguous (strand cannot be told) and
    is dropped unless ``keep_ambiguous``, in which case it is used as written (never flipped).

    Returns ``table`` with added columns ``bim_row`` (-1 when unused), ``status`` (``matched`` or a
    :data:`DROP_REASONS` entry: ``missing`` = no .bim variant at the position or no position,
    ``allele_mismatch`` = variants there but none with these alleles, ``multiple_matches`` = more
    than one .bim variant matches equally well), ``swapped`` and ``flipped`` (booleans).
    Two scoring rows matched to the same .bim variant raise CohortflowError (duplicated weights
    are not summed: a scoring file listing a variant twice is taken to be an error).
    """
    out = table.copy().reset_index(drop=True)
    n = len(out)
    status = np.full(n, "missing", dtype=object)
    bim_row = np.full(n, -1, dtype=np.int64)
    swapped = np.zeros(n, dtype=bool)
    flipped = np.zeros(n, dtype=bool)

    has_pos = out["pos"].notna().to_numpy()
    sc = pd.DataFrame({"score_row": np.flatnonzero(has_pos),
                       "chrom": normalise_chrom(out["chrom"].to_numpy()[has_pos]),
                       "pos": out["pos"].to_numpy()[has_pos].astype(np.int64)})
    bk = pd.DataFrame({"bim_row": np.arange(len(bim), dtype=np.int64), "chrom": normalise_chrom(bim["chrom"]),
                       "pos": bim["pos"].to_numpy(np.int64), "a1": bim["a1"].astype(str).str.upper().to_numpy(),
                       "a2": bim["a2"].astype(str).str.upper().to_numpy()})
    cand = sc.merge(bk, on=["chrom", "pos"], how="inner", sort=False)
    if len(cand):
        rows = cand["score_row"].to_numpy()
        ea = out["effect_allele"].to_numpy(dtype=object)[rows]
        oa = out["other_allele"].to_numpy(dtype=object)[rows]
        a1 = cand["a1"].to_numpy(dtype=object)
        a2 = cand["a2"].to_numpy(dtype=object)
        oa_any = oa == ""
        bim_snv = _is_snv(a1) & _is_snv(a2)
        ambiguous = bim_snv & (_complement(a1) == a2)
        can_flip = bim_snv & ~ambiguous & _is_snv(ea) & (oa_any | _is_snv(oa))
        ea_c, oa_c = _complement(ea), _complement(oa)
        levels = [
            (ea == a1) & (oa_any | (oa == a2)),
            (ea == a2) & (oa_any | (oa == a1)),
            can_flip & (ea_c == a1) & (oa_any | (oa_c == a2)),
            can_flip & (ea_c == a2) & (oa_any | (oa_c == a1)),
        ]
        level = np.select(levels, [0, 1, 2, 3], default=4)
        cand = cand.assign(level=level, ambiguous=ambiguous)
        cand = cand.sort_values(["score_row", "level", "bim_row"], kind="stable")
        best_level = cand.groupby("score_row", sort=False)["level"].transform("min")
        n_best = (cand["level"] == best_level).groupby(cand["score_row"], sort=False).transform("sum")
        first = cand.drop_duplicates("score_row", keep="first")
        n_first = n_best.loc[first.index].to_numpy()
        r = first["score_row"].to_numpy()
        lev = first["level"].to_numpy()
        st = np.where(lev == 4, "allele_mismatch",
                      np.where(n_first > 1, "multiple_matches",
                               np.where(first["ambiguous"].to_numpy() & (not keep_ambiguous), "ambiguous", "matched")))
        status[r] = st
        used = st == "matched"
        bim_row[r[used]] = first["bim_row"].to_numpy()[used]
        swapped[r[used]] = np.isin(lev[used], (1, 3))
        flipped[r[used]] = np.isin(lev[used], (2, 3))

    used = np.flatnonzero(bim_row >= 0)
    if len(np.unique(bim_row[used])) != len(used):
        rows_by_variant = pd.Series(used).groupby(bim_row[used]).agg(list)
        dup = next(v for v in rows_by_variant if len(v) > 1)
        lines = ", ".join(str(x) for x in out["line"].to_numpy()[dup])
        raise CohortflowError(f"lines {lines} all match .bim variant {bim['id'].iloc[int(bim_row[dup[0]])]}; "
                              "remove the duplicated weights (they are not summed)")
    return out.assign(bim_row=bim_row, status=status, swapped=swapped, flipped=flipped)


def match_counts(matched: pd.DataFrame) -> dict:
    """Counts of a :func:`match_variants` result: ``n_variants``, ``matched`` (used in the score, any
    orientation), ``swapped`` and ``flipped`` (how many of the matched needed that; a variant can be
    both), ``ambiguous_dropped``, ``missing``, ``other_dropped`` (allele mismatch + multiple
    matches), ``fraction_matched`` (matched / n_variants), ``weight_fraction_matched`` (sum of
    |weight| matched / sum of |weight|) and ``dropped_by_reason``.
    ``n_variants = matched + ambiguous_dropped + missing + other_dropped``."""
    st = matched["status"].to_numpy()
    used = st == "matched"
    by_reason = {reason: int((st == reason).sum()) for reason in DROP_REASONS}
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
                        "auc": auc(s, yy.astype(int)) if ok.sum() and np.std(s) > 0 else float("nan")})
        else:
            r = float(np.corrcoef(s, yy)[0, 1]) if ok.sum() > 2 and np.std(s) > 0 and np.std(yy) > 0 else float("nan")
            res.update({"r": r, "r2": r * r})
        out[trait] = res
    return out


def score_pgs(*, bfile: str | Path, scores: list, min_overlap: float = 0.75, keep_ambiguous: bool = False,
              pheno: str | Path | None = None, traits: list[str] | None = None, out_prefix: str | Path,
              threads: int = 1, block_size: int = 4096) -> dict:
    """Score the published polygenic scores ``scores`` (scoring-file paths) on ``bfile``.

    Each score's variants are matched with :func:`match_variants`; a score whose matched fraction
    is below ``min_overlap`` raises CohortflowError (with the counts per reason) before anything is
    written. Genotypes are streamed in blocks of ``block_size`` matched variants.

    Writes:
    - ``{out_prefix}.scores.tsv.gz``: ``IID`` then ``{pgs_id}_SUM`` and ``{pgs_id}_AVG`` per score,
      .fam order (individual-level; stays in the cohort);
    - ``{out_prefix}.match.tsv``: one row per score, columns :data:`MATCH_COLUMNS` (see
      :func:`match_counts`);
    - ``{out_prefix}.summary.json``: ``n_samples``, ``min_overlap``, ``keep_ambiguous``,
      ``imputation``, and ``scores`` -> ``{pgs_id}`` -> ``trait_reported``, ``genome_build``, the
      match counts of :func:`match_counts` and, with ``pheno`` and ``traits``, ``traits`` ->
      ``{trait}`` -> ``type``, ``n`` and ``r``/``r2`` (quantitative) or ``auc``/``n_cases``/
      ``n_controls`` (binary) of the SUM with the trait. Aggregate figures only.
    Returns the summary dict.
    """
    if not 0 <= min_overlap <= 1:
        raise CohortflowError(f"min_overlap must be between 0 and 1, not {min_overlap}")
    if (pheno is None) != (not traits):
        raise CohortflowError("pheno and traits go together: give both or neither")
    if not scores:
        raise CohortflowError("no scoring files given")
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    bed = open_bed(bfile)

    entries = []
    seen: dict[str, str] = {}
    for path in scores:
        header, table = read_scoring_file(path)
        pgs_id = header["pgs_id"]
        if pgs_id in seen:
            raise CohortflowError(f"pgs_id {pgs_id!r} is also the ID of {seen[pgs_id]}", path=path)
        seen[pgs_id] = str(path)
        try:
            matched = match_variants(table, bed.bim, keep_ambiguous=keep_ambiguous)
        except CohortflowError as err:
            raise CohortflowError(err.problem, path=path) from None
        counts = match_counts(matched)
        if counts["fraction_matched"] < min_overlap or counts["matched"] == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in counts["dropped_by_reason"].items() if v)
            raise CohortflowError(
                f"score {pgs_id}: only {counts['matched']} of {counts['n_variants']} variants matched the genotypes "
                f"({counts['fraction_matched']:.1%}, min_overlap {min_overlap:.0%}); not matched: {reasons}"
                + ("" if keep_ambiguous else " (ambiguous A/T, C/G SNPs are dropped unless keep_ambiguous)"),
                path=path)
        entries.append((header, matched, counts))

    # one weight column per score on the A1 count: swapped variants get -weight plus 2 x weight constant
    union = np.unique(np.concatenate([m["bim_row"].to_numpy()[m["bim_row"].to_numpy() >= 0] for _, m, _ in entries]))
    weights = np.zeros((len(union), len(entries)))
    constant = np.zeros(len(entries))
    for s, (_, matched, _) in enumerate(entries):
        used = matched[matched["bim_row"] >= 0]
        sign = np.where(used["swapped"].to_numpy(), -1.0, 1.0)
        weights[np.searchsorted(union, used["bim_row"].to_numpy()), s] = sign * used["weight"].to_numpy()
        constant[s] = 2.0 * used["weight"].to_numpy()[used["swapped"].to_numpy()].sum()
    in_score = weights != 0
    sums = np.zeros((bed.n_samples, len(entries)))
    for start in range(0, len(union), block_size):
        rows = union[start:start + block_size]
        geno = bed.read_rows(rows)
        called = geno >= 0
        n_called = called.sum(axis=1)
        a1_freq = np.where(called, geno, 0).sum(axis=1) / np.maximum(2 * n_called, 1)
        for s in range(len(entries)):
            sel = in_score[start:start + block_size, s]
            if sel.any():
                sums[:, s] += score_genotypes(geno[sel], weights[start:start + block_size, s][sel], a1_freq[sel])
    sums += constant

    iids = bed.fam["iid"].to_numpy()
    columns = {"IID": iids}
    for s, (header, _, counts) in enumerate(entries):
        columns[f"{header['pgs_id']}_SUM"] = sums[:, s]
        columns[f"{header['pgs_id']}_AVG"] = sums[:, s] / (2.0 * counts["matched"])
    out_prefix = Path(str(out_prefix))
    with atomic_open(f"{out_prefix}.scores.tsv.gz", "w") as fh:
        pd.DataFrame(columns).to_csv(fh, sep="\t", index=False, lineterminator="\n", float_format="%.10g")

    match_rows = [{"pgs_id": h["pgs_id"], "trait_reported": h.get("trait_reported", ""),
                   **{k: c[k] for k in MATCH_COLUMNS[2:]}} for h, _, c in entries]
    write_table_atomic(f"{out_prefix}.match.tsv", pd.DataFrame(match_rows, columns=MATCH_COLUMNS))

    summary = {"n_samples": int(bed.n_samples), "min_overlap": float(min_overlap),
               "keep_ambiguous": bool(keep_ambiguous),
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
