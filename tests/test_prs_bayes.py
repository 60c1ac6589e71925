"""LD blocks and the LDpred2-auto Gibbs sampler (cohortflow.prs.ld, .bayes_kernels, .bayes).

Known answers: the sampler's Monte Carlo averages against closed-form posteriors (independent
variants; a few variants in LD by enumerating every inclusion pattern), an independent numpy
re-implementation fed the same random draws, and a simulation with known h2 and causal effects
(genotypes, OLS summary statistics, LD from a separate reference sample).
"""

from __future__ import annotations

import itertools
import json
import logging
import math

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.prs import bayes_kernels
from cohortflow.prs.bayes import _judge_chains, chain_seeds, ldpred_auto, prs_bayes
from cohortflow.prs.ld import compute_ld_blocks, genotype_correlation
from cohortflow.threads import thread_limit
from cohortflow.variants.kernels import standardize_rows

# ---------------------------------------------------------------------------------------------
# simulation helpers


def simulate_genotypes(rng, n: int, n_segments: int, seg_len: int, *, n_founders: int = 6, switch: float = 0.08,
                       mutation: float = 0.01) -> np.ndarray:
    """Genotypes (samples x variants, int8) made of independent segments; within a segment every
    haplotype copies one of a few founder haplotypes, switching founder with probability
    ``switch`` per variant, so LD is strong nearby and decays along the segment."""
    m = n_segments * seg_len
    hap = np.empty((2 * n, m), dtype=np.int8)
    for s in range(n_segments):
        freq = rng.uniform(0.05, 0.95, size=seg_len)
        founders = (rng.random((n_founders, seg_len)) < freq).astype(np.int8)
        cur = rng.integers(0, n_founders, size=2 * n)
        for v in range(seg_len):
            cur = np.where(rng.random(2 * n) < switch, rng.integers(0, n_founders, size=2 * n), cur)
            allele = founders[cur, v]
            hap[:, s * seg_len + v] = np.where(rng.random(2 * n) < mutation, 1 - allele, allele)
    return (hap[:n] + hap[n:]).astype(np.int8)


