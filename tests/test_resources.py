"""Job resources (cohortflow.resources): the model, its growth with the attempt, overrides, and
that every rule of the workflow takes its resources and retries from it."""

from __future__ import annotations

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
