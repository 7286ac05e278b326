"""Selection by MRO (most specific first), register(), entry points, get(), the messages."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from zenml_bridge import BridgeError
from zenml_bridge.materializers import (
    Materializer,
    available,
    get,
    join,
    register,
    registry,
    select,
    unregister,
    version_of,
)


class Animal:
    def __init__(self, name: str) -> None:
        self.name = name


class Dog(Animal):
    pass


class Puppy(Dog):
    pass


class Cat(Animal):
    pass


class _TextMaterializer(Materializer):
    def save(self, value: Any, folder: str, fs: Any) -> None:
        with fs.open(join(folder, "name.txt"), "w") as f:
            f.write(f"{type(value).__name__}:{value.name}")

    def load(self, folder: str, fs: Any) -> Any:
        with fs.open(join(folder, "name.txt"), "r") as f:
            kind, name = f.read().split(":")
        return {"Dog": Dog, "Puppy": Puppy, "Cat": Cat, "Animal": Animal}[kind](name)


class AnimalMaterializer(_TextMaterializer):
    name = "test.animal"
    handles = (f"{__name__}.Animal",)


class DogMaterializer(_TextMaterializer):
    name = "test.dog"
    version = "3"
    handles = (f"{__name__}.Dog",)

    def reject_reason(self, value: Any) -> str | None:
        return "no dogs called Rex" if value.name == "Rex" else None


@pytest.fixture
def animals() -> Iterator[None]:
    register(AnimalMaterializer)
    register(DogMaterializer)
    yield
    unregister("test.animal")
    unregister("test.dog")


def test_most_specific_class_of_the_mro_wins(animals: None) -> None:
    assert select(Dog("a")).name == "test.dog"
    assert select(Puppy("b")).name == "test.dog"  # Puppy -> Dog -> Animal
    assert select(Cat("c")).name == "test.animal"
    assert select(Animal("d")).name == "test.animal"


def test_a_declining_candidate_passes_to_the_next(animals: None) -> None:
    assert select(Dog("Rex")).name == "test.animal"


def test_registered_round_trip_and_version(animals: None, rt: Any) -> None:
    back = rt(Puppy("p"))
    assert type(back) is Puppy and back.name == "p"
    assert version_of("test.dog") == "3" and get("test.dog").version == "3"
    assert ("test.dog", "3", (f"{__name__}.Dog",), "register()") in available()


def test_register_beats_the_built_in_for_the_same_class() -> None:
    @register
    class ListMaterializer(Materializer):
        name = "test.list"
        handles = ("builtins.list",)

    try:
        assert select([1, 2]).name == "test.list"
        assert select({"a": 1}).name == "builtins.json"
    finally:
        unregister("test.list")
    assert select([1, 2]).name == "builtins.json"


def test_opt_in_materializers_are_skipped_without_allow_pickle() -> None:
    @register
    class RiskyDict(Materializer):
        name = "test.risky"
        handles = ("builtins.dict",)
        requires_opt_in = True

    try:
        assert select({"a": 1}).name == "builtins.json"
        assert select({"a": 1}, allow_pickle=True).name == "test.risky"
    finally:
        unregister("test.risky")


def test_bool_and_int_and_none_are_json() -> None:
    assert {select(v).name for v in (True, 1, None, 2.5)} == {"builtins.json"}


def test_nothing_handles_message() -> None:
    with pytest.raises(BridgeError) as info:
        select(Cat("c"), what="output 'pet' of step 'adopt'")
    assert str(info.value) == (
        f"No materializer can store output 'pet' of step 'adopt' (type {__name__}.Cat).\n"
        "Register one for it: subclass zenml_bridge.materializers.Materializer with "
        f"handles = ('{__name__}.Cat',) and either call "
        "zenml_bridge.materializers.register(YourClass) in the module that defines the step, "
        "or publish it in the entry-point group 'zenml_bridge.materializers' "
        "(see docs/materializers.md).\n"
        "Or let the step store it with pickle: @step(allow_pickle=True). Pickle is off by "
        "default because loading a pickle from a shared artifact store executes code: anyone "
        "who can write the store could run code in every step that reads it."
    )


def test_with_allow_pickle_the_message_does_not_suggest_it() -> None:
    class Unpicklable:
        def __reduce__(self) -> Any:
            raise TypeError("no")

    # pickle accepts every object at selection; only save can fail, so use an empty registry
    # view: an explicit name that does not fit.
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "The materializer 'builtins.json' chosen for a value handles builtins.NoneType, "
            "builtins.bool, builtins.int, builtins.float, builtins.list, builtins.dict, but the "
            f"value is a {__name__}.test_with_allow_pickle_the_message_does_not_suggest_it."
            "<locals>.Unpicklable. Choose a materializer for that type or remove the explicit "
            "choice."
        ),
    ):
        select(Unpicklable(), explicit="builtins.json", allow_pickle=True)


def test_explicit_choice() -> None:
    assert select([1], explicit="builtins.pickle", allow_pickle=True).name == "builtins.pickle"
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "The materializer 'builtins.pickle' chosen for output 'o' is pickle-based. Add "
            "@step(allow_pickle=True) to the step to allow it. Pickle is off by default"
        ),
    ):
        select([1], explicit="builtins.pickle", what="output 'o'")
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "The materializer 'builtins.json' chosen for a value cannot store it: value[0] is "
            "nan, which JSON cannot hold."
        ),
    ):
        select([float("nan")], explicit="builtins.json")


def test_unknown_names() -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "No materializer is named 'builtins.jsn'. Did you mean 'builtins.json'? Install the "
            "package that provides it (entry-point group 'zenml_bridge.materializers') or "
            "register() it in this process before loading the artifact."
        ),
    ):
        get("builtins.jsn")
    with pytest.raises(BridgeError, match=re.escape("No materializer is named 'gone.away'.")):
        version_of("gone.away")


def test_register_refuses_incomplete_classes() -> None:
    class Nameless(Materializer):
        handles = ("builtins.int",)

    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The materializer {__name__}.test_register_refuses_incomplete_classes.<locals>."
            "Nameless from register() must set `name` (a stable id like "
            "'mylib.frame') and `handles` (a tuple of dotted class names like "
            "'mylib.frame.Frame')."
        ),
    ):
        register(Nameless)
    with pytest.raises(BridgeError, match=re.escape("not a subclass of")):
        register(dict)  # type: ignore[arg-type]


def test_builtin_table_matches_the_classes() -> None:
    for entry in registry.BUILTINS:
        module, _, attr = entry.target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        assert (cls.name, cls.version, cls.handles) == (entry.name, entry.version, entry.handles)
        assert get(entry.name).__class__ is cls
    names = [e.name for e in registry.BUILTINS]
    assert len(names) == len(set(names))
    pickled = {e.name for e in registry.BUILTINS if get(e.name).pickle_based}
    assert pickled == {"sklearn.joblib", "builtins.pickle"}
    assert {e.name for e in registry.BUILTINS if get(e.name).requires_opt_in} == {"builtins.pickle"}


def _run(code: str, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env_path = [str(path)] if path else []
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ":".join(env_path + sys.path[1:])},
        timeout=300,
    )


def test_registry_imports_nothing_heavy() -> None:
    result = _run(
        """
        import sys, zenml_bridge
        import zenml_bridge.materializers.registry as r
        from zenml_bridge.materializers import select, version_of
        assert select([1, {"a": None}]).name == "builtins.json"
        versions = [version_of(n) for n in ("pandas.dataframe", "numpy.ndarray", "sklearn.joblib")]
        heavy = {"pandas", "numpy", "sklearn", "pyarrow", "joblib", "scipy"} & set(sys.modules)
        print(sorted(heavy), versions)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] ['1', '1', '1']"


