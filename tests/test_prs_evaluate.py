"""Polygenic score evaluation: metrics against statsmodels / sklearn, bootstrap, selection on the
validation split only, ancestry groups, small-count suppression, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from cohortflow.errors import CohortflowError
from cohortflow.prs import evaluate as ev


def _sim_linear(n=400, seed=0):
    rng = np.random.default_rng(seed)
    cov = np.column_stack([rng.integers(0, 2, n), rng.normal(50, 10, n), rng.normal(size=n)])
    g = rng.normal(size=n)
    score = 3.0 + 0.01 * (g + rng.normal(size=n))  # tiny raw scale, as sums of small betas are
    y = 0.4 * g + 0.3 * cov[:, 0] + 0.02 * cov[:, 1] + rng.normal(size=n)
    return y, score, cov


def _sim_binary(n=600, seed=1):
    rng = np.random.default_rng(seed)
    cov = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n)])
    g = rng.normal(size=n)
    score = g + rng.normal(size=n)
    eta = -1.0 + 0.6 * g + 0.4 * cov[:, 0] + 0.3 * cov[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return y, score, cov


def test_linear_metrics_match_statsmodels_ols():
    y, score, cov = _sim_linear()
    got = {k: float(v[0]) for k, v in ev.linear_metrics(np.ones((1, len(y))), y, score, cov).items()}
    x_cov = sm.add_constant(cov)
    z = (score - score.mean()) / score.std(ddof=1)
    fit_cov = sm.OLS(y, x_cov).fit()
    fit_full = sm.OLS(y, np.column_stack([x_cov, z])).fit()
    assert got["incremental_r2"] == pytest.approx(fit_full.rsquared - fit_cov.rsquared, abs=1e-10)
    assert got["r2_covariates"] == pytest.approx(fit_cov.rsquared, abs=1e-10)
    assert got["beta_per_sd"] == pytest.approx(fit_full.params[-1], rel=1e-10)
    assert got["r"] == pytest.approx(np.corrcoef(score, y)[0, 1], abs=1e-12)
    # partial R2 = squared correlation of the covariate residuals of score and trait, and
    # incremental R2 = partial R2 x (1 - R2 of the covariates)
    res_s = sm.OLS(score, x_cov).fit().resid
    partial = np.corrcoef(res_s, fit_cov.resid)[0, 1] ** 2
    assert got["partial_r2"] == pytest.approx(partial, abs=1e-10)
    assert got["incremental_r2"] == pytest.approx(partial * (1 - fit_cov.rsquared), abs=1e-10)


def test_binary_metrics_match_statsmodels_logit_and_sklearn():
    y, score, cov = _sim_binary()
    got = ev.binary_metrics(np.ones((1, len(y))), y, score, cov)
    x_cov = sm.add_constant(cov)
    z = (score - score.mean()) / score.std(ddof=1)
    fit_cov = sm.Logit(y, x_cov).fit(disp=0, tol=1e-12)
    fit_full = sm.Logit(y, np.column_stack([x_cov, z])).fit(disp=0, tol=1e-12)
    assert got["auc"][0] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert got["or_per_sd"][0] == pytest.approx(math.exp(fit_full.params[-1]), rel=1e-8)
    assert got["auc_covariates"][0] == pytest.approx(roc_auc_score(y, x_cov @ fit_cov.params), abs=1e-12)
    assert got["auc_full"][0] == pytest.approx(roc_auc_score(y, fit_full.fittedvalues), abs=1e-12)
    n = len(y)

    def nagelkerke(fit):
        return (1 - math.exp(2 * (fit.llnull - fit.llf) / n)) / (1 - math.exp(2 * fit.llnull / n))

    assert got["nagelkerke_r2_incremental"][0] == pytest.approx(nagelkerke(fit_full) - nagelkerke(fit_cov), abs=1e-9)


def test_auc_with_ties_matches_sklearn():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.3).astype(float)
    score = rng.integers(0, 5, 300).astype(float) + y  # many ties
    w = np.ones((1, 300))
    assert ev.auc_weighted(score, y, w)[0] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    two = np.vstack([score, -score])
    assert ev.auc_rows(two, y, np.ones((2, 300))) == pytest.approx(
        [roc_auc_score(y, score), roc_auc_score(y, -score)], abs=1e-12)


def test_count_weights_equal_the_expanded_sample():
    # a bootstrap resample is a row of counts: the weighted statistics must equal the plain ones
    # of the sample with each individual repeated that many times
    rng = np.random.default_rng(3)
    y, score, cov = _sim_binary(n=200)
    counts = next(ev.bootstrap_counts(200, 1, seed=7))
    rep = np.repeat(np.arange(200), counts[0].astype(int))
    got = ev.binary_metrics(counts, y, score, cov)
    # the weighted fit standardises with the full sample's moments; the metrics do not depend on it
    want = ev.binary_metrics(np.ones((1, len(rep))), y[rep], score[rep], cov[rep])
    for k in ("auc", "or_per_sd", "auc_covariates", "auc_full", "nagelkerke_r2_incremental"):
        assert got[k][0] == pytest.approx(want[k][0], rel=1e-8), k
    yq, sq, cq = _sim_linear(n=200, seed=rng.integers(1000))
    got = ev.linear_metrics(counts, yq, sq, cq)
    want = ev.linear_metrics(np.ones((1, len(rep))), yq[rep], sq[rep], cq[rep])
    for k in ("incremental_r2", "partial_r2", "r", "beta_per_sd"):
        assert got[k][0] == pytest.approx(want[k][0], rel=1e-9), k


def test_bootstrap_is_seeded_and_covers_the_truth():
    a = np.concatenate(list(ev.bootstrap_counts(50, 25, seed=3)))
    b = np.concatenate(list(ev.bootstrap_counts(50, 25, seed=3)))
    c = np.concatenate(list(ev.bootstrap_counts(50, 25, seed=4)))
    assert a.shape == (25, 50) and (a.sum(axis=1) == 50).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # y = 0.5 s + e with var(e) = 1: population R2 = 0.25 / 1.25 = 0.2; AUC of s for a binormal
    # shift of 1 SD between the classes: Phi(1 / sqrt(2))
    true_r2, true_auc = 0.2, stats.norm.cdf(1 / math.sqrt(2))
    hits_r2 = hits_auc = 0
    reps = 60
    for rep in range(reps):
        rng = np.random.default_rng(100 + rep)
        s = rng.normal(size=300)
        y = 0.5 * s + rng.normal(size=300)
        r = ev._bootstrap(lambda w, **_: {k: v for k, v in ev.linear_metrics(w, y, s, None).items()
                                     if k == "incremental_r2"}, 300, 300, seed=rep, key=(0,))["incremental_r2"]
        hits_r2 += r["ci_low"] <= true_r2 <= r["ci_high"]
        case = (np.arange(300) < 100).astype(float)
        sc = rng.normal(size=300) + case
        r = ev._bootstrap(lambda w, **_: {"auc": ev.auc_weighted(sc, case, w)}, 300, 300, seed=rep, key=(0,))["auc"]
        hits_auc += r["ci_low"] <= true_auc <= r["ci_high"]
    # nominal 95%: 3 misses expected in 60; at least 51 hits (binomial tail < 1%), and not all 60
    # from intervals so wide they would cover anything
    assert 51 <= hits_r2 and 51 <= hits_auc
    assert hits_r2 + hits_auc < 2 * reps
    again = ev._bootstrap(lambda w, **_: {"auc": ev.auc_weighted(sc, case, w)}, 300, 300, seed=reps - 1, key=(0,))
    assert again["auc"] == r


def test_decile_odds_ratios_match_a_logistic_fit():
    y, score, _ = _sim_binary(n=1000, seed=5)
    dec = ev.decile_of(score)
    assert np.array_equal(np.bincount(dec), np.full(10, 100))
    got = ev.decile_stats(np.ones((1, len(y))), y, dec, binary=True, reference=5)
    dummies = np.column_stack([np.ones(len(y))] + [(dec == d).astype(float) for d in range(10) if d != 4])
    fit = sm.Logit(y, dummies).fit(disp=0, tol=1e-12)
    want = np.insert(np.exp(fit.params[1:]), 4, 1.0)
    assert got["odds_ratio"][0] == pytest.approx(want, rel=1e-8)
    assert got["prevalence"][0] == pytest.approx([y[dec == d].mean() for d in range(10)], abs=1e-12)


# ----------------------------------------------------------------------------------------------
# end to end on small files


def _write(path, frame):
    frame.to_csv(path, sep="\t", index=False)
    return path


def _cohort(tmp_path, *, n=900, binary=False, seed=11, split_p=(0.3, 0.35, 0.35)):
    rng = np.random.default_rng(seed)
    iid = np.array([f"i{k:04d}" for k in range(n)])
    pop = rng.choice(["AFR", "EUR", "SAS"], n, p=[0.3, 0.65, 0.05])
    sex = rng.integers(1, 3, n)
    age = rng.normal(50, 10, n)
    g = rng.normal(size=n)
    liab = 0.6 * g + 0.2 * sex + 0.02 * age + rng.normal(size=n)
    y = np.where(liab > np.quantile(liab, 0.7), 2, 1) if binary else liab
    split = rng.choice(["discovery", "validation", "test"], n, p=split_p)
    scores = {"#FID": iid, "IID": iid}
    for t, noise in (("5e-08", 3.0), ("0.001", 0.6), ("1", 1.5)):
        scores[f"ct_p<{t}"] = g + noise * rng.normal(size=n)
    scores["bayes_auto"] = g + rng.normal(size=n)
    paths = {
        "scores": _write(tmp_path / "ct.scores.tsv", pd.DataFrame(scores)),
        "pheno": _write(tmp_path / "pheno.tsv", pd.DataFrame({"#FID": iid, "IID": iid, "trait": y})),
        "covar": _write(tmp_path / "covar.tsv", pd.DataFrame({"#FID": iid, "IID": iid, "sex": sex, "age": age})),
        "split": _write(tmp_path / "split.tsv", pd.DataFrame({"#FID": iid, "IID": iid, "split": split})),
        "samples": _write(tmp_path / "samples.tsv", pd.DataFrame({"IID": iid, "population": pop})),
    }
    return paths, {"iid": iid, "split": split, "pop": pop, "y": y, "scores": scores}


def _run(paths, tmp_path, name="ev", **kw):
    kw = {"covar": paths["covar"], "n_boot": 200, **kw}
    return ev.evaluate_scores(scores=paths["scores"], pheno=paths["pheno"], trait="trait", split=paths["split"],
                              out_prefix=tmp_path / "out" / name, **kw)


def _read(path):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def test_quantitative_outputs_and_determinism(tmp_path):
    paths, sim = _cohort(tmp_path)
    res = _run(paths, tmp_path, groups=paths["samples"], group_column="population")
    out = tmp_path / "out"
    perf = _read(out / "ev.performance.tsv")
    assert list(perf.columns) == ev.PERFORMANCE_COLUMNS
    assert set(perf["method"]) == {"ct", "bayes"}
    test_rows = perf[perf["split"] == "test"]
    assert set(test_rows["metric"]) == set(ev.METRICS["quantitative"])
    # the reported value is the metric of the chosen column on the test samples, recomputed here
    ct = test_rows[(test_rows["method"] == "ct") & (test_rows["metric"] == "incremental_r2")].iloc[0]
    is_test = sim["split"] == "test"
    x = sm.add_constant(pd.read_csv(paths["covar"], sep="\t")[["sex", "age"]].to_numpy(float)[is_test])
    yt = np.asarray(sim["y"], float)[is_test]
    st = sim["scores"][ct["column"]][is_test]
    want = sm.OLS(yt, np.column_stack([x, st])).fit().rsquared - sm.OLS(yt, x).fit().rsquared
    assert float(ct["value"]) == pytest.approx(want, rel=1e-5)  # 6 significant digits in the table
    assert int(ct["n"]) == is_test.sum()
    assert float(ct["ci_low"]) < float(ct["value"]) < float(ct["ci_high"])
    cands = _read(out / "ev.candidates.tsv")
    assert list(cands.columns) == ev.CANDIDATE_COLUMNS
    assert cands.loc[cands["method"] == "ct", "selected"].tolist().count("yes") == 1
    dec = _read(out / "ev.deciles.tsv")
    assert dec[dec["method"] == "ct"]["decile"].tolist() == [str(d) for d in range(1, 11)]
    groups = _read(out / "ev.groups.tsv")
    assert set(groups["group"]) == {"AFR", "EUR", "SAS"}
    for name in ("distribution", "deciles", "thresholds"):
        assert (out / f"ev.{name}.png").stat().st_size > 1000
    saved = json.loads((out / "ev.evaluate.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert saved["samples"]["in_split"]["test"] == is_test.sum()
    assert {"trait_type", "main_metric", "selection_rule", "methods", "performance", "candidates", "deciles",
            "groups", "files", "seed", "n_boot"} <= set(saved)
    # same inputs, same bytes (tables, JSON and figures)
    _run(paths, tmp_path, name="again", groups=paths["samples"], group_column="population")
    for suffix in ("performance.tsv", "candidates.tsv", "deciles.tsv", "groups.tsv", "evaluate.json",
                   "distribution.png", "deciles.png", "thresholds.png"):
        first, second = (out / f"ev.{suffix}").read_bytes(), (out / f"again.{suffix}").read_bytes()
        if suffix == "evaluate.json":
            first = first.replace(b'"ev.', b'"again.')
        assert first == second, suffix


def test_choice_is_made_on_validation_never_on_test(tmp_path):
    paths, sim = _cohort(tmp_path, seed=12)
    # candidate A predicts on validation only, B on test only: A must be chosen and reported
    rng = np.random.default_rng(0)
    y = np.asarray(sim["y"], float)
    val, test = sim["split"] == "validation", sim["split"] == "test"
    noise = rng.normal(size=len(y))
    a = np.where(val, y + noise, noise)
    b = np.where(test, y + noise, noise)
    _write(paths["scores"], pd.DataFrame({"IID": sim["iid"], "m_A": a, "m_B": b}))
    res = _run(paths, tmp_path)
    method = next(m for m in res["methods"] if m["method"] == "m")
    assert method["selected_column"] == "m_A"
    cands = _read(tmp_path / "out" / "ev.candidates.tsv").set_index("column")
    assert cands.loc["m_A", "selected"] == "yes" and cands.loc["m_B", "selected"] == "no"
    # the test split would have preferred B
    assert float(cands.loc["m_B", "test_value_not_used_for_selection"]) > \
        float(cands.loc["m_A", "test_value_not_used_for_selection"])
    perf = _read(tmp_path / "out" / "ev.performance.tsv")
    assert set(perf["column"]) == {"m_A"}
    assert float(perf[(perf["split"] == "test") & (perf["metric"] == "incremental_r2")]["value"].iloc[0]) < 0.05


def test_ties_go_to_the_first_column_and_constant_scores_are_not_candidates(tmp_path):
    paths, sim = _cohort(tmp_path, seed=13)
    s = sim["scores"]["bayes_auto"]
    # two score files joined on IID, one gzipped and in another sample order, one with a
    # bookkeeping column that is not a score
    pgs = _write(tmp_path / "pgs.scores.tsv.gz", pd.DataFrame({"IID": sim["iid"], "PGS000001_SUM": s,
                                                               "PGS000001_AVG": s / 1234.0}).iloc[::-1])
    _write(paths["scores"], pd.DataFrame({"IID": sim["iid"], "ALLELE_CT": 10, "ct_p<5e-08": np.zeros(len(s)),
                                          "ct_p<0.1": s}))
    res = _run({**paths, "scores": [pgs, paths["scores"]]}, tmp_path)
    chosen = {m["method"]: m["selected_column"] for m in res["methods"]}
    assert chosen == {"PGS000001": "PGS000001_SUM", "ct": "ct_p<0.1"}
    cands = _read(tmp_path / "out" / "ev.candidates.tsv").set_index("column")
    assert cands.loc["ct_p<5e-08", "note"] == "constant score"
    assert cands.loc["ct_p<5e-08", "validation_value"] == ""
    # the same score under three names gives the same test value whichever file it came from
    assert len(set(cands.loc[["PGS000001_SUM", "PGS000001_AVG", "ct_p<0.1"],
                             "test_value_not_used_for_selection"])) == 1
    dup = _write(tmp_path / "dup.tsv", pd.DataFrame({"IID": sim["iid"], "ct_p<0.1": s}))
    _expect_error(r"dup\.tsv: score column 'ct_p<0.1' is also in .*ct\.scores\.tsv",
                  {**paths, "scores": [paths["scores"], dup]}, tmp_path)


def test_binary_trait_groups_and_small_cell_suppression(tmp_path):
    paths, sim = _cohort(tmp_path, binary=True, n=1200, seed=14)
    res = _run(paths, tmp_path, groups=paths["samples"], group_column="population")
    assert res["trait_type"] == "binary" and res["main_metric"] == "auc"
    groups = _read(tmp_path / "out" / "ev.groups.tsv")
    is_test = sim["split"] == "test"
    for pop in ("AFR", "EUR", "SAS"):
        row = groups[(groups["method"] == "ct") & (groups["group"] == pop)].iloc[0]
        n = int((is_test & (sim["pop"] == pop)).sum())
        cases = int((is_test & (sim["pop"] == pop) & (np.asarray(sim["y"]) == 2)).sum())
        if min(n, cases, n - cases) >= 5:
            assert row["n"] == str(n) and row["value"] != ""
            chosen = res["methods"][0]["selected_column"]
            sel = is_test & (sim["pop"] == pop)
            want = roc_auc_score(np.asarray(sim["y"])[sel] == 2, sim["scores"][chosen][sel])
            assert float(row["value"]) == pytest.approx(want, rel=1e-5)
    # a group of 3 test samples: count shown as <5, no metric
    labels = pd.read_csv(paths["samples"], sep="\t")
    tiny = np.flatnonzero(is_test)[:3]
    labels.loc[tiny, "population"] = "TINY"
    _write(paths["samples"], labels)
    _run(paths, tmp_path, name="tiny", groups=paths["samples"], group_column="population")
    groups = _read(tmp_path / "out" / "tiny.groups.tsv")
    row = groups[(groups["method"] == "ct") & (groups["group"] == "TINY")].iloc[0]
    assert row["n"] == "<5" and row["value"] == "" and row["ci_low"] == ""
    assert row["n_cases"] in ("<5", "0", "suppressed")
    saved = json.loads((tmp_path / "out" / "tiny.evaluate.json").read_text())
    tiny_rows = [r for r in saved["groups"]["rows"] if r["group"] == "TINY"]
    assert tiny_rows and all(r["n"] == "<5" and r["value"] is None for r in tiny_rows)
    assert not _small_counts(saved)


def _small_counts(obj, key=None):
    """Counts between 1 and 4 anywhere in a JSON document (there must be none)."""
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _small_counts(v, k)]
    if isinstance(obj, list):
        return [x for v in obj for x in _small_counts(v, key)]
    counting = key is not None and (key.startswith("n_") or key == "n") and not key.startswith("n_boot")
    return [(key, obj)] if counting and isinstance(obj, int) and 0 < obj < 5 else []


def test_deciles_with_few_cases_are_suppressed(tmp_path):
    paths, sim = _cohort(tmp_path, binary=True, n=1500, seed=15)
    # a score that sorts cases almost perfectly: the lowest deciles hold (almost) no cases
    y = np.asarray(sim["y"], float)
    rng = np.random.default_rng(1)
    _write(paths["scores"], pd.DataFrame({"IID": sim["iid"], "sharp": y + 0.3 * rng.normal(size=len(y))}))
    res = _run(paths, tmp_path)
    # no method with several candidates: the threshold figure still exists (a note), for the workflow
    assert (tmp_path / "out" / res["files"]["thresholds_plot"]).stat().st_size > 0
    dec = _read(tmp_path / "out" / "ev.deciles.tsv")
    low = dec[(dec["decile"] == "1") & (dec["metric"] == "prevalence")].iloc[0]
    assert low["n_cases"] in ("0", "<5") and low["value"] == ""
    assert all(v in ("0", "<5") or int(v) >= 5 for v in dec["n_cases"] if v != "suppressed")


def test_groups_from_principal_components(tmp_path):
    rng = np.random.default_rng(16)
    centres = np.array([[-0.05, 0.0], [0.04, 0.03], [0.03, -0.04]])
    truth = rng.integers(0, 3, 600)
    pcs = centres[truth] + rng.normal(scale=0.006, size=(600, 2))
    iid = pd.Index([f"p{k}" for k in range(600)])
    _write(tmp_path / "pcs.tsv", pd.DataFrame({"#FID": iid, "IID": iid, "PC1": pcs[:, 0], "PC2": pcs[:, 1],
                                               "PC3": rng.normal(scale=0.01, size=600)}))
    labels, info = ev._pc_groups(tmp_path / "pcs.tsv", 2, iid, seed=1)
    assert info["k"] == 3
    assert adjusted_rand_score(truth, labels.reindex(iid).to_numpy()) == 1.0
    # clusters are named by increasing mean PC1: the first centre is the left-most
    assert set(labels[truth == 0]) == {"cluster1"}


def test_groups_from_pcs_end_to_end(tmp_path):
    paths, sim = _cohort(tmp_path, seed=17)
    rng = np.random.default_rng(2)
    centre = {"AFR": (-0.05, 0.0), "EUR": (0.04, 0.03), "SAS": (0.03, -0.04)}
    pcs = np.array([centre[p] for p in sim["pop"]]) + rng.normal(scale=0.005, size=(len(sim["pop"]), 2))
    _write(tmp_path / "pcs.tsv", pd.DataFrame({"#FID": sim["iid"], "IID": sim["iid"], "PC1": pcs[:, 0],
                                               "PC2": pcs[:, 1]}))
    res = _run(paths, tmp_path, groups=tmp_path / "pcs.tsv", n_pcs_groups=2)
    assert res["groups"]["source"] == "pcs" and res["groups"]["k"] == 3
    groups = _read(tmp_path / "out" / "ev.groups.tsv")
    is_test = sim["split"] == "test"
    ct = groups[groups["method"] == "ct"].set_index("group")
    assert ct.loc["cluster1", "n"] == str(int((is_test & (sim["pop"] == "AFR")).sum()))


def test_method_names():
    assert ev.method_of("ct_p<5e-08") == ("ct", "p<5e-08")
    assert ev.method_of("ct:p<1e-04") == ("ct", "p<1e-04")
    assert ev.method_of("PGS000001_SUM") == ("PGS000001", "SUM")
    assert ev.method_of("score") == ("score", "")
    assert ev.method_of("_odd") == ("_odd", "")


def _expect_error(match, paths, tmp_path, **kw):
    with pytest.raises(CohortflowError, match=match) as err:
        _run(paths, tmp_path, **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_errors_name_the_file_and_the_problem(tmp_path):
    paths, sim = _cohort(tmp_path, seed=18)
    with pytest.raises(CohortflowError, match=r"pheno\.tsv.*column 'nope' not found"):
        ev.evaluate_scores(scores=paths["scores"], pheno=paths["pheno"], trait="nope", split=paths["split"],
                           out_prefix=tmp_path / "o")
    bad = _write(tmp_path / "noiid.tsv", pd.DataFrame({"ID": sim["iid"], "s": np.ones(len(sim["iid"]))}))
    _expect_error(r"noiid\.tsv: no IID column", {**paths, "scores": bad}, tmp_path)
    other = _write(tmp_path / "other.tsv", pd.DataFrame({"IID": ["x1", "x2"], "s": [1.0, 2.0]}))
    _expect_error(r"other\.tsv: none of its samples is in the split file", {**paths, "scores": other}, tmp_path)
    split = pd.read_csv(paths["split"], sep="\t")
    no_test = _write(tmp_path / "notest.tsv", split[split["split"] != "test"])
    _expect_error(r"notest\.tsv: no test samples", {**paths, "split": no_test}, tmp_path)
    odd = split.copy()
    odd.loc[5, "split"] = "train"
    odd_path = _write(tmp_path / "odd.tsv", odd)
    _expect_error(r"odd\.tsv: sample 'i0005': split 'train' is not one of", {**paths, "split": odd_path}, tmp_path)
    text = pd.DataFrame({"IID": sim["iid"], "s": ["1.5"] * len(sim["iid"])})
    text.loc[7, "s"] = "abc"
    text_path = _write(tmp_path / "text.tsv", text)
    _expect_error(r"text\.tsv: line 9: column 's': 'abc' is not a finite number", {**paths, "scores": text_path},
                  tmp_path)
    _expect_error(r"score file not found", {**paths, "scores": tmp_path / "absent.tsv"}, tmp_path)
    with pytest.raises(CohortflowError, match="exactly one of group_column"):
        _run(paths, tmp_path, groups=paths["samples"])


def test_ancestry_group_options_fall_back_to_pcs(tmp_path):
    from cohortflow.prs.evaluate import ancestry_group_options

    sheet = tmp_path / "samples.tsv"
    sheet.write_text("IID\tpopulation\tsex\ns1\tPOP1\t1\n")
    assert ancestry_group_options(sample_info=sheet, group_column="population", pcs="pcs.tsv", n_pcs_groups=3) == \
        {"groups": sheet, "group_column": "population", "n_pcs_groups": None}
    # no such column, or no sheet: clusters of the PCs
    for info in (sheet, None):
        assert ancestry_group_options(sample_info=info, group_column="ancestry", pcs="pcs.tsv", n_pcs_groups=3) == \
            {"groups": "pcs.tsv", "group_column": None, "n_pcs_groups": 3}
