"""A cache that never lies (issue 9, items 1-5, 10, 13): the code hash covers the code that
runs, workers refuse other code, equal parameters give equal keys, damaged cached artifacts are
a miss, cached steps keep their metrics, outputs are type-checked, pickles load verified bytes.

Every test that touches the metadata store runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_runtime_cli import cli

from zenml_bridge import ir
from zenml_bridge.dsl import codehash
from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers import registry
from zenml_bridge.materializers.pickles import PickleMaterializer
from zenml_bridge.runtime import load_run, run_pipeline
from zenml_bridge.stores import artifacts as artifact_store
from zenml_bridge.stores.artifacts import ArtifactStore
from zenml_bridge.stores.metadata import MetadataStore

Project = Callable[..., ModuleType]


@pytest.fixture
def stores(
    stores_env: dict[str, str], metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Local artifacts in tmp_path and the metadata store on each database."""
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", metadata_url)
    return {**stores_env, "ZENML_BRIDGE_METADATA_URL": metadata_url}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """Write modules into a project folder on sys.path and (re)import one of them fresh."""
    root = tmp_path / "project"
    root.mkdir()
    sys.path.insert(0, str(root))
    written: set[str] = set()

    def load(main: str, **files: str) -> ModuleType:
        for name, text in files.items():
            path = root / f"{name.replace('.', '/')}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            written.add(name)
        for name in written:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(main)

    load.root = root  # type: ignore[attr-defined]
    try:
        yield load
    finally:
        sys.path.remove(str(root))
        for name in written:
            sys.modules.pop(name, None)


STEPS = """
from zenml_bridge import pipeline, step

import zbc_helpers

OFFSET = {offset}


@step
def load(rows: int = 4) -> list[int]:
    return list(range(rows))


@step
def scaled(data: list[int]) -> list[int]:
    return [zbc_helpers.scale(x) + OFFSET for x in data]


@pipeline
def flow(rows: int = 4) -> None:
    scaled(load(rows=rows))
"""

HELPERS = """
FACTOR = {factor}


def scale(x: int) -> int:
    return x * FACTOR
"""


def _statuses(run: Any) -> dict[str, str]:
    return {name: s.status for name, s in run.steps.items()}


# -- 1: the key covers the step's module and its project-local imports ---------------------------


def test_helper_and_module_constant_changes_are_not_served_from_cache(
    stores: dict[str, str], project: Project
) -> None:
    module = project(
        "zbc_steps", zbc_steps=STEPS.format(offset=0), zbc_helpers=HELPERS.format(factor=2)
    )
    assert module.flow(rows=3).steps["scaled"].outputs["output"].load() == [0, 2, 4]
    assert set(_statuses(module.flow(rows=3)).values()) == {"cached"}

    module = project("zbc_steps", zbc_helpers=HELPERS.format(factor=30))  # a helper changed
    run = module.flow(rows=3)
    assert run.steps["scaled"].status == "completed"
    assert run.steps["scaled"].outputs["output"].load() == [0, 30, 60]

    module = project("zbc_steps", zbc_steps=STEPS.format(offset=100))  # a module constant
    run = module.flow(rows=3)
    assert run.steps["scaled"].status == "completed"
    assert run.steps["scaled"].outputs["output"].load() == [100, 130, 160]


def test_function_policy_covers_only_the_function(stores: dict[str, str], project: Project) -> None:
    text = STEPS.replace("@step\ndef scaled", '@step(cache_code="function")\ndef scaled')
    module = project(
        "zbc_steps", zbc_steps=text.format(offset=0), zbc_helpers=HELPERS.format(factor=2)
    )
    module.flow(rows=3)
    module = project("zbc_steps", zbc_helpers=HELPERS.format(factor=30))
    # Documented: "function" ignores helpers, so the old result is served.
    assert module.flow(rows=3).steps["scaled"].status == "cached"


# -- 2: a worker refuses code whose hash differs from the IR's ---------------------------------


