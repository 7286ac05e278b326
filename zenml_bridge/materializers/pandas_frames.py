"""pandas DataFrame and Series as one Arrow IPC file (``data.arrow``).

Why Arrow IPC (the feather v2 format) rather than parquet: for a 1,000,000 x 10 float64 frame,
write + read through a step costs about a third of ``df.to_parquet`` + ``pd.read_parquet``
(benchmarks/bench_materializers.py prints both in the same run). Arrow IPC is Arrow's memory
layout written out, so a local file is memory-mapped and read without decoding. Buffers are
left uncompressed on a local filesystem (fastest; a local disk is not the bottleneck) and
LZ4-compressed on remote ones (S3, GCS: typical tables shrink about 2x, which costs less than
sending the bytes); ``ZENML_BRIDGE_ARROW_COMPRESSION`` (``none``, ``lz4``, ``zstd``) chooses
for every filesystem (docs/performance.md has the measured trade-off); the same reader reads
all of them. The file is written through the artifact store's filesystem, which hashes the
bytes as they are written. The pandas schema metadata pyarrow writes keeps
the index, column names, dtypes (categoricals, time zones, nullable types) and ``attrs``; the
few things it drops are written under our own metadata key and put back.

Values Arrow cannot hold exactly are declined with a reason (so they fall through to pickle when
the step allows it): duplicate column names, complex numbers, and object columns holding mixed
types, lists or dicts.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers.base import Materializer, join, prepare

FILENAME = "data.arrow"
#: Compression of the buffers on remote filesystems (None on local ones, see above).
REMOTE_COMPRESSION = "lz4"
#: Environment variable that chooses the compression on every filesystem.
ENV_COMPRESSION = "ZENML_BRIDGE_ARROW_COMPRESSION"
_COMPRESSIONS = {"none": None, "lz4": "lz4", "zstd": "zstd"}
_META_KEY = b"zenml_bridge"
_SERIES_COLUMN = "__series__"
_FINE_OBJECT_KINDS = {"string", "bytes", "empty", "date", "decimal", "boolean", "time"}


def _missing_marker(value: Any) -> str:
    if value is None:
        return "None"
    if value is pd.NA:
        return "NA"
    if value is pd.NaT:
        return "NaT"
    if type(value) is float:
        return "NaN"
    return type(value).__name__


#: Missing-value markers of object columns; Arrow has one null, read back as None.
_MARKERS: dict[str, Any] = {"None": None, "NaN": float("nan"), "NA": pd.NA, "NaT": pd.NaT}


def _object_nulls(column: pd.Series | pd.Index) -> set[str]:
    """The kinds of missing values in an object column ({"NaN"} for a column read from CSV)."""
    mask = np.asarray(column.isna())  # an Index gives an ndarray, a Series a Series
    if not mask.any():
        return set()
    return {_missing_marker(v) for v in column.to_numpy()[mask]}


def frame_problem(df: pd.DataFrame) -> str | None:
    """Why ``df`` would not come back exactly from Arrow, or None."""
    if not df.columns.is_unique:
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        return f"duplicate column names {dup} (Arrow needs unique names)"
    for position, dtype in enumerate(df.dtypes):
        label = df.columns[position]
        if dtype.kind == "c":
            return f"column {label!r} holds complex numbers (Arrow has no complex type)"
        if pd.api.types.is_object_dtype(dtype):
            column = df.iloc[:, position]
            kind = pd.api.types.infer_dtype(column, skipna=True)
            if kind not in _FINE_OBJECT_KINDS:
                return (
                    f"column {label!r} is an object column holding {kind} values; Arrow "
                    "would change them (give it one type, e.g. .astype(str))"
                )
            markers = _object_nulls(column)
            if len(markers) > 1 or not markers <= set(_MARKERS):
                return (
                    f"column {label!r} marks missing values with {' and '.join(sorted(markers))}"
                    "; Arrow keeps one kind of missing value per column (use .fillna or "
                    ".where to make them the same)"
                )
    return None


def _extras(df: pd.DataFrame) -> dict[str, Any]:
    """What pyarrow's pandas metadata does not bring back, to be re-applied on load."""
    extras: dict[str, Any] = {}
    if isinstance(df.columns, pd.RangeIndex):
        r = df.columns
        extras["columns_range"] = [r.start, r.stop, r.step]
    freq = getattr(df.index, "freq", None)
    if freq is not None and isinstance(df.index, pd.DatetimeIndex | pd.TimedeltaIndex):
        extras["index_freq"] = freq.freqstr
    strings = {
        str(i): _string_spec(dtype)
        for i, dtype in enumerate(df.dtypes)
        if isinstance(dtype, pd.StringDtype)
    }
    if strings:
        extras["string_dtypes"] = strings
    objects: dict[str, str] = {}
    for i, dtype in enumerate(df.dtypes):
        if pd.api.types.is_object_dtype(dtype):
            # Arrow would read an all-bool object column back as bool, and NaN as None.
            markers = _object_nulls(df.iloc[:, i])
            objects[str(i)] = markers.pop() if markers else ""
    if objects:
        extras["object_columns"] = objects
    # pyarrow on pandas 3 reads object and `string` labels and categories back as `str`.
    for key, labels in (("index_kinds", df.index), ("column_kinds", df.columns)):
        kinds = _levels_kinds(labels)
        if any(kinds):
            extras[key] = kinds
    categories = {
        str(i): kind
        for i, dtype in enumerate(df.dtypes)
        if isinstance(dtype, pd.CategoricalDtype)
        and (kind := _label_kind(dtype.categories)) is not None
    }
    if categories:
        extras["category_kinds"] = categories
    return extras


