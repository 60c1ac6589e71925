"""How long building a cohort's report takes, and how big it is (issue target: < 30 s, < 15 MB).

No peer builds this report, so there is no ratio: the figures are checked against the targets.

    .venv/bin/python benchmarks/bench_report.py                        # the demo's results (make demo)
    .venv/bin/python benchmarks/bench_report.py --results results/demo --repeats 3
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cohortflow.report.api import build_report

TARGET_S, TARGET_BYTES = 30.0, 15_000_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/demo", help="a cohort's results folder")
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    results = Path(a.results)
    if not (results / "gwas").is_dir():
        print(f"{results}: no results (run `make demo` first)", file=sys.stderr)
        return 1
    config = yaml.safe_load(Path(a.config).read_text())
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            build_report(results_dir=results, cohort=results.name, out_html=out, config=config,
                         generated_at="2026-01-01 00:00 UTC")
            times.append(time.perf_counter() - t0)
        size = out.stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"report of {results}: best {min(times):.2f} s of {a.repeats} (first {times[0]:.2f} s), "
          f"{size / 1e6:.2f} MB, peak RSS {peak_mb:.0f} MB")
    print(f"targets: build < {TARGET_S:.0f} s ({min(times) / TARGET_S:.2f} of it), "
          f"size < {TARGET_BYTES / 1e6:.0f} MB ({size / TARGET_BYTES:.2f} of it)")
    return 0 if max(times) < TARGET_S and size < TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
