"""Lambda GC, lead loci and nearest genes on a constructed example with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

from cohortflow.gwas.summary import summarize_gwas
from cohortflow.io.sumstats import read_sumstats, write_sumstats

GTF = """\
#!genome-build test
chr1\tsim\tgene\t990000\t1010000\t.\t+\t.\tgene_id "G1"; gene_name "GENEA";
chr1\tsim\texon\t990000\t991000\t.\t+\t.\tgene_id "G1"; gene_name "GENEA";
chr1\tsim\tgene\t1450000\t1460000\t.\t-\t.\tgene_id "G2"; gene_name "GENEB";
chr2\tsim\tgene\t4000000\t4100000\t.\t+\t.\tgene_id "G3"; gene_name "GENEC";
chr2\tsim\tgene\t5100000\t5200000\t.\t+\t.\tgene_id "G4"; gene_name "GENED";
"""


def _sumstats(path, null_log10p, hits):
    """Background variants on chr3 with the given -log10 p plus hits [(chrom, pos, log10p)]."""
    rows = [("3", 10_000 + 1000 * i, lp) for i, lp in enumerate(null_log10p)] + hits
    n = len(rows)
    table = pd.DataFrame({
        "chromosome": [r[0] for r in rows], "base_pair_location": [r[1] for r in rows],
        "effect_allele": "A", "other_allele": "G", "beta": 0.1, "standard_error": 0.01,
        "effect_allele_frequency": 0.3, "n": 1000, "variant_id": [f"v{i}" for i in range(n)],
        "test_statistic": 2.0, "errcode": [""] * (n - 1) + ["monomorphic"],
    })
    log10p = np.array([r[2] for r in rows], dtype=float)
    log10p[-1] = np.nan
    write_sumstats(path, table, log10_p=log10p)


def test_summary_known_answer(tmp_path):
    target_lambda, nopcs_lambda = 1.2, 1.5
    # background p-values whose median chi-square gives exactly the target lambda
    def background(lam):
        p_med = stats.chi2.sf(lam * stats.chi2.ppf(0.5, 1), 1)
        return list(np.log10([p_med * 0.5, p_med * 0.8, p_med, min(1.0, p_med * 1.5), min(1.0, p_med * 1.9)]))
    hits = [("1", 1_000_000, -20.0), ("1", 1_100_000, -10.0), ("1", 1_400_000, -9.0),
            ("2", 5_000_000, -400.0), ("2", 6_000_000, -7.0), ("2", 7_000_000, np.nan)]
    # 15 tested p-values: 5 hits, the 5 background values, p_med once more and 4 of p = 1, so the
    # median (8th smallest p) is p_med
    bg = background(target_lambda)
    null = bg + [0.0] * 4 + [bg[2]]
    ss = tmp_path / "t.tsv.gz"
    _sumstats(ss, null, hits)
    nopcs = tmp_path / "t.nopcs.tsv.gz"
    bg2 = background(nopcs_lambda)
    _sumstats(nopcs, bg2 + [0.0] * 4 + [bg2[2]], hits)
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(GTF)
    outs = {k: tmp_path / f"o.{k}" for k in ("leads.tsv", "summary.json", "manhattan.png", "qq.png")}
    summarize_gwas(ss, genes_gtf=gtf, nopcs_sumstats=nopcs, trait="t", out_leads=outs["leads.tsv"],
                   out_summary=outs["summary.json"], out_manhattan=outs["manhattan.png"],
                   out_qq=outs["qq.png"], model="linear")
    summary = json.loads(outs["summary.json"].read_text())
    ss_df = read_sumstats(ss)
    assert summary["n_variants"] == int(ss_df["neg_log10_p"].notna().sum())
    assert summary["n_errors"] == 1
    assert abs(summary["lambda_gc"] - target_lambda) < 1e-6
    assert abs(summary["lambda_gc_nopcs"] - nopcs_lambda) < 1e-6
    assert summary["n_significant"] == 4
    assert summary["n_loci"] == 3
    assert summary["top_hit"]["p_value"] == "1e-400" and summary["top_hit"]["nearest_gene"] == "GENED"
    leads = pd.read_csv(outs["leads.tsv"], sep="\t", dtype={"chromosome": str, "p_value": str})
    assert list(leads.columns) == ["variant_id", "chromosome", "base_pair_location", "effect_allele",
                                   "other_allele", "beta", "standard_error", "p_value", "nearest_gene",
                                   "gene_distance", "nearest_genes", "n_clumped", "n_clumped_p2",
                                   "clump_start", "clump_end"]
    assert leads["base_pair_location"].tolist() == [5_000_000, 1_000_000, 1_400_000]
    assert leads["nearest_gene"].tolist() == ["GENED", "GENEA", "GENEB"]
    assert leads["gene_distance"].tolist() == [100_000, 0, 50_000]
    assert leads["p_value"].tolist() == ["1e-400", "1e-20", "1e-09"]
    # genes within the 250 kb locus window, nearest first
    assert leads["nearest_genes"].tolist() == ["GENED", "GENEA", "GENEB"]  # GENEA is 390 kb away
    # no genotypes given: distance clumping, said so; no clump statistics
    assert summary["lead_method"] == "distance" and summary["clump"] is None
    assert leads["n_clumped"].isna().all()

    # same inputs -> byte-identical PNGs
    first = {k: outs[k].read_bytes() for k in ("manhattan.png", "qq.png")}
    summarize_gwas(ss, genes_gtf=gtf, nopcs_sumstats=nopcs, trait="t", out_leads=outs["leads.tsv"],
                   out_summary=outs["summary.json"], out_manhattan=outs["manhattan.png"],
                   out_qq=outs["qq.png"], model="linear")
    for k, data in first.items():
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and outs[k].read_bytes() == data


def _ld_cohort(tmp_path, n=500):
    """Genotypes with a known LD structure on chr1: v1 (lead) and v2 identical (r2 = 1), v3 and
    v4 independent of them (and each other); v5 on chr2."""
    from cohortflow.io.plink import write_bed

    rng = np.random.default_rng(42)
    g = rng.integers(0, 3, size=(5, n)).astype(np.int8)
    g[1] = g[0]
    bim = pd.DataFrame({"chrom": ["1", "1", "1", "1", "2"], "id": ["v1", "v2", "v3", "v4", "v5"], "cm": 0.0,
                        "pos": [1_000_000, 1_010_000, 1_050_000, 1_100_000, 500_000], "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "qc", g, bim, fam)
    table = pd.DataFrame({
        "chromosome": bim["chrom"], "base_pair_location": bim["pos"], "effect_allele": "A", "other_allele": "G",
        "beta": 0.1, "standard_error": 0.01, "effect_allele_frequency": 0.3, "n": n, "variant_id": bim["id"],
        "test_statistic": 2.0, "errcode": "",
    })
    ss = tmp_path / "t.tsv.gz"
    write_sumstats(ss, table, log10_p=np.array([-20.0, -15.0, -12.0, -3.0, -9.0]))
    return ss, g


def test_summary_with_ld_clumping_and_regional_plots(tmp_path):
    ss, g = _ld_cohort(tmp_path)
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(
        "1\tsim\tgene\t995000\t1005000\t.\t+\t.\tgene_id \"A\"; gene_name \"INSIDE\";\n"
        "1\tsim\tgene\t1020000\t1030000\t.\t-\t.\tgene_id \"B\"; gene_name \"NEAR20K\";\n"
        "1\tsim\tgene\t900000\t950000\t.\t+\t.\tgene_id \"C\"; gene_name \"NEAR50K\";\n"
        "1\tsim\tgene\t1200000\t1300000\t.\t+\t.\tgene_id \"D\"; gene_name \"NEAR200K\";\n")
    outs = {k: tmp_path / f"o.{k}" for k in ("leads.tsv", "summary.json", "manhattan.png", "qq.png")}
    regional = tmp_path / "t.regional"

    def run():
        return summarize_gwas(ss, genes_gtf=gtf, trait="t", out_leads=outs["leads.tsv"],
                              out_summary=outs["summary.json"], out_manhattan=outs["manhattan.png"],
                              out_qq=outs["qq.png"], model="linear", bfile=tmp_path / "qc", clump_r2=0.1,
                              clump_kb=250, clump_p2=0.01, out_regional_dir=regional)

    summary = run()
    # v2 is a perfect proxy of v1 (claimed); v3 is independent 50 kb away, so a locus of its own
    # (distance clumping would have merged it); v5 is alone on chr2; v4 is not significant
    assert summary["lead_method"] == "ld_clump" and summary["n_loci"] == 3
    assert summary["clump"] == {"p1": 5e-8, "p2": 0.01, "r2": 0.1, "kb": 250, "n_ld_samples": 500,
                                "n_not_in_bim": 0}
    leads = pd.read_csv(outs["leads.tsv"], sep="\t", dtype={"chromosome": str, "p_value": str})
    assert leads["variant_id"].tolist() == ["v1", "v3", "v5"]
    assert leads["n_clumped"].tolist() == [1, 0, 0] and leads["n_clumped_p2"].tolist() == [1, 0, 0]
    assert leads["clump_start"].tolist() == [1_000_000, 1_050_000, 500_000]
    assert leads["clump_end"].tolist() == [1_010_000, 1_050_000, 500_000]
    assert leads["nearest_genes"].iloc[0] == "INSIDE,NEAR20K,NEAR50K"  # 3 nearest of 4 in the window

    index = pd.read_csv(regional / "index.tsv", sep="\t", dtype={"chromosome": str, "p_value": str})
    assert summary["n_regional_plots"] == 3 and index["variant_id"].tolist() == ["v1", "v3", "v5"]
    assert index["file"].tolist() == ["locus001_v1.png", "locus002_v3.png", "locus003_v5.png"]
    # every plotted variant of chr1 is in the .bim, so each has an r2 with the lead
    assert index["n_points"].tolist() == [4, 4, 1] and index["n_r2_known"].tolist() == [4, 4, 1]
    first = {f: (regional / f).read_bytes() for f in index["file"]}
    assert all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in first.values())
    run()  # rerun: the directory is replaced, byte-identical
    assert sorted(p.name for p in regional.iterdir()) == sorted([*first, "index.tsv"])
    assert all((regional / f).read_bytes() == b for f, b in first.items())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".t.regional")]


def test_manhattan_and_qq_draw_every_hit_of_ten_million_points(tmp_path):
    from cohortflow.gwas.plots import manhattan_plot, qq_plot, qq_points, thin_points

    n = 10_000_000
    rng = np.random.default_rng(0)
    nl10 = -np.log10(rng.random(n))
    hits = rng.choice(n, 500, replace=False)
    nl10[hits] = rng.uniform(5, 40, hits.size)
    df = pd.DataFrame({"chromosome": np.repeat(np.array([str(c) for c in range(1, 23)]), -(-n // 22))[:n],
                       "base_pair_location": rng.integers(1, 200_000_000, n), "neg_log10_p": nl10})
    result = manhattan_plot(df, leads=df.iloc[:0].assign(nearest_gene=[]), out=tmp_path / "m.png", title="t",
                            p_threshold=5e-8)
    drawn = result["drawn"]
    above = np.flatnonzero(nl10 > 5)  # p < 1e-5: never thinned
    assert result["n_points"] == n and np.isin(above, drawn).all()
    assert len(drawn) < n // 50  # the null mass is thinned
    # the thinned null still covers every chromosome and the whole lower range of -log10 p
    assert set(df["chromosome"].to_numpy()[drawn]) == set(df["chromosome"])
    assert nl10[drawn].min() < 0.01 and (nl10[drawn] < 3).sum() > 1000
    exp, obs = qq_points(nl10)
    keep = thin_points(exp, np.maximum(obs, np.minimum(exp, 3.0)), x_range=(0.0, float(exp[0])))
    assert np.all(keep[: np.count_nonzero(obs > 5)] == np.arange(np.count_nonzero(obs > 5)))
    drawn_qq = qq_plot([("x", nl10)], out=tmp_path / "q.png", title="t")
    assert drawn_qq["x"] == len(keep) < n // 100