def ols(geno: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-variant simple linear regression (with intercept): beta and its standard error."""
    x = geno.astype(float)
    x -= x.mean(axis=0)
    yc = y - y.mean()
    sxx = (x * x).sum(axis=0)
    beta = x.T @ yc / sxx
    resid = (yc @ yc - beta ** 2 * sxx) / (len(y) - 2)
    return beta, np.sqrt(resid / sxx)


def write_panel(prefix, geno_sv: np.ndarray, *, chrom="1", spacing=1000, a1="A", a2="G"):
    """Write samples x variants genotypes as a PLINK fileset; returns the .bim."""
    n, m = geno_sv.shape
    bim = pd.DataFrame({"chrom": chrom, "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.arange(m, dtype=np.int64) * spacing + 1, "a1": a1, "a2": a2})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(prefix, np.ascontiguousarray(geno_sv.T), bim, fam)
    return bim


def simulate_trait(rng, geno: np.ndarray, n_gwas: int, h2: float, n_causal: int):
    """Standardised causal effects on ``n_causal`` random variants, scaled so that the genetic value
    explains ``h2`` of the trait in the first ``n_gwas`` samples. Returns (effects per allele,
    genetic values of all samples, trait of the GWAS samples)."""
    m = geno.shape[1]
    causal = rng.choice(m, n_causal, replace=False)
    effect = np.zeros(m)
    effect[causal] = rng.normal(size=n_causal) / geno.std(axis=0)[causal]
    g = geno @ effect
    effect *= math.sqrt(h2 / g[:n_gwas].var())
    g = geno @ effect
    y = g[:n_gwas] + rng.normal(scale=math.sqrt(1 - h2), size=n_gwas)
    return effect, g, y


def aligned_table(beta, se, n):
    return pd.DataFrame({"bim_row": np.arange(len(beta), dtype=np.int64), "beta": beta, "standard_error": se,
                         "n": np.full(len(beta), float(n))})


def flat_blocks(blocks: list[np.ndarray]):
    sizes = [b.shape[0] for b in blocks]
    start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    offset = np.concatenate([[0], np.cumsum([s * s for s in sizes])]).astype(np.int64)
    corr = np.concatenate([np.asarray(b, dtype=np.float32).ravel() for b in blocks])
    return start, offset, corr


def run_fixed(beta_hat, n, blocks, *, p, h2, seeds, burn_in, n_iter, shrink=1.0, allow_jump_sign=True):
    """The kernel with p and h2 held fixed (one chain per seed)."""
    start, offset, corr = flat_blocks(blocks)
    seeds = np.asarray(seeds, dtype=np.int64)
    return bayes_kernels.gibbs_auto(np.asarray(beta_hat, float), np.full(len(beta_hat), float(n)), start, offset,
                                    corr, np.full(len(seeds), p), h2, seeds, burn_in, n_iter, shrink,
                                    allow_jump_sign, False, 1e-5, 1.0, 1e-4, 10.0, 200.0)


# ---------------------------------------------------------------------------------------------
# (1) the sampler against closed forms


def test_independent_variants_match_the_closed_form_posterior():
    """R = I, p and h2 fixed: each effect's posterior is a spike + normal mixture with known mean and
    variance. The Monte Carlo mean of the sampled effects (iid draws here) must match the mean
    within 4.5 standard errors; the Rao-Blackwellised mean and inclusion probability exactly."""
    beta_hat = np.array([0.0, 0.03, -0.06, 0.12])
    n, p, h2 = 1000.0, 0.2, 0.3
    m = len(beta_hat)
    n_iter = 40000
    out = run_fixed(beta_hat, n, [np.eye(1)] * m, p=p, h2=h2, seeds=[11], burn_in=10, n_iter=n_iter)
    avg_beta, avg_postp, avg_sampled = out[0][0], out[1][0], out[2][0]
    c1 = n * h2 / (m * p)
    c2 = c1 / (1 + c1)
    post_in = 1 / (1 + (1 - p) / p * math.sqrt(1 + c1) * np.exp(-0.5 * n * c2 * beta_hat ** 2))
    mean = post_in * c2 * beta_hat
    var = post_in * (c2 / n + (c2 * beta_hat) ** 2) - mean ** 2
    se = np.sqrt(var / n_iter)
    assert np.all(np.abs(avg_sampled - mean) < 4.5 * se), (avg_sampled, mean, se)
    np.testing.assert_allclose(avg_beta, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(avg_postp, post_in, rtol=1e-12)
    assert post_in[3] > 0.9 and post_in[1] < 0.3 and post_in[0] < 0.1  # strong, weak and null differ


def enumerated_posterior_mean(beta_hat, r, n, p, h2):
    """Exact posterior mean of the spike-and-slab model beta_hat ~ N(R beta, R / n) by summing over
    every inclusion pattern S: weight p^|S| (1-p)^(M-|S|) s^(-|S|) det(A)^(-1/2) exp(b'A^-1 b / 2)
    with A = n R_SS + I / s^2, b = n beta_hat_S, s^2 = h2 / (M p); mean A^-1 b on S."""
    m = len(beta_hat)
    slab_var = h2 / (m * p)
    log_w, means = [], []
    for pattern in itertools.product([False, True], repeat=m):
        s = np.flatnonzero(pattern)
        mean = np.zeros(m)
        lw = len(s) * math.log(p) + (m - len(s)) * math.log(1 - p)
        if len(s):
            a = n * r[np.ix_(s, s)] + np.eye(len(s)) / slab_var
            b = n * beta_hat[s]
            sol = np.linalg.solve(a, b)
            lw += -0.5 * len(s) * math.log(slab_var) - 0.5 * np.linalg.slogdet(a)[1] + 0.5 * b @ sol
            mean[s] = sol
        log_w.append(lw)
        means.append(mean)
    w = np.exp(np.array(log_w) - max(log_w))
    return (w[:, None] * np.array(means)).sum(axis=0) / w.sum()


@pytest.mark.parametrize("shrink", [1.0, 0.7])
def test_variants_in_ld_match_the_enumerated_posterior(shrink):
    """Three variants in LD (one block) plus one on its own, p and h2 fixed: the chains' mean effects
    must match the exact posterior mean (all 16 inclusion patterns) within 5 Monte Carlo standard
    errors, estimated from the spread of 12 independent chains. With shrinkage the model's matrix is
    s R + (1 - s) I."""
    r_block = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    beta_hat = np.array([0.10, 0.09, 0.02, -0.05])
    n, p, h2 = 800.0, 0.3, 0.2
    out = run_fixed(beta_hat, n, [r_block, np.eye(1)], p=p, h2=h2, seeds=np.arange(1, 13), burn_in=200,
                    n_iter=20000, shrink=shrink)
    r_model = np.eye(4)
    r_model[:3, :3] = shrink * r_block + (1 - shrink) * np.eye(3)
    exact = enumerated_posterior_mean(beta_hat, r_model, n, p, h2)
    for chains in (out[2], out[0]):  # sampled effects, Rao-Blackwellised means
        mean = chains.mean(axis=0)
        se = chains.std(axis=0, ddof=1) / math.sqrt(chains.shape[0])
        assert np.all(np.abs(mean - exact) < 5 * se + 1e-6), (mean, exact, se)
        # the test has power: Monte Carlo error well below the effects and their differences
        assert np.all(se < 0.004), se
    assert abs(exact[0] - exact[1]) > 0.01  # LD shares the signal unevenly; a wrong R shows


def reference_chain(beta_hat, n, blocks, *, p, h2, seed, burn_in, n_iter, shrink):
    """The same Gibbs update written independently in numpy (p, h2 fixed), drawing from numpy's
    legacy Mersenne Twister, whose uniform and normal streams numba's generator reproduces."""
    rs = np.random.RandomState(seed)
    r = np.zeros((len(beta_hat), len(beta_hat)))
    at = 0
    for b in blocks:
        k = b.shape[0]
        r[at:at + k, at:at + k] = np.asarray(b, dtype=np.float32).astype(float)
        at += k
    r_model = shrink * r + (1 - shrink) * np.eye(len(beta_hat))
    m = len(beta_hat)
    beta = np.zeros(m)
    sigma2 = h2 / (m * p)
    sums = np.zeros((3, m))
    for sweep in range(burn_in + n_iter):
        for j in range(m):
            res = beta_hat[j] - (r_model[j] @ beta - beta[j])
            post_var = 1 / (n + 1 / sigma2)
            post_mean = post_var * n * res
            odds_slab = p / (1 - p) * math.sqrt(post_var / sigma2) * math.exp(0.5 * post_mean ** 2 / post_var)
            postp = odds_slab / (1 + odds_slab)
            beta[j] = post_mean + math.sqrt(post_var) * rs.normal() if rs.random_sample() < postp else 0.0
            if sweep >= burn_in:
                sums[0, j] += postp * post_mean
                sums[1, j] += beta[j]
        if sweep >= burn_in:
            sums[2] += r_model @ beta
    return sums / n_iter


def test_kernel_matches_an_independent_numpy_implementation():
    """Two blocks of different sizes (3 and 2 variants), fixed p and h2, same seed: posterior means,
    mean sampled effects and implied correlations equal the numpy version's to rounding."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(5, 50))
    z[1] += 1.5 * z[0]
    full = np.corrcoef(z)
    blocks = [full[:3, :3], full[3:, 3:]]
    beta_hat = np.array([0.08, 0.1, -0.02, 0.04, 0.0])
    out = run_fixed(beta_hat, 500.0, blocks, p=0.4, h2=0.1, seeds=[123], burn_in=5, n_iter=40, shrink=0.9)
    ref = reference_chain(beta_hat, 500.0, blocks, p=0.4, h2=0.1, seed=123, burn_in=5, n_iter=40, shrink=0.9)
    np.testing.assert_allclose(out[0][0], ref[0], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(out[2][0], ref[1], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(out[3][0], ref[2], rtol=1e-9, atol=1e-13)
    assert np.count_nonzero(out[2][0]) >= 3


# ---------------------------------------------------------------------------------------------
# (2) simulation with LD: h2 and prediction


@pytest.fixture(scope="module")
def polygenic(tmp_path_factory):
    """2,000 variants in 20 independent segments; 4,000 GWAS samples, 2,000 LD-reference samples,
    1,000 new samples; h2 = 0.3 over 200 causal variants (p = 0.1)."""
    rng = np.random.default_rng(2024)
    n_gwas, n_ref, n_new = 4000, 2000, 1000
    geno = simulate_genotypes(rng, n_gwas + n_ref + n_new, 20, 100)
    effect, g, y = simulate_trait(rng, geno, n_gwas, h2=0.3, n_causal=200)
    beta, se = ols(geno[:n_gwas], y)
    prefix = tmp_path_factory.mktemp("bayes") / "ref"
    write_panel(prefix, geno[n_gwas:n_gwas + n_ref])
    return {"bed": open_bed(prefix), "beta": beta, "se": se, "n_gwas": n_gwas, "effect": effect,
            "true_h2": float(g[:n_gwas].var() / y.var()), "new_geno": geno[n_gwas + n_ref:],
            "new_g": g[n_gwas + n_ref:], "ref_geno": geno[n_gwas:n_gwas + n_ref]}


def clump_threshold_best(sim) -> float:
    """Best correlation with the true genetic value over p-value thresholds of a clumping +
    thresholding score (greedy by p-value, r^2 < 0.1 in the reference), chosen on the new samples
    themselves (an upper bound on what C+T reaches)."""
    from scipy import stats

    beta, se = sim["beta"], sim["se"]
    p = 2 * stats.norm.sf(np.abs(beta / se))
    r2 = np.corrcoef(sim["ref_geno"].T) ** 2
    best = -1.0
    for threshold in (5e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1):
        taken = np.zeros(len(beta), dtype=bool)
        w = np.zeros(len(beta))
        for j in np.argsort(p, kind="stable"):
            if p[j] > threshold:
                break
            if not taken[j]:
                w[j] = beta[j]
                taken |= r2[j] > 0.1
        if w.any():
            best = max(best, float(np.corrcoef(sim["new_geno"] @ w, sim["new_g"])[0, 1]))
    return best


def test_simulation_recovers_h2_and_predicts_better_than_marginal_and_ct(polygenic):
    """LD from a separate 2,000-sample reference. Tolerances: h2 within 0.06 of the truth (LD
    sampling noise inflates it by a few hundredths), p within a factor 2 of 0.1; the score's
    correlation with the true genetic value on 1,000 new samples at least 0.05 above the marginal
    betas' and 0.02 above the best clumping + thresholding score (chosen on those samples)."""
    sim = polygenic
    res = ldpred_auto(aligned_table(sim["beta"], sim["se"], sim["n_gwas"]), sim["bed"], seed=1, n_chains=4,
                      burn_in=100, n_iter=100, max_block_variants=300, threads=2)
    assert res.n_kept == 4
    assert abs(res.h2["estimate"] - sim["true_h2"]) < 0.06, (res.h2, sim["true_h2"])
    assert 0.05 < res.p["estimate"] < 0.2, res.p
    w = np.zeros(len(sim["beta"]))
    w[res.variant_rows] = res.weight
    r_bayes = np.corrcoef(sim["new_geno"] @ w, sim["new_g"])[0, 1]
    r_marginal = np.corrcoef(sim["new_geno"] @ sim["beta"], sim["new_g"])[0, 1]
    r_ct = clump_threshold_best(sim)
    assert r_bayes > r_marginal + 0.05, (r_bayes, r_marginal)
    assert r_bayes > r_ct + 0.02, (r_bayes, r_ct)
    # weights are per allele on the trait's scale, and a posterior mean is calibrated: the true
    # genetic value regressed on the score has slope about 1
    slope = np.polyfit(sim["new_geno"] @ w, sim["new_g"], 1)[0]
    assert 0.8 < slope < 1.2, slope


def test_sparse_trait_finds_the_causal_variants(tmp_path):
    """Few large effects (5 causal of 1,000): p estimated small, the causal variants get the
    highest posterior inclusion probabilities and the score beats the marginal betas."""
    rng = np.random.default_rng(7)
    geno = simulate_genotypes(rng, 3000 + 1000 + 500, 10, 100)
    effect, g, y = simulate_trait(rng, geno, 3000, h2=0.2, n_causal=5)
    beta, se = ols(geno[:3000], y)
    write_panel(tmp_path / "ref", geno[3000:4000])
    res = ldpred_auto(aligned_table(beta, se, 3000), open_bed(tmp_path / "ref"), seed=3, n_chains=4, burn_in=100,
                      n_iter=100, max_block_variants=300)
    assert res.p["estimate"] < 0.02, res.p
    causal = np.flatnonzero(effect)
    top = np.argsort(-res.postp)[:10]
    assert len(set(res.variant_rows[top]) & set(causal)) >= 4
    w = np.zeros(len(beta))
    w[res.variant_rows] = res.weight
    new = geno[4000:]
    assert np.corrcoef(new @ w, g[4000:])[0, 1] > np.corrcoef(new @ beta, g[4000:])[0, 1] + 0.1


def test_trait_without_genetic_signal_gives_near_zero_weights_and_a_warning(tmp_path):
    """A trait independent of the genotypes: h2 falls to its lower bound, the weights are tiny and
    the result says so."""
    rng = np.random.default_rng(3)
    geno = simulate_genotypes(rng, 1500, 5, 100)
    beta, se = ols(geno[:1000], rng.normal(size=1000))
    write_panel(tmp_path / "ref", geno[1000:])
    res = ldpred_auto(aligned_table(beta, se, 1000), open_bed(tmp_path / "ref"), seed=1, n_chains=4, burn_in=100,
                      n_iter=100)
    assert res.h2["estimate"] < 1e-3
    assert any("lower bound" in w for w in res.warnings)
    assert np.abs(res.weight).max() < 0.01 * np.abs(beta).max()


# ---------------------------------------------------------------------------------------------
# (3) determinism


def test_same_seed_same_weights_any_thread_count(polygenic):
    sim = polygenic
    aligned = aligned_table(sim["beta"], sim["se"], sim["n_gwas"])
    ld = compute_ld_blocks(sim["bed"], aligned["bim_row"].to_numpy(), max_block_variants=300)
    kw = {"ld": ld, "n_chains": 3, "burn_in": 20, "n_iter": 20}
    a = ldpred_auto(aligned, sim["bed"], seed=5, threads=1, **kw)
    b = ldpred_auto(aligned, sim["bed"], seed=5, threads=2, **kw)
    c = ldpred_auto(aligned, sim["bed"], seed=5, threads=2, **kw)
    d = ldpred_auto(aligned, sim["bed"], seed=6, threads=2, **kw)
    assert a.weight.tobytes() == b.weight.tobytes() == c.weight.tobytes()
    assert a.chains == b.chains
    assert not np.array_equal(a.weight, d.weight)
    # LD itself: the same bytes whatever the number of BLAS threads
    for threads in (1, 2):
        with thread_limit(threads):
            again = compute_ld_blocks(sim["bed"], aligned["bim_row"].to_numpy(), max_block_variants=300)
        assert again.corr.tobytes() == ld.corr.tobytes()
    assert chain_seeds(5, 3).tolist() == chain_seeds(5, 3).tolist() != chain_seeds(6, 3).tolist()


# ---------------------------------------------------------------------------------------------
# (4) divergence


def test_all_chains_diverging_is_a_clear_error(polygenic):
    """A sample size five times too small makes the marginal effects claim more variance than the
    trait has (implied h2 ~1.5 > 1 after the burn-in in every chain): no weights come out."""
    sim = polygenic
    aligned = aligned_table(sim["beta"], sim["se"], sim["n_gwas"] / 5)
    with pytest.raises(CohortflowError, match=r"all 4 LDpred2-auto chains diverged \(h2_above_max: 4\).*sample size n"):
        ldpred_auto(aligned, sim["bed"], seed=1, n_chains=4, burn_in=20, n_iter=20, max_block_variants=300)


def test_sweeps_passing_h2_1_do_not_drop_a_chain(polygenic):
    """n three times too small: h2 ~0.93, so single sweeps pass 1 (posterior noise of the sampled
    effects). Those sweeps are clamped, not fatal: every chain is kept, with its mean h2 below 1.
    (A small real GWAS, such as the reduced demo cohort, is in this situation.)"""
    sim = polygenic
    aligned = aligned_table(sim["beta"], sim["se"], sim["n_gwas"] / 3)
    result = ldpred_auto(aligned, sim["bed"], seed=1, n_chains=4, burn_in=20, n_iter=20, max_block_variants=300)
    assert result.n_kept == 4
    assert all(0.8 < c["h2"] < 1.0 for c in result.chains)


def ssf_table(bim: pd.DataFrame, beta, se, n, *, swap=None) -> pd.DataFrame:
    """GWAS-SSF rows for the variants of ``bim`` (effect allele = A1); ``swap``: rows whose alleles
    are written the other way round while beta is left as is (a mis-coded allele)."""
    ea, oa = bim["a1"].to_numpy(object).copy(), bim["a2"].to_numpy(object).copy()
    if swap is not None:
        ea[swap], oa[swap] = oa[swap], ea[swap]
    z = beta / se
    from scipy import stats

    return pd.DataFrame({"chromosome": bim["chrom"], "base_pair_location": bim["pos"], "effect_allele": ea,
                         "other_allele": oa, "beta": beta, "standard_error": se, "effect_allele_frequency": 0.5,
                         "p_value": 2 * stats.norm.sf(np.abs(z)), "n": n, "variant_id": bim["id"],
                         "test_statistic": z, "errcode": ""})


def test_mis_coded_alleles_never_give_nan_weights(tmp_path):
    """30% of the variants' alleles mis-coded in the summary statistics: the signs contradict the
    LD. The chains agree on a poor fit (no chain diverges: h2 stays below 1), every chain is
    reported in OUT.json, and the weights are finite."""
    rng = np.random.default_rng(0)
    geno = simulate_genotypes(rng, 4000, 10, 100)
    _, _, y = simulate_trait(rng, geno, 3000, h2=0.3, n_causal=100)
    beta, se = ols(geno[:3000], y)
    bim = write_panel(tmp_path / "ref", geno[3000:])
    swap = rng.random(len(beta)) < 0.3
    ssf_table(bim, beta, se, 3000, swap=swap).to_csv(tmp_path / "ss.tsv", sep="\t", index=False)
    out = prs_bayes(bfile=tmp_path / "ref", sumstats=tmp_path / "ss.tsv", out_prefix=tmp_path / "out", seed=1,
                    n_chains=6, burn_in=100, n_iter=100, max_block_variants=300, keep_ambiguous=True)
    summary = json.loads((tmp_path / "out.json").read_text())
    assert len(summary["chains"]) == 6
    assert summary["n_chains_kept"] + summary["n_chains_diverged"] == 6 and summary["n_chains_kept"] >= 1
    assert all((c["reason"] is None) == c["kept"] for c in summary["chains"])
    weights = pd.read_csv(tmp_path / "out.weights.tsv", sep="\t")
    assert np.isfinite(weights["weight"]).all() and len(weights) == len(beta)
    assert out["n_chains_diverged"] == summary["n_chains_diverged"]


def test_chain_rules_drop_stuck_and_outlying_chains():
    """Post-run rules: LDpred2's (corr range < 0.95 x its 95% quantile) and h2 far (> 2x) from the
    median of the chains kept; a chain stopped in the sampler is reported with its sweep."""
    m, burn, total = 50, 5, 10
    base = np.linspace(-0.2, 0.2, m)
    avg_corr = np.array([base, base * 1.01, base * 0.2, base * 0.99, base])  # chain 2 stuck near zero
    h2_path = np.full((5, total), 0.3)
    h2_path[3] = 0.9  # chain 3: h2 far from the others
    h2_path[4, 3] = 1.7  # chain 4 stopped at sweep 3
    status = np.array([0, 0, 0, 0, bayes_kernels.CHAIN_H2_ABOVE_MAX])
    sweeps = np.array([total] * 4 + [3])
    chains = _judge_chains(np.zeros((5, m)), avg_corr, np.full((5, total), 0.01), h2_path, status, sweeps,
                           burn_in=burn, p_init=np.geomspace(1e-3, 0.1, 5), seeds=np.arange(5),
                           corr_range_fraction=0.95, h2_outlier_ratio=2.0)
    assert [c["kept"] for c in chains] == [True, True, False, False, False]
    assert chains[2]["reason"].startswith("corr_range_low")
    assert chains[3]["reason"].startswith("h2_outlier")
    assert chains[4]["reason"] == "h2_above_max at sweep 4 (h2 = 1.7)"
    # a chain that finished with its mean h2 after the burn-in above the bound is dropped too
    h2_path[1, burn:] = 1.2
    chains = _judge_chains(np.zeros((5, m)), avg_corr, np.full((5, total), 0.01), h2_path, status, sweeps,
                           burn_in=burn, p_init=np.geomspace(1e-3, 0.1, 5), seeds=np.arange(5),
                           corr_range_fraction=0.95, h2_outlier_ratio=2.0, h2_max=1.0)
    assert chains[1]["reason"] == "h2_above_max after the burn-in (mean h2 = 1.2)" and not chains[1]["kept"]


# ---------------------------------------------------------------------------------------------
# LD blocks


def test_genotype_correlation_is_the_mean_imputed_pearson_correlation():
    rng = np.random.default_rng(3)
    g = rng.binomial(2, 0.3, size=(40, 257)).astype(np.int8)
    g[:10] = np.minimum(2, g[:10] + g[10:20])
    g[rng.random(g.shape) < 0.05] = -1
    g[5] = 0  # monomorphic
    g[6] = -1  # all missing
    r, poly = genotype_correlation(g)
    z, expected_poly = standardize_rows(g)
    expected = z @ z.T / g.shape[1]
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(r, expected, atol=1e-13)
    assert np.array_equal(poly, expected_poly)
    full = g[20:30][:, (g[20:30] >= 0).all(axis=0)]  # no missing: numpy's corrcoef
    np.testing.assert_allclose(genotype_correlation(full)[0], np.corrcoef(full), atol=1e-13)


def test_block_cuts_fall_between_independent_segments(tmp_path):
    """Segments of 100 variants without LD between them; blocks of at most 150: every cut lands on
    a segment boundary (the weakest LD in the search range), blocks stop at chromosome ends and
    honour the bp span."""
    rng = np.random.default_rng(1)
    geno = simulate_genotypes(rng, 600, 6, 100)
    bim = write_panel(tmp_path / "p", geno)
    bim["chrom"] = np.where(np.arange(600) < 400, "1", "2")
    bim.to_csv(tmp_path / "p.bim", sep="\t", header=False, index=False)
    bed = open_bed(tmp_path / "p")
    ld = compute_ld_blocks(bed, np.arange(600), max_block_variants=150, cut_window=30)
    assert ld.block_start.tolist() == [0, 100, 200, 300, 400, 500, 600]
    np.testing.assert_allclose(ld.block(1), np.corrcoef(geno[:, 100:200].T), atol=1e-6)
    span = compute_ld_blocks(bed, np.arange(600), max_block_variants=150, max_block_bp=50_000)
    sizes = np.diff(span.block_start)
    assert sizes.max() <= 50 and 400 in span.block_start
    assert span.summary()["n_blocks"] == len(sizes)


def test_blocks_from_a_bed_file(tmp_path):
    rng = np.random.default_rng(2)
    geno = simulate_genotypes(rng, 300, 3, 100)
    write_panel(tmp_path / "p", geno)  # positions 1, 1001, ...: variant i at 1000 i + 1
    (tmp_path / "blocks.bed").write_text("chr\tstart\tstop\nchr1\t0\t50000\nchr1\t50000\t250000\n")
    ld = compute_ld_blocks(open_bed(tmp_path / "p"), np.arange(300), blocks_bed=tmp_path / "blocks.bed",
                           max_block_variants=160)
    # regions hold variants 0-49 and 50-249; 250-299 lie outside (a run of their own); 200 > 160 is cut
    assert ld.block_start[:2].tolist() == [0, 50] and ld.block_start[-2:].tolist() == [250, 300]
    assert len(ld.block_start) == 5 and 130 <= ld.block_start[2] <= 210


def test_reference_panel_matching_subsets_and_signs(tmp_path, caplog):
    """An LD panel with other samples, a missing variant, a monomorphic one and alleles swapped for
    some variants: matched by position and alleles, swapped ones change the sign of their
    correlations; samples chosen by IID; a small panel is warned about."""
    rng = np.random.default_rng(4)
    geno = simulate_genotypes(rng, 400, 2, 60)
    target_bim = write_panel(tmp_path / "target", geno[:100])
    panel = geno[100:].copy()
    panel[:, 7] = 1  # monomorphic in the panel
    swap = np.zeros(120, dtype=bool)
    swap[[3, 4, 50, 90]] = True
    panel[:, swap] = 2 - panel[:, swap]
    keep = np.setdiff1d(np.arange(120), [20])
    panel_bim = write_panel(tmp_path / "panel", panel[:, keep])
    panel_bim["pos"] = target_bim["pos"].to_numpy()[keep]
    panel_bim.loc[swap[keep], ["a1", "a2"]] = ["G", "A"]
    panel_bim.to_csv(tmp_path / "panel.bim", sep="\t", header=False, index=False)
    samples = [f"s{i}" for i in range(0, 300, 2)]
    with caplog.at_level(logging.WARNING):
        ld = compute_ld_blocks(open_bed(tmp_path / "target"), np.arange(120), ld_bed=open_bed(tmp_path / "panel"),
                               ld_samples=samples, max_block_variants=80)
    assert "150 samples" in caplog.text
    chosen = panel[::2]  # the chosen samples
    fixed = set(np.flatnonzero(chosen.min(axis=0) == chosen.max(axis=0)).tolist())
    assert 7 in fixed
    assert ld.dropped == {"not_in_ld_panel": 1, "monomorphic_in_ld_panel": len(fixed - {20})}
    assert ld.variant_index.tolist() == [i for i in range(120) if i not in fixed | {20}]
    used = geno[100:][::2][:, ld.variant_index]  # in the target's coding
    cut = int(np.sum(ld.variant_index < 60))
    assert ld.block_start.tolist() == [0, cut, len(ld.variant_index)]  # between the independent segments
    expected = np.corrcoef(used.T)
    np.testing.assert_allclose(ld.block(0), expected[:cut, :cut], atol=1e-6)
    np.testing.assert_allclose(ld.block(1), expected[cut:, cut:], atol=1e-6)
    np.testing.assert_allclose(ld.a1_freq, used.mean(axis=0) / 2, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# prs_bayes: files


def test_prs_bayes_writes_weights_and_summary(tmp_path):
    rng = np.random.default_rng(9)
    geno = simulate_genotypes(rng, 2500, 4, 100)
    _, _, y = simulate_trait(rng, geno, 2000, h2=0.3, n_causal=20)
    beta, se = ols(geno[:2000], y)
    bim = write_panel(tmp_path / "ref", geno[2000:])
    table = ssf_table(bim, beta, se, "")
    table.iloc[::2].to_csv(tmp_path / "half.tsv", sep="\t", index=False)  # half the variants, no n
    with pytest.raises(CohortflowError, match="no GWAS sample size"):
        prs_bayes(bfile=tmp_path / "ref", sumstats=tmp_path / "half.tsv", out_prefix=tmp_path / "x")
    kw = {"bfile": tmp_path / "ref", "sumstats": tmp_path / "half.tsv", "n": 2000, "seed": 2, "n_chains": 3,
          "burn_in": 30, "n_iter": 30, "keep_ambiguous": True}
    out = prs_bayes(out_prefix=tmp_path / "a", **kw)
    weights = pd.read_csv(tmp_path / "a.weights.tsv", sep="\t", dtype={"chromosome": str})
    assert list(weights.columns) == ["variant_id", "chromosome", "base_pair_location", "effect_allele",
                                     "other_allele", "weight"]
    assert weights["variant_id"].tolist() == [f"v{i}" for i in range(0, 400, 2)]
    assert np.isfinite(weights["weight"]).all()
    summary = json.loads((tmp_path / "a.json").read_text())
    assert summary["variants"]["used"] == 200 and summary["settings"]["seed"] == 2
    assert summary["settings"]["n_chains"] == 3 and len(summary["chains"]) == 3
    assert 0 < summary["h2"]["estimate"] < 1 and summary["h2"]["min"] <= summary["h2"]["estimate"]
    assert "runtime_s" in out and "runtime_s" not in summary
    prs_bayes(out_prefix=tmp_path / "b", **kw)
    assert (tmp_path / "a.weights.tsv").read_bytes() == (tmp_path / "b.weights.tsv").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    # the same fileset named as the LD panel: matched variant by variant, the same weights
    prs_bayes(out_prefix=tmp_path / "c", ld_bfile=tmp_path / "ref", **kw)
    assert (tmp_path / "a.weights.tsv").read_bytes() == (tmp_path / "c.weights.tsv").read_bytes()
