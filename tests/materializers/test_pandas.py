"""DataFrame and Series through the Arrow IPC materializer: index, names and dtypes exact."""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from zenml_bridge import BridgeError
from zenml_bridge.materializers import select
from zenml_bridge.materializers.base import type_name

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
STR_NAN = "na_value" in inspect.signature(pd.StringDtype).parameters


def assert_same(back: pd.DataFrame, df: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        back, df, check_exact=True, check_index_type=True, check_column_type=True
    )
    assert back.dtypes.map(repr).tolist() == df.dtypes.map(repr).tolist()
    assert type(back.index) is type(df.index) and back.index.names == df.index.names
    assert type(back.columns) is type(df.columns)
    for got, want in ((back.index, df.index), (back.columns, df.columns)):
        multi = isinstance(want, pd.MultiIndex)
        levels = list(zip(got.levels, want.levels)) if multi else [(got, want)]
        assert [repr(g.dtype) for g, _ in levels] == [repr(w.dtype) for _, w in levels]
    assert back.attrs == df.attrs
    for label in df.columns[[pd.api.types.is_object_dtype(t) for t in df.dtypes]]:
        # None stays None and NaN stays NaN (assert_frame_equal treats them as equal).
        assert [type(v) for v in back[label]] == [type(v) for v in df[label]], label


def rich_frame() -> pd.DataFrame:
    index = pd.Index([30, 10, 20, 10], name="row id")

    def obj(*values: Any) -> pd.Series:
        return pd.Series(values, dtype=object, index=index)  # same index: nothing to align

    df = pd.DataFrame(
        {
            "f": [1.5, np.nan, -0.0, 1e300],
            "s": ["a", None, "ü", ""],
            "cat": pd.Categorical(["x", "y", "x", None], categories=["y", "x", "z"], ordered=True),
            "when": pd.to_datetime(
                ["2024-01-01 12:00", None, "1970-01-01 00:00", "2262-04-11 0:00"]
            ),
            "when_tz": pd.date_range("2024-03-30", periods=4, freq="D", tz="Europe/Berlin"),
            "when_s": np.array(["2024-01-01", "1900-01-02", "2024-01-03", "3000-01-01"], "M8[s]"),
            "delta": pd.to_timedelta([1, 2, 3, 4], unit="s"),
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "string": pd.array(["a", None, "c", "d"], dtype="string"),
            "string_pa": pd.array(["a", None, "c", "d"], dtype="string[pyarrow]"),
            "flag": [True, False, True, False],
            "u8": np.array([0, 1, 254, 255], dtype="uint8"),
            "f32": np.array([0.1, 0.2, 0.3, 0.4], dtype="float32"),
            "period": pd.period_range("2024-01", periods=4, freq="M"),
            "blob": [b"\x00", b"x", None, b""],
            # Inferred: object on pandas 2, the `str` dtype (NaN for missing) on pandas 3.
            "from_csv": ["a", np.nan, "b", np.nan],  # read_csv marks missing strings with NaN
            # Object columns on both (pandas 3 infers `str` even from an object ndarray).
            "obj_str": obj("a", None, "ü", ""),
            "obj_csv": obj("a", np.nan, "b", np.nan),
            "obj_bool": obj(True, False, True, False),
            "obj_nan": obj(np.nan, np.nan, np.nan, np.nan),
            "string_py": pd.array(["a", None, "c", "d"], dtype="string[python]"),
        },
        index=index,
    )
    if STR_NAN:  # pandas >= 2.3: the NaN variants (pandas 3's default `str` is the pyarrow one)
        for storage in ("python", "pyarrow"):
            dtype = pd.StringDtype(storage, na_value=np.nan)
            df[f"str_nan_{storage}"] = pd.array(["a", None, "c", "d"], dtype=dtype)
    df.attrs["source"] = "test"
    return df


