"""scDRS method (cohortflow.singlecell.scdrs) against scDRS's golden files and the live scdrs 1.0.2.

Golden files: /work/shared/data/scdrs_gwas_gene_sets (scDRS's own toy data and expected outputs,
made by ``scdrs compute-score --flag-filter-data False --flag-raw-count False --n-ctrl 20``).
Live peer: scdrs 1.0.2 in .ci/scpeers, run as a subprocess on the same inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import require_scpeer, require_shared

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.singlecell import scdrs as S

TOY = ("scdrs_gwas_gene_sets",)
TRAIT = "toydata_gs_mouse"


def _toy(cov: bool):
    d = require_shared(*TOY)
    adata = ad.read_h5ad(d / "toydata_mouse.h5ad")
    X = S.log_normalize(adata)          # the toy X is already log-scale: used as it is
    data = S.preprocess(X, obs_names=adata.obs_names, var_names=adata.var_names,
                        cov=S.read_covariates(d / "toydata_mouse.cov") if cov else None)
    return d, adata, data


def _run_peer(python: str, script: str, tmp_path) -> None:
    path = tmp_path / "peer.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.run([python, str(path)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


# --------------------------------------------------------------------------- golden files

@pytest.mark.parametrize("cov", [True, False])
def test_toy_scores_match_scdrs_golden_files(cov):
    d, adata, data = _toy(cov)
    gs = S.load_gs(d / "toydata_mouse.gs")[TRAIT]
    scores, _ = S.score_cells(data, gs, n_ctrl=20, seed=0)
    ref = pd.read_csv(d / f"toydata_gs_mouse.ref_Ctrl20_Cov{'ConstCovariate' if cov else 'None'}.score.gz",
                      sep="\t", index_col=0)
    assert list(scores.columns) == list(ref.columns)
    assert list(scores.index) == list(ref.index)
    # raw scores do not depend on the random control sets: equal to the 7 printed digits
    np.testing.assert_allclose(scores["raw_score"], ref["raw_score"], atol=1e-4, rtol=0)
    assert np.abs(scores["raw_score"] - ref["raw_score"]).max() < 1e-6
    # normalised scores depend on the control sets (and the golden files' mean-var bins came
    # from an older scDRS: ~7 % of genes sit in another bin), hence correlation
    assert np.corrcoef(scores["norm_score"], ref["norm_score"])[0, 1] >= 0.95
    # the planted causal cells are the significant ones in both
    causal = adata.obs["cell_type"].astype(str).to_numpy() == "causal_cell"
    assert scores["pval"][causal].median() < scores["pval"][~causal].median()


@pytest.mark.parametrize("cov", [True, False])
def test_toy_gene_stats_match_expected_files(cov):
    d, _, data = _toy(cov)
    exp = pd.read_csv(d / f"toydata_mouse.gene_stats.{'cov' if cov else 'nocov'}.tsv", sep="\t", index_col=0,
                      dtype={"mean_var": str})
    ours = data.gene_stats.loc[exp.index]
    # the toy matrix is float32: scDRS's sparse means run in float32 (no-cov), ours in float64
    np.testing.assert_allclose(ours["mean"], exp["mean"], rtol=1e-6)
    np.testing.assert_allclose(ours["var"], exp["var"], rtol=1e-5, atol=1e-12)
    # var_tech: the golden files' loess differs from scDRS 1.0.2's by up to 3e-4 (relative) in
    # the covariate case; the live scdrs agrees with ours to 1e-12 (test_live_scdrs_*)
    big = exp["var_tech"] > 1e-6
    np.testing.assert_allclose(ours.loc[big, "var_tech"], exp.loc[big, "var_tech"], rtol=5e-4)
    np.testing.assert_allclose(ours.loc[~big, "var_tech"], exp.loc[~big, "var_tech"], atol=1e-9)
    # toy has 2,500 genes: floor(sqrt(250)) = 15 x 15 bins
    assert ours["mean_var"].str.split(".").str[0].astype(int).max() == 14
    assert (ours["mean_var"] == exp["mean_var"]).mean() > 0.9


def test_toy_group_table_qualitatively_as_golden(tmp_path):
    d = require_shared(*TOY)
    out = S.disease_score_files(h5ad=d / "toydata_mouse.h5ad", gene_set=d / "toydata_mouse.gs",
                                covariates=d / "toydata_mouse.cov", n_ctrl=20, out=tmp_path / "toy",
                                write_h5ad=False)
    grp = pd.read_csv(out[TRAIT]["group"], sep="\t", index_col=0)
    ref = pd.read_csv(d / "toydata_gs_mouse.ref_Ctrl20_CovConstCovariate.scdrs_group.cell_type", sep="\t", index_col=0)
    assert list(grp.columns) == list(ref.columns) and list(grp.index) == list(ref.index)
    np.testing.assert_array_equal(grp["n_cell"], ref["n_cell"])
    # association: causal cells at the smallest possible MC p (1/21), the others far from it
    assert grp.loc["causal_cell", "assoc_mcp"] == pytest.approx(1 / 21)
    assert ref.loc["causal_cell", "assoc_mcp"] == pytest.approx(1 / 21)
    assert grp.loc["causal_cell", "assoc_mcz"] > 5 and ref.loc["causal_cell", "assoc_mcz"] > 5
    assert grp.loc["non_causal_cell", "assoc_mcp"] > 0.5
    # cells at FDR < 0.05: the causal group's five, as in the golden table
    assert grp.loc["causal_cell", "n_fdr_0.05"] == ref.loc["causal_cell", "n_fdr_0.05"] == 5
    assert grp.loc["non_causal_cell", "n_fdr_0.05"] == 0
    # heterogeneity: no group significant (kNN graph of 30 cells; ours and the golden differ)
    assert (grp["hetero_mcp"] > 0.05).all() and (ref["hetero_mcp"] > 0.05).all()
    score = pd.read_csv(out[TRAIT]["score"], sep="\t")
    assert list(score.columns) == ["index", *S.SCORE_COLUMNS]


# --------------------------------------------------------------------------- live scdrs 1.0.2

_PEER_SCORE = """
import sys, numpy as np, pandas as pd, scipy.sparse as sp, anndata as ad, scdrs
np.float_ = np.float64      # scdrs 1.0.2's gearys_c still names np.float_ (gone in numpy 2)
adata = ad.read_h5ad("in.h5ad")
adata.X = sp.csr_matrix(adata.X)
cov = pd.read_csv("in.cov", sep="\\t", index_col=0) if {cov} else None
scdrs.preprocess(adata, cov=cov, n_mean_bin=20, n_var_bin=20, copy=False)
adata.uns["SCDRS_PARAM"]["GENE_STATS"].to_csv("peer.gene_stats.tsv", sep="\\t")
gs = scdrs.util.load_gs("in.gs", to_intersect=adata.var_names)
for trait, (genes, weights) in gs.items():
    df = scdrs.score_cell(adata, genes, gene_weight=weights, n_ctrl={n_ctrl}, weight_opt="vs",
                          return_ctrl_norm_score=True, random_seed=0)
    df.to_csv(f"peer.{{trait}}.full_score.tsv", sep="\\t")
    if "connectivities" in adata.obsp:
        res = scdrs.method.downstream_group_analysis(adata, df, group_cols=["cell_type"])["cell_type"]
        res.to_csv(f"peer.{{trait}}.group.tsv", sep="\\t")
