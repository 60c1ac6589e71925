"""Alignment-file QC speed: `cohortflow alignment-qc` / `cohortflow depth` vs samtools stats + mosdepth.

    .venv/bin/python benchmarks/bench_alignment_qc.py                 # 5,000,000 pairs, 2 threads, best of 3
    .venv/bin/python benchmarks/bench_alignment_qc.py --pairs 200000 --repeats 1
    .venv/bin/python benchmarks/bench_alignment_qc.py --bam my.bam    # an existing indexed BAM

Input: a coordinate-sorted, indexed paired-end BAM from ``_bam_generator.py`` (seeded, cached in
benchmarks/out/cache/: 2 x 150 bp, human-like header at 1/16 of GRCh38 so ~7x depth, duplicates,
unmapped mates, secondary/supplementary/QC-fail reads, clips, indels, NM/MD tags).

Compared, all at ``--threads`` and as whole command lines (Python start-up included):
- whole QC: ``samtools stats -@ T`` then ``mosdepth -t T`` (one after the other; their summed time)
  vs ``cohortflow alignment-qc --per-base``; and the same with no per-base output
  (``mosdepth -n`` vs ``alignment-qc`` without ``--per-base``);
- depth alone: ``mosdepth -t T`` (per-base output, its default) vs ``cohortflow depth``, and
  ``mosdepth -n -t T`` vs ``cohortflow depth --no-per-base``.
Each repeat runs every command once, interleaved, so machine load hits both sides alike; the best
of ``--repeats`` is reported with the ratio peer / ours (above 1: we are faster). Our commands are
only run when this cohortflow has them (checked through ``--help``); otherwise only the peers are
timed and the table says so.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bam_generator import cached_bam  # noqa: E402

COHORTFLOW = [sys.executable, "-m", "cohortflow.cli"]


def help_text(*sub: str) -> str | None:
    """``cohortflow SUB --help`` output, or None when the subcommand does not exist."""
    r = subprocess.run([*COHORTFLOW, *sub, "--help"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def timed(cmd: list[str], stdout=subprocess.DEVNULL) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def same_file(a: Path, b: Path) -> bool | None:
    if not (a.exists() and b.exists()):
        return None
    if a.suffix == ".gz":
        with gzip.open(a, "rb") as fa, gzip.open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 22), fb.read(1 << 22)
                if x != y:
                    return False
                if not x:
                    return True
    return a.read_bytes() == b.read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5_000_000, help="read pairs of the generated BAM")
    ap.add_argument("--bam", type=Path, help="time this indexed BAM instead of a generated one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for tool in ("samtools", "mosdepth"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install samtools mosdepth libhts-dev)")
    T = str(args.threads)

    t0 = time.perf_counter()
    bam = args.bam or cached_bam(pairs=args.pairs, seed=args.seed, threads=args.threads)[0]
    prep = time.perf_counter() - t0
    size = bam.stat().st_size / 2**20
    qc_help = help_text("alignment-qc") or ""
    depth_help = help_text("depth")
    have_qc = "--per-base" in qc_help
    have_depth = depth_help is not None and "--no-per-base" in depth_help
    print(f"BAM: {bam} ({size:.0f} MB; ready in {prep:.1f} s); threads {T}; best of {args.repeats}; "
          f"cpu: {os.cpu_count()} cores")
    if not have_qc:
        print("cohortflow alignment-qc has no --per-base yet: timing the peers only for whole QC")
    if not have_depth:
        print("cohortflow depth (with --no-per-base) not available yet: timing the peers only for depth")

    with open(bam, "rb") as fh:  # page cache warm for everyone
        while fh.read(1 << 24):
            pass
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if have_qc or have_depth:  # compile / load the numba kernels outside the timings
            small = cached_bam(pairs=20_000, seed=args.seed, threads=args.threads)[0]
            if have_qc:
                timed([*COHORTFLOW, "alignment-qc", "--bam", str(small), "--threads", T, "--per-base",
                       "--out", str(d / "warm")])
            if have_depth:
                timed([*COHORTFLOW, "depth", "--bam", str(small), "--threads", T, "--out", str(d / "warm")])

        cmds = {
            "samtools stats": ["samtools", "stats", "-@", T, str(bam)],
            "mosdepth": ["mosdepth", "-t", T, str(d / "md"), str(bam)],
            "mosdepth -n": ["mosdepth", "-n", "-t", T, str(d / "mdn"), str(bam)],
        }
        if have_qc:
            cmds["alignment-qc --per-base"] = [*COHORTFLOW, "alignment-qc", "--bam", str(bam), "--threads", T,
                                               "--per-base", "--out", str(d / "qc")]
            cmds["alignment-qc"] = [*COHORTFLOW, "alignment-qc", "--bam", str(bam), "--threads", T,
                                    "--out", str(d / "qcn")]
        if have_depth:
            cmds["depth"] = [*COHORTFLOW, "depth", "--bam", str(bam), "--threads", T, "--out", str(d / "dp")]
            cmds["depth --no-per-base"] = [*COHORTFLOW, "depth", "--bam", str(bam), "--threads", T,
                                           "--no-per-base", "--out", str(d / "dpn")]
        runs: dict[str, list[float]] = {k: [] for k in cmds}
        for rep in range(args.repeats):
            for name, cmd in cmds.items():
                runs[name].append(timed(cmd))
            print(f"  repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in runs.items()), flush=True)
        best = {k: min(v) for k, v in runs.items()}
        # the pair run one after the other: best summed repeat
        pair = min(a + b for a, b in zip(runs["samtools stats"], runs["mosdepth"]))
        pair_n = min(a + b for a, b in zip(runs["samtools stats"], runs["mosdepth -n"]))

        rows = [
            ("whole QC, per-base depth", f"samtools stats -@ {T} + mosdepth -t {T}", pair,
             f"alignment-qc --threads {T} --per-base", best.get("alignment-qc --per-base")),
            ("whole QC, no per-base", f"samtools stats -@ {T} + mosdepth -n -t {T}", pair_n,
             f"alignment-qc --threads {T}", best.get("alignment-qc")),
            ("depth, per-base", f"mosdepth -t {T}", best["mosdepth"],
             f"depth --threads {T}", best.get("depth")),
            ("depth, no per-base", f"mosdepth -n -t {T}", best["mosdepth -n"],
             f"depth --threads {T} --no-per-base", best.get("depth --no-per-base")),
        ]
        print()
        print(f"samtools stats -@ {T} alone: {best['samtools stats']:.2f} s")
        print()
        print("| task | peer | peer time | cohortflow | cohortflow time | ratio (peer / ours) |")
        print("|---|---|---|---|---|---|")
        for task, peer, pt, ours, ot in rows:
            o = f"{ot:.2f} s" if ot else "not run"
            r = f"{pt / ot:.2f}x" if ot else "-"
            print(f"| {task} | `{peer}` | {pt:.2f} s | `cohortflow {ours}` | {o} | {r} |")

        checks = []
        for prefix in ("qc", "dp"):
            for suffix in (".mosdepth.summary.txt", ".mosdepth.global.dist.txt", ".per-base.bed.gz"):
                same = same_file(d / f"{prefix}{suffix}", d / f"md{suffix}")
                if same is not None:
                    checks.append(f"{prefix}{suffix} identical to mosdepth's: {same}")
        if checks:
            print()
            print("\n".join(checks))


if __name__ == "__main__":
    main()
