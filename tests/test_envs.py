"""envs/*.yaml (conda, one per stage) pin every package with pyproject.toml's bounds."""
import re
import tomllib

import yaml

from conftest import REPO

CONDA_NAMES = {"python-igraph": "igraph", "python-isal": "isal", "snakemake-minimal": "snakemake"}


def _pyproject_specs() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    specs = {}
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)", dep)
        specs[m.group(1).lower()] = m.group(3).replace(" ", "")
    return specs


def test_every_stage_has_an_env_with_pyproject_pins():
    specs = _pyproject_specs()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert {p.stem for p in envs} >= {"demo", "alignment", "variants", "gwas", "prs", "singlecell", "report"}
    for path in envs:
        env = yaml.safe_load(path.read_text())
        assert "conda-forge" in env["channels"]
        for dep in env["dependencies"]:
            name, _, spec = dep.partition(" ")
            if name == "python":
                continue
            name = CONDA_NAMES.get(name, name)
            assert name in specs, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert spec.replace(" ", "") == specs[name], f"{path.name}: {name} {spec} != pyproject {specs[name]}"


def test_every_rule_uses_an_existing_env_and_has_log_threads_resources():
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        for block in re.split(r"\n(?=rule )", text)[1:]:
            name = block.split(":")[0]
            for directive in ("log:", "threads:", "resources:", "conda:"):
                assert directive in block, f"{rules.name}: {name} lacks {directive}"
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block).group(1)
            assert (rules.parent / env).resolve().exists(), f"{rules.name}: {name}: {env} missing"
