import subprocess
import sys

import pytest

from cohortflow.cli import build_parser, main

SUBCOMMANDS = ["simulate-demo", "alignment-qc", "alignment-summary", "alignment-sites", "depth", "ingest", "merge", "qc", "pca", "project-pcs", "gwas", "gwas-summary",
               "sumstats", "prs", "sc", "spatial", "spatial-import", "gene-scores", "disease-score", "cell-eqtl", "report",
               "report-index", "meta", "export", "check-bundle", "check-truth"]
PRS_METHODS = ["split", "discovery-gwas", "ct", "bayes", "score", "evaluate"]


def test_every_stage_has_a_subcommand():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("command", [*SUBCOMMANDS, *(f"prs {m}" for m in PRS_METHODS)])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    assert "usage: cohortflow " + command in capsys.readouterr().out


def test_user_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cohortflow.cli", "qc", "--bfile", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cohortflow: error: ") and "missing.b" in lines[0], proc.stderr
    assert not list(tmp_path.iterdir())
