"""How every table of :mod:`mmkit.tables` types its columns.

pandas would turn an integer column with one missing value into floats, and 64-bit
addresses into rounded floats. Here integer and boolean columns get pandas' nullable dtypes
instead, values above ``2**63`` stay exact Python ints (``object``), and for reading
(``raw=False``) the address columns become ``"0x..."`` strings that ``int(x, 16)`` parses
back.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Collection, Sequence

import pandas as pd

__all__ = ["hex_cell", "typed_frame"]


def hex_cell(value: object) -> str | None:
    """``value`` as ``"0x..."`` (numpy integers too); ``None`` stays ``None``."""
    if value is None:
        return None
    return f"{operator.index(value):#x}"  # type: ignore[arg-type]


def _series(values: list[object]) -> pd.Series:
    values = [
        int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool | int) else v
        for v in values
    ]  # numpy integers to Python ints
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        dtype = "boolean"
    elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        dtype = "Int64" if all(-(1 << 63) <= v < 1 << 63 for v in present) else "object"
    else:
        dtype = "object"
    return pd.Series(values, dtype=dtype)


def typed_frame(
    rows: Sequence[dict[str, object]],
    columns: Sequence[str] | None = None,
    *,
    hex_columns: Collection[str] = (),
    raw: bool = True,
) -> pd.DataFrame:
    """Rows to a frame, numbers kept exact; with ``raw=False`` ``hex_columns`` become hex.

    ``columns`` fixes the columns and their order (missing keys read as None); by default
    every key of every row, in first-seen order.
    """
    if columns is None:
        keys: list[str] = []
        for row in rows:
            keys.extend(k for k in row if k not in keys)
        columns = keys
    data: dict[str, pd.Series] = {}
    for key in columns:
        values = [row.get(key) for row in rows]
        if not raw and key in hex_columns:
            data[key] = pd.Series([hex_cell(v) for v in values], dtype="object")
        else:
            data[key] = _series(values)
    return pd.DataFrame(data, columns=list(columns))
