"""Meta-analysis (cohortflow.meta): kernels, allele alignment, outputs, CLI and bundles; Debian's
GWAMA 2.2.2 as the peer on the demo split into three cohorts; and the meta-analysis of the three
parts against the pooled GWAS of the whole demo.

The demo split: the full demo's QC'd genotypes (results/demo/qc/qc.*), phenotypes and the
workflow's covariates (sex, age, PC1-4) with three disjoint random thirds of the samples
(seed 20240610), our GWAS (run_gwas with ``samples=``) per third for quant_trait (linear) and
disease (logistic, Firth fallback), as the workflow runs it.

Comparison with GWAMA (``GWAMA -qt``, and ``-r`` for random effects; beta = log OR for disease, so
BETA/SE columns serve both traits): GWAMA prints beta, se, z, Q, I2 and eaf with ``%.6f``, so
ours must equal them at that precision (``|ours - GWAMA| <= 5e-7``). GWAMA's conventions, matched
in the comparison (its source, marker.cpp / statistics.cpp):

- its p-value is 2 x the Hastings approximation of the normal tail (Abramowitz & Stegun 26.2.16,
  absolute error < 1e-5: 0.317297 for z = 1, 7% high at z = 10), not the exact tail we write. So
  GWAMA's printed -log10 p (``%.6f``) is compared with that approximation evaluated at our z
  (within 5e-7: the same z is tested), and our p with the exact normal tail (scipy);
- q_p-value is its exact chi-square tail, printed ``%.6f`` from 0.001, ``%.2E`` below: compared
  at that precision;
- I2 is a fraction, (Q - df) / Q floored at 0, as ours;
- the effect allele is that of the first file having the marker, as ours;
- for a variant of one study its random-effects tau2 is (Q - 0) / (W - W^2/W), rounding noise over
  rounding noise (its SE can come out doubled); ours is tau2 = 0 (random = fixed), so random-effects
  SE and p are compared for variants of at least two studies.
GWAMA trusts A/T and C/G labels; its inputs leave out the rows our palindromic rule drops (worked
out here independently: |eaf - 0.5| <= 0.1 in the cohort or the reference).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from cohortflow.cli import main
from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.sumstats import SSF_COLUMNS, read_sumstats, write_sumstats
from cohortflow.meta.align import align_cohorts, cohort_table
from cohortflow.meta.api import META_COLUMNS, meta_analyse, meta_analyse_bundles, output_paths
from cohortflow.meta.kernels import log10_chi2_p, log10_normal_p, meta_statistics
from conftest import REPO, require_tool

DEMO_RESULTS = REPO / "results" / "demo"
DEMO_PHENO = REPO / "data" / "demo" / "phenotypes.tsv"
COVARIATES = ["sex", "age", "PC1", "PC2", "PC3", "PC4"]
TRAITS = ("quant_trait", "disease")
SPLIT_SEED = 20240610
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


# ----------------------------------------------------------------------------- helpers

def _write(path: Path, df: pd.DataFrame) -> Path:
    """A GWAS-SSF file by our writer (p from beta/se)."""
    df = df.copy()
    for col, default in (("test_statistic", np.nan), ("errcode", ""), ("n", 1000)):
        if col not in df:
            df[col] = default
    z = df["beta"].to_numpy(float) / df["standard_error"].to_numpy(float)
    write_sumstats(path, df[[c for c in SSF_COLUMNS if c != "p_value"]], log10_p=log10_normal_p(z))
    return path


def _cohorts(rng, m=300, k=3):
    """k cohorts of the same m variants (non-palindromic SNPs on 2 chromosomes), pre-aligned."""
    pairs = [("A", "G"), ("A", "C"), ("G", "T"), ("C", "T")]
    chrom = np.where(np.arange(m) < m // 2, "1", "2")
    pos = np.concatenate([np.sort(rng.choice(10**6, m // 2, replace=False)),
                          np.sort(rng.choice(10**6, m - m // 2, replace=False))]) + 1
    idx = rng.integers(0, len(pairs), m)
    ea = np.array([pairs[i][0] for i in idx])
    oa = np.array([pairs[i][1] for i in idx])
    freq = rng.uniform(0.05, 0.95, m)
    true = rng.normal(0, 0.05, m)
    out = []
    for c in range(k):
        se = rng.uniform(0.02, 0.1, m)
        out.append(pd.DataFrame({
            "chromosome": chrom, "base_pair_location": pos, "effect_allele": ea, "other_allele": oa,
            "beta": np.round(true + rng.normal(0, se), 6), "standard_error": np.round(se, 6),
            "effect_allele_frequency": np.round(np.clip(freq + rng.normal(0, 0.01, m), 0.01, 0.99), 6),
            "n": rng.integers(500, 2000, m),
            "variant_id": [f"{a}:{b}:{x}:{y}" for a, b, x, y in zip(chrom, pos, oa, ea)],
        }))
    return out


def _read_out(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"chromosome": str, "direction": str, "variant_id": str, "errcode": str,
                                               "p_value": str, "p_value_random": str, "q_p_value": str},
                       keep_default_na=False, na_values=["NA"])


def _outputs_bytes(prefix) -> dict[str, bytes]:
    """Every output's bytes (the sidecar's data_file_name, which names the file, made neutral)."""
    out = {k: p.read_bytes() for k, p in output_paths(prefix).items()}
    out["meta"] = out["meta"].replace(output_paths(prefix)["sumstats"].name.encode(), b"OUT.tsv.gz")
    return out


# ----------------------------------------------------------------------------- kernels

def test_kernel_matches_the_textbook_formulas():
    rng = np.random.default_rng(1)
    k, m = 4, 3000
    beta = rng.normal(0, 0.2, (k, m))
    se = rng.uniform(0.02, 0.3, (k, m))
    beta[rng.random((k, m)) < 0.2] = np.nan  # absent cohorts
    beta[:, 0] = np.nan                        # a variant of no cohort
    beta[1:, 1] = np.nan                       # ... of one cohort
    beta[0, 2] = 0.0                           # a zero effect
    se = np.where(np.isnan(beta), np.nan, se)
    eaf = rng.uniform(0.01, 0.99, (k, m))
    n = rng.integers(100, 5000, (k, m)).astype(float)
    st = meta_statistics(beta, se, eaf, n)
    for j in range(m):
        ok = ~np.isnan(beta[:, j])
        kk = int(ok.sum())
        assert st["n_cohorts"][j] == kk
        d = bytes(st["direction"][j]).decode()
        assert d == "".join("?" if not o else ("+" if b > 0 else "-" if b < 0 else "0")
                            for o, b in zip(ok, beta[:, j]))
        if kk == 0:
            assert np.isnan(st["beta"][j]) and np.isnan(st["log10_p"][j])
            continue
        b, s, f, nn = beta[ok, j], se[ok, j], eaf[ok, j], n[ok, j]
        w = 1 / s**2
        bf = (w * b).sum() / w.sum()
        q = (w * (b - bf) ** 2).sum()
        tau2 = max(0.0, (q - (kk - 1)) / (w.sum() - (w**2).sum() / w.sum())) if kk > 1 else 0.0
        wr = 1 / (s**2 + tau2)
        br = (wr * b).sum() / wr.sum()
        assert st["beta"][j] == pytest.approx(bf, rel=1e-12, abs=1e-15)
        assert st["standard_error"][j] == pytest.approx(w.sum() ** -0.5, rel=1e-12)
        assert st["beta_random"][j] == pytest.approx(br, rel=1e-10, abs=1e-14)
        assert st["standard_error_random"][j] == pytest.approx(wr.sum() ** -0.5, rel=1e-12)
        assert st["tau2"][j] == pytest.approx(tau2, rel=1e-10, abs=1e-15)
        assert st["effect_allele_frequency"][j] == pytest.approx((nn * f).sum() / nn.sum(), rel=1e-12)
        assert st["n"][j] == nn.sum()
        assert 10 ** st["log10_p"][j] == pytest.approx(2 * stats.norm.sf(abs(bf) * w.sum() ** 0.5), rel=1e-9)
        if kk == 1:
            assert np.isnan(st["q"][j]) and np.isnan(st["i2"][j]) and np.isnan(st["log10_q_p"][j])
        else:
            assert st["q"][j] == pytest.approx(q, rel=1e-10, abs=1e-14)
            assert st["i2"][j] == pytest.approx(max(0.0, (q - (kk - 1)) / q), rel=1e-10, abs=1e-14)
            assert 10 ** st["log10_q_p"][j] == pytest.approx(stats.chi2.sf(q, kk - 1), rel=1e-9)


def test_p_values_stay_exact_far_below_the_double_range(tmp_path):
    # normal tail: z = 50 -> p ~ 2.2e-545; chi-square tails against closed forms in log space
    assert log10_normal_p(np.array([50.0]))[0] == pytest.approx((math.log(2) + special.log_ndtr(-50.0)) / math.log(10))
    # against the tail's asymptotic series (error below 105/z^8 relative to the series)
    z = 50.0
    series = (math.log(2) - z * z / 2 - math.log(z * math.sqrt(2 * math.pi))
              + math.log1p(-1 / z**2 + 3 / z**4 - 15 / z**6))
    assert log10_normal_p(np.array([z]))[0] == pytest.approx(series / math.log(10), rel=1e-13)
    q = np.array([5000.0, 3000.0, 10.0])
    assert log10_chi2_p(q, np.array([2.0, 2.0, 2.0])) == pytest.approx(-q / 2 / math.log(10), rel=1e-12)
    one = log10_chi2_p(q, np.ones(3))
    assert one == pytest.approx((math.log(2) + special.log_ndtr(-np.sqrt(q))) / math.log(10), rel=1e-10)
    # df 4: sf = exp(-x/2)(1 + x/2)
    assert log10_chi2_p(q, np.full(3, 4.0)) == pytest.approx((-q / 2 + np.log1p(q / 2)) / math.log(10), rel=1e-10)
    # a huge effect, written from log space
    files = []
    for c in range(2):
        files.append(_write(tmp_path / f"c{c}.tsv.gz", pd.DataFrame({
            "chromosome": ["1"], "base_pair_location": [100], "effect_allele": ["A"], "other_allele": ["G"],
            "beta": [1.0], "standard_error": [1 / 35.0], "effect_allele_frequency": [0.3], "variant_id": ["v"]})))
    meta_analyse(sumstats=files, out=tmp_path / "m", trait="t")
    row = _read_out(tmp_path / "m.tsv.gz").iloc[0]
    # z = 35 sqrt(2) = 49.5 (SE as written, 6 digits): p ~ 1e-534, kept as text
    se = read_sumstats(files[0])["standard_error"].iloc[0]
    expected = log10_normal_p(np.array([math.sqrt(2) / se]))[0]
    mant, exp = str(row["p_value"]).split("e")
    assert int(exp) < -500 and math.log10(float(mant)) + int(exp) == pytest.approx(expected, abs=1e-5)


# ----------------------------------------------------------------------------- alignment

def test_swaps_and_strand_flips_give_the_pre_aligned_result(tmp_path):
    rng = np.random.default_rng(7)
    base = _cohorts(rng)
    aligned = [_write(tmp_path / f"aligned{c}.tsv.gz", df) for c, df in enumerate(base)]
    meta_analyse(sumstats=aligned, names=["a", "b", "c"], out=tmp_path / "pre", trait="t")

    m = len(base[0])
    kind = rng.integers(0, 4, m)  # 0 as is, 1 swapped, 2 strand-flipped, 3 both
    messed = []
    for c, df in enumerate(base):
        df = df.copy()
        if c > 0:
            ea, oa = df["effect_allele"].to_numpy().copy(), df["other_allele"].to_numpy().copy()
            swap = (kind == 1) | (kind == 3)
            flip = (kind == 2) | (kind == 3)
            ea, oa = np.where(swap, oa, ea), np.where(swap, ea, oa)
            ea = np.where(flip, [COMPLEMENT[a] for a in ea], ea)
            oa = np.where(flip, [COMPLEMENT[a] for a in oa], oa)
            df["effect_allele"], df["other_allele"] = ea, oa
            df.loc[swap, "beta"] = -df.loc[swap, "beta"]
            df.loc[swap, "effect_allele_frequency"] = 1 - df.loc[swap, "effect_allele_frequency"]
            df["variant_id"] = [f"rs{i}" for i in range(m)]  # named differently
            if c == 2:
                df["chromosome"] = "chr" + df["chromosome"]  # another naming convention
                df["effect_allele"] = df["effect_allele"].str.lower()
                df = df.sample(frac=1, random_state=3)  # another order
        messed.append(_write(tmp_path / f"messed{c}.tsv.gz", df))
    summary = meta_analyse(sumstats=messed, names=["a", "b", "c"], out=tmp_path / "post", trait="t")

    pre, post = _read_out(tmp_path / "pre.tsv.gz"), _read_out(tmp_path / "post.tsv.gz")
    # 1 - eaf in 6 digits may differ in the last digit of the weighted frequency; all else is equal
    assert (pre.drop(columns="effect_allele_frequency") == post.drop(columns="effect_allele_frequency")).all().all()
    assert np.allclose(pre["effect_allele_frequency"], post["effect_allele_frequency"], atol=2e-6)
    counts = {c["name"]: c for c in summary["alignment"]}
    for name in ("b", "c"):
        assert counts[name]["match"] == int((kind == 0).sum())
        assert counts[name]["swapped"] == int((kind == 1).sum())
        assert counts[name]["flipped"] == int((kind == 2).sum())
        assert counts[name]["flipped_swapped"] == int((kind == 3).sum())
        assert counts[name]["n_variant_id_differs"] == m
    assert counts["a"]["reference"] == m and summary["n_variants_by_n_cohorts"]["3"] == m
    assert set(post["direction"].str.len()) == {3}


def _table(rows, name):
    df = pd.DataFrame(rows, columns=["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                                     "effect_allele_frequency"])
    df["standard_error"] = 0.1
    df["n"] = 100
    df["variant_id"] = [f"{name}{i}" for i in range(len(df))]
    df["errcode"] = ""
    df["test_statistic"] = np.nan
    return cohort_table(df, name=name, source=name)


def test_palindromic_snps_need_frequencies_far_from_one_half():
    ref = _table([["1", 10, "A", "T", 0.5, 0.2],      # A/T, eaf 0.2
                  ["1", 20, "A", "T", 0.5, 0.2],
                  ["1", 30, "A", "T", 0.5, 0.2],
                  ["1", 40, "A", "T", 0.5, 0.2],
                  ["1", 50, "C", "G", 0.5, 0.45],     # near 0.5 in the reference
                  ["1", 60, "G", "C", 0.5, 0.2],      # near 0.5 in the other cohort
                  ["1", 70, "A", "T", 0.5, np.nan]], "r")
    other = _table([["1", 10, "A", "T", 0.4, 0.25],   # same labels, same side: the same allele
                    ["1", 20, "A", "T", 0.4, 0.78],   # same labels, other side: other strand -> swapped
                    ["1", 30, "T", "A", 0.4, 0.8],    # swapped labels, consistent frequency: swapped
                    ["1", 40, "T", "A", 0.4, 0.2],    # swapped labels, same side: other strand
                    ["1", 50, "C", "G", 0.4, 0.1],
                    ["1", 60, "G", "C", 0.4, 0.42],
                    ["1", 70, "A", "T", 0.4, 0.1]], "o")
    al = align_cohorts([ref, other])
    assert list(al.beta[1]) == pytest.approx([0.4, -0.4, -0.4, 0.4, np.nan, np.nan, np.nan], nan_ok=True)
    assert list(al.eaf[1][:4]) == pytest.approx([0.25, 0.22, 0.2, 0.2])
    c = al.counts[1]
    assert (c["match"], c["flipped_swapped"], c["swapped"], c["flipped"]) == (1, 1, 1, 1)
    assert c["dropped"]["ambiguous"] == 3 and c["n_used"] == 4
    assert np.isfinite(al.beta[0]).all()  # the reference's own rows stay
    # a wider margin (0.26) also drops the first (0.25 is 0.25 from 0.5); keep_palindromic trusts the labels
    assert align_cohorts([ref, other], palindromic_margin=0.26).counts[1]["dropped"]["ambiguous"] == 4
    kept = align_cohorts([ref, other], keep_palindromic=True)
    assert list(kept.beta[1]) == pytest.approx([0.4, 0.4, -0.4, -0.4, 0.4, 0.4, 0.4])


def test_indels_match_exactly_and_multiallelic_sites_stay_apart():
    ref = _table([["1", 10, "A", "G", 0.1, 0.3],
                  ["1", 10, "A", "C", 0.2, 0.3],       # second ALT at the same position
                  ["1", 20, "AT", "A", 0.3, 0.3],      # deletion
                  ["1", 30, "A", "G", 0.4, 0.3]], "r")
    other = _table([["chr1", 10, "C", "A", 0.5, 0.7],  # the A/C variant, swapped
                    ["chr1", 10, "t", "c", 0.6, 0.3],  # the A/G variant on the other strand
                    ["chr1", 20, "A", "AT", 0.7, 0.7],  # the deletion, swapped
                    ["chr1", 20, "TA", "T", 0.8, 0.3],  # not the deletion's complement: another variant
                    ["chr1", 30, "A", "G", 0.9, 0.3],
                    ["chr1", 30, "A", "G", 1.0, 0.3],  # a duplicate row
                    ["chr1", 40, "A", "A", 1.1, 0.3]], "o")  # equal alleles
    al = align_cohorts([ref, other])
    assert al.effect_allele.to_pylist() == ["A", "A", "AT", "TA", "A"]
    assert al.position.tolist() == [10, 10, 20, 20, 30]
    assert al.beta[1].tolist() == pytest.approx([0.6, -0.5, -0.7, 0.8, 0.9])
    assert np.isnan(al.beta[0][3])
    c = al.counts[1]
    assert (c["match"], c["swapped"], c["flipped"], c["reference"]) == (1, 2, 1, 1)
    assert c["dropped"] == {"not_tested": 0, "invalid_alleles": 1, "duplicate": 1, "ambiguous": 0}


def test_untested_rows_are_left_out_and_bad_input_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(3)
    a, b = _cohorts(rng, m=10, k=2)
    b.loc[0, "beta"] = np.nan
    b["errcode"] = ""
    b.loc[1, "errcode"] = "monomorphic"
    fa, fb = _write(tmp_path / "a.tsv.gz", a), _write(tmp_path / "b.tsv.gz", b)
    summary = meta_analyse(sumstats=[fa, fb], out=tmp_path / "m")
    assert summary["cohorts"] == ["a", "b"] and summary["alignment"][1]["dropped"]["not_tested"] == 2
    out = _read_out(tmp_path / "m.tsv.gz")
    assert list(out["direction"].str[1][:2]) == ["?", "?"] and out["q"][:2].isna().all()
    # a position that is not a number: the file and its line
    text = gzip.decompress(fb.read_bytes()).decode().split("\n")
    fields = text[3].split("\t")
    fields[1] = "12x"
    text[3] = "\t".join(fields)
    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(gzip.compress("\n".join(text).encode()))
    with pytest.raises(InputFormatError, match=r"bad\.tsv\.gz: line 4: base_pair_location '12x' is not an integer"):
        meta_analyse(sumstats=[fa, bad], out=tmp_path / "x")
    with pytest.raises(CohortflowError, match="at least 2"):
        meta_analyse(sumstats=[fa], out=tmp_path / "x")
    with pytest.raises(CohortflowError, match="distinct"):
        meta_analyse(sumstats=[fa, fb], names=["x", "x"], out=tmp_path / "x")
    assert not (tmp_path / "x.tsv.gz").exists()


def test_cli_and_bundles(tmp_path, capsys):
    rng = np.random.default_rng(11)
    files = [_write(tmp_path / f"s{c}.tsv.gz", df) for c, df in enumerate(_cohorts(rng, m=50))]
    assert main(["meta", "--sumstats", *map(str, files), "--names", "a", "b", "c", "--out",
                 str(tmp_path / "cli"), "--trait", "height"]) == 0
    direct = _outputs_bytes(tmp_path / "cli")
    # the same GWAS in export bundles (gwas/<trait>.tsv.gz, under a top folder or not, manifest.json)
    bundles = []
    for c, (f, name) in enumerate(zip(files, "abc")):
        path = tmp_path / f"bundle{c}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            top = f"{name}/" if c == 1 else ""
            tar.add(f, arcname=f"{top}gwas/height.tsv.gz")
            tar.add(files[0], arcname=f"{top}gwas/height.nopcs.tsv.gz")
            if c < 2:
                tar.add(files[0], arcname=f"{top}gwas/weight.tsv.gz")
            manifest = json.dumps({"cohort": name, "format": "whatever"}).encode()
            info = tarfile.TarInfo(f"{top}manifest.json")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
        bundles.append(path)
    results = meta_analyse_bundles(bundles=bundles, out=tmp_path / "b")
    assert list(results) == ["height"]  # weight is not in every bundle; .nopcs is not a trait
    assert _outputs_bytes(tmp_path / "b.height") == direct
    assert main(["meta", "--bundles", *map(str, bundles), "--trait", "height", "--out", str(tmp_path / "t")]) == 0
    assert _outputs_bytes(tmp_path / "t") == direct
    capsys.readouterr()
    assert main(["meta", "--bundles", *map(str, bundles), "--trait", "weight", "--out", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cohortflow: error: {bundles[2]}: no gwas/weight.tsv.gz in the bundle"]


# ----------------------------------------------------------------------------- the demo split

@pytest.fixture(scope="module")
def demo_split(tmp_path_factory):
    """Our GWAS of three disjoint random thirds of the demo, and their meta-analyses per trait."""
    bfile = DEMO_RESULTS / "qc" / "qc"
    covar = DEMO_RESULTS / "gwas" / "covariates.tsv"
    needed = [Path(f"{bfile}.bed"), covar, DEMO_PHENO, *(DEMO_RESULTS / "gwas" / f"{t}.leads.tsv" for t in TRAITS)]
    if not all(p.exists() for p in needed):
        pytest.skip(f"the full demo's results are absent ({', '.join(str(p) for p in needed if not p.exists())}): "
                    "run `make demo` first")
    from cohortflow.gwas.api import run_gwas

    d = tmp_path_factory.mktemp("meta_demo")
    iids = pd.read_csv(f"{bfile}.fam", sep=r"\s+", header=None, dtype=str)[1].to_numpy()
    parts = np.array_split(np.random.default_rng(SPLIT_SEED).permutation(len(iids)), 3)
    for i, part in enumerate(parts, 1):
        run_gwas(bfile=bfile, pheno=DEMO_PHENO, pheno_names=list(TRAITS), covar=covar, covar_names=COVARIATES,
                 samples=list(iids[np.sort(part)]), out_prefix=d / f"part{i}")
    summaries = {}
    for trait in TRAITS:
        summaries[trait] = meta_analyse(sumstats=[d / f"part{i}.{trait}.tsv.gz" for i in (1, 2, 3)],
                                        names=["part1", "part2", "part3"], out=d / f"meta.{trait}", trait=trait,
                                        genes_gtf=REPO / "data" / "demo" / "genes.gtf")
    return d, summaries


def _hastings_log10_p(z: np.ndarray) -> np.ndarray:
    """log10 of GWAMA's p: 2 x the normal tail by Abramowitz & Stegun 26.2.16."""
    x = np.abs(z)
    t = 1.0 / (1.0 + 0.33267 * x)
    with np.errstate(divide="ignore"):
        return np.log10(2 * 0.39894228 * np.exp(-0.5 * x * x) * t * (0.4361836 + t * (-0.1201676 + t * 0.937298)))