def _label_kind(labels: pd.Index) -> list[str] | None:
    """``["object", marker]`` or ``["string", storage, na]`` for labels Arrow may retype."""
    if isinstance(labels.dtype, pd.StringDtype):
        return ["string", *_string_spec(labels.dtype)]
    if pd.api.types.is_object_dtype(labels.dtype) and not isinstance(labels, pd.MultiIndex):
        markers = _object_nulls(labels)
        return ["object", markers.pop() if len(markers) == 1 else ""]
    return None


def _levels_kinds(labels: pd.Index) -> list[list[str] | None]:
    levels = labels.levels if isinstance(labels, pd.MultiIndex) else [labels]
    return [_label_kind(level) for level in levels]


def _with_kind(labels: pd.Index, kind: list[str]) -> pd.Index:
    if kind[0] == "string":
        try:
            dtype = _string_dtype(kind[1], kind[2])
        except (TypeError, ValueError):
            return labels  # written by a newer pandas: keep what pyarrow made of it here
        return labels if labels.dtype == dtype else labels.astype(dtype)
    if not pd.api.types.is_object_dtype(labels.dtype):
        labels = labels.astype(object)
    if kind[1] and labels.hasnans:
        labels = labels.where(~labels.isna(), _MARKERS[kind[1]])
    return labels


def _restore_labels(labels: pd.Index, kinds: list[list[str] | None]) -> pd.Index:
    if isinstance(labels, pd.MultiIndex):
        levels = [lv if k is None else _with_kind(lv, k) for lv, k in zip(labels.levels, kinds)]
        return labels.set_levels(levels)
    return labels if not kinds or kinds[0] is None else _with_kind(labels, kinds[0])


def _string_spec(dtype: pd.StringDtype) -> list[str]:
    """``[storage, "NA" | "NaN"]``: both tell string dtypes apart, and Arrow keeps neither.

    pandas 3's default ``str`` dtype is ``StringDtype("pyarrow", na_value=nan)``, ``"string"``
    is the ``pd.NA`` variant, and the default storage differs between pandas 2 and 3.
    """
    na_value = getattr(dtype, "na_value", pd.NA)  # pandas < 2.3 has only the NA variant
    return [str(dtype.storage), "NA" if na_value is pd.NA else "NaN"]


def _string_dtype(storage: str, na: str) -> pd.StringDtype:
    if na == "NA" or storage == "pyarrow_numpy":  # pandas 2.1/2.2 spelled the NaN variant so
        return pd.StringDtype(storage)
    return pd.StringDtype(storage, na_value=float("nan"))  # type: ignore[call-arg]


def _restore(df: pd.DataFrame, extras: dict[str, Any]) -> pd.DataFrame:
    strings = dict(extras.get("string_dtypes", {}))
    for position, storage in extras.get("string_storage", {}).items():  # earlier builds wrote this
        strings.setdefault(position, [storage, "NA"])
    for position, (storage, na) in strings.items():
        i = int(position)
        try:
            dtype = _string_dtype(storage, na)
        except (TypeError, ValueError):
            continue  # written by a newer pandas: keep what pyarrow made of it in this one
        if df.iloc[:, i].dtype != dtype:
            df.isetitem(i, df.iloc[:, i].astype(dtype))
    for position, marker in extras.get("object_columns", {}).items():
        i = int(position)
        column = df.iloc[:, i]
        if not pd.api.types.is_object_dtype(column.dtype):
            # pyarrow reads strings as pandas 3's `str` dtype (missing = NaN) whatever the
            # metadata says, so None has to be put back too.
            column = column.astype(object)
        if marker:
            column = column.where(column.notna(), _MARKERS[marker])
        df.isetitem(i, column)
    for position, kind in extras.get("category_kinds", {}).items():
        i = int(position)
        column = df.iloc[:, i]
        categories = _with_kind(column.cat.categories, kind)
        if categories.dtype != column.cat.categories.dtype:
            dtype = pd.CategoricalDtype(categories, ordered=column.cat.ordered)
            values = pd.Categorical.from_codes(column.cat.codes, dtype=dtype)
            df.isetitem(i, pd.Series(values, index=column.index, name=column.name))
    if "columns_range" in extras:
        df.columns = pd.RangeIndex(*extras["columns_range"])
    elif "column_kinds" in extras:
        df.columns = _restore_labels(df.columns, extras["column_kinds"])
    if "index_kinds" in extras:
        df.index = _restore_labels(df.index, extras["index_kinds"])
    if "index_freq" in extras:
        df.index = type(df.index)(df.index, freq=extras["index_freq"])
    return df


