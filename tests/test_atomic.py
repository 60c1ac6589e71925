"""Atomic outputs (cohortflow.io.atomic): nothing under the final name until the write succeeds,
and a killed writer's temporary is cleared by the next write of the same target only."""

from __future__ import annotations

import os

import pytest

from cohortflow.io.atomic import atomic_open, write_text_atomic


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "out.tsv") as fh:
            fh.write("partial")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_stale_temporary_of_the_same_target_is_removed(tmp_path):
    (tmp_path / ".a.tsv.k3j9x_0q.tmp").write_text("left by a SIGKILL")
    (tmp_path / ".a.tsv.gz.k3j9x_0q.tmp").write_text("another target's")
    (tmp_path / ".a.tsv.notatemp").write_text("not ours")
    write_text_atomic(tmp_path / "a.tsv", "done\n")
    assert sorted(os.listdir(tmp_path)) == [".a.tsv.gz.k3j9x_0q.tmp", ".a.tsv.notatemp", "a.tsv"]
    assert (tmp_path / "a.tsv").read_text() == "done\n"


def test_gzip_output_is_byte_identical(tmp_path):
    for name in ("a.txt.gz", "b.txt.gz"):
        with atomic_open(tmp_path / name) as fh:
            fh.write("same text\n")
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()
