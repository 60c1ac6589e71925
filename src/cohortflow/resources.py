"""Job resources from input sizes: what each rule asks the scheduler for, growing with the attempt.

Every rule's ``mem_mb`` and ``runtime`` (minutes) come from one linear model of the size of its
inputs, because the inputs' bytes track the data's dimensions: a PLINK ``.bed`` holds
samples x variants / 4 bytes, a genotype VCF grows with samples x variants, an ``.h5ad`` with the
non-zero cells x genes values, a BAM with the reads. For rule ``r`` with inputs of ``S`` MB,

    mem_mb(attempt)  = ceil((mem_base[r] + mem_per_input_mb[r] * S) * 2 ** (attempt - 1))
    runtime(attempt) = ceil((min_base[r] + min_per_input_gb[r] * S / 1024) * attempt)

so a job killed for memory or time is resubmitted (``retries``) with twice the memory and more
time. The coefficients in :data:`RULE_MODELS` are upper envelopes of the peak RSS and wall time
measured on the demo and the scale benchmarks (docs/resources.md) with a safety margin. Config
``resources.mem_mb`` / ``resources.runtime`` set a rule's first-attempt value instead (growth
unchanged) for sites whose data do not fit the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from cohortflow.errors import ConfigError


class ResourceModel(NamedTuple):
    mem_base: float          # MB: interpreter, libraries, fixed buffers
    mem_per_input_mb: float  # MB of memory per MB of input
    min_base: float          # minutes
    min_per_input_gb: float  # minutes per GB of input


# Peak RSS of our jobs is the Python + numpy/numba baseline (~250-400 MB) plus what the rule holds
# in memory. Streaming rules (ingest, alignment QC, scoring) hold a bounded window; rules that
# load the genotype matrix or an expression matrix hold a multiple of its on-disk size.
RULE_MODELS: dict[str, ResourceModel] = {
    # demo data simulation (fixed size, set by config)
    "demo_genotypes": ResourceModel(4000, 0, 20, 0),
    "demo_reads": ResourceModel(2000, 0, 10, 0),
    "demo_alignment_targets": ResourceModel(1000, 0, 5, 0),
    "demo_alignment_truth": ResourceModel(500, 0, 5, 0),
    "demo_expression": ResourceModel(4000, 0, 10, 0),
    "demo_pgs": ResourceModel(1000, 0, 5, 0),
    # alignment QC: streams the BAM/CRAM (bounded buffers); time ~ reads
    "alignment_sites": ResourceModel(1000, 0.5, 10, 2),
    "alignment_qc": ResourceModel(1500, 0.05, 10, 6),
    "alignment_qc_summary": ResourceModel(1000, 0.5, 10, 2),
    # genotypes: ingestion streams a VCF shard; QC/PCA/relatedness hold the packed .bed
    "ingest_shard": ResourceModel(1000, 0.2, 10, 10),
    "merge_shards": ResourceModel(1000, 0.1, 10, 4),
    "raw_shards": ResourceModel(1000, 1, 5, 2),
    "qc_stats_shard": ResourceModel(1500, 0.2, 10, 20),    # streams its shard's rows
    "qc_filter_shard": ResourceModel(1500, 0.3, 10, 20),   # + every shard's statistics (per-variant arrays)
    "genotype_qc": ResourceModel(1500, 0.5, 10, 10),       # concatenates the kept rows, writes the tables
    "relatedness_masks": ResourceModel(1500, 0.2, 10, 20),   # two statistics passes, streamed
    # bit planes of <= 2 groups x KING variants: sized by king_part_size, not the input's bytes
    "relatedness_part": ResourceModel(1500, 1.5, 15, 0),
    "relatedness": ResourceModel(1000, 0, 10, 0),            # gathers the related pairs (the .fam is its input)
    "genotype_pca": ResourceModel(1500, 3, 15, 30),
    "genotype_shards": ResourceModel(1000, 1, 5, 2),
    # association: the .bed of one shard plus per-chunk dosages
    "gwas_covariates": ResourceModel(500, 1, 5, 1),
    "gwas_shard": ResourceModel(1500, 2, 20, 60),
    "gwas": ResourceModel(1000, 0.2, 10, 10),        # gathers the shards (streams their text)
    "gwas_summary": ResourceModel(2000, 3, 10, 10),
    # meta-analysis: each cohort's GWAS-SSF read in turn, all aligned in memory (10 M variants x 3
    # cohorts, 980 MB of gzip: peak RSS 10.8 GB, 155 s)
    "meta_analysis": ResourceModel(2000, 12, 10, 20),
    # polygenic scores
    "prs_split": ResourceModel(1000, 0.5, 5, 2),
    "prs_discovery_gwas": ResourceModel(1500, 2, 20, 60),
    "prs_ct": ResourceModel(2000, 2, 20, 30),
    "prs_bayes": ResourceModel(2000, 3, 30, 60),
    "prs_evaluate": ResourceModel(1000, 1, 10, 5),
    "pgs_match": ResourceModel(1500, 3, 10, 10),       # scoring files parsed and matched in memory
    "pgs_score_shard": ResourceModel(1500, 0.5, 10, 20),
    "pgs_score": ResourceModel(1000, 1, 10, 5),         # adds the shards' sums
    # single cell / spatial: the expression matrix in memory several times (X, layers, PCA)
    "singlecell": ResourceModel(3000, 8, 30, 60),
    "spatial": ResourceModel(2000, 6, 20, 30),
    "integration": ResourceModel(3000, 6, 30, 60),
    "integration_spatial": ResourceModel(2000, 6, 20, 30),
    "cell_eqtl": ResourceModel(2000, 4, 20, 30),
    # report
    "truth_check": ResourceModel(1000, 0.5, 10, 2),
    "report": ResourceModel(1000, 0.2, 10, 2),
    "cohort_index": ResourceModel(1000, 0.1, 10, 2),
    # export bundle: streams the summary statistics, rebuilds the report, reads the bundle back
    "export": ResourceModel(1000, 0.2, 10, 4),
}
DEFAULT_MODEL = ResourceModel(2000, 1, 30, 30)


def _model(rule: str) -> ResourceModel:
    return RULE_MODELS.get(rule, DEFAULT_MODEL)


def _first_attempt(value: float, rule: str, overrides: Mapping[str, float] | None, what: str) -> float:
    if overrides and rule in overrides:
        override = overrides[rule]
        if isinstance(override, bool) or not isinstance(override, (int, float)) or override <= 0:
            raise ConfigError(f"resources.{what}.{rule} must be a positive number, got {override!r}")
        return float(override)
    return value


def _check(input_mb: float, attempt: int) -> float:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be a positive integer, got {attempt!r}")
    size = float(input_mb or 0.0)
    if not math.isfinite(size) or size < 0:
        raise ValueError(f"input size must be a finite non-negative number of MB, got {input_mb!r}")
    return size


def job_mem_mb(rule: str, input_mb: float, attempt: int = 1, *, overrides: Mapping[str, float] | None = None) -> int:
    """Memory (MB) for ``rule`` with ``input_mb`` MB of input on try ``attempt`` (1, 2, ...)."""
    size = _check(input_mb, attempt)
    m = _model(rule)
    first = _first_attempt(m.mem_base + m.mem_per_input_mb * size, rule, overrides, "mem_mb")
    return int(math.ceil(first * 2 ** (attempt - 1)))


# KING pair comparisons (pairs x variants) per second that a relatedness_part job's runtime
# assumes: a quarter of the 1.3e11 measured with 2 threads (docs/benchmarks.md, "Scale").
KING_COMPARISONS_PER_S = 3e10


def king_part_size(masks, part: str, n_parts: int) -> tuple[float, float]:
    """(MB of bit planes, pair x variant comparisons) of one ``relatedness_part`` job: from its
    masks file (``samples``, ``variants``: what KING compares) and its part ``p.q`` of
    ``n_parts`` sample groups (cohortflow.variants.relatedness.king_related)."""
    import numpy as np

    with np.load(masks) as z:
        n, m = int(z["samples"].sum()), int(z["variants"].sum())
    p, q = (int(x) for x in str(part).split("."))
    cut = [k * n // n_parts for k in range(n_parts + 1)]
    n_p, n_q = cut[p + 1] - cut[p], cut[q + 1] - cut[q]
    held = n_p if p == q else n_p + n_q
    pairs = n_p * (n_p - 1) // 2 if p == q else n_p * n_q
    # 4 planes x 32 words x 8 bytes per sample and 2,048 variants
    return held * math.ceil(m / 2048) * 1024 / 2**20, float(pairs) * m


def king_part_mem_mb(masks, part: str, n_parts: int, attempt: int = 1, *,
                     overrides: Mapping[str, float] | None = None) -> int:
    """``relatedness_part``'s memory: the model of :data:`RULE_MODELS` on its bit planes' MB."""
    return job_mem_mb("relatedness_part", king_part_size(masks, part, n_parts)[0], attempt, overrides=overrides)


def king_part_runtime_min(masks, part: str, n_parts: int, attempt: int = 1, *,
                          overrides: Mapping[str, float] | None = None) -> int:
    """``relatedness_part``'s time: base minutes + its comparisons at :data:`KING_COMPARISONS_PER_S`."""
    _check(0, attempt)
    m = _model("relatedness_part")
    first = _first_attempt(m.min_base + king_part_size(masks, part, n_parts)[1] / KING_COMPARISONS_PER_S / 60,
                           "relatedness_part", overrides, "runtime")
    return int(math.ceil(first * attempt))


def job_runtime_min(rule: str, input_mb: float, attempt: int = 1, *,
                    overrides: Mapping[str, float] | None = None) -> int:
    """Wall-time limit (minutes) for ``rule`` with ``input_mb`` MB of input on try ``attempt``."""
    size = _check(input_mb, attempt)
    m = _model(rule)
    first = _first_attempt(m.min_base + m.min_per_input_gb * size / 1024.0, rule, overrides, "runtime")
    return int(math.ceil(first * attempt))