PLUGIN = """
from zenml_bridge.materializers import Materializer, join

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

class Point3(Point):
    pass

class PointMaterializer(Materializer):
    name = "demo.point"
    version = "2"
    handles = ("zb_demo_plugin.Point",)

    def save(self, value, folder, fs):
        with fs.open(join(folder, "point.txt"), "w") as f:
            f.write(f"{value.x},{value.y}")

    def load(self, folder, fs):
        with fs.open(join(folder, "point.txt"), "r") as f:
            return Point(*map(int, f.read().split(",")))

class TupleMaterializer(Materializer):
    name = "demo.tuple"
    handles = ("builtins.tuple",)
"""


def _install_plugin(root: Path, entry_points: str) -> None:
    """A real installed distribution: a package plus a .dist-info with entry_points.txt."""
    (root / "zb_demo_plugin").mkdir()
    (root / "zb_demo_plugin" / "__init__.py").write_text(PLUGIN)
    info = root / "zb_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zb-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zenml_bridge.materializers]\n{entry_points}")


def test_entry_point_plugin(tmp_path: Path) -> None:
    _install_plugin(
        tmp_path,
        "demo.point = zb_demo_plugin:PointMaterializer\n"
        "demo.tuple = zb_demo_plugin:TupleMaterializer\n",
    )
    folder = tmp_path / "artifact"
    folder.mkdir()
    result = _run(
        f"""
        import json, fsspec
        from zenml_bridge.materializers import available, get, select, version_of
        from zb_demo_plugin import Point3
        m = select(Point3(1, 2))
        m.save(Point3(1, 2), {str(folder)!r}, fsspec.filesystem("file"))
        p = get("demo.point").load({str(folder)!r}, fsspec.filesystem("file"))
        rows = [row for row in available() if row[0].startswith("demo.")]
        print(json.dumps([m.name, version_of("demo.point"), [p.x, p.y],
                          select((1, 2), allow_pickle=True).name, rows]))
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "demo.point",
        "2",
        [1, 2],
        "demo.tuple",  # builtins.tuple is more specific than pickle's builtins.object
        [
            ["demo.point", "2", ["zb_demo_plugin.Point"], "entry point (zb-demo-plugin)"],
            ["demo.tuple", "1", ["builtins.tuple"], "entry point (zb-demo-plugin)"],
        ],
    ]


def test_entry_point_must_be_named_like_the_class(tmp_path: Path) -> None:
    _install_plugin(tmp_path, "point = zb_demo_plugin:PointMaterializer\n")
    result = _run(
        """
        from zenml_bridge import BridgeError
        from zenml_bridge.materializers import select
        try:
            select(1)
        except BridgeError as exc:
            print(exc)
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "The materializer entry point 'point = zb_demo_plugin:PointMaterializer' (group "
        "'zenml_bridge.materializers') points at a class named 'demo.point'. Name the entry "
        "point exactly like the class's `name` so stored artifacts find it again."
    )