"""


def _compare_with_peer(tmp_path, adata, X, gs: dict, *, cov: pd.DataFrame | None, n_ctrl: int,
                       graph: sp.csr_matrix | None = None, python: str):
    peer_in = ad.AnnData(X=X.copy(), obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=adata.var_names))
    peer_in.obs["cell_type"] = adata.obs["cell_type"].astype(str).to_numpy()
    if graph is not None:
        peer_in.obsp["connectivities"] = graph
    peer_in.write_h5ad(tmp_path / "in.h5ad")
    if cov is not None:
        # scdrs 1.0.2's own dummy coding fails under pandas 2.3 (bool dummies become object); the
        # peer gets ours, numeric (it then adds no constant: SCDRS_CONST is in), we the raw table
        S.covariate_matrix(cov, adata.obs_names).to_csv(tmp_path / "in.cov", sep="\t")
    lines = ["TRAIT\tGENESET"] + [f"{t}\t" + ",".join(f"{g}:{w!r}" for g, w in s.items()) for t, s in gs.items()]
    (tmp_path / "in.gs").write_text("\n".join(lines) + "\n")
    _run_peer(python, _PEER_SCORE.format(cov=cov is not None, n_ctrl=n_ctrl), tmp_path)

    data = S.preprocess(X, obs_names=adata.obs_names, var_names=adata.var_names, cov=cov)
    peer_stats = pd.read_csv(tmp_path / "peer.gene_stats.tsv", sep="\t", index_col=0, dtype={"mean_var": str})
    for col in ("mean", "var", "ct_mean", "ct_var", "var_tech"):
        np.testing.assert_allclose(data.gene_stats[col], peer_stats[col], rtol=1e-6, atol=1e-12, err_msg=col)
    # same bins: then the control sets are scDRS's own (same seeded draws in the same order)
    agree = (data.gene_stats["mean_var"] == peer_stats["mean_var"]).mean()
    results = {}
    for trait, weights in gs.items():
        scores, ctrl = S.score_cells(data, weights, n_ctrl=n_ctrl, seed=0, return_ctrl_norm_score=True)
        peer = pd.read_csv(tmp_path / f"peer.{trait}.full_score.tsv", sep="\t", index_col=0)
        results[trait] = (scores, ctrl, peer, agree)
    return data, results


def test_live_scdrs_toy_with_covariates_identical(tmp_path):
    python = require_scpeer("scdrs")
    d, adata, data = _toy(True)
    X = data.X
    gs = S.load_gs(d / "toydata_mouse.gs")
    graph = S.knn_connectivities(adata, X)
    _, results = _compare_with_peer(tmp_path, adata, X, gs, cov=S.read_covariates(d / "toydata_mouse.cov"),
                                    n_ctrl=20, graph=graph, python=python)
    scores, ctrl, peer, agree = results[TRAIT]
    assert agree == 1.0
    # float32 outputs on both sides; norm scores and p-values from the same control sets
    np.testing.assert_allclose(scores["raw_score"], peer["raw_score"], rtol=1e-6)
    np.testing.assert_allclose(scores["norm_score"], peer["norm_score"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ctrl, peer[[f"ctrl_norm_score_{i}" for i in range(20)]], rtol=1e-5, atol=1e-5)
    for col in ("mc_pval", "pval"):
        np.testing.assert_array_equal(scores[col], peer[col].astype(np.float32), err_msg=col)
    np.testing.assert_allclose(scores["zscore"], peer["zscore"], rtol=1e-6)
    # group analysis on the same graph
    grp = S.group_analysis(scores, ctrl, adata.obs["cell_type"].astype(str), graph)
    pgrp = pd.read_csv(tmp_path / f"peer.{TRAIT}.group.tsv", sep="\t", index_col=0)
    pd.testing.assert_frame_equal(grp, pgrp.astype(np.float32), check_names=False, rtol=1e-5, atol=1e-5)


def _synthetic_counts(seed: int, n_cells: int = 500, n_genes: int = 1500):
    """Negative-binomial counts, 3 cell types, type 'B' expressing the first 60 genes higher;
    a batch (categorical) and depth covariate; some cells express none of the set's genes."""
    rng = np.random.default_rng(seed)
    types = rng.choice(["A", "B", "C"], size=n_cells)
    base = rng.gamma(0.6, 0.5, size=n_genes)
    mu = np.outer(rng.lognormal(0, 0.3, n_cells), base)
    mu[types == "B", :60] *= 3.0
    counts = rng.negative_binomial(2, 2 / (2 + mu)).astype(np.float32)
    counts[:15, :200] = 0                             # cells without any of the disease genes
    obs = pd.DataFrame({"cell_type": types}, index=[f"cell{i:04d}" for i in range(n_cells)])
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=[f"G{j:04d}" for j in range(n_genes)]))
    cov = pd.DataFrame({"batch": rng.choice(["b1", "b2", "b3"], size=n_cells),
                        "n_genes": np.asarray((counts > 0).sum(axis=1), dtype=float)}, index=obs.index)
    genes = list(adata.var_names[:200])
    gs = {"planted": pd.Series(rng.uniform(1, 10, size=200).round(4), index=genes),
          "random": pd.Series(1.0, index=list(adata.var_names[rng.choice(np.arange(300, n_genes), 150, replace=False)]))}
    return adata, cov, gs


