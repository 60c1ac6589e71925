"""Published-score scoring speed: ``cohortflow prs score`` vs ``plink2 --score``, in one run.

    .venv/bin/python benchmarks/bench_prs_score.py                  # 5000 x 100000, 1 and 10 scores, 2 threads
    .venv/bin/python benchmarks/bench_prs_score.py --threads 1 2 --repeats 5

Input: ``plink2 --dummy N M 0.01 acgt`` (1% missing calls, so mean imputation runs) and K sets of
M weights (normal, 6 significant digits) whose effect allele is the .bim A1 or A2 at random (half
the variants are scored swapped).

- plink2 gets one M-row table ``ID A1 W1..WK`` (what it needs once the variants are matched) and
  runs ``--score FILE 1 2 header cols=+scoresums --score-col-nums 3[-K+2] --threads T``;
- cohortflow gets the same weights as K PGS Catalog harmonized scoring files (``.txt.gz``, the
  Catalog's header and columns) and runs the whole ``prs score`` path: reading and checking the
  files, matching every row by chromosome, position and alleles, scoring, and writing
  ``OUT.scores.tsv.gz``, ``OUT.match.tsv`` and ``OUT.summary.json``. ``--dummy acgt`` draws
  allele pairs at random, so a third of the variants are A/T or C/G: plink2 scores them all, and
  cohortflow is run with ``keep_ambiguous`` so that it scores the same 100,000. "library" is
  ``score_pgs`` in this process (numba kernels loaded beforehand); "CLI" is the console script
  ``cohortflow prs score ... --threads T`` (adds Python start-up and imports).

Best of ``--repeats`` runs each; the ratio is plink2 time / cohortflow time (above 1: cohortflow
is faster). The sums are checked against plink2's SCORE*_SUM (relative 1e-5: plink2 prints 6
significant digits) before anything is timed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.io.plink import read_bim
from cohortflow.prs.pgs import score_pgs

from _timing import best_of  # benchmarks/ is on sys.path when run as a script

CATALOG_HEADER = """\
###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring for additional information
#format_version=2.0
##POLYGENIC SCORE (PGS) INFORMATION
#pgs_id={pgs_id}
#pgs_name=BENCH_{pgs_id}
#trait_reported=Benchmark trait
#trait_mapped=benchmark
#trait_efo=EFO_0000000
#genome_build=GRCh38
#variants_number={n}
#weight_type=beta
##SOURCE INFORMATION
#pgp_id=PGP000000
#citation=benchmark
##HARMONIZATION DETAILS
#HmPOS_build=GRCh38
#HmPOS_date=2024-01-01
#HmPOS_match_chr={{"True": null, "False": null}}
#HmPOS_match_pos={{"True": null, "False": null}}
rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\thm_source\thm_rsID\thm_chr\thm_pos\thm_inferOtherAllele
"""


def make_input(d: Path, n: int, m: int, k: int, seed: int = 1) -> tuple[Path, Path, list[Path]]:
    subprocess.run(["plink2", "--dummy", str(n), str(m), "0.01", "acgt", "--seed", str(seed), "--make-bed",
                    "--out", str(d / "dummy")], check=True, capture_output=True)
    bim = read_bim(d / "dummy.bim")
    rng = np.random.default_rng(seed)
    swapped = rng.random(m) < 0.5
    effect = np.where(swapped, bim["a2"], bim["a1"])
    other = np.where(swapped, bim["a1"], bim["a2"])
    weights = np.array([[float(f"{w:.6g}") for w in col] for col in rng.normal(0, 0.01, size=(k, m))]).T
    plink_table = pd.DataFrame({"ID": bim["id"], "A1": effect})
    for c in range(k):
        plink_table[f"W{c + 1}"] = weights[:, c]
    plink_table.to_csv(d / "weights.plink2.tsv", sep="\t", index=False, float_format="%.6g")
    files = []
    for c in range(k):
        pgs_id = f"PGS9{c + 1:05d}"
        body = pd.DataFrame({"rsID": bim["id"], "chr_name": bim["chrom"], "chr_position": bim["pos"],
                             "effect_allele": effect, "other_allele": other, "effect_weight": weights[:, c],
                             "hm_source": "ENSEMBL", "hm_rsID": bim["id"], "hm_chr": bim["chrom"], "hm_pos": bim["pos"],
                             "hm_inferOtherAllele": ""})
        path = d / f"{pgs_id}_hmPOS_GRCh38.txt.gz"
        with gzip.open(path, "wt", compresslevel=6) as fh:
            fh.write(CATALOG_HEADER.format(pgs_id=pgs_id, n=m))
            body.to_csv(fh, sep="\t", index=False, header=False, float_format="%.6g")
        files.append(path)
    return d / "dummy", d / "weights.plink2.tsv", files


def run_plink2(bfile: Path, table: Path, k: int, threads: int, out: Path) -> None:
    cols = "3" if k == 1 else f"3-{k + 2}"
    subprocess.run(["plink2", "--bfile", str(bfile), "--score", str(table), "1", "2", "header", "cols=+scoresums",
                    "--score-col-nums", cols, "--threads", str(threads), "--out", str(out)],
                   check=True, capture_output=True)


def run_cli(bfile: Path, files: list[Path], threads: int, out: Path) -> None:
    cli = Path(sys.executable).with_name("cohortflow")
    subprocess.run([str(cli), "prs", "score", "--bfile", str(bfile), "--scores", *map(str, files),
                    "--keep-ambiguous", "--threads", str(threads), "--out", str(out)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=100000)
    ap.add_argument("--columns", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-cli", action="store_true", help="time only the library call")
    args = ap.parse_args()
    if shutil.which("plink2") is None:
        sys.exit("plink2 not found (apt-get install plink2)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bfile, table, files = make_input(d, args.samples, args.variants, max(args.columns))
        score_pgs(bfile=bfile, scores=files[:1], out_prefix=d / "warm", keep_ambiguous=True)  # load the kernels
        load = os.getloadavg()[0]
        print(f"plink2 --dummy {args.samples} {args.variants} 0.01 acgt; best of {args.repeats}; "
              f"cpu: {os.cpu_count()} cores, load average {load:.2f} at start")
        print(f"{'scores':>6s} {'threads':>7s} {'library':>9s} {'CLI':>8s} {'plink2':>8s} {'ratio lib':>9s} "
              f"{'ratio CLI':>9s}")
        for k in args.columns:
            for threads in args.threads:
                run_plink2(bfile, table, k, threads, d / "ref")
                score_pgs(bfile=bfile, scores=files[:k], threads=threads, out_prefix=d / "ours", keep_ambiguous=True)
                ref = pd.read_csv(d / "ref.sscore", sep="\t")
                ours = pd.read_csv(d / "ours.scores.tsv.gz", sep="\t")
                for c in range(k):
                    pgs_id = files[c].name.split("_")[0]
                    np.testing.assert_allclose(ours[f"{pgs_id}_SUM"], ref[f"SCORE{c + 1}_SUM"], rtol=1e-5, atol=1e-6)
                lib = best_of(args.repeats, lambda: score_pgs(bfile=bfile, scores=files[:k], threads=threads,
                                                              out_prefix=d / "ours", keep_ambiguous=True))
                cli = float("nan") if args.no_cli else best_of(
                    args.repeats, lambda: run_cli(bfile, files[:k], threads, d / "cli"))
                p2 = best_of(args.repeats, lambda: run_plink2(bfile, table, k, threads, d / "ref"))
                print(f"{k:6d} {threads:7d} {lib:8.3f}s {cli:7.3f}s {p2:7.3f}s {p2 / lib:8.2f}x {p2 / cli:8.2f}x",
                      flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
