"""Spatial-omics vendor outputs -> AnnData ready for ``cohortflow.singlecell.spatial.run_spatial``.

Every reader returns an AnnData with cells/spots x genes, the values as shipped in ``X``
(float32, CSR) and a copy in ``layers['counts']``, coordinates in ``obsm['spatial']`` (n x 2
float64, x then y, in the vendor's unit: microns for Xenium / MERSCOPE / seqFISH, pixels for
CosMx global and Visium full resolution), per-cell metadata in ``obs``, and
``uns['spatial_import']`` = {format, files, dropped_features (count), x_values}. Control probes
and blank codewords are dropped from the genes and their per-cell totals kept in
``obs['control_counts']``.

Every problem (missing file or column, cell ids that do not match between files, non-numeric
values) is one ``InputFormatError`` naming the file and, where there is one, the record.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.errors import InputFormatError

__all__ = ["FORMATS", "read_spatial", "read_xenium", "read_visium", "read_seqfish", "read_cosmx", "read_merscope"]

FORMATS = ("xenium", "visium", "seqfish", "cosmx", "merscope")

# Names of non-gene features (negative-control probes, blank / unassigned codewords) across vendors.
_CONTROL_PREFIXES = ("negcontrol", "negprb", "systemcontrol", "blank", "unassignedcodeword",
                     "deprecatedcodeword", "antisense", "intergenicregion")


def _is_control(name: str) -> bool:
    squashed = str(name).lower().replace("-", "").replace(".", "").replace("_", "")
    return squashed.startswith(_CONTROL_PREFIXES)


def _need(path: Path) -> Path:
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    return path


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(_need(path), **kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise InputFormatError(f"cannot parse ({type(exc).__name__}: {exc})", path=path) from None


def _require_columns(df: pd.DataFrame, columns, path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputFormatError(f"missing column(s) {', '.join(map(repr, missing))}; found {list(df.columns)[:12]}",
                               path=path)


def _numeric_block(df: pd.DataFrame, path: Path) -> np.ndarray:
    values = df.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()  # empty cells and text alike
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputFormatError(f"non-numeric or missing value {df.iat[r, c]!r} in column {df.columns[c]!r}",
                               path=path, record=str(df.index[r]))
    return values.to_numpy(dtype=np.float64)


def _assemble(x, genes, obs: pd.DataFrame, coords: np.ndarray, *, fmt: str, files: list[Path],
              x_values: str = "counts", var: pd.DataFrame | None = None):
    import anndata as ad

    x = sp.csr_matrix(x, dtype=np.float32)
    genes = pd.Index([str(g) for g in genes])
    control = np.array([_is_control(g) for g in genes])
    obs = obs.copy()
    obs.index = obs.index.astype(str)
    obs["control_counts"] = np.asarray(x[:, control].sum(axis=1)).ravel() if control.any() else 0.0
    var = pd.DataFrame(index=genes) if var is None else var.set_axis(genes)
    x = x[:, ~control]
    var = var.loc[~control].copy()
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.var_names_make_unique()
    adata.layers["counts"] = x.copy()
    adata.obsm["spatial"] = np.ascontiguousarray(coords, dtype=np.float64)
    adata.uns["spatial_import"] = {"format": fmt, "files": [str(f) for f in files],
                                   "dropped_features": int(control.sum()), "x_values": x_values}
    return adata


def _coords(df: pd.DataFrame, xcol: str, ycol: str, path: Path) -> np.ndarray:
    return _numeric_block(df[[xcol, ycol]], path)


def read_xenium(path: str | Path):
    """10x Xenium output folder: ``cell_feature_matrix.h5`` + ``cells.csv.gz`` (or ``cells.csv``).

    Only ``Gene Expression`` features are kept (control probes and codewords dropped, their
    per-cell total in ``obs['control_counts']``); ``obsm['spatial']`` = (x_centroid,
    y_centroid) in microns; ``obs`` holds the other columns of cells.csv.
    """
    import h5py

    folder = Path(path)
    h5 = _need(folder / "cell_feature_matrix.h5")
    cells_path = folder / "cells.csv.gz" if (folder / "cells.csv.gz").exists() else folder / "cells.csv"
    try:
        with h5py.File(h5, "r") as f:
            m = f["matrix"]
            shape = tuple(int(v) for v in m["shape"][()])
            x = sp.csc_matrix((m["data"][()], m["indices"][()], m["indptr"][()]), shape=shape).T.tocsr()
            barcodes = [b.decode() for b in m["barcodes"][()]]
            feat = m["features"]
            names = [b.decode() for b in feat["name"][()]]
            ids = [b.decode() for b in feat["id"][()]]
            ftype = np.array([b.decode() for b in feat["feature_type"][()]])
    except (OSError, KeyError, ValueError) as exc:
        raise InputFormatError(f"not a 10x feature-barcode HDF5 ({type(exc).__name__}: {exc})", path=h5) from None
    cells = _read_csv(cells_path)
    _require_columns(cells, ["cell_id", "x_centroid", "y_centroid"], cells_path)
    cells["cell_id"] = cells["cell_id"].astype(str)
    cells = cells.set_index("cell_id")
    missing = [b for b in barcodes if b not in cells.index]
    if missing:
        raise InputFormatError("cell in the matrix has no row in cells.csv", path=cells_path, record=missing[0])
    cells = cells.loc[barcodes]
    gene = ftype == "Gene Expression"
    control_total = np.asarray(x[:, ~gene].sum(axis=1)).ravel()
    obs = cells.drop(columns=["x_centroid", "y_centroid"])
    adata = _assemble(x[:, gene], np.array(names)[gene], obs, _coords(cells, "x_centroid", "y_centroid", cells_path),
                      fmt="xenium", files=[h5, cells_path],
                      var=pd.DataFrame({"gene_ids": np.array(ids)[gene], "feature_types": ftype[gene]}))
    adata.obs["control_counts"] = control_total
    adata.uns["spatial_import"]["dropped_features"] = int((~gene).sum())
    return adata


def read_visium(path: str | Path, *, in_tissue_only: bool = True, library_id: str | None = None):
    """10x Visium Space Ranger ``outs/`` folder.

    Counts from ``filtered_feature_bc_matrix.h5``, else ``raw_feature_bc_matrix.h5``, else the
    ``raw_feature_bc_matrix/`` or ``filtered_feature_bc_matrix/`` MTX folder (plain or .gz);
    positions from ``spatial/tissue_positions.csv`` (with header, Space Ranger >= 2) or
    ``tissue_positions_list.csv`` (without); ``obsm['spatial']`` = (pxl_col_in_fullres,
    pxl_row_in_fullres), scanpy's convention; spots not under tissue dropped unless
    ``in_tissue_only=False``. ``uns['spatial'][library_id]`` holds ``scalefactors`` and the
    low-resolution image when present (for plotting with scanpy/squidpy).
    """
    import scanpy as sc

    outs = Path(path)
    if not outs.is_dir():
        raise InputFormatError("Space Ranger outs folder not found", path=outs)
    h5 = next((outs / n for n in ("filtered_feature_bc_matrix.h5", "raw_feature_bc_matrix.h5")
               if (outs / n).exists()), None)
    if h5 is not None:
        try:
            counts = sc.read_10x_h5(h5)
        except (OSError, KeyError, ValueError) as exc:
            raise InputFormatError(f"cannot read ({type(exc).__name__}: {exc})", path=h5) from None
        matrix_file = h5
        x, barcodes, genes, gene_ids = counts.X, list(counts.obs_names), list(counts.var_names), \
            list(counts.var.get("gene_ids", counts.var_names))
    else:
        mtx_dir = next((outs / n for n in ("filtered_feature_bc_matrix", "raw_feature_bc_matrix")
                        if (outs / n).is_dir()), None)
        if mtx_dir is None:
            raise InputFormatError("no feature-barcode matrix (.h5 or MTX folder)", path=outs)
        x, barcodes, genes, gene_ids, matrix_file = _read_mtx_dir(mtx_dir)
    spatial_dir = outs / "spatial"
    pos_path = spatial_dir / "tissue_positions.csv"
    columns = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
    if pos_path.exists():
        pos = _read_csv(pos_path)
    else:
        pos_path = spatial_dir / "tissue_positions_list.csv"
        pos = _read_csv(pos_path, header=None)
        if pos.shape[1] != 6:
            raise InputFormatError(f"expected 6 columns, found {pos.shape[1]}", path=pos_path)
        pos.columns = columns
    _require_columns(pos, columns, pos_path)
    pos["barcode"] = pos["barcode"].astype(str)
    pos = pos.set_index("barcode")
    # Barcodes without a position row (trimmed example outputs list only some) cannot be placed:
    # dropped and counted in uns['spatial_import']['barcodes_without_position'].
    has_pos = np.array([b in pos.index for b in barcodes])
    if not has_pos.any():
        raise InputFormatError("no barcode of the matrix has a tissue position", path=pos_path, record=barcodes[0])
    barcodes = [b for b, ok in zip(barcodes, has_pos) if ok]
    pos = pos.loc[barcodes]
    x = sp.csr_matrix(x)[np.flatnonzero(has_pos)]
    keep = pos["in_tissue"].to_numpy() == 1 if in_tissue_only else np.ones(len(pos), dtype=bool)
    coords = _coords(pos, "pxl_col_in_fullres", "pxl_row_in_fullres", pos_path)
    obs = pos.drop(columns=["pxl_row_in_fullres", "pxl_col_in_fullres"])
    adata = _assemble(x[keep], genes, obs.loc[keep], coords[keep], fmt="visium",
                      files=[matrix_file, pos_path], var=pd.DataFrame({"gene_ids": gene_ids}))
    adata.uns["spatial_import"]["barcodes_without_position"] = int((~has_pos).sum())
    adata.uns["spatial_import"]["spots_not_in_tissue_dropped"] = int((~keep).sum())
    library_id = library_id or outs.parent.name or "library"
    entry: dict = {"images": {}}
    sf_path = spatial_dir / "scalefactors_json.json"
    if sf_path.exists():
        try:
            entry["scalefactors"] = json.loads(sf_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"invalid JSON ({exc})", path=sf_path) from None
    for res in ("hires", "lowres"):
        img = spatial_dir / f"tissue_{res}_image.png"
        if img.exists():
            from matplotlib.image import imread

            entry["images"][res] = imread(img)
    adata.uns["spatial"] = {library_id: entry}
    return adata


def _read_mtx_dir(folder: Path):
    import scipy.io

    def find(stem):
        for name in (stem, stem + ".gz"):
            if (folder / name).exists():
                return folder / name
        return None

    mtx = find("matrix.mtx")
    bc = find("barcodes.tsv")
    feats = find("features.tsv") or find("genes.tsv")
    for p, what in ((mtx, "matrix.mtx"), (bc, "barcodes.tsv"), (feats, "features.tsv")):
        if p is None:
            raise InputFormatError(f"{what}[.gz] not found", path=folder)
    try:
        x = scipy.io.mmread(mtx)
    except (ValueError, OSError, IndexError) as exc:
        raise InputFormatError(f"not a Matrix Market file ({type(exc).__name__}: {exc})", path=mtx) from None
    barcodes = _read_csv(bc, sep="\t", header=None)[0].astype(str).tolist()
    features = _read_csv(feats, sep="\t", header=None)
    gene_ids, genes = features[0].astype(str).tolist(), features[1 if features.shape[1] > 1 else 0].astype(str).tolist()
    if x.shape != (len(genes), len(barcodes)):
        raise InputFormatError(f"matrix is {x.shape[0]} x {x.shape[1]} but there are {len(genes)} features and "
                               f"{len(barcodes)} barcodes", path=mtx)
    return sp.csr_matrix(x.T), barcodes, genes, gene_ids, mtx


def read_seqfish(expression: str | Path, coordinates: str | Path, *, labels: str | Path | None = None):
    """seqFISH(+) text files as in the BIRS 2020 / SpatialExperiment example.

    ``expression``: genes x cells, tab-separated, no header, gene name first (the shipped values
    are normalised, not raw counts: ``uns['spatial_import']['x_values']`` says so);
    ``coordinates``: whitespace-separated ``cell_id field_of_view x y`` without header, one row per
    expression column in the same order; ``labels`` (optional): tab-separated ``cell_id cluster
    cell_type ...`` without header -> ``obs['cluster']``, ``obs['cell_type']``.
    """
    expression, coordinates = Path(expression), Path(coordinates)
    expr = _read_csv(expression, sep="\t", header=None, index_col=0)
    values = _numeric_block(expr, expression)
    coords = _read_csv(coordinates, sep=r"\s+", header=None)
    if coords.shape[1] < 4:
        raise InputFormatError(f"expected 4 columns (cell_id field_of_view x y), found {coords.shape[1]}",
                               path=coordinates)
    coords = coords.iloc[:, :4].set_axis(["cell_id", "field_of_view", "x", "y"], axis=1)
    if len(coords) != values.shape[1]:
        raise InputFormatError(f"{len(coords)} coordinate rows for {values.shape[1]} expression columns",
                               path=coordinates)
    obs = pd.DataFrame({"field_of_view": coords["field_of_view"].astype(str).to_numpy()},
                       index=coords["cell_id"].astype(str).to_numpy())
    files = [expression, coordinates]
    if labels is not None:
        labels = Path(labels)
        lab = _read_csv(labels, sep="\t", header=None)
        if lab.shape[1] < 3:
            raise InputFormatError(f"expected >= 3 columns (cell_id cluster cell_type), found {lab.shape[1]}",
                                   path=labels)
        lab.index = lab[0].astype(str)
        missing = [c for c in obs.index if c not in lab.index]
        if missing:
            raise InputFormatError("cell has no label row", path=labels, record=missing[0])
        obs["cluster"] = pd.Categorical(lab.loc[obs.index, 1].astype(str))
        obs["cell_type"] = pd.Categorical(lab.loc[obs.index, 2].astype(str))
        files.append(labels)
    return _assemble(values.T, expr.index, obs, _coords(coords, "x", "y", coordinates), fmt="seqfish",
                     files=files, x_values="normalised (as shipped)")


def _one(folder: Path, pattern: str) -> Path:
    hits = sorted(folder.glob(pattern))
    if len(hits) != 1:
        raise InputFormatError(f"expected one file matching {pattern!r}, found {len(hits)}", path=folder)
    return hits[0]


def read_cosmx(path: str | Path):
    """NanoString CosMx SMI flat files: ``*exprMat_file.csv`` + ``*metadata_file.csv`` in ``path``.

    Cells keyed by (fov, cell_ID) -> obs name ``{fov}_{cell_ID}``; cell_ID 0 (transcripts outside
    any cell) dropped; negative / system-control probes dropped (total in
    ``obs['control_counts']``); ``obsm['spatial']`` = (CenterX_global_px, CenterY_global_px).
    """
    folder = Path(path)
    expr_path, meta_path = _one(folder, "*exprMat_file.csv"), _one(folder, "*metadata_file.csv")
    expr = _read_csv(expr_path)
    meta = _read_csv(meta_path)
    _require_columns(expr, ["fov", "cell_ID"], expr_path)
    _require_columns(meta, ["fov", "cell_ID", "CenterX_global_px", "CenterY_global_px"], meta_path)
    expr = expr[expr["cell_ID"] != 0]
    key = expr["fov"].astype(str) + "_" + expr["cell_ID"].astype(str)
    meta.index = meta["fov"].astype(str) + "_" + meta["cell_ID"].astype(str)
    if key.duplicated().any():
        raise InputFormatError("duplicate (fov, cell_ID)", path=expr_path, record=str(key[key.duplicated()].iloc[0]))
    missing = [k for k in key if k not in meta.index]
    if missing:
        raise InputFormatError("cell has no metadata row", path=meta_path, record=missing[0])
    meta = meta.loc[key.to_numpy()]
    counts = expr.drop(columns=["fov", "cell_ID"]).set_axis(key.to_numpy())
    values = _numeric_block(counts, expr_path)
    obs = meta.drop(columns=["CenterX_global_px", "CenterY_global_px"])
    return _assemble(values, counts.columns, obs, _coords(meta, "CenterX_global_px", "CenterY_global_px", meta_path),
                     fmt="cosmx", files=[expr_path, meta_path])


def read_merscope(path: str | Path):
    """Vizgen MERSCOPE: ``*cell_by_gene.csv`` + ``*cell_metadata.csv`` in ``path``.

    The first column of each file is the cell id (named ``cell`` or unnamed/``X`` in R-written
    copies); ``Blank-*`` codewords dropped (total in ``obs['control_counts']``);
    ``obsm['spatial']`` = (center_x, center_y) in microns.
    """
    folder = Path(path)
    expr_path, meta_path = _one(folder, "*cell_by_gene.csv"), _one(folder, "*cell_metadata.csv")
    expr = _read_csv(expr_path, index_col=0)
    meta = _read_csv(meta_path, index_col=0)
    _require_columns(meta, ["center_x", "center_y"], meta_path)
    expr.index, meta.index = expr.index.astype(str), meta.index.astype(str)
    missing = [k for k in expr.index if k not in meta.index]
    if missing:
        raise InputFormatError("cell has no metadata row", path=meta_path, record=missing[0])
    meta = meta.loc[expr.index]
    values = _numeric_block(expr, expr_path)
    obs = meta.drop(columns=["center_x", "center_y"])
    return _assemble(values, expr.columns, obs, _coords(meta, "center_x", "center_y", meta_path),
                     fmt="merscope", files=[expr_path, meta_path])


def read_spatial(fmt: str, path: str | Path, **kwargs):
    """Dispatch on ``fmt`` (one of ``FORMATS``); seqfish takes ``coordinates=`` and ``labels=``."""
    if fmt == "xenium":
        return read_xenium(path)
    if fmt == "visium":
        return read_visium(path, **kwargs)
    if fmt == "seqfish":
        if kwargs.get("coordinates") is None:
            raise InputFormatError("seqfish needs the coordinates file", path=path)
        return read_seqfish(path, kwargs["coordinates"], labels=kwargs.get("labels"))
    if fmt == "cosmx":
        return read_cosmx(path)
    if fmt == "merscope":
        return read_merscope(path)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