@pytest.mark.parametrize("with_cov", [True, False])
def test_live_scdrs_synthetic_counts(tmp_path, with_cov):
    python = require_scpeer("scdrs")
    adata, cov, gs = _synthetic_counts(7)
    X = S.log_normalize(adata)
    _, results = _compare_with_peer(tmp_path, adata, X, gs, cov=cov if with_cov else None, n_ctrl=50, python=python)
    # float32 gene statistics computed in scipy's own order: the same bins as scdrs here
    assert all(r[3] == 1.0 for r in results.values())
    for trait, (scores, ctrl, peer, agree) in results.items():
        np.testing.assert_allclose(scores["raw_score"], peer["raw_score"], rtol=1e-6, atol=1e-7)
        if agree == 1.0:
            np.testing.assert_allclose(scores["norm_score"], peer["norm_score"], rtol=1e-5, atol=1e-5)
            # pooled p over 500 x 50 null values: at most a couple of near-ties may flip
            dp = np.abs(scores["pval"].to_numpy() - peer["pval"].to_numpy())
            assert dp.max() <= 3 / (500 * 50 + 1) + 1e-7
            assert np.abs(scores["mc_pval"].to_numpy() - peer["mc_pval"].to_numpy()).max() <= 1 / 51 + 1e-7
        else:  # float32 sums put a gene on the other side of a bin edge: different control sets
            assert np.corrcoef(scores["norm_score"], peer["norm_score"])[0, 1] > 0.95
    planted = results["planted"][0]
    is_b = adata.obs["cell_type"].to_numpy() == "B"
    assert planted["norm_score"][is_b].mean() > planted["norm_score"][~is_b].mean() + 1
    zero = np.asarray(X[:, :200].sum(axis=1)).ravel() == 0
    if not with_cov:  # cells without any disease-gene expression: raw 0, bottom of the ranking, p = 1
        assert zero.sum() == 15
        assert (planted["raw_score"][zero] == 0).all() and (planted["pval"][zero] == 1).all()
        assert (planted["norm_score"][zero] < planted["norm_score"][~zero].min()).all()