def _gwama_inputs(d: Path, trait: str, margin: float = 0.1) -> Path:
    """GWAMA's input files from the three parts: tested rows, as written (-qt: BETA, SE, N, EAF);
    rows our palindromic rule drops left out (worked out here: |eaf - 0.5| <= margin in the part or
    in the first part having the variant)."""
    ref_eaf: dict[str, float] = {}
    names = []
    for i in (1, 2, 3):
        ss = read_sumstats(d / f"part{i}.{trait}.tsv.gz")
        ss = ss[(ss["errcode"] == "") & np.isfinite(ss["beta"]) & np.isfinite(ss["standard_error"])]
        eaf = ss["effect_allele_frequency"].to_numpy(float)
        pal = np.array([COMPLEMENT.get(a) == b for a, b in zip(ss["effect_allele"], ss["other_allele"])])
        r = np.array([ref_eaf.get(v, np.nan) for v in ss["variant_id"]])
        is_ref = np.isnan(r)
        far = (np.abs(r - 0.5) > margin) & (np.abs(eaf - 0.5) > margin)
        keep = is_ref | ~pal | far
        # the parts share one strand: kept palindromic frequencies never cross 0.5
        assert not np.any(~is_ref & pal & far & ((r > 0.5) != (eaf > 0.5)))
        ref_eaf.update({v: f for v, f, new in zip(ss["variant_id"], eaf, is_ref) if new})
        table = pd.DataFrame({"MARKERNAME": ss["variant_id"], "EA": ss["effect_allele"], "NEA": ss["other_allele"],
                              "BETA": [repr(float(x)) for x in ss["beta"]],
                              "SE": [repr(float(x)) for x in ss["standard_error"]],
                              "N": ss["n"].astype(int), "EAF": [repr(float(x)) for x in eaf], "STRAND": "+"})[keep]
        path = d / f"gwama.{trait}.part{i}.txt"
        table.to_csv(path, sep="\t", index=False)
        names.append(path.name)
    listing = d / f"gwama.{trait}.in"
    listing.write_text("\n".join(names) + "\n")
    return listing


