import numpy as np
import pytest

from cohortflow.errors import InputFormatError
from cohortflow.io.h5ad import read_h5ad


def test_reads_a_written_file(tmp_path):
    import anndata

    anndata.AnnData(np.eye(3, dtype=np.float32)).write_h5ad(tmp_path / "x.h5ad")
    assert read_h5ad(tmp_path / "x.h5ad").shape == (3, 3)


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputFormatError, match=r"nope\.h5ad: file not found"):
        read_h5ad(tmp_path / "nope.h5ad")
    bad = tmp_path / "bad.h5ad"
    bad.write_text("this is not HDF5\n")
    with pytest.raises(InputFormatError, match=r"bad\.h5ad: cannot read AnnData") as exc:
        read_h5ad(bad)
    assert "\n" not in str(exc.value)
