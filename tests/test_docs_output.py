"""docs/output.md lists every file the workflow declares.

The ``output:``, ``log:`` and ``benchmark:`` blocks of workflow/rules/*.smk are read as Python
expressions (``res("{cohort}", ...)``, f-strings on ``DEMO_DIR``/``RESULTS``, ``multiext``,
``report``, ``directory``, ``temp``, ``expand``, module-level names and list comprehensions of the
same file) and every path they give must appear in backticks in docs/output.md. Paths under
``results/{cohort}/`` are compared without that prefix, as the document writes them; wildcard
names as the rules write them. An expression the reader does not understand fails the test, so a
new way of declaring outputs cannot slip past it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

RULES_DIR = REPO / "workflow" / "rules"
DOC = REPO / "docs" / "output.md"
# the defaults of config/config.yaml (results, demo.out_dir), as the document writes the paths
NAMES = {"RESULTS": "results", "DEMO_DIR": "data/demo"}
# wrappers whose first argument is the path
WRAPPERS = {"report", "directory", "temp", "protected", "ancient", "touch", "pipe", "ensure", "expand"}
DIRECTIVE = re.compile(r"^(\s+)(output|log|benchmark):\s*(.*)$")


class _Reader:
    """Evaluates a declaration expression to the list of path patterns it names."""

    def __init__(self, names: dict[str, ast.expr], where: str):
        self.names, self.where = names, where

    def paths(self, node: ast.AST, bound: dict[str, str] | None = None) -> list[str]:
        bound = bound or {}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            out = [""]
            for part in node.values:
                values = self.paths(part.value, bound) if isinstance(part, ast.FormattedValue) else self.paths(part)
                out = [a + b for a in out for b in values]
            return out
        if isinstance(node, ast.Name):
            if node.id in bound:
                return [bound[node.id]]
            if node.id in NAMES:
                return [NAMES[node.id]]
            if node.id in self.names:
                return self.paths(self.names[node.id])
        if isinstance(node, ast.IfExp):   # report(x, ...) if condition else x: both branches
            return sorted(set(self.paths(node.body, bound)) | set(self.paths(node.orelse, bound)))
        if isinstance(node, (ast.List, ast.Tuple)):
            return [p for elt in node.elts for p in self.paths(elt, bound)]
        if isinstance(node, ast.ListComp) and len(node.generators) == 1:
            gen = node.generators[0]
            if isinstance(gen.target, ast.Name) and not gen.ifs:
                return [p for value in self.paths(gen.iter, bound)
                        for p in self.paths(node.elt, {**bound, gen.target.id: value})]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            func = node.func.id
            if func == "res" and len(node.args) == 2:
                # res(cohort, path): results/{cohort}/path, written in the document without the prefix
                return self.paths(node.args[1], bound)
            if func == "multiext" and node.args:
                exts = [*node.args[1:], *(k.value for k in node.keywords)]
                return [p + e for p in self.paths(node.args[0], bound) for x in exts for e in self.paths(x, bound)]
            if func in WRAPPERS and node.args:
                return self.paths(node.args[0], bound)
        raise AssertionError(f"{self.where}: cannot read the declaration {ast.unparse(node)!r}; "
                             "teach tests/test_docs_output.py this form")


def _module_names(text: str) -> dict[str, ast.expr]:
    """Module-level one-line assignments of a rule file (e.g. DEMO_VCFS = expand(...))."""
    names = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_]\w*)\s*=\s*(.+)$", line)
        if m:
            try:
                names[m.group(1)] = ast.parse(m.group(2), mode="eval").body
            except SyntaxError:
                continue
    return names


def declared_paths() -> dict[str, set[str]]:
    """Path pattern -> names of the rules (with the directive) that declare it."""
    found: dict[str, set[str]] = {}
    for path in sorted(RULES_DIR.glob("*.smk")):
        text = path.read_text()
        names = _module_names(text)
        lines = text.splitlines()
        rule = None
        for i, line in enumerate(lines):
            head = re.match(r"^(?:rule|checkpoint)\s+(\w+)\s*:", line)
            if head:
                rule = head.group(1)
                continue
            m = DIRECTIVE.match(line)
            if not m or rule is None:
                continue
            indent, directive = len(m.group(1)), m.group(2)
            body = [m.group(3)]
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            where = f"{path.name}: rule {rule} {directive}"
            call = ast.parse("_(\n" + "\n".join(body) + "\n)", mode="eval").body
            reader = _Reader(names, where)
            for expr in [*call.args, *(k.value for k in call.keywords)]:
                for p in reader.paths(expr):
                    found.setdefault(p, set()).add(f"{rule} ({directive})")
    return found


def documented_paths(text: str) -> set[str]:
    """Every backticked token of the document, without a leading results/{cohort}/ and a trailing /."""
    tokens = set()
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.removeprefix("results/{cohort}/").rstrip("/")
        tokens.add(token)
    return tokens


def rule_names() -> set[str]:
    return {m for path in RULES_DIR.glob("*.smk") for m in re.findall(r"^(?:rule|checkpoint)\s+(\w+)\s*:",
                                                                          path.read_text(), flags=re.M)}


@pytest.fixture(scope="module")
def declared():
    return declared_paths()


def test_the_reader_sees_the_workflow(declared):
    """A reader that finds nothing would pass vacuously: check it on forms the rules use."""
    for path in ("qc/qc.bed", "qc/qc.variant_qc.png",  # named outputs of genotype_qc
                 "genotypes/shards/{shard}.ingest.log",  # multiext
                 "gwas/{trait}.regional",  # report(directory(...))
                 "gwas/{trait}.manhattan.png",  # report(...)
                 "data/demo/genotypes/chr{chrom}.vcf.gz.tbi",  # list comprehension over expand(f"{DEMO_DIR}...")
                 "data/demo/bam/{sample}.bam",  # f-string with an escaped wildcard
                 "logs/demo/demo_reads.{sample}.log", "benchmarks/gwas.{trait}.tsv", "report.html"):
        assert path in declared, (path, sorted(declared))
    assert len(declared) >= 150, len(declared)


def test_every_declared_output_is_documented(declared):
    documented = documented_paths(DOC.read_text())
    missing = {p: sorted(rules) for p, rules in declared.items() if p not in documented}
    assert not missing, "declared in workflow/rules but not in docs/output.md:\n" + "\n".join(
        f"  {p}  <- {', '.join(rules)}" for p, rules in sorted(missing.items()))


def test_every_rule_is_named_in_the_document():
    text = DOC.read_text()
    missing = sorted(r for r in rule_names() if f"`{r}`" not in text)
    assert not missing, f"rules not named (in backticks) in docs/output.md: {missing}"


def test_the_check_fails_on_an_undocumented_output(declared, tmp_path):
    """Removing one documented path makes the comparison report it."""
    text = DOC.read_text()
    target = "prs/{trait}.performance.tsv"
    assert f"`{target}`" in text
    lines = [line for line in text.splitlines() if f"`{target}`" not in line]
    assert target not in documented_paths("\n".join(lines))
    assert target in declared