# --------------------------------------------------------------------------- pieces

def test_loess_equals_skmisc(tmp_path):
    python = require_scpeer("scdrs")        # skmisc comes with scdrs
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1.5, 4000)
    x[:1500] = np.round(x[:1500], 1)        # ties (genes with identical count-scale means)
    y = 0.3 * x ** 2 + x + rng.normal(0, 0.3, x.size)
    np.save(tmp_path / "xy.npy", np.vstack([x, y]))
    _run_peer(python, """
        import numpy as np
        from skmisc.loess import loess
        x, y = np.load("xy.npy")
        m = loess(x, y, span=0.3, degree=2); m.fit()
        np.save("fit.npy", m.outputs.fitted_values)
        """, tmp_path)
    np.testing.assert_allclose(S.loess_fit(x, y, span=0.3), np.load(tmp_path / "fit.npy"), rtol=0, atol=1e-10)


def test_gene_set_from_gene_scores_equals_munge_gs_golden():
    d = require_shared("scdrs_gwas_gene_sets", "from_pypi_wheel_1.0.2")
    z = pd.read_csv(d / "gwas_gene.zscore_file", sep="\t", index_col=0)
    golden = S.load_gs(d / "gwas_gene.from_zscore.gs")
    for trait in z.columns:
        table = pd.DataFrame({"gene": z.index, "z": z[trait].to_numpy()})
        ours = S.gene_set_from_gene_scores(table, n_genes=len(golden[trait]))
        exp = golden[trait]
        # same genes (order among tied z may differ) with the same 5-digit weights
        assert set(ours.index) == set(exp.index)
        np.testing.assert_allclose(ours.loc[exp.index].to_numpy(), exp.to_numpy(), rtol=1e-9)


