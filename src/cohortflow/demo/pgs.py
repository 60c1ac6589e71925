"""A demo PGS Catalog scoring file built from the planted effects, with known matching answers.

The file holds every planted causal variant of one trait with its true effect, written so that
each matching rule of :func:`cohortflow.prs.pgs.match_variants` is exercised:

- most causal variants as in ``truth.json`` (effect allele, other allele, true beta);
- one causal variant with effect and other allele exchanged and the weight negated (the same
  score; it matches "swapped");
- one causal variant on the opposite strand (both alleles complemented; it matches "flipped");
- non-causal rows with weight 0.0001: one at a position absent from the .bim (missing), one
  A/T or C/G SNP that is in the .bim (ambiguous, dropped by default) and a few ordinary .bim
  variants (``n_filler``, more when needed so that at least 80 % of the rows match).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.plink import read_bim

FILLER_WEIGHT = 0.0001
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _ambiguous(a: str, b: str) -> bool:
    return len(a) == 1 and len(b) == 1 and a in "ACGT" and a.translate(_COMPLEMENT) == b


def _chrom_order(chrom: str) -> tuple:
    return (0, int(chrom), "") if chrom.isdigit() else (1, 0, chrom)


def write_demo_scoring_file(*, truth_json: str | Path, bim: str | Path, out: str | Path,
                            trait: str = "quant_trait", pgs_id: str = "DEMO000001", n_filler: int = 10) -> dict:
    """Write a PGS Catalog format 2.0 scoring file for ``trait``'s planted causal variants.

    ``bim`` is the .bim the score will be matched to (e.g. ``qc/qc.bim``): it decides which rows
    can match and how. Writes ``out`` (gzip when it ends in ``.gz``, mtime 0; header
    ``#format_version=2.0``, ``#pgs_id``, ``#pgs_name``, ``#trait_reported={trait} (demo)``,
    ``#genome_build=simulated``, ``#variants_number``, ``#weight_type``; columns ``chr_name
    chr_position effect_allele other_allele effect_weight``, sorted by chromosome and position)
    and ``{out}.expected.json``: the match counts :func:`cohortflow.prs.pgs.score_pgs` must report
    with ``keep_ambiguous=False`` (keys of :func:`cohortflow.prs.pgs.match_counts`, without the
    fractions), ``matched_keep_ambiguous`` (matched with ``keep_ambiguous=True``), plus
    ``pgs_id``, ``swapped_variant``, ``flipped_variant``, ``missing_position`` and
    ``ambiguous_variant`` (the rows written to test each rule; null when no such row could be
    made). Returns the expected dict.
    """
    truth = json.loads(Path(truth_json).read_text())
    try:
        spec = truth["traits"][trait]
        causal = spec["causal_variants"]
    except KeyError:
        raise CohortflowError(f"no causal variants for trait {trait!r}", path=truth_json) from None
    weight_key = "beta" if spec.get("type", "quantitative") != "binary" else "log_odds_ratio"
    table = read_bim(bim)
    chrom = table["chrom"].astype(str).to_numpy()
    pos = table["pos"].to_numpy(np.int64)
    a1 = table["a1"].astype(str).str.upper().to_numpy()
    a2 = table["a2"].astype(str).str.upper().to_numpy()
    alleles_at: dict[tuple, list[tuple[str, str]]] = {}
    for c, p, x, y in zip(chrom, pos, a1, a2):
        alleles_at.setdefault((c, int(p)), []).append((x, y))
    sites = {key: len(found) for key, found in alleles_at.items()}

    rows = []  # chr_name, chr_position, effect_allele, other_allele, effect_weight
    expected = {"matched": 0, "swapped": 0, "flipped": 0, "ambiguous_dropped": 0, "missing": 0, "other_dropped": 0}

    def expect(c: str, p: int, ea: str, oa: str, *, flipped: bool = False) -> None:
        """Count the row the way the matching rules must see it (written alleles vs the .bim)."""
        ea_b, oa_b = (ea.translate(_COMPLEMENT), oa.translate(_COMPLEMENT)) if flipped else (ea, oa)
        found = [(x, y) for x, y in alleles_at.get((c, p), []) if {x, y} == {ea_b, oa_b}]
        if not alleles_at.get((c, p)):
            expected["missing"] += 1
        elif len(found) != 1:
            expected["other_dropped"] += 1
        elif _ambiguous(*found[0]):
            expected["ambiguous_dropped"] += 1
        else:
            expected["matched"] += 1
            expected["swapped"] += int(found[0][0] != ea_b)
            expected["flipped"] += int(flipped)

    # causal variants usable for the swap and flip rows: in the .bim once, same alleles, not ambiguous
    usable = [i for i, v in enumerate(causal)
              if alleles_at.get((str(v["chromosome"]), int(v["position"]))) is not None
              and sites[(str(v["chromosome"]), int(v["position"]))] == 1
              and set(alleles_at[(str(v["chromosome"]), int(v["position"]))][0]) ==
              {v["effect_allele"].upper(), v["other_allele"].upper()}
              and len(v["effect_allele"]) == 1 and len(v["other_allele"]) == 1
              and not _ambiguous(v["effect_allele"].upper(), v["other_allele"].upper())]
    swap_i = usable[0] if usable else None
    flip_i = usable[1] if len(usable) > 1 else None
    for i, v in enumerate(causal):
        c, p = str(v["chromosome"]), int(v["position"])
        ea, oa, w = v["effect_allele"].upper(), v["other_allele"].upper(), float(v[weight_key])
        if i == swap_i:
            ea, oa, w = oa, ea, -w
        if i == flip_i:
            ea, oa = ea.translate(_COMPLEMENT), oa.translate(_COMPLEMENT)
        expect(c, p, ea, oa, flipped=i == flip_i)
        rows.append((c, p, ea, oa, w))

    causal_sites = {(str(v["chromosome"]), int(v["position"])) for v in causal}
    first_chrom = chrom[0] if len(chrom) else str(causal[0]["chromosome"])
    taken = set(pos[chrom == first_chrom].tolist())
    missing_pos = next(p for p in range(1000, 10**12, 1000) if p not in taken)
    rows.append((first_chrom, missing_pos, "A", "C", FILLER_WEIGHT))
    expect(first_chrom, missing_pos, "A", "C")

    plain = [j for j in range(len(table)) if sites[(chrom[j], int(pos[j]))] == 1
             and (chrom[j], int(pos[j])) not in causal_sites and len(a1[j]) == 1 and len(a2[j]) == 1]
    ambiguous_j = next((j for j in plain if _ambiguous(a1[j], a2[j])), None)
    ambiguous_variant = None
    if ambiguous_j is not None:
        rows.append((chrom[ambiguous_j], int(pos[ambiguous_j]), a1[ambiguous_j], a2[ambiguous_j], FILLER_WEIGHT))
        expect(chrom[ambiguous_j], int(pos[ambiguous_j]), a1[ambiguous_j], a2[ambiguous_j])
        ambiguous_variant = str(table["id"].iloc[ambiguous_j])

    fillable = [j for j in plain if not _ambiguous(a1[j], a2[j])]
    # enough ordinary rows that >= 80 % of the rows match: (m + f) / (t + f) >= 0.8
    needed = int(np.ceil(max(0.0, (0.8 * len(rows) - expected["matched"]) / 0.2)))
    n_fill = min(max(n_filler, needed), len(fillable))
    picks = np.unique(np.linspace(0, len(fillable) - 1, n_fill).round().astype(int)) if n_fill else []
    for j in (fillable[k] for k in picks):
        rows.append((chrom[j], int(pos[j]), a1[j], a2[j], FILLER_WEIGHT))
        expect(chrom[j], int(pos[j]), a1[j], a2[j])

    rows.sort(key=lambda r: (_chrom_order(r[0]), r[1], r[2], r[3]))
    header = [
        "###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring for additional "
        "information",
        "#format_version=2.0",
        "##POLYGENIC SCORE (PGS) INFORMATION",
        f"#pgs_id={pgs_id}",
        f"#pgs_name=cohortflow_demo_{trait}",
        f"#trait_reported={trait} (demo)",
        "#genome_build=simulated",
        f"#variants_number={len(rows)}",
        f"#weight_type={weight_key}",
        "chr_name\tchr_position\teffect_allele\tother_allele\teffect_weight",
    ]
    body = [f"{c}\t{p}\t{ea}\t{oa}\t{w!r}" for c, p, ea, oa, w in rows]
    with atomic_open(out, "w") as fh:
        fh.write("\n".join(header + body) + "\n")

    expected.update({
        "pgs_id": pgs_id, "n_variants": len(rows),
        "swapped_variant": None if swap_i is None else causal[swap_i]["variant_id"],
        "flipped_variant": None if flip_i is None else causal[flip_i]["variant_id"],
        "missing_position": f"{first_chrom}:{missing_pos}", "ambiguous_variant": ambiguous_variant,
        "matched_keep_ambiguous": expected["matched"] + expected["ambiguous_dropped"],
    })
    write_json_atomic(f"{out}.expected.json", expected)
    return expected
