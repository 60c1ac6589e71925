"""Clumping + thresholding PRS: scoring against plink2 --score, and a simulated known signal."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.io.plink import write_bed
from cohortflow.prs.api import prs_clump_threshold

N, M = 800, 1200


def _simulate(tmp_path, seed=11):
    rng = np.random.default_rng(seed)
    # blocks of 4 correlated variants (a shared haplotype-like latent) so clumping has work to do
    freqs = np.repeat(rng.uniform(0.1, 0.5, M // 4), 4)
    latent = rng.random((M // 4, N))
    noise = rng.random((M, N)) < 0.1
    u = np.where(noise, rng.random((M, N)), np.repeat(latent, 4, axis=0))
    geno = ((u < freqs[:, None]).astype(np.int8) + (rng.random((M, N)) < freqs[:, None]).astype(np.int8))
    geno[rng.random((M, N)) < 0.02] = -1
    causal = np.arange(0, M, 40)
    effects = rng.normal(0, 1, len(causal))
    g = np.where(geno[causal] < 0, 0, geno[causal]).T.astype(float)
    age = rng.normal(50, 8, N)
    liability = g @ effects * 0.35 + 0.03 * age + rng.normal(0, 1, N)
    y_q = liability
    y_b = np.where(liability > np.quantile(liability, 0.6), 2, 1)
    iids = [f"s{i}" for i in range(N)]
    bim = pd.DataFrame({"chrom": np.where(np.arange(M) < M // 2, "1", "2"), "id": [f"rs{i}" for i in range(M)],
                        "cm": 0.0, "pos": 1000 + (np.arange(M) % (M // 2)) * 5000, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "g", geno, bim, fam)
    ph = pd.DataFrame({"#FID": iids, "IID": iids, "q": y_q, "b": y_b})
    ph.loc[5, "q"] = np.nan
    ph.to_csv(tmp_path / "p.tsv", sep="\t", index=False, na_rep="NA")
    pd.DataFrame({"#FID": iids, "IID": iids, "age": age}).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    return tmp_path / "g"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("prs"))


def test_quantitative_prs_outputs_and_signal(sim):
    d = sim.parent
    perf = prs_clump_threshold(bfile=sim, pheno=d / "p.tsv", trait="q", covar=d / "c.tsv", seed=3,
                               out_prefix=d / "out" / "q")
    saved = json.loads((d / "out" / "q.performance.json").read_text())
    assert saved == json.loads(json.dumps(perf))
    assert perf["type"] == "quantitative" and perf["n_train"] + perf["n_test"] == N - 1
    assert perf["n_test"] == round(0.2 * (N - 1))
    # 30 causal variants explaining most of the variance: the held-out score must carry it
    assert perf["r2"] > 0.2 and perf["partial_r2"] > 0.2
    assert 0 < perf["n_variants"] <= 1200
    weights = pd.read_csv(d / "out" / "q.weights.tsv", sep="\t")
    assert list(weights.columns) == ["variant_id", "chromosome", "base_pair_location", "effect_allele",
                                     "other_allele", "weight"]
    assert len(weights) == perf["n_variants"]
    scores = pd.read_csv(d / "out" / "q.scores.tsv.gz", sep="\t")
    assert list(scores.columns) == ["IID", "split", "score"]
    assert (scores["split"] == "test").sum() == perf["n_test"]
    assert (d / "out" / "q.png").read_bytes()[:4] == b"\x89PNG"


def test_binary_prs(sim):
    d = sim.parent
    perf = prs_clump_threshold(bfile=sim, pheno=d / "p.tsv", trait="b", covar=d / "c.tsv", seed=3,
                               out_prefix=d / "out" / "b")
    assert perf["type"] == "binary"
    assert perf["auc"] > 0.65 and perf["or_per_sd"] > 1.5


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not installed")
def test_scores_match_plink2_score(sim, tmp_path):
    d = sim.parent
    prefix = d / "out" / "q"
    if not (d / "out" / "q.weights.tsv").exists():
        prs_clump_threshold(bfile=sim, pheno=d / "p.tsv", trait="q", covar=d / "c.tsv", seed=3, out_prefix=prefix)
    weights = pd.read_csv(f"{prefix}.weights.tsv", sep="\t")
    ours = pd.read_csv(f"{prefix}.scores.tsv.gz", sep="\t")
    # plink2 mean-imputes with the frequencies we give it: the training-sample frequencies
    from cohortflow.io.plink import open_bed
    bed = open_bed(sim)
    train = np.flatnonzero(bed.fam["iid"].isin(ours.loc[ours["split"] == "train", "IID"]).to_numpy())
    rows = np.flatnonzero(bed.bim["id"].isin(weights["variant_id"]).to_numpy())
    g = bed.read(0)[rows][:, train].astype(float)
    g[g < 0] = np.nan
    freq = np.nanmean(g, axis=1) / 2
    afreq = pd.DataFrame({"#CHROM": bed.bim["chrom"].to_numpy()[rows], "ID": bed.bim["id"].to_numpy()[rows],
                          "REF": bed.bim["a2"].to_numpy()[rows], "ALT": bed.bim["a1"].to_numpy()[rows],
                          "ALT_FREQS": [f"{f:.17g}" for f in freq], "OBS_CT": 2 * len(train)})
    afreq.to_csv(tmp_path / "train.afreq", sep="\t", index=False)
    ours[["IID"]].assign(FID=ours["IID"])[["FID", "IID"]].to_csv(tmp_path / "keep.txt", sep="\t", index=False,
                                                                   header=False)
    subprocess.run(["plink2", "--bfile", str(sim), "--keep", str(tmp_path / "keep.txt"), "--score",
                    f"{prefix}.weights.tsv", "1", "4", "6", "header", "cols=+scoresums",
                    "--read-freq", str(tmp_path / "train.afreq"), "--threads", "1",
                    "--out", str(tmp_path / "ref")], check=True, capture_output=True)
    ref = pd.read_csv(tmp_path / "ref.sscore", sep="\t")
    merged = ours.merge(ref, on="IID")
    assert len(merged) == len(ours)
    # plink2 prints 6 significant digits: agreement to half a unit in the 6th digit
    np.testing.assert_allclose(merged["score"], merged["SCORE1_SUM"], rtol=5e-6, atol=1e-9)