def test_load_gs_formats_and_errors(tmp_path):
    p = tmp_path / "a.gs"
    p.write_text("TRAIT\tGENESET\nt1\tA,B,C\nt2\tA:1.5,D:2\n")
    gs = S.load_gs(p)
    assert gs["t1"].to_dict() == {"A": 1.0, "B": 1.0, "C": 1.0}
    assert gs["t2"].to_dict() == {"A": 1.5, "D": 2.0}
    p.write_text("TRAIT\tGENESET\nt1\tA,B:2\n")
    with pytest.raises(InputFormatError, match=r"a\.gs: line 2: .*mixes"):
        S.load_gs(p)
    p.write_text("trait\tgenes\nt1\tA\n")
    with pytest.raises(InputFormatError, match="line 1"):
        S.load_gs(p)
    p.write_text("TRAIT\tGENESET\nt1\tA:x\n")
    with pytest.raises(InputFormatError, match="not a number"):
        S.load_gs(p)


# --------------------------------------------------------------------------- CLI

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cohortflow.cli", "disease-score", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli_outputs_deterministic_and_bad_input(tmp_path):
    adata, cov, gs = _synthetic_counts(11, n_cells=200, n_genes=600)
    adata.obsp["connectivities"] = sp.csr_matrix(np.eye(200, k=1) + np.eye(200, k=-1))
    adata.write_h5ad(tmp_path / "cells.h5ad")
    pd.DataFrame({"gene": adata.var_names, "z": np.r_[np.linspace(6, 2, 60), np.zeros(540)]}).to_csv(
        tmp_path / "t.gene_scores.tsv", sep="\t", index=False)
    for run in ("a", "b"):
        proc = _cli("--h5ad", tmp_path / "cells.h5ad", "--gene-scores", tmp_path / "t.gene_scores.tsv", "--n-genes", 60,
                    "--n-ctrl", 30, "--out", tmp_path / run)
        assert proc.returncode == 0, proc.stderr
    names = ["t.score.tsv.gz", "t.scdrs_group.cell_type.tsv", "gene_stats.tsv", "h5ad"]
    for name in names:
        assert (tmp_path / f"a.{name}").read_bytes() == (tmp_path / f"b.{name}").read_bytes(), name
    grp = pd.read_csv(tmp_path / "a.t.scdrs_group.cell_type.tsv", sep="\t", index_col=0)
    assert grp["assoc_mcp"].idxmin() == "B" and grp.loc["B", "assoc_mcp"] == pytest.approx(1 / 31)
    res = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(res.X.toarray(), adata.X.toarray())     # the input's counts, untouched
    score = pd.read_csv(tmp_path / "a.t.score.tsv.gz", sep="\t", index_col=0)
    np.testing.assert_array_equal(res.obs["t.norm_score"].to_numpy(), score["norm_score"].to_numpy(dtype=np.float32))

    bad = tmp_path / "bad.gs"
    bad.write_text("TRAIT\tGENESET\nt1\tG0001,G0002:3\n")
    proc = _cli("--h5ad", tmp_path / "cells.h5ad", "--gene-set", bad, "--out", tmp_path / "c")
    assert proc.returncode != 0
    assert "bad.gs: line 2:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("c.*"))
    proc = _cli("--h5ad", tmp_path / "missing.h5ad", "--gene-set", bad, "--out", tmp_path / "c")
    assert proc.returncode != 0 and "missing.h5ad: file not found" in proc.stderr
    cov_bad = tmp_path / "few.cov"
    cov.iloc[:20].to_csv(cov_bad, sep="\t")
    proc = _cli("--h5ad", tmp_path / "cells.h5ad", "--gene-scores", tmp_path / "t.gene_scores.tsv", "--covariates",
                cov_bad, "--out", tmp_path / "c")
    assert proc.returncode != 0 and "few.cov" in proc.stderr and "75 %" in proc.stderr
    assert not list(tmp_path.glob("c.*"))


