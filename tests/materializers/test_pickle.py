"""Pickle only with @step(allow_pickle=True); cloudpickle for what pickle stores by reference."""

from __future__ import annotations

import pickle
import re
import threading
from typing import Any

import pytest

from zenml_bridge import BridgeError
from zenml_bridge.materializers import select


class Box:
    def __init__(self, content: Any) -> None:
        self.content = content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box) and other.content == self.content

    __hash__ = None  # type: ignore[assignment]


def test_refused_without_opt_in() -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "Or let the step store it with pickle: @step(allow_pickle=True). Pickle is off by "
            "default because loading a pickle from a shared artifact store executes code"
        ),
    ):
        select(Box(1))


def test_stored_with_opt_in(rt: Any) -> None:
    assert rt(Box({"a": (1, 2)}), allow_pickle=True) == Box({"a": (1, 2)})
    assert rt.last_name == "builtins.pickle"
    files = rt.files()
    assert list(files) == ["value.pkl"]
    assert pickle.loads(files["value.pkl"]) == Box({"a": (1, 2)})


def test_lambdas_and_local_classes_use_cloudpickle(rt: Any) -> None:
    square = rt(lambda x: x * x, allow_pickle=True)
    assert square(7) == 49
    assert list(rt.files()) == ["value.cloudpickle.pkl"]

    class Local:
        def __init__(self) -> None:
            self.v = 5

    back = rt(Local(), allow_pickle=True)
    assert back.v == 5 and type(back).__name__ == "Local"
    assert list(rt.files()) == ["value.cloudpickle.pkl"]


def test_unpicklable_value_names_the_type(rt: Any) -> None:
    with pytest.raises(BridgeError, match=re.escape("Cannot pickle a _thread.lock: TypeError:")):
        rt(threading.Lock(), allow_pickle=True)


def test_same_value_same_bytes(rt: Any) -> None:
    rt(Box([1, 2]), allow_pickle=True)
    first = rt.files()
    rt(Box([1, 2]), allow_pickle=True)
    assert rt.files() == first


def test_remote_filesystem(rt_remote: Any) -> None:
    assert rt_remote(Box(3), allow_pickle=True) == Box(3)