def write_frame(df: pd.DataFrame, path: str, fs: Any, extras: dict[str, Any]) -> None:
    try:
        table = pa.Table.from_pandas(df, preserve_index=None)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise BridgeError(
            f"Arrow cannot store this DataFrame: {exc}. Convert the offending column to one "
            "type, or store it with pickle: @step(allow_pickle=True)."
        ) from exc
    metadata = dict(table.schema.metadata or {})
    metadata[_META_KEY] = json.dumps(extras, sort_keys=True).encode()
    table = table.replace_schema_metadata(metadata)
    local = _local_path(path, fs)
    remote = local is None or getattr(fs, "remote_destination", False)
    options = pa.ipc.IpcWriteOptions(compression=compression(not remote))
    if local is not None and not getattr(fs, "hashes_writes", False):
        with pa.OSFile(local, "wb") as f, pa.ipc.new_file(f, table.schema, options=options) as w:
            w.write_table(table)
        return
    # Through fs: the artifact store's local filesystem hashes the bytes as they are written.
    with fs.open(path, "wb") as f, pa.ipc.new_file(f, table.schema, options=options) as writer:
        writer.write_table(table)


def compression(local: bool) -> str | None:
    """The Arrow buffer compression to write with: ``ZENML_BRIDGE_ARROW_COMPRESSION`` when
    set, else none on a local filesystem and LZ4 on a remote one."""
    chosen = (os.environ.get(ENV_COMPRESSION) or "").strip().lower()
    if not chosen:
        return None if local else REMOTE_COMPRESSION
    if chosen not in _COMPRESSIONS:
        raise BridgeError(
            f"{ENV_COMPRESSION}={chosen!r} is not a compression zenml-bridge can write: use "
            f"one of {', '.join(_COMPRESSIONS)} (or unset it: none locally, lz4 on remote stores)."
        )
    return _COMPRESSIONS[chosen]


def read_frame(path: str, fs: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    local = _local_path(path, fs)
    if local is not None:
        # A memory map lets Arrow read the buffers in place instead of through Python reads;
        # to_pandas copies, so nothing refers to the map once it is closed.
        with pa.memory_map(local) as source:
            table = pa.ipc.open_file(source).read_all()
            df = table.to_pandas()
    else:
        with fs.open(path, "rb") as f:
            table = pa.ipc.open_file(pa.BufferReader(f.read())).read_all()
        df = table.to_pandas()
    raw = (table.schema.metadata or {}).get(_META_KEY, b"{}")
    return df, json.loads(raw)


def _local_path(path: str, fs: Any) -> str | None:
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        return str(fs._strip_protocol(path))
    return None


class DataFrameMaterializer(Materializer):
    """A ``pandas.DataFrame`` as ``data.arrow`` (Arrow IPC file, LZ4)."""

    name: ClassVar[str] = "pandas.dataframe"
    version: ClassVar[str] = "1"
    # The public name; pandas 2 reports pandas.core.frame.DataFrame (same class).
    handles: ClassVar[tuple[str, ...]] = ("pandas.DataFrame",)

    def reject_reason(self, value: Any) -> str | None:
        if type(value) is not pd.DataFrame:
            return f"it is a subclass of DataFrame ({type(value).__qualname__})"
        return frame_problem(value)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        prepare(folder, fs)
        write_frame(value, join(folder, FILENAME), fs, _extras(value))

    def load(self, folder: str, fs: Any) -> Any:
        df, extras = read_frame(join(folder, FILENAME), fs)
        return _restore(df, extras)


class SeriesMaterializer(Materializer):
    """A ``pandas.Series`` as a one-column ``data.arrow``; its name is kept in the metadata."""

    name: ClassVar[str] = "pandas.series"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("pandas.Series",)

    def reject_reason(self, value: Any) -> str | None:
        if type(value) is not pd.Series:
            return f"it is a subclass of Series ({type(value).__qualname__})"
        if not _json_name(value.name):
            return f"its name {value.name!r} is not a str, int, float, bool or None"
        return frame_problem(value.to_frame(_SERIES_COLUMN))

    def save(self, value: Any, folder: str, fs: Any) -> None:
        frame = value.to_frame(_SERIES_COLUMN)
        extras = _extras(frame)
        extras["series_name"] = value.name
        prepare(folder, fs)
        write_frame(frame, join(folder, FILENAME), fs, extras)

    def load(self, folder: str, fs: Any) -> Any:
        df, extras = read_frame(join(folder, FILENAME), fs)
        series = _restore(df, extras)[_SERIES_COLUMN]
        series.name = extras.get("series_name")
        return series


def _json_name(name: Any) -> bool:
    return (
        name is None
        or type(name) in (str, int, bool)
        or (type(name) is float and name == name and abs(name) != float("inf"))
    )
