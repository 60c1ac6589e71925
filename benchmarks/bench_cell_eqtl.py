"""Cell-type eQTL speed: cohortflow ``cell_eqtl`` vs scanpy pseudobulk + statsmodels OLS per test, in one run.

    .venv/bin/python benchmarks/bench_cell_eqtl.py                          # 500 donors x 8 types, 100,000 cells, 50 variants
    .venv/bin/python benchmarks/bench_cell_eqtl.py --donors 60 --variants 10  # quick check

Input (seeded): ``--donors`` donors with ``--cells-per-group`` cells (Poisson around it) of each of
``--types`` cell types, ``--genes`` genes with negative-binomial counts (CSR) whose TSS are spread
evenly over 100 Mb of chromosome 1; a PLINK fileset of the donors with ``--variants`` variants at
random positions (MAF 0.05-0.5, a tenth of them with one missing call among the donors),
covariates sex, age and 4 PCs. Both sides test every (cell type, variant, gene within 1 Mb) of the
output with the same covariates:

- cohortflow: ``cell_eqtl`` (pseudobulk by one sparse product, Frisch-Waugh-Lovell OLS of all
  genes x variants of a missingness pattern in a few matrix products, BH FDR);
- peer: scanpy ``normalize_total(1e4)`` + ``sc.get.aggregate(mean)`` per (cell type, donor),
  ``log1p``, then ``statsmodels.OLS(expr, [1, covariates, dosage]).fit()`` per test.

cohortflow runs ``--repeats`` times (fastest wall time kept), the peer once; the ratio printed is peer / cohortflow.
Betas and p-values must agree to 1e-8 (relative).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.io.plink import write_bed
from cohortflow.singlecell.eqtl import cell_eqtl

from _timing import best_of  # benchmarks/ is on sys.path when run as a script

N_PCS = 4


def make_inputs(d: Path, *, donors: int, types: int, cells_per_group: int, genes: int, variants: int, seed: int):
    rng = np.random.default_rng(seed)
    donor_ids = [f"D{i:05d}" for i in range(donors)]
    n_per = rng.poisson(cells_per_group, size=(donors, types))
    donor_of = np.repeat(np.tile(np.arange(donors)[:, None], (1, types)).ravel(), n_per.ravel())
    type_of = np.repeat(np.tile(np.arange(types)[None, :], (donors, 1)).ravel(), n_per.ravel())
    n_cells = donor_of.size
    profile = rng.lognormal(0, 2.2, size=(types, genes))  # skewed: ~10% of counts non-zero, as in 10x data
    profile /= profile.sum(axis=1, keepdims=True)
    lib = rng.lognormal(np.log(2500), 0.3, size=n_cells)
    blocks = []
    for start in range(0, n_cells, 5_000):  # cells x genes in blocks: dense lambda stays small
        sl = slice(start, min(start + 5_000, n_cells))
        lam = profile[type_of[sl]] * lib[sl, None] * rng.gamma(5.0, 0.2, size=(sl.stop - sl.start, genes))
        blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    adata = ad.AnnData(X=sp.vstack(blocks, format="csr"),
                       obs=pd.DataFrame({"cell_type": pd.Categorical(np.array([f"type{t}" for t in range(types)])[type_of]),
                                         "donor": np.array(donor_ids)[donor_of]},
                                        index=[f"c{i}" for i in range(n_cells)]),
                       var=pd.DataFrame({"chrom": "1", "start": np.linspace(1e5, 1e8, genes).astype(np.int64)},
                                        index=[f"G{i}" for i in range(genes)]))
    adata.layers["counts"] = adata.X
    maf = rng.uniform(0.05, 0.5, size=variants)
    geno = rng.binomial(2, maf[:, None], size=(variants, donors)).astype(np.int8)
    for v in rng.choice(variants, variants // 10, replace=False):
        geno[v, rng.integers(donors)] = -1
    pos = np.sort(rng.choice(np.arange(1_000_000, 99_000_000), variants, replace=False))
    bim = pd.DataFrame({"chrom": "1", "id": [f"1:{p}:A:G" for p in pos], "cm": 0.0, "pos": pos, "a1": "G", "a2": "A"})
    fam = pd.DataFrame({"fid": donor_ids, "iid": donor_ids, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(d / "geno", geno, bim, fam)
    cov = pd.DataFrame({"#FID": donor_ids, "IID": donor_ids, "sex": rng.integers(1, 3, donors),
                        "age": rng.integers(20, 80, donors)})
    cov.to_csv(d / "cov.tsv", sep="\t", index=False)
    pcs = pd.DataFrame(rng.normal(size=(donors, N_PCS)), columns=[f"PC{i + 1}" for i in range(N_PCS)])
    pcs.insert(0, "IID", donor_ids)
    pcs.insert(0, "#FID", donor_ids)
    pcs.to_csv(d / "pcs.tsv", sep="\t", index=False)
    return adata, list(bim["id"])


def run_ours(adata, d: Path, variants: list[str]) -> pd.DataFrame:
    out = cell_eqtl(adata, d / "geno", variants, covariates=d / "cov.tsv", pcs=d / "pcs.tsv", n_pcs=N_PCS)
    return out["results"]


def run_peer(adata, d: Path, tests: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    import scanpy as sc
    import statsmodels.api as sm

    from cohortflow.io.plink import open_bed

    peer = ad.AnnData(X=adata.layers["counts"].astype(np.float64), obs=adata.obs[["cell_type", "donor"]].copy(),
                      var=pd.DataFrame(index=adata.var_names))
    sc.pp.normalize_total(peer, target_sum=1e4)
    agg = sc.get.aggregate(peer, by=["cell_type", "donor"], func="mean")
    n = peer.obs.groupby(["cell_type", "donor"], observed=True).size()
    keep = np.array([n.get((t, dn), 0) >= 5 for t, dn in zip(agg.obs["cell_type"], agg.obs["donor"])])
    agg = agg[keep]
    expr = pd.DataFrame(np.log1p(np.asarray(agg.layers["mean"])), columns=agg.var_names)
    expr["cell_type"] = agg.obs["cell_type"].astype(str).to_numpy()
    expr["donor"] = agg.obs["donor"].astype(str).to_numpy()
    bed = open_bed(d / "geno")
    geno = pd.DataFrame(bed.read().astype(float), index=bed.bim["id"], columns=bed.fam["iid"]).replace(-1, np.nan)
    cov = pd.read_csv(d / "cov.tsv", sep="\t").set_index("IID")[["sex", "age"]].join(
        pd.read_csv(d / "pcs.tsv", sep="\t").set_index("IID")[[f"PC{i + 1}" for i in range(N_PCS)]])
    beta, p = np.empty(len(tests)), np.empty(len(tests))
    by_type = {t: f.set_index("donor") for t, f in expr.groupby("cell_type")}
    for (cell_type, variant), idx in tests.groupby(["cell_type", "variant_id"], sort=False).indices.items():
        e = by_type[cell_type]
        dose = geno.loc[variant, e.index].to_numpy()
        called = ~np.isnan(dose)
        x = np.column_stack([np.ones(called.sum()), cov.loc[e.index[called]].to_numpy(), dose[called]])
        for i in idx:
            fit = sm.OLS(e[tests["gene"].iat[i]].to_numpy()[called], x).fit()
            beta[i], p[i] = fit.params[-1], fit.pvalues[-1]
    return beta, p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--donors", type=int, default=500)
    ap.add_argument("--types", type=int, default=8)
    ap.add_argument("--cells-per-group", type=int, default=25)
    ap.add_argument("--genes", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        adata, variants = make_inputs(d, donors=a.donors, types=a.types, cells_per_group=a.cells_per_group,
                                      genes=a.genes, variants=a.variants, seed=a.seed)
        print(f"inputs: {adata.n_obs} cells x {adata.n_vars} genes, {a.donors} donors, {a.types} types, "
              f"{len(variants)} variants ({time.perf_counter() - t0:.1f} s)")
        results = run_ours(adata, d, variants)
        tests = results[results["p_value"].notna()].reset_index(drop=True)
        t_ours = best_of(a.repeats, lambda: run_ours(adata, d, variants))
        t0 = time.perf_counter()
        beta, p = run_peer(adata, d, tests)  # once: the peer's per-fit overhead is steady
        t_peer = time.perf_counter() - t0
        rel_b = np.max(np.abs(tests["beta"] - beta) / np.abs(beta))
        rel_p = np.max(np.abs(tests["p_value"] - p) / p)
        print(f"tests: {len(tests)}; max relative difference beta {rel_b:.1e}, p {rel_p:.1e}")
        print(f"cohortflow cell_eqtl: {t_ours:.2f} s")
        print(f"scanpy aggregate + statsmodels OLS: {t_peer:.2f} s")
        print(f"ratio (peer / cohortflow): {t_peer / t_ours:.1f}x")
        return 0 if rel_b < 1e-8 and rel_p < 1e-8 else 1


if __name__ == "__main__":
    sys.exit(main())
