"""GWAS in shards: per chromosome, and per chunk of a big chromosome, gathered byte for byte.

The QC'd ``.bim`` is cut into shards of consecutive variants: one per chromosome (a run of the
same chromosome code in file order), and a chromosome with more than ``max_variants`` variants
into chunks of at most that many. Each shard is tested by :func:`cohortflow.gwas.api.run_gwas_pair`
with ``variant_range`` (same samples, covariates and null models as an unsharded run), and
:func:`gather_sumstats` concatenates the shards' GWAS-SSF text under one header through the same
compressor, so the gathered file and its ``-meta.yaml`` equal an unsharded run's byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from isal import igzip

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_open, write_table_atomic
from cohortflow.io.plink import read_bim_table
from cohortflow.io.sumstats import SumstatsWriter

PLAN_COLUMNS = ["shard", "chromosome", "start", "stop", "n_variants"]


def shard_plan(chromosomes, *, max_variants: int = 2_000_000) -> pd.DataFrame:
    """Shards of a variant list given its chromosome codes in file order: columns shard
    (``chr<code>``, or ``chr<code>_<k>`` for the k-th chunk of a split chromosome), chromosome,
    start, stop (0-based, stop exclusive), n_variants. A chromosome code that appears in two
    separate runs (an unsorted .bim) gets one shard per run (``..._r<n>`` from the second)."""
    if max_variants < 1:
        raise CohortflowError(f"max_variants={max_variants}: need at least 1")
    codes, names = pd.factorize(pd.Series(chromosomes, dtype=str))
    # runs of one chromosome code: boundaries where the code changes (vectorised: 10 M variants)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.empty(0, dtype=np.int64)
    stops = np.r_[starts[1:], len(codes)]
    rows, runs_seen = [], {}
    for start, stop in zip(starts.tolist(), stops.tolist()):
        code = str(names[codes[start]])
        runs_seen[code] = runs_seen.get(code, 0) + 1
        base = "chr" + re.sub(r"[^A-Za-z0-9_-]", "_", code)
        if runs_seen[code] > 1:
            base += f"_r{runs_seen[code]}"
        n_chunks = -(-(stop - start) // max_variants)
        for k in range(n_chunks):
            lo, hi = start + k * max_variants, min(stop, start + (k + 1) * max_variants)
            name = base if n_chunks == 1 else f"{base}_{k + 1}"
            rows.append((name, code, lo, hi, hi - lo))
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def write_shard_plan(*, bfile: str | Path, out: str | Path, max_variants: int = 2_000_000) -> pd.DataFrame:
    """:func:`shard_plan` of ``{bfile}.bim`` written as a TSV (atomically)."""
    bim = read_bim_table(f"{bfile}.bim")
    plan = shard_plan(bim.column("chrom").to_pandas(), max_variants=max_variants)
    write_table_atomic(out, plan)
    return plan


def read_shard_plan(path: str | Path) -> pd.DataFrame:
    plan = pd.read_csv(path, sep="\t", dtype={"shard": str, "chromosome": str})
    missing = set(PLAN_COLUMNS) - set(plan.columns)
    if missing:
        raise InputFormatError(f"missing column(s) {sorted(missing)}", path=path, record="line 1")
    return plan


def shard_range(plan_path: str | Path, shard: str) -> tuple[int, int]:
    """(start, stop) of ``shard`` in the plan at ``plan_path``."""
    plan = read_shard_plan(plan_path)
    row = plan.loc[plan["shard"] == shard]
    if row.empty:
        raise CohortflowError(f"no shard {shard!r} in the plan", path=plan_path)
    return int(row["start"].iloc[0]), int(row["stop"].iloc[0])


def _read_text(path: Path) -> bytes:
    if path.suffix == ".gz":
        with igzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def gather_sumstats(shards: list[str | Path], out: str | Path) -> None:
    """Concatenate shard GWAS-SSF files (in the given order) into ``out`` and their
    ``-meta.yaml`` sidecars into ``{out}-meta.yaml``: data_file_name becomes ``out``'s name,
    n_firth is summed, every other line must agree across shards."""
    if not shards:
        raise CohortflowError("no shard to gather", path=out)
    out = Path(out)
    meta = _combined_meta([Path(f"{p}-meta.yaml") for p in shards], out.name)   # checked before writing
    writer = SumstatsWriter(out)
    header = None
    try:
        for path in map(Path, shards):
            text = _read_text(path)
            first, _, body = text.partition(b"\n")
            if header is None:
                header = first
                writer.write_text(first + b"\n")
            elif first != header:
                raise InputFormatError("header differs from the first shard's", path=path, record="line 1")
            writer.write_text(body)
    except BaseException as exc:
        writer.abort(exc)
        raise
    writer.close()
    if meta is not None:
        with atomic_open(Path(f"{out}-meta.yaml")) as fh:
            fh.write(meta)


def gather_pair(*, shards: list[str | Path], out_with_pcs: str | Path, out_without_pcs: str | Path) -> None:
    """The workflow's gather: ``shards`` lists each shard's ``.tsv.gz`` and ``.nopcs.tsv.gz``
    (in plan order; other files, e.g. their sidecars, are ignored); the two series are gathered
    into the two outputs, with their ``-meta.yaml``."""
    files = [p for p in map(str, shards) if p.endswith(".tsv.gz")]     # their -meta.yaml sidecars are read beside them
    with_pcs = [p for p in files if not p.endswith(".nopcs.tsv.gz")]
    without_pcs = [p for p in files if p.endswith(".nopcs.tsv.gz")]
    gather_sumstats(with_pcs, out_with_pcs)
    gather_sumstats(without_pcs, out_without_pcs)


def _combined_meta(metas: list[Path], data_file_name: str) -> str | None:
    present = [m.exists() for m in metas]
    if not any(present):
        return None
    if not all(present):
        raise InputFormatError("shard without its -meta.yaml sidecar", path=metas[present.index(False)])
    combined: list[list[str]] | None = None
    for meta in metas:
        lines = [line.split(":", 1) for line in meta.read_text(encoding="utf-8").splitlines() if ":" in line]
        if combined is None:
            combined = [[k, v] for k, v in lines]
            continue
        if [k for k, _ in lines] != [k for k, _ in combined]:
            raise InputFormatError("keys differ from the first shard's", path=meta)
        for entry, (key, value) in zip(combined, lines):
            if key == "n_firth":
                entry[1] = f" {int(entry[1]) + int(value)}"
            elif key != "data_file_name" and value != entry[1]:
                raise InputFormatError(f"{key} differs from the first shard's ({value.strip()} vs "
                                       f"{entry[1].strip()})", path=meta)
    return "".join(f"{key}: {data_file_name}\n" if key == "data_file_name" else f"{key}:{value}\n"
                   for key, value in combined or [])