class Thing:
    pass


class _Named(Materializer):
    name = "test.named"
    version = "7"
    handles: ClassVar[tuple[str, ...]] = (f"{__name__}.Thing",)


def test_ref_for_cache_keys() -> None:
    assert _Named.ref() == "test.named@7"
    assert repr(get("builtins.json")) == "<materializer builtins.json@1>"


def _alias_package(monkeypatch: pytest.MonkeyPatch) -> tuple[type, type, type, list[str]]:
    """A package laid out like pandas: classes defined in a private module, exported on top.

    ``Widget`` reports where it is defined (like pandas 2's DataFrame), ``Gadget`` reports the
    public package (like pandas 3's), ``Impostor`` has Widget's name but is another class.
    """
    top, impl = types.ModuleType("zb_alias_pkg"), types.ModuleType("zb_alias_pkg._impl")
    looked_up: list[str] = []

    def module_getattr(name: str) -> Any:  # lazy loaders and deprecations live here
        looked_up.append(name)
        raise AttributeError(name)

    top.__getattr__ = module_getattr  # type: ignore[method-assign]
    widget = type("Widget", (), {"__module__": "zb_alias_pkg._impl"})
    gadget = type("Gadget", (), {"__module__": "zb_alias_pkg"})
    impostor = type("Widget", (), {"__module__": "zb_alias_pkg.other"})
    impl.Widget, impl.Gadget = widget, gadget  # type: ignore[attr-defined]
    top.Widget, top.Gadget, top._impl = widget, gadget, impl  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zb_alias_pkg", top)
    monkeypatch.setitem(sys.modules, "zb_alias_pkg._impl", impl)
    return widget, gadget, impostor, looked_up


@pytest.mark.parametrize(
    "handle", ["zb_alias_pkg.Widget", "zb_alias_pkg._impl.Widget"], ids=["public", "defining"]
)
def test_a_handle_matches_the_class_under_any_imported_path(
    monkeypatch: pytest.MonkeyPatch, handle: str
) -> None:
    widget, gadget, impostor, looked_up = _alias_package(monkeypatch)

    class WidgetMaterializer(Materializer):
        name = "test.widget"
        handles = (handle, "zb_alias_pkg._impl.Gadget", "zb_alias_pkg.Missing")

    register(WidgetMaterializer)
    try:
        assert select(widget()).name == "test.widget"
        assert select(gadget()).name == "test.widget"  # reports zb_alias_pkg.Gadget
        assert select(type("Sub", (widget,), {})()).name == "test.widget"  # through the MRO
        assert select(widget(), explicit="test.widget").name == "test.widget"
        with pytest.raises(BridgeError, match=re.escape("(type zb_alias_pkg.other.Widget)")):
            select(impostor())  # same name, another class: not matched
        assert looked_up == []  # resolved through __dict__ only: no module __getattr__ ran
    finally:
        unregister("test.widget")


@pytest.mark.parametrize("handle", ["pandas.DataFrame", "pandas.core.frame.DataFrame"])
def test_pandas_handles_work_on_pandas_2_and_3(handle: str) -> None:
    # pandas 2 reports pandas.core.frame.DataFrame, pandas 3 pandas.DataFrame: both must match.
    pd = pytest.importorskip("pandas")

    @register
    class MyFrames(Materializer):
        name = "test.frames"
        handles = (handle,)

    try:
        assert select(pd.DataFrame({"a": [1]})).name == "test.frames"
    finally:
        unregister("test.frames")
    assert select(pd.DataFrame({"a": [1]})).name == "pandas.dataframe"
    assert select(pd.Series([1])).name == "pandas.series"