def test_outputs_do_not_depend_on_thread_count(tmp_path):
    adata, cov, gs = _synthetic_counts(5, n_cells=700, n_genes=800)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    cov.to_csv(tmp_path / "cells.cov", sep="\t")
    script = textwrap.dedent(f"""
        import anndata as ad, numba, sys
        from cohortflow.singlecell import scdrs as S
        a = ad.read_h5ad("{tmp_path / 'cells.h5ad'}")
        d = S.preprocess(S.log_normalize(a), obs_names=a.obs_names, var_names=a.var_names,
                         cov=S.read_covariates("{tmp_path / 'cells.cov'}"))
        scores, _ = S.score_cells(d, S.load_gs("{tmp_path / 'set.gs'}")["planted"], n_ctrl=40)
        d.gene_stats.to_csv(sys.argv[1] + ".stats", sep="\\t", float_format="%.17g")
        scores.to_csv(sys.argv[1], sep="\\t", float_format="%.9g")
        """)
    (tmp_path / "set.gs").write_text("TRAIT\tGENESET\nplanted\t" + ",".join(f"{g}:{w}" for g, w in gs["planted"].items()))
    for threads in (1, 2):
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"t{threads}.tsv")], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "t1.tsv").read_bytes() == (tmp_path / "t2.tsv").read_bytes()
    assert (tmp_path / "t1.tsv.stats").read_bytes() == (tmp_path / "t2.tsv.stats").read_bytes()


def test_spatial_slide_score_concentrates_in_the_planted_region(tmp_path):
    """A 30 x 30 grid whose disc region expresses the gene set's genes 3x higher: the score's
    Moran's I (equal to spatial_autocorrelation's on the same graph) is positive with p < 0.01,
    the disc is the top region, and without a region column the top k-means cluster scores like
    the disc."""
    from cohortflow.singlecell.spatial import spatial_autocorrelation, spatial_graph

    rng = np.random.default_rng(5)
    side, n_genes = 30, 600
    xy = np.array([(i, j) for i in range(side) for j in range(side)], dtype=float)
    disc = np.hypot(xy[:, 0] - 10, xy[:, 1] - 18) < 6
    base = rng.gamma(0.8, 0.6, size=n_genes)
    mu = np.outer(rng.lognormal(0, 0.2, len(xy)), base)
    mu[np.ix_(disc, np.arange(40))] *= 3.0
    counts = rng.negative_binomial(3, 3 / (3 + mu)).astype(np.float32)
    names = [f"spot{i:04d}" for i in range(len(xy))]
    obs = pd.DataFrame({"region": np.where(disc, "disc", "rest")}, index=names)
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=[f"G{j:04d}" for j in range(n_genes)]))
    adata.obsm["spatial"] = xy
    adata.write_h5ad(tmp_path / "slide.h5ad")
    del adata.obs["region"]
    adata.write_h5ad(tmp_path / "slide_noregion.h5ad")
    (tmp_path / "t.gs").write_text("TRAIT\tGENESET\nplanted\t" + ",".join(f"G{j:04d}:1" for j in range(40)) + "\n")

    for name in ("slide", "slide_noregion"):
        res = _cli("--h5ad", tmp_path / f"{name}.h5ad", "--gene-set", tmp_path / "t.gs", "--n-ctrl", 50,
                   "--n-perms", 99, "--no-h5ad", "--out", tmp_path / name)
        assert res.returncode == 0, res.stderr
        info = __import__("json").loads((tmp_path / f"{name}.planted.spatial.json").read_text())
        scores = pd.read_csv(tmp_path / f"{name}.planted.score.tsv.gz", sep="\t", index_col=0)
        graph, _ = spatial_graph(xy, graph="knn", n_neighbors=6)
        moran, _ = spatial_autocorrelation(scores[["norm_score"]].to_numpy(float), graph, ["s"], n_perms=0)
        assert info["morans_i"] == pytest.approx(moran.loc["s", "I"], abs=1e-6)
        assert info["morans_i"] > 0.2 and info["morans_p_analytic"] < 0.01 and info["morans_p_permutation"] <= 0.01
        regions = pd.read_csv(tmp_path / f"{name}.planted.scdrs_group.{info['region_key']}.tsv", sep="\t",
                              index_col=0, dtype={0: str})
        assert regions.loc[info["top_region"], "assoc_mcp"] < 0.05
        if name == "slide":
            assert info["region_key"] == "region" and info["top_region"] == "disc"
        else:
            means = info["mean_norm_score_by_region"]
            assert info["region_key"] == "spatial_cluster" and len(means) == 6
            # the top cluster is the one scoring like the disc
            disc_mean = scores["norm_score"].to_numpy()[disc].mean()
            assert means[info["top_region"]] == max(means.values())
            assert abs(means[info["top_region"]] - disc_mean) < 0.5 * disc_mean


