"""JSON-able values, str and bytes: exact round trips, and values that must fall through."""

from __future__ import annotations

import enum
import json
import re
from typing import Any

import pytest

from zenml_bridge import BridgeError
from zenml_bridge.materializers import select


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -(2**80),
        1.5,
        -0.0,
        1e-310,
        0.1 + 0.2,
        [],
        {},
        [1, "two", None, [3.25, {"k": False}]],
        {"z": 1, "a": 2},  # insertion order, not sorted
        {"unicode é ☃": "😀 \x00 \u2028"},
        list(range(1000)),
    ],
)
def test_json_values_come_back_equal_and_same_type(rt: Any, value: Any) -> None:
    back = rt(value)
    assert rt.last_name == "builtins.json"
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, dict):
        assert list(back) == list(value)
    if isinstance(value, float):
        assert repr(back) == repr(value)  # -0.0 stays -0.0, no rounding


def test_json_file_is_one_plain_json_file(rt: Any) -> None:
    rt({"a": [1, 2]})
    assert rt.files() == {"value.json": b'{"a":[1,2]}'}


def test_shared_sublists_are_fine(rt: Any) -> None:
    shared = [1, 2]
    assert rt({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ((1, 2), None),
        ([1, (2, 3)], "value[1] is a tuple (JSON would give it back as a list)"),
        ({1: "a"}, "value has the key 1 (int, not str)"),
        ({"x": [float("nan")]}, "value['x'][0] is nan, which JSON cannot hold"),
        ([float("inf")], "value[0] is inf, which JSON cannot hold"),
        ({"s": {1, 2}}, "value['s'] is a builtins.set"),
        ([10**5000], "value[0] is an int too long to write as JSON"),
        (["\ud83d\ude00"], "value[0] holds a surrogate code point"),  # JSON would join the pair
        ({"\ud800": 1}, "value has a key holding a surrogate code point"),
    ],
)
def test_values_json_would_change_fall_through(value: Any, reason: str | None) -> None:
    with pytest.raises(BridgeError) as info:
        select(value, what="output 'o' of step 's'")
    message = str(info.value)
    assert message.startswith(
        f"No materializer can store output 'o' of step 's' (type builtins.{type(value).__name__})."
    )
    if reason:
        assert f"(builtins.json declined: {reason})" in message


def test_cycles_fall_through() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(
        BridgeError, match=re.escape("builtins.json declined: value[1] contains itself")
    ):
        select(loop)


def test_deep_nesting_falls_through(rt: Any) -> None:
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(BridgeError, match=re.escape("is nested deeper than 200 levels")):
        select(deep)
    fine: list[Any] = []
    for _ in range(150):
        fine = [fine]
    assert rt(fine) == fine


def test_tuple_is_stored_with_pickle_when_allowed(rt: Any) -> None:
    assert rt((1, "a", (2.5,)), allow_pickle=True) == (1, "a", (2.5,))
    assert rt.last_name == "builtins.pickle"


class Color(str, enum.Enum):
    RED = "red"


class Flag(enum.IntEnum):
    ON = 1


class Settings(dict):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (Color.RED, "test_builtin.Color"),
        (Flag.ON, "test_builtin.Flag"),
        (Settings(a=1), "test_builtin.Settings"),
    ],
)
def test_subclasses_of_builtins_are_not_flattened(value: Any, type_name: str) -> None:
    # An enum stored as its str/int would load as a plain str/int: refuse instead of changing it.
    with pytest.raises(BridgeError, match=re.escape(f"(type {type_name})")):
        select(value)


def test_subclass_with_pickle_keeps_its_type(rt: Any) -> None:
    back = rt(Flag.ON, allow_pickle=True)
    assert back is Flag.ON


def test_str_is_a_raw_utf8_file(rt: Any) -> None:
    text = "line one\r\nzwei ü\n\ud800 end"
    assert rt(text) == text
    assert rt.last_name == "builtins.str"
    assert rt("plain ü").encode() == b"plain \xc3\xbc"
    assert rt.files() == {"value.txt": "plain ü".encode()}


def test_bytes_is_a_raw_file(rt: Any) -> None:
    data = bytes(range(256)) * 3
    assert rt(data) == data
    assert rt.last_name == "builtins.bytes"
    assert rt.files() == {"value.bin": data}


def test_bytearray_is_not_bytes() -> None:
    with pytest.raises(BridgeError, match=re.escape("(type builtins.bytearray)")):
        select(bytearray(b"x"))


def test_same_value_same_bytes(rt: Any) -> None:
    # Content hashes of unchanged outputs must not change, or downstream caches miss.
    rt({"a": [1, 2.5, None]})
    first = rt.files()
    rt({"a": [1, 2.5, None]})
    assert rt.files() == first
    assert json.loads(first["value.json"]) == {"a": [1, 2.5, None]}


def test_remote_filesystem(rt_remote: Any) -> None:
    assert rt_remote({"a": 1}) == {"a": 1}
    assert rt_remote("s") == "s"
    assert rt_remote(b"b") == b"b"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ([2**13999, -(2**13999)], True),  # 14,000 bits: the limit, within the text bound
        ([2**14000 - 1] * 3, True),  # 14,000 bits, 4,215 digits: beyond the bound, walked
        ([1, 2**14000], False),  # 14,001 bits
        ([10**4299, *range(2000)], False),  # a long list does not hide a long int
    ],
)
def test_int_lists_are_bounded_exactly_at_the_limit(rt: Any, value: Any, stored: bool) -> None:
    if stored:
        assert rt(value) == value
        assert rt.last_name == "builtins.json"
    else:
        with pytest.raises(BridgeError, match=re.escape("is an int too long to write as JSON")):
            select(value)


def test_an_int_list_changed_between_select_and_save_is_saved_as_it_is(rt: Any) -> None:
    # Through the public API the caller may change the list between select() and save():
    # save() writes the list as it is then. Only inside the runtime's block (nothing runs
    # between the two) is the text select() made kept for the save, and released after.
    from zenml_bridge.materializers import builtin

    folder = rt.root / "direct"
    folder.mkdir()
    first = [1, 2, 3]
    materializer = select(first)
    first.append(4)
    first[0] = 7
    materializer.save(first, str(folder), rt.fs)
    assert (folder / "value.json").read_bytes() == b"[7,2,3,4]"
    assert getattr(builtin._ENCODED, "pending", None) is None

    second, third = [4, 5], [6]
    with builtin.reuse_checked_text():
        materializer = select(second)
        assert builtin._ENCODED.pending == (second, "[4,5]")
        select(third)  # the last selected list's text is the one kept
        materializer.save(second, str(folder), rt.fs)  # another object: encoded now
        assert (folder / "value.json").read_bytes() == b"[4,5]"
        select(third)
        materializer.save(third, str(folder), rt.fs)
        assert (folder / "value.json").read_bytes() == b"[6]"
    assert getattr(builtin._ENCODED, "pending", None) is None
