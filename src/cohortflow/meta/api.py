"""Meta-analysis of several cohorts' GWAS (GWAS-SSF summary statistics).

:func:`meta_analyse` aligns the cohorts' alleles (:mod:`cohortflow.meta.align`), combines them by
inverse-variance fixed effects and DerSimonian-Laird random effects (:mod:`cohortflow.meta.kernels`)
and writes the result as GWAS-SSF plus meta-analysis columns, with lead loci (distance-based, as
the GWAS summary does without genotypes), a summary JSON and Manhattan, QQ and forest plots.
:func:`meta_analyse_bundles` does it per trait for export bundles (``BUNDLE.tar.gz`` holding
``gwas/<trait>.tsv.gz``).
"""

from __future__ import annotations

import io
import logging
import math
import re
import shutil
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.gwas.api import read_gwas_meta
from cohortflow.gwas.plots import manhattan_plot, qq_plot
from cohortflow.gwas.summary import lambda_gc, lead_loci, nearest_genes
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.sumstats import SSF_COLUMNS, SumstatsWriter, format_p_text, format_p_values, format_significant, \
    read_sumstats
from cohortflow.meta.align import Alignment, align_cohorts, cohort_table
from cohortflow.meta.kernels import meta_statistics
from cohortflow.meta.plots import forest_plot
from cohortflow.threads import thread_limit

log = logging.getLogger(__name__)

META_COLUMNS = ["beta_random", "standard_error_random", "p_value_random", "q", "q_p_value", "i2", "tau2",
                "n_cohorts", "direction"]
OUTPUT_COLUMNS = SSF_COLUMNS + META_COLUMNS
LEAD_COLUMNS = ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                "standard_error", "p_value", "beta_random", "standard_error_random", "p_value_random", "q_p_value",
                "i2", "n_cohorts", "direction", "nearest_gene", "gene_distance"]
MODEL = "meta-analysis: fixed effects (inverse variance) and random effects (DerSimonian-Laird)"
# rows formatted per block of the output (bounded memory; the bytes do not depend on it)
BLOCK_ROWS = 1 << 20
# heterogeneity counted in the summary below this Cochran's Q p-value
HETEROGENEITY_P = 0.05


def output_paths(out: str | Path) -> dict[str, Path]:
    """The files :func:`meta_analyse` writes for the prefix ``out`` (a trailing .tsv.gz is
    dropped): sumstats, meta (sidecar), leads, summary, manhattan, qq, forest."""
    prefix = re.sub(r"\.tsv\.gz$", "", str(out))
    return {"sumstats": Path(f"{prefix}.tsv.gz"), "meta": Path(f"{prefix}.tsv.gz-meta.yaml"),
            "leads": Path(f"{prefix}.leads.tsv"), "summary": Path(f"{prefix}.summary.json"),
            "manhattan": Path(f"{prefix}.manhattan.png"), "qq": Path(f"{prefix}.qq.png"),
            "forest": Path(f"{prefix}.forest.png")}


