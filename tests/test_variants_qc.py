"""Genotype QC against the peers: kept sets of plink2 --geno --mind --maf --hwe --make-bed (with
--remove for the sample steps), statistics of plink2 --freq counts / --missing / --hardy / --het,
plink1.9 --het and --check-sex, and exact HWE p-values against exact rational enumeration."""
import json
import math
import subprocess
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.variants.kernels import hwe_exact_p, hwe_x_exact_p
from cohortflow.variants.qc import genotype_qc, qc_statistics
from conftest import require_shared, require_tool

THRESHOLDS = {"geno": 0.05, "mind": 0.05, "maf": 0.01, "hwe": 1e-6}


def _synthetic(tmp_path, seed=0, name="syn"):
    """300 samples (6 of unknown sex, 5 with 12% missing calls, 20 non-founders, 2 with the wrong
    .fam sex) x 1,240 variants on 1-3, XY, X, Y, MT, with high-missing, HWE-violating and rare
    variants, het calls in males on chrX and calls in females on chrY."""
    rng = np.random.default_rng(seed)
    n = 300
    sex = rng.choice([1, 2], size=n)
    sex[:6] = 0
    chroms = ["1"] * 500 + ["2"] * 350 + ["3"] * 200 + ["XY"] * 40 + ["X"] * 120 + ["Y"] * 15 + ["MT"] * 15
    m = len(chroms)
    ch = np.array(chroms)
    p = rng.uniform(0.001, 0.5, size=m)
    geno = rng.binomial(2, p[:, None], size=(m, n)).astype(np.int8)
    true_male = sex == 1
    true_male[[50, 51]] = ~true_male[[50, 51]]  # the .fam sex of samples 50 and 51 is wrong
    hap = np.isin(ch, ["Y", "MT"])[:, None] | ((ch == "X")[:, None] & true_male[None])
    geno = np.where(hap, 2 * (geno > 0), geno).astype(np.int8)
    geno[(ch == "X")[:, None] & true_male[None] & (rng.random((m, n)) < 0.01)] = 1  # het haploid calls
    geno[(ch == "Y")[:, None] & ~true_male[None] & (rng.random((m, n)) < 0.5)] = -1
    geno[rng.random((m, n)) < 0.005] = -1
    geno[:, 10:15][rng.random((m, 5)) < 0.12] = -1           # samples failing --mind
    high_missing = rng.choice(1050, 40, replace=False)                            # --geno
    geno[high_missing] = np.where(rng.random((40, n)) < 0.08, -1, geno[high_missing])
    het_excess = rng.choice(np.arange(100, 1050), 30, replace=False)
    geno[het_excess] = np.where(rng.random((30, n)) < 0.8, 1, geno[het_excess])    # --hwe
    bim = pd.DataFrame({"chrom": chroms, "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.arange(m) * 1000 + 1, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": sex, "pheno": "-9"})
    # s21..s40 are children of s20 (non-founders: left out of frequencies and HWE, as in plink)
    fam.loc[20:40, "fid"] = "f20"
    fam.loc[21:40, "father"] = "s20"
    write_bed(tmp_path / name, geno, bim, fam)
    return tmp_path / name


def _plink(tool, *args):
    cmd = [require_tool(tool), *map(str, args)] + (["--threads", "1"] if tool == "plink2" else [])
    subprocess.run(cmd, check=True, capture_output=True)


