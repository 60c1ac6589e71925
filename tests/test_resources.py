"""Job resources (cohortflow.resources): the model, its growth with the attempt, overrides, and
that every rule of the workflow takes its resources and retries from it."""

from __future__ import annotations

import math
import re

import pytest

from cohortflow.errors import ConfigError
from cohortflow.resources import RULE_MODELS, job_mem_mb, job_runtime_min
from conftest import REPO


def test_memory_grows_with_input_and_doubles_per_attempt():
    m = RULE_MODELS["genotype_qc"]
    assert job_mem_mb("genotype_qc", 0) == m.mem_base
    assert job_mem_mb("genotype_qc", 1000) == m.mem_base + 1000 * m.mem_per_input_mb
    assert job_mem_mb("genotype_qc", 1000, 2) == 2 * job_mem_mb("genotype_qc", 1000, 1)
    assert job_mem_mb("genotype_qc", 1000, 3) == 4 * job_mem_mb("genotype_qc", 1000, 1)


def test_runtime_grows_with_input_and_attempt():
    m = RULE_MODELS["gwas"]
    assert job_runtime_min("gwas", 0) == m.min_base
    assert job_runtime_min("gwas", 10 * 1024) == m.min_base + 10 * m.min_per_input_gb
    assert job_runtime_min("gwas", 10 * 1024, 3) == 3 * job_runtime_min("gwas", 10 * 1024)


def test_overrides_replace_the_first_attempt_only():
    assert job_mem_mb("gwas", 5000, 1, overrides={"gwas": 100}) == 100
    assert job_mem_mb("gwas", 5000, 2, overrides={"gwas": 100}) == 200
    assert job_mem_mb("report", 10, 1, overrides={"gwas": 100}) == job_mem_mb("report", 10)
    assert job_runtime_min("gwas", 0, 2, overrides={"gwas": 7}) == 14
    with pytest.raises(ConfigError, match="resources.mem_mb.gwas"):
        job_mem_mb("gwas", 1, overrides={"gwas": -1})
    with pytest.raises(ValueError, match="attempt"):
        job_mem_mb("gwas", 1, 0)


def test_unknown_rule_gets_the_default_model():
    assert job_mem_mb("not_a_rule", 0) > 0 and job_runtime_min("not_a_rule", 0) > 0


def _rules(text: str) -> list[tuple[str, str]]:
    """(rule name, body) of each rule in a .smk file."""
    parts = re.split(r"^rule (\w+):\n", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def test_every_rule_uses_the_model_and_retries():
    """Every rule of workflow/rules/*.smk has threads, a log, resources from the model (mem_mb and
    runtime through the common.smk helpers, named after the rule) and retries from the config,
    and has a model entry of its own."""
    seen = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for name, body in _rules(path.read_text()):
            seen.append(name)
            assert re.search(r"^\s+threads:", body, re.M), (path.name, name, "threads")
            assert re.search(r"^\s+log:", body, re.M), (path.name, name, "log")
            assert f'mem_mb=job_mem("{name}")' in body, (path.name, name, "mem_mb")
            assert f'runtime=job_runtime("{name}")' in body, (path.name, name, "runtime")
            assert re.search(r"^\s+retries: RETRIES$", body, re.M), (path.name, name, "retries")
            assert name in RULE_MODELS, name
    assert len(seen) >= 30, seen


def test_king_parts_are_sized_by_their_samples_and_variants(tmp_path):
    """relatedness_part asks for its bit planes (samples held x KING variants), not for the bytes
    of the whole .bed, and for time by its pair comparisons."""
    import numpy as np

    from cohortflow.resources import KING_COMPARISONS_PER_S, king_part_mem_mb, king_part_runtime_min, king_part_size

    masks = tmp_path / "masks.npz"
    samples = np.ones(50_000, dtype=bool)
    samples[:50] = False  # 49,950 compared
    variants = np.zeros(500_000, dtype=bool)
    variants[::5] = True  # 100,000 compared
    np.savez(masks, samples=samples, variants=variants)
    cross_mb, cross_work = king_part_size(masks, "1.0", 2)
    diag_mb, diag_work = king_part_size(masks, "1.1", 2)
    assert cross_mb == 49_950 * 49 * 1024 / 2**20  # 49 sub-blocks of 2,048 variants
    assert diag_mb == 24_975 * 49 * 1024 / 2**20
    assert cross_work == 24_975 * 24_975 * 100_000 and diag_work == 24_975 * 24_974 // 2 * 100_000
    m = RULE_MODELS["relatedness_part"]
    assert king_part_mem_mb(masks, "1.0", 2) == math.ceil(m.mem_base + m.mem_per_input_mb * cross_mb)
    # the scale benchmark's part 1.0 of 2 peaked at 4,167 MB in 472 s: both inside the request
    assert king_part_mem_mb(masks, "1.0", 2) > 4167
    assert king_part_runtime_min(masks, "1.0", 2) * 60 > 472
    assert king_part_runtime_min(masks, "1.0", 2) == math.ceil(m.min_base + cross_work / KING_COMPARISONS_PER_S / 60)
    assert abs(king_part_mem_mb(masks, "1.0", 2, 2) - 2 * king_part_mem_mb(masks, "1.0", 2)) <= 1
    assert king_part_runtime_min(masks, "0.0", 2, 1, overrides={"relatedness_part": 9}) == 9
