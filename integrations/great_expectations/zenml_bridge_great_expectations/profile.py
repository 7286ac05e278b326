"""A small, fast profiler: reference data in, an expectation suite out.

GX 1.x has no profilers, so this one writes the obvious expectations per column from one pass
over the data with pandas: the column exists, its values have the reference's type family,
nulls stay below the reference's share, numbers stay in the reference's range (widened by a
margin), and columns with few distinct values keep to that set. The table keeps its columns.
"""

from __future__ import annotations

import math
from typing import Any

# Type names GX reports for pandas columns, by family (numbers of any width may follow numbers:
# injecting a null turns an int64 column into float64, and that alone is not bad data).
_NUMBER_TYPES = [
    "int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64",
    "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64", "Float32", "Float64",
]  # fmt: skip
_BOOL_TYPES = ["bool", "boolean"]


def profile_expectations(
    df: Any, *, max_categories: int = 20, range_margin: float = 0.0, null_tolerance: float = 0.0
) -> list[dict[str, Any]]:
    """Expectations (GX's JSON form) that ``df`` meets, column by column.

    Args:
        df: the reference DataFrame.
        max_categories: a non-float column with at most this many distinct values gets an
            ``expect_column_values_to_be_in_set``.
        range_margin: widen numeric ranges by this fraction of their width on each side.
        null_tolerance: allow this much more null share than the reference has.
    """
    import pandas as pd

    expectations: list[dict[str, Any]] = [
        _e("expect_table_columns_to_match_set", column_set=[str(c) for c in df.columns],
           exact_match=True),
    ]  # fmt: skip
    for name in df.columns:
        column = df[name]
        key = str(name)
        expectations.append(_e("expect_column_to_exist", column=key))
        null_share = float(column.isna().mean())
        if null_share == 0.0 and null_tolerance == 0.0:
            expectations.append(_e("expect_column_values_to_not_be_null", column=key))
        elif null_share + null_tolerance < 1.0:
            mostly = round(1.0 - null_share - null_tolerance, 6)
            expectations.append(
                _e("expect_column_values_to_not_be_null", column=key, mostly=mostly)
            )
        values = column.dropna()
        if values.empty:
            continue
        if pd.api.types.is_bool_dtype(column):
            expectations.append(
                _e("expect_column_values_to_be_in_type_list", column=key, type_list=_BOOL_TYPES)
            )
        elif pd.api.types.is_numeric_dtype(column):
            expectations.append(
                _e("expect_column_values_to_be_in_type_list", column=key, type_list=_NUMBER_TYPES)
            )
            low, high = float(values.min()), float(values.max())
            if math.isfinite(low) and math.isfinite(high):
                pad = (high - low) * range_margin
                expectations.append(
                    _e("expect_column_values_to_be_between", column=key,
                       min_value=low - pad, max_value=high + pad)
                )  # fmt: skip
        elif column.dtype == object and all(isinstance(v, str) for v in values):
            expectations.append(
                _e("expect_column_values_to_be_in_type_list", column=key, type_list=["str"])
            )
        distinct = values.unique()
        if len(distinct) <= max_categories and not pd.api.types.is_float_dtype(column):
            value_set = sorted((_plain(v) for v in distinct), key=repr)
            expectations.append(
                _e("expect_column_values_to_be_in_set", column=key, value_set=value_set)
            )
    return expectations


def _e(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so the suite is JSON (and a pipeline parameter)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