def _tsv(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def _assert_printed(ours, theirs, digits):
    """ours rounds to theirs at the ``digits`` significant digits the peer prints (half a unit in
    the last printed digit, plus rounding slack)."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(theirs)
    scale = 10.0 ** (np.floor(np.log10(np.maximum(np.abs(theirs[ok]), 1e-300))) - (digits - 1))
    assert np.all(np.abs(ours[ok] - theirs[ok]) <= 0.5 * scale * (1 + 1e-6))


def _kept_sets_match(tmp_path, bfile, *, remove=(), **kwargs):
    thresholds = {k: kwargs.pop(k) for k in list(kwargs) if k in THRESHOLDS}
    summary = genotype_qc(bfile, out_prefix=tmp_path / "ours", **thresholds, **kwargs)
    removed = list(remove)
    if kwargs.get("remove_sex_problems"):
        sq = _tsv(tmp_path / "ours.sample_qc.tsv")
        removed += sq.loc[sq["sex_check"] == "PROBLEM", "IID"].tolist()
    fam = open_bed(bfile).fam
    pd.DataFrame({"#FID": fam["fid"], "IID": fam["iid"]}).loc[fam["iid"].isin(removed)].to_csv(
        tmp_path / "remove.txt", sep="\t", index=False)
    flags = [x for k, v in thresholds.items() for x in (f"--{k}", v)]
    _plink("plink2", "--bfile", bfile, *flags, *(["--remove", tmp_path / "remove.txt"] if removed else []),
           "--make-bed", "--out", tmp_path / "theirs")
    ours, theirs = open_bed(tmp_path / "ours"), open_bed(tmp_path / "theirs")
    assert ours.fam["iid"].tolist() == theirs.fam["iid"].tolist()
    assert ours.bim["id"].tolist() == theirs.bim["id"].tolist()
    assert np.array_equal(ours.read(), theirs.read())
    return summary


@pytest.mark.peer
def test_synthetic_kept_sets_equal_plink2(tmp_path):
    bfile = _synthetic(tmp_path)
    summary = _kept_sets_match(tmp_path, bfile, remove=["s100", "s200"], remove_samples=["s100", "s200"],
                               remove_sex_problems=True, **THRESHOLDS)
    # every filter bites on this data, so the comparison is not vacuous
    assert summary["samples_removed"]["mind"] >= 5
    assert summary["samples_removed"]["sex_check"] >= 6 + 2  # unknown sex and the two wrong .fam sexes
    assert summary["samples_removed"]["king_cutoff"] == 2
    assert all(summary["variants_removed"][k] > 0 for k in ("geno", "hwe", "maf"))
    assert summary["n_variants_out"] == summary["n_variants_in"] - sum(summary["variants_removed"].values())
    funnel = summary["funnel"]
    assert [f["step"] for f in funnel] == summary["order"] == ["mind", "sex_check", "king_cutoff", "geno", "hwe",
                                                                "maf"]
    samples_left, variants_left = summary["n_samples_in"], summary["n_variants_in"]
    for step in funnel:
        samples_left -= step["samples_removed"]
        variants_left -= step["variants_removed"]
        assert (step["samples_left"], step["variants_left"]) == (samples_left, variants_left)
    assert (samples_left, variants_left) == (summary["n_samples_out"], summary["n_variants_out"])


@pytest.mark.peer
def test_hapmap3_tight_thresholds_kept_sets_equal_plink2(tmp_path):
    bfile = require_shared("hapmap3_founders_957", "hapmap3_957.bed").with_suffix("")
    summary = _kept_sets_match(tmp_path, bfile, geno=0.003, mind=0.0015, maf=0.1, hwe=1e-3)
    assert summary["samples_removed"]["mind"] > 0 and summary["variants_removed"]["hwe"] > 0


@pytest.mark.peer
def test_1kg_default_thresholds_kept_sets_equal_plink2(tmp_path):
    bfile = require_shared("gwas_1kg_phase3_subset", "plink", "1kg_phase3_subset.bed").with_suffix("")
    fam = open_bed(bfile).fam
    summary = _kept_sets_match(tmp_path, bfile, remove=fam["iid"][::97], remove_samples=list(fam["iid"][::97]),
                               **THRESHOLDS)
    assert summary["variants_removed"]["hwe"] > 0 and summary["samples_removed"]["king_cutoff"] == 12


@pytest.mark.peer
def test_statistics_match_plink2_freq_missing_hardy_het(tmp_path):
    bfile = _synthetic(tmp_path, seed=1)
    genotype_qc(bfile, out_prefix=tmp_path / "ours", geno=1.0, mind=1.0, maf=0.01, hwe=0.0)
    stats = qc_statistics(bfile, maf=0.01)
    _plink("plink2", "--bfile", bfile, "--missing", "--freq", "counts", "--hardy", "--out", tmp_path / "p")
    _plink("plink2", "--bfile", bfile, "--maf", "0.01", "--het", "--out", tmp_path / "h")
    vq, sq = _tsv(tmp_path / "ours.variant_qc.tsv"), _tsv(tmp_path / "ours.sample_qc.tsv")
    vmiss, smiss = _tsv(tmp_path / "p.vmiss"), _tsv(tmp_path / "p.smiss")
    acount = _tsv(tmp_path / "p.acount")
    assert vq["variant_id"].tolist() == vmiss["ID"].tolist() == acount["ID"].tolist()
    # counts are identical; rates to plink2's 6 printed digits
    assert np.array_equal(vq["a1_count"], acount["ALT_CTS"]) and np.array_equal(vq["allele_obs"], acount["OBS_CT"])
    assert np.array_equal(stats.n_missing, vmiss["MISSING_CT"]) and np.array_equal(stats.n_eligible, vmiss["OBS_CT"])
    assert np.array_equal(sq["n_missing"], smiss["MISSING_CT"])
    assert np.array_equal(sq["n_called"] + sq["n_missing"], smiss["OBS_CT"])
    _assert_printed(1 - vq["call_rate"], vmiss["F_MISS"], 6)
    _assert_printed(1 - sq["call_rate"], smiss["F_MISS"], 6)
    hardy = pd.concat([_tsv(tmp_path / "p.hardy")[["ID", "P"]], _tsv(tmp_path / "p.hardy.x")[["ID", "P"]]])
    merged = vq.merge(hardy, left_on="variant_id", right_on="ID")
    assert len(merged) == (~vq["chromosome"].isin(["Y", "MT"])).sum()
    assert vq.loc[vq["chromosome"].isin(["Y", "MT"]), "hwe_p"].isna().all()
    assert merged["chromosome"].eq("X").sum() == 120 and (merged["P"] < 1e-6).sum() >= 20
    _assert_printed(merged["hwe_p"], merged["P"], 6)
    # plink2 --het: the same F as plink1.9 (1 - 2pq without n/(n-1)), printed to 6 digits
    het = _tsv(tmp_path / "h.het")
    assert np.array_equal(stats.het_hom_obs, het["O(HOM)"]) and np.array_equal(stats.het_n, het["OBS_CT"])
    np.testing.assert_allclose(sq["het_f"], het["F"], rtol=0, atol=1e-6)


@pytest.mark.peer
def test_het_and_sex_check_match_plink19(tmp_path):
    bfile = _synthetic(tmp_path, seed=3)
    stats = qc_statistics(bfile, maf=0.05)
    genotype_qc(bfile, out_prefix=tmp_path / "ours", geno=1.0, mind=1.0, maf=0.05, hwe=0.0)
    _plink("plink1.9", "--bfile", bfile, "--maf", "0.05", "--het", "--out", tmp_path / "p1")
    _plink("plink1.9", "--bfile", bfile, "--check-sex", "--out", tmp_path / "p1")
    het = pd.read_csv(tmp_path / "p1.het", sep=r"\s+")
    assert np.array_equal(stats.het_hom_obs, het["O(HOM)"]) and np.array_equal(stats.het_n, het["N(NM)"])
    _assert_printed(stats.het_hom_exp, het["E(HOM)"], 4)
    _assert_printed(stats.het_f, het["F"], 4)
    sexcheck = pd.read_csv(tmp_path / "p1.sexcheck", sep=r"\s+", na_values=["nan"])
    sq = _tsv(tmp_path / "ours.sample_qc.tsv")
    _assert_printed(sq["sex_f"], sexcheck["F"], 4)
    assert sq["inferred_sex"].tolist() == sexcheck["SNPSEX"].tolist()
    assert sq["sex_check"].tolist() == sexcheck["STATUS"].tolist()
    assert set(sq.loc[sq["sex_check"] == "PROBLEM", "IID"]) >= {"s0", "s1", "s50", "s51"}


@pytest.mark.peer
def test_1kg_sex_check_matches_plink19_and_f_to_1e6(tmp_path):
    """The 1kg subset: real chrX (PAR split off as XY), both sexes. plink1.9 prints F to 4 digits, so
    F is also checked to 1e-6 through plink2 --het on the chrX variants recoded as an autosome with
    the chrX founder allele counts (--freq counts), which is the same estimator."""
    bfile = require_shared("gwas_1kg_phase3_subset", "plink", "1kg_phase3_subset.bed").with_suffix("")
    genotype_qc(bfile, out_prefix=tmp_path / "ours", **THRESHOLDS)
    _plink("plink1.9", "--bfile", bfile, "--check-sex", "--out", tmp_path / "p1")
    sexcheck = pd.read_csv(tmp_path / "p1.sexcheck", sep=r"\s+", na_values=["nan"])
    sq = _tsv(tmp_path / "ours.sample_qc.tsv")
    assert sq["inferred_sex"].tolist() == sexcheck["SNPSEX"].tolist()
    assert sq["sex_check"].tolist() == sexcheck["STATUS"].tolist()
    _assert_printed(sq["sex_f"], sexcheck["F"], 4)
    assert (sexcheck["STATUS"] == "PROBLEM").sum() > 200  # the README's small-panel artefact
    _plink("plink2", "--bfile", bfile, "--chr", "X", "--freq", "counts", "--make-bed", "--out", tmp_path / "x")
    bim = pd.read_csv(tmp_path / "x.bim", sep="\t", header=None)
    bim[0] = 1
    bim.to_csv(tmp_path / "x.bim", sep="\t", header=False, index=False)
    acount = _tsv(tmp_path / "x.acount")
    acount["#CHROM"] = 1
    acount.to_csv(tmp_path / "x1.acount", sep="\t", index=False)
    _plink("plink2", "--bfile", tmp_path / "x", "--read-freq", tmp_path / "x1.acount", "--het",
           "--out", tmp_path / "xh")
    np.testing.assert_allclose(sq["sex_f"], _tsv(tmp_path / "xh.het")["F"], rtol=0, atol=1e-6)
    # real data: every HWE p (autosomes, PAR, chrX) and call rate as plink2 prints them
    _plink("plink2", "--bfile", bfile, "--hardy", "--freq", "counts", "--out", tmp_path / "p")
    stats = qc_statistics(bfile)
    hardy = pd.concat([_tsv(tmp_path / "p.hardy")[["ID", "P"]], _tsv(tmp_path / "p.hardy.x")[["ID", "P"]]])
    ours = pd.DataFrame({"ID": open_bed(bfile).bim["id"], "p": stats.hwe_p}).merge(hardy, on="ID")
    assert len(ours) == len(stats.hwe_p) and (ours["P"] < 1e-6).sum() > 100
    _assert_printed(ours["p"], ours["P"], 6)
    acount = _tsv(tmp_path / "p.acount")
    assert np.array_equal(stats.a1_count, acount["ALT_CTS"]) and np.array_equal(stats.allele_obs, acount["OBS_CT"])
    summary = json.loads((tmp_path / "ours.summary.json").read_text())
    assert summary["sex_check"]["n_problem"] == (sexcheck["STATUS"] == "PROBLEM").sum()
    assert summary["sex_check"]["n_chrx_variants"] > 1000 and summary["samples_removed"]["sex_check"] == 0


def _exact_hwe_p(het, hom1, hom2):
    """Exact HWE p by rational arithmetic over every het count (Levene's formula)."""
    n = het + hom1 + hom2
    n_a = 2 * hom1 + het

    def prob(h):
        ha = (n_a - h) // 2
        return Fraction(math.factorial(n) * 2 ** h * math.factorial(n_a) * math.factorial(2 * n - n_a),
                        math.factorial(ha) * math.factorial(h) * math.factorial(n - h - ha) * math.factorial(2 * n))

    probs = [prob(h) for h in range(n_a % 2, min(n_a, 2 * n - n_a) + 1, 2)]
    obs = prob(het)
    return float(sum(p for p in probs if p <= obs * Fraction(1 + 10 ** 8, 10 ** 8)))


def _exact_hwe_x_p(f_het, f_hom1, f_hom2, m_a1, m_a2):
    """Exact chrX HWE p (Graffelman & Weir) by rational arithmetic over every configuration."""
    nf, nm = f_het + f_hom1 + f_hom2, m_a1 + m_a2
    n_a = 2 * f_hom1 + f_het + m_a1
    f = math.factorial

    def prob(ma, h):
        fa = n_a - ma
        ha = (fa - h) // 2
        return Fraction(f(nf) * 2 ** h * f(nm) * f(n_a) * f(2 * nf + nm - n_a),
                        f(ha) * f(h) * f(nf - h - ha) * f(ma) * f(nm - ma) * f(2 * nf + nm))

    configs = [prob(ma, h) for ma in range(max(0, n_a - 2 * nf), min(nm, n_a) + 1)
               for h in range((n_a - ma) % 2, min(n_a - ma, 2 * nf - n_a + ma) + 1, 2)]
    obs = prob(m_a1, f_het)
    return float(sum(p for p in configs if p <= obs * Fraction(1 + 10 ** 8, 10 ** 8)))


@pytest.mark.parametrize("counts", [(0, 50, 50), (100, 0, 0), (10, 80, 10), (57, 21, 22), (3, 0, 997), (1, 0, 0),
                                    (0, 0, 0), (500, 250, 250), (20, 470, 510), (300, 10, 10), (140, 430, 430)])
def test_hwe_exact_against_rational_enumeration(counts):
    assert hwe_exact_p(*counts) == pytest.approx(_exact_hwe_p(*counts), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("counts", [(22, 64, 0, 62, 27), (42, 30, 13, 30, 60), (0, 40, 40, 30, 30), (30, 0, 0, 0, 20),
                                    (5, 10, 15, 0, 0), (0, 0, 0, 7, 9), (60, 10, 10, 40, 45), (2, 90, 1, 90, 3)])
def test_hwe_x_exact_against_rational_enumeration(counts):
    assert hwe_x_exact_p(*counts) == pytest.approx(_exact_hwe_x_p(*counts), rel=1e-9, abs=1e-300)


def test_outputs_deterministic_whatever_threads_and_blocks(tmp_path):
    bfile = _synthetic(tmp_path, seed=2)
    summary = genotype_qc(bfile, out_prefix=tmp_path / "a", threads=1)
    genotype_qc(bfile, out_prefix=tmp_path / "b", threads=2, block_size=97)
    for ext in (".bed", ".bim", ".fam", ".sample_qc.tsv", ".variant_qc.tsv", ".summary.json"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes(), ext
    vq, sq = _tsv(tmp_path / "a.variant_qc.tsv"), _tsv(tmp_path / "a.sample_qc.tsv")
    assert list(vq.columns) == ["variant_id", "chromosome", "position", "a1", "a2", "call_rate", "n_called",
                                "a1_freq", "maf", "hwe_p", "a1_count", "allele_obs", "pass", "reason"]
    assert list(sq.columns) == ["FID", "IID", "call_rate", "n_called", "n_missing", "het_f", "sex_f",
                                "inferred_sex", "sex_check", "pass", "reason"]
    assert vq["pass"].sum() == summary["n_variants_out"] == open_bed(tmp_path / "a").n_variants
    assert sq["pass"].sum() == summary["n_samples_out"]
    assert set(sq["sex_check"]) == {"OK", "PROBLEM"} and set(sq["inferred_sex"]) <= {0, 1, 2}
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_chrx_leaves_sex_check_empty(tmp_path):
    rng = np.random.default_rng(4)
    geno = rng.binomial(2, 0.3, size=(200, 50)).astype(np.int8)
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(200)], "cm": 0.0, "pos": np.arange(200) + 1,
                        "a1": "A", "a2": "C"})
    fam = pd.DataFrame({"fid": "f", "iid": [f"s{i}" for i in range(50)], "father": "0", "mother": "0", "sex": 1,
                        "pheno": "-9"})
    write_bed(tmp_path / "auto", geno, bim, fam)
    summary = genotype_qc(tmp_path / "auto", out_prefix=tmp_path / "q", remove_sex_problems=True)
    sq = _tsv(tmp_path / "q.sample_qc.tsv")
    assert sq[["sex_f", "inferred_sex", "sex_check"]].isna().all().all()
    assert summary["samples_removed"]["sex_check"] == 0 and summary["sex_check"]["n_chrx_variants"] == 0


def test_bad_input_one_line_errors(tmp_path):
    bfile = _synthetic(tmp_path, seed=5)
    for kwargs in ({"geno": 1.5}, {"mind": -0.1}, {"maf": float("nan")}, {"hwe": "x"}):
        with pytest.raises(CohortflowError, match=rf"syn\.bed: QC threshold {next(iter(kwargs))}=") as err:
            genotype_qc(bfile, out_prefix=tmp_path / "bad", **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(CohortflowError, match=r"syn\.fam: 1 IID\(s\) to remove are not in the fileset \(first: nob"):
        genotype_qc(bfile, out_prefix=tmp_path / "bad", remove_samples=["s1", "nobody"])
    with pytest.raises(CohortflowError, match="output prefix is the input"):
        genotype_qc(bfile, out_prefix=bfile)
    with pytest.raises(CohortflowError, match="no sample passes"):
        genotype_qc(bfile, out_prefix=tmp_path / "bad", mind=0.0)
    with pytest.raises(CohortflowError, match="threads"):
        genotype_qc(bfile, out_prefix=tmp_path / "bad", threads=0)
    empty = open_bed(bfile)
    write_bed(tmp_path / "empty", np.zeros((0, empty.n_samples), dtype=np.int8), empty.bim.iloc[:0], empty.fam)
    with pytest.raises(CohortflowError, match=r"empty\.bed: empty fileset \(300 samples, 0 variants\)"):
        genotype_qc(tmp_path / "empty", out_prefix=tmp_path / "bad")
    assert not list(tmp_path.glob("bad*"))


def test_number_formatting_matches_printf():
    """The QC tables' numbers: %.8g as C prints it (NaN empty), integers exactly."""
    from cohortflow.variants.kernels import NUMBER_FIELD_WIDTH, format_number_columns
    rng = np.random.default_rng(6)
    floats = np.concatenate([rng.random(3000), 10 ** rng.uniform(-320, 300, 3000), -rng.random(100) * 1e5,
                             [0.0, 1.0, 0.5, 1e-5, 1e-4, 99999999.5, 0.999999995, 12345678.0, 1e8, 2.5e-310, np.nan,
                              np.inf, 1 / 3]])
    ints = rng.integers(-10 ** 15, 10 ** 15, len(floats)).astype(np.float64)
    offsets, data = format_number_columns(np.vstack([floats, ints]), np.array([8, 0]))
    got = [[bytes(data[offsets[c, 0] + r * NUMBER_FIELD_WIDTH:offsets[c, r + 1]]).decode() for r in range(len(floats))]
           for c in range(2)]
    assert got[0] == ["" if np.isnan(x) else "%.8g" % x for x in floats]
    assert got[1] == [str(int(x)) for x in ints]


@pytest.mark.parametrize("max_variants", [2_000_000, 150])
def test_sharded_jobs_equal_one_call(tmp_path, max_variants):
    """The workflow's three QC jobs (statistics per shard, filters per shard, gather) write the
    bytes of one genotype_qc call: with samples removed by --mind and by relatedness (so the
    variant statistics are recounted on the kept samples), per chromosome and in chunks."""
    from cohortflow.gwas.shards import write_shard_plan
    from cohortflow.variants.qc import genotype_qc_gather, qc_filter_shard_file, qc_stats_shard_file

    bfile = _synthetic(tmp_path, seed=5)
    kwargs = dict(**THRESHOLDS, remove_samples=["s60", "s61", "s62"])
    genotype_qc(bfile, out_prefix=tmp_path / "one", max_shard_variants=max_variants, **kwargs)
    plan = write_shard_plan(bfile=bfile, out=tmp_path / "plan.tsv", max_variants=max_variants)
    assert len(plan) >= 7
    stats = [tmp_path / f"{s}.stats.npz" for s in plan["shard"]]
    for shard, out in zip(plan["shard"], stats):
        qc_stats_shard_file(bfile=bfile, plan=tmp_path / "plan.tsv", shard=shard, maf=THRESHOLDS["maf"], out=out)
    filtered = [tmp_path / f"{s}.kept.npz" for s in plan["shard"]]
    parts = [tmp_path / f"{s}.bed.part" for s in plan["shard"]]
    for i in range(len(plan)):
        shard = plan["shard"][i] if i % 2 else i      # by name (as the workflow) or by position
        qc_filter_shard_file(bfile=bfile, stats_parts=stats, shard=shard, plan=tmp_path / "plan.tsv",
                             out_filtered=filtered[i], out_bed_part=parts[i], **kwargs)
    summary = genotype_qc_gather(bfile=bfile, stats_parts=stats, filtered_parts=filtered, bed_parts=parts,
                                 out_prefix=tmp_path / "sharded", **kwargs)
    assert summary["samples_removed"]["mind"] > 0 and summary["samples_removed"]["king_cutoff"] == 3
    for ext in (".bed", ".bim", ".fam", ".sample_qc.tsv", ".variant_qc.tsv", ".summary.json", ".sample_qc.png",
                ".variant_qc.png"):
        assert (tmp_path / f"sharded{ext}").read_bytes() == (tmp_path / f"one{ext}").read_bytes(), ext