def _default_names(paths: Sequence[Path]) -> list[str]:
    stems = [re.sub(r"\.(tsv|txt)(\.gz)?$", "", p.name) for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    parents = [p.parent.name for p in paths]
    if all(parents) and len(set(parents)) == len(parents):
        return parents
    return [f"cohort{i + 1}" for i in range(len(paths))]


def _int_text(values: np.ndarray) -> pa.Array:
    v = np.asarray(values, dtype=float)
    arr = pa.array(np.nan_to_num(v, nan=0.0).astype(np.int64), mask=np.isnan(v))
    return pc.fill_null(pc.cast(arr, pa.string()), "NA")


def _block_text(al: Alignment, st: dict, direction: pa.Array, start: int, stop: int) -> bytes:
    """The output rows start..stop-1 as tab-separated text."""
    sl, m = slice(start, stop), stop - start
    cols = [
        al.chromosome.slice(start, m), pa.array(al.position[sl]), al.effect_allele.slice(start, m),
        al.other_allele.slice(start, m), format_significant(st["beta"][sl]),
        format_significant(st["standard_error"][sl]), format_significant(st["effect_allele_frequency"][sl]),
        format_p_text(st["log10_p"][sl]), _int_text(st["n"][sl]), al.variant_id.slice(start, m),
        format_significant(st["z"][sl]), pa.nulls(m, pa.string()).fill_null(""),
        format_significant(st["beta_random"][sl]), format_significant(st["standard_error_random"][sl]),
        format_p_text(st["log10_p_random"][sl]), format_significant(st["q"][sl]), format_p_text(st["log10_q_p"][sl]),
        format_significant(st["i2"][sl]), format_significant(st["tau2"][sl]), pa.array(st["n_cohorts"][sl]),
        direction.slice(start, m),
    ]
    buf = io.BytesIO()
    pacsv.write_csv(pa.table(cols, names=OUTPUT_COLUMNS), buf,
                    pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"))
    return buf.getvalue()


def _write_table(path: Path, al: Alignment, st: dict, *, block_rows: int = BLOCK_ROWS, threads: int = 1) -> None:
    """GWAS-SSF columns then the meta columns, tab-separated, gzip (ISA-L, mtime 0). Blocks of
    rows are formatted by ``threads`` threads (Arrow releases the GIL) and written in order, so
    the bytes do not depend on the thread count."""
    m = len(al.position)
    k = len(al.names)
    direction = pa.array(np.ascontiguousarray(st["direction"]).view(f"S{k}").ravel()).cast(pa.string())
    writer = SumstatsWriter(path)
    pool = ThreadPoolExecutor(max_workers=max(1, threads))
    try:
        writer.write_text(("\t".join(OUTPUT_COLUMNS) + "\n").encode())
        pending: deque = deque()
        for start in range(0, m, block_rows):
            pending.append(pool.submit(_block_text, al, st, direction, start, min(start + block_rows, m)))
            while len(pending) > 2 * max(1, threads):
                writer.write_text(pending.popleft().result())
        while pending:
            writer.write_text(pending.popleft().result())
    except BaseException as exc:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.abort(exc)
        raise
    pool.shutdown(wait=True)
    writer.close()


def _sample_size(path: Path, table: pd.DataFrame) -> int:
    meta = read_gwas_meta(path)
    try:
        return int(meta["sample_size"])
    except (KeyError, ValueError):
        n = pd.to_numeric(table["n"], errors="coerce")
        return int(n.max()) if n.notna().any() else 0


def _p_text(log10_p: float) -> str:
    return str(format_p_values(np.array([log10_p]))[0])


def meta_analyse(*, sumstats: Sequence[str | Path], out: str | Path, names: Sequence[str] | None = None,
                 trait: str | None = None, p_threshold: float = 5e-8, locus_window_kb: float = 250,
                 palindromic_margin: float = 0.1, keep_palindromic: bool = False,
                 genes_gtf: str | Path | None = None, max_forest: int = 12, threads: int = 1) -> dict:
    """Meta-analyse the GWAS-SSF files ``sumstats`` (one per cohort, named ``names``; default:
    the file names without .tsv.gz, else their folders' names) into the prefix ``out``.

    Alleles are aligned to the first cohort that has each variant (swaps, strand flips;
    palindromic SNPs by frequency, ``palindromic_margin``; see :mod:`cohortflow.meta.align`).
    Every variant of any cohort is written, with the number of cohorts that have it. Writes:

    - ``OUT.tsv.gz``: GWAS-SSF columns (chromosome, base_pair_location, effect_allele,
      other_allele, beta and standard_error (fixed effects), effect_allele_frequency (weighted by
      the cohorts' n), p_value, n (summed), variant_id, test_statistic (fixed-effects z),
      errcode (empty)) then beta_random, standard_error_random, p_value_random
      (DerSimonian-Laird), q (Cochran's Q), q_p_value, i2 (fraction, max(0, (Q - df) / Q)),
      tau2, n_cohorts, direction (one character per cohort in ``names`` order: + - 0, ?
      absent). q, q_p_value and i2 are NA for variants of one cohort. Genomic order (natural
      chromosome order, then position). p-values below 1e-300 are written from log space;
    - ``OUT.tsv.gz-meta.yaml``: data_file_name, file_type, trait_description, model, cohorts,
      sample_size (sum of the cohorts' sidecar sample sizes, else their largest n),
      analysis_software;
    - ``OUT.leads.tsv``: distance-based lead loci of the fixed-effects p (most significant
      variant below ``p_threshold``, nothing else within ``locus_window_kb``, repeated; as
      :func:`cohortflow.gwas.summary.lead_loci`), columns :data:`LEAD_COLUMNS`, most significant
      first (nearest_gene, gene_distance from ``genes_gtf``; empty without);
    - ``OUT.summary.json``: trait, cohorts, alignment (per cohort: rows, used, reference /
      match / swapped / flipped / flipped_swapped, dropped by reason, eaf discrepancies,
      differing variant IDs), palindromic rule, n_variants, n_variants_by_n_cohorts,
      lambda_gc (fixed) and lambda_gc_random, n_significant (fixed) and n_significant_random,
      n_heterogeneous (q_p_value < 0.05), n_loci, p_threshold, locus_window_kb, lead_method
      ("distance"), sample_size, n_forest_plots, top_hit;
    - ``OUT.manhattan.png``, ``OUT.qq.png`` (fixed and random effects), ``OUT.forest.png`` (the
      first ``max_forest`` leads: each cohort's beta +- 1.96 SE, fixed and random summaries).

    Same inputs give the same bytes. Returns the summary dict.
    """
    paths = [Path(p) for p in sumstats]
    if len(paths) < 2:
        raise CohortflowError(f"a meta-analysis needs at least 2 cohorts' summary statistics, got {len(paths)}")
    names = list(names) if names is not None else _default_names(paths)
    if len(names) != len(paths):
        raise CohortflowError(f"{len(names)} names for {len(paths)} summary statistics files")
    if len(set(names)) != len(names):
        raise CohortflowError(f"cohort names must be distinct: {', '.join(names)}")
    if any(not re.fullmatch(r"[^\t\n\r]+", n) for n in names):
        raise CohortflowError("cohort names must be non-empty and without tabs or newlines")
    outs = output_paths(out)
    trait = trait or outs["sumstats"].name.removesuffix(".tsv.gz")

    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        log.info("%s: %.2f s", what, now - clock)
        clock = now

    with thread_limit(threads):
        tables, sizes, models = [], [], []
        for name, path in zip(names, paths):
            df = read_sumstats(path)
            tables.append(cohort_table(df, name=name, source=path))
            sizes.append(_sample_size(path, df))
            models.append(read_gwas_meta(path).get("model", ""))
            del df
            lap(f"read {path}")
        al = align_cohorts(tables, palindromic_margin=palindromic_margin, keep_palindromic=keep_palindromic)
        del tables
        lap(f"aligned {len(names)} cohorts: {len(al.position)} variants")
        st = meta_statistics(al.beta, al.se, al.eaf, al.n)
        lap("fixed and random effects, heterogeneity")
        _write_table(outs["sumstats"], al, st, threads=threads)
        lap(f"wrote {outs['sumstats']}")

    with atomic_open(outs["meta"]) as fh:
        fh.write(f"data_file_name: {outs['sumstats'].name}\nfile_type: GWAS-SSF v1.0\ntrait_description: {trait}\n"
                 f"model: {MODEL}\ncohorts: {', '.join(names)}\n")
        if any(models):
            fh.write("cohort_models: " + ", ".join(f"{n}={m or 'unknown'}" for n, m in zip(names, models)) + "\n")
        fh.write(f"sample_size: {sum(sizes)}\nanalysis_software: cohortflow\n")

    nl10 = -st["log10_p"]
    nl10_r = -st["log10_p_random"]
    tested = pd.DataFrame({
        "chromosome": al.chromosome.dictionary_encode().to_pandas(), "base_pair_location": al.position,
        "neg_log10_p": nl10, "errcode": "",
    })
    leads = lead_loci(tested, p_threshold=p_threshold, window_kb=locus_window_kb)
    idx = leads.index.to_numpy()
    if genes_gtf is not None and len(idx):
        from cohortflow.io.gtf import read_gtf_genes

        genes = read_gtf_genes(genes_gtf)
        gene_names, dists = nearest_genes(leads, genes)
    else:
        gene_names, dists = [""] * len(idx), [float("nan")] * len(idx)

    def pick(arr):
        return arr.take(pa.array(idx)).to_pylist() if isinstance(arr, pa.Array) else arr[idx]

    lead_table = pd.DataFrame({
        "variant_id": pick(al.variant_id), "chromosome": pick(al.chromosome),
        "base_pair_location": al.position[idx], "effect_allele": pick(al.effect_allele),
        "other_allele": pick(al.other_allele),
        "beta": format_significant(st["beta"][idx]).to_pylist(),
        "standard_error": format_significant(st["standard_error"][idx]).to_pylist(),
        "p_value": format_p_text(st["log10_p"][idx]).to_pylist(),
        "beta_random": format_significant(st["beta_random"][idx]).to_pylist(),
        "standard_error_random": format_significant(st["standard_error_random"][idx]).to_pylist(),
        "p_value_random": format_p_text(st["log10_p_random"][idx]).to_pylist(),
        "q_p_value": format_p_text(st["log10_q_p"][idx]).to_pylist(),
        "i2": format_significant(st["i2"][idx]).to_pylist(),
        "n_cohorts": st["n_cohorts"][idx],
        "direction": [bytes(r).decode() for r in st["direction"][idx]],
        "nearest_gene": gene_names, "gene_distance": ["" if d != d else str(int(d)) for d in dists],
    }, columns=LEAD_COLUMNS)
    with atomic_open(outs["leads"]) as fh:
        fh.write(lead_table.to_csv(sep="\t", index=False, lineterminator="\n"))

    panels = []
    for j in idx[:max_forest]:
        i2 = st["i2"][j]
        note = f"p = {_p_text(st['log10_p'][j])}" + ("" if i2 != i2 else f", I2 = {i2:.2f}")
        panels.append({"label": al.variant_id[int(j)].as_py(), "beta": al.beta[:, j], "se": al.se[:, j],
                       "beta_fixed": st["beta"][j], "se_fixed": st["standard_error"][j],
                       "beta_random": st["beta_random"][j], "se_random": st["standard_error_random"][j],
                       "note": note})
    n_forest = forest_plot(panels, names=names, out=outs["forest"], title=f"{trait}: lead variants")

    ok = np.isfinite(nl10)
    lam = lambda_gc(nl10[ok])
    lam_r = lambda_gc(nl10_r[np.isfinite(nl10_r)])
    top_hit = None
    if ok.any():
        j = int(np.argmax(np.where(ok, nl10, -np.inf)))
        top_hit = {"variant_id": al.variant_id[j].as_py(), "chromosome": al.chromosome[j].as_py(),
                   "base_pair_location": int(al.position[j]), "effect_allele": al.effect_allele[j].as_py(),
                   "beta": float(st["beta"][j]), "standard_error": float(st["standard_error"][j]),
                   "p_value": _p_text(st["log10_p"][j]), "n_cohorts": int(st["n_cohorts"][j]),
                   "direction": bytes(st["direction"][j]).decode()}
    threshold = -math.log10(p_threshold)
    by_k = np.bincount(st["n_cohorts"], minlength=len(names) + 1)
    with np.errstate(invalid="ignore"):
        n_het = int((st["log10_q_p"] < math.log10(HETEROGENEITY_P)).sum())
    summary = {
        "trait": trait, "cohorts": names, "model": MODEL, "alignment": al.counts,
        "palindromic": {"margin": palindromic_margin, "keep": keep_palindromic,
                        "rule": "kept when |eaf - 0.5| > margin in the cohort and the reference; "
                                "the effect allele is the reference's when both lie on the same side of 0.5"},
        "n_variants": int(len(al.position)),
        "n_variants_by_n_cohorts": {str(k): int(by_k[k]) for k in range(1, len(names) + 1)},
        "lambda_gc": _round(lam), "lambda_gc_random": _round(lam_r),
        "n_significant": int((nl10 > threshold).sum()), "n_significant_random": int((nl10_r > threshold).sum()),
        "n_heterogeneous": n_het, "heterogeneity_p": HETEROGENEITY_P, "n_loci": int(len(idx)),
        "p_threshold": p_threshold, "locus_window_kb": locus_window_kb, "lead_method": "distance",
        "sample_size": int(sum(sizes)), "n_forest_plots": n_forest, "top_hit": top_hit,
    }
    write_json_atomic(outs["summary"], summary)

    lead_plot = pd.DataFrame({"chromosome": pick(al.chromosome), "base_pair_location": al.position[idx],
                              "neg_log10_p": nl10[idx], "nearest_gene": gene_names})
    manhattan_plot(tested, leads=lead_plot, out=outs["manhattan"],
                   title=f"{trait}: meta-analysis of {len(names)} cohorts (fixed effects)", p_threshold=p_threshold)
    qq_plot([(f"fixed effects, λGC = {lam:.3f}", nl10[ok]),
             (f"random effects, λGC = {lam_r:.3f}", nl10_r[np.isfinite(nl10_r)])], out=outs["qq"], title=trait)
    lap("leads, summary and plots")
    return summary


def _round(x: float) -> float | None:
    return None if x != x else round(float(x), 6)


# ----------------------------------------------------------------------------- export bundles

_GWAS_MEMBER = re.compile(r"^(?:\./)?(?:[^/]+/)?gwas/([A-Za-z0-9_.-]+)\.tsv\.gz$")


def bundle_traits(bundle: str | Path) -> dict[str, str]:
    """{trait: tar member name} of the GWAS summary statistics in an export bundle: members
    ``gwas/<trait>.tsv.gz`` (also under one top folder; ``.nopcs`` files are not traits)."""
    bundle = Path(bundle)
    try:
        with tarfile.open(bundle, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
    except (OSError, tarfile.TarError) as exc:
        raise InputFormatError(f"cannot read the bundle ({exc})", path=bundle) from None
    out = {}
    for m in members:
        hit = _GWAS_MEMBER.match(m.name)
        if hit and not hit.group(1).endswith(".nopcs"):
            out.setdefault(hit.group(1), m.name)
    return out


def _bundle_name(bundle: Path) -> str:
    """The cohort a bundle is from: manifest.json's ``cohort`` (or ``name``/``id``) when present,
    else the file name without .tar.gz."""
    import json

    try:
        with tarfile.open(bundle, "r:*") as tar:
            for m in tar.getmembers():
                if m.isfile() and re.fullmatch(r"(?:\./)?(?:[^/]+/)?manifest\.json", m.name):
                    data = json.load(tar.extractfile(m))
                    for key in ("cohort", "name", "id"):
                        value = data.get(key) if isinstance(data, dict) else None
                        if isinstance(value, str) and value.strip():
                            return value.strip()
                    break
    except (OSError, tarfile.TarError, ValueError):
        pass
    return re.sub(r"\.(tar\.gz|tgz|tar)$", "", bundle.name)


def _extract(bundle: Path, member: str, dest: Path) -> None:
    with tarfile.open(bundle, "r:*") as tar:
        src = tar.extractfile(member)
        if src is None:
            raise InputFormatError(f"member {member} is not a file", path=bundle)
        with open(dest, "wb") as fh:
            shutil.copyfileobj(src, fh)
        try:
            side = tar.extractfile(f"{member}-meta.yaml")
        except KeyError:
            side = None
        if side is not None:
            with open(f"{dest}-meta.yaml", "wb") as fh:
                shutil.copyfileobj(side, fh)


def meta_analyse_bundles(*, bundles: Sequence[str | Path], out: str | Path, trait: str | None = None,
                         names: Sequence[str] | None = None, **kwargs) -> dict[str, dict]:
    """Meta-analyse each trait whose ``gwas/<trait>.tsv.gz`` is in every bundle (or only
    ``trait``). Cohort names: ``names``, else each bundle's manifest ``cohort`` field, else its
    file name. With ``trait`` the outputs are ``OUT.*``; without, ``OUT.<trait>.*`` per trait
    (:func:`meta_analyse`'s files). Returns {trait: summary}."""
    bundles = [Path(b) for b in bundles]
    per_bundle = [bundle_traits(b) for b in bundles]
    common = sorted(set.intersection(*(set(t) for t in per_bundle))) if per_bundle else []
    if trait is not None:
        missing = [str(b) for b, t in zip(bundles, per_bundle) if trait not in t]
        if missing:
            raise InputFormatError(f"no gwas/{trait}.tsv.gz in the bundle", path=missing[0])
        chosen = [trait]
    else:
        chosen = common
        if not chosen:
            raise CohortflowError("no trait's gwas/<trait>.tsv.gz is in every bundle")
    if names is None:
        names = [_bundle_name(b) for b in bundles]
        if len(set(names)) != len(names):
            names = _default_names(bundles)
    results = {}
    with tempfile.TemporaryDirectory(prefix="cohortflow-meta-") as tmp:
        for t in chosen:
            files = []
            for i, (b, members) in enumerate(zip(bundles, per_bundle)):
                dest = Path(tmp) / f"{i}.{t}.tsv.gz"
                _extract(b, members[t], dest)
                files.append(dest)
            prefix = re.sub(r"\.tsv\.gz$", "", str(out)) if trait is not None else f"{out}.{t}"
            results[t] = meta_analyse(sumstats=files, names=names, out=prefix, trait=t, **kwargs)
            for f in files:
                f.unlink()
                Path(f"{f}-meta.yaml").unlink(missing_ok=True)
    return results
