"""numpy arrays (.npy, no pickle) and scikit-learn estimators (joblib)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from zenml_bridge import BridgeError
from zenml_bridge.materializers import select


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype="int16").reshape(3, 4),
        np.asfortranarray(np.random.default_rng(0).random((5, 3))),
        np.array([], dtype="float64"),
        np.array(3.5),  # 0-d array stays an array
        np.array(["a", "bü"]),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[ms]"),
        np.array([(1, 2.5)], dtype=[("i", "i4"), ("f", "f8")]),
        np.array([1 + 2j]),
        np.array([True, False]),
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
def test_arrays(rt: Any, array: np.ndarray) -> None:
    back = rt(array)
    assert rt.last_name == "numpy.ndarray"
    assert type(back) is np.ndarray
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    # A plain .npy file that numpy reads without pickle.
    loaded = np.load(io.BytesIO(rt.files()["array.npy"]), allow_pickle=False)
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize(
    "scalar", [np.float64(2.5), np.float32(0.1), np.int8(-3), np.bool_(True), np.datetime64(1, "D")]
)
def test_numpy_scalars_keep_their_type(rt: Any, scalar: Any) -> None:
    # np.float64 is a subclass of float: the numpy materializer must win over JSON (MRO order).
    back = rt(scalar)
    assert rt.last_name == "numpy.ndarray"
    assert type(back) is type(scalar) and back == scalar


def test_object_arrays_need_pickle(rt: Any) -> None:
    array = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "(numpy.ndarray declined: its dtype object holds Python objects (.npy would need "
            "pickle))"
        ),
    ):
        select(array)
    back = rt(array, allow_pickle=True)
    assert rt.last_name == "builtins.pickle" and back.tolist() == array.tolist()


def test_masked_array_is_not_flattened() -> None:
    with pytest.raises(BridgeError, match=re.escape("(type numpy.ma.MaskedArray)")):
        select(np.ma.masked_array([1, 2], mask=[0, 1]))


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).random((300, 4))
    return x, (x[:, 0] + x[:, 1] > 1).astype(int)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(C=0.5),
        make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ],
    ids=lambda m: type(m).__name__,
)
def test_estimators_without_opt_in(rt: Any, model: Any) -> None:
    x, y = data()
    model.fit(x, y)
    back = rt(model)  # no allow_pickle: estimators are built-in (see sklearn_models.py)
    assert rt.last_name == "sklearn.joblib"
    assert list(rt.files()) == ["model.joblib"]
    assert type(back) is type(model) and back.get_params().keys() == model.get_params().keys()
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))


def test_unfitted_estimator(rt: Any) -> None:
    back = rt(LogisticRegression(C=3.0))
    assert back.get_params()["C"] == 3.0


def test_same_model_same_bytes_in_another_process(rt: Any, tmp_path: Path) -> None:
    # Two processes fitting the same model must write identical files: content hashes then
    # match and the steps after an unchanged model stay cached.
    script = """
import sys, fsspec, numpy as np
from sklearn.ensemble import RandomForestClassifier
from zenml_bridge.materializers import select
x = np.random.default_rng(0).random((300, 4)); y = (x[:, 0] > .5).astype(int)
m = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
select(m).save(m, sys.argv[1], fsspec.filesystem("file"))
"""
    folders = [tmp_path / "one", tmp_path / "two"]
    procs = []
    for folder in folders:  # both at once: importing scikit-learn takes seconds
        folder.mkdir()
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(folder)]))
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    one, two = ((f / "model.joblib").read_bytes() for f in folders)
    assert one == two
    x = np.random.default_rng(0).random((300, 4))
    rt(RandomForestClassifier(n_estimators=5, random_state=0).fit(x, (x[:, 0] > 0.5).astype(int)))
    assert rt.files()["model.joblib"] == one


class LocalModel(LogisticRegression):
    pass


def test_estimator_class_from_main_needs_a_module(rt: Any) -> None:
    LocalModel.__module__ = "__main__"  # as if defined in the script being run
    try:
        with pytest.raises(
            BridgeError,
            match=re.escape(
                "(sklearn.joblib declined: its class LocalModel is defined in __main__ and could "
                "not be imported by another process; define it in a module)"
            ),
        ):
            select(LocalModel())
    finally:
        LocalModel.__module__ = __name__
    assert rt(LocalModel(C=2.0)).get_params()["C"] == 2.0