def _run_gwama(d: Path, listing: Path, root: str, random: bool) -> pd.DataFrame:
    cmd = [require_tool("GWAMA"), "-i", listing.name, "-qt", "-o", root] + (["-r"] if random else [])
    subprocess.run(cmd, cwd=d, check=True, capture_output=True)
    return pd.read_csv(d / f"{root}.out", sep="\t", dtype={"effects": str, "rs_number": str, "p-value": str,
                                                            "q_p-value": str})


def _printed_close(ours: np.ndarray, printed: np.ndarray) -> np.ndarray:
    """|ours - printed| within half a unit of ``%.6f`` (plus rounding slack)."""
    return np.abs(ours - printed) <= 5e-7 + 1e-12 * np.maximum(1.0, np.abs(ours))


@pytest.mark.peer
@pytest.mark.parametrize("trait", TRAITS)
def test_equals_gwama_on_the_demo_split_in_three(demo_split, trait):
    require_tool("GWAMA")
    d, summaries = demo_split
    # our numbers at full precision (what the file holds to 6 significant digits)
    tables = [cohort_table(read_sumstats(d / f"part{i}.{trait}.tsv.gz"), name=f"part{i}", source=f"part{i}")
              for i in (1, 2, 3)]
    al = align_cohorts(tables)
    st = meta_statistics(al.beta, al.se, al.eaf, al.n)
    ids = pd.Index(al.variant_id.to_pylist())
    out = _read_out(d / f"meta.{trait}.tsv.gz")
    assert list(out.columns) == SSF_COLUMNS + META_COLUMNS and out["variant_id"].tolist() == list(ids)
    for col, key in (("beta", "beta"), ("standard_error", "standard_error"), ("beta_random", "beta_random"),
                     ("standard_error_random", "standard_error_random"), ("q", "q"), ("i2", "i2"),
                     ("effect_allele_frequency", "effect_allele_frequency"), ("test_statistic", "z")):
        ok = np.isfinite(st[key])
        assert np.allclose(out[col].to_numpy(float)[ok], st[key][ok], rtol=5e-6, atol=1e-300), col
    listing = _gwama_inputs(d, trait)
    figures = {}
    for random in (False, True):
        g = _run_gwama(d, listing, f"gwama.{trait}.{'random' if random else 'fixed'}", random)
        pos = ids.get_indexer(g["rs_number"])
        assert (pos >= 0).all() and len(g) == len(ids)  # the same variants
        assert (np.array(al.effect_allele.to_pylist())[pos] == g["reference_allele"]).all()
        k = st["n_cohorts"][pos]
        assert (k == g["n_studies"]).all() and (st["n"][pos] == g["n_samples"]).all()
        assert (np.array([bytes(r).decode() for r in st["direction"][pos]]) == g["effects"].to_numpy()).all()
        assert _printed_close(st["effect_allele_frequency"][pos], g["eaf"].to_numpy()).all()
        sfx = "_random" if random else ""
        # GWAMA's random effects of a one-study variant divide rounding noise (see the docstring)
        rows = k >= 2 if random else np.ones(len(g), dtype=bool)
        b, s = st["beta" + sfx][pos], st["standard_error" + sfx][pos]
        z = b / s
        assert _printed_close(b, g["beta"].to_numpy()).all()
        assert _printed_close(s[rows], g["se"].to_numpy()[rows]).all()
        assert _printed_close(z[rows], g["z"].to_numpy()[rows]).all()
        # p: GWAMA's approximation at our z; ours is the exact normal tail
        assert _printed_close(-_hastings_log10_p(z[rows]), g["_-log10_p-value"].to_numpy()[rows]).all()
        lp = st["log10_p" + sfx][pos]
        assert np.allclose(lp, np.log10(2 * stats.norm.sf(np.abs(z))), rtol=1e-9)
        het = k >= 2
        assert _printed_close(st["q"][pos][het], g["q_statistic"].to_numpy()[het]).all()
        assert _printed_close(st["i2"][pos][het], g["i2"].to_numpy()[het]).all()
        qp_ours = 10 ** st["log10_q_p"][pos][het]
        qp_text = g["q_p-value"].to_numpy()[het]
        qp = qp_text.astype(float)
        plain = qp >= 0.001
        assert _printed_close(qp_ours[plain], qp[plain]).all()
        assert all(f"{v:.2E}" == t for v, t in zip(qp_ours[~plain], qp_text[~plain]))
        gl = g["_-log10_p-value"].to_numpy()
        figures["random" if random else "fixed"] = {
            "variants": len(g), "compared (se, z, p)": int(rows.sum()),
            "max |d beta|": float(np.max(np.abs(b - g["beta"]))),
            "max |d se|": float(np.max(np.abs(s[rows] - g["se"][rows]))),
            "max |d Q|": float(np.max(np.abs(st["q"][pos][het] - g["q_statistic"][het]))),
            "max |d I2|": float(np.max(np.abs(st["i2"][pos][het] - g["i2"][het]))),
            "max |d -log10 p| GWAMA vs A&S 26.2.16 at our z": float(np.max(np.abs(-_hastings_log10_p(z[rows])
                                                                                   - gl[rows]))),
            "max |d -log10 p| GWAMA vs our exact p": float(np.max(np.abs(-lp[rows] - gl[rows]))),
        }
    print(trait, figures)


