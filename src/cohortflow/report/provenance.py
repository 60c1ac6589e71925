"""Provenance: software versions, command line, resolved configuration, input checksums, runtimes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

import cohortflow
from cohortflow.report.model import (
    Cell,
    Column,
    Columns,
    KeyValues,
    Paragraph,
    Preformatted,
    Row,
    Section,
    Table,
    fmt_fixed,
    fmt_int,
    read_tsv,
    to_float,
)
from cohortflow.report.sections import Pseudonymiser

_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def dependency_versions(distribution: str = "cohortflow") -> list[tuple[str, str]]:
    """(name, installed version) of every runtime requirement of ``distribution``, sorted by name.

    Optional extras (``; extra == ...``) are skipped; a requirement that is not installed is
    reported as "not installed".
    """
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        requirements = []
    names = set()
    for req in requirements:
        if ";" in req and "extra" in req.split(";", 1)[1]:
            continue
        m = _REQ_NAME.match(req)
        if m:
            names.add(m.group(1))
    out = []
    for name in sorted(names, key=str.lower):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        out.append((name, version))
    return out


def file_sha256(path: Path, *, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def _input_files(inputs: Iterable[str]) -> list[tuple[str, Path | None]]:
    """(shown path, file or None when missing); a directory expands to its files, sorted."""
    out = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                out.append((str(sub), sub))
        else:
            out.append((str(item), path if path.is_file() else None))
    return out


def _benchmark_files(results_dir: Path, cohort: str) -> list[tuple[str, Path]]:
    """Snakemake benchmark files: ``{results}/{cohort}/benchmarks/**.tsv`` and, for a layout with
    one benchmark folder per results root, ``{results}/benchmarks/{cohort}/**.tsv``."""
    found: dict[str, Path] = {}
    for root in (results_dir / "benchmarks", results_dir.parent / "benchmarks" / cohort):
        if root.is_dir():
            for path in sorted(root.rglob("*.tsv")):
                if path.is_file():
                    found.setdefault(path.relative_to(root).with_suffix("").as_posix(), path)
    return sorted(found.items())


def benchmark_table(results_dir: Path, cohort: str, pseudonymiser: Pseudonymiser) -> Table | None:
    """Per-rule runtime and peak memory from Snakemake benchmark TSVs (mean over repeats)."""
    rows = []
    for name, path in _benchmark_files(results_dir, cohort):
        if name == "report":
            continue  # the report's own benchmark is written after it, so it could only be stale
        header, recs = read_tsv(path)
        if "s" not in header or not recs:
            continue

        def mean(column: str) -> float | None:
            values = [to_float(r.get(column)) for r in recs]
            values = [v for v in values if v is not None]
            return sum(values) / len(values) if values else None

        wall, rss, cpu = mean("s"), mean("max_rss"), mean("cpu_time")
        rows.append(
            Row(
                [
                    Cell(pseudonymiser.text(name)),
                    Cell(fmt_fixed(wall, decimals=2), wall),
                    Cell(fmt_fixed(cpu, decimals=2), cpu),
                    Cell(fmt_fixed(rss, decimals=1), rss),
                    Cell(str(len(recs)), float(len(recs))),
                ]
            )
        )
    if not rows:
        return None
    total = sum(r.cells[1].sort or 0.0 for r in rows)
    return Table(
        "tbl-benchmarks",
        [
            Column("Rule / job"),
            Column("Wall time (s)", numeric=True, title="s"),
            Column("CPU time (s)", numeric=True, title="cpu_time"),
            Column("Peak RSS (MB)", numeric=True, title="max_rss"),
            Column("Repeats", numeric=True),
        ],
        rows,
        caption=f"Runtime of each workflow job from its Snakemake benchmark file; total wall time {total:,.1f} s.",
    )


def provenance_section(
    *,
    results_dir: Path,
    cohort: str,
    config: Mapping[str, Any],
    inputs: Iterable[str],
    command_line: str,
    git_commit: str | None,
    generated_at: str,
    pseudonymiser: Pseudonymiser,
) -> Section:
    section = Section("provenance", "Provenance")
    run = (
        KeyValues(
            [
                ("Cohort", cohort),
                ("Report generated", generated_at),
                ("cohortflow version", cohortflow.__version__),
                ("Git commit", git_commit or "unknown (not run from a git checkout)"),
                ("Python", platform.python_version()),
                ("Command line", pseudonymiser.text(command_line) if command_line else "not recorded"),
            ],
            caption="Run.",
        )
    )
    deps = dependency_versions()
    if deps:
        table = Table(
            "tbl-dependencies",
            [Column("Package"), Column("Version")],
            [Row([Cell(n), Cell(v)]) for n, v in deps],
            caption="Installed versions of cohortflow's dependencies.",
        )
        section.blocks.append(Columns([run, table]))
    else:
        section.blocks.append(run)
    rows = []
    for shown, path in _input_files(inputs):
        if path is None:
            rows.append(Row([Cell(pseudonymiser.text(shown)), Cell("missing", -1.0), Cell("")], cls="row-fail"))
            continue
        size = path.stat().st_size
        cells = [Cell(pseudonymiser.text(shown)), Cell(fmt_int(size), float(size)), Cell(file_sha256(path), cls="mono")]
        rows.append(Row(cells))
    if rows:
        section.blocks.append(
            Table(
                "tbl-inputs",
                [Column("Input file"), Column("Size (bytes)", numeric=True), Column("SHA-256")],
                rows,
                caption="Input files of this cohort with their sizes and SHA-256 checksums.",
            )
        )
    bench = benchmark_table(results_dir, cohort, pseudonymiser)
    if bench is not None:
        section.blocks.append(bench)
    else:
        section.blocks.append(Paragraph("No Snakemake benchmark files were found for this cohort.", cls="muted"))
    dump = yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False, allow_unicode=True)
    section.blocks.append(Preformatted(pseudonymiser.text(dump), caption="Resolved configuration (YAML)."))
    return section


def _plain(obj: Any) -> Any:
    """The config as plain dicts/lists/scalars (Snakemake hands over its own mapping types)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
