"""Manhattan and QQ plot speed for a genome-wide number of points, with the null mass thinned.

    .venv/bin/python benchmarks/bench_plots.py --points 10000000

Simulates ``--points`` variants over 22 chromosomes (uniform null p-values plus a few hundred
planted hits), then times manhattan_plot and qq_plot (PNG written) and prints seconds and how
many points each drew. Building the DataFrame is not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.gwas.plots import manhattan_plot, qq_plot
from cohortflow.gwas.summary import lambda_gc


def simulate(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    chrom = np.sort(rng.integers(1, 23, n))
    pos = rng.integers(1, 250_000_000, n)
    nl10 = -np.log10(rng.random(n))
    hits = rng.choice(n, 300, replace=False)
    nl10[hits] = rng.uniform(6, 60, hits.size)
    return pd.DataFrame({"chromosome": chrom.astype(str), "base_pair_location": pos, "neg_log10_p": nl10})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000_000)
    args = ap.parse_args()
    df = simulate(args.points)
    leads = df.nlargest(10, "neg_log10_p").assign(nearest_gene="GENE")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # warm-up on a small table (matplotlib font cache, imports)
        manhattan_plot(df.iloc[:1000], leads=leads.iloc[:0], out=out / "w.png", title="w", p_threshold=5e-8)
        t0 = time.perf_counter()
        man = manhattan_plot(df, leads=leads, out=out / "m.png", title="bench", p_threshold=5e-8)
        t1 = time.perf_counter()
        nl = df["neg_log10_p"].to_numpy()
        lam = lambda_gc(nl)
        qq = qq_plot([(f"λGC = {lam:.3f}", nl)], out=out / "q.png", title="bench")
        t2 = time.perf_counter()
    print(f"points: {args.points:,}")
    print(f"manhattan_plot: {t1 - t0:.2f} s, {len(man['drawn']):,} points drawn")
    print(f"lambda_gc + qq_plot: {t2 - t1:.2f} s, {sum(qq.values()):,} points drawn")


if __name__ == "__main__":
    main()