@pytest.mark.parametrize("rule", [["--fdr", "0.05"], ["--fwer", "0.05"], ["--fwer", "1e-12"], []])
def test_gene_set_size_rules_equal_live_munge_gs(tmp_path, rule):
    """--fdr / --fwer with --n-min / --n-max: the same genes and weights as scdrs munge-gs 1.0.2
    (the last case, where Bonferroni passes fewer than --n-min genes, takes the top n_min)."""
    import subprocess
    from pathlib import Path

    python = require_scpeer("scdrs")
    rng = np.random.default_rng(11)
    n = 3000
    z = rng.normal(size=n)
    z[:150] += rng.uniform(2, 9, size=150)                      # 150 associated genes
    genes = [f"GENE{i:05d}" for i in range(n)]
    pd.DataFrame({"GENE": genes, "trait": z}).to_csv(tmp_path / "z.tsv", sep="\t", index=False)
    subprocess.run([str(Path(python).parent / "scdrs"), "munge-gs", "--zscore-file", str(tmp_path / "z.tsv"),
                    "--out-file", str(tmp_path / "out.gs"), "--weight", "zscore", *rule,
                    "--n-min", "40", "--n-max", "120"], check=True, capture_output=True)
    peer = S.load_gs(tmp_path / "out.gs")["trait"]
    kwargs = {"fdr": 0.05} if rule[:1] == ["--fdr"] else {"fwer": float(rule[1])} if rule else {}
    ours = S.gene_set_from_gene_scores(pd.DataFrame({"gene": genes, "z": z}), n_genes=120, n_min=40, **kwargs)
    assert len(ours) == len(peer) and set(ours.index) == set(peer.index)
    np.testing.assert_allclose(ours.loc[peer.index].to_numpy(), peer.to_numpy(), rtol=1e-9)
    if rule[:1] == ["--fwer"] and rule[1] == "1e-12":
        assert len(ours) == 40


def test_gene_set_size_rule_counts():
    p = np.array([1e-9, 1e-6, 0.001, 0.004, 0.03, 0.2, 0.5, 0.9])
    assert S.n_gene_set_genes(p, n_max=100, fwer=0.05, n_min=1) == 4       # p x 8 <= 0.05
    assert S.n_gene_set_genes(p, n_max=100, fdr=0.05, n_min=1) == 5        # BH: p_(5) = 0.03 <= 5/8 x 0.05
    assert S.n_gene_set_genes(p, n_max=2, fdr=0.05, n_min=1) == 2
    assert S.n_gene_set_genes(p, n_max=100, fwer=0.05, n_min=6) == 6
    assert S.n_gene_set_genes(p, n_max=5, n_min=100) == 5
    with pytest.raises(CohortflowError, match="at most one"):
        S.n_gene_set_genes(p, fdr=0.1, fwer=0.1)