@pytest.mark.parametrize("trait", TRAITS)
def test_meta_of_the_thirds_finds_the_pooled_loci(demo_split, trait):
    d, summaries = demo_split
    window = summaries[trait]["locus_window_kb"] * 1000
    pooled = pd.read_csv(DEMO_RESULTS / "gwas" / f"{trait}.leads.tsv", sep="\t", dtype={"chromosome": str})
    meta = pd.read_csv(d / f"meta.{trait}.leads.tsv", sep="\t", dtype={"chromosome": str})
    assert len(meta) == summaries[trait]["n_loci"] > 0

    def nearest(a, b):
        return np.array([np.min(np.abs(b.loc[b["chromosome"] == c, "base_pair_location"].to_numpy(float) - p),
                                initial=np.inf) for c, p in zip(a["chromosome"], a["base_pair_location"])])

    # every pooled lead is within the window of a meta lead and every meta lead of a pooled one
    assert (nearest(pooled, meta) <= window).all()
    assert (nearest(meta, pooled) <= window).all()
    # pooled leads (LD-clumped) merged within the window are the meta's (distance-based) loci
    loci = 0
    for _, sub in pooled.groupby("chromosome"):
        p = np.sort(sub["base_pair_location"].to_numpy())
        loci += 1 + int((np.diff(p) > window).sum())
    assert loci == len(meta)
    # effect sizes at the pooled GWAS's significant variants
    whole = read_sumstats(DEMO_RESULTS / "gwas" / f"{trait}.tsv.gz")
    joined = whole.merge(_read_out(d / f"meta.{trait}.tsv.gz"), on="variant_id", suffixes=("_pooled", "_meta"))
    sig = (joined["neg_log10_p"] > -math.log10(5e-8)) & np.isfinite(joined["beta_meta"])
    r = np.corrcoef(joined.loc[sig, "beta_pooled"], joined.loc[sig, "beta_meta"])[0, 1]
    assert sig.sum() >= 20 and r > 0.99, (int(sig.sum()), r)
    print(trait, {"pooled leads": len(pooled), "meta loci": len(meta), "significant variants": int(sig.sum()),
                  "beta correlation": round(float(r), 5)})


def test_reruns_give_the_same_bytes(demo_split, tmp_path):
    d, _ = demo_split
    files = [d / f"part{i}.quant_trait.tsv.gz" for i in (1, 2, 3)]
    first = _outputs_bytes(d / "meta.quant_trait")
    meta_analyse(sumstats=files, names=["part1", "part2", "part3"], out=tmp_path / "again", trait="quant_trait",
                 genes_gtf=REPO / "data" / "demo" / "genes.gtf", threads=2)
    assert _outputs_bytes(tmp_path / "again") == first
