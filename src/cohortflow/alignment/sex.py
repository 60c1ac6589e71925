"""Sex from read depth: X and Y depth normalised to the autosomes.

A diploid autosome and two X chromosomes give an X ratio near 1, one X near 0.5; a Y chromosome
gives a Y ratio near 0.5 over its single-copy sequence and reads mis-mapped to Y give a few
percent at most. Over whole contigs (no regions) the Y ratio of a male is lower (much of Y is
unassembled or repeated), hence the low Y threshold.
"""

from __future__ import annotations

import math

AUTOSOMES = {str(i) for i in range(1, 23)}
_ALIASES = {"23": "X", "24": "Y"}


def _normalise(name: str) -> str:
    # chr1 / 1 / CHRX / 23: one scale (as cohortflow.io.chrom, without its pandas import: the
    # alignment commands start faster without it)
    c = name.strip().upper()
    c = c[3:] if c.startswith("CHR") else c
    return _ALIASES.get(c, c)


def infer_sex(depth_by_contig: dict[str, tuple[int, int]], *, x_two_copies: float = 0.75,
              x_one_copy: float = 0.65, y_present: float = 0.05, y_absent: float = 0.02) -> dict:
    """Infer sex from (bases counted, summed depth) per contig name.

    Contig names are matched on any convention (``chrX``, ``X``, ``23``). Returns
    ``x_depth_ratio``, ``y_depth_ratio`` (NaN where undefined) and ``inferred_sex``: ``F`` (X ratio
    >= ``x_two_copies`` and Y ratio < ``y_absent``), ``M`` (X ratio < ``x_one_copy`` and Y ratio >=
    ``y_present``), ``NA`` (no autosomal or no X depth measured) or ``ambiguous`` (anything else:
    X0, XXY, mosaicism, contamination or a ratio between the cut-offs).
    """
    norm = {name: _normalise(name) for name in depth_by_contig}
    totals = {"A": [0, 0], "X": [0, 0], "Y": [0, 0]}
    for name, (length, bases) in depth_by_contig.items():
        c = str(norm[name])
        key = "A" if c in AUTOSOMES else c if c in ("X", "Y") else None
        if key is not None:
            totals[key][0] += int(length)
            totals[key][1] += int(bases)

    def mean(key):
        length, bases = totals[key]
        return bases / length if length else math.nan

    auto = mean("A")
    x_ratio = mean("X") / auto if auto and not math.isnan(auto) else math.nan
    y_ratio = mean("Y") / auto if auto and not math.isnan(auto) else math.nan
    if math.isnan(x_ratio):
        sex = "NA"
    else:
        y = 0.0 if math.isnan(y_ratio) else y_ratio  # no Y contig measured: no Y seen
        if x_ratio >= x_two_copies and y < y_absent:
            sex = "F"
        elif x_ratio < x_one_copy and y >= y_present:
            sex = "M"
        else:
            sex = "ambiguous"
    return {"x_depth_ratio": x_ratio, "y_depth_ratio": y_ratio, "inferred_sex": sex}
