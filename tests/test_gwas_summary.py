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
                                   "gene_distance"]
    assert leads["base_pair_location"].tolist() == [5_000_000, 1_000_000, 1_400_000]
    assert leads["nearest_gene"].tolist() == ["GENED", "GENEA", "GENEB"]
    assert leads["gene_distance"].tolist() == [100_000, 0, 50_000]
    assert leads["p_value"].tolist() == ["1e-400", "1e-20", "1e-09"]

    # same inputs -> byte-identical PNGs
    first = {k: outs[k].read_bytes() for k in ("manhattan.png", "qq.png")}
    summarize_gwas(ss, genes_gtf=gtf, nopcs_sumstats=nopcs, trait="t", out_leads=outs["leads.tsv"],
                   out_summary=outs["summary.json"], out_manhattan=outs["manhattan.png"],
                   out_qq=outs["qq.png"], model="linear")
    for k, data in first.items():
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and outs[k].read_bytes() == data
