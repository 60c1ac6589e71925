"""LD pruning and PCA speed: cohortflow vs plink2 on the same input, in one run.

    .venv/bin/python benchmarks/bench_pca.py                 # defaults below, 1 and 2 threads
    .venv/bin/python benchmarks/bench_pca.py --n 2000 --m 200000 --approx-n 20000 --approx-m 20000
    .venv/bin/python benchmarks/bench_pca.py --cases prune --repeats 3 --dir /tmp/bench_pca  # reuse inputs

Inputs (simulated here with a fixed seed, written as PLINK 1 .bed):

- ``ld``: ``--n`` people from three populations x ``--m`` SNPs on 22 chromosomes, 10 kb apart, with
  linkage disequilibrium (haplotypes copied as mosaics of 16 founder haplotypes per population,
  switching founder with probability 0.02 per SNP) and 0.5% missing calls;
- ``wide``: ``--approx-n`` people from three populations x ``--approx-m`` independent SNPs
  (Balding-Nichols, Fst 0.02), for the randomized PCA.

Cases, each at ``--threads`` (plink2 ``--threads T``; cohortflow numba and BLAS limited to T):

- ``--indep-pairwise 50 5 0.2`` and ``--indep-pairwise 500kb 0.2`` vs ``indep_pairwise`` (the
  prune.in must be identical);
- ``--extract prune.in --pca 10`` vs ``pca(method="exact")`` on ``ld`` (prune.in of
  ``--indep-pairwise 500kb 0.2``);
- ``--pca 10 approx`` vs ``pca(method="randomized")`` on ``wide``.

cohortflow runs in-process with its numba kernels already compiled; plink2 runs as a command (its
start-up is a few ms). Each case keeps the fastest of ``--repeats`` runs. The ratio printed is
plink2 time / cohortflow time (> 1: cohortflow faster).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cohortflow.io.plink import BedWriter, open_bed
from cohortflow.variants.pca import indep_pairwise, pca


def _fam(n: int) -> pd.DataFrame:
    return pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"i{i}" for i in range(n)],
                         "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})


def make_ld_input(prefix: Path, n: int, m: int, *, seed: int = 1, n_chrom: int = 22) -> None:
    rng = np.random.default_rng(seed)
    pop = np.repeat(np.arange(3), -(-n // 3))[:n]
    per_chrom = m // n_chrom
    with BedWriter(prefix, _fam(n)) as writer:
        for c in range(n_chrom):
            length = per_chrom if c < n_chrom - 1 else m - per_chrom * (n_chrom - 1)
            anc = rng.uniform(0.05, 0.95, length)
            founders = []
            for _ in range(3):
                p = np.clip(anc + rng.normal(0, 0.1, length), 0.01, 0.99)
                founders.append((rng.random((16, length)) < p).astype(np.int8))
            founders = np.stack(founders)  # pop x 16 x length
            geno = np.zeros((length, n), dtype=np.int8)
            for _hap in range(2):
                switch = rng.random((n, length)) < 0.02
                segment = np.cumsum(switch, axis=1, dtype=np.int32)
                choice = rng.integers(0, 16, size=(n, int(segment.max()) + 1), dtype=np.int16)
                source = np.take_along_axis(choice, segment, axis=1)  # n x length
                allele = founders[pop[:, None], source, np.arange(length)[None, :]]
                geno += allele.T
            geno[rng.random(geno.shape) < 0.005] = -1
            bim = pd.DataFrame({"chrom": str(c + 1), "id": [f"c{c + 1}_{i}" for i in range(length)], "cm": 0.0,
                                "pos": 10_000 * (np.arange(length) + 1), "a1": "A", "a2": "G"})
            writer.write(geno, bim)


def make_wide_input(prefix: Path, n: int, m: int, *, seed: int = 2, block: int = 2000) -> None:
    rng = np.random.default_rng(seed)
    pop = np.repeat(np.arange(3), -(-n // 3))[:n]
    fst = 0.02
    with BedWriter(prefix, _fam(n)) as writer:
        for start in range(0, m, block):
            b = min(block, m - start)
            anc = rng.uniform(0.05, 0.95, b)
            p = rng.beta(anc * (1 - fst) / fst, (1 - anc) * (1 - fst) / fst, size=(3, b))
            geno = rng.binomial(2, p[pop].T).astype(np.int8)
            bim = pd.DataFrame({"chrom": "1", "id": [f"w{start + i}" for i in range(b)], "cm": 0.0,
                                "pos": start + np.arange(b) + 1, "a1": "A", "a2": "G"})
            writer.write(geno, bim)


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def plink2(*args) -> None:
    subprocess.run(["plink2", *map(str, args)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--m", type=int, default=200_000)
    ap.add_argument("--approx-n", type=int, default=20_000)
    ap.add_argument("--approx-m", type=int, default=20_000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cases", default="prune,pca,approx", help="comma-separated subset of prune,pca,approx")
    ap.add_argument("--dir", help="work folder (default: a temporary one; inputs there are reused)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(a.dir or tmp)
        d.mkdir(parents=True, exist_ok=True)
        cases = set(a.cases.split(","))
        t0 = time.perf_counter()
        need_ld = bool(cases & {"prune", "pca"})
        if need_ld and (not (d / "ld.bed").exists() or open_bed(d / "ld").n_variants != a.m):
            make_ld_input(d / "ld", a.n, a.m)
        if "approx" in cases and (not (d / "wide.bed").exists()
                                  or open_bed(d / "wide").n_samples != a.approx_n):
            make_wide_input(d / "wide", a.approx_n, a.approx_m)
        made = ([f"ld {a.n} x {a.m}"] if need_ld else []) + (
            [f"wide {a.approx_n} x {a.approx_m}"] if "approx" in cases else [])
        print(f"inputs: {', '.join(made)} (simulated in {time.perf_counter() - t0:.1f} s)", flush=True)
        ld = open_bed(d / "ld") if need_ld else None
        wide = open_bed(d / "wide") if "approx" in cases else None
        # compile the kernels outside the timings
        if need_ld:
            small = np.zeros(ld.n_variants, dtype=bool)
            small[:400] = True
            indep_pairwise(ld, window=50, step=5, r2=0.2, candidates=small)
            indep_pairwise(ld, window=500, window_unit="kb", r2=0.2, candidates=small)
            pca(ld, variants=np.arange(60), n_pcs=2, method="exact")
        pca(ld if need_ld else wide, variants=np.arange(60), n_pcs=2, method="randomized")
        print(f"{'case':44s} {'threads':>7s} {'plink2 s':>9s} {'ours s':>8s} {'ratio':>6s}  check")
        for threads in a.threads:
            numba.set_num_threads(threads)
            with threadpool_limits(threads):
                for label, args, kw in () if "prune" not in cases else (
                        ("--indep-pairwise 50 5 0.2", ["50", "5", "0.2"], dict(window=50, step=5, r2=0.2)),
                        ("--indep-pairwise 500kb 0.2", ["500kb", "0.2"],
                         dict(window=500, window_unit="kb", r2=0.2))):
                    out = d / f"p{threads}"
                    tp, _ = best_of(a.repeats, lambda: plink2("--bfile", d / "ld", "--indep-pairwise", *args,
                                                              "--threads", threads, "--out", out))
                    to, keep = best_of(a.repeats, lambda: indep_pairwise(ld, threads=threads, **kw))
                    same = ld.bim["id"].to_numpy()[keep].tolist() == (out.with_suffix(".prune.in")).read_text().split()
                    print(f"{label + f' ({ld.n_samples} x {ld.n_variants})':44s} {threads:7d} {tp:9.2f} {to:8.2f} "
                          f"{tp / to:6.2f}  prune.in {'identical' if same else 'DIFFERS'} "
                          f"({int(keep.sum())} kept)", flush=True)
                if "pca" in cases:
                    prune_in = d / "pca.prune.in"
                    plink2("--bfile", d / "ld", "--indep-pairwise", "500kb", "0.2", "--out", d / "pca")
                    rows = np.flatnonzero(ld.bim["id"].isin(set(prune_in.read_text().split())).to_numpy())
                    out = d / f"pca{threads}"
                    tp, _ = best_of(a.repeats, lambda: plink2("--bfile", d / "ld", "--extract", prune_in, "--pca",
                                                              "10", "--threads", threads, "--out", out))
                    to, fit = best_of(a.repeats, lambda: pca(ld, variants=rows, n_pcs=10, method="exact"))
                    theirs = pd.read_csv(out.with_suffix(".eigenvec"), sep="\t")
                    r = min(abs(np.corrcoef(fit["pcs"][:, k], theirs[f"PC{k + 1}"])[0, 1]) for k in range(3))
                    print(f"{f'--pca 10 ({ld.n_samples} x {len(rows)})':44s} {threads:7d} {tp:9.2f} {to:8.2f} "
                          f"{tp / to:6.2f}  min |r| PC1-3 {r:.6f}", flush=True)
                if "approx" in cases:
                    out = d / f"approx{threads}"
                    tp, _ = best_of(a.repeats, lambda: plink2("--bfile", d / "wide", "--pca", "10", "approx",
                                                              "--threads", threads, "--out", out))
                    to, fit = best_of(a.repeats, lambda: pca(wide, variants=np.arange(wide.n_variants), n_pcs=10,
                                                             method="randomized"))
                    theirs = pd.read_csv(out.with_suffix(".eigenvec"), sep="\t")
                    r = min(abs(np.corrcoef(fit["pcs"][:, k], theirs[f"PC{k + 1}"])[0, 1]) for k in range(2))
                    print(f"{f'--pca 10 approx ({wide.n_samples} x {wide.n_variants})':44s} {threads:7d} "
                          f"{tp:9.2f} {to:8.2f} {tp / to:6.2f}  min |r| PC1-2 {r:.6f}, "
                          f"{fit['info']['iterations']} passes", flush=True)

if __name__ == "__main__":
    main()