def test_rich_frame_has_the_columns_it_tests() -> None:
    # Guards the fixture itself: no column silently became all-missing or another dtype.
    df = rich_frame()
    assert df["obj_bool"].tolist() == [True, False, True, False]
    assert [type(v) for v in df["obj_csv"]] == [str, float, str, float]
    assert df["obj_str"].tolist() == ["a", None, "ü", ""]
    kinds = {label: repr(dtype) for label, dtype in df.dtypes.items()}
    assert kinds["obj_str"] == kinds["obj_csv"] == kinds["obj_bool"] == "dtype('O')"
    assert kinds["string_py"] == repr(pd.StringDtype("python"))
    assert kinds["string_pa"] == repr(pd.StringDtype("pyarrow"))
    if PANDAS_3:  # what pandas 3 itself infers for plain str lists
        assert kinds["s"] == kinds["from_csv"] == repr(pd.StringDtype("pyarrow", na_value=np.nan))
    else:
        assert kinds["s"] == kinds["from_csv"] == "dtype('O')"


def test_rich_frame_round_trip(rt: Any) -> None:
    df = rich_frame()
    back = rt(df)
    assert rt.last_name == "pandas.dataframe"
    assert list(rt.files()) == ["data.arrow"]
    assert_same(back, df)


@pytest.mark.parametrize(
    "df",
    [
        pd.DataFrame(),
        pd.DataFrame({"a": pd.Series([], dtype="float32")}),
        pd.DataFrame(np.arange(6.0).reshape(2, 3)),  # RangeIndex columns
        pd.DataFrame({0: [1.0], 1: [2.0]}),  # int column labels
        pd.DataFrame({"a": [1, 2]}, index=pd.RangeIndex(5, 9, 2, name="r")),
        pd.DataFrame({"a": [1, 2]}, index=pd.date_range("2024-01-01", periods=2, freq="h")),
        pd.DataFrame({"a": [1, 2]}, index=pd.timedelta_range("1s", periods=2, freq="s")),
        pd.DataFrame({"a": [1, 2]}, index=pd.Index(["p", "q"], name="k")),
        pd.DataFrame({"a": [1, 2]}, index=pd.CategoricalIndex(["u", "v"])),
        pd.DataFrame(
            {"a": [1, 2]}, index=pd.MultiIndex.from_tuples([("x", 1), ("y", 2)], names=["l", "n"])
        ),
        pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])),
        pd.DataFrame({"a": [1]}, index=pd.Index([5], name="a")),  # index named like a column
        pd.DataFrame({"a": [None, None]}),
        pd.DataFrame({"a": pd.array([1, None], dtype="int64[pyarrow]")}),
        pd.DataFrame({"a": pd.interval_range(0, 2)}),
        # Label and category dtypes pyarrow on pandas 3 would read back as `str`.
        pd.DataFrame({"a": [1, 2]}, index=pd.Index(["p", None], dtype=object, name="k")),
        pd.DataFrame({"a": [1, 2]}, index=pd.Index(["p", None], dtype="string")),
        pd.DataFrame({"a": [1, 2]}, index=pd.Index(["p", None])),  # str on 3, object on 2
        pd.DataFrame([[1, 2]], columns=pd.Index(["a", "b"], dtype=object)),
        pd.DataFrame([[1, 2]], columns=pd.Index(["a", "b"], dtype="string")),
        pd.DataFrame(
            {"a": [1, 2]},
            index=pd.MultiIndex.from_arrays([pd.Index(["x", "y"], dtype=object), [1, 2]]),
        ),
        pd.DataFrame({"c": pd.Categorical(pd.Index(["x", "y", None], dtype=object))}),
        pd.DataFrame({"c": pd.Categorical(pd.Index(["x", "y"], dtype="string"))}),
    ],
    ids=lambda df: "x".join(map(str, df.shape)) + "-" + "-".join(map(str, df.columns))[:20],
)
def test_shapes_indexes_and_labels(rt: Any, df: pd.DataFrame) -> None:
    assert_same(rt(df), df)


