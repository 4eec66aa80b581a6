"""Read SOCAL's CSVs as people actually save them.

A CSV that passed through Excel or Windows may start with a byte-order mark, end its lines with
``\\r\\n``, pad ids and headers with spaces, write labels as ``1.0``/``0.0`` and repeat rows.
Each of these is handled here, once, for every CSV socal reads; what had to be changed is
returned so that the data report can say so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# Cells the real release writes for a missing value (pandas' defaults would also turn ids
# such as "NA" or "null" into missing values; only "NA" and empty cells are missing in SOCAL).
NA_VALUES = ["NA", ""]


def read_table(path: Path, text_columns: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``path`` with a BOM and ``\\r\\n`` tolerated, headers and ``text_columns`` stripped of
    spaces, and identical rows kept once; returns (table, the repeats removed)."""
    present = pd.read_csv(path, encoding="utf-8-sig", nrows=0).columns
    dtypes = {name: str for name in present if name.strip() in text_columns}
    table = pd.read_csv(
        path, encoding="utf-8-sig", dtype=dtypes, na_values=NA_VALUES, keep_default_na=False
    )
    table.columns = [str(name).strip() for name in table.columns]
    for name in text_columns:
        if name in table.columns:
            table[name] = table[name].str.strip().replace("", pd.NA)
    repeated = table.duplicated()
    return table[~repeated].reset_index(drop=True), table[repeated]


def numeric_labels(values: pd.Series) -> pd.Series:
    """Labels (or frame numbers) as floats: ``1``, ``1.0`` and `` 1 `` alike; else NaN."""
    if values.dtype == object:
        values = values.astype(str).str.strip()
    return pd.to_numeric(values, errors="coerce")
