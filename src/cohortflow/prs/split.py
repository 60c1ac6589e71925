"""Samples split into discovery, validation and test sets for building and judging polygenic scores.

The discovery samples give the GWAS the scores are built from; choices (C+T threshold, method
hyper-parameters) are made on the validation samples; performance is reported on the test
samples only. A sample is in at most one set, so no score is judged on individuals that shaped it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.gwas.api import _prepare, run_gwas
from cohortflow.io.atomic import atomic_open
from cohortflow.io.pheno import read_pheno_table
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
    """A split file (``#FID IID split``, ``FID IID split`` or ``IID split``, as phenotype files are
    read) as a DataFrame with columns IID, split (file order); a value other than discovery,
    validation or test is an InputFormatError naming the sample."""
    split = read_pheno_table(path, columns=["split"])["split"]
    bad = ~split.isin(SPLITS)
    if bad.any():
        iid = split.index[np.flatnonzero(bad.to_numpy())[0]]
        value = "no split value" if split[iid] is None else f"split {split[iid]!r}"
        raise InputFormatError(f"sample {iid!r}: {value} is not one of {', '.join(SPLITS)}", path=path)
    return pd.DataFrame({"IID": split.index.to_numpy(), "split": split.to_numpy()})


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