def test_series_round_trip(rt: Any) -> None:
    for series in [
        pd.Series([1.5, None, 3.0], index=pd.Index(["a", "b", "c"], name="k"), name="price"),
        pd.Series(pd.Categorical(["x", "y"]), name=None),
        pd.Series([1, 2], name=7),
        pd.Series(pd.date_range("2024", periods=3, tz="UTC", freq="D"), name="t"),
        pd.Series(["a", None], dtype="string[pyarrow]", name="s"),
        pd.Series(["a", None], dtype="string[python]", name="s"),
        pd.Series(["a", None], name="s"),  # str (NaN) on pandas 3, object (None) on 2
        pd.Series(["a", None], dtype=object, name="s"),
    ]:
        back = rt(series)
        assert rt.last_name == "pandas.series"
        pd.testing.assert_series_equal(back, series, check_exact=True, check_index_type=True)
        assert back.name == series.name and type(back.name) is type(series.name)
        assert repr(back.dtype) == repr(series.dtype)
        assert [type(v) for v in back] == [type(v) for v in series]


def test_big_float_frame(rt: Any) -> None:
    df = pd.DataFrame(np.random.default_rng(1).random((200_000, 10)), columns=list("abcdefghij"))
    assert_same(rt(df), df)


def test_remote_store_is_lz4_compressed_and_reads_back(rt: Any, rt_remote: Any) -> None:
    df = pd.DataFrame({"n": np.zeros(100_000, dtype="int64"), "s": ["same"] * 100_000})
    assert_same(rt_remote(df), df)
    data = rt_remote.files()["data.arrow"]
    rt(df)
    assert len(data) < len(rt.files()["data.arrow"]) / 2  # local files stay uncompressed
    schema = pa.ipc.open_file(pa.BufferReader(data)).schema
    assert schema.pandas_metadata is not None


def test_local_store_is_uncompressed_arrow(rt: Any) -> None:
    df = pd.DataFrame({"n": np.arange(10_000, dtype="int64")})
    rt(df)
    data = rt.files()["data.arrow"]
    assert len(data) > 80_000
    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    assert table.column("n").to_pylist() == list(range(10_000))


def test_same_frame_same_bytes(rt: Any) -> None:
    rt(rich_frame())
    first = rt.files()
    rt(rich_frame())
    assert rt.files() == first


@pytest.mark.parametrize(
    ("df", "reason"),
    [
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names ['a']"),
        (pd.DataFrame({"c": [1 + 2j]}), "column 'c' holds complex numbers"),
        (pd.DataFrame({"m": [1, "x"]}), "column 'm' is an object column holding mixed-integer"),
        (pd.DataFrame({"l": [[1, 2], [3]]}), "column 'l' is an object column holding mixed"),
        (
            # dtype=object: pandas 3 would infer its `str` dtype, which makes both NaN.
            pd.DataFrame({"n": pd.Series(["a", None, np.nan], dtype=object)}),
            "column 'n' marks missing values with NaN and None; Arrow keeps one kind",
        ),
    ],
)
def test_frames_arrow_would_change_fall_through(rt: Any, df: pd.DataFrame, reason: str) -> None:
    with pytest.raises(BridgeError) as info:
        select(df, what="output 'df' of step 'load'")
    message = str(info.value)
    # The name the class reports: pandas.core.frame.DataFrame on pandas 2, pandas.DataFrame on 3.
    assert message.startswith(
        f"No materializer can store output 'df' of step 'load' (type {type_name(pd.DataFrame)})."
    )
    assert f"(pandas.dataframe declined: {reason}" in message
    assert "@step(allow_pickle=True)" in message
    back = rt(df, allow_pickle=True)
    assert rt.last_name == "builtins.pickle"
    pd.testing.assert_frame_equal(back, df)


def test_dataframe_subclass_is_not_flattened() -> None:
    class MyFrame(pd.DataFrame):
        pass

    with pytest.raises(BridgeError, match=re.escape("declined: it is a subclass of DataFrame")):
        select(MyFrame({"a": [1]}))
