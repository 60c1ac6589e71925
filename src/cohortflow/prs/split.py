"""Samples split into discovery, validation and test sets for building and judging polygenic scores.

The discovery samples give the GWAS the scores are built from; choices (C+T threshold, method
hyper-parameters) are made on the validation samples; performance is reported on the test
samples only. A sample is in at most one set, so no score is judged on individuals that shaped it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.gwas.api import _prepare, run_gwas
from cohortflow.io.atomic import atomic_open
from cohortflow.io.plink import open_bed

SPLITS = ("discovery", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
MIN_PER_SPLIT = 20


def split_samples(*, bfile: str | Path, pheno: str | Path, trait: str, covar: str | Path | None = None,
                  covar_names: list[str] | None = None, fractions=DEFAULT_FRACTIONS, seed: int = 1,
                  out: str | Path | None = None) -> pd.DataFrame:
    """Split the samples analysable for ``trait`` (in the .fam, trait and all covariates present)
    at random into discovery, validation and test sets of the given ``fractions`` (summing to 1).

    Binary traits are split within cases and within controls, so each set has the cohort's case
    fraction. Deterministic given ``seed``. Returns (and writes to ``out``, tab-separated with a
    header ``#FID IID split``) one row per analysable sample in .fam order.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise CohortflowError(f"split fractions must be three positive numbers summing to 1, not {fractions}")
    bed = open_bed(bfile)
    pm = _prepare(bed, Path(pheno), [trait], covar, covar_names, "auto", None)[0]
    idx = pm.sample_idx
    y = pm.contexts["auto"].y if pm.model == "logistic" else np.zeros(len(idx))
    rng = np.random.default_rng(seed)
    label = np.empty(len(idx), dtype=object)
    for stratum in np.unique(y):
        members = np.flatnonzero(y == stratum)
        members = members[rng.permutation(len(members))]
        cuts = np.round(np.cumsum(fractions)[:2] * len(members)).astype(int)
        for name, part in zip(SPLITS, np.split(members, cuts)):
            label[part] = name
    counts = {name: int((label == name).sum()) for name in SPLITS}
    if min(counts.values()) < MIN_PER_SPLIT:
        raise CohortflowError(f"trait {trait!r}: {len(idx)} analysable samples give "
                              f"{', '.join(f'{k} {v}' for k, v in counts.items())}; each set needs at least "
                              f"{MIN_PER_SPLIT}", path=pheno)
    fam = bed.fam
    table = pd.DataFrame({"#FID": fam["fid"].to_numpy()[idx], "IID": fam["iid"].to_numpy()[idx], "split": label})
    if out is not None:
        with atomic_open(out) as fh:
            table.to_csv(fh, sep="\t", index=False, lineterminator="\n")
    return table


def read_split(path: str | Path) -> pd.DataFrame:
    """A split file (``#FID IID split`` or ``IID split``) as a DataFrame with columns IID, split."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CohortflowError(f"cannot read the split file ({exc})", path=path) from None
    if "IID" not in table.columns or "split" not in table.columns:
        raise CohortflowError(f"a split file needs IID and split columns (has {', '.join(table.columns)})", path=path)
    bad = ~table["split"].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CohortflowError(f"split {table['split'].iloc[row]!r} is not one of {', '.join(SPLITS)}",
                              path=path, record=f"line {row + 2}")
    if table["IID"].duplicated().any():
        raise CohortflowError(f"sample {table.loc[table['IID'].duplicated(), 'IID'].iloc[0]!r} appears twice",
                              path=path)
    return table[["IID", "split"]]


def discovery_gwas(*, bfile: str | Path, pheno: str | Path, trait: str, split: str | Path,
                   covar: str | Path | None = None, covar_names: list[str] | None = None, firth: str = "fallback",
                   out: str | Path, threads: int = 1) -> Path:
    """GWAS of ``trait`` on the discovery samples of ``split`` only (GWAS-SSF at ``out``, with its
    ``-meta.yaml`` sidecar): the base summary statistics the cohort's own scores are built from."""
    table = read_split(split)
    samples = table.loc[table["split"] == "discovery", "IID"].tolist()
    if not samples:
        raise CohortflowError("no discovery samples", path=split)
    paths = run_gwas(bfile=bfile, pheno=pheno, pheno_names=[trait], covar=covar, covar_names=covar_names,
                     firth=firth, samples=samples, out_pattern=str(out), threads=threads)
    return paths[trait]