def _entrypoint(
    ir_path: Path, sha: str, step: str, run_id: str, pythonpath: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    child = dict(os.environ)
    child.update(env)
    child["PYTHONPATH"] = os.pathsep.join([str(pythonpath), child.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", str(ir_path),
         "--ir-sha256", sha, "--step", step, "--run-id", run_id],
        env=child, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_entrypoint_refuses_drifted_code(
    stores: dict[str, str], project: Project, tmp_path: Path
) -> None:
    module = project(
        "zbc_steps", zbc_steps=STEPS.format(offset=0), zbc_helpers=HELPERS.format(factor=2)
    )
    pipeline_ir = module.flow.to_ir()
    ir_path = tmp_path / "flow.json"
    ir_path.write_text(ir.dumps(pipeline_ir))
    sha = ir.sha256(pipeline_ir)
    root = project.root  # type: ignore[attr-defined]
    assert _entrypoint(ir_path, sha, "load", "r1", root, stores).returncode == 0

    (root / "zbc_helpers.py").write_text(HELPERS.format(factor=777))  # the image drifted
    done = _entrypoint(ir_path, sha, "scaled", "r1", root, stores)
    assert done.returncode != 0
    expected = pipeline_ir.step("scaled").code_hash
    codehash.clear_memo()
    actual = codehash.code_hash(project("zbc_steps").scaled.func, "module")[1]
    assert actual != expected
    assert (
        f"Step 'scaled' will not run: the code here hashes to {actual}, but the pipeline IR "
        f"records {expected}" in done.stderr
    )
    assert "drifted image" in done.stderr and "--no-code-archive" in done.stderr
    metadata = MetadataStore(stores["ZENML_BRIDGE_METADATA_URL"])
    assert metadata.step_runs("r1")["scaled"]["status"] == "failed"
    # nothing was stored under the IR's cache key: the original code is not served it later
    (root / "zbc_helpers.py").write_text(HELPERS.format(factor=2))
    assert _entrypoint(ir_path, sha, "load", "r2", root, stores).returncode == 0
    assert _entrypoint(ir_path, sha, "scaled", "r2", root, stores).returncode == 0
    assert metadata.step_runs("r2")["scaled"]["status"] == "completed"
    assert load_run("r2").steps["scaled"].outputs["output"].load() == [0, 2, 4, 6]


def test_local_runner_refuses_an_ir_whose_code_hash_differs(
    stores: dict[str, str], project: Project
) -> None:
    module = project(
        "zbc_steps", zbc_steps=STEPS.format(offset=0), zbc_helpers=HELPERS.format(factor=2)
    )
    good = module.flow.to_ir()
    stale = "f" * 64
    bad = dataclasses.replace(
        good,
        steps=tuple(
            dataclasses.replace(s, code_hash=stale) if s.name == "scaled" else s for s in good.steps
        ),
    )
    run = run_pipeline(bad, {"rows": 2}, raise_on_failure=False)
    assert run.steps["scaled"].status == "failed"
    assert f"but the pipeline IR records {stale} (cache_code='module', zbc_steps:scaled)" in str(
        run.steps["scaled"].error
    )
    assert MetadataStore(stores["ZENML_BRIDGE_METADATA_URL"]).cache_entries() == 1  # load only


# -- 3: a damaged cached artifact is a miss, and its entry is replaced -------------------------


def _flip(folder: Path) -> None:
    path = sorted(p for p in folder.rglob("*") if p.is_file())[0]
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    path = sorted(p for p in folder.rglob("*") if p.is_file())[0]
    path.write_bytes(path.read_bytes()[:-3])


def _delete_file(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.unlink()


@pytest.mark.parametrize("damage", [_flip, _truncate, _delete_file])
@pytest.mark.parametrize("new_process", [False, True], ids=["same-process", "new-process"])
def test_damaged_cached_artifact_is_a_miss_and_replaced(
    stores: dict[str, str],
    project: Project,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    new_process: bool,
) -> None:
    module = project(
        "zbc_steps", zbc_steps=STEPS.format(offset=0), zbc_helpers=HELPERS.format(factor=2)
    )
    first = module.flow(rows=5)
    folder = Path(first.steps["load"].outputs["output"].uri)
    damage(folder)
    if new_process:  # what another process knows: only the recorded stamp
        artifact_store._VERIFIED.clear()
    capsys.readouterr()
    second = module.flow(rows=5)
    assert second.status == "completed"
    assert second.steps["load"].status == "completed"  # not served from the damaged entry
    assert "warning: the cached output 'output' of step 'load' cannot be used" in (
        capsys.readouterr().err
    )
    third = module.flow(rows=5)
    assert _statuses(third) == {"load": "cached", "scaled": "cached"}
    assert third.steps["load"].outputs["output"].uri == second.steps["load"].outputs["output"].uri
    assert third.steps["load"].outputs["output"].load() == [0, 1, 2, 3, 4]


def test_intact_cached_artifacts_are_not_rehashed_by_another_process(
    stores: dict[str, str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = project(
        "zbc_steps", zbc_steps=STEPS.format(offset=0), zbc_helpers=HELPERS.format(factor=2)
    )
    module.flow(rows=5)
    artifact_store._VERIFIED.clear()
    hashed: list[str] = []
    original = artifact_store._hash_local
    monkeypatch.setattr(
        artifact_store, "_hash_local", lambda folder: hashed.append(folder) or original(folder)
    )
    assert set(_statuses(module.flow(rows=5)).values()) == {"cached"}
    assert hashed == []  # size + manifest + stat signature matched the recorded stamp


# -- 4: equal parameter values give equal keys -------------------------------------------------


FLOATS = """
from zenml_bridge import pipeline, step


@step
def train(C: float = 1.0, weights: list[float] = [1.0, 2.0]) -> str:
    return f"{type(C).__name__}:{C}:{weights}"


@pipeline
def fit(C: float = 1.0) -> None:
    train(C=C)


@pipeline
def fit_constant() -> None:
    train(C=1, weights=[1, 2])
"""


def test_int_for_a_float_parameter_gives_the_same_key(
    stores: dict[str, str], project: Project
) -> None:
    module = project("zbc_floats", zbc_floats=FLOATS)
    first = module.fit()
    assert first.steps["train"].outputs["output"].load() == "float:1.0:[1.0, 2.0]"
    again = run_pipeline(module.fit, {"C": 1})
    assert again.steps["train"].status == "cached"
    assert again.steps["train"].cache_key == first.steps["train"].cache_key
    constant = module.fit_constant()
    assert constant.steps["train"].cache_key == first.steps["train"].cache_key
    assert constant.steps["train"].status == "cached"


# -- 5: cached steps keep the metrics and metadata of the run that produced them ---------------


METRICS = """
from zenml_bridge import get_step_context, pipeline, step


@step
def train(rows: int = 3) -> int:
    context = get_step_context()
    context.log_metric("accuracy", 0.75)
    context.log_metadata({"rows_seen": rows})
    return rows


@pipeline
def measured(rows: int = 3) -> None:
    train(rows=rows)
"""


def test_cached_steps_keep_metrics_and_metadata(
    stores: dict[str, str], project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    module = project("zbc_metrics", zbc_metrics=METRICS)
    first = module.measured()
    second = module.measured()
    assert second.steps["train"].status == "cached"
    loaded = load_run(second.run_id).steps["train"]
    assert loaded.metrics == {"accuracy": 0.75}
    assert loaded.metadata == {"rows_seen": 3}
    code, out, _ = cli("runs", "show", second.run_id, capsys=capsys)
    assert code == 0
    assert 'train: metrics {"accuracy": 0.75} metadata {"rows_seen": 3}' in out
    code, out, _ = cli("runs", "compare", first.run_id, second.run_id, capsys=capsys)
    assert code == 0
    assert re.search(r"train\.accuracy\s+0\.75\s+0\.75", out), out


# -- 10: an output's declared type is checked at run time --------------------------------------


TYPES = """
from typing import Any, Optional

import numpy as np
import pandas as pd

from zenml_bridge import pipeline, step


class Frame(pd.DataFrame):
    pass


@step
def text() -> int:
    return "x"


@step
def nothing() -> int:
    return None


@step
def fine_any() -> Any:
    return "anything"


@step
def fine_bare():
    return "anything"


@step
def fine_optional() -> Optional[int]:
    return None


@step
def fine_generic() -> list[int]:
    return ["origin only"]


@step
def fine_numpy_int() -> int:
    return np.int64(3)


@step
def fine_float_from_int() -> float:
    return 2


@step
def fine_numpy_float() -> np.float64:
    return 0.5


@step(allow_pickle=True)  # a subclass passes the type check (parquet declines subclasses)
def fine_subclass() -> pd.DataFrame:
    return Frame({"a": [1]})


@pipeline
def wrong_text() -> None:
    text()


@pipeline
def wrong_none() -> None:
    nothing()


@pipeline
def all_fine() -> None:
    fine_any()
    fine_bare()
    fine_optional()
    fine_generic()
    fine_numpy_int()
    fine_float_from_int()
    fine_numpy_float()
    fine_subclass()
"""


@pytest.mark.parametrize(
    ("pipeline_name", "step_name", "actual"),
    [("wrong_text", "text", "str"), ("wrong_none", "nothing", "None")],
)
def test_output_of_the_wrong_type_fails_the_step(
    stores: dict[str, str], project: Project, pipeline_name: str, step_name: str, actual: str
) -> None:
    module = project("zbc_types", zbc_types=TYPES)
    message = (
        f"Step '{step_name}' output 'output' is declared int but the step returned {actual}. "
        "Return a value of that type, or change the return annotation (Any skips the check)."
    )
    with pytest.raises(BridgeError, match=re.escape(message)):
        getattr(module, pipeline_name)()
    run = load_run("latest")
    assert run.status == "failed"
    assert run.steps[step_name].status == "failed"
    assert run.steps[step_name].outputs == {}
    assert message in str(run.steps[step_name].error)


def test_outputs_that_fit_their_declared_type_pass(
    stores: dict[str, str], project: Project
) -> None:
    module = project("zbc_types", zbc_types=TYPES)
    run = module.all_fine()
    assert set(_statuses(run).values()) == {"completed"}
    assert run.steps["fine_numpy_int"].outputs["output"].load() == 3


# -- 13: a pickle is loaded from the very bytes whose hash was checked -------------------------


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned > /dev/null",))


class SwappingPickle(PickleMaterializer):
    """Replaces the file the moment the store hands over to the loader: the race of issue 9."""

    def load(self, folder: str, fs: Any) -> Any:
        Path(folder, "value.pkl").write_bytes(pickle.dumps(_Payload()))
        return super().load(folder, fs)


def test_pickle_is_loaded_from_the_verified_bytes(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    uri, sha, _ = store.write(
        "p", "r", "s", "o", lambda folder, fs: PickleMaterializer().save({"ok": 1}, folder, fs)
    )
    # The file is swapped after the hash check: the verified bytes are what gets unpickled.
    assert store.read(uri, sha, SwappingPickle().load) == {"ok": 1}
    Path(uri, "value.pkl").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(BridgeError, match=re.escape(f"The artifact at {uri} is corrupted")):
        store.read(uri, sha, PickleMaterializer().load)  # a swapped file itself is refused


def test_a_model_is_loaded_from_the_verified_bytes(tmp_path: Path) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    model = sklearn.LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    materializer = registry.get("sklearn.joblib")
    store = ArtifactStore(str(tmp_path / "artifacts"))
    uri, sha, _ = store.write("p", "r", "s", "o", lambda f, fs: materializer.save(model, f, fs))
    loaded = store.read(uri, sha, materializer.load)
    assert loaded.predict([[2.0]]).tolist() == pytest.approx([4.0])
    Path(uri, "model.joblib").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(BridgeError, match="is corrupted"):
        store.read(uri, sha, materializer.load)


def test_cache_entry_json_keeps_outputs_readable(stores: dict[str, str], project: Project) -> None:
    module = project("zbc_metrics", zbc_metrics=METRICS)
    run = module.measured()
    key = run.steps["train"].cache_key
    entry = MetadataStore(stores["ZENML_BRIDGE_METADATA_URL"]).lookup_cache(key)
    assert entry is not None
    assert set(entry) == {"output", "@produced"}
    assert json.loads(json.dumps(entry["@produced"])) == {
        "metrics": {"accuracy": 0.75},
        "metadata": {"rows_seen": 3},
    }


def _accepts_cases() -> list[tuple[Any, Any, bool]]:
    import collections
    from collections.abc import Sequence
    from typing import Annotated, Optional, TypeVar

    import numpy as np

    T = TypeVar("T")
    return [
        (int, 1, True),
        (int, True, True),
        (int, np.int64(1), True),
        (int, "1", False),
        (int, None, False),
        (int, 1.0, False),
        (float, 1, True),
        (float, np.float32(1), True),
        (float, np.bool_(True), False),
        (bool, np.bool_(True), True),
        (bool, 1, False),
        (np.float64, 0.5, True),
        (np.int64, 3, True),
        (np.int64, 3.5, False),
        (Optional[int], None, True),  # noqa: UP007
        (int | None, "x", False),
        (list[int], ["not checked"], True),
        (list[int], (1,), False),
        (dict[str, int], collections.OrderedDict(), True),
        (Sequence[int], [1], True),
        (Annotated[int, "n"], 2, True),
        (Any, object(), True),
        ("pd.DataFrame", 1, True),
        (T, 1, True),
    ]


@pytest.mark.parametrize(("annotation", "value", "expected"), _accepts_cases())
def test_declared_type_check_follows_the_origin_class(
    annotation: Any, value: Any, expected: bool
) -> None:
    from zenml_bridge.runtime.integrity import accepts

    assert accepts(annotation, value) is expected
