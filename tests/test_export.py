"""cohortflow export and the disclosure check (cohortflow.export).

On the demo results (results/demo, from `make demo`; CI runs it before the tests): a clean bundle
passes the check and holds what it should, its manifest verifies, rare variants are removed,
rebuilding gives the same bytes and the report in it names no sample. Then bundles with one planted
problem each (a sample-ID column, per-sample tables, a small count, .bed files, a JSON or a report
naming a sample) fail the check with one line naming the member, and an export whose check fails
leaves no bundle. Synthetic files cover the minor-allele-count rule exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.export.bundle import (
    cohort_sample_ids,
    export_bundle,
    filter_sumstats,
    read_manifest,
    suppress_small_counts,
    verify_manifest,
    write_tar,
)
from cohortflow.export.disclosure import (
    DisclosureError,
    check_bundle,
    is_count_name,
    is_id_column,
    require_clean_bundle,
)
from cohortflow.io.sumstats import SSF_COLUMNS, write_sumstats
from conftest import REPO

DEMO = REPO / "results" / "demo"
TRAITS = ("disease", "quant_trait")
CLI = [sys.executable, "-m", "cohortflow.cli"]


def _demo_ready() -> bool:
    need = [DEMO / "report.html", DEMO / "qc" / "qc.fam", DEMO / "cell_eqtl" / "eqtl.tsv"]
    need += [DEMO / "gwas" / f"{t}.tsv.gz" for t in TRAITS] + [DEMO / "prs" / f"{t}.performance.tsv" for t in TRAITS]
    return all(p.is_file() for p in need)


needs_demo = pytest.mark.skipif(not _demo_ready(), reason="demo results absent: run `make demo` first (CI runs it "
                                                          "before `make test`)")


def _copy_demo(dest: Path) -> Path:
    """A copy of the demo results (mtimes kept) without the large genotype and expression matrices,
    which the export does not read; so other jobs rewriting results/demo cannot race the tests."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns("*.bed", "*.h5ad", "shards", "export"))
    return dest


def _fam_iids() -> list[str]:
    return [line.split()[1] for line in (DEMO / "genotypes" / "raw.fam").read_text().splitlines() if line.strip()]


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(results copy, its bundle, the manifest), built once for the module."""
    if not _demo_ready():
        pytest.skip("demo results absent: run `make demo` first")
    root = tmp_path_factory.mktemp("export")
    results = _copy_demo(root / "demo")
    bundle = root / "out" / "demo.bundle.tar.gz"
    manifest = export_bundle(cohort_results=results, out=bundle, config={"privacy": {"min_cell_count": 5}})
    return results, bundle, manifest


def _check(bundle: Path, results: Path) -> list:
    ids, counts = cohort_sample_ids(results)
    return check_bundle(bundle, min_cell_count=5, sample_ids=ids, n_samples=counts)


# --------------------------------------------------------------------------------------- clean bundle


@needs_demo
def test_clean_demo_bundle_passes_and_holds_the_aggregates(demo):
    results, bundle, manifest = demo
    assert _check(bundle, results) == []
    names = list(_members(bundle))
    assert names[0] == "manifest.json" and names[1:] == sorted(names[1:])
    expected = {"report.html", "qc/qc.summary.json", "prs/pgs.summary.json", "prs/pgs.match.tsv",
                "cell_eqtl/eqtl.tsv", "cell_eqtl/summary.json", "singlecell/summary.json", "spatial/summary.json"}
    for t in TRAITS:
        expected |= {f"gwas/{t}.tsv.gz", f"gwas/{t}.tsv.gz-meta.yaml", f"gwas/{t}.summary.json", f"gwas/{t}.leads.tsv",
                     f"prs/{t}.performance.tsv", f"prs/{t}.deciles.tsv", f"prs/{t}.groups.tsv",
                     f"integration/{t}.celltype_ranking.tsv"}
    assert expected <= set(names), expected - set(names)
    individual = re.compile(r"\.(bed|bim|fam|h5ad|npz|png)$|sample_qc|pcs\.tsv|kinship|qc\.king|\.scores\.tsv"
                            r"|cell_scores|spatial_scores|split\.tsv|covariates|alignment_qc|truth_check|nopcs"
                            r"|discovery|weights")
    assert not [n for n in names if individual.search(n)]
    # the GWAS-SSF members are what cohortflow meta reads
    ssf = pd.read_csv(io.BytesIO(_members(bundle)["gwas/quant_trait.tsv.gz"]), sep="\t", compression="gzip")
    assert list(ssf.columns) == SSF_COLUMNS and len(ssf) > 1000
    assert manifest["cohort"] == "demo" and manifest["filters"]["min_mac"] == 20


@needs_demo
def test_manifest_lists_every_member_with_its_sha256(demo):
    _, bundle, manifest = demo
    members = _members(bundle)
    assert json.loads(members["manifest.json"]) == manifest == read_manifest(bundle)
    listed = {m["path"]: m for m in manifest["members"]}
    assert set(listed) == set(members) - {"manifest.json"}
    for name, data in members.items():
        if name != "manifest.json":
            assert listed[name]["size"] == len(data)
            assert listed[name]["sha256"] == hashlib.sha256(data).hexdigest(), name
    assert verify_manifest(bundle) == []
    # a member changed after the fact no longer verifies
    tampered = bundle.parent / "tampered.tar.gz"
    changed = dict(members, **{"prs/pgs.match.tsv": members["prs/pgs.match.tsv"] + b"x\n"})
    write_tar(tampered, list(changed.items()))
    assert verify_manifest(tampered) == ["prs/pgs.match.tsv: size or SHA-256 differs from the manifest"]


@needs_demo
def test_rebuild_gives_identical_bytes(demo, tmp_path):
    results, bundle, _ = demo
    again = tmp_path / "again.tar.gz"
    export_bundle(cohort_results=results, out=again, config={"privacy": {"min_cell_count": 5}})
    assert again.read_bytes() == bundle.read_bytes()
    with tarfile.open(bundle, "r:gz") as tar:
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)
    assert bundle.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


@needs_demo
def test_report_in_bundle_names_no_demo_sample(demo):
    _, bundle, _ = demo
    html = _members(bundle)["report.html"].decode()
    text = re.sub(r"data:[^\"')\s]+", "", html)  # embedded PNGs are base64
    sheet = (REPO / "config" / "demo" / "alignment.tsv").read_text().splitlines()[1:]
    iids = _fam_iids() + [line.split("\t")[0] for line in sheet]
    words = set(re.findall(r"[A-Za-z0-9]+", text))  # the demo's IDs are letters and digits (S00001)
    assert all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in iids)
    assert sorted(words & set(iids)) == []
    for table in ("tbl-alignment-qc", "tbl-alignment-failed", "tbl-kinship-pairs"):
        assert table not in html
    assert "Per-sample alignment metrics are left out" in html


@needs_demo
def test_gwas_sumstats_filtered_by_minor_allele_count(demo, tmp_path):
    results, bundle, manifest = demo
    # nothing of the demo's GWAS is below MAC 20 (QC's MAF 0.01 on ~2,000 samples): the member keeps its bytes
    for t in TRAITS:
        stats = manifest["filters"]["gwas"][t]
        removed = stats["removed_mac"] + stats["removed_small_n"] + stats["removed_missing"]
        assert stats["variants_in"] == stats["variants_out"] + removed
        if stats["variants_out"] == stats["variants_in"]:
            assert _members(bundle)[f"gwas/{t}.tsv.gz"] == (results / "gwas" / f"{t}.tsv.gz").read_bytes()
    # a higher threshold removes the rarer variants, and only those
    out = tmp_path / "mac60.tar.gz"
    m = export_bundle(cohort_results=results, out=out, min_mac=60)
    stats = m["filters"]["gwas"]["disease"]
    assert stats["removed_mac"] > 0 and stats["variants_out"] == stats["variants_in"] - stats["removed_mac"]
    kept = pd.read_csv(io.BytesIO(_members(out)["gwas/disease.tsv.gz"]), sep="\t", compression="gzip")
    mac = 2 * kept["n"] * np.minimum(kept["effect_allele_frequency"], 1 - kept["effect_allele_frequency"])
    assert (mac >= 60 - 1e-3).all() and len(kept) == stats["variants_out"]
    source = gzip.decompress((results / "gwas" / "disease.tsv.gz").read_bytes()).decode().splitlines()
    lines = gzip.decompress(_members(out)["gwas/disease.tsv.gz"]).decode().splitlines()
    keep = set(lines)
    assert [ln for ln in source if ln in keep] == lines  # kept lines unchanged, in order
    # eQTL: the same rule on donors
    eqtl = pd.read_csv(io.BytesIO(_members(out)["cell_eqtl/eqtl.tsv"]), sep="\t")
    eaf = eqtl["effect_allele_frequency"]
    assert (2 * eqtl["n_donors"] * np.minimum(eaf, 1 - eaf) >= 60 - 1e-6).all()
    summary = json.loads(_members(out)["cell_eqtl/summary.json"])
    tested = set(zip(eqtl["cell_type"], eqtl["variant_id"], eqtl["gene"]))
    assert all((r["cell_type"], r["variant_id"], r["gene"]) in tested for r in summary["significant"])


def _ssf(rows):
    cols = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
            "effect_allele_frequency", "n", "variant_id", "test_statistic", "errcode"]
    df = pd.DataFrame(rows, columns=["variant_id", "effect_allele_frequency", "n"])
    full = pd.DataFrame({"chromosome": "1", "base_pair_location": np.arange(1, len(df) + 1) * 100, "effect_allele": "A",
                         "other_allele": "G", "beta": 0.1, "standard_error": 0.05,
                         "effect_allele_frequency": df["effect_allele_frequency"], "n": df["n"],
                         "variant_id": df["variant_id"], "test_statistic": 2.0, "errcode": ""})
    return full[cols]


def test_filter_sumstats_minor_allele_count_rule(tmp_path):
    """MAC = 2 n min(eaf, 1 - eaf): below min_mac removed (either side of 0.5), at min_mac kept,
    n below min_n removed, missing frequency removed; kept lines unchanged."""
    table = _ssf([("common", 0.3, 1000), ("rare", 0.05, 100), ("rare_alt", 0.95, 100), ("at_limit", 0.1, 100),
                  ("tiny_n", 0.5, 3), ("no_eaf", np.nan, 1000), ("lead", 0.001, 5000)])
    src, dst = tmp_path / "t.tsv.gz", tmp_path / "f.tsv.gz"
    write_sumstats(src, table, log10_p=np.full(len(table), -3.0))
    stats = filter_sumstats(src, dst, min_mac=20, min_n=5, watch=["lead", "common"])
    assert stats == {"variants_in": 7, "variants_out": 2, "removed_mac": 4, "removed_small_n": 0,
                     "removed_missing": 1, "watched_removed": ["lead"]}
    kept = pd.read_csv(dst, sep="\t")
    assert list(kept["variant_id"]) == ["common", "at_limit"]
    src_lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    assert gzip.decompress(dst.read_bytes()).decode().splitlines() == [src_lines[0], src_lines[1], src_lines[4]]
    stats = filter_sumstats(src, dst, min_mac=2, min_n=5)
    assert stats["removed_small_n"] == 1 and "tiny_n" not in set(pd.read_csv(dst, sep="\t")["variant_id"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(CohortflowError, match="not GWAS-SSF"):
        filter_sumstats(bad, tmp_path / "x.tsv.gz", min_mac=20)


def test_small_counts_written_as_suppressed(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("cell_type\tn_cells\tn_snps\tmean\nB\t3\t2\t0.5\nT\t900\t1\t1.5\nNK\t<5\t4\t0\nDC\t0\t3\t2\n")
    assert suppress_small_counts(table, 5) == 1
    assert table.read_text().splitlines()[1] == "B\t<5\t2\t0.5"  # counts of cells, not of SNPs
    doc = tmp_path / "s.json"
    doc.write_text(json.dumps({"samples_removed": {"mind": 0, "king_cutoff": 2}, "n_pcs": 4, "n_cases": 3,
                               "cells_per_type": {"B": 4, "T": 100}, "parameters": {"min_cells": 3}}))
    assert suppress_small_counts(doc, 5) == 3
    assert json.loads(doc.read_text()) == {"samples_removed": {"mind": 0, "king_cutoff": "<5"}, "n_pcs": 4,
                                           "n_cases": "<5", "cells_per_type": {"B": "<5", "T": 100},
                                           "parameters": {"min_cells": 3}}


def test_count_and_id_names():
    for name in ("n", "n_cases", "n_controls", "n_cells", "n_samples", "n_donors_used", "n_validation", "count",
                 "n_cells_mc_p_below_0.05", "samples_removed", "samples_left", "cells_per_type", "n_cells_per_label",
                 "n_removed", "umi_count"):
        assert is_count_name(name), name
    for name in ("n_variants", "n_snps", "n_clumped", "n_clumped_p2", "n_pcs", "n_cell_types", "n_genes_used",
                 "n_tests", "n_significant", "n_perms", "n_populations", "min_cells", "n_not_in_bim", "mean_norm_score",
                 "gene_distance", "matched", "variants_removed"):
        assert not is_count_name(name), name
    for name in ("IID", "#FID", "FID1", "IID2", "ID1", "ID2", "sample", "sample_id", "donor", "barcode", "cell", "spot", "Subject_ID",
                 "best_other_sample", "claimed_sample"):
        assert is_id_column(name), name
    for name in ("cell_type", "n_samples", "variant_id", "ID", "gene", "donor_key", "samples_removed"):
        assert not is_id_column(name), name


# ------------------------------------------------------------------------------------ planted problems


def _planted(demo, tmp_path, changes: dict[str, bytes | None]) -> Path:
    """The clean demo bundle with members added, replaced (bytes) or removed (None)."""
    _, bundle, _ = demo
    members = _members(bundle)
    for name, data in changes.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    out = tmp_path / "planted.tar.gz"
    write_tar(out, list(members.items()))
    return out


def _tsv(header, rows) -> bytes:
    return ("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)).encode()


@pytest.fixture(scope="module")
def plants(demo) -> dict[str, tuple[dict, str, str]]:
    """name -> (members to plant, the member named, the rule)."""
    results, bundle, _ = demo
    iids = _fam_iids()
    qc_fam = [line.split()[1] for line in (DEMO / "qc" / "qc.fam").read_text().splitlines()]
    members = _members(bundle)
    ranking = members["integration/quant_trait.celltype_ranking.tsv"].decode().splitlines()
    header = ranking[0].split("\t")
    row = ranking[1].split("\t")
    row[header.index("n_cells")] = "3"
    small = "\n".join([ranking[0], "\t".join(row), *ranking[2:]]) + "\n"
    bed = (DEMO / "qc" / "qc.bed").read_bytes()[:4096]
    sc = json.loads(members["singlecell/summary.json"])
    sc["donors"] = iids[:40]
    keyed = json.loads(members["cell_eqtl/summary.json"])
    keyed["per_donor_cells"] = {iids[7]: 150}
    html = members["report.html"].decode().replace("</table>", f"<tr><td>{iids[41]}</td></tr></table>", 1)
    scores = [[f"{x:.4f}"] for x in np.random.default_rng(0).normal(size=len(qc_fam))]
    return {
        "sample_id_column": ({"prs/extra.tsv": _tsv(["IID", "score"], [["X1a", 1.0], ["X2b", 2.0]])},
                             "prs/extra.tsv", "id_column"),
        "per_sample_table_ids": ({"prs/quant_trait.extra.tsv": _tsv(["key", "score"], [[s, 0.1] for s in iids[:50]])},
                                 "prs/quant_trait.extra.tsv", "sample_id"),
        "per_sample_table_rows": ({"prs/quant_trait.score_only.tsv": _tsv(["score"], scores)},
                                  "prs/quant_trait.score_only.tsv", "per_sample_rows"),
        "small_count": ({"integration/quant_trait.celltype_ranking.tsv": small.encode()},
                        "integration/quant_trait.celltype_ranking.tsv", "small_count"),
        "bed_file": ({"qc/qc.bed": bed}, "qc/qc.bed", "genotype_file"),
        "bed_bytes_named_tsv": ({"qc/matrix.tsv.gz": gzip.compress(bed, mtime=0)}, "qc/matrix.tsv.gz", "genotype_file"),
        "h5ad": ({"singlecell/sc.h5ad": b"\x89HDF\r\n\x1a\n" + bytes(100)}, "singlecell/sc.h5ad", "genotype_file"),
        "json_sample_ids": ({"singlecell/summary.json": json.dumps(sc).encode()}, "singlecell/summary.json", "sample_id"),
        "json_sample_key": ({"cell_eqtl/summary.json": json.dumps(keyed).encode()}, "cell_eqtl/summary.json",
                            "sample_id"),
        "report_sample_id": ({"report.html": html.encode()}, "report.html", "sample_id"),
    }


PLANTS = ["sample_id_column", "per_sample_table_ids", "per_sample_table_rows", "small_count", "bed_file",
          "bed_bytes_named_tsv", "h5ad", "json_sample_ids", "json_sample_key", "report_sample_id"]


@needs_demo
@pytest.mark.parametrize("plant", PLANTS)
def test_check_fails_on_planted_problem(demo, plants, tmp_path, plant):
    results, _, _ = demo
    changes, member, rule = plants[plant]
    bundle = _planted(demo, tmp_path, changes)
    findings = _check(bundle, results)
    assert findings, plant
    assert {f.member for f in findings} == {member}, findings
    assert rule in {f.rule for f in findings}, findings
    ids, _ = cohort_sample_ids(results)
    line = str(DisclosureError(bundle, findings))  # what export and check-bundle report
    assert "\n" not in line and member in line and line.startswith(f"{bundle}: disclosure check failed: {member}: ")
    for sid in ids:  # the message does not repeat an ID
        assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(sid)}(?![A-Za-z0-9])", line), sid


@needs_demo
def test_per_variant_table_as_long_as_the_cohort_passes(demo, tmp_path):
    results, _, _ = demo
    n = len((DEMO / "qc" / "qc.fam").read_text().splitlines())
    rows = [[f"1:{i}:A:G", 0.01] for i in range(n)]
    bundle = _planted(demo, tmp_path, {"prs/quant_trait.extra.tsv": _tsv(["variant_id", "weight"], rows)})
    assert _check(bundle, results) == []
    bundle = _planted(demo, tmp_path, {"prs/quant_trait.extra.tsv": _tsv(["label", "weight"], rows)})
    assert [f.rule for f in _check(bundle, results)] == ["per_sample_rows"]


@needs_demo
def test_suppressed_small_count_passes(demo, tmp_path):
    results, bundle, _ = demo
    text = _members(bundle)["integration/quant_trait.celltype_ranking.tsv"].decode().splitlines()
    header = text[0].split("\t")
    row = text[1].split("\t")
    row[header.index("n_cells")] = "<5"
    fixed = _planted(demo, tmp_path, {"integration/quant_trait.celltype_ranking.tsv":
                                      ("\n".join([text[0], "\t".join(row), *text[2:]]) + "\n").encode()})
    assert _check(fixed, results) == []


@needs_demo
def test_check_on_a_folder_and_without_ids(demo, tmp_path):
    _, bundle, _ = demo
    folder = tmp_path / "unpacked"
    with tarfile.open(bundle, "r:gz") as tar:
        tar.extractall(folder, filter="data")
    assert check_bundle(folder) == []
    (folder / "qc" / "sample_qc.tsv").write_text("FID\tIID\tcall_rate\nA\tB\t0.99\n")
    assert [f.rule for f in check_bundle(folder)] == ["id_column"]
    with pytest.raises(DisclosureError, match=r"qc/sample_qc\.tsv: column 'FID' is named like a sample identifier"):
        require_clean_bundle(folder)


@needs_demo
def test_export_leaves_no_bundle_when_the_check_fails(demo, tmp_path):
    results, _, _ = demo
    bad = _copy_demo(tmp_path / "demo")
    summary = json.loads((bad / "singlecell" / "summary.json").read_text())
    summary["donor_ids"] = _fam_iids()[:5]
    (bad / "singlecell" / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "out" / "demo.bundle.tar.gz"
    out.parent.mkdir()
    out.write_bytes(b"an older bundle")
    with pytest.raises(DisclosureError, match=r"singlecell/summary\.json: JSON names a sample ID"):
        export_bundle(cohort_results=bad, out=out)
    assert list(out.parent.iterdir()) == []  # no bundle, no temporary
    # a staging folder of a killed export is removed by the next one
    stale = out.parent / f".{out.name}.abcd1234.staging"
    (stale / "gwas").mkdir(parents=True)
    export_bundle(cohort_results=results, out=out)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


@needs_demo
def test_cli_export_and_check_bundle(demo, plants, tmp_path):
    results, _, _ = demo
    out = tmp_path / "cli.tar.gz"
    proc = subprocess.run([*CLI, "export", "--cohort-results", str(results), "--out", str(out), "--config",
                           str(REPO / "config" / "config.yaml")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "disclosure check passed" in proc.stdout and out.is_file()
    proc = subprocess.run([*CLI, "check-bundle", str(out), "--cohort-results", str(results)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "disclosure check passed" in proc.stdout, proc.stderr
    changes, member, _ = plants["bed_file"]
    planted = _planted(demo, tmp_path, changes)
    proc = subprocess.run([*CLI, "check-bundle", str(planted), "--sample-ids", str(DEMO / "qc" / "qc.fam")],
                          capture_output=True, text=True, timeout=600)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("cohortflow: error: ") and member in lines[0]


def test_cli_bad_input_is_one_line(tmp_path):
    def run(*args):
        proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("cohortflow: error: "), proc.stderr
        return lines[0]

    out = tmp_path / "b.tar.gz"
    assert "does not exist" in run("export", "--cohort-results", str(tmp_path / "missing"), "--out", str(out))
    (tmp_path / "nogwas" / "qc").mkdir(parents=True)
    (tmp_path / "nogwas" / "qc" / "qc.summary.json").write_text("{}")
    line = run("export", "--cohort-results", str(tmp_path / "nogwas"), "--out", str(out))
    assert "no GWAS summary statistics" in line and "nogwas/gwas" in line
    assert "does not exist" in run("check-bundle", str(tmp_path / "none.tar.gz"))
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    assert "not a readable tar bundle" in run("check-bundle", str(tmp_path / "junk.tar.gz"))
    assert not out.exists()


# ------------------------------------------------------------------------------ report keyword


@needs_demo
def test_report_without_sample_level_tables(demo, tmp_path):
    from cohortflow.report.api import build_report

    results, _, _ = demo
    kwargs = dict(results_dir=results, cohort="demo", config={}, generated_at="2026-01-01")
    build_report(out_html=tmp_path / "full.html", **kwargs)
    build_report(out_html=tmp_path / "agg.html", sample_level_tables=False, **kwargs)
    build_report(out_html=tmp_path / "pseudo.html", sample_level_tables=False, show_sample_ids=False, **kwargs)
    full, agg = (tmp_path / "full.html").read_text(), (tmp_path / "agg.html").read_text()
    for table in ("tbl-alignment-qc", "tbl-alignment-failed", "tbl-kinship-pairs"):
        assert table in full and table not in agg
    assert "contamination of S00005" in full and "contamination of S00005" not in agg  # a known answer naming a sample
    assert "checks that name samples are left out" in agg
    pseudo = re.sub(r"data:[^\"')\s]+", "", (tmp_path / "pseudo.html").read_text())  # not inside base64 PNGs
    assert not re.search(r"(?<![A-Za-z0-9])S0\d{4}(?![A-Za-z0-9])", pseudo)
    assert "tbl-known-answers" in agg and "tbl-qc-funnel" in agg and "tbl-kinship-degrees" in agg
